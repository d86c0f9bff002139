//! Remote control on `celery.pidbox`, as Celery 5's worker answers it: every command of
//! `celery/worker/control.py` with Celery's reply shape, so `celery inspect`, `celery control`
//! and Flower work against these workers as against Python ones.
//!
//! Declares the fanout exchange `celery.pidbox` and this node's queue
//! `<node>.celery.pidbox` exclusive and auto-deleted (so RabbitMQ 4.x accepts it: not a
//! transient non-exclusive queue), consumes without acks, and answers on the caller's
//! `reply_to` exchange and routing key with `{node: reply}`, the request's ticket and the clock.
//! A command that cannot apply here answers as Celery does where its pool cannot (`{"error":
//! "ValueError('Autoscale not enabled')"}`). Celery's pidbox has no authentication: anyone who
//! may publish to `celery.pidbox` can revoke tasks or stop workers; restrict it with broker
//! permissions, or turn it off with `--remote-control false` (docs/worker.md).
//!
//! This file is long because it answers Celery's forty-odd commands in one place, each a few
//! lines, next to the reply helpers (Python reprs, sets, errors) they share.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use maestro_broker::{BrokerError, TaskState, field};
use maestro_results::ResultStore;
use maestro_tasks::{RateLimit, Registry};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, info, warn};

use crate::config::WorkerConfig;
use crate::events::Events;
use crate::stats::WorkerState;

/// Celery's control exchange and its reply exchange.
pub(crate) const EXCHANGE: &str = "celery.pidbox";
pub(crate) const REPLY_EXCHANGE: &str = "reply.celery.pidbox";

/// Most ids one revoke, terminate or query names; more are ignored.
const IDS_PER_REQUEST_MAX: usize = 10_000;
/// Most slots one `pool_grow` or `pool_shrink` moves, and the most the pool may have.
const POOL_STEP_MAX: usize = 10_000;

/// What remote control changes in a consuming session.
#[derive(Debug, Clone)]
pub(crate) enum ConsumerCommand {
    /// `add_consumer`: declare and consume this queue too.
    Add(String),
    /// `cancel_consumer`: stop consuming this queue.
    Cancel(String),
}

/// What the commands reach besides the worker's state.
pub(crate) struct Control {
    pub(crate) cfg: Arc<WorkerConfig>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) state: Arc<WorkerState>,
    pub(crate) store: Option<ResultStore>,
    pub(crate) events: Option<Events>,
    /// The session's concurrency slots (`pool_grow`, `pool_shrink`).
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) consumers: mpsc::UnboundedSender<ConsumerCommand>,
}

/// Declares this node's pidbox queue and its exchanges; the channel and the consumer of it.
async fn open(conn: &Connection, node: &str) -> Result<(Channel, lapin::Consumer), BrokerError> {
    let ch = conn.create_channel().await?;
    let transient = ExchangeDeclareOptions::default();
    ch.exchange_declare(
        EXCHANGE.into(),
        ExchangeKind::Fanout,
        transient,
        FieldTable::default(),
    )
    .await?;
    ch.exchange_declare(
        REPLY_EXCHANGE.into(),
        ExchangeKind::Direct,
        transient,
        FieldTable::default(),
    )
    .await?;
    let queue = format!("{node}.celery.pidbox");
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongInt(10_000));
    args.insert("x-message-ttl".into(), AMQPValue::LongInt(300_000));
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        },
        args,
    )
    .await?;
    ch.queue_bind(
        queue.as_str().into(),
        EXCHANGE.into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let requests = ch
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((ch, requests))
}

/// The task answering control requests, and its channel.
pub(crate) struct Running {
    task: tokio::task::JoinHandle<()>,
    channel: Channel,
}

impl Running {
    /// Stops answering. With `close`, the channel is closed and its close-ok awaited: a
    /// channel only dropped is closed by lapin while the connection closes, and lapin then
    /// logs a connection error for every clean stop.
    pub(crate) async fn stop(self, close: bool) {
        self.task.abort();
        if close {
            let _ = self.channel.close(200, "worker stopping".into()).await;
        }
    }
}

