//! Turns one delivery into one task run and one settlement.
//!
//! Order of checks: size, decode, known task, expiry, early ETA (moved into the delay queues),
//! then the run under its time limits; then the outcome is recorded (result reply, retry
//! message published with confirm) and only after that the delivery is settled. A message
//! that cannot run is copied to the dead-letter exchange with its reason, then acknowledged.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::ExponentialBuilder;
use chrono::Utc;
use futures_util::FutureExt;
use lapin::BasicProperties;
use lapin::message::Delivery;
use maestro_broker::dead_letter::{self, DeadReason};
use maestro_broker::message::{DecodeError, republish_properties};
use maestro_broker::trace::TraceContext;
use maestro_broker::{ExceptionInfo, Publisher, TaskMessage, TaskState, delay, state};
use maestro_results::{ResultStore, StoreError, Stored, TaskRecord};
use maestro_tasks::{Registry, Task, TaskArgs, TaskContext, TaskError};
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use crate::acker::{AckToken, AckerHandle};
use crate::canvas;
use crate::config::{ResultBackend, WorkerConfig};
use crate::events::{Events, now_unix};
use crate::metrics::TaskOutcome;
use crate::stats::{ActiveTask, WorkerState};

/// How long a result write or lookup is retried while MongoDB is away before the delivery is
/// requeued (and the task may run again).
pub const STORE_RETRY_MAX: Duration = Duration::from_secs(60);
/// Celery's chord synchronisation task for backends without native chord support.
pub const CHORD_UNLOCK: &str = "celery.chord_unlock";

/// What every run of one connection shares.
pub struct Session {
    pub cfg: Arc<WorkerConfig>,
    pub registry: Arc<Registry>,
    pub hostname: Arc<str>,
    pub publisher: Publisher,
    pub acker: AckerHandle,
    /// Cancelled when running tasks must be abandoned and requeued.
    pub abort: CancellationToken,
    /// Cancelled when the publishing channel died (the broker closed it): the session
    /// reconnects rather than requeueing every task that needs to publish.
    pub publisher_lost: CancellationToken,
    /// The MongoDB result store, when `--result-backend mongodb://...`.
    pub store: Option<ResultStore>,
    /// The session's connection, for declaring queues follow-ups go to.
    pub conn: Arc<lapin::Connection>,
    /// Running tasks, totals, revoked ids (for remote control and events).
    pub state: Arc<WorkerState>,
    /// Celery events, with `-E`.
    pub events: Option<Events>,
}

impl Session {
    /// Notes a failed publish; a closed publishing channel ends the session.
    /// After a failed publish: when the channel is gone, or the broker refused the message
    /// (nack), the session ends and the worker reconnects. A channel that published to a
    /// quorum queue while its leader's node died can keep being refused after a new leader
    /// took over (seen with RabbitMQ 3.10); a fresh connection and channel are not.
    pub(crate) fn publish_failed(&self, e: &maestro_broker::BrokerError) {
        if !self.publisher.is_open() || matches!(e, maestro_broker::BrokerError::Nacked { .. }) {
            self.publisher_lost.cancel();
        }
    }
}

/// How a run ended.
#[derive(Debug)]
enum Outcome {
    Success(Value),
    Failure {
        exc: ExceptionInfo,
        traceback: Option<String>,
    },
    Retry {
        countdown: Option<Duration>,
        max_retries: Option<u32>,
        exc: ExceptionInfo,
    },
    Reject {
        requeue: bool,
        reason: String,
    },
    /// Shutdown abandoned the run: requeue.
    Aborted,
}

