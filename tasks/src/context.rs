//! What a running task knows about its call: ids, retries, where it came from, and its soft
//! time limit, which arrives as a cancellation the task can watch.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::error::TaskError;

/// The context of one task run.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub id: String,
    pub name: String,
    pub retries: u32,
    pub root_id: Option<String>,
    pub parent_id: Option<String>,
    pub group: Option<String>,
    pub eta: Option<DateTime<Utc>>,
    pub expires: Option<DateTime<Utc>>,
    /// The queue the message was taken from.
    pub queue: String,
    /// This worker's node name (`maestro@host`).
    pub hostname: Arc<str>,
    /// The soft time limit in force, if any.
    pub soft_time_limit: Option<Duration>,
    soft_limit: CancellationToken,
}

impl TaskContext {
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        queue: impl Into<String>,
        hostname: Arc<str>,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            retries: 0,
            root_id: None,
            parent_id: None,
            group: None,
            eta: None,
            expires: None,
            queue: queue.into(),
            hostname,
            soft_time_limit: None,
            soft_limit: CancellationToken::new(),
        }
    }

    /// The token cancelled when the soft time limit passes (the runtime cancels it).
    pub fn soft_limit_token(&self) -> &CancellationToken {
        &self.soft_limit
    }

    /// Whether the soft time limit has passed.
    pub fn soft_limit_reached(&self) -> bool {
        self.soft_limit.is_cancelled()
    }

    /// Completes when the soft time limit passes; never, when there is none.
    pub async fn soft_limit(&self) {
        self.soft_limit.cancelled().await
    }

    /// The error a task returns when it stops because the soft limit passed.
    pub fn soft_limit_error(&self) -> TaskError {
        TaskError::soft_time_limit_exceeded(self.soft_time_limit.unwrap_or_default())
    }
}

/// Runs blocking or CPU-heavy work on the blocking pool, never on the async executor. A panic
/// in `work` becomes a failure of the task, not of the worker.
pub async fn blocking<F, R>(work: F) -> Result<R, TaskError>
where
    F: FnOnce() -> Result<R, TaskError> + Send + 'static,
    R: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => Err(TaskError::fail(
            "RuntimeError",
            format!("blocking work did not finish: {e}"),
        )),
    }
}
