//! Revoked ids that outlive a worker and reach the workers that start later, as Celery keeps
//! them: the `--statedb` file (rewritten whole, atomically, whenever a revocation adds an id;
//! read at start), and mingle (at start, a `hello` to every worker on `celery.pidbox`; each
//! answers with its revoked ids and clock, Python workers included, and learns ours).

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection};
use maestro_broker::field;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::config::WorkerConfig;
use crate::control::{EXCHANGE, REPLY_EXCHANGE};
use crate::stats::WorkerState;

/// How long mingle waits for the other workers' answers, as Celery's `mingle` does (1 s).
pub(crate) const MINGLE_WAIT: Duration = Duration::from_secs(1);
/// Largest state file read: REVOKED_MAX ids of at most 255 bytes, with room.
const STATE_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Reads the state file into `state` (its revoked ids and clock); a file that is absent is a
/// first start, one that cannot be read is logged and ignored.
pub(crate) fn load(state: &WorkerState, cfg: &WorkerConfig) {
    let Some(path) = &cfg.statedb else {
        return;
    };
    let read = std::fs::metadata(path).and_then(|m| {
        if m.len() > STATE_FILE_BYTES_MAX {
            Err(std::io::Error::other(format!(
                "larger than {STATE_FILE_BYTES_MAX} bytes"
            )))
        } else {
            std::fs::read(path)
        }
    });
    let text = match read {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            warn!(event = "statedb_unreadable", path = %path.display(), error = %e);
            return;
        }
    };
    let Ok(saved) = serde_json::from_slice::<Value>(&text) else {
        warn!(event = "statedb_unreadable", path = %path.display(), error = "not this worker's JSON state");
        return;
    };
    let ids: Vec<String> = saved
        .get("revoked")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    state.revoke(&ids);
    if let Some(clock) = saved.get("clock").and_then(Value::as_u64) {
        state.tick(Some(clock));
    }
    info!(event = "statedb_loaded", path = %path.display(), revoked = ids.len());
}

/// After a revocation: rewrites the state file when `changed` (a failure is logged; the
/// revocation holds in memory either way).
pub(crate) fn saved(state: &WorkerState, cfg: &WorkerConfig, changed: bool) {
    let Some(path) = &cfg.statedb else {
        return;
    };
    if !changed {
        return;
    }
    let body = json!({"revoked": state.revoked_ids(), "clock": state.clock()});
    if let Err(e) = write_atomically(path, body.to_string().as_bytes()) {
        warn!(event = "statedb_not_written", path = %path.display(), error = %e);
    }
}

/// Writes `bytes` to a file beside `path`, then renames it over `path`: a crash leaves the old
/// file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Mingle: asks every worker for its revoked ids (sending ours) and merges the answers.
/// Nothing answering within [`MINGLE_WAIT`] is a fleet of one.
pub(crate) async fn mingle(conn: &Connection, state: &WorkerState, cfg: &WorkerConfig) {
    match ask(conn, state, cfg).await {
        Ok((workers, learnt)) => {
            info!(event = "mingle", workers, revoked_learnt = learnt);
        }
        Err(e) => {
            warn!(event = "mingle_failed", error = %e, "starting without the others' revoked ids")
        }
    }
}

async fn ask(
    conn: &Connection,
    state: &WorkerState,
    cfg: &WorkerConfig,
) -> Result<(usize, usize), lapin::Error> {
    let ch = conn.create_channel().await?;
    let ticket = uuid::Uuid::new_v4().to_string();
    let reply = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    ch.queue_bind(
        reply.name().clone(),
        REPLY_EXCHANGE.into(),
        ticket.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let mut answers = ch
        .basic_consume(
            reply.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let request = json!({
        "method": "hello",
        "arguments": {"from_node": state.hostname, "revoked": state.revoked_ids()},
        "destination": null, "pattern": null, "matcher": null,
        "reply_to": {"exchange": REPLY_EXCHANGE, "routing_key": ticket},
        "ticket": ticket,
    });
    let mut headers = FieldTable::default();
    headers.insert(
        "ticket".into(),
        AMQPValue::LongString(ticket.as_str().into()),
    );
    headers.insert(
        "clock".into(),
        AMQPValue::LongLongInt(state.tick(None) as i64),
    );
    ch.basic_publish(
        EXCHANGE.into(),
        "".into(),
        BasicPublishOptions::default(),
        request.to_string().as_bytes(),
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_delivery_mode(1)
            .with_headers(headers),
    )
    .await?;
    let mut workers = 0;
    let mut learnt = 0;
    let deadline = tokio::time::sleep(MINGLE_WAIT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            next = answers.next() => {
                let Some(Ok(d)) = next else { break };
                let seen = d.properties.headers().as_ref()
                    .and_then(|h| h.inner().get("clock")).and_then(field::as_i64);
                state.tick(seen.map(|c| c.max(0) as u64));
                let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&d.data) else {
                    continue;
                };
                for (node, answer) in body {
                    if node == state.hostname {
                        continue;
                    }
                    workers += 1;
                    let ids: Vec<String> = answer.get("revoked").and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default();
                    learnt += state.revoke(&ids).len();
                    if let Some(c) = answer.get("clock").and_then(Value::as_u64) {
                        state.tick(Some(c));
                    }
                }
            }
        }
    }
    saved(state, cfg, learnt > 0);
    let _ = ch.close(200, "mingle done".into()).await;
    Ok((workers, learnt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_state_file_keeps_revoked_ids_across_restarts() {
        let dir = std::env::temp_dir().join(format!("statedb-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("worker.state");
        let cfg = crate::config::WorkerConfig {
            statedb: Some(path.clone()),
            ..crate::config::WorkerConfig::default()
        };
        let metrics = || Arc::new(crate::metrics::Metrics::new([], []));
        let first = WorkerState::new("w", metrics());
        let added = first.revoke(&["a".into(), "b".into()]);
        saved(&first, &cfg, !added.is_empty());
        let second = WorkerState::new("w", metrics());
        load(&second, &cfg);
        assert!(second.is_revoked("a") && second.is_revoked("b"));
        assert!(second.clock() >= first.clock());
        std::fs::write(&path, b"not json").expect("write");
        let third = WorkerState::new("w", metrics());
        load(&third, &cfg);
        assert!(!third.is_revoked("a"), "a bad file is ignored");
        let _ = std::fs::remove_dir_all(dir);
    }
}