/// Processes one delivery from `queue`. `slot` is the concurrency permit: it is given back as
/// soon as it is clear no task code will run (dead letters, expiry, early ETA moves), so those
/// are bounded by the prefetch window alone and never hold up runnable tasks.
pub async fn process(
    s: Arc<Session>,
    queue: Arc<str>,
    delivery: Delivery,
    slot: OwnedSemaphorePermit,
) {
    let token = s.acker.token(delivery.delivery_tag);
    let Delivery {
        properties,
        data,
        redelivered,
        ..
    } = delivery;
    if redelivered {
        s.state.metrics.redelivered(&queue);
    }

    let mut slot = Some(slot);
    let mut release = || drop(slot.take());
    // Python clients send celery.chord_unlock for chords on the MongoDB backend; it is run
    // here (after the expiry and ETA checks below) unless a task of that name is registered.
    let runnable =
        |name: &str| s.registry.get(name).is_some() || (name == CHORD_UNLOCK && s.store.is_some());
    let msg = match triage(&properties, &data, s.cfg.max_body_bytes, runnable) {
        Ok(msg) => msg,
        Err(Unrunnable { reason, detail }) => {
            release();
            return Box::pin(dead_letter(
                &s,
                &queue,
                &properties,
                &data,
                reason,
                &detail,
                token,
            ))
            .await;
        }
    };
    let task = s.registry.get(&msg.headers.task).cloned();

    let now = Utc::now();
    if msg.headers.expires.is_some_and(|exp| exp <= now) {
        release();
        info!(event = "task_expired", task = %msg.headers.task, id = %msg.headers.id, "expired before it ran: REVOKED");
        return revoked(&s, &queue, &msg, true, token).await;
    }
    if let Some(wait_secs) = msg.headers.eta.and_then(|eta| delay::delay_until(eta, now)) {
        // Early: into the delay queues, never held here.
        release();
        let props = republish_properties(&properties, &[]);
        return match Box::pin(s.publisher.publish_delayed(
            &s.cfg.delay,
            wait_secs,
            &queue,
            props,
            &data,
        ))
        .await
        {
            Ok(()) => {
                debug!(event = "task_delayed", task = %msg.headers.task, id = %msg.headers.id, delay_secs = wait_secs);
                token.ack()
            }
            Err(e) => {
                warn!(event = "delay_failed", task = %msg.headers.task, id = %msg.headers.id, error = %e, "requeued");
                s.publish_failed(&e);
                token.requeue()
            }
        };
    }

    let Some(task) = task else {
        release();
        let how = Box::pin(chord_unlock(&s, &queue, &msg)).await;
        return settle(
            &s,
            &queue,
            &properties,
            &data,
            token,
            how,
            DeadReason::Undecodable,
        )
        .await;
    };
    if let Some(ev) = &s.events {
        let h = &msg.headers;
        ev.task(
            "task-received",
            &h.id,
            json!({
                "name": h.task, "args": h.argsrepr.as_deref().unwrap_or(msg.args.get()),
                "kwargs": h.kwargsrepr.as_deref().unwrap_or(msg.kwargs.get()), "root_id": h.root_id,
                "parent_id": h.parent_id, "retries": h.retries,
                "eta": h.eta.map(maestro_broker::message::format_time),
                "expires": h.expires.map(maestro_broker::message::format_time),
            }),
        )
        .await;
    }
    if s.state.is_revoked(&msg.headers.id) {
        release();
        info!(event = "task_revoked", task = %msg.headers.task, id = %msg.headers.id, "revoked by remote control: not run");
        return revoked(&s, &queue, &msg, false, token).await;
    }
    if let (Some(store), false) = (&s.store, msg.headers.ignore_result) {
        // Idempotency: an id that already succeeded (a duplicate publish, a redelivery after
        // a crash between storing and acking) is acknowledged and not run again.
        match with_store_retry(|| store.has_succeeded(&msg.headers.id)).await {
            Ok(true) => {
                release();
                info!(event = "task_duplicate", task = %msg.headers.task, id = %msg.headers.id, "already succeeded; not run again");
                let m = &s.state.metrics;
                m.task_outcome(&queue, &msg.headers.task, TaskOutcome::Duplicate);
                return token.ack();
            }
            Ok(false) => {}
            Err(e) => {
                release();
                warn!(event = "result_store_unavailable", id = %msg.headers.id, error = %e, "requeued");
                return token.requeue();
            }
        }
    }
    if s.cfg.track_started {
        let started = json!({"pid": std::process::id(), "hostname": &*s.hostname});
        if reply(&s, &queue, &msg, TaskState::Started, &started, None)
            .await
            .is_err()
        {
            release();
            return token.requeue();
        }
    }
    let token = if s.cfg.acks_late {
        Some(token)
    } else {
        token.ack();
        None
    };
    debug!(event = "task_started", task = %msg.headers.task, id = %msg.headers.id, retries = msg.headers.retries);
    let started = Instant::now();
    s.state.started(ActiveTask {
        id: msg.headers.id.clone(),
        name: msg.headers.task.clone(),
        args: msg
            .headers
            .argsrepr
            .clone()
            .unwrap_or_else(|| clip(msg.args.get())),
        kwargs: msg
            .headers
            .kwargsrepr
            .clone()
            .unwrap_or_else(|| clip(msg.kwargs.get())),
        queue: queue.to_string(),
        started_unix: now_unix(),
    });
    if let Some(ev) = &s.events {
        ev.task("task-started", &msg.headers.id, json!({})).await;
    }
    let (outcome, msg) = run(&s, &queue, task.as_ref(), msg).await;
    let runtime = started.elapsed();
    s.state.finished(&msg.headers.id, &msg.headers.task);
    if !matches!(outcome, Outcome::Aborted) {
        s.state
            .metrics
            .task_runtime(&queue, &msg.headers.task, runtime);
    }
    if let Some(ev) = &s.events {
        let (kind, fields) = match &outcome {
            Outcome::Success(v) => (
                "task-succeeded",
                json!({"result": v.to_string(), "runtime": runtime.as_secs_f64()}),
            ),
            Outcome::Failure { exc, traceback } => (
                "task-failed",
                json!({"exception": exc.repr(), "traceback": traceback}),
            ),
            Outcome::Retry { exc, .. } => (
                "task-retried",
                json!({"exception": exc.repr(), "traceback": null}),
            ),
            Outcome::Reject { reason, .. } => {
                ("task-rejected", json!({"requeue": false, "reason": reason}))
            }
            Outcome::Aborted => ("task-rejected", json!({"requeue": true})),
        };
        ev.task(kind, &msg.headers.id, fields).await;
    }
    let how = record(&s, &queue, task.as_ref(), &msg, outcome, runtime).await;
    release();
    if let Some(token) = token {
        settle(
            &s,
            &queue,
            &properties,
            &data,
            token,
            how,
            DeadReason::Rejected,
        )
        .await;
    }
}

