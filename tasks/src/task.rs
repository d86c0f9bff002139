//! The `Task` trait: a named async function of its arguments, run by the worker.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::args::TaskArgs;
use crate::context::TaskContext;
use crate::error::TaskError;
use crate::options::TaskOptions;
use crate::state::StateNeed;

/// What a task returns: its result (JSON for `Task::run`, any serializable type for a
/// `#[task]` function), or why not.
pub type TaskResult<T = Value> = Result<T, TaskError>;
/// The boxed future of one run.
pub type TaskFuture<'a> = Pin<Box<dyn Future<Output = TaskResult> + Send + 'a>>;

/// One registered task. `#[task]` writes this for a function; implement it by hand for a
/// task that holds state of its own or reads its arguments itself.
pub trait Task: Send + Sync + 'static {
    /// The name clients send it by (`maestro.echo`).
    fn name(&self) -> &str;

    /// Its options (retries, limits, acks, hooks); unset ones are the worker's.
    fn options(&self) -> &TaskOptions {
        static DEFAULTS: std::sync::LazyLock<TaskOptions> =
            std::sync::LazyLock::new(TaskOptions::default);
        &DEFAULTS
    }

    /// The state types it looks up in its context ([`TaskContext::state`]): a worker refuses to
    /// start when one is missing, rather than failing every call.
    fn state_needs(&self) -> Vec<StateNeed> {
        Vec::new()
    }

    /// The parameters a call binds to, in order, where the task declares them (`#[task]`
    /// functions do; `None` for a task that reads its arguments itself). The worker follows
    /// Celery with it: an errback registered in the worker that takes more than one
    /// parameter is called with `(request, exc, traceback)` (new style), else sent the
    /// failed task's id.
    fn parameters(&self) -> Option<&'static [crate::args::Param]> {
        None
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
