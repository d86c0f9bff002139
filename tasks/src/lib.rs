//! Celery-compatible tasks in Rust: what a worker runs, and what any task needs.
//!
//! - `task`       the `Task` trait
//! - `options`    a task's own options (retries, rate and time limits, acks, hooks)
//! - `state`      shared state tasks look up by type
//! - `args`       a call's arguments, by position or keyword, bound as Python binds them
//! - `field`      `FieldError`: which field of an input is wrong and why
//! - `context`    what a running task knows (ids, retries, soft time limit), blocking pool
//! - `error`      `TaskError`: retry, reject or fail
//! - `followup`   sending follow-up tasks and chords through the worker
//! - `registry`   tasks by name
//! - `routes`     the routing table (task name -> queue), empty until an application fills it
//! - `backoff`    the one retry-delay computation (exponential, jitter, ceiling)
//! - `diagnostic` `maestro.noop`, `maestro.echo`, `maestro.sleep`, `maestro.fail`

mod args;
mod backoff;
mod context;
pub mod diagnostic;
mod error;
pub mod field;
pub mod followup;
mod options;
mod registry;
mod routes;
mod state;
mod task;

pub use args::{Bound, CallArgs, Param, TaskArgs};
pub use backoff::{backoff_delay, retry_delay};
pub use context::{TaskContext, blocking};
pub use error::TaskError;
pub use field::{FieldError, FieldErrorKind};
pub use maestro_broker::{ExceptionInfo, Signature, TypedSignature};
pub use maestro_macros::task;
pub use options::{
    BadRateLimit, DEFAULT_MAX_RETRIES, DEFAULT_RETRY_BACKOFF_MAX, ErrorHook, Hooks, RateLimit,
    SuccessHook, TaskOptions,
};
pub use registry::{DuplicateTask, MissingState, Registry};
pub use routes::{RoutingTable, TASK_NAME_BYTES_MAX, validate_task_name};
pub use state::{StateNeed, States};
pub use task::{Task, TaskFuture, TaskResult};

/// What `#[task]` expands to refers to; not for direct use.
#[doc(hidden)]
pub mod __private {
    pub use crate::{
        Bound, CallArgs, Param, RateLimit, StateNeed, Task, TaskArgs, TaskContext, TaskError,
        TaskFuture, TaskOptions, TypedSignature, blocking,
    };
    pub use serde_json;

    /// An argument of a typed signature as JSON.
    pub fn to_argument<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, String> {
        serde_json::to_value(value).map_err(|e| e.to_string())
    }

    /// A task's return value as its JSON result (kombu's `EncodeError` when it has none).
    pub fn to_result<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, TaskError> {
        serde_json::to_value(value)
            .map_err(|e| TaskError::fail("EncodeError", format!("the result is not JSON: {e}")))
    }

    /// A fallible task's outcome as its JSON result or its error.
    pub fn fallible_result<T: serde::Serialize, E: Into<TaskError>>(
        out: Result<T, E>,
    ) -> Result<serde_json::Value, TaskError> {
        out.map_err(Into::into).and_then(|v| to_result(&v))
    }
}