/// Why a delivery cannot run at all: the dead-letter reason and its detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrunnable {
    pub reason: DeadReason,
    pub detail: String,
}

/// The checks a delivery goes through before any task code is looked at, in order: its size
/// (more than `max_body_bytes`: oversized), its decoding (content type and encoding:
/// unsupported-content-type; headers and body: undecodable), and whether `runnable` knows its
/// task (unknown-task). Pure: no broker, no I/O, so it is fuzzed and corpus-tested as is.
pub fn triage(
    properties: &BasicProperties,
    data: &[u8],
    max_body_bytes: usize,
    runnable: impl Fn(&str) -> bool,
) -> Result<TaskMessage, Unrunnable> {
    if data.len() > max_body_bytes {
        return Err(Unrunnable {
            reason: DeadReason::Oversized,
            detail: format!(
                "body is {} bytes, more than the limit of {max_body_bytes}",
                data.len()
            ),
        });
    }
    let msg = TaskMessage::decode(properties, data).map_err(|e| Unrunnable {
        reason: match e {
            DecodeError::ContentType(_)
            | DecodeError::ContentEncoding(_)
            | DecodeError::Compression(_) => DeadReason::UnsupportedContentType,
            _ => DeadReason::Undecodable,
        },
        detail: e.to_string(),
    })?;
    if !runnable(&msg.headers.task) {
        return Err(Unrunnable {
            reason: DeadReason::UnknownTask,
            detail: format!(
                "no task named {:?} is registered in this worker",
                msg.headers.task
            ),
        });
    }
    Ok(msg)
}

/// Settles a delivery as `how` says; a dead letter goes out with `dead_reason`.
async fn settle(
    s: &Session,
    queue: &str,
    properties: &BasicProperties,
    data: &[u8],
    token: AckToken,
    how: Settle,
    dead_reason: DeadReason,
) {
    match how {
        Settle::Ack => token.ack(),
        Settle::Requeue => token.requeue(),
        Settle::DeadLetter(detail) => {
            Box::pin(dead_letter(
                s,
                queue,
                properties,
                data,
                dead_reason,
                &detail,
                token,
            ))
            .await
        }
    }
}

/// Records REVOKED for a task that will not run (`expired`, or revoked by remote control),
/// sends its event, and settles the delivery.
async fn revoked(s: &Session, queue: &str, msg: &TaskMessage, expired: bool, token: AckToken) {
    let m = &s.state.metrics;
    m.task_outcome(queue, &msg.headers.task, TaskOutcome::Revoked);
    if let Some(ev) = &s.events {
        let fields = json!({"terminated": false, "signum": null, "expired": expired});
        ev.task("task-revoked", &msg.headers.id, fields).await;
    }
    let exc = ExceptionInfo::celery(
        "TaskRevokedError",
        if expired { "expired" } else { "revoked" },
    );
    match reply(s, queue, msg, TaskState::Revoked, &exc.to_value(), None).await {
        Ok(()) => token.ack(),
        Err(()) => token.requeue(),
    }
}

