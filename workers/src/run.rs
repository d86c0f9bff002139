//! One run of task code: its context (ids, retries, soft limit, follow-ups), its span in the
//! caller's trace, its time limits and panic capture, into one [`Outcome`].
//!
//! The soft limit cancels the context's token (the task decides how to stop); the hard limit
//! drops the task's future and records `TimeLimitExceeded`; shutdown's abort drops it too and
//! the delivery is requeued.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use maestro_broker::trace::TraceContext;
use maestro_broker::{ExceptionInfo, TaskHeaders, TaskMessage};
use maestro_tasks::{Task, TaskArgs, TaskContext, TaskError, TaskOptions};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::WorkerConfig;
use crate::session::Session;

/// How a run ended.
#[derive(Debug)]
pub(crate) enum Outcome {
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
    /// `revoke(terminate=True)` stopped the run: REVOKED.
    Terminated,
    /// Shutdown abandoned the run: requeue.
    Aborted,
}

impl Outcome {
    /// The Celery event announcing this outcome, and its fields.
    pub(crate) fn event(&self, runtime: Duration) -> (&'static str, Value) {
        match self {
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
            Outcome::Terminated => (
                "task-revoked",
                json!({"terminated": true, "signum": TERMINATE_SIGNUM, "expired": false}),
            ),
            Outcome::Aborted => ("task-rejected", json!({"requeue": true})),
        }
    }
}

/// The signal number `task-revoked` reports for a terminated run (SIGTERM, Celery's default).
pub(crate) const TERMINATE_SIGNUM: i32 = 15;

/// The `(hard, soft)` time limits of a run: the message's own `timelimit`, else the task's
/// (its options, or what `celery control time_limit` set for it), else the worker's flags; zero
/// means none.
pub fn time_limits(
    h: &TaskHeaders,
    options: &TaskOptions,
    cfg: &WorkerConfig,
) -> (Option<Duration>, Option<Duration>) {
    limits_with(h, (options.time_limit, options.soft_time_limit), cfg)
}

fn limits_with(
    h: &TaskHeaders,
    task: (Option<Duration>, Option<Duration>),
    cfg: &WorkerConfig,
) -> (Option<Duration>, Option<Duration>) {
    let hard = h
        .timelimit
        .hard_secs
        .map(Duration::from_secs_f64)
        .or(task.0)
        .or(cfg.time_limit)
        .filter(|d| !d.is_zero());
    let soft = h
        .timelimit
        .soft_secs
        .map(Duration::from_secs_f64)
        .or(task.1)
        .or(cfg.soft_time_limit)
        .filter(|d| !d.is_zero());
    (hard, soft)
}

/// The context of a run of `msg` from `queue`: its ids, retries and the worker's state.
pub(crate) fn context(s: &Session, queue: &str, msg: &TaskMessage) -> TaskContext {
    let h = &msg.headers;
    let mut ctx = TaskContext::new(h.id.clone(), h.task.clone(), queue, s.hostname.clone());
    ctx.retries = h.retries;
    ctx.root_id = h.root_id.clone();
    ctx.parent_id = h.parent_id.clone();
    ctx.group = h.group.clone();
    ctx.eta = h.eta;
    ctx.expires = h.expires;
    ctx.states = s.registry.states().clone();
    ctx
}

/// Runs the task under its time limits; gives the message back for what follows.
pub(crate) async fn run(
    s: &Arc<Session>,
    queue: &str,
    task: &dyn Task,
    mut msg: TaskMessage,
    terminate: CancellationToken,
) -> (Outcome, TaskMessage) {
    let options = task.options();
    let own = s
        .state
        .time_limits(&msg.headers.task)
        .unwrap_or((options.time_limit, options.soft_time_limit));
    let (hard, soft) = limits_with(&msg.headers, own, &s.cfg);
    let mut ctx = context(s, queue, &msg);
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
        _ = terminate.cancelled() => {
            // The run's future is dropped here; code on the blocking pool goes on until it
            // looks at its soft limit, which is now reached.
            ctx.soft_limit_token().cancel();
            Outcome::Terminated
        }
    };
    if let Some(span) = exported {
        let state = match &outcome {
            Outcome::Success(_) => "SUCCESS",
            Outcome::Failure { .. } => "FAILURE",
            Outcome::Retry { .. } => "RETRY",
            Outcome::Reject { .. } => "REJECTED",
            Outcome::Terminated => "REVOKED",
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

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