/// Starts answering control requests for this session; the task ends with the connection.
pub(crate) async fn spawn(conn: &Connection, control: Control) -> Result<Running, BrokerError> {
    let (ch, mut requests) = open(conn, &control.state.hostname).await?;
    let channel = ch.clone();
    let task = tokio::spawn(async move {
        while let Some(Ok(delivery)) = requests.next().await {
            let Ok(request) = serde_json::from_slice::<Value>(&delivery.data) else {
                continue;
            };
            let seen = delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("clock"))
                .and_then(field::as_i64);
            control.state.tick(seen.map(|c| c.max(0) as u64));
            handle(&ch, &control, &request).await;
        }
    });
    Ok(Running { task, channel })
}

/// A command's answer: a reply to send, or none (`shutdown`, a `hello` from itself).
enum Answer {
    Reply(Value),
    Silent,
}

fn ok(text: impl Into<String>) -> Answer {
    Answer::Reply(json!({"ok": text.into()}))
}

fn error(text: impl Into<String>) -> Answer {
    Answer::Reply(json!({"error": text.into()}))
}

/// Ids from an argument Celery sends as one id or a list.
fn ids(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(id)) => vec![id.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .take(IDS_PER_REQUEST_MAX)
            .collect(),
        _ => Vec::new(),
    }
}

/// A set of ids as Python prints one (`{'a', 'b'}`), as Celery's revoke reply shows them.
fn python_set(ids: &[String]) -> String {
    let items: Vec<String> = ids.iter().map(|i| format!("'{i}'")).collect();
    if items.is_empty() {
        "set()".into()
    } else {
        format!("{{{}}}", items.join(", "))
    }
}

async fn handle(ch: &Channel, c: &Control, request: &Value) {
    let state = &c.state;
    if let Some(dest) = request.get("destination").and_then(Value::as_array)
        && !dest
            .iter()
            .any(|d| d.as_str() == Some(state.hostname.as_str()))
    {
        return;
    }
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    let args = request
        .get("arguments")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let answer = command(c, method, &args).await;
    let Answer::Reply(reply) = answer else {
        return;
    };
    let Some(reply_to) = request.get("reply_to") else {
        return;
    };
    let (Some(exchange), Some(key)) = (
        reply_to.get("exchange").and_then(Value::as_str),
        reply_to.get("routing_key").and_then(Value::as_str),
    ) else {
        return;
    };
    let mut headers = FieldTable::default();
    if let Some(ticket) = request.get("ticket").and_then(Value::as_str) {
        headers.insert("ticket".into(), AMQPValue::LongString(ticket.into()));
    }
    headers.insert(
        "clock".into(),
        AMQPValue::LongLongInt(state.tick(None) as i64),
    );
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(1)
        .with_headers(headers);
    let body = serde_json::to_vec(&json!({ state.hostname.clone(): reply })).unwrap_or_default();
    debug!(event = "control_reply", method);
    let _ = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            &body,
            props,
        )
        .await;
}

