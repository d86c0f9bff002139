//! The pipeline: one delivery into at most one task run and exactly one settlement.
//!
//! [`process`] reads as the whole story. `admit` decides whether the delivery runs at all,
//! in order: its size and decoding and whether its task is known (else dead-lettered), its
//! expiry (REVOKED), an early `eta` (moved into the delay queues), `celery.chord_unlock`
//! (run here), a revocation by remote control, an id that already succeeded (acknowledged,
//! not run again), STARTED when tracked. `execute` runs the task and records its outcome
//! (result, retry message, follow-ups). Every path ends in one [`Disposition`], and
//! `process` settles the delivery with it in one place, after the outcome is recorded; with
//! `--acks-late false` it is acknowledged before the run instead, as Celery does.
//!
//! Size: every await is a state of the one future each delivery gets (allocated and copied
//! once per message), so what waits on the store or the broker for some messages only
//! (revocations, early ETAs, duplicates, failures, retries, events, follow-ups, result writes)
//! is boxed where it is called. That keeps `admit` at 1.9 KB (5.7 KB before) and the outcome's
//! recording at 1.3 KB (5.6 KB) in a release build.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use lapin::message::Delivery;
use maestro_broker::dead_letter::DeadReason;
use maestro_broker::message::format_time;
use maestro_broker::{TaskMessage, TaskState, delay};
use maestro_tasks::Task;
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::canvas::{self, CHORD_UNLOCK};
use crate::metrics::TaskOutcome;
use crate::outcome;
use crate::results::{has_succeeded, record_state};
use crate::retry::delay_early;
use crate::run::{self, Outcome};
use crate::session::{Received, Session};
use crate::settle::{Disposition, settle};
use crate::stats::{TaskInfo, WorkerState};
use crate::triage::{Unrunnable, triage_accepting};

/// Longest argument text kept for `inspect active`, bytes.
const ACTIVE_ARGS_BYTES_MAX: usize = 1024;

/// Processes one delivery from `queue`. A concurrency slot is taken only once the task is to
/// run (after the checks, and after its rate limit's wait): dead letters, expiry and early ETA
/// moves are bounded by the prefetch window alone and never hold up runnable tasks, and a task
/// waiting for a slot is listed as reserved.
pub(crate) async fn process(s: Arc<Session>, queue: Arc<str>, delivery: Delivery) {
    let d = Received::new(queue, delivery);
    let token = s.acker.token(d.tag);
    if d.redelivered {
        s.state.metrics.redelivered(&d.queue);
    }
    let how = match admit(&s, &d).await {
        Admission::Settle(how) => how,
        Admission::Run(job) if !job.task.options().acks_late.unwrap_or(s.cfg.acks_late) => {
            // Acks early (Celery's acks_late=False): the delivery is done before the task
            // runs; its outcome is still recorded, but a crash mid-run loses the task.
            settle(&s, &d, token, Disposition::Ack).await;
            execute(&s, &d, job).await;
            return;
        }
        Admission::Run(job) => execute(&s, &d, job).await,
    };
    settle(&s, &d, token, how).await;
}

/// What `admit` decided.
enum Admission {
    /// Not run: settle it so.
    Settle(Disposition),
    /// Run it.
    Run(Box<Job>),
}

/// A delivery that runs: its message, its task, its concurrency slot and its reservation.
struct Job {
    msg: TaskMessage,
    task: Arc<dyn Task>,
    slot: OwnedSemaphorePermit,
    reserved: Reserved,
}

/// A task listed as reserved (`inspect reserved`) until it runs or is settled otherwise.
struct Reserved {
    state: Arc<WorkerState>,
    /// The reserved task's record; `None` once it started.
    info: Option<Arc<TaskInfo>>,
}

impl Reserved {
    /// The task starts: its record moves from the reserved to the active list; the token
    /// that terminates it.
    fn start(mut self) -> CancellationToken {
        match self.info.take() {
            Some(info) => self.state.started(info),
            // Not reachable: `start` takes the reservation, and only it empties `info`.
            None => CancellationToken::new(),
        }
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Some(info) = &self.info {
            self.state.unreserve(&info.id);
        }
    }
}

