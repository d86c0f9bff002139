//! Health and Prometheus metrics of one worker, served on `--metrics-addr`: `/healthz` (200
//! while the process runs), `/readyz` (200 while a broker session consumes, 503 while
//! connecting, reconnecting or draining at shutdown) and `/metrics` (prefix `maestro_worker`).
//!
//! Lifecycle: `Metrics` is made once per `worker::run` and shared through `WorkerState`; the
//! server runs from before the first connection until `worker::run` returns.
//!
//! Labels stay cheap and bounded: queue and task names are interned once from the
//! configuration and the task registry (`Arc<str>`), so counting a message clones two `Arc`s
//! and allocates nothing; a name outside those sets is counted as `other`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use maestro_broker::dead_letter::DeadReason;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the run time histogram, seconds: from a no-op to a 15-minute report.
const RUNTIME_BUCKETS_SECONDS: [f64; 15] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 900.0,
];
/// The label value of a queue or task name that was not interned.
const OTHER: &str = "other";

/// How a task message ended, as counted in `maestro_worker_tasks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TaskOutcome {
    /// Ran and returned a value.
    Succeeded,
    /// Ran and failed (also past its `max_retries`, or past its hard time limit).
    Failed,
    /// Ran and asked to run again later.
    Retried,
    /// Ran and rejected its message (requeued or dead-lettered).
    Rejected,
    /// Not run: expired, or revoked by remote control.
    Revoked,
    /// Not run: its id already succeeded.
    Duplicate,
}

impl TaskOutcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TaskOutcome::Succeeded => "succeeded",
            TaskOutcome::Failed => "failed",
            TaskOutcome::Retried => "retried",
            TaskOutcome::Rejected => "rejected",
            TaskOutcome::Revoked => "revoked",
            TaskOutcome::Duplicate => "duplicate",
        }
    }
}

impl EncodeLabelValue for TaskOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TaskLabels {
    queue: Arc<str>,
    task: Arc<str>,
    outcome: TaskOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RunLabels {
    queue: Arc<str>,
    task: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct QueueLabels {
    queue: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DeadLabels {
    queue: Arc<str>,
    reason: &'static str,
}

/// Counters of settled deliveries, handed to the acker (it counts once per batch).
#[derive(Debug, Clone, Default)]
pub(crate) struct SettleCounters {
    /// Deliveries acknowledged.
    pub acks: Counter,
    /// Deliveries given back to the queue (`basic.nack requeue=true`).
    pub requeues: Counter,
}

/// The worker's metrics and readiness.
pub(crate) struct Metrics {
    registry: Registry,
    /// The interned names (the configuration's), looked up per message: foldhash.
    queues: foldhash::HashMap<Box<str>, Arc<str>>,
    tasks: foldhash::HashMap<Box<str>, Arc<str>>,
    other: Arc<str>,
    task_outcomes: Family<TaskLabels, Counter>,
    runtime_seconds: Family<RunLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    settled: SettleCounters,
    redeliveries: Family<QueueLabels, Counter>,
    dead_letters: Family<DeadLabels, Counter>,
    reconnects: Counter,
    consuming_gauge: Gauge,
    consuming: AtomicBool,
}

fn runtime_histogram() -> Histogram {
    Histogram::new(RUNTIME_BUCKETS_SECONDS)
}

fn intern<'a>(names: impl IntoIterator<Item = &'a str>) -> foldhash::HashMap<Box<str>, Arc<str>> {
    names
        .into_iter()
        .map(|n| (Box::from(n), Arc::from(n)))
        .collect()
}

impl Metrics {
    /// Metrics labelled with these queue and task names (others count as `other`).
    pub(crate) fn new<'a>(
        queues: impl IntoIterator<Item = &'a str>,
        tasks: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut m = Self {
            registry: Registry::with_prefix("maestro_worker"),
            queues: intern(queues),
            tasks: intern(tasks),
            other: Arc::from(OTHER),
            task_outcomes: Family::default(),
            runtime_seconds: Family::new_with_constructor(runtime_histogram),
            in_flight: Gauge::default(),
            settled: SettleCounters::default(),
            redeliveries: Family::default(),
            dead_letters: Family::default(),
            reconnects: Counter::default(),
            consuming_gauge: Gauge::default(),
            consuming: AtomicBool::new(false),
        };
        let r = &mut m.registry;
        r.register(
            "tasks",
            "Task messages by queue, task and outcome",
            m.task_outcomes.clone(),
        );
        r.register(
            "task_runtime_seconds",
            "Run time of task code by queue and task",
            m.runtime_seconds.clone(),
        );
        r.register("tasks_in_flight", "Tasks running now", m.in_flight.clone());
        r.register("acks", "Deliveries acknowledged", m.settled.acks.clone());
        r.register(
            "requeues",
            "Deliveries given back to the queue",
            m.settled.requeues.clone(),
        );
        r.register(
            "redeliveries",
            "Deliveries the broker marked redelivered, by queue",
            m.redeliveries.clone(),
        );
        r.register(
            "dead_letters",
            "Messages moved to the dead-letter exchange, by queue and reason",
            m.dead_letters.clone(),
        );
        r.register(
            "broker_reconnects",
            "Broker sessions lost (connection or channel failure), each followed by a reconnect",
            m.reconnects.clone(),
        );
        r.register(
            "consuming",
            "1 while a broker session consumes (the readiness of /readyz)",
            m.consuming_gauge.clone(),
        );
        m
    }

    fn queue(&self, name: &str) -> Arc<str> {
        self.queues.get(name).unwrap_or(&self.other).clone()
    }

    fn task(&self, name: &str) -> Arc<str> {
        self.tasks.get(name).unwrap_or(&self.other).clone()
    }

    /// Counts one task message that ended `outcome`.
    pub(crate) fn task_outcome(&self, queue: &str, task: &str, outcome: TaskOutcome) {
        let labels = TaskLabels {
            queue: self.queue(queue),
            task: self.task(task),
            outcome,
        };
        self.task_outcomes.get_or_create(&labels).inc();
    }

    /// Records how long task code ran.
    pub(crate) fn task_runtime(&self, queue: &str, task: &str, runtime: Duration) {
        let labels = RunLabels {
            queue: self.queue(queue),
            task: self.task(task),
        };
        self.runtime_seconds
            .get_or_create(&labels)
            .observe(runtime.as_secs_f64());
    }

    /// Task code started (`true`) or ended (`false`).
    pub(crate) fn task_running(&self, running: bool) {
        if running {
            self.in_flight.inc();
        } else {
            self.in_flight.dec();
        }
    }

    /// Counts a delivery with the redelivered flag set.
    pub(crate) fn redelivered(&self, queue: &str) {
        let labels = QueueLabels {
            queue: self.queue(queue),
        };
        self.redeliveries.get_or_create(&labels).inc();
    }

    /// Counts a message copied to the dead-letter exchange.
    pub(crate) fn dead_lettered(&self, queue: &str, reason: DeadReason) {
        let labels = DeadLabels {
            queue: self.queue(queue),
            reason: reason.as_str(),
        };
        self.dead_letters.get_or_create(&labels).inc();
    }

    /// Counts a broker session lost.
    pub(crate) fn reconnecting(&self) {
        self.reconnects.inc();
    }

    /// The counters the acker adds to.
    pub(crate) fn settle_counters(&self) -> SettleCounters {
        self.settled.clone()
    }

    /// Readiness: whether a broker session consumes now.
    pub(crate) fn set_consuming(&self, consuming: bool) {
        self.consuming.store(consuming, Ordering::Relaxed);
        self.consuming_gauge.set(i64::from(consuming));
    }

    pub(crate) fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed)
    }

    /// The metrics in the Prometheus text format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Marks the session consuming until dropped, whichever way the session ends.