enum Settle {
    Ack,
    Requeue,
    DeadLetter(String),
}

/// The `(hard, soft)` time limits of a run: the message's own `timelimit`, else the worker's
/// flags; zero means none.
pub fn time_limits(
    h: &maestro_broker::TaskHeaders,
    cfg: &WorkerConfig,
) -> (Option<Duration>, Option<Duration>) {
    let hard = h
        .timelimit
        .hard_secs
        .map(Duration::from_secs_f64)
        .or(cfg.time_limit)
        .filter(|d| !d.is_zero());
    let soft = h
        .timelimit
        .soft_secs
        .map(Duration::from_secs_f64)
        .or(cfg.soft_time_limit)
        .filter(|d| !d.is_zero());
    (hard, soft)
}

/// Runs the task under its time limits; gives the message back for what follows.
async fn run(
    s: &Arc<Session>,
    queue: &str,
    task: &dyn Task,
    mut msg: TaskMessage,
) -> (Outcome, TaskMessage) {
    let h = &msg.headers;
    let (hard, soft) = time_limits(h, &s.cfg);
    let mut ctx = TaskContext::new(h.id.clone(), h.task.clone(), queue, s.hostname.clone());
    ctx.retries = h.retries;
    ctx.root_id = h.root_id.clone();
    ctx.parent_id = h.parent_id.clone();
    ctx.group = h.group.clone();
    ctx.eta = h.eta;
    ctx.expires = h.expires;
    ctx.soft_time_limit = soft;
    ctx.follow_up = Some(Arc::new(crate::followup::SessionFollowUp(s.clone())));
    // This run is a span of the caller's trace; what it sends (follow-ups, callbacks,
    // retries) carries the run's span as parent.
    let parent = TraceContext::from_headers(&msg.headers);
    let (span, exported) = if maestro_telemetry::exporting() {
        let (span, trace) = exported_run_span(&ctx, parent.as_ref());
        ctx.trace = trace;
        (span.clone(), Some(span))
    } else {
        ctx.trace = parent.map(|t| t.child());
        let span = tracing::info_span!(
            "task",
            task = %ctx.name,
            id = %ctx.id,
            trace_id = ctx.trace.as_ref().map(|t| t.trace_id.as_str()),
            span_id = ctx.trace.as_ref().map(|t| t.span_id.as_str()),
        );
        (span, None)
    };
    if let Some(t) = &ctx.trace {
        t.write(&mut msg.headers);
    }
    let empty = || serde_json::value::RawValue::from_string("[]".into()).expect("valid JSON");
    let args = TaskArgs::new(
        std::mem::replace(&mut msg.args, empty()),
        std::mem::replace(&mut msg.kwargs, empty()),
    );

    let guarded = AssertUnwindSafe(run_limited(task, &ctx, &args, hard, soft))
        .catch_unwind()
        .instrument(span);
    let outcome = tokio::select! {
        biased;
        r = guarded => match r {
            Ok(outcome) => outcome,
            Err(panic) => Outcome::Failure {
                exc: ExceptionInfo::builtin("RuntimeError", format!("task panicked: {}", panic_text(&panic))),
                traceback: None,
            },
        },
        _ = s.abort.cancelled() => Outcome::Aborted,
    };
    if let Some(span) = exported {
        let state = match &outcome {
            Outcome::Success(_) => "SUCCESS",
            Outcome::Failure { .. } => "FAILURE",
            Outcome::Retry { .. } => "RETRY",
            Outcome::Reject { .. } => "REJECTED",
            Outcome::Aborted => "ABORTED",
        };
        span.record("state", state);
        if matches!(outcome, Outcome::Failure { .. }) {
            span.record("otel.status_code", "error");
        }
    }
    let (args, kwargs) = args.into_parts();
    msg.args = args;
    msg.kwargs = kwargs;
    (outcome, msg)
}

