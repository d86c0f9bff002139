//! The broker's publishing ceiling for the messages maestro-api sends.
//!
//! `publish-ceiling N WINDOW` publishes N Celery task messages for `maestro.noop`, built and
//! encoded as maestro-api builds them (protocol v2 headers with an origin and a traceparent,
//! persistent, `mandatory`, to the queue's own direct exchange), on one confirm channel with
//! WINDOW in flight, each waiting for its own confirm as an API request does. No HTTP, no
//! JWT, no pool: what is left is the broker's cost of these messages. Prints one JSON line in
//! the shape of the peers' `raw-publish-ceiling`: rate (msg/s), confirm latency p50/p99 (ms).
//!
//! Env: `QUEUE` (declared with Celery's topology, then deleted with its exchange), `AMQP_URL`,
//! `QUEUE_TYPE` (`classic` or `quorum`).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeleteOptions,
};
use lapin::{Confirmation, Connection, ConnectionProperties};
use maestro_broker::TaskMessage;
use maestro_broker::topology::{QueueType, TaskQueue, declare_task_queue};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

type Error = Box<dyn std::error::Error>;

fn arg(i: usize, name: &str, default: usize) -> Result<usize, Error> {
    match std::env::args().nth(i) {
        Some(s) => s
            .parse()
            .map_err(|e| format!("{name}: {s:?} is not a count: {e}").into()),
        None => Ok(default),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let n = arg(1, "N", 20_000)?;
    let window = arg(2, "WINDOW", 64)?.max(1);
    let queue = std::env::var("QUEUE").unwrap_or_else(|_| "publish_ceiling".into());
    let queue_type: QueueType = std::env::var("QUEUE_TYPE")
        .unwrap_or_else(|_| "classic".into())
        .parse()
        .map_err(|e| format!("QUEUE_TYPE: {e}"))?;
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());

    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    declare_task_queue(&conn, &TaskQueue::named(&queue, queue_type)).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;

    let (args, kwargs) = (json!([]), json!({}));
    let origin = "maestro-api@publish-ceiling".to_owned();
    let traceparent =
        Value::String("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
    let permits = Arc::new(Semaphore::new(window));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let start = Instant::now();
    let mut confirms = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = permits.clone().acquire_owned().await?;
        let sent = Instant::now();
        let mut msg = TaskMessage::new("maestro.noop", &args, &kwargs)?;
        msg.headers.origin = Some(origin.clone());
        msg.headers
            .extra
            .insert("traceparent".into(), traceparent.clone());
        let (properties, body) = msg.encode();
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = ch
            .basic_publish(
                queue.as_str().into(),
                queue.as_str().into(),
                options,
                &body,
                properties,
            )
            .await?;
        let latencies = latencies.clone();
        confirms.push(tokio::spawn(async move {
            // Acked and not returned: the queue took it.
            let acked = matches!(confirm.await, Ok(Confirmation::Ack(None)));
            latencies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(sent.elapsed().as_secs_f64() * 1000.0);
            drop(permit);
            acked
        }));
    }
    let mut acked = 0;
    for c in confirms {
        acked += usize::from(c.await.unwrap_or(false));
    }
    let secs = start.elapsed().as_secs_f64();
    let mut l = latencies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    l.sort_by(f64::total_cmp);
    let p = |q: f64| {
        l.get(((l.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{{\"n\": {n}, \"window\": {window}, \"acked\": {acked}, \"rate\": {:.0}, \"p50_ms\": {:.2}, \"p99_ms\": {:.2}}}",
        n as f64 / secs,
        p(0.5),
        p(0.99)
    );
    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    ch.exchange_delete(queue.as_str().into(), ExchangeDeleteOptions::default())
        .await?;
    conn.close(200, "done".into()).await?;
    Ok(())
}