/// One command, as Celery's worker answers it.
async fn command(c: &Control, method: &str, args: &Value) -> Answer {
    let state = &c.state;
    let cfg = &c.cfg;
    let arg_str = |k: &str| args.get(k).and_then(Value::as_str);
    match method {
        // -- inspect
        "ping" => ok("pong"),
        "clock" => Answer::Reply(json!({"clock": state.tick(None)})),
        "stats" => Answer::Reply(stats(c)),
        "active" => Answer::Reply(state.active_json(truthy(args.get("safe")))),
        "reserved" => Answer::Reply(state.reserved_json()),
        // ETAs wait in the broker's delay queues, never in this worker's memory.
        "scheduled" => Answer::Reply(json!([])),
        "revoked" => Answer::Reply(json!(state.revoked_ids())),
        "query_task" => Answer::Reply(state.query_json(&ids(args.get("ids")))),
        "registered" => Answer::Reply(registered(c, args)),
        "active_queues" => Answer::Reply(active_queues(state)),
        "conf" => Answer::Reply(conf(cfg)),
        "report" => ok(report(cfg)),
        "hello" => hello(c, args),
        "memsample" | "memdump" | "objgraph" => error(format!(
            "NotImplementedError('{method} inspects a Python process; this worker is maestro-worker (Rust)')"
        )),
        // -- control
        "revoke" => revoke(c, &ids(args.get("task_id")), truthy(args.get("terminate"))).await,
        "terminate" => revoke(c, &ids(args.get("task_id")), true).await,
        "revoke_by_stamped_headers" => revoke_by_stamps(c, args),
        "rate_limit" => rate_limit(c, arg_str("task_name"), args.get("rate_limit")),
        "time_limit" => time_limit(c, arg_str("task_name"), args),
        "enable_events" => {
            if state.set_task_events(true) {
                info!(event = "task_events_enabled", "by remote control");
                ok("task events enabled")
            } else {
                ok("task events already enabled")
            }
        }
        "disable_events" => {
            if state.set_task_events(false) {
                info!(event = "task_events_disabled", "by remote control");
                ok("task events disabled")
            } else {
                ok("task events already disabled")
            }
        }
        "heartbeat" => {
            if let Some(ev) = &c.events {
                ev.worker("worker-heartbeat").await;
            }
            Answer::Reply(Value::Null)
        }
        // This worker does not gossip, so it takes part in no election (Celery answers the
        // same when gossip is off).
        "election" => Answer::Reply(Value::Null),
        "shutdown" => {
            let msg = arg_str("msg").unwrap_or("Got shutdown from remote");
            warn!(event = "shutdown_requested", source = "remote control", msg);
            state.stop.cancel();
            Answer::Silent
        }
        "pool_grow" | "pool_shrink" => pool(c, method, args),
        "pool_restart" => error("ValueError('Pool restarts not enabled')"),
        "autoscale" => error("ValueError('Autoscale not enabled')"),
        "add_consumer" => match arg_str("queue") {
            Some(q) => match maestro_broker::topology::validate_queue_name(q) {
                Ok(()) => {
                    let _ = c.consumers.send(ConsumerCommand::Add(q.to_owned()));
                    ok(format!("add consumer {q}"))
                }
                Err(why) => error(format!("ValueError('queue {q:?}: {why}')")),
            },
            None => error(
                "TypeError(\"add_consumer() missing 1 required positional argument: 'queue'\")",
            ),
        },
        "cancel_consumer" => match arg_str("queue") {
            Some(q) => {
                let _ = c.consumers.send(ConsumerCommand::Cancel(q.to_owned()));
                ok(format!("no longer consuming from {q}"))
            }
            None => error(
                "TypeError(\"cancel_consumer() missing 1 required positional argument: 'queue'\")",
            ),
        },
        other => error(format!("No such command: {other}")),
    }
}

/// Celery's `stats`: totals, pool, broker, prefetch and the process's resource use.
fn stats(c: &Control) -> Value {
    let cfg = &c.cfg;
    let broker = cfg.broker.primary();
    json!({
        "total": c.state.totals_json(),
        "pid": std::process::id(),
        "clock": c.state.tick(None).to_string(),
        "uptime": c.state.started.elapsed().as_secs(),
        "pool": {
            "implementation": "maestro-worker (tokio)",
            "max-concurrency": c.state.concurrency(),
            "processes": [std::process::id()],
            "max-tasks-per-child": "N/A",
            "put-guarded-by-semaphore": false,
            "timeouts": [
                cfg.soft_time_limit.map_or(0.0, |d| d.as_secs_f64()),
                cfg.time_limit.map_or(0.0, |d| d.as_secs_f64()),
            ],
            "writes": "N/A",
        },
        "broker": {
            "hostname": broker.authority.host, "userid": broker.authority.userinfo.username,
            "virtual_host": broker.vhost, "port": broker.authority.port, "insist": false,
            "ssl": matches!(broker.scheme, lapin::uri::AMQPScheme::AMQPS), "transport": "amqp",
            "connect_timeout": 10, "transport_options": {}, "login_method": "PLAIN",
            "uri_prefix": null, "heartbeat": 60.0, "failover_strategy": "round-robin",
            "alternates": [],
        },
        "prefetch_count": cfg.prefetch_count,
        "rusage": rusage(),
        "sw_ident": "maestro-worker",
        "sw_ver": env!("CARGO_PKG_VERSION"),
    })
}

/// The process's resource use, as Python's `resource.getrusage` names it (from /proc).
fn rusage() -> Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th
    // and 13th of them, in clock ticks (100 a second on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    let count = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    json!({
        "utime": ticks(11), "stime": ticks(12), "maxrss": kb("VmHWM:"),
        "ixrss": 0, "idrss": 0, "isrss": 0, "minflt": count(7), "majflt": count(9),
        "nswap": 0, "inblock": 0, "oublock": 0, "msgsnd": 0, "msgrcv": 0, "nsignals": 0,
        "nvcsw": kb("voluntary_ctxt_switches:"), "nivcsw": kb("nonvoluntary_ctxt_switches:"),
    })
}

