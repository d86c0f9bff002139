//! [`Worker`]: an application's worker in a few lines: its tasks, its state and its settings
//! in code, its flags and environment variables from the runtime, the process set up as
//! maestro-worker's is (stack guard, logging and trace export, signals, drain on SIGTERM).
//!
//! ```no_run
//! use maestro_worker::prelude::*;
//!
//! #[task(name = "myapp.add")]
//! async fn add(x: i64, y: i64) -> i64 {
//!     x + y
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     Worker::new("myapp").task(add).run()
//! }
//! ```

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use maestro_tasks::{DuplicateTask, Registry, Task};
use maestro_telemetry::LogArgs;

use crate::config::{AppDefaults, WorkerArgs, WorkerCli};
use crate::launch;

/// An application's worker: tasks and state, settings made in code (the flags and environment
/// variables of [`WorkerArgs`] override them), then [`run`](Self::run).
pub struct Worker {
    name: &'static str,
    registry: Registry,
    defaults: AppDefaults,
    /// Flag defaults set in code: (argument id, value).
    settings: Vec<(&'static str, String)>,
    duplicate: Option<DuplicateTask>,
}

impl Worker {
    /// The worker of application `name`: node `name@%h`, dead letters in `name.dead`, no
    /// metrics endpoint until [`metrics_addr`](Self::metrics_addr) names one.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            registry: Registry::new(),
            defaults: AppDefaults::named(name),
            settings: Vec::new(),
            duplicate: None,
        }
    }

    /// Adds a task (a `#[task]` function, or any [`Task`]). A name added twice stops the
    /// worker at start with an error.
    pub fn task<T: Task>(mut self, task: T) -> Self {
        if let Err(e) = self.registry.add(task) {
            self.duplicate.get_or_insert(e);
        }
        self
    }

    /// Adds state the tasks look up by type (`#[state] db: &Db`).
    pub fn state<S: Send + Sync + 'static>(mut self, value: S) -> Self {
        self.registry.insert_state(value);
        self
    }

    /// Adds the diagnostic tasks (`maestro.noop`, `echo`, `sleep`, `fail`).
    pub fn diagnostics(mut self) -> Self {
        for name in [
            "maestro.noop",
            "maestro.echo",
            "maestro.sleep",
            "maestro.fail",
        ] {
            if let Some(t) = Registry::with_diagnostics().get(name) {
                let _ = self.registry.register(t.clone());
            }
        }
        self
    }

    fn set(mut self, id: &'static str, value: impl ToString) -> Self {
        self.settings.retain(|(k, _)| *k != id);
        self.settings.push((id, value.to_string()));
        self
    }

    /// Queues to consume (`-Q`; Celery's `celery` by default).
    pub fn queues<I, S>(self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let list: Vec<String> = queues.into_iter().map(|q| q.as_ref().to_owned()).collect();
        self.set("queues", list.join(","))
    }

    /// Broker URL (`-b`, `CELERY_BROKER_URL`).
    pub fn broker(self, url: &str) -> Self {
        self.set("broker", url)
    }

    /// Result backend: `mongodb://host/db` or `rpc://` (`CELERY_RESULT_BACKEND`).
    pub fn result_backend(self, url: &str) -> Self {
        self.set("result_backend", url)
    }

    /// Tasks run at once (`-c`).
    pub fn concurrency(self, tasks: u32) -> Self {
        self.set("concurrency", tasks)
    }

    /// Messages prefetched per running slot.
    pub fn prefetch_multiplier(self, multiplier: u32) -> Self {
        self.set("prefetch_multiplier", multiplier)
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served (`host:port`).
    pub fn metrics_addr(mut self, addr: &str) -> Self {
        self.defaults.metrics_addr = Some(addr.to_owned());
        self
    }

    /// Node name pattern (`%h`, `%n`, `%d`, `%p`).
    pub fn hostname(mut self, pattern: &str) -> Self {
        self.defaults.hostname = pattern.to_owned();
        self
    }

    /// Threads running tasks' async code (one by default).
    pub fn threads(self, threads: usize) -> Self {
        self.set("threads", threads)
    }

    /// Send task and worker events for Flower (`-E`).
    pub fn events(self, on: bool) -> Self {
        self.set("events", on)
    }

    /// The tasks and state as a registry, for [`launch::run`] or [`crate::run`].
    pub fn into_registry(self) -> Result<Registry, DuplicateTask> {
        match self.duplicate {
            Some(e) => Err(e),
            None => Ok(self.registry),
        }
    }

    /// Reads the command line and environment (the runtime's flags, with this worker's
    /// settings as their defaults) and runs until SIGTERM or SIGINT. Call it first in `main`:
    /// the process re-executes itself once to give its threads the stack the runtime needs
    /// ([`launch::guard_stack`]). Exit codes: 0 after a clean stop, 2 for bad flags or
    /// settings, 1 when the worker failed.
    pub fn run(self) -> ExitCode {
        launch::guard_stack();
        let mut cmd = WorkerCli::command().name(self.name);
        for (id, value) in &self.settings {
            let value = value.clone();
            cmd = cmd.mut_arg(*id, |a| a.default_value(value));
        }
        let cli = match cmd
            .try_get_matches()
            .and_then(|m| WorkerCli::from_arg_matches(&m))
        {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        };
        self.run_with(cli.worker, &cli.log)
    }

    /// Runs with flags the application parsed itself (a `WorkerArgs` flattened into its own
    /// `clap` command); settings made in code other than the node name and the metrics
    /// address are the flags' to give then.
    pub fn run_with(self, args: WorkerArgs, log: &LogArgs) -> ExitCode {
        let name = self.name;
        let defaults = self.defaults.clone();
        let registry = match self.into_registry() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::from(2);
            }
        };
        launch::run(
            name,
            log,
            args,
            defaults,
            move || async move { Ok(registry) },
        )
    }
}
