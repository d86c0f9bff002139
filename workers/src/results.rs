//! Where a task's states go: nowhere, Celery's MongoDB layout (`--result-backend
//! mongodb://`), or an rpc reply to the caller's `reply_to` (`rpc://`). A write that cannot be
//! made is retried while MongoDB is away, for up to [`STORE_RETRY_MAX`]; after that the
//! delivery is requeued (and the task may run again), never acknowledged.

use std::time::Duration;

use backon::ExponentialBuilder;
use lapin::BasicProperties;
use maestro_broker::{TaskMessage, TaskState, state};
use maestro_results::{StoreError, Stored, TaskRecord};
use serde_json::Value;
use tracing::{info, warn};

use crate::config::ResultBackend;
use crate::session::{Session, Unfinished};

/// How long a result write or lookup is retried while MongoDB is away before the delivery is
/// requeued (and the task may run again).
pub(crate) const STORE_RETRY_MAX: Duration = Duration::from_secs(60);

/// Largest result stored, bytes of JSON: a larger one is stored as a FAILURE
/// (`ResultTooLarge`) instead, since MongoDB refuses documents over 16 MiB and a refused write
/// would otherwise re-run the task.
pub(crate) const RESULT_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Why a state was not recorded.
pub(crate) enum NotRecorded {
    /// The store or the broker is away: the delivery is requeued.
    Unfinished,
    /// MongoDB refused it for good (a document too large, no privilege, validation).
    Refused(String),
}

/// Records the task's state in the result backend. `Err` when it could not be recorded (the
/// delivery is then requeued rather than acknowledged); a write MongoDB refuses for good is
/// logged and counted as done, since running the task again cannot change that.
pub(crate) async fn record_state(
    s: &Session,
    queue: &str,
    msg: &TaskMessage,
    state: TaskState,
    result: &Value,
    traceback: Option<&str>,
) -> Result<(), Unfinished> {
    match store_state(s, queue, msg, state, result, traceback).await {
        Ok(()) => Ok(()),
        Err(NotRecorded::Unfinished) => Err(Unfinished),
        Err(NotRecorded::Refused(why)) => {
            warn!(event = "result_refused", id = %msg.headers.id, state = state.as_str(), error = %why, "not retried");
            Ok(())
        }
    }
}

/// Records the state; a refusal is returned (a SUCCESS that cannot be stored becomes a
/// FAILURE, see `outcome`).
pub(crate) async fn store_state(
    s: &Session,
    queue: &str,
    msg: &TaskMessage,
    state: TaskState,
    result: &Value,
    traceback: Option<&str>,
) -> Result<(), NotRecorded> {
    if msg.headers.ignore_result {
        return Ok(());
    }
    match &s.cfg.result_backend {
        ResultBackend::None => Ok(()),
        ResultBackend::Store { .. } => {
            let Some(store) = &s.store else { return Ok(()) };
            let extended = s.cfg.result_extended;
            let record = TaskRecord {
                traceback: traceback.map(str::to_owned),
                name: Some(msg.headers.task.clone()),
                args: extended
                    .then(|| shown(&msg.headers.argsrepr, msg.args.get()))
                    .flatten(),
                kwargs: extended
                    .then(|| shown(&msg.headers.kwargsrepr, msg.kwargs.get()))
                    .flatten(),
                worker: Some(s.hostname.to_string()),
                retries: msg.headers.retries,
                queue: Some(queue.to_owned()),
                group_id: msg.headers.group.clone(),
                parent_id: msg.headers.parent_id.clone(),
                ..TaskRecord::new(msg.headers.id.clone(), state, result.clone())
            };
            match Box::pin(with_store_retry(|| store.store(&record))).await {
                Ok(Stored::Written) => Ok(()),
                Ok(Stored::AlreadySucceeded) => {
                    info!(event = "result_kept", id = %msg.headers.id, state = state.as_str(), "a SUCCESS was already stored; kept");
                    Ok(())
                }
                Err(StoreError::Refused(why)) => Err(NotRecorded::Refused(why)),
                Err(e) => {
                    warn!(event = "result_not_recorded", id = %msg.headers.id, state = state.as_str(), error = %e);
                    Err(NotRecorded::Unfinished)
                }
            }
        }
        ResultBackend::Rpc => {
            let Some(reply_to) = msg.properties.reply_to.as_deref().filter(|r| !r.is_empty())
            else {
                return Ok(());
            };
            let body = state::rpc_reply(
                &msg.headers.id,
                state,
                result,
                traceback,
                msg.headers.parent_id.as_deref(),
            );
            let props = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_content_encoding("utf-8".into())
                .with_delivery_mode(1)
                .with_priority(0)
                .with_correlation_id(maestro_broker::field::short(&msg.headers.id));
            // Not mandatory: a caller that stopped waiting has deleted its reply queue.
            Box::pin(s.publisher.publish("", reply_to, props, &body, false)).await.map_err(|e| {
                warn!(event = "result_not_recorded", id = %msg.headers.id, state = state.as_str(), error = %e);
                s.publish_failed(&e);
                NotRecorded::Unfinished
            })
        }
    }
}

/// Retries a store call with backoff while MongoDB is away, for up to `STORE_RETRY_MAX`.
pub(crate) async fn with_store_retry<T, F, Fut>(call: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    use backon::Retryable;
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .with_total_delay(Some(STORE_RETRY_MAX))
        .without_max_times();
    call.retry(backoff)
        .when(StoreError::is_retryable)
        .notify(|e, wait| warn!(event = "result_store_retry", error = %e, retry_in_ms = wait.as_millis() as u64))
        .await
}

/// Whether task `id` already has a stored SUCCESS (a duplicate publish, or a redelivery after a
/// crash between storing and acking); `false` without a store. Retried while MongoDB is away.
/// The stored result of `id` when it succeeded.
pub(crate) async fn stored_result(s: &Session, id: &str) -> Result<Option<Value>, StoreError> {
    match &s.store {
        Some(store) => Ok(Box::pin(with_store_retry(|| store.get(id)))
            .await?
            .filter(|m| m.status == "SUCCESS")
            .map(|m| m.result)),
        None => Ok(None),
    }
}

/// An argument list as stored with `result_extended`: its repr when that is JSON (a task's own,
/// see `Task::shown_arguments`), else the arguments as sent (Python's reprs are not JSON).
fn shown(repr: &Option<String>, raw: &str) -> Option<Value> {
    repr.as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .or_else(|| serde_json::from_str(raw).ok())
}

pub(crate) async fn has_succeeded(s: &Session, id: &str) -> Result<bool, StoreError> {
    match &s.store {
        Some(store) => Box::pin(with_store_retry(|| store.has_succeeded(id))).await,
        None => Ok(false),
    }
}
