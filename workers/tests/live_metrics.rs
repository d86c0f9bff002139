//! The health and metrics endpoint of a worker running in-process against the real RabbitMQ,
//! on `--metrics-addr 127.0.0.1:<free port>`: `/healthz` answers, `/readyz` is 200 while the
//! session consumes and 503 while it drains at shutdown, and `/metrics` counts a succeeded and
//! a failed task (run time histogram too), a dead letter, acknowledgements and readiness.

use std::time::Duration;

use clap::Parser;
use maestro_broker::client::Client;
use maestro_broker::{TaskMessage, topology};
use maestro_tasks::Registry;
use maestro_testsupport::{Run, broker_url};
use maestro_worker::Shutdown;
use maestro_worker::WorkerCli;
use serde_json::{Value, json};

/// A port nothing listens on now (the listener is closed again before the worker binds it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn get(http: &reqwest::Client, url: &str) -> Option<(u16, String)> {
    let r = http.get(url).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

/// The value of the sample named exactly `series` (name and labels), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls `url` until `done` holds for its answer, for up to `wait`.
async fn poll(
    http: &reqwest::Client,
    url: &str,
    wait: Duration,
    done: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + wait;
    let mut last = (0, String::new());
    while tokio::time::Instant::now() < deadline {
        if let Some(answer) = get(http, url).await {
            if done(answer.0, &answer.1) {
                return answer;
            }
            last = answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not reach the expected state in {wait:?}; last: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_task_metrics() {
    let run = Run::new();
    let queue = run.queue("metrics");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut args = run.worker_args(&queue);
    let at = args
        .iter()
        .position(|a| a == "--metrics-addr")
        .expect("worker_args sets --metrics-addr");
    args[at + 1] = format!("127.0.0.1:{port}");
    args.extend(["--result-backend", "rpc://"].map(str::to_owned));
    let cfg = WorkerCli::try_parse_from(args)
        .expect("flags")
        .worker
        .into_config()
        .expect("config");
    let shutdown = Shutdown::default();
    // Dropped before `run` (declared later): the worker stops before the teardown deletes
    // its topology, even if the test panics.
    let _stop_worker = shutdown.stop.clone().drop_guard();
    let worker = tokio::spawn(maestro_worker::run(
        cfg,
        Registry::with_diagnostics(),
        shutdown.clone(),
    ));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");
    let wait = Duration::from_secs(30);

    poll(&http, &format!("{base}/healthz"), wait, |s, _| s == 200).await;
    poll(&http, &format!("{base}/readyz"), wait, |s, _| s == 200).await;

    let client = Client::connect(&broker_url(), "metrics test")
        .await
        .expect("RabbitMQ is reachable");
    topology::declare_task_queue(client.connection(), &queue)
        .await
        .expect("queue");
    let send =
        |task: &str, args: Value| TaskMessage::new(task, &args, &json!({})).expect("message");
    let mut ok = client
        .send(send("maestro.echo", json!([1])), &queue.name, &queue.name)
        .await
        .expect("sent");
    let mut failing = client
        .send(
            send("maestro.fail", json!(["boom"])),
            &queue.name,
            &queue.name,
        )
        .await
        .expect("sent");
    // Dead-lettered, never answered.
    client
        .send(send("test.unknown", json!([])), &queue.name, &queue.name)
        .await
        .expect("sent");
    assert_eq!(ok.get(wait).await.expect("echo answers").status, "SUCCESS");
    assert_eq!(
        failing.get(wait).await.expect("fail answers").status,
        "FAILURE"
    );

    let q = &queue.name;
    let tasks = |task: &str, outcome: &str| {
        format!("maestro_worker_tasks_total{{queue=\"{q}\",task=\"{task}\",outcome=\"{outcome}\"}}")
    };
    let dead =
        format!("maestro_worker_dead_letters_total{{queue=\"{q}\",reason=\"unknown-task\"}}");
    // Acks are counted when the acker takes them, just after the result was sent.
    let (_, text) = poll(&http, &format!("{base}/metrics"), wait, |s, t| {
        s == 200
            && sample(t, "maestro_worker_acks_total") == Some(3.0)
            && sample(t, &dead) == Some(1.0)
    })
    .await;
    assert_eq!(
        sample(&text, &tasks("maestro.echo", "succeeded")),
        Some(1.0)
    );
    assert_eq!(sample(&text, &tasks("maestro.fail", "failed")), Some(1.0));
    assert_eq!(sample(&text, &tasks("maestro.echo", "failed")), None);
    let runtime = |task: &str| {
        format!("maestro_worker_task_runtime_seconds_count{{queue=\"{q}\",task=\"{task}\"}}")
    };
    assert_eq!(sample(&text, &runtime("maestro.echo")), Some(1.0));
    assert_eq!(sample(&text, &runtime("maestro.fail")), Some(1.0));
    assert_eq!(sample(&text, "maestro_worker_tasks_in_flight"), Some(0.0));
    assert_eq!(sample(&text, "maestro_worker_consuming"), Some(1.0));
    assert_eq!(sample(&text, "maestro_worker_requeues_total"), Some(0.0));
    assert_eq!(
        sample(&text, "maestro_worker_broker_reconnects_total"),
        Some(0.0)
    );

    // Shutdown while a task runs: not ready while it drains, alive until the worker returns.
    let mut sleeping = client
        .send(send("maestro.sleep", json!([2])), &queue.name, &queue.name)
        .await
        .expect("sent");
    poll(&http, &format!("{base}/metrics"), wait, |_, t| {
        sample(t, "maestro_worker_tasks_in_flight") == Some(1.0)
    })
    .await;
    shutdown.stop.cancel();
    poll(&http, &format!("{base}/readyz"), wait, |s, _| s == 503).await;
    let (status, _) = get(&http, &format!("{base}/healthz"))
        .await
        .expect("alive while draining");
    assert_eq!(status, 200);
    assert_eq!(
        sleeping.get(wait).await.expect("sleep answers").status,
        "SUCCESS",
        "the running task finished within the grace period"
    );
    tokio::time::timeout(wait, worker)
        .await
        .expect("stops")
        .expect("joined")
        .expect("clean exit");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while get(&http, &format!("{base}/healthz")).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the endpoint closes when the worker returns"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.close().await;
}
