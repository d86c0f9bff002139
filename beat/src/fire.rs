//! Firing: each pass reads every schedule and fires what is due.
//!
//! A fire is, in order:
//! 1. a compare-and-set on the schedule document: it matches only if `last_run_at` is still
//!    the value this beat read, no fire is pending, and `beat_epoch` is not newer than this
//!    leader's epoch; it sets `last_run_at` to the slot's due time, `beat_epoch` to this
//!    epoch, adds one to `total_run_count`, and writes the message to send as `beat_pending`;
//! 2. a publish, waiting for the broker's confirm, of a task whose id is derived from
//!    (schedule id, due time);
//! 3. clearing `beat_pending`.
//!
//! Losing step 1 means another beat fired the slot (or a newer leader has written the
//! schedule): nothing is sent. A crash between 1 and 3 leaves `beat_pending`, which the next
//! leader publishes again with the same task id: the slot is sent at least once, and workers
//! run a task id once (they skip an id whose result is SUCCESS).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use lapin::Connection;
use maestro_broker::connection::{BrokerUrls, redact};
use maestro_broker::trace::TraceContext;
use maestro_broker::{Publisher, QueueType, TaskMessage, TaskQueue, topology};
use maestro_results::json_to_bson;
use mongodb::Collection;
use mongodb::bson::{Bson, Document, doc};
use serde_json::Value;
use tracing::Instrument;

use crate::clock::Clock;
use crate::lease::{LeaderWatch, Leadership};
use crate::metrics::Metrics;
use maestro_contract::schedule::{Pending, Plan, Schedule, admit_target, task_id};
use maestro_tasks::RoutingTable;

/// Most slots one schedule may fire in one pass (within the grace, a short interval can have
/// several due).
const MAX_FIRES_PER_PASS: usize = 64;

