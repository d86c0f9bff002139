//! The worker's own result-store code without the broker.
//!
//! `store-ceiling MONGODB_URL [N] [WINDOW]` records N SUCCESS results of `maestro.noop` (the
//! fields a worker stores) through `maestro_results::ResultStore`, the code the worker writes
//! with, WINDOW at a time (as a worker's prefetch window holds them), into a database of its
//! own (`store_ceiling_<random>`, dropped at the end), and prints one JSON line: the rate
//! (results/s). MONGODB_URL names the server only (`mongodb://host:port/?options`), never a
//! database: this program must not write into a real results database. Beside pymongo
//! writing the same documents and the worker draining a queue into the same store
//! (`bench/results_ceiling.py`), it tells a slow store apart from slow batching and from the
//! broker's share of the machine.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use maestro_broker::TaskState;
use maestro_results::{ResultStore, TaskRecord};
use serde_json::{Value, json};

const USAGE: &str = "usage: store-ceiling MONGODB_URL [N] [WINDOW]  (the URL names the server only: \
                     mongodb://host:port/?options)";

fn count(i: usize, name: &str, default: usize) -> Result<usize, String> {
    match std::env::args().nth(i) {
        Some(s) => match s.parse() {
            Ok(0) => Err(format!("{name}: must be at least 1")),
            Ok(n) => Ok(n),
            Err(e) => Err(format!("{name}: {s:?} is not a count: {e}")),
        },
        None => Ok(default),
    }
}

/// `url` with the database `db` put in: the URL must name none of its own.
fn url_with_database(url: &str, db: &str) -> Result<String, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "MONGODB_URL: {url:?} is not a mongodb:// URL\n{USAGE}"
        ));
    };
    let (hosts, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    if !path.is_empty() {
        return Err(format!(
            "MONGODB_URL: names the database {path:?}; give the server only, this program \
             writes into a database of its own and drops it\n{USAGE}"
        ));
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    Ok(format!("{scheme}://{hosts}/{db}{query}"))
}

async fn run() -> Result<Value, String> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 || args.len() > 4 || args[1].starts_with('-') {
        return Err(USAGE.into());
    }
    let n = count(2, "N", 3_000)?;
    let window = count(3, "WINDOW", 256)?;
    let db = format!("store_ceiling_{}", uuid::Uuid::new_v4().simple());
    let url = url_with_database(&args[1], &db)?;
    let store = ResultStore::connect(&url, Some(Duration::from_secs(86_400)))
        .await
        .map_err(|e| format!("MONGODB_URL: cannot connect: {e}"))?;
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    let records = (0..n).map(|_| TaskRecord {
        name: Some("maestro.noop".into()),
        args: Some(json!([])),
        kwargs: Some(json!({})),
        worker: Some(format!("store-ceiling@{host}")),
        queue: Some("q".into()),
        ..TaskRecord::new(
            uuid::Uuid::new_v4().to_string(),
            TaskState::Success,
            Value::Null,
        )
    });
    let start = Instant::now();
    let mut written = futures_util::stream::iter(records)
        .map(|r| {
            let store = store.clone();
            async move { store.store(&r).await }
        })
        .buffer_unordered(window);
    let mut failed = None;
    while let Some(done) = written.next().await {
        if let Err(e) = done {
            failed = Some(format!("a write failed: {e}"));
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(written);
    // Dropped whatever happened above: the database is this run's own.
    if let Some(database) = store.mongo_database() {
        database
            .drop()
            .await
            .map_err(|e| format!("dropping {db}: {e}"))?;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(json!({"n": n, "window": window, "seconds": seconds, "rate": n as f64 / seconds}))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    match run().await {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("store-ceiling: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::url_with_database;

    #[test]
    fn the_url_names_the_server_only() {
        assert_eq!(
            url_with_database("mongodb://127.0.0.1:27018", "d").as_deref(),
            Ok("mongodb://127.0.0.1:27018/d")
        );
        assert_eq!(
            url_with_database("mongodb://a:1,b:2/?w=1", "d").as_deref(),
            Ok("mongodb://a:1,b:2/d?w=1")
        );
        let refused = url_with_database("mongodb://h/celery", "d").expect_err("a database");
        assert!(refused.contains("\"celery\""), "{refused}");
        assert!(url_with_database("h:27017", "d").is_err());
    }
}
