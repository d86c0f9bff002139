//! Enqueueing: turns one accepted request into one Celery task message confirmed by the broker.
//!
//! Lifecycle: nothing connects at start-up. A pool (deadpool) of *links*, each one AMQP
//! connection from a `deadpool-lapin` pool with one long-lived confirm-mode channel on it, is
//! filled on demand. A publish borrows a link only long enough to clone its channel handle,
//! so any number of publishes are in flight on each channel and each request awaits only its
//! own confirm (pipelined confirms, never a channel per request). A link whose connection or
//! channel died fails its recycle check and is replaced on the next borrow, so the API
//! recovers by itself when the broker comes back; while it is away, a publish fails fast and
//! the request gets 503.
//!
//! Before the first publish to a queue, Celery's topology for it (durable direct exchange `Q`,
//! durable queue `Q`, binding `Q`) is declared once and remembered. Messages are published
//! `mandatory` to exchange `Q` with routing key `Q`: a message no queue takes comes back as an
//! error, the declaration is forgotten and made again, and the publish is tried once more.
//! Transient failures are retried (with backon) a few times within the publish deadline, with
//! the same task id, so a retry that duplicates a message the broker did take is one task run
//! (workers skip an id that already succeeded).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use deadpool::managed::{self, Metrics as PoolMetrics, RecycleError, RecycleResult};
use deadpool::{Runtime, managed::Timeouts};
use lapin::ConnectionProperties;
use lapin::types::LongString;
use maestro_broker::connection::{BrokerUrls, redact};
use maestro_broker::topology::{QueueType, TaskQueue, declare_task_queue};
use maestro_broker::{BrokerError, Publisher, TaskMessage};
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::trace::TraceHeaders;

/// Attempts of one publish (the first and the retries) within the publish deadline.
pub(crate) const PUBLISH_ATTEMPTS_MAX: usize = 3;
/// First pause before a retry; doubles.
pub(crate) const PUBLISH_RETRY_DELAY_MIN: Duration = Duration::from_millis(50);

/// Why a task was not enqueued. Nothing was confirmed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("cannot reach the broker: {0}")]
    Connect(String),
    #[error("{0}")]
    Broker(#[from] BrokerError),
    #[error("the broker did not confirm within {0:?}")]
    Timeout(Duration),
    #[error("the message could not be built: {0}")]
    Message(String),
}

impl EnqueueError {
    fn is_retryable(&self) -> bool {
        match self {
            EnqueueError::Connect(_) => true,
            EnqueueError::Broker(e) => {
                e.is_retryable() || matches!(e, BrokerError::Unroutable { .. })
            }
            EnqueueError::Timeout(_) | EnqueueError::Message(_) => false,
        }
    }
}

/// One connection and its confirm channel.
pub(crate) struct Link {
    conn: deadpool_lapin::Connection,
    publisher: Publisher,
}

/// deadpool manager of links: borrows a connection from a `deadpool-lapin` pool (one pool per
/// broker URL, tried round robin from the next node on, so links spread over a cluster's nodes
/// and a dead node is skipped) and opens a confirm channel on it; a link is reused while both
/// are open.
pub(crate) struct LinkManager {
    connections: Vec<deadpool_lapin::Pool>,
    urls: BrokerUrls,
    /// Declare Celery's event exchange on each new link (`task-sent` events are on).
    events: bool,
}

impl managed::Manager for LinkManager {
    type Type = Link;
    type Error = EnqueueError;

    async fn create(&self) -> Result<Link, EnqueueError> {
        let n = self.connections.len();
        let start = self.urls.take_start();
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            match self.connections[i].get().await {
                Ok(conn) => {
                    let publisher = Publisher::open(&conn).await?;
                    if self.events {
                        publisher.declare_event_exchange().await?;
                    }
                    info!(event = "broker_link_opened", node = %redact(&self.urls.lapin_urls()[i]));
                    return Ok(Link { conn, publisher });
                }
                Err(e) => last = Some(EnqueueError::Connect(pool_error(&e))),
            }
        }
        Err(last.unwrap_or_else(|| EnqueueError::Connect("no broker URL".into())))
    }

    async fn recycle(&self, link: &mut Link, _: &PoolMetrics) -> RecycleResult<EnqueueError> {
        if link.conn.status().connected() && link.publisher.is_open() {
            Ok(())
        } else {
            warn!(event = "broker_link_lost");
            Err(RecycleError::message(
                "connection or confirm channel closed",
            ))
        }
    }
}