/// The run's span when spans are exported: a consumer span, child of the message's trace
/// context (or the root of a new trace), whose own id the run's messages carry as parent.
fn exported_run_span(
    ctx: &TaskContext,
    parent: Option<&TraceContext>,
) -> (tracing::Span, Option<TraceContext>) {
    let span = tracing::info_span!(
        "task",
        otel.name = %format_args!("run/{}", ctx.name),
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        task = %ctx.name,
        id = %ctx.id,
        queue = %ctx.queue,
        retries = ctx.retries,
        state = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    let parent_tp = parent.map(TraceContext::traceparent);
    let parent_ts = parent.and_then(|p| p.tracestate.as_deref());
    let trace = maestro_telemetry::start(&span, parent_tp.as_deref(), parent_ts)
        .and_then(|p| TraceContext::parse(&p.traceparent, p.tracestate.as_deref()))
        // Not sampled into a span of its own (the span is disabled): a child id as before.
        .or_else(|| parent.map(TraceContext::child));
    if let Some(t) = &trace {
        span.record("trace_id", t.trace_id.as_str());
        span.record("span_id", t.span_id.as_str());
    }
    (span, trace)
}

async fn run_limited(
    task: &dyn Task,
    ctx: &TaskContext,
    args: &TaskArgs,
    hard: Option<Duration>,
    soft: Option<Duration>,
) -> Outcome {
    let fut = task.run(ctx, args);
    let result = if hard.is_none() && soft.is_none() {
        fut.await
    } else {
        // Timers live in their own allocation, so runs without limits do not carry them.
        match Box::pin(limited(fut, ctx, hard, soft)).await {
            Ok(r) => r,
            Err(hard) => {
                // Celery raises TimeLimitExceeded(limit): its one argument is the limit.
                let mut exc = ExceptionInfo::celery("TimeLimitExceeded", "");
                exc.exc_message = vec![Value::from(hard.as_secs_f64())];
                return Outcome::Failure {
                    exc,
                    traceback: None,
                };
            }
        }
    };
    match result {
        Ok(v) => Outcome::Success(v),
        Err(TaskError::Fail { exc, traceback }) => Outcome::Failure { exc, traceback },
        Err(TaskError::Retry {
            countdown,
            max_retries,
            exc,
        }) => Outcome::Retry {
            countdown,
            max_retries,
            exc,
        },
        Err(TaskError::Reject { requeue, reason }) => Outcome::Reject { requeue, reason },
    }
}

/// Runs `fut` under a soft limit (the context's token is cancelled; the task decides how to
/// stop) and a hard limit (the future is dropped: `Err(limit)`).
async fn limited(
    fut: maestro_tasks::TaskFuture<'_>,
    ctx: &TaskContext,
    hard: Option<Duration>,
    soft: Option<Duration>,
) -> Result<maestro_tasks::TaskResult, Duration> {
    let with_soft = async {
        match soft {
            None => fut.await,
            Some(soft) => {
                tokio::pin!(fut);
                tokio::select! {
                    biased;
                    r = &mut fut => r,
                    _ = tokio::time::sleep(soft) => {
                        ctx.soft_limit_token().cancel();
                        fut.await
                    }
                }
            }
        }
    };
    match hard {
        None => Ok(with_soft.await),
        Some(hard) => tokio::time::timeout(hard, with_soft)
            .await
            .map_err(|_| hard),
    }
}

/// Records the outcome (result reply, retry message) and says how to settle the delivery.
async fn record(
    s: &Session,
    queue: &str,
    task: &dyn Task,
    msg: &TaskMessage,
    outcome: Outcome,
    runtime: Duration,
) -> Settle {
    let h = &msg.headers;
    let runtime_ms = runtime.as_secs_f64() * 1000.0;
    let count = |outcome| s.state.metrics.task_outcome(queue, &h.task, outcome);
    match outcome {
        Outcome::Aborted => {
            info!(event = "task_requeued", task = %h.task, id = %h.id, "abandoned at shutdown; requeued");
            Settle::Requeue
        }
        Outcome::Success(value) => {
            debug!(event = "task_succeeded", task = %h.task, id = %h.id, runtime_ms);
            count(TaskOutcome::Succeeded);
            let recorded = reply(s, queue, msg, TaskState::Success, &value, None).await;
            settle_after(match recorded {
                Ok(()) => canvas::on_success(s, msg, &value).await,
                Err(()) => Err(()),
            })
        }
        Outcome::Failure { exc, traceback } => {
            warn!(event = "task_failed", task = %h.task, id = %h.id, runtime_ms, exception = %exc.repr());
            count(TaskOutcome::Failed);
            let tb = traceback.unwrap_or_else(|| traceback_text(&s.hostname, msg, &exc));
            settle_after(record_failure(s, queue, msg, &exc, &tb).await)
        }
        Outcome::Reject {
            requeue: true,
            reason,
        } => {
            info!(event = "task_rejected", task = %h.task, id = %h.id, requeue = true, reason = %reason);
            count(TaskOutcome::Rejected);
            Settle::Requeue
        }
        Outcome::Reject {
            requeue: false,
            reason,
        } => {
            info!(event = "task_rejected", task = %h.task, id = %h.id, requeue = false, reason = %reason);
            count(TaskOutcome::Rejected);
            Settle::DeadLetter(reason)
        }
        Outcome::Retry {
            countdown,
            max_retries,
            exc,
        } => {
            let limit = max_retries.or(task.max_retries());
            if limit.is_some_and(|max| h.retries >= max) {
                let exc = ExceptionInfo::celery(
                    "MaxRetriesExceededError",
                    format!(
                        "Can't retry {}[{}] args:{} kwargs:{} (after {} retries, last: {})",
                        h.task,
                        h.id,
                        msg.args.get(),
                        msg.kwargs.get(),
                        h.retries,
                        exc.repr()
                    ),
                );
                warn!(event = "task_failed", task = %h.task, id = %h.id, runtime_ms, exception = %exc.repr());
                count(TaskOutcome::Failed);
                let tb = traceback_text(&s.hostname, msg, &exc);
                return settle_after(record_failure(s, queue, msg, &exc, &tb).await);
            }
            count(TaskOutcome::Retried);
            let wait = countdown.unwrap_or_else(|| retry_delay(&s.cfg, h.retries));
            let published = publish_retry(s, queue, msg, wait).await;
            if let Err(e) = published {
                warn!(event = "retry_publish_failed", task = %h.task, id = %h.id, error = %e, "requeued instead");
                s.publish_failed(&e);
                return Settle::Requeue;
            }
            info!(event = "task_retry", task = %h.task, id = %h.id, retries = h.retries + 1,
                delay_secs = wait.as_secs_f64(), exception = %exc.repr());
            let tb = traceback_text(&s.hostname, msg, &exc);
            settle_after(reply(s, queue, msg, TaskState::Retry, &exc.to_value(), Some(&tb)).await)
        }
    }
}

/// The next try of `msg`: retries + 1, `eta` = `now` + `wait`, its parent the try before.
pub fn next_try(msg: &TaskMessage, wait: Duration, now: chrono::DateTime<Utc>) -> TaskMessage {
    let mut next = msg.clone();
    next.headers.retries = msg.headers.retries.saturating_add(1);
    next.headers.eta = Some(now + chrono::Duration::from_std(wait).unwrap_or_default());
    next.headers.parent_id = Some(msg.headers.id.clone());
    next
}

/// Publishes the next try of `msg` (retries + 1, `eta` = now + `wait`) through the delay
/// queues back to `queue`, with confirm.
async fn publish_retry(
    s: &Session,
    queue: &str,
    msg: &TaskMessage,
    wait: Duration,
) -> Result<(), maestro_broker::BrokerError> {
    let next = next_try(msg, wait, Utc::now());
    let wait_secs = wait.as_secs_f64().ceil() as u64;
    if wait_secs == 0 {
        Box::pin(s.publisher.publish_task("", queue, &next)).await
    } else {
        let (props, body) = (next.encode_properties(), next.encode_body());
        Box::pin(
            s.publisher
                .publish_delayed(&s.cfg.delay, wait_secs, queue, props, &body),
        )
        .await
    }
}

/// Celery's `celery.chord_unlock`, which Python clients send for chords when the result
/// backend is MongoDB: fires the callback once every member is ready (through the same claim
/// as the member count, so it fires once however both paths race), else comes back after
/// `interval` seconds.
async fn chord_unlock(s: &Session, queue: &str, msg: &TaskMessage) -> Settle {
    let args = msg.args_vec();
    let kwargs: Value = serde_json::from_str(msg.kwargs.get()).unwrap_or_else(|_| json!({}));
    let group = args.first().and_then(Value::as_str);
    let body = args
        .get(1)
        .and_then(|v| serde_json::from_value::<maestro_broker::Signature>(v.clone()).ok());
    let (Some(group), Some(body)) = (group, body) else {
        return Settle::DeadLetter(
            "celery.chord_unlock without (group_id, callback) arguments".into(),
        );
    };
    let members = match canvas::chord_unlock_members(s, group, &kwargs).await {
        Ok(Some(m)) => m,
        Ok(None) => return Settle::DeadLetter(format!("chord group {group} is unknown")),
        Err(()) => return Settle::Requeue,
    };
    match canvas::try_fire_chord(s, group, &body, &members, msg).await {
        Ok(true) => Settle::Ack,
        Ok(false) => {
            let interval = kwargs
                .get("interval")
                .and_then(Value::as_f64)
                .unwrap_or(1.0)
                .clamp(0.0, 3600.0);
            match publish_retry(s, queue, msg, Duration::from_secs_f64(interval)).await {
                Ok(()) => Settle::Ack,
                Err(e) => {
                    warn!(event = "retry_publish_failed", task = %msg.headers.task, id = %msg.headers.id, error = %e);
                    s.publish_failed(&e);
                    Settle::Requeue
                }
            }
        }
        Err(()) => Settle::Requeue,
    }
}

/// Records a FAILURE, then what follows it (chain failure, errbacks, chord count).
async fn record_failure(
    s: &Session,
    queue: &str,
    msg: &TaskMessage,
    exc: &ExceptionInfo,
    tb: &str,
) -> Result<(), ()> {
    reply(s, queue, msg, TaskState::Failure, &exc.to_value(), Some(tb)).await?;
    canvas::on_failure(s, msg, exc, tb).await
}

/// Argument text for `inspect active`, cut to 1,024 bytes at a char boundary.
fn clip(text: &str) -> String {
    let mut end = text.len().min(1024);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn settle_after(recorded: Result<(), ()>) -> Settle {
    match recorded {
        Ok(()) => Settle::Ack,
        Err(()) => Settle::Requeue,
    }
}

/// The retry delay after `retries` earlier tries: exponential from the minimum, with jitter.
pub fn retry_delay(cfg: &WorkerConfig, retries: u32) -> Duration {
    maestro_tasks::retry_delay(cfg.retry_backoff_min, cfg.retry_backoff_max, retries)
}

/// Records the task's state in the result backend. `Err` when it could not be recorded (the
/// delivery is then requeued rather than acknowledged).
async fn reply(
    s: &Session,
    queue: &str,
    msg: &TaskMessage,
    state: TaskState,
    result: &Value,
    traceback: Option<&str>,
) -> Result<(), ()> {
    if msg.headers.ignore_result {
        return Ok(());
    }
    match &s.cfg.result_backend {
        ResultBackend::None => Ok(()),
        ResultBackend::Mongo { .. } => {
            let Some(store) = &s.store else { return Ok(()) };
            let record = TaskRecord {
                traceback: traceback.map(str::to_owned),
                name: Some(msg.headers.task.clone()),
                args: serde_json::from_str(msg.args.get()).ok(),
                kwargs: serde_json::from_str(msg.kwargs.get()).ok(),
                worker: Some(s.hostname.to_string()),
                retries: msg.headers.retries,
                queue: Some(queue.to_owned()),
                group_id: msg.headers.group.clone(),
                parent_id: msg.headers.parent_id.clone(),
                ..TaskRecord::new(msg.headers.id.clone(), state, result.clone())
            };
            match with_store_retry(|| store.store(&record)).await {
                Ok(Stored::Written) => Ok(()),
                Ok(Stored::AlreadySucceeded) => {
                    info!(event = "result_kept", id = %msg.headers.id, state = state.as_str(), "a SUCCESS was already stored; kept");
                    Ok(())
                }
                Err(e) => {
                    warn!(event = "result_not_recorded", id = %msg.headers.id, state = state.as_str(), error = %e);
                    Err(())
                }
            }
        }
        ResultBackend::Rpc => {
            let Some(reply_to) = msg.properties.reply_to.as_deref().filter(|r| !r.is_empty())
            else {
                return Ok(());
            };
            let body = state::rpc_reply(
                &msg.headers.id,
                state,
                result,
                traceback,
                msg.headers.parent_id.as_deref(),
            );
            let props = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_content_encoding("utf-8".into())
                .with_delivery_mode(1)
                .with_priority(0)
                .with_correlation_id(maestro_broker::field::short(&msg.headers.id));
            // Not mandatory: a caller that stopped waiting has deleted its reply queue.
            Box::pin(s.publisher.publish("", reply_to, props, &body, false)).await.map_err(|e| {
                warn!(event = "result_not_recorded", id = %msg.headers.id, state = state.as_str(), error = %e);
                s.publish_failed(&e);
            })
        }
    }
}

/// Retries a store call with backoff while MongoDB is away, for up to `STORE_RETRY_MAX`.
async fn with_store_retry<T, F, Fut>(call: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    use backon::Retryable;
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .with_total_delay(Some(STORE_RETRY_MAX))
        .without_max_times();
    call.retry(backoff)
        .when(StoreError::is_retryable)
        .notify(|e, wait| warn!(event = "result_store_retry", error = %e, retry_in_ms = wait.as_millis() as u64))
        .await
}

/// Copies the message to the dead-letter exchange with why, then acknowledges it. If the copy
/// is not confirmed the message is requeued, never dropped.
async fn dead_letter(
    s: &Session,
    queue: &str,
    properties: &BasicProperties,
    body: &[u8],
    reason: DeadReason,
    detail: &str,
    token: AckToken,
) {
    let (task, id) = maestro_broker::message::peek_task_and_id(properties);
    let headers = dead_letter::headers(reason, detail, queue, &s.hostname);
    let props = republish_properties(properties, &headers);
    match s
        .publisher
        .publish(&s.cfg.dead_letter_exchange, queue, props, body, true)
        .await
    {
        Ok(()) => {
            s.state.metrics.dead_lettered(queue, reason);
            warn!(
                event = "dead_lettered",
                reason = reason.as_str(),
                queue,
                task = task.as_deref().unwrap_or("?"),
                id = id.as_deref().unwrap_or("?"),
                detail,
                "message cannot run; moved to the dead-letter exchange"
            );
            // Acked, not rejected: a DLX policy on the queue would otherwise dead-letter it twice.
            token.ack();
        }
        Err(e) => {
            warn!(event = "dead_letter_failed", reason = reason.as_str(), queue, error = %e, "requeued");
            s.publish_failed(&e);
            token.requeue();
        }
    }
}

/// A traceback text for Python readers: where and what, since there is no Python stack.
fn traceback_text(hostname: &str, msg: &TaskMessage, exc: &ExceptionInfo) -> String {
    let qualified = if exc.exc_module == "builtins" {
        exc.exc_type.clone()
    } else {
        format!("{}.{}", exc.exc_module, exc.exc_type)
    };
    let message = match exc.exc_message.first() {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    format!(
        "Traceback (most recent call last):\n  maestro-worker {hostname}, task {}[{}]\n{qualified}: {message}\n",
        msg.headers.task, msg.headers.id,
    )
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cfg() -> WorkerConfig {
        crate::config::WorkerCli::try_parse_from(["maestro-worker", "--metrics-addr", "off"])
            .expect("flags")
            .worker
            .into_config()
            .expect("config")
    }

    /// A message claiming u32::MAX retries: its next try overflowed the count (a panic in
    /// debug builds, back to 0 in release), and its retry delay stepped through four billion
    /// backoff values first.
    #[test]
    fn a_message_at_the_retry_count_limit_retries_without_overflow_or_hanging() {
        let cfg = cfg();
        let started = Instant::now();
        let wait = retry_delay(&cfg, u32::MAX);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(wait <= cfg.retry_backoff_max * 2 && wait >= cfg.retry_backoff_min);
        let mut msg =
            TaskMessage::with_id("maestro.echo", "r-1", &json!([]), &json!({})).expect("message");
        msg.headers.retries = u32::MAX;
        let next = next_try(&msg, wait, Utc::now());
        assert_eq!(next.headers.retries, u32::MAX);
        let again = TaskMessage::decode(&next.encode_properties(), &next.encode_body());
        assert_eq!(again.expect("decodes").headers.retries, u32::MAX);
    }

    #[test]
    fn triage_checks_size_then_decoding_then_the_task() {
        let ok =
            TaskMessage::with_id("maestro.echo", "t-1", &json!([1]), &json!({})).expect("message");
        let (props, body) = (ok.encode_properties(), ok.encode_body());
        let known = |n: &str| n == "maestro.echo";
        assert!(triage(&props, &body, 1024, known).is_ok());
        let reason = |r: Result<TaskMessage, Unrunnable>| r.expect_err("unrunnable").reason;
        assert_eq!(
            reason(triage(&props, &body, 4, known)),
            DeadReason::Oversized
        );
        assert_eq!(
            reason(triage(&props, b"{", 1024, known)),
            DeadReason::Undecodable
        );
        assert_eq!(
            reason(triage(&props, &body, 1024, |_| false)),
            DeadReason::UnknownTask
        );
        let pickle = props
            .clone()
            .with_content_type("application/x-python-serialize".into());
        assert_eq!(
            reason(triage(&pickle, &body, 1024, known)),
            DeadReason::UnsupportedContentType
        );
    }
}