/// Celery's `registered`: task names (Celery's built-ins only with `builtins`), each with
/// the asked attributes (`rate_limit` by default) where it has them.
fn registered(c: &Control, args: &Value) -> Value {
    let builtins = truthy(args.get("builtins"));
    let wanted: Vec<String> = args
        .get("taskinfoitems")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| vec!["rate_limit".into()]);
    let names = c
        .registry
        .names()
        .into_iter()
        .filter(|n| builtins || !n.starts_with("celery."));
    Value::Array(
        names
            .map(|name| {
                let Some(task) = c.registry.get(name) else {
                    return json!(name);
                };
                let o = task.options();
                let rate = c.state.rates.limit_for(name, o.rate_limit);
                let attrs: Vec<String> = wanted
                    .iter()
                    .filter_map(|w| {
                        let value = match w.as_str() {
                            "rate_limit" => rate.map(|r| r.to_string()),
                            "max_retries" => o.max_retries.map(|m| m.to_string()),
                            "time_limit" => o.time_limit.map(|d| d.as_secs_f64().to_string()),
                            "soft_time_limit" => {
                                o.soft_time_limit.map(|d| d.as_secs_f64().to_string())
                            }
                            "queue" => o.queue.clone(),
                            "acks_late" => {
                                o.acks_late.map(|b| if b { "True" } else { "False" }.into())
                            }
                            "ignore_result" => o
                                .ignore_result
                                .map(|b| if b { "True" } else { "False" }.into()),
                            _ => None,
                        }?;
                        Some(format!("{w}={value}"))
                    })
                    .collect();
                if attrs.is_empty() {
                    json!(name)
                } else {
                    json!(format!("{name} [{}]", attrs.join(" ")))
                }
            })
            .collect(),
    )
}

/// kombu's `Queue.as_dict(recurse=True)` of each queue consumed now.
fn active_queues(state: &WorkerState) -> Value {
    Value::Array(
        state
            .queues()
            .iter()
            .map(|q| {
                let arguments = match q.queue_type {
                    maestro_broker::QueueType::Quorum => json!({"x-queue-type": "quorum"}),
                    maestro_broker::QueueType::Classic => Value::Null,
                };
                json!({
                    "name": q.name,
                    "exchange": {"name": q.exchange, "type": "direct", "arguments": null,
                                 "durable": true, "passive": false, "auto_delete": false,
                                 "delivery_mode": null, "no_declare": false},
                    "routing_key": q.routing_key, "queue_arguments": arguments,
                    "binding_arguments": null, "consumer_arguments": null, "durable": true,
                    "exclusive": false, "auto_delete": false, "no_ack": false, "alias": null,
                    "bindings": [], "no_declare": null, "expires": null, "message_ttl": null,
                    "max_length": null, "max_length_bytes": null, "max_priority": null,
                })
            })
            .collect(),
    )
}

/// The settings in Celery's names (passwords hidden), as `inspect conf` shows a Python
/// worker's.
fn conf(cfg: &WorkerConfig) -> Value {
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
    let backend = match &cfg.result_backend {
        crate::config::ResultBackend::None => Value::Null,
        crate::config::ResultBackend::Rpc => json!("rpc://"),
        crate::config::ResultBackend::Store { url } => {
            json!(maestro_broker::connection::redact(url))
        }
    };
    json!({
        "broker_url": cfg.broker_display,
        "result_backend": backend,
        "result_expires": secs(cfg.result_expires),
        "result_extended": cfg.result_extended,
        "task_default_queue": cfg.default_queue,
        "task_acks_late": cfg.acks_late,
        "task_track_started": cfg.track_started,
        "task_time_limit": secs(cfg.time_limit),
        "task_soft_time_limit": secs(cfg.soft_time_limit),
        "worker_concurrency": cfg.concurrency,
        "worker_prefetch_multiplier": cfg.prefetch_count as usize / cfg.concurrency.max(1),
        "worker_send_task_events": cfg.events,
        "worker_enable_remote_control": cfg.remote_control,
        "worker_state_db": cfg.statedb.as_ref().map(|p| p.display().to_string()),
        "worker_disable_prefetch": false,
        "include": [],
    })
}

