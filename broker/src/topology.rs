//! Celery's AMQP layout, declared the way Celery 5.7 declares it, so Python and Rust workers
//! can share queues: each task queue `Q` is durable and bound to a durable direct exchange `Q`
//! with routing key `Q`. Also the delay levels (see `delay`) and the dead-letter exchange.
//!
//! A declaration whose arguments differ from an entity that already exists (a queue made by an
//! older deployment as classic while this one asks for quorum, say) makes RabbitMQ close the
//! channel with 406 PRECONDITION_FAILED. That is not fatal: the existing entity is checked
//! passively on a fresh channel, a warning names the difference, and it is used as it is.

use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ExchangeKind};
use tracing::warn;

use crate::delay::{self, DelayTopology, LEVELS};
use crate::error::{BrokerError, is_precondition_failed};

/// Queue type: `classic` is Celery's default; `quorum` is for clustered RabbitMQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    #[default]
    Classic,
    Quorum,
}

impl QueueType {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

impl std::str::FromStr for QueueType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "classic" => Ok(QueueType::Classic),
            "quorum" => Ok(QueueType::Quorum),
            other => Err(format!("queue type {other:?} is not classic or quorum")),
        }
    }
}

/// One task queue as Celery lays it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskQueue {
    pub name: String,
    pub exchange: String,
    pub routing_key: String,
    pub queue_type: QueueType,
}

impl TaskQueue {
    /// Queue `name` on direct exchange `name` with routing key `name`, as Celery's
    /// `task_create_missing_queues` makes it.
    pub fn named(name: &str, queue_type: QueueType) -> Self {
        Self {
            name: name.to_owned(),
            exchange: name.to_owned(),
            routing_key: name.to_owned(),
            queue_type,
        }
    }
}

/// Checks a queue name before anything is declared with it.
pub fn validate_queue_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("queue name is empty".into());
    }
    if name.len() > 255 {
        return Err(format!("queue name {name:?} is longer than 255 bytes"));
    }
    if name.starts_with("amq.") {
        return Err(format!(
            "queue name {name:?} starts with the reserved prefix amq."
        ));
    }
    if name.chars().any(|c| c.is_control() || c == '*' || c == '#') {
        return Err(format!(
            "queue name {name:?} holds a control or wildcard character"
        ));
    }
    Ok(())
}