fn pool_error<E: std::fmt::Display>(e: &managed::PoolError<E>) -> String {
    match e {
        managed::PoolError::Timeout(_) => "timed out connecting to the broker".into(),
        managed::PoolError::Backend(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// What to enqueue.
#[derive(Debug, Clone)]
pub struct Job {
    pub task: String,
    pub queue: String,
    /// A JSON array.
    pub args: Value,
    /// A JSON object.
    pub kwargs: Value,
    pub eta: Option<DateTime<Utc>>,
    pub expires: Option<DateTime<Utc>>,
    pub trace: TraceHeaders,
    /// The enqueue's span, whose id `trace` carries when spans are exported (else `none`).
    pub span: tracing::Span,
}

/// Publishes task messages with confirms; see the module docs.
pub struct Enqueuer {
    links: managed::Pool<LinkManager>,
    declared: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
    queue_type: QueueType,
    deadline: Duration,
    origin: String,
    /// This producer's node name in `task-sent` events, when they are on.
    sent_events: Option<String>,
    metrics: Arc<Metrics>,
}

impl Enqueuer {
    /// A publisher for `urls` with up to `connections` connections (per node); one enqueue
    /// takes at most `deadline`. Connects on first use.
    pub fn new(
        urls: &BrokerUrls,
        connections: usize,
        queue_type: QueueType,
        deadline: Duration,
        sent_events: bool,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let timeouts = Timeouts {
            wait: Some(deadline),
            create: Some(deadline),
            recycle: Some(deadline),
        };
        // With several nodes, one that does not answer must leave time for the others.
        let per_node = Timeouts {
            wait: Some(deadline / urls.len() as u32),
            create: Some(deadline / urls.len() as u32),
            recycle: Some(deadline),
        };
        let connections_pools = urls
            .lapin_urls()
            .iter()
            .map(|url| {
                deadpool_lapin::Config {
                    url: Some(url.clone()),
                    pool: Some(deadpool_lapin::PoolConfig {
                        max_size: connections,
                        timeouts: per_node,
                        queue_mode: Default::default(),
                    }),
                }
                .create_pool(connection_properties, deadpool_lapin::Runtime::Tokio1)
                .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let links = managed::Pool::builder(LinkManager {
            connections: connections_pools,
            urls: urls.clone(),
            events: sent_events,
        })
        .max_size(connections)
        .timeouts(timeouts)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| e.to_string())?;
        let host = maestro_broker::config::host_name();
        Ok(Self {
            links,
            declared: Mutex::new(HashMap::new()),
            queue_type,
            deadline,
            origin: format!("maestro-api@{host}"),
            sent_events: sent_events.then(|| format!("maestro-api@{host}")),
            metrics,
        })
    }

    /// Builds the message for `job`, publishes it and waits for the broker's confirm. Returns
    /// the task id.
    pub async fn enqueue(&self, job: &Job) -> Result<String, EnqueueError> {
        let msg = self.message(job)?;
        let id = msg.headers.id.clone();
        let started = Instant::now();
        let attempt = || async { self.publish_once(&job.queue, &msg).await };
        let outcome = tokio::time::timeout(
            self.deadline,
            attempt
                .retry(
                    ExponentialBuilder::default()
                        .with_min_delay(PUBLISH_RETRY_DELAY_MIN)
                        .with_max_times(PUBLISH_ATTEMPTS_MAX - 1)
                        .with_jitter(),
                )
                .when(EnqueueError::is_retryable)
                .notify(|e, pause| {
                    warn!(event = "publish_retry", queue = %job.queue, error = %e, pause_ms = pause.as_millis() as u64);
                }),
        )
        .await
        .unwrap_or(Err(EnqueueError::Timeout(self.deadline)));
        self.metrics
            .observe_enqueue(&job.queue, outcome.is_ok(), started.elapsed());
        match &outcome {
            Ok(()) => {
                tracing::debug!(event = "enqueued", task = %job.task, id = %id, queue = %job.queue, trace_id = %job.trace.trace_id)
            }
            Err(e) => {
                warn!(event = "enqueue_failed", task = %job.task, id = %id, queue = %job.queue, trace_id = %job.trace.trace_id, error = %e)
            }
        }
        outcome.map(|()| id)
    }

    fn message(&self, job: &Job) -> Result<TaskMessage, EnqueueError> {
        let mut msg = TaskMessage::new(job.task.as_str(), &job.args, &job.kwargs)
            .map_err(|e| EnqueueError::Message(e.to_string()))?;
        msg.headers.eta = job.eta;
        msg.headers.expires = job.expires;
        msg.headers.origin = Some(self.origin.clone());
        msg.headers.extra.insert(
            crate::trace::TRACEPARENT.into(),
            Value::String(job.trace.traceparent.clone()),
        );
        if let Some(state) = &job.trace.tracestate {
            msg.headers.extra.insert(
                crate::trace::TRACESTATE.into(),
                Value::String(state.clone()),
            );
        }
        Ok(msg)
    }

    async fn publish_once(&self, queue: &str, msg: &TaskMessage) -> Result<(), EnqueueError> {
        let publisher = {
            let link = self
                .links
                .get()
                .await
                .map_err(|e| EnqueueError::Connect(pool_error(&e)))?;
            self.declare_once(queue, &link.conn).await?;
            // The link goes back to the pool now: other requests publish on the same channel
            // while this one awaits its confirm.
            link.publisher.clone()
        };
        match publisher.publish_task(queue, queue, msg).await {
            Err(e) if is_missing_topology(&e) => {
                // The queue, its binding or its exchange was deleted behind our back: declare
                // them again on the next attempt.
                self.forget(queue);
                Err(e.into())
            }
            Err(e @ BrokerError::Nacked { .. }) => {
                // Seen on a RabbitMQ cluster: a channel that published to a quorum queue while
                // its leader's node died keeps being refused after a new leader took over. The
                // next attempt opens a fresh channel (the link is recycled once this one is
                // closed); requests publishing on it meanwhile retry too.
                warn!(event = "publisher_reset", queue, error = %e, "closing the channel after a nack");
                publisher.close().await;
                Err(e.into())
            }
            Ok(()) => {
                if let Some(hostname) = &self.sent_events
                    && let Err(e) = publisher
                        .publish_sent_event(hostname, msg, queue, queue, queue)
                        .await
                {
                    // The task went out; only its announcement is lost.
                    warn!(event = "task_sent_event_lost", id = %msg.headers.id, error = %e);
                }
                Ok(())
            }
            other => other.map_err(Into::into),
        }
    }

    async fn declare_once(
        &self,
        queue: &str,
        conn: &lapin::Connection,
    ) -> Result<(), EnqueueError> {
        let cell = {
            let mut declared = self.declared.lock().unwrap_or_else(|p| p.into_inner());
            declared.entry(queue.to_owned()).or_default().clone()
        };
        cell.get_or_try_init(|| async {
            declare_task_queue(conn, &TaskQueue::named(queue, self.queue_type)).await?;
            info!(event = "queue_declared", queue);
            Ok::<(), EnqueueError>(())
        })
        .await?;
        Ok(())
    }

    fn forget(&self, queue: &str) {
        self.declared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(queue);
    }

    /// Whether a link to the broker is open (or can be opened now).
    pub async fn ready(&self, timeout: Duration) -> Result<(), String> {
        match tokio::time::timeout(timeout, self.links.get()).await {
            Ok(Ok(_link)) => Ok(()),
            Ok(Err(e)) => Err(pool_error(&e)),
            Err(_) => Err(format!("no broker connection within {timeout:?}")),
        }
    }

    /// Closes every link (after their outstanding confirms).
    pub fn close(&self) {
        self.links.close();
    }
}

/// A message came back unroutable (no queue bound) or its exchange is gone (404 NOT_FOUND).
fn is_missing_topology(e: &BrokerError) -> bool {
    match e {
        BrokerError::Unroutable { .. } => true,
        BrokerError::Amqp(e) => {
            matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404)
        }
        _ => false,
    }
}

fn connection_properties() -> ConnectionProperties {
    ConnectionProperties::default()
        .with_connection_name(LongString::from("maestro-api"))
        .with_client_property("product".into(), LongString::from("maestro-workers"))
        .with_client_property(
            "version".into(),
            LongString::from(env!("CARGO_PKG_VERSION")),
        )
}