/// Celery's `report` (its `bugreport()`), for this worker.
fn report(cfg: &WorkerConfig) -> String {
    let backend = match &cfg.result_backend {
        crate::config::ResultBackend::None => "disabled".to_owned(),
        crate::config::ResultBackend::Rpc => "rpc://".to_owned(),
        crate::config::ResultBackend::Store { url } => maestro_broker::connection::redact(url),
    };
    format!(
        "\nsoftware -> maestro-worker:{} (Rust)\nplatform -> system:{} arch:{}\nsettings -> transport:amqp results:{backend}\n\nbroker_url: '{}'\nresult_backend: '{backend}'\ntask_default_queue: '{}'\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        cfg.broker_display,
        cfg.default_queue,
    )
}

/// `hello` (Celery's mingle): a worker starting up sends its revoked ids and asks for ours.
fn hello(c: &Control, args: &Value) -> Answer {
    let from = args.get("from_node").and_then(Value::as_str).unwrap_or("");
    if from == c.state.hostname {
        return Answer::Silent;
    }
    let theirs = ids(args.get("revoked"));
    if !theirs.is_empty() {
        let added = c.state.revoke(&theirs);
        crate::revocations::saved(&c.state, &c.cfg, !added.is_empty());
    }
    info!(event = "mingle_hello", from, "sharing revoked ids");
    Answer::Reply(json!({"revoked": c.state.revoked_ids(), "clock": c.state.tick(None)}))
}

/// Python's truth of an argument: Flower sends `terminate` as `strtobool`'s 1, others `True`.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// `revoke` (and `terminate`): the ids are not run when they arrive, are recorded REVOKED
/// where they have not started anywhere, and with `terminate` the ones running here stop.
async fn revoke(c: &Control, task_ids: &[String], terminate: bool) -> Answer {
    let added = c.state.revoke(task_ids);
    crate::revocations::saved(&c.state, &c.cfg, !added.is_empty());
    info!(event = "tasks_revoked", count = task_ids.len(), terminate);
    if let Some(store) = &c.store {
        for id in task_ids {
            mark_revoked(store, &c.state, id).await;
        }
    }
    if terminate {
        let stopped = c.state.terminate(task_ids);
        if stopped.is_empty() {
            return ok("terminate: tasks unknown");
        }
        info!(event = "tasks_terminated", ids = %stopped.join(","));
        return ok(format!("terminate: {}", stopped.join(", ")));
    }
    ok(format!("tasks {} flagged as revoked", python_set(task_ids)))
}

/// Records REVOKED for an id that has no state yet or is waiting (Celery 5.7 does so, so a
/// client sees the revocation at once): not for one that finished or runs somewhere.
async fn mark_revoked(store: &ResultStore, state: &WorkerState, id: &str) {
    if state
        .query_json(&[id.to_owned()])
        .get(id)
        .is_some_and(|q| q[0] == "active")
    {
        return;
    }
    let current = match store.get(id).await {
        Ok(m) => m.map(|m| m.status),
        Err(e) => {
            warn!(event = "revoke_not_recorded", id, error = %e);
            return;
        }
    };
    if !matches!(
        current.as_deref(),
        None | Some("PENDING" | "RECEIVED" | "RETRY" | "REJECTED")
    ) {
        return;
    }
    let exc = maestro_broker::ExceptionInfo::celery("TaskRevokedError", "revoked");
    let record = maestro_results::TaskRecord::new(id, TaskState::Revoked, exc.to_value());
    if let Err(e) = store.store(&record).await {
        warn!(event = "revoke_not_recorded", id, error = %e);
    }
}

/// `revoke_by_stamped_headers`: tasks whose stamps match are not run (and with `terminate`,
/// the matching ones running here stop).
fn revoke_by_stamps(c: &Control, args: &Value) -> Answer {
    let Some(headers) = args.get("headers").and_then(Value::as_object) else {
        return error(
            "TypeError(\"revoke_by_stamped_headers() missing 1 required positional argument: 'headers'\")",
        );
    };
    c.state.revoke_stamps(headers);
    let shown: Vec<String> = headers
        .iter()
        .map(|(k, v)| format!("'{k}': {}", python_value(v)))
        .collect();
    let shown = format!("{{{}}}", shown.join(", "));
    if truthy(args.get("terminate")) {
        let stopped = c.state.terminate_stamped(headers);
        if stopped.is_empty() {
            return ok(format!("headers {shown} were not terminated"));
        }
        return ok(format!("headers {shown} revoked"));
    }
    ok(format!(
        "headers {shown} flagged as revoked, but not terminated"
    ))
}