fn queue_args(queue_type: QueueType) -> FieldTable {
    let mut args = FieldTable::default();
    if queue_type == QueueType::Quorum {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    args
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// Declares a queue, tolerating an existing one with other arguments (see module docs).
/// Returns the channel to keep using: a new one when the broker closed the first.
async fn declare_queue_tolerant(
    conn: &Connection,
    channel: Channel,
    name: &str,
    options: QueueDeclareOptions,
    args: FieldTable,
) -> Result<Channel, BrokerError> {
    match channel.queue_declare(name.into(), options, args).await {
        Ok(_) => Ok(channel),
        Err(e) if is_precondition_failed(&e) => {
            warn!(event = "topology_conflict", queue = name, error = %e,
                "queue exists with other arguments; using it as it is");
            let fresh = conn.create_channel().await?;
            fresh
                .queue_declare(
                    name.into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| BrokerError::Topology {
                    name: name.into(),
                    reason: e.to_string(),
                })?;
            Ok(fresh)
        }
        Err(e) => Err(e.into()),
    }
}

/// Declares exchange `Q`, queue `Q` and their binding, as Celery does before consuming or
/// publishing.
pub async fn declare_task_queue(conn: &Connection, queue: &TaskQueue) -> Result<(), BrokerError> {
    let ch = conn.create_channel().await?;
    ch.exchange_declare(
        queue.exchange.as_str().into(),
        ExchangeKind::Direct,
        durable_exchange(),
        FieldTable::default(),
    )
    .await?;
    let ch = declare_queue_tolerant(
        conn,
        ch,
        &queue.name,
        durable_queue(),
        queue_args(queue.queue_type),
    )
    .await?;
    ch.queue_bind(
        queue.name.as_str().into(),
        queue.exchange.as_str().into(),
        queue.routing_key.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    close_quietly(&ch).await;
    Ok(())
}

/// Declares the 28 delay levels and the delivery exchange with kombu's names and arguments.
pub async fn declare_delay_topology(
    conn: &Connection,
    topo: &DelayTopology,
    queue_type: QueueType,
) -> Result<(), BrokerError> {
    let mut ch = conn.create_channel().await?;
    let topic = |name: String| (name, ExchangeKind::Topic);
    let (delivery, kind) = topic(topo.delivery_exchange());
    ch.exchange_declare(
        delivery.as_str().into(),
        kind,
        durable_exchange(),
        FieldTable::default(),
    )
    .await?;
    // Level L's queue takes keys whose digit for 2^L is 1; its exchange passes keys whose digit
    // is 0 on to level L-1 (level 0 passes them to the delivery exchange).
    let mut one_key = "1.#".to_owned();
    let mut zero_key = "0.#".to_owned();
    for level in (0..LEVELS).rev() {
        let name = topo.level_name(level);
        ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Topic,
            durable_exchange(),
            FieldTable::default(),
        )
        .await?;
        let next = if level > 0 {
            topo.level_name(level - 1)
        } else {
            topo.delivery_exchange()
        };
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(queue_type.as_str().into()),
        );
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
        // Same integer width as py-amqp writes, so RabbitMQ sees equivalent arguments.
        args.insert(
            "x-message-ttl".into(),
            crate::field::from_json(&serde_json::Value::from(1000i64 << level)),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from(next.as_str())),
        );
        if queue_type == QueueType::Quorum {
            args.insert(
                "x-dead-letter-strategy".into(),
                AMQPValue::LongString("at-least-once".into()),
            );
        }
        ch = declare_queue_tolerant(conn, ch, &name, durable_queue(), args).await?;
        ch.queue_bind(
            name.as_str().into(),
            name.as_str().into(),
            one_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        ch.exchange_declare(
            next.as_str().into(),
            ExchangeKind::Topic,
            durable_exchange(),
            FieldTable::default(),
        )
        .await?;
        ch.exchange_bind(
            next.as_str().into(),
            name.as_str().into(),
            zero_key.as_str().into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        one_key.insert_str(0, "*.");
        zero_key.insert_str(0, "*.");
    }
    close_quietly(&ch).await;
    Ok(())
}

/// Binds `queue` to the delivery exchange so delayed messages for it come back to it.
pub async fn bind_delayed_delivery(
    conn: &Connection,
    topo: &DelayTopology,
    queue: &TaskQueue,
) -> Result<(), BrokerError> {
    let ch = conn.create_channel().await?;
    ch.queue_bind(
        queue.name.as_str().into(),
        topo.delivery_exchange().as_str().into(),
        delay::queue_binding_key(&queue.routing_key).as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    close_quietly(&ch).await;
    Ok(())
}

/// Declares the dead-letter exchange (topic, durable) and a durable queue that keeps every
/// dead letter (`#`), so nothing rejected is lost before an operator looks at it.
pub async fn declare_dead_letter(
    conn: &Connection,
    exchange: &str,
    queue: &str,
    queue_type: QueueType,
) -> Result<(), BrokerError> {
    let ch = conn.create_channel().await?;
    ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Topic,
        durable_exchange(),
        FieldTable::default(),
    )
    .await?;
    // Quorum on a cluster: a classic dead-letter queue lives on one node, and while that node
    // is down every worker's topology declaration would fail on it.
    let ch =
        declare_queue_tolerant(conn, ch, queue, durable_queue(), queue_args(queue_type)).await?;
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    close_quietly(&ch).await;
    Ok(())
}

/// Deletes a task queue and its exchange (for operators retiring a queue, and tests).
pub async fn delete_task_queue(conn: &Connection, queue: &TaskQueue) -> Result<(), BrokerError> {
    let ch = conn.create_channel().await?;
    ch.queue_delete(queue.name.as_str().into(), QueueDeleteOptions::default())
        .await?;
    ch.exchange_delete(
        queue.exchange.as_str().into(),
        ExchangeDeleteOptions::default(),
    )
    .await?;
    close_quietly(&ch).await;
    Ok(())
}

/// Deletes the delay levels and the delivery exchange of `topo`, with any messages waiting in
/// them. Only for an isolated prefix: the default one is shared with every Celery client.
pub async fn delete_delay_topology(
    conn: &Connection,
    topo: &DelayTopology,
) -> Result<(), BrokerError> {
    let ch = conn.create_channel().await?;
    for level in 0..LEVELS {
        let name = topo.level_name(level);
        ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await?;
        ch.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
            .await?;
    }
    ch.exchange_delete(
        topo.delivery_exchange().as_str().into(),
        ExchangeDeleteOptions::default(),
    )
    .await?;
    close_quietly(&ch).await;
    Ok(())
}

/// Deletes the dead-letter exchange and queue, with the dead letters in it.
pub async fn delete_dead_letter(
    conn: &Connection,
    exchange: &str,
    queue: &str,
) -> Result<(), BrokerError> {
    let ch = conn.create_channel().await?;
    ch.queue_delete(queue.into(), QueueDeleteOptions::default())
        .await?;
    ch.exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await?;
    close_quietly(&ch).await;
    Ok(())
}

async fn close_quietly(ch: &Channel) {
    let _ = ch.close(200, "declared".into()).await;
}
