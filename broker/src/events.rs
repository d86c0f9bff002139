//! Celery's events on the `celeryev` exchange, as Flower and `celery events` read them: the
//! exchange, publishing one event (what the worker's worker and task events and producers'
//! `task-sent` go through), and the `task-sent` event itself (the `task_send_sent_event`
//! setting: after a producer's task message is confirmed, the producer announces it, so the
//! task is listed as SENT before a worker receives it; maestro-api and
//! [`Client`](crate::client::Client) send it when asked).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use lapin::options::ExchangeDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use serde_json::{Value, json};

use crate::error::BrokerError;
use crate::message::TaskMessage;

/// Celery's event exchange (a durable topic exchange).
pub const EXCHANGE: &str = "celeryev";
/// The routing key of `task-sent` (its type with `-` as `.`).
pub const ROUTING_KEY: &str = "task.sent";

/// This process's Lamport clock for the events it sends.
static CLOCK: AtomicU64 = AtomicU64::new(0);

/// Seconds since the epoch, as events carry them.
pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A producer's node name as Celery's producers name themselves: `gen<pid>@<host>`.
pub fn producer_hostname() -> String {
    format!("gen{}@{}", std::process::id(), crate::config::host_name())
}

/// Declares the event exchange (as Celery's event dispatcher does): publishing to an
/// exchange that does not exist would close the channel.
pub async fn declare_exchange(channel: &Channel) -> Result<(), BrokerError> {
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// The `task-sent` event for `msg`, published to `exchange` with `routing_key` (so into
/// `queue`) by `hostname`, in Celery 5.7's shape. Arguments are the message's reprs
/// (`argsrepr`/`kwargsrepr`) where it has them, as Celery's producer sends them.
pub fn body(
    msg: &TaskMessage,
    hostname: &str,
    queue: &str,
    exchange: &str,
    routing_key: &str,
) -> Value {
    let h = &msg.headers;
    json!({
        "type": "task-sent",
        "uuid": h.id,
        "root_id": h.root_id,
        "parent_id": h.parent_id,
        "name": h.task,
        "args": h.argsrepr.clone().unwrap_or_else(|| msg.args.get().to_owned()),
        "kwargs": h.kwargsrepr.clone().unwrap_or_else(|| msg.kwargs.get().to_owned()),
        "retries": h.retries,
        "eta": h.eta.map(|t| t.to_rfc3339()),
        "expires": h.expires.map(|t| t.to_rfc3339()),
        "queue": queue,
        "exchange": exchange,
        "routing_key": routing_key,
        "hostname": hostname,
        "utcoffset": 0,
        "pid": std::process::id(),
        "clock": CLOCK.fetch_add(1, Ordering::Relaxed) + 1,
        "timestamp": now_unix(),
    })
}

/// Publishes an event body from `hostname` with `routing_key` (the event type with `.`,
/// `task.multi` for a list) on `channel`: transient, not mandatory, and not waited for (an
/// event lost never holds up or fails the task it describes).
pub async fn publish(
    channel: &Channel,
    hostname: &str,
    routing_key: &str,
    body: &Value,
) -> Result<(), BrokerError> {
    let mut headers = FieldTable::default();
    headers.insert("hostname".into(), AMQPValue::LongString(hostname.into()));
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(1)
        .with_priority(0)
        .with_headers(headers);
    let payload = serde_json::to_vec(body).unwrap_or_default();
    // The confirm (on a confirming channel) is not awaited: dropping it is allowed.
    let _confirm = channel
        .basic_publish(
            EXCHANGE.into(),
            routing_key.into(),
            lapin::options::BasicPublishOptions::default(),
            &payload,
            props,
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_names_the_task_and_where_it_went() {
        let mut msg = TaskMessage::new("t.add", &json!([1, 2]), &json!({"k": "v"})).expect("JSON");
        msg.headers.kwargsrepr = Some("{'k': '***'}".into());
        let e = body(&msg, "gen1@h", "q", "", "q");
        assert_eq!(e["type"], "task-sent");
        assert_eq!(e["uuid"], json!(msg.headers.id));
        assert_eq!(e["name"], "t.add");
        assert_eq!(e["args"], "[1,2]");
        assert_eq!(e["kwargs"], "{'k': '***'}");
        assert_eq!(
            (e["queue"].as_str(), e["routing_key"].as_str()),
            (Some("q"), Some("q"))
        );
        let later = body(&msg, "gen1@h", "q", "", "q");
        assert!(later["clock"].as_u64() > e["clock"].as_u64());
        assert!(producer_hostname().starts_with(&format!("gen{}@", std::process::id())));
    }
}
