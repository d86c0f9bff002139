//! The worker runtime: Celery protocol-v2 tasks from RabbitMQ queues, run by Rust code.
//!
//! A task is a typed function; a worker is a few lines; Python Celery clients call it by name
//! (`app.send_task("myapp.slugify", args=["Hello, World"], kwargs={"max_len": 5})`), and Rust
//! code can call it through a typed signature:
//!
//! ```no_run
//! use maestro_worker::prelude::*;
//!
//! /// Lower-case words joined by `-`, at most `max_len` characters.
//! #[task(name = "myapp.slugify", max_retries = 0, rate_limit = "100/s")]
//! async fn slugify(text: String, #[arg(default = 40)] max_len: usize) -> TaskResult<String> {
//!     if max_len == 0 {
//!         return Err(TaskError::value_error("max_len must be at least 1"));
//!     }
//!     let words: Vec<String> = text
//!         .split(|c: char| !c.is_alphanumeric())
//!         .filter(|w| !w.is_empty())
//!         .map(str::to_lowercase)
//!         .collect();
//!     Ok(words.join("-").chars().take(max_len).collect())
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     Worker::new("myapp").task(slugify).queues(["myapp"]).run()
//! }
//!
//! // The function stays plain Rust ...
//! async fn unit_test() {
//!     let slug = slugify::call("Hello, World".into(), 40).await;
//!     assert_eq!(slug, Ok("hello-world".to_owned()));
//! }
//!
//! // ... and its typed signature is what a Rust client sends (`Client::call`).
//! fn signature() -> maestro_worker::tasks::TypedSignature<String> {
//!     slugify::new("Hello, World", 5_usize).queue("myapp")
//! }
//! ```
//!
//! See `docs/writing-tasks.md` for the options, blocking tasks, chords and features.
//!
//! - `app`       [`Worker`]: an application's worker in a few lines (tasks, state, settings)
//! - `config`    [`WorkerArgs`] (flags), [`WorkerConfig`] (the checked configuration)
//! - `builder`   [`WorkerBuilder`]: a configuration made in code, checked as the flags are
//! - `launch`    a worker process from `main`: stack guard, logging, runtime, signals
//! - `worker`    lifecycle: connect, declare, consume, reconnect
//! - `consumer`  one session: channels, prefetch, deliveries to runs, drain on shutdown
//! - `session`   what every run of one connection shares; the delivery as received
//! - `processor` the pipeline: one delivery into one task run and one disposition
//! - `triage`    the pure checks before a run (size, decoding, known task); fuzzed
//! - `run`       one run: context, trace span, time limits, panic capture -> `Outcome`
//! - `outcome`   an outcome into its recorded state and the delivery's disposition
//! - `retry`     the next try: its message, its delay, its delayed publish
//! - `results`   states into the result backend (MongoDB, rpc, none)
//! - `canvas`    links, errbacks, chain steps, chord callbacks, `celery.chord_unlock`
//! - `builtins`  Celery's `celery.map`, `starmap`, `chunks` and `accumulate`
//! - `followup`  what running tasks send (`TaskContext::send`, chords)
//! - `settle`    a disposition carried out: ack, requeue, or dead-letter then ack
//! - `acker`     acks and requeues on the wire, batched
//! - `shutdown`  cancellation: stop taking, drain to one deadline, requeue the rest
//! - `stats`     running tasks, totals, revoked ids, the Lamport clock
//! - `rate`      per-task rate limits
//! - `events`    Celery events (-E) on celeryev
//! - `control`   remote control on celery.pidbox: every command of Celery's worker
//! - `revocations` revoked ids across restarts (`--statedb`) and workers (mingle)
//! - `metrics`   Prometheus metrics and readiness, served on --metrics-addr

mod acker;
mod app;
mod builder;
mod builtins;
mod canvas;
pub mod config;
mod consumer;
mod control;
mod events;
mod followup;
pub mod launch;
mod metrics;
mod outcome;
mod processor;
mod rate;
mod results;
pub mod retry;
mod revocations;
mod run;
mod session;
mod settle;
mod shutdown;
mod stats;
pub mod triage;
mod worker;

pub use app::Worker;
pub use builder::WorkerBuilder;
pub use config::{AppDefaults, ResultBackend, WorkerArgs, WorkerCli, WorkerConfig};
/// The message plane: the Rust client (`broker::client::Client`), signatures, messages.
pub use maestro_broker as broker;
/// Tasks: `#[task]`, the `Task` trait, context, errors, options, registry.
pub use maestro_tasks as tasks;

/// What a worker application needs in scope: `use maestro_worker::prelude::*;`.
pub mod prelude {
    pub use crate::Worker;
    pub use maestro_tasks::{TaskContext, TaskError, TaskOptions, TaskResult, task};
}
pub use maestro_broker::config::ConfigError;
pub use maestro_telemetry::LogArgs;
pub use run::time_limits;
pub use shutdown::Shutdown;
pub use worker::{WorkerError, run};
