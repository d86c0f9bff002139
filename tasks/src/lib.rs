//! Tasks: what a worker runs.
//!
//! - `task`       the `Task` trait
//! - `args`       a call's arguments, looked up by position or keyword
//! - `context`    what a running task knows (ids, retries, soft time limit), blocking pool
//! - `error`      `TaskError`: retry, reject or fail
//! - `followup`   sending follow-up tasks and chords through the worker
//! - `registry`   tasks by name
//! - `routes`     the routing table (task name -> queue), `MAESTRO_ROUTES`
//! - `catalogue`  the Maestro jobs: reports, aggregation, webhook, notify, discovery
//! - `diagnostic` `maestro.noop`, `maestro.echo`, `maestro.sleep`, `maestro.fail`

pub mod args;
pub mod catalogue;
pub mod context;
pub mod diagnostic;
pub mod error;
pub mod followup;
pub mod registry;
pub mod routes;
pub mod task;

pub use args::TaskArgs;
pub use context::{TaskContext, blocking};
pub use error::TaskError;
pub use registry::Registry;
pub use task::{Task, TaskFuture, TaskResult};
