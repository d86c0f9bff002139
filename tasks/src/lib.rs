//! Celery-compatible tasks in Rust: what a worker runs, and what any task needs.
//!
//! - `task`       the `Task` trait
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
mod registry;
mod routes;
mod task;

pub use args::TaskArgs;
pub use backoff::retry_delay;
pub use context::{TaskContext, blocking};
pub use error::TaskError;
pub use field::{FieldError, FieldErrorKind};
pub use registry::{DuplicateTask, Registry};
pub use routes::{RoutingTable, TASK_NAME_BYTES_MAX, validate_task_name};
pub use task::{DEFAULT_MAX_RETRIES, Task, TaskFuture, TaskResult};
