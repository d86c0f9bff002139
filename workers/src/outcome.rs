//! An outcome into what is recorded and what becomes of the delivery: a SUCCESS or FAILURE
//! stored (then its links, chain step, errbacks and chord count), a RETRY stored after the
//! next try was published, a rejection requeued or dead-lettered, an abandoned run requeued.
//! Each path returns the delivery's [`Disposition`]: acknowledged only when everything it
//! needed was recorded.

use std::sync::Arc;
use std::time::Duration;

use maestro_broker::dead_letter::DeadReason;
use maestro_broker::{ExceptionInfo, TaskMessage, TaskState};
use maestro_tasks::Task;
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::canvas;
use crate::metrics::TaskOutcome;
use crate::results::{NotRecorded, RESULT_BYTES_MAX, record_state, store_state};
use crate::retry::{publish_retry, task_retry_delay};
use crate::run::Outcome;
use crate::session::{Session, Unfinished};
use crate::settle::Disposition;

/// Records REVOKED for a task that will not run (`expired`, or revoked by remote control),
/// sends its event, and settles the delivery.
pub(crate) async fn revoked(
    s: &Session,
    queue: &str,
    msg: &TaskMessage,
    expired: bool,
) -> Disposition {
    let m = &s.state.metrics;
    m.task_outcome(queue, &msg.headers.task, TaskOutcome::Revoked);
    if let Some(ev) = s.task_events() {
        let fields = json!({"terminated": false, "signum": null, "expired": expired});
        ev.task("task-revoked", &msg.headers.id, fields).await;
    }
    let exc = ExceptionInfo::celery(
        "TaskRevokedError",
        if expired { "expired" } else { "revoked" },
    );
    Disposition::after(record_state(s, queue, msg, TaskState::Revoked, &exc.to_value(), None).await)
}

/// Records the outcome (result reply, retry message) and says how to settle the delivery.
pub(crate) async fn record(
    s: &Arc<Session>,
    queue: &str,
    task: &dyn Task,
    msg: &TaskMessage,
    outcome: Outcome,
    runtime: Duration,
) -> Disposition {
    let h = &msg.headers;
    let runtime_ms = runtime.as_secs_f64() * 1000.0;
    let count = |outcome| s.state.metrics.task_outcome(queue, &h.task, outcome);
    match outcome {
        Outcome::Aborted => {
            info!(event = "task_requeued", task = %h.task, id = %h.id, "abandoned at shutdown; requeued");
            Disposition::Requeue
        }
        Outcome::Terminated => {
            info!(event = "task_terminated", task = %h.task, id = %h.id, "revoked with terminate: stopped");
            count(TaskOutcome::Revoked);
            let exc = ExceptionInfo::celery("TaskRevokedError", "terminated");
            Disposition::after(
                record_state(s, queue, msg, TaskState::Revoked, &exc.to_value(), None).await,
            )
        }
        Outcome::Success(value) => {
            debug!(event = "task_succeeded", task = %h.task, id = %h.id, runtime_ms);
            count(TaskOutcome::Succeeded);
            // A result too large to store, or one MongoDB refuses, fails the task instead of
            // re-running it for ever; what follows a failure follows.
            let size = serde_json::to_string(&value).map_or(0, |t| t.len());
            let refused = if size > RESULT_BYTES_MAX {
                Some(format!(
                    "the result is {size} bytes of JSON, more than the {RESULT_BYTES_MAX} stored"
                ))
            } else {
                match store_state(s, queue, msg, TaskState::Success, &value, None).await {
                    Ok(()) => None,
                    Err(NotRecorded::Refused(why)) => {
                        Some(format!("MongoDB refused the result: {why}"))
                    }
                    Err(NotRecorded::Unfinished) => return Disposition::Requeue,
                }
            };
            let how = Disposition::after(match refused {
                None => canvas::on_success(s, msg, &value).await,
                Some(why) => {
                    warn!(event = "result_not_stored", task = %h.task, id = %h.id, reason = %why);
                    let exc = ExceptionInfo::celery("ResultNotStored", why);
                    let tb = traceback_text(&s.hostname, msg, &exc);
                    Box::pin(record_failure(s, queue, msg, &exc, &tb)).await
                }
            });
            hook(s, queue, msg, |ctx| {
                if let Some(f) = task.options().hooks.on_success {
                    f(ctx, &value);
                }
            });
            how
        }
        Outcome::Failure { exc, .. } if task.options().autoretries(&exc) => {
            // Celery's autoretry_for: retried, and when the retries run out the task fails
            // with the exception itself.
            Box::pin(retry(
                s, queue, task, msg, None, None, exc, true, runtime_ms,
            ))
            .await
        }
        Outcome::Failure { exc, traceback } => {
            warn!(event = "task_failed", task = %h.task, id = %h.id, runtime_ms, exception = %exc.repr());
            count(TaskOutcome::Failed);
            let tb = traceback.unwrap_or_else(|| traceback_text(&s.hostname, msg, &exc));
            let how = Disposition::after(Box::pin(record_failure(s, queue, msg, &exc, &tb)).await);
            hook(s, queue, msg, |ctx| {
                if let Some(f) = task.options().hooks.on_failure {
                    f(ctx, &exc);
                }
            });
            how
        }
        Outcome::Reject {
            requeue: true,
            reason,
        } => {
            info!(event = "task_rejected", task = %h.task, id = %h.id, requeue = true, reason = %reason);
            count(TaskOutcome::Rejected);
            Disposition::Requeue
        }
        Outcome::Reject {
            requeue: false,
            reason,
        } => {
            info!(event = "task_rejected", task = %h.task, id = %h.id, requeue = false, reason = %reason);
            count(TaskOutcome::Rejected);
            Disposition::DeadLetter {
                reason: DeadReason::Rejected,
                detail: reason,
            }
        }
        Outcome::Retry {
            countdown,
            max_retries,
            exc,
        } => {
            Box::pin(retry(
                s,
                queue,
                task,
                msg,
                countdown,
                max_retries,
                exc,
                false,
                runtime_ms,
            ))
            .await
        }
    }
}