/// A JSON value as Python's repr shows it (strings quoted with `'`).
fn python_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(python_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

/// `rate_limit`: replaces a task's rate limit on this worker (`0` or empty: none).
fn rate_limit(c: &Control, task: Option<&str>, limit: Option<&Value>) -> Answer {
    let text = match limit {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let parsed = match text.trim() {
        "" | "0" => None,
        t => match RateLimit::parse(t) {
            Ok(r) => Some(r),
            Err(e) => return error(format!("Invalid rate limit string: ValueError('{e}')")),
        },
    };
    let Some(task) = task.filter(|t| c.registry.get(t).is_some()) else {
        return error("unknown task");
    };
    c.state.rates.set_limit(task, parsed);
    match parsed {
        None => {
            info!(event = "rate_limit_disabled", task, "by remote control");
            ok("rate limit disabled successfully")
        }
        Some(r) => {
            info!(event = "rate_limit_set", task, rate = %r, "by remote control");
            ok("new rate limit set successfully")
        }
    }
}

/// `time_limit`: replaces a task's soft and hard time limits on this worker.
fn time_limit(c: &Control, task: Option<&str>, args: &Value) -> Answer {
    let Some(task) = task.filter(|t| c.registry.get(t).is_some()) else {
        return error("unknown task");
    };
    let secs = |k: &str| {
        args.get(k)
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= 366.0 * 86_400.0)
            .map(Duration::from_secs_f64)
    };
    let (soft, hard) = (secs("soft"), secs("hard"));
    c.state.set_time_limits(task, (hard, soft));
    info!(event = "time_limits_set", task, soft = ?soft, hard = ?hard, "by remote control");
    ok("time limits set successfully")
}

/// `pool_grow` / `pool_shrink`: the number of tasks run at once, changed on this worker.
fn pool(c: &Control, method: &str, args: &Value) -> Answer {
    let n = args
        .get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .min(POOL_STEP_MAX as u64) as usize;
    if method == "pool_grow" {
        if c.state.concurrency() + n > POOL_STEP_MAX {
            return error(format!("ValueError('the pool is at most {POOL_STEP_MAX}')"));
        }
        c.state.set_concurrency(c.state.concurrency() + n);
        c.slots.add_permits(n);
        info!(
            event = "pool_grown",
            by = n,
            concurrency = c.state.concurrency()
        );
        return ok("pool will grow");
    }
    let now = c.state.concurrency();
    if n >= now {
        return error("ValueError('the pool cannot shrink below one slot')");
    }
    c.state.set_concurrency(now - n);
    // Slots taken back as running tasks give theirs up: a running task is never stopped.
    let slots = c.slots.clone();
    tokio::spawn(async move {
        if let Ok(p) = slots.acquire_many_owned(n as u32).await {
            p.forget();
        }
    });
    info!(event = "pool_shrunk", by = n, concurrency = now - n);
    ok("pool will shrink")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_as_celerys() {
        assert_eq!(python_set(&["a".into(), "b".into()]), "{'a', 'b'}");
        assert_eq!(python_set(&[]), "set()");
        assert_eq!(python_value(&json!({"x": 1})), "{\"x\":1}");
        assert_eq!(python_value(&json!(["a", null, true])), "['a', None, True]");
        assert_eq!(ids(Some(&json!("a"))), ["a"]);
        assert_eq!(ids(Some(&json!(["a", 1, "b"]))), ["a", "b"]);
    }

    #[test]
    fn flags_are_true_as_python_reads_them() {
        for yes in [json!(true), json!(1), json!("SIGTERM"), json!([0])] {
            assert!(truthy(Some(&yes)), "{yes}");
        }
        for no in [
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!({}),
            Value::Null,
        ] {
            assert!(!truthy(Some(&no)), "{no}");
        }
        assert!(!truthy(None));
    }
}
