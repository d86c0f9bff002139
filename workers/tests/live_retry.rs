//! The worker runtime in-process against the real RabbitMQ, with tasks of the test's own: a
//! task that asks to retry goes through the delay queues and comes back with `retries` + 1,
//! states RETRY then SUCCESS reach the caller; past `max_retries` it fails with
//! MaxRetriesExceededError; a panicking task is a FAILURE and the worker keeps running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use maestro_broker::client::{Client, StateReport};
use maestro_broker::{TaskMessage, topology};
use maestro_tasks::{Registry, Task, TaskArgs, TaskContext, TaskError, TaskFuture};
use maestro_testsupport::{Run, broker_url};
use maestro_worker::Shutdown;
use maestro_worker::WorkerCli;
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
    fn options(&self) -> &maestro_tasks::TaskOptions {
        static OPTIONS: std::sync::LazyLock<maestro_tasks::TaskOptions> =
            std::sync::LazyLock::new(|| maestro_tasks::TaskOptions::new().max_retries(Some(1)));
        &OPTIONS
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_go_through_the_broker_and_end_in_success_or_failure() {
    let run = Run::new();
    let queue = run.queue("retry");
    let mut args = run.worker_args(&queue);
    args.extend(
        [
            "--result-backend",
            "rpc://",
            "--retry-backoff-min",
            "1",
            "--retry-backoff-max",
            "2",
        ]
        .map(str::to_owned),
    );
    let cfg = WorkerCli::try_parse_from(args)
        .expect("flags")
        .worker
        .into_config()
        .expect("config");
    let mut registry = Registry::with_diagnostics();
    registry.register(Arc::new(Flaky)).expect("unique");
    registry.register(Arc::new(Stubborn)).expect("unique");
    registry.register(Arc::new(Panics)).expect("unique");
    let shutdown = Shutdown::default();
    // Dropped before `run` (declared later): even if the test panics, the worker stops before
    // the teardown deletes its topology, so it cannot reconnect and declare it again.
    let _stop_worker = shutdown.stop.clone().drop_guard();
    let worker = tokio::spawn(maestro_worker::run(cfg, registry, shutdown.clone()));

    let client = Client::connect(&broker_url(), "maestro-worker tests")
        .await
        .expect("RabbitMQ is reachable");
    // Declared here too (the worker declares the same), so sends never race the worker.
    topology::declare_task_queue(client.connection(), &queue)
        .await
        .expect("queue");
    let started = Instant::now();
    let send =
        |task: &str, args: Value| TaskMessage::new(task, &args, &json!({})).expect("message");
    let mut flaky = client
        .send(send("test.flaky", json!([2])), &queue.name, &queue.name)
        .await
        .expect("sent");
    let mut stubborn = client
        .send(send("test.stubborn", json!([])), &queue.name, &queue.name)
        .await
        .expect("sent");
    let mut panics = client
        .send(send("test.panics", json!([])), &queue.name, &queue.name)
        .await
        .expect("sent");
    let mut after = client
        .send(
            send("maestro.echo", json!(["still here"])),
            &queue.name,
            &queue.name,
        )
        .await
        .expect("sent");
    let wait = Duration::from_secs(60);
    let statuses = |seen: &[StateReport]| seen.iter().map(|r| r.status.clone()).collect::<Vec<_>>();

    let seen = flaky.wait(wait).await.expect("flaky finishes");
    assert_eq!(statuses(&seen), ["RETRY", "RETRY", "SUCCESS"]);
    assert_eq!(
        seen[2].result,
        json!(2),
        "ran with retries = 2 the third time"
    );
    assert_eq!(seen[0].result["exc_type"], "ConnectionError");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "two 1 s countdowns passed"
    );

    let seen = stubborn.wait(wait).await.expect("stubborn finishes");
    assert_eq!(statuses(&seen), ["RETRY", "FAILURE"]);
    assert_eq!(seen[1].result["exc_type"], "MaxRetriesExceededError");

    let failed = panics.get(wait).await.expect("panics finishes");
    assert_eq!(failed.status, "FAILURE");
    assert!(
        failed.result["exc_message"][0]
            .as_str()
            .unwrap_or("")
            .contains("bug in task")
    );
    let ok = after.get(wait).await.expect("echo finishes");
    assert_eq!(
        (ok.status.as_str(), &ok.result),
        ("SUCCESS", &json!([["still here"], {}]))
    );

    shutdown.stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("stops")
        .expect("joined")
        .expect("clean exit");
    client.close().await;
}
