//! What a task says when it does not succeed: retry later, reject, or fail. The worker turns
//! each into Celery's states (RETRY, REJECTED, FAILURE) in one place.

use std::time::Duration;

use maestro_broker::ExceptionInfo;

/// A task's outcome other than success.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    /// Try again later: after `countdown` when given, else after the worker's exponential
    /// backoff with jitter. `max_retries` overrides the task's limit for this call.
    #[error("retry: {}", exc.repr())]
    Retry {
        countdown: Option<Duration>,
        max_retries: Option<u32>,
        exc: ExceptionInfo,
    },
    /// The message must not run here: acknowledged and not retried, or put back on the queue
    /// for another worker when `requeue` is set.
    #[error("reject: {reason}")]
    Reject { requeue: bool, reason: String },
    /// Failed for good: recorded as FAILURE with this exception.
    #[error("{}", exc.repr())]
    Fail {
        exc: ExceptionInfo,
        traceback: Option<String>,
    },
}

impl TaskError {
    /// A failure with a Python builtin exception type, e.g. `fail("ValueError", "bad input")`.
    pub fn fail(exc_type: &str, message: impl Into<String>) -> Self {
        TaskError::Fail {
            exc: ExceptionInfo::builtin(exc_type, message),
            traceback: None,
        }
    }

    /// A `TypeError`, as Python raises for a call with wrong arguments.
    pub fn type_error(message: impl Into<String>) -> Self {
        Self::fail("TypeError", message)
    }

    /// A `ValueError`, for arguments of the right type but a wrong value.
    pub fn value_error(message: impl Into<String>) -> Self {
        Self::fail("ValueError", message)
    }

    /// Retry after the worker's backoff, recording `exc_type: message` as the reason.
    pub fn retry(exc_type: &str, message: impl Into<String>) -> Self {
        TaskError::Retry {
            countdown: None,
            max_retries: None,
            exc: ExceptionInfo::builtin(exc_type, message),
        }
    }

    /// Retry after exactly `countdown`.
    pub fn retry_in(countdown: Duration, exc_type: &str, message: impl Into<String>) -> Self {
        TaskError::Retry {
            countdown: Some(countdown),
            max_retries: None,
            exc: ExceptionInfo::builtin(exc_type, message),
        }
    }

    /// The soft time limit passed and the task gave up (celery.exceptions.SoftTimeLimitExceeded).
    pub fn soft_time_limit_exceeded(limit: Duration) -> Self {
        // Celery raises SoftTimeLimitExceeded(limit): its one argument is the limit.
        let mut exc = ExceptionInfo::celery("SoftTimeLimitExceeded", "");
        exc.exc_message = vec![serde_json::Value::from(limit.as_secs_f64())];
        TaskError::Fail {
            exc,
            traceback: None,
        }
    }
}
