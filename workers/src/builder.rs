//! [`WorkerBuilder`]: a [`WorkerConfig`] made in code, from the flags' defaults, through the
//! same checks as the flags.

use std::net::SocketAddr;
use std::time::Duration;

use maestro_broker::QueueType;
use maestro_broker::config::ConfigError;

use crate::config::{WorkerArgs, WorkerConfig};

/// Builds a [`WorkerConfig`] in code, from the flags' defaults; [`build`](Self::build) runs
/// the same checks as the flags.
#[derive(Debug, Clone, Default)]
pub struct WorkerBuilder {
    args: WorkerArgs,
}

impl From<WorkerArgs> for WorkerBuilder {
    fn from(args: WorkerArgs) -> Self {
        Self { args }
    }
}

impl WorkerBuilder {
    /// Queues to consume (`-Q`).
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// Broker URL, or several nodes of one cluster separated by `;` (`-b`).
    pub fn broker(mut self, url: impl Into<String>) -> Self {
        self.args.broker.broker = url.into();
        self
    }

    /// Tasks run at once (`-c`).
    pub fn concurrency(mut self, tasks: u32) -> Self {
        self.args.concurrency = tasks;
        self
    }

    /// Messages prefetched per running slot.
    pub fn prefetch_multiplier(mut self, multiplier: u32) -> Self {
        self.args.prefetch_multiplier = multiplier;
        self
    }

    /// Node name pattern (`%h`, `%n`, `%d`, `%p` expand as Celery's `-n`).
    pub fn hostname(mut self, pattern: impl Into<String>) -> Self {
        self.args.hostname = Some(pattern.into());
        self
    }

    /// Result backend: `mongodb://host/db` or `rpc://`.
    pub fn result_backend(mut self, url: impl Into<String>) -> Self {
        self.args.result_backend = Some(secrecy::SecretString::from(url.into()));
        self
    }

    /// Queue of follow-up tasks whose signature names none.
    pub fn default_queue(mut self, queue: impl Into<String>) -> Self {
        self.args.default_queue = queue.into();
        self
    }

    /// Type of the queues the worker declares.
    pub fn queue_type(mut self, queue_type: QueueType) -> Self {
        self.args.queue_type = queue_type;
        self
    }

    /// Hard and soft time limits per task (a message's own `timelimit` wins).
    pub fn time_limits(mut self, hard: Option<Duration>, soft: Option<Duration>) -> Self {
        self.args.time_limit = hard;
        self.args.soft_time_limit = soft;
        self
    }

    /// Acknowledge after the task ran (true) or before it runs (false).
    pub fn acks_late(mut self, late: bool) -> Self {
        self.args.acks_late = late;
        self
    }

    /// Store STARTED before a task runs.
    pub fn track_started(mut self, track: bool) -> Self {
        self.args.track_started = track;
        self
    }

    /// Send Celery events (`-E`).
    pub fn events(mut self, events: bool) -> Self {
        self.args.events = events;
        self
    }

    /// Answer remote control on `celery.pidbox`.
    pub fn remote_control(mut self, enabled: bool) -> Self {
        self.args.remote_control = enabled;
        self
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served; `None` serves nothing.
    pub fn metrics_addr(mut self, addr: Option<SocketAddr>) -> Self {
        self.args.metrics_addr = Some(addr.map_or_else(|| "off".to_owned(), |a| a.to_string()));
        self
    }

    /// How long running tasks get to finish after SIGTERM.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.args.shutdown_grace = grace;
        self
    }

    /// Largest message body accepted; larger ones are dead-lettered.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.args.max_body_bytes = bytes;
        self
    }

    /// First and longest retry delay of a retry without a countdown.
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.args.retry_backoff_min = min;
        self.args.retry_backoff_max = max;
        self
    }

    /// The dead-letter exchange and the queue that keeps what it takes.
    pub fn dead_letter(mut self, exchange: impl Into<String>, queue: impl Into<String>) -> Self {
        self.args.dead_letter_exchange = Some(exchange.into());
        self.args.dead_letter_queue = Some(queue.into());
        self
    }

    /// Prefix of the delay exchanges and queues (kombu's is `celery_delayed`).
    pub fn delay_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.args.delay_prefix = prefix.into();
        self
    }

    /// Checks everything, as the flags are checked.
    pub fn build(self) -> Result<WorkerConfig, ConfigError> {
        self.args.into_config()
    }
}

impl WorkerConfig {
    /// A builder starting from the flags' defaults.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::default()
    }
}

impl Default for WorkerConfig {
    /// The flags' defaults: queue `celery` on `amqp://guest:guest@localhost:5672//`.
    fn default() -> Self {
        WorkerArgs::default()
            .into_config()
            .expect("the flags' defaults are a valid configuration")
    }
}
