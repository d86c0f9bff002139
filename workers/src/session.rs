//! What every run of one broker session shares, the delivery as it came, and the one rule
//! for a failed publish.
//!
//! Lifecycle: `consumer::consume` makes one `Session` per connection; every delivery's
//! `processor::process` holds an `Arc` of it until the delivery is settled.

use std::sync::Arc;

use lapin::BasicProperties;
use lapin::message::Delivery;
use maestro_broker::{BrokerError, Publisher};
use maestro_results::ResultStore;
use maestro_tasks::Registry;
use tokio_util::sync::CancellationToken;

use crate::acker::AckerHandle;
use crate::config::WorkerConfig;
use crate::events::Events;
use crate::stats::WorkerState;

/// What every run of one connection shares.
pub(crate) struct Session {
    pub(crate) cfg: Arc<WorkerConfig>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) hostname: Arc<str>,
    pub(crate) publisher: Publisher,
    pub(crate) acker: AckerHandle,
    /// Cancelled when running tasks must be abandoned and requeued.
    pub(crate) abort: CancellationToken,
    /// Cancelled when the publishing channel died (the broker closed it): the session
    /// reconnects rather than requeueing every task that needs to publish.
    pub(crate) publisher_lost: CancellationToken,
    /// The MongoDB result store, when `--result-backend mongodb://...`.
    pub(crate) store: Option<ResultStore>,
    /// The session's connection, for declaring queues follow-ups go to.
    pub(crate) conn: Arc<lapin::Connection>,
    /// Running tasks, totals, revoked ids (for remote control and events).
    pub(crate) state: Arc<WorkerState>,
    /// Celery events, with `-E`.
    pub(crate) events: Option<Events>,
    /// Concurrency slots: a run holds one (a rate-limited one gives it back while it waits).
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
}

impl Session {
    /// Where task events go, while they are on (`-E`, or `enable_events` by remote control):
    /// callers build an event's fields only then, not for every message.
    pub(crate) fn task_events(&self) -> Option<&Events> {
        self.events.as_ref().filter(|ev| ev.tasks_on())
    }

    /// After a failed publish: when the channel is gone, or the broker refused the message
    /// (nack), the session ends and the worker reconnects. A channel that published to a
    /// quorum queue while its leader's node died can keep being refused after a new leader
    /// took over (seen with RabbitMQ 3.10); a fresh connection and channel are not.
    pub(crate) fn publish_failed(&self, e: &BrokerError) {
        if !self.publisher.is_open() || matches!(e, BrokerError::Nacked { .. }) {
            self.publisher_lost.cancel();
        }
    }
}

/// One delivery as the broker gave it: what a dead-letter copy or a delayed move republishes.
pub(crate) struct Received {
    /// The queue it was taken from.
    pub(crate) queue: Arc<str>,
    pub(crate) tag: u64,
    pub(crate) properties: BasicProperties,
    pub(crate) data: Vec<u8>,
    pub(crate) redelivered: bool,
}

impl Received {
    pub(crate) fn new(queue: Arc<str>, delivery: Delivery) -> Self {
        let Delivery {
            delivery_tag,
            properties,
            data,
            redelivered,
            ..
        } = delivery;
        Self {
            queue,
            tag: delivery_tag,
            properties,
            data,
            redelivered,
        }
    }
}

/// A step that could not be done now (the broker or the result store is away, or refused):
/// the delivery goes back to the queue. The cause was logged where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unfinished;