/// How long a publish (connect, declare, send, confirm) may take before it counts as failed.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long closing the broker connection may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a pass ended early.
#[derive(Debug, thiserror::Error)]
pub enum FireError {
    #[error("schedules: {0}")]
    Store(#[from] mongodb::error::Error),
    #[error("broker: {0}")]
    Broker(#[from] maestro_broker::BrokerError),
    #[error("task message: {0}")]
    Message(String),
    #[error("no broker confirm before the publish deadline")]
    Timeout,
}

/// Firing settings.
#[derive(Debug, Clone)]
pub struct FireConfig {
    /// One URL, or several nodes of one cluster (`;`-separated, tried round robin).
    pub broker: BrokerUrls,
    /// Where a schedule that names no queue sends its task.
    pub routes: RoutingTable,
    /// Queue for schedules that name none and whose task has no route.
    pub default_queue: String,
    /// Fire to any valid queue a schedule names, not only the routing table's.
    pub allow_any_queue: bool,
    /// Fire schedules of the diagnostic tasks.
    pub enable_diagnostics: bool,
    pub queue_type: QueueType,
    /// How late a slot may be and still fire on its own (catch-up policy, see
    /// [`Schedule::plan`]).
    pub grace: Duration,
    /// Written as the messages' `origin`.
    pub origin: String,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub fired: u64,
    pub republished: u64,
    pub cas_skipped: u64,
    pub invalid: u64,
    /// Schedules whose fire failed this pass (left for the next).
    pub failed: u64,
}

struct Broker {
    conn: Connection,
    publisher: Option<Publisher>,
    declared: HashSet<String>,
}

/// The firing side of one beat.
pub struct Firer<C: Clock> {
    schedules: Collection<Document>,
    cfg: FireConfig,
    clock: C,
    metrics: Arc<Metrics>,
    broker: Option<Broker>,
    warned: HashMap<String, String>,
}

enum Outcome {
    Fired,
    Lost,
}

impl<C: Clock> Firer<C> {
    pub fn new(
        schedules: Collection<Document>,
        cfg: FireConfig,
        clock: C,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            schedules,
            cfg,
            clock,
            metrics,
            broker: None,
            warned: HashMap::new(),
        }
    }

    /// Closes the broker connection, giving the broker `CLOSE_TIMEOUT` to answer: a beat that
    /// stops must not wait on a close-ok that never comes (the socket goes with the process).
    pub async fn close(&mut self) {
        if let Some(b) = self.broker.take() {
            let close = async {
                if let Some(p) = &b.publisher {
                    p.close().await;
                }
                let _ = b.conn.close(200, "maestro-beat stopping".into()).await;
            };
            if tokio::time::timeout(CLOSE_TIMEOUT, close).await.is_err() {
                tracing::warn!(
                    event = "broker_close_timeout",
                    "the broker did not answer the close"
                );
            }
        }
    }

    /// One pass over every schedule, firing while `lead` stays valid.
    pub async fn pass(&mut self, lead: &LeaderWatch) -> Result<PassReport, FireError> {
        let mut report = PassReport::default();
        let filter = doc! {"$or": [
            {"enabled": {"$ne": false}, "active": {"$ne": false}},
            {"beat_pending": {"$exists": true}},
        ]};
        let docs: Vec<Document> = self.schedules.find(filter).await?.try_collect().await?;
        let mut seen = HashSet::new();
        for d in &docs {
            if current(lead).is_none() {
                break;
            }
            let admitted = Schedule::from_document(d).and_then(|s| {
                let c = &self.cfg;
                admit_target(
                    &s.target,
                    &c.routes,
                    &c.default_queue,
                    c.allow_any_queue,
                    c.enable_diagnostics,
                )
                .map(|_| s)
            });
            let mut s = match admitted {
                Ok(s) => s,
                Err(e) => {
                    report.invalid += 1;
                    let id = d.get("_id").map(ToString::to_string).unwrap_or_default();
                    let msg = e.to_string();
                    if self.warned.get(&id) != Some(&msg) {
                        tracing::warn!(event = "schedule_invalid", schedule = %id, error = %msg,
                            "schedule skipped until it is fixed");
                        self.warned.insert(id.clone(), msg);
                    }
                    seen.insert(id);
                    continue;
                }
            };
            seen.insert(d.get("_id").map(ToString::to_string).unwrap_or_default());
            if let Err(e) = self.pass_one(&mut s, lead, &mut report).await {
                // One schedule's failure (a queue the broker refuses, a document MongoDB
                // refuses) leaves it for the next pass and does not hold up the others; but
                // with the broker or MongoDB away the rest would only fail the same way.
                report.failed += 1;
                let away = match &e {
                    FireError::Store(e) => store_away(e),
                    FireError::Broker(_) | FireError::Timeout => self.broker.is_none(),
                    FireError::Message(_) => false,
                };
                tracing::warn!(event = "schedule_failed", schedule = %s.id_text, error = %e,
                    "retried next pass");
                if away {
                    break;
                }
            }
        }
        self.warned.retain(|id, _| seen.contains(id));
        self.metrics.invalid_schedules.set(report.invalid as i64);
        Ok(report)
    }

    /// One schedule's part of a pass: republish its abandoned pending fire, or fire its due
    /// slots.
    async fn pass_one(
        &mut self,
        s: &mut Schedule,
        lead: &LeaderWatch,
        report: &mut PassReport,
    ) -> Result<(), FireError> {
        let Some(l) = current(lead) else {
            return Ok(());
        };
        if let Some(p) = s.pending.clone() {
            if !Self::is_abandoned(&p, l) {
                // A newer leader's fire: the fence would refuse it anyway.
                return Ok(());
            }
            match self.republish(s, &p, l).await? {
                Outcome::Fired => report.republished += 1,
                Outcome::Lost => report.cas_skipped += 1,
            }
            return Ok(());
        }
        if !s.enabled {
            return Ok(());
        }
        for _ in 0..MAX_FIRES_PER_PASS {
            let Some(l) = current(lead) else { break };
            match s.plan(self.clock.now(), self.cfg.grace) {
                Plan::Wait => break,
                Plan::Anchor => {
                    self.anchor(s, l).await?;
                    break;
                }
                Plan::Fire { due, skipped } => match self.fire(s, due, l, lead).await? {
                    Outcome::Fired => {
                        report.fired += 1;
                        self.metrics.missed_slots.inc_by(skipped);
                        if skipped > 0 {
                            tracing::info!(event = "catch_up", schedule = %s.id_text,
                                due = %due, skipped, "missed slots run once");
                        }
                        s.last_run_at = Some(due);
                        s.last_run_at_raw = Bson::DateTime(crate::clock::to_bson(due));
                        s.beat_epoch = Some(l.epoch);
                        s.run_immediately = false;
                    }
                    Outcome::Lost => {
                        report.cas_skipped += 1;
                        break;
                    }
                },
            }
        }
        Ok(())
    }

    /// Whether a pending fire was left behind. A leader publishes only before its renew
    /// deadline, which comes before its lease expires, which comes before anyone else leads:
    /// so a fire pending from this epoch (this loop's own failed publish) or an older one is
    /// not being published by anyone now. One from a newer epoch belongs to a newer leader.
    fn is_abandoned(p: &Pending, l: Leadership) -> bool {
        p.epoch.is_none_or(|e| e <= l.epoch)
    }

    fn fence(s: &Schedule, epoch: i64) -> Document {
        doc! {
            "_id": s.id.clone(),
            "$or": [{"beat_epoch": {"$exists": false}}, {"beat_epoch": {"$lte": epoch}}],
        }
    }

    async fn anchor(&self, s: &Schedule, l: Leadership) -> Result<(), FireError> {
        let mut filter = Self::fence(s, l.epoch);
        filter.insert("last_run_at", Bson::Null);
        filter.insert("beat_anchor", doc! {"$exists": false});
        let now = crate::clock::to_bson(self.clock.now());
        self.schedules
            .update_one(
                filter,
                doc! {"$set": {"beat_anchor": now, "beat_epoch": l.epoch}},
            )
            .await?;
        Ok(())
    }

    async fn fire(
        &mut self,
        s: &Schedule,
        due: DateTime<Utc>,
        l: Leadership,
        lead: &LeaderWatch,
    ) -> Result<Outcome, FireError> {
        let id = task_id(&s.id_text, due);
        let pending = Pending {
            task_id: id.clone(),
            due,
            target: s.target.clone(),
            epoch: Some(l.epoch),
            written_at: Some(self.clock.now()),
        };
        let mut filter = Self::fence(s, l.epoch);
        filter.insert("last_run_at", s.last_run_at_raw.clone());
        filter.insert("beat_pending", doc! {"$exists": false});
        let mut update = doc! {
            "$set": {
                "last_run_at": Bson::DateTime(crate::clock::to_bson(due)),
                "beat_epoch": l.epoch,
                "beat_pending": pending_document(&pending),
            },
            "$inc": {"total_run_count": 1},
        };
        if s.run_immediately {
            // Fired once now, as asked: cleared in the same write, so it cannot fire twice.
            update.insert("$unset", doc! {"run_immediately": ""});
        }
        if current(lead).is_none() {
            return Ok(Outcome::Lost);
        }
        let written = self.schedules.update_one(filter, update).await?;
        if written.matched_count == 0 {
            self.metrics.cas_skipped.inc();
            tracing::debug!(event = "fire_cas_lost", schedule = %s.id_text, due = %due);
            return Ok(Outcome::Lost);
        }
        // The slot is ours. If leadership lapsed meanwhile, leave it pending for the next
        // leader rather than publish without a valid lease.
        if current(lead).is_none() {
            return Ok(Outcome::Fired);
        }
        self.send_and_clear(s, &pending, l).await?;
        tracing::info!(event = "fired", schedule = %s.id_text, name = %s.name, due = %due,
            task = %pending.target.task, task_id = %id, epoch = l.epoch);
        Ok(Outcome::Fired)
    }

    async fn republish(
        &mut self,
        s: &Schedule,
        p: &Pending,
        l: Leadership,
    ) -> Result<Outcome, FireError> {
        let mut filter = Self::fence(s, l.epoch);
        filter.insert("beat_pending.task_id", p.task_id.as_str());
        let claimed = self
            .schedules
            .update_one(filter, doc! {"$set": {"beat_epoch": l.epoch}})
            .await?;
        if claimed.matched_count == 0 {
            self.metrics.cas_skipped.inc();
            return Ok(Outcome::Lost);
        }
        self.send_and_clear(s, p, l).await?;
        self.metrics.pending_republished.inc();
        tracing::info!(event = "pending_republished", schedule = %s.id_text, due = %p.due,
            task_id = %p.task_id, epoch = l.epoch);
        Ok(Outcome::Fired)
    }

    async fn send_and_clear(
        &mut self,
        s: &Schedule,
        p: &Pending,
        l: Leadership,
    ) -> Result<(), FireError> {
        if let Err(e) = self.publish(s, p, l).await {
            self.metrics.publish_errors.inc();
            return Err(e);
        }
        let lag = (self.clock.now() - p.due).num_milliseconds().max(0) as f64 / 1000.0;
        self.metrics.fire_lag_seconds.observe(lag);
        self.metrics.fires.inc();
        // If this write is lost the next pass publishes the slot again with the same task id;
        // workers run it once.
        self.schedules
            .update_one(
                doc! {"_id": s.id.clone(), "beat_pending.task_id": p.task_id.as_str()},
                doc! {"$unset": {"beat_pending": ""}},
            )
            .await?;
        Ok(())
    }

    /// Publishes `p`, giving up (leaving it pending) at the leader's renew deadline or after
    /// `PUBLISH_TIMEOUT`, whichever is first: no publish of this leader outlives its lease.
    async fn publish(&mut self, s: &Schedule, p: &Pending, l: Leadership) -> Result<(), FireError> {
        let queue_name = p
            .target
            .queue
            .as_deref()
            .or_else(|| self.cfg.routes.queue_for(&p.target.task))
            .unwrap_or(&self.cfg.default_queue)
            .to_owned();
        let queue = TaskQueue::named(&queue_name, self.cfg.queue_type);
        let mut msg = TaskMessage::with_id(
            &p.target.task,
            p.task_id.clone(),
            &p.target.args,
            &p.target.kwargs,
        )
        .map_err(|e| FireError::Message(e.to_string()))?;
        msg.headers.origin = Some(self.cfg.origin.clone());
        msg.headers.extra.insert(
            "x-maestro-schedule".into(),
            Value::String(s.id_text.clone()),
        );
        msg.headers.extra.insert(
            "x-maestro-due".into(),
            Value::String(maestro_broker::message::format_time(p.due)),
        );
        // When spans are exported, each fire is one (the root of a trace) and the task message
        // names it as parent, so the worker's run joins the trace.
        let span = if maestro_telemetry::exporting() {
            fire_span(s, p, &queue_name)
        } else {
            tracing::Span::none()
        };
        if let Some(t) = maestro_telemetry::start(&span, None, None)
            .and_then(|t| TraceContext::parse(&t.traceparent, t.tracestate.as_deref()))
        {
            t.write(&mut msg.headers);
        }
        let attempt = async {
            let broker = self.broker().await?;
            if !broker.declared.contains(&queue.name) {
                topology::declare_task_queue(&broker.conn, &queue).await?;
                broker.declared.insert(queue.name.clone());
            }
            let publisher = match &broker.publisher {
                Some(p) if p.is_open() => p.clone(),
                _ => {
                    let p = Publisher::open(&broker.conn).await?;
                    broker.publisher = Some(p.clone());
                    p
                }
            };
            publisher
                .publish_task(&queue.exchange, &queue.routing_key, &msg)
                .await
                .map_err(FireError::from)
        };
        let deadline = l
            .valid_until
            .min(tokio::time::Instant::now() + PUBLISH_TIMEOUT);
        let result = match tokio::time::timeout_at(deadline, attempt.instrument(span.clone())).await
        {
            Ok(r) => r,
            Err(_) => {
                // A confirm that does not come is treated as a lost connection.
                self.broker = None;
                Err(FireError::Timeout)
            }
        };
        if let Err(e) = &result {
            span.record("otel.status_code", "error");
            tracing::warn!(event = "publish_failed", schedule = %s.id_text, task_id = %p.task_id,
                error = %e, "left pending; retried next tick");
            // Start afresh next time: the channel (or the connection) may be gone.
            if let Some(b) = &mut self.broker {
                b.publisher = None;
                if !b.conn.status().connected() {
                    self.broker = None;
                }
            }
        }
        result
    }

    async fn broker(&mut self) -> Result<&mut Broker, maestro_broker::BrokerError> {
        let broker = match self.broker.take() {
            Some(b) if b.conn.status().connected() => b,
            _ => {
                let (conn, i) = self.cfg.broker.connect(&self.cfg.origin).await?;
                tracing::info!(event = "broker_connected", broker = %redact(&self.cfg.broker.lapin_urls()[i]));
                Broker {
                    conn,
                    publisher: None,
                    declared: HashSet::new(),
                }
            }
        };
        Ok(self.broker.insert(broker))
    }
}

/// The exported span of one fire (or republish) of `p`: a producer span, like the API's.
/// Whether a MongoDB error says the server is out of reach (not that it refused one document).
fn store_away(e: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    matches!(
        *e.kind,
        ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
    )
}

fn fire_span(s: &Schedule, p: &Pending, queue: &str) -> tracing::Span {
    tracing::info_span!(
        "fire",
        otel.name = %format_args!("apply_async/{}", p.target.task),
        otel.kind = "producer",
        otel.status_code = tracing::field::Empty,
        schedule = %s.id_text,
        task = %p.target.task,
        task_id = %p.task_id,
        queue = %queue,
        due = %p.due,
    )
}

fn current(lead: &LeaderWatch) -> Option<Leadership> {
    lead.borrow().filter(Leadership::is_valid)
}

fn pending_document(p: &Pending) -> Document {
    let mut d = doc! {
        "task_id": p.task_id.as_str(),
        "due": Bson::DateTime(crate::clock::to_bson(p.due)),
        "task": p.target.task.as_str(),
        "args": json_to_bson(&p.target.args),
        "kwargs": json_to_bson(&p.target.kwargs),
    };
    if let Some(e) = p.epoch {
        d.insert("epoch", e);
    }
    if let Some(w) = p.written_at {
        d.insert("written_at", crate::clock::to_bson(w));
    }
    if let Some(q) = &p.target.queue {
        d.insert("queue", q.as_str());
    }
    d
}
