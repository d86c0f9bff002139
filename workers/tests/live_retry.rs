//! The worker runtime in-process against the real RabbitMQ, with tasks of the test's own: a
//! task that asks to retry goes through the delay queues and comes back with `retries` + 1,
//! states RETRY then SUCCESS reach the caller; past `max_retries` it fails with
//! MaxRetriesExceededError; a panicking task is a FAILURE and the worker keeps running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use lapin::Connection;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use maestro_broker::connection::{connect, parse_broker_url};
use maestro_broker::{Publisher, TaskMessage};
use maestro_tasks::{Registry, Task, TaskArgs, TaskContext, TaskError, TaskFuture};
use maestro_worker::config::Cli;
use maestro_worker::shutdown::Shutdown;
use serde_json::{Value, json};

/// Retries with a 1 s countdown until it has been retried `times` times.
struct Flaky;
impl Task for Flaky {
    fn name(&self) -> &str {
        "test.flaky"
    }
    fn run<'a>(&'a self, ctx: &'a TaskContext, args: &'a TaskArgs) -> TaskFuture<'a> {
        Box::pin(async move {
            let times: u32 = args.require(0, "times")?;
            if ctx.retries < times {
                return Err(TaskError::retry_in(
                    Duration::from_secs(1),
                    "ConnectionError",
                    "transient",
                ));
            }
            Ok(json!(ctx.retries))
        })
    }
}

/// Always asks to retry, using the worker's backoff.
struct Stubborn;
impl Task for Stubborn {
    fn name(&self) -> &str {
        "test.stubborn"
    }
    fn max_retries(&self) -> Option<u32> {
        Some(1)
    }
    fn run<'a>(&'a self, _ctx: &'a TaskContext, _args: &'a TaskArgs) -> TaskFuture<'a> {
        Box::pin(async { Err(TaskError::retry("ConnectionError", "still down")) })
    }
}

struct Panics;
impl Task for Panics {
    fn name(&self) -> &str {
        "test.panics"
    }
    fn run<'a>(&'a self, _ctx: &'a TaskContext, _args: &'a TaskArgs) -> TaskFuture<'a> {
        Box::pin(async { panic!("bug in task") })
    }
}

async fn conn() -> Connection {
    let url =
        std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672//".into());
    connect(
        &parse_broker_url(&url).expect("valid url"),
        "maestro-worker tests",
    )
    .await
    .expect("RabbitMQ is reachable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_go_through_the_broker_and_end_in_success_or_failure() {
    let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let queue = format!("t{run}.retry");
    let prefix = format!("t{run}_delayed");
    let dead = format!("t{run}.dead");
    let cfg = Cli::try_parse_from([
        "maestro-worker",
        "-Q",
        &queue,
        "--delay-prefix",
        &prefix,
        "--dead-letter-exchange",
        &dead,
        "--dead-letter-queue",
        &dead,
        "--result-backend",
        "rpc://",
        "-n",
        &format!("t{run}@%h"),
        "--retry-backoff-min",
        "1",
        "--retry-backoff-max",
        "2",
    ])
    .expect("flags")
    .into_config()
    .expect("config");
    let mut registry = Registry::with_diagnostics();
    registry.register(Arc::new(Flaky)).expect("unique");
    registry.register(Arc::new(Stubborn)).expect("unique");
    registry.register(Arc::new(Panics)).expect("unique");
    let shutdown = Shutdown::default();
    let worker = tokio::spawn(maestro_worker::worker::run(cfg, registry, shutdown.clone()));

    let conn = conn().await;
    let ch = conn.create_channel().await.expect("channel");
    let reply = format!("t{run}.reply");
    ch.queue_declare(
        reply.as_str().into(),
        QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("reply queue");
    let mut replies = ch
        .basic_consume(
            reply.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume replies");
    // The worker declares the queue; until then a publish to its exchange closes the channel.
    let started = Instant::now();
    let send = |task: &str, args: Value| {
        let mut msg = TaskMessage::new(task, &args, &json!({})).expect("message");
        msg.properties.reply_to = Some(reply.clone());
        msg
    };
    let flaky = send("test.flaky", json!([2]));
    let publisher = loop {
        let publisher = Publisher::open(&conn).await.expect("publisher");
        match publisher.publish_task(&queue, &queue, &flaky).await {
            Ok(()) => break publisher,
            Err(_) if started.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("worker never declared its queue: {e}"),
        }
    };
    let stubborn = send("test.stubborn", json!([]));
    publisher
        .publish_task(&queue, &queue, &stubborn)
        .await
        .expect("published");
    let panics = send("test.panics", json!([]));
    publisher
        .publish_task(&queue, &queue, &panics)
        .await
        .expect("published");
    let after_panic = send("maestro.echo", json!(["still here"]));
    publisher
        .publish_task(&queue, &queue, &after_panic)
        .await
        .expect("published");

    let mut states: Vec<(String, String, Value)> = Vec::new();
    let ready = |states: &Vec<(String, String, Value)>, id: &str| {
        states
            .iter()
            .any(|(i, s, _)| i == id && (s == "SUCCESS" || s == "FAILURE"))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(ready(&states, &flaky.headers.id)
        && ready(&states, &stubborn.headers.id)
        && ready(&states, &panics.headers.id)
        && ready(&states, &after_panic.headers.id))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let d = tokio::time::timeout(left, replies.next())
            .await
            .expect("replies within 60 s")
            .expect("open")
            .expect("delivery");
        let body: Value = serde_json::from_slice(&d.data).expect("json reply");
        let id = d
            .properties
            .correlation_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default();
        states.push((
            id,
            body["status"].as_str().unwrap_or("").to_owned(),
            body["result"].clone(),
        ));
    }
    let of = |id: &str| {
        states
            .iter()
            .filter(|(i, ..)| i == id)
            .map(|(_, s, r)| (s.clone(), r.clone()))
            .collect::<Vec<_>>()
    };

    let flaky_states = of(&flaky.headers.id);
    assert_eq!(
        flaky_states
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>(),
        ["RETRY", "RETRY", "SUCCESS"]
    );
    assert_eq!(
        flaky_states[2].1,
        json!(2),
        "ran with retries = 2 the third time"
    );
    assert_eq!(flaky_states[0].1["exc_type"], "ConnectionError");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "two 1 s countdowns passed"
    );

    let stubborn_states = of(&stubborn.headers.id);
    assert_eq!(
        stubborn_states
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>(),
        ["RETRY", "FAILURE"]
    );
    assert_eq!(stubborn_states[1].1["exc_type"], "MaxRetriesExceededError");

    let panic_states = of(&panics.headers.id);
    assert_eq!(panic_states[0].0, "FAILURE");
    assert!(
        panic_states[0].1["exc_message"][0]
            .as_str()
            .unwrap_or("")
            .contains("bug in task")
    );
    assert_eq!(
        of(&after_panic.headers.id)[0],
        ("SUCCESS".into(), json!([["still here"], {}]))
    );

    shutdown.stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("stops")
        .expect("joined")
        .expect("clean exit");
    let _ = ch
        .queue_delete(reply.as_str().into(), QueueDeleteOptions::default())
        .await;
    let mut queues: Vec<String> = (0..28).map(|l| format!("{prefix}_{l}")).collect();
    let mut exchanges = queues.clone();
    exchanges.push(format!("{prefix}_delivery"));
    exchanges.push(dead.clone());
    exchanges.push(queue.clone());
    queues.push(queue);
    queues.push(dead);
    for q in queues {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for x in exchanges {
        let _ = ch
            .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
}
