//! What a running task knows about its call: ids, retries, where it came from, and its soft
//! time limit, which arrives as a cancellation the task can watch.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::error::TaskError;
use crate::followup::{ChordHandle, FollowUp, Parent};
use crate::state::States;
use maestro_broker::Signature;

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
    /// This run's span in the caller's trace (W3C trace context), when the message had one.
    pub trace: Option<maestro_broker::trace::TraceContext>,
    /// Sends follow-up tasks through the worker (absent outside a worker).
    pub follow_up: Option<Arc<dyn FollowUp>>,
    /// The worker's shared state (see [`state`](Self::state)).
    pub states: Arc<States>,
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
            follow_up: None,
            trace: None,
            states: Arc::default(),
            soft_limit: CancellationToken::new(),
        }
    }

    /// The worker's state of type `T` (added with the worker's `state(...)`); a
    /// `RuntimeError` naming the type when there is none.
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, TaskError> {
        self.states.get::<T>().ok_or_else(|| {
            TaskError::fail(
                "RuntimeError",
                format!(
                    "this worker has no state of type {}",
                    std::any::type_name::<T>()
                ),
            )
        })
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

    /// Sends a follow-up task (see [`FollowUp::send`]); its id when the broker confirmed it.
    pub async fn send(&self, sig: Signature) -> Result<String, TaskError> {
        let f = self.follow_up()?;
        f.send(self.parent(), sig)
            .await
            .map_err(|e| TaskError::retry("OperationalError", format!("follow-up not sent: {e}")))
    }

    /// Records a chord (see [`FollowUp::start_chord`]).
    pub async fn start_chord(
        &self,
        size: usize,
        callback: Signature,
    ) -> Result<ChordHandle, TaskError> {
        let f = self.follow_up()?;
        f.start_chord(self.parent(), size, callback)
            .await
            .map_err(|e| TaskError::retry("OperationalError", format!("chord not started: {e}")))
    }

    /// Sends `members` as a chord: once each has finished, `callback` runs with their results,
    /// in order, as its first argument (a `<task>::partial()` signature). Needs the MongoDB
    /// result backend. Returns the callback's task id, where the chord's result will be.
    pub async fn chord<T, R>(
        &self,
        members: impl IntoIterator<Item = maestro_broker::TypedSignature<T>>,
        callback: maestro_broker::TypedSignature<R>,
    ) -> Result<String, TaskError> {
        let encode = |e: String| TaskError::fail("EncodeError", e);
        let members: Vec<Signature> = members
            .into_iter()
            .map(|m| m.into_signature().map_err(encode))
            .collect::<Result<_, _>>()?;
        let callback = callback.into_signature().map_err(encode)?;
        let chord = self.start_chord(members.len(), callback).await?;
        for (i, m) in members.into_iter().enumerate() {
            if let Some(sig) = chord.member(i, m) {
                self.send(sig).await?;
            }
        }
        Ok(chord.callback_id().to_owned())
    }

    /// This run as the parent of what it sends.
    pub fn parent(&self) -> Parent<'_> {
        Parent {
            id: &self.id,
            name: &self.name,
            root_id: self.root_id.as_deref(),
            trace: self.trace.as_ref(),
        }
    }

    fn follow_up(&self) -> Result<&Arc<dyn FollowUp>, TaskError> {
        self.follow_up.as_ref().ok_or_else(|| {
            TaskError::fail(
                "RuntimeError",
                "this task needs a worker to send follow-up tasks",
            )
        })
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