/// The checks before a run (see the module docs), then the wait for a concurrency slot.
async fn admit(s: &Arc<Session>, d: &Received) -> Admission {
    // Python clients send celery.chord_unlock for chords on the MongoDB backend; it is run
    // here (after the expiry and ETA checks below) unless a task of that name is registered.
    let runnable =
        |name: &str| s.registry.get(name).is_some() || (name == CHORD_UNLOCK && s.store.is_some());
    let mut msg = match triage_accepting(
        &d.properties,
        &d.data,
        s.cfg.max_body_bytes,
        &s.cfg.accept,
        runnable,
    ) {
        Ok(msg) => msg,
        Err(Unrunnable { reason, detail }) => {
            return Admission::Settle(Disposition::DeadLetter { reason, detail });
        }
    };
    let h = &msg.headers;
    let now = Utc::now();
    if h.expires.is_some_and(|exp| exp <= now) {
        info!(event = "task_expired", task = %h.task, id = %h.id, "expired before it ran: REVOKED");
        return Admission::Settle(Box::pin(outcome::revoked(s, &d.queue, &msg, true)).await);
    }
    if let Some(wait_secs) = h.eta.and_then(|eta| delay::delay_until(eta, now)) {
        // Early: into the delay queues, never held here.
        return Admission::Settle(Box::pin(delay_early(s, d, &msg, wait_secs)).await);
    }
    let Some(task) = s.registry.get(&h.task).cloned() else {
        return Admission::Settle(Box::pin(canvas::chord_unlock(s, &d.queue, &msg)).await);
    };
    hide_credentials(task.as_ref(), &mut msg);
    let options = task.options();
    if options.ignore_result == Some(true) {
        msg.headers.ignore_result = true;
    }
    let h = &msg.headers;
    let info = Arc::new(TaskInfo {
        id: Arc::from(h.id.as_str()),
        name: h.task.clone(),
        args: h.argsrepr.clone().unwrap_or_else(|| clip(msg.args.get())),
        kwargs: h
            .kwargsrepr
            .clone()
            .unwrap_or_else(|| clip(msg.kwargs.get())),
        queue: d.queue.clone(),
        redelivered: d.redelivered,
        stamps: h.stamps.clone(),
    });
    s.state.reserve(info.clone());
    let reserved = Reserved {
        state: s.state.clone(),
        info: Some(info),
    };
    if let Some(ev) = s.task_events() {
        ev.task(
            "task-received",
            &h.id,
            json!({
                "name": h.task, "args": h.argsrepr.as_deref().unwrap_or(msg.args.get()),
                "kwargs": h.kwargsrepr.as_deref().unwrap_or(msg.kwargs.get()), "root_id": h.root_id,
                "parent_id": h.parent_id, "retries": h.retries,
                "eta": h.eta.map(format_time), "expires": h.expires.map(format_time),
            }),
        )
        .await;
    }
    if s.state.is_revoked(&h.id) || s.state.is_revoked_by_stamps(&h.stamps) {
        info!(event = "task_revoked", task = %h.task, id = %h.id, "revoked by remote control: not run");
        return Admission::Settle(Box::pin(outcome::revoked(s, &d.queue, &msg, false)).await);
    }
    if !h.ignore_result && (s.cfg.check_every_delivery || d.redelivered) {
        // Idempotency: an id that already succeeded (a duplicate publish, a redelivery after
        // a crash between storing and acking) is acknowledged and not run again.
        match has_succeeded(s, &h.id).await {
            Ok(true) => {
                info!(event = "task_duplicate", task = %h.task, id = %h.id, "already succeeded; not run again");
                s.state
                    .metrics
                    .task_outcome(&d.queue, &h.task, TaskOutcome::Duplicate);
                return Admission::Settle(Box::pin(resend_follow_ups(s, &msg)).await);
            }
            Ok(false) => {}
            Err(e) => {
                warn!(event = "result_store_unavailable", id = %h.id, error = %e, "requeued");
                return Admission::Settle(Disposition::Requeue);
            }
        }
    }
    if options.track_started.unwrap_or(s.cfg.track_started) {
        let started = json!({"pid": std::process::id(), "hostname": &*s.hostname});
        if record_state(s, &d.queue, &msg, TaskState::Started, &started, None)
            .await
            .is_err()
        {
            return Admission::Settle(Disposition::Requeue);
        }
    }
    if let Some(detail) = redelivered_too_often(s, d, &msg).await {
        warn!(event = "poison_message", task = %h.task, id = %h.id, detail, "dead-lettered");
        return Admission::Settle(Disposition::DeadLetter {
            reason: DeadReason::RedeliveredTooOften,
            detail,
        });
    }
    if let Some(limit) = s
        .state
        .rates
        .limit_for(&msg.headers.task, options.rate_limit)
        && !rate_limited(s, &msg, limit).await
    {
        return Admission::Settle(Disposition::Requeue);
    }
    // A worker stopping runs no more: what waits for a slot then goes back to the queue.
    let slot = tokio::select! {
        biased;
        _ = s.state.stop.cancelled() => return Admission::Settle(Disposition::Requeue),
        _ = s.abort.cancelled() => return Admission::Settle(Disposition::Requeue),
        p = s.slots.clone().acquire_owned() => match p {
            Ok(p) => p,
            Err(_) => return Admission::Settle(Disposition::Requeue),
        },
    };
    Admission::Run(Box::new(Job {
        msg,
        task,
        slot,
        reserved,
    }))
}