/// A retry: the next try published (after `countdown`, else the task's retry delay) and RETRY
/// recorded, or, past the retries allowed, a FAILURE: `MaxRetriesExceededError`, or the
/// exception itself for an automatic retry (`autoretry_for`), as Celery does.
#[allow(clippy::too_many_arguments)]
async fn retry(
    s: &Arc<Session>,
    queue: &str,
    task: &dyn Task,
    msg: &TaskMessage,
    countdown: Option<Duration>,
    max_retries: Option<u32>,
    exc: ExceptionInfo,
    automatic: bool,
    runtime_ms: f64,
) -> Disposition {
    let h = &msg.headers;
    let count = |outcome| s.state.metrics.task_outcome(queue, &h.task, outcome);
    let options = task.options();
    let limit = max_retries.or(options.max_retries);
    if limit.is_some_and(|max| h.retries >= max) {
        let exc = if automatic {
            exc
        } else {
            ExceptionInfo::celery(
                "MaxRetriesExceededError",
                format!(
                    "Can't retry {}[{}] args:{} kwargs:{} (after {} retries, last: {})",
                    h.task,
                    h.id,
                    msg.args.get(),
                    msg.kwargs.get(),
                    h.retries,
                    exc.repr()
                ),
            )
        };
        warn!(event = "task_failed", task = %h.task, id = %h.id, runtime_ms, exception = %exc.repr());
        count(TaskOutcome::Failed);
        let tb = traceback_text(&s.hostname, msg, &exc);
        let how = Disposition::after(record_failure(s, queue, msg, &exc, &tb).await);
        hook(s, queue, msg, |ctx| {
            if let Some(f) = options.hooks.on_failure {
                f(ctx, &exc);
            }
        });
        return how;
    }
    count(TaskOutcome::Retried);
    let wait = countdown.unwrap_or_else(|| task_retry_delay(&s.cfg, options, h.retries));
    let published = publish_retry(s, queue, msg, wait).await;
    if let Err(e) = published {
        warn!(event = "retry_publish_failed", task = %h.task, id = %h.id, error = %e, "requeued instead");
        s.publish_failed(&e);
        return Disposition::Requeue;
    }
    info!(event = "task_retry", task = %h.task, id = %h.id, retries = h.retries + 1,
        delay_secs = wait.as_secs_f64(), exception = %exc.repr());
    let tb = traceback_text(&s.hostname, msg, &exc);
    let how = Disposition::after(
        record_state(s, queue, msg, TaskState::Retry, &exc.to_value(), Some(&tb)).await,
    );
    hook(s, queue, msg, |ctx| {
        if let Some(f) = options.hooks.on_retry {
            f(ctx, &exc);
        }
    });
    how
}

/// Runs a task's hook with the run's context; a panicking hook is logged, not fatal.
fn hook(s: &Session, queue: &str, msg: &TaskMessage, f: impl FnOnce(&maestro_tasks::TaskContext)) {
    let ctx = crate::run::context(s, queue, msg);
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&ctx))).is_err() {
        warn!(event = "task_hook_panicked", task = %msg.headers.task, id = %msg.headers.id);
    }
}

/// Records a FAILURE, then what follows it (chain failure, errbacks, chord count).
async fn record_failure(
    s: &Arc<Session>,
    queue: &str,
    msg: &TaskMessage,
    exc: &ExceptionInfo,
    tb: &str,
) -> Result<(), Unfinished> {
    record_state(s, queue, msg, TaskState::Failure, &exc.to_value(), Some(tb)).await?;
    canvas::on_failure(s, msg, exc, tb).await
}

/// A traceback text for Python readers: where and what, since there is no Python stack.
fn traceback_text(hostname: &str, msg: &TaskMessage, exc: &ExceptionInfo) -> String {
    let qualified = if exc.exc_module == "builtins" {
        exc.exc_type.clone()
    } else {
        format!("{}.{}", exc.exc_module, exc.exc_type)
    };
    let message = match exc.exc_message.first() {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    format!(
        "Traceback (most recent call last):\n  maestro-worker {hostname}, task {}[{}]\n{qualified}: {message}\n",
        msg.headers.task, msg.headers.id,
    )
}