pub(crate) struct ConsumingGuard<'a>(&'a Metrics);

impl<'a> ConsumingGuard<'a> {
    pub(crate) fn new(m: &'a Metrics) -> Self {
        m.set_consuming(true);
        Self(m)
    }
}

impl Drop for ConsumingGuard<'_> {
    fn drop(&mut self) {
        self.0.set_consuming(false);
    }
}

impl maestro_telemetry::Health for Metrics {
    fn render_metrics(&self) -> String {
        self.render()
    }

    fn is_ready(&self) -> bool {
        self.is_consuming()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_interned_and_unknown_names_are_other() {
        let m = Metrics::new(["report"], ["maestro.echo"]);
        m.task_outcome("report", "maestro.echo", TaskOutcome::Succeeded);
        m.task_outcome("report", "maestro.echo", TaskOutcome::Succeeded);
        m.task_outcome("x", "not.registered", TaskOutcome::Revoked);
        m.task_runtime("report", "maestro.echo", Duration::from_millis(3));
        m.dead_lettered("report", DeadReason::UnknownTask);
        m.redelivered("report");
        m.settle_counters().acks.inc_by(3);
        let text = m.render();
        for line in [
            "maestro_worker_tasks_total{queue=\"report\",task=\"maestro.echo\",outcome=\"succeeded\"} 2",
            "maestro_worker_tasks_total{queue=\"other\",task=\"other\",outcome=\"revoked\"} 1",
            "maestro_worker_task_runtime_seconds_count{queue=\"report\",task=\"maestro.echo\"} 1",
            "maestro_worker_dead_letters_total{queue=\"report\",reason=\"unknown-task\"} 1",
            "maestro_worker_redeliveries_total{queue=\"report\"} 1",
            "maestro_worker_acks_total 3",
            "maestro_worker_consuming 0",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
    }

    #[test]
    fn readiness_follows_the_guard() {
        let m = Metrics::new([], []);
        assert!(!m.is_consuming());
        let guard = ConsumingGuard::new(&m);
        assert!(m.is_consuming());
        drop(guard);
        assert!(!m.is_consuming());
    }
}