/// Waits for the task's next start under its rate limit (holding no concurrency slot, which
/// is taken after); false when the worker stops meanwhile.
async fn rate_limited(s: &Session, msg: &TaskMessage, limit: maestro_tasks::RateLimit) -> bool {
    let wait = s.state.rates.reserve(&msg.headers.task, limit);
    if wait.is_zero() {
        return true;
    }
    debug!(event = "task_rate_limited", task = %msg.headers.task, id = %msg.headers.id, wait_secs = wait.as_secs_f64());
    tokio::select! {
        biased;
        _ = s.state.stop.cancelled() => false,
        _ = s.abort.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

/// For a task whose arguments carry credentials (`Task::shown_arguments`): its own reprs
/// replace the producer's, so results, `inspect active` and events never show them.
fn hide_credentials(task: &dyn Task, msg: &mut TaskMessage) {
    let parse = |raw: &serde_json::value::RawValue| serde_json::from_str(raw.get()).ok();
    let (Some(args), Some(kwargs)) = (parse(&msg.args), parse(&msg.kwargs)) else {
        return;
    };
    if let Some((args, kwargs)) = task.shown_arguments(&args, &kwargs) {
        msg.headers.argsrepr = Some(args.to_string());
        msg.headers.kwargsrepr = Some(kwargs.to_string());
    }
}

/// For a redelivered message about to run: why it must not run again, when it was started more
/// than `max_redeliveries` times after its first delivery (each time a worker died with it).
/// Counted only here, just before a run, so messages that were merely prefetched by a worker
/// that died do not count. A store that cannot count lets the message run.
async fn redelivered_too_often(s: &Session, d: &Received, msg: &TaskMessage) -> Option<String> {
    let max = u64::from(s.cfg.max_redeliveries);
    if !d.redelivered || max == 0 {
        return None;
    }
    let store = s.store.as_ref()?;
    let starts = match Box::pin(store.count_redelivered_start(&msg.headers.id)).await {
        Ok(n) => n,
        Err(e) => {
            warn!(event = "redelivery_not_counted", id = %msg.headers.id, error = %e);
            return None;
        }
    };
    (starts > max).then(|| {
        format!(
            "redelivered and started {starts} times, more than MAESTRO_MAX_REDELIVERIES ({max})"
        )
    })
}

/// Runs the task and records its outcome; the delivery's disposition.
async fn execute(s: &Arc<Session>, d: &Received, job: Box<Job>) -> Disposition {
    let Job {
        msg,
        task,
        slot,
        reserved,
    } = *job;
    let queue = &*d.queue;
    debug!(event = "task_started", task = %msg.headers.task, id = %msg.headers.id, retries = msg.headers.retries);
    let started = Instant::now();
    let h = &msg.headers;
    let terminate = reserved.start();
    if let Some(ev) = s.task_events() {
        ev.task("task-started", &h.id, json!({})).await;
    }
    let (outcome, msg) = run::run(s, queue, task.as_ref(), msg, terminate).await;
    // The slot bounds running task code; recording the outcome (a batched result write, the
    // follow-ups) waits on the store and the broker, not on a slot, so other tasks run
    // meanwhile and their results join the same write. Unacknowledged deliveries stay bounded
    // by the prefetch count.
    drop(slot);
    let runtime = started.elapsed();
    s.state.finished(&msg.headers.id, &msg.headers.task);
    if !matches!(outcome, Outcome::Aborted) {
        s.state
            .metrics
            .task_runtime(queue, &msg.headers.task, runtime);
    }
    if let Some(ev) = s.task_events() {
        let (kind, fields) = outcome.event(runtime);
        ev.task(kind, &msg.headers.id, fields).await;
    }
    outcome::record(s, queue, task.as_ref(), &msg, outcome, runtime).await
}

/// For an id that already succeeded: its follow-ups (links, the chain's next step, the chord
/// count) are sent again with the stored result, because a kill between the SUCCESS write and
/// them would otherwise lose them for good. Their ids are fixed, so what was already sent runs
/// once. Requeued when the store or the broker is away.
async fn resend_follow_ups(s: &Arc<Session>, msg: &TaskMessage) -> Disposition {
    let e = &msg.embed;
    let has_follow_ups = e.callbacks.as_ref().is_some_and(|c| !c.is_empty())
        || e.chain.as_ref().is_some_and(|c| !c.is_empty())
        || e.chord.is_some();
    if !has_follow_ups {
        return Disposition::Ack;
    }
    match crate::results::stored_result(s, &msg.headers.id).await {
        Ok(Some(result)) => match canvas::on_success(s, msg, &result).await {
            Ok(()) => {
                info!(event = "follow_ups_resent", id = %msg.headers.id);
                Disposition::Ack
            }
            Err(_) => Disposition::Requeue,
        },
        Ok(None) => Disposition::Ack,
        Err(e) => {
            warn!(event = "result_store_unavailable", id = %msg.headers.id, error = %e, "requeued");
            Disposition::Requeue
        }
    }
}

/// Argument text for `inspect active`, cut to [`ACTIVE_ARGS_BYTES_MAX`] at a char boundary.
fn clip(text: &str) -> String {
    let mut end = text.len().min(ACTIVE_ARGS_BYTES_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
