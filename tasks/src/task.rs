//! The `Task` trait: a named async function of its arguments, run by the worker.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::args::TaskArgs;
use crate::context::TaskContext;
use crate::error::TaskError;

/// What `Task::run` returns: the result as JSON, or why not.
pub type TaskResult = Result<Value, TaskError>;
/// The boxed future of one run.
pub type TaskFuture<'a> = Pin<Box<dyn Future<Output = TaskResult> + Send + 'a>>;

/// Celery's default `max_retries`.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// One registered task.
pub trait Task: Send + Sync + 'static {
    /// The name clients send it by (`maestro.echo`).
    fn name(&self) -> &str;

    /// How many times a `TaskError::Retry` is honoured before the task fails for good;
    /// `None` retries forever.
    fn max_retries(&self) -> Option<u32> {
        Some(DEFAULT_MAX_RETRIES)
    }

    /// Runs one call. Blocking work belongs in `context::blocking`.
    fn run<'a>(&'a self, ctx: &'a TaskContext, args: &'a TaskArgs) -> TaskFuture<'a>;

    /// What stored results, `inspect active` and events show of a call's `args` and `kwargs`
    /// (Celery's `argsrepr`/`kwargsrepr`), for a task whose arguments carry credentials; it
    /// replaces whatever the producer sent as reprs. `None` (the default) shows them as the
    /// producer did.
    fn shown_arguments(
        &self,
        _args: &serde_json::Value,
        _kwargs: &serde_json::Value,
    ) -> Option<(serde_json::Value, serde_json::Value)> {
        None
    }
}
