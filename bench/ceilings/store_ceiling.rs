//! The worker's own result-store code without the broker.
//!
//! `store-ceiling URL N WINDOW` records N SUCCESS results of `maestro.noop` (the fields a
//! worker stores) through `maestro_results::ResultStore`, the code the worker writes with,
//! WINDOW at a time (as a worker's prefetch window holds them), and prints one JSON line: the
//! rate (results/s). Beside pymongo writing the same documents and the worker draining a
//! queue into the same store (`bench/results_ceiling.py`), it tells a slow store apart from
//! slow batching and from the broker's share of the machine.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use maestro_broker::TaskState;
use maestro_results::{ResultStore, TaskRecord};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error>;

fn arg(i: usize, name: &str, default: usize) -> Result<usize, Error> {
    match std::env::args().nth(i) {
        Some(s) => s
            .parse()
            .map_err(|e| format!("{name}: {s:?} is not a count: {e}").into()),
        None => Ok(default),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: store-ceiling MONGODB_URL [N] [WINDOW]")?;
    let n = arg(2, "N", 3_000)?;
    let window = arg(3, "WINDOW", 256)?.max(1);
    let store = ResultStore::connect(&url, Some(Duration::from_secs(86_400))).await?;
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
    while let Some(done) = written.next().await {
        done?;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"n": n, "window": window, "seconds": seconds, "rate": n as f64 / seconds})
    );
    Ok(())
}
