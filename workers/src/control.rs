//! Remote control on `celery.pidbox`, as Celery's: `celery inspect ping`, `inspect active`,
//! `inspect registered`, `inspect stats`, `inspect active_queues`, `control revoke`.
//!
//! Declares the fanout exchange `celery.pidbox` and this node's queue
//! `<node>.celery.pidbox` exclusive and auto-deleted (so RabbitMQ 4.x accepts it: not a
//! transient non-exclusive queue), consumes without acks, and answers on the caller's
//! `reply_to` exchange and routing key with `{node: reply}`, the request's ticket and the clock.

use std::sync::Arc;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use maestro_broker::{BrokerError, field};
use maestro_tasks::Registry;
use serde_json::{Value, json};
use tracing::{debug, info};

use crate::config::WorkerConfig;
use crate::stats::WorkerState;

/// Celery's control exchange and its reply exchange.
pub(crate) const EXCHANGE: &str = "celery.pidbox";
pub(crate) const REPLY_EXCHANGE: &str = "reply.celery.pidbox";

/// Starts answering control requests for this session; the task ends with the connection.
pub(crate) async fn spawn(
    conn: &Connection,
    cfg: Arc<WorkerConfig>,
    registry: Arc<Registry>,
    state: Arc<WorkerState>,
) -> Result<tokio::task::JoinHandle<()>, BrokerError> {
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
    let queue = format!("{}.celery.pidbox", cfg.hostname);
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
    let mut requests = ch
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
    Ok(tokio::spawn(async move {
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
            state.tick(seen.map(|c| c.max(0) as u64));
            handle(&ch, &cfg, &registry, &state, &request).await;
        }
    }))
}

async fn handle(
    ch: &Channel,
    cfg: &WorkerConfig,
    registry: &Registry,
    state: &WorkerState,
    request: &Value,
) {
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
    let reply = match method {
        "ping" => json!({"ok": "pong"}),
        "registered" => json!(registry.names()),
        "active" => state.active_json(),
        "active_queues" => Value::Array(
            cfg.queues
                .iter()
                .map(|q| json!({"name": q.name, "exchange": {"name": q.exchange, "type": "direct"}, "routing_key": q.routing_key,
                    "durable": true, "exclusive": false, "auto_delete": false, "queue_arguments": null}))
                .collect(),
        ),
        "stats" => json!({
            "total": state.totals_json(),
            "pid": std::process::id(),
            "clock": state.tick(None).to_string(),
            "uptime": state.started.elapsed().as_secs(),
            "pool": {"implementation": "maestro-worker (tokio)", "max-concurrency": cfg.concurrency, "processes": [std::process::id()]},
            "prefetch_count": cfg.prefetch_count,
            "broker": {"hostname": cfg.broker.primary().authority.host, "port": cfg.broker.primary().authority.port, "virtual_host": cfg.broker.primary().vhost, "transport": "amqp"},
            "sw_ident": "maestro-worker",
            "sw_ver": env!("CARGO_PKG_VERSION"),
        }),
        "revoke" => {
            let ids: Vec<String> = match args.get("task_id") {
                Some(Value::String(id)) => vec![id.clone()],
                Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                _ => Vec::new(),
            };
            state.revoke(&ids);
            info!(event = "tasks_revoked", count = ids.len(), ids = %ids.join(","));
            json!({"ok": format!("tasks {} flagged as revoked", ids.join(", "))})
        }
        // Another worker starting up (mingle): nothing to share.
        "hello" => return,
        other => json!({"error": format!("No such command: {other}")}),
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
