//! Typed `#[task]` functions and their options, run in-process against the real RabbitMQ and
//! called through typed signatures: results come back as their Rust types; a bad call is
//! Python's TypeError; autoretry_for retries and then fails with the exception itself;
//! default_retry_delay beats the worker's backoff; a rate limit spaces starts without holding
//! the only slot; a per-task hard time limit stops a run; track_started and the hooks run;
//! state reaches the task, and a task whose state is missing stops the worker before it starts;
//! a new-style errback is called with the request, the exception and the traceback.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use maestro_broker::client::{CallError, Client};
use maestro_broker::{TaskMessage, topology};
use maestro_tasks::{ExceptionInfo, Registry, TaskContext, TaskError, TaskResult, task};
use maestro_testsupport::{Run, broker_url};
use maestro_worker::{Shutdown, WorkerCli, WorkerConfig, WorkerError};
use serde_json::{Value, json};

#[task(name = "opt.add", crate = "maestro_tasks")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
struct Greeting {
    text: String,
    times: u32,
}

#[task(name = "opt.greet", crate = "maestro_tasks")]
async fn greet(#[state] prefix: &String, name: String, #[arg(default = 1)] times: u32) -> Greeting {
    Greeting {
        text: format!("{prefix} {name}"),
        times,
    }
}

static FLAKY_RUNS: AtomicU32 = AtomicU32::new(0);

/// Fails with ConnectionError twice, then succeeds: retried by autoretry_for.
#[task(name = "opt.flaky", crate = "maestro_tasks", autoretry_for = ["ConnectionError"],
       default_retry_delay = 1, max_retries = 5)]
async fn flaky() -> TaskResult<u32> {
    let run = FLAKY_RUNS.fetch_add(1, Ordering::SeqCst);
    if run < 2 {
        return Err(TaskError::fail("ConnectionError", "down"));
    }
    Ok(run)
}

/// Always fails with ConnectionError: retried once, then the failure is that exception.
#[task(name = "opt.down", crate = "maestro_tasks", autoretry_for = ["ConnectionError"],
       retry_backoff = 1, retry_jitter = false, max_retries = 1)]
async fn down() -> TaskResult<()> {
    Err(TaskError::fail("ConnectionError", "still down"))
}

static STARTS: std::sync::Mutex<Vec<Instant>> = std::sync::Mutex::new(Vec::new());

#[task(name = "opt.limited", crate = "maestro_tasks", rate_limit = "4/s")]
async fn limited(i: u32) -> u32 {
    STARTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Instant::now());
    i
}

#[task(
    name = "opt.slow",
    crate = "maestro_tasks",
    time_limit = 1,
    track_started = true
)]
async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "too late"
}

static SUCCESSES: AtomicU32 = AtomicU32::new(0);
static FAILURES: AtomicU32 = AtomicU32::new(0);

fn counted_success(_ctx: &TaskContext, _v: &Value) {
    SUCCESSES.fetch_add(1, Ordering::SeqCst);
}

fn counted_failure(_ctx: &TaskContext, exc: &ExceptionInfo) {
    if exc.exc_type == "ValueError" {
        FAILURES.fetch_add(1, Ordering::SeqCst);
    }
}

#[task(name = "opt.hooked", crate = "maestro_tasks", on_success = counted_success,
       on_failure = counted_failure, max_retries = 0)]
async fn hooked(ok: bool) -> TaskResult<bool> {
    if ok {
        Ok(true)
    } else {
        Err(TaskError::value_error("asked to fail"))
    }
}

fn config(run: &Run, queue: &topology::TaskQueue, extra: &[&str]) -> WorkerConfig {
    let mut args = run.worker_args(queue);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    WorkerCli::try_parse_from(args)
        .expect("flags")
        .worker
        .into_config()
        .expect("config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_tasks_and_their_options() {
    let run = Run::new();
    let queue = run.queue("options");
    // One slot, and a worker backoff far longer than the tasks' own delays: a test that
    // finished in seconds used the tasks' options.
    let cfg = config(
        &run,
        &queue,
        &[
            "--result-backend",
            "rpc://",
            "-c",
            "1",
            "--retry-backoff-min",
            "60",
            "--retry-backoff-max",
            "120",
        ],
    );
    let mut registry = Registry::with_diagnostics();
    for r in [
        registry.add(add),
        registry.add(greet),
        registry.add(flaky),
        registry.add(down),
        registry.add(limited),
        registry.add(slow),
        registry.add(hooked),
    ] {
        r.expect("unique");
    }
    registry.insert_state(String::from("Hello,"));
    let shutdown = Shutdown::default();
    let _stop_worker = shutdown.stop.clone().drop_guard();
    let worker = tokio::spawn(maestro_worker::run(cfg, registry, shutdown.clone()));
    let client = Client::connect(&broker_url(), "maestro-worker option tests")
        .await
        .expect("RabbitMQ is reachable");
    topology::declare_task_queue(client.connection(), &queue)
        .await
        .expect("queue");
    let q = queue.name.as_str();
    let wait = Duration::from_secs(60);

    // Typed calls, typed results.
    let mut sum = client.call(add::new(2, 3).queue(q)).await.expect("sent");
    assert_eq!(sum.get(wait).await.expect("result"), 5);
    let mut hello = client
        .call(greet::new("Ada", 3_u32).queue(q))
        .await
        .expect("sent");
    assert_eq!(
        hello.get(wait).await.expect("result"),
        Greeting {
            text: "Hello, Ada".into(),
            times: 3
        }
    );
    // The default of `times`, and a keyword call as Python sends it.
    let by_keyword =
        TaskMessage::new("opt.greet", &json!([]), &json!({"name": "Bo"})).expect("message");
    let mut r = client.send(by_keyword, q, q).await.expect("sent");
    let report = r.get(wait).await.expect("result");
    assert_eq!(report.result, json!({"text": "Hello, Bo", "times": 1}));
    // A bad call: Python's TypeError, naming the parameter.
    let bad = TaskMessage::new("opt.add", &json!([1]), &json!({"z": 2})).expect("message");
    let mut r = client.send(bad, q, q).await.expect("sent");
    let report = r.get(wait).await.expect("result");
    assert_eq!(report.status, "FAILURE");
    assert_eq!(report.result["exc_type"], "TypeError");
    assert_eq!(
        report.result["exc_message"][0],
        "add() missing 1 required positional argument: 'y'"
    );

    // autoretry_for with the task's own delay (1 s), not the worker's (60 s).
    let started = Instant::now();
    let mut r = client.call(flaky::new().queue(q)).await.expect("sent");
    assert_eq!(r.get(wait).await.expect("third run succeeds"), 2);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // Past max_retries, the failure is the exception itself, not MaxRetriesExceededError.
    let mut r = client.call(down::new().queue(q)).await.expect("sent");
    match r.get(wait).await {
        Err(CallError::Failed {
            exc_type, message, ..
        }) => {
            assert_eq!(exc_type, "ConnectionError");
            assert_eq!(message, "still down");
        }
        other => panic!("expected the ConnectionError, got {other:?}"),
    }

    // A rate limit of 4/s spaces starts by 250 ms; the one slot is not held while waiting,
    // so an unlimited task sent after them finishes first.
    let mut pending = Vec::new();
    for i in 0..5_u32 {
        pending.push(client.call(limited::new(i).queue(q)).await.expect("sent"));
    }
    let mut quick = client.call(add::new(1, 1).queue(q)).await.expect("sent");
    assert_eq!(quick.get(wait).await.expect("result"), 2);
    let quick_done = Instant::now();
    for p in &mut pending {
        p.get(wait).await.expect("limited runs");
    }
    let starts = STARTS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(starts.len(), 5);
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(240), "{gap:?}");
    }
    assert!(
        quick_done < starts[4],
        "the unlimited task waited for the limited ones"
    );

    // The task's own hard limit (1 s), and STARTED first since it tracks starts.
    let msg = TaskMessage::new("opt.slow", &json!([]), &json!({})).expect("message");
    let mut r = client.send(msg, q, q).await.expect("sent");
    let seen = r.wait(wait).await.expect("stopped");
    let statuses: Vec<&str> = seen.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses, ["STARTED", "FAILURE"]);
    assert_eq!(seen[1].result["exc_type"], "TimeLimitExceeded");

    // Hooks run after the outcome is recorded.
    let mut ok = client.call(hooked::new(true).queue(q)).await.expect("sent");
    ok.get(wait).await.expect("succeeds");
    let mut failed = client
        .call(hooked::new(false).queue(q))
        .await
        .expect("sent");
    assert!(failed.get(wait).await.is_err());
    // As in Celery, a hook runs after the state is stored, so after the client may read it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while (
        SUCCESSES.load(Ordering::SeqCst),
        FAILURES.load(Ordering::SeqCst),
    ) != (1, 1)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(SUCCESSES.load(Ordering::SeqCst), 1);
    assert_eq!(FAILURES.load(Ordering::SeqCst), 1);

    shutdown.stop.cancel();
    worker.await.expect("joined").expect("clean stop");
    client.close().await;
}

#[tokio::test]
async fn a_task_without_its_state_stops_the_worker_before_it_starts() {
    let run = Run::new();
    let queue = run.queue("nostate");
    let cfg = config(&run, &queue, &[]);
    let mut registry = Registry::new();
    registry.add(greet).expect("unique");
    let e = maestro_worker::run(cfg, registry, Shutdown::default())
        .await
        .expect_err("refused");
    assert!(matches!(e, WorkerError::MissingState(_)), "{e}");
    assert!(e.to_string().contains("opt.greet"), "{e}");
    assert!(e.to_string().contains("alloc::string::String"), "{e}");
}

/// What `opt.on_error` saw, in order.
#[derive(Default)]
struct Seen(std::sync::Mutex<Vec<Value>>);

/// An errback in Celery's new style (more than one parameter): called in the worker with
/// `(request, exc, traceback)`, then the signature's own arguments.
#[task(name = "opt.on_error", crate = "maestro_tasks")]
async fn on_error(
    #[state] seen: &Seen,
    request: Value,
    exc: Value,
    traceback: String,
    note: String,
) {
    seen.0.lock().expect("not poisoned").push(json!([
        request["id"],
        request["task"],
        exc["exc_type"],
        !traceback.is_empty(),
        note
    ]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_style_errback_gets_the_request_the_exception_and_the_traceback() {
    let run = Run::new();
    let queue = run.queue("errbacks");
    let old_style = run.queue("errback-ids");
    let cfg = config(&run, &queue, &["--result-backend", "rpc://"]);
    let mut registry = Registry::with_diagnostics();
    registry.add(on_error).expect("unique");
    registry.insert_state(Seen::default());
    let states = registry.states().clone();
    let shutdown = Shutdown::default();
    let _stop_worker = shutdown.stop.clone().drop_guard();
    let worker = tokio::spawn(maestro_worker::run(cfg, registry, shutdown.clone()));
    let client = Client::connect(&broker_url(), "maestro-worker errback tests")
        .await
        .expect("RabbitMQ is reachable");
    for q in [&queue, &old_style] {
        topology::declare_task_queue(client.connection(), q)
            .await
            .expect("queue");
    }
    let q = queue.name.as_str();
    let new_style = maestro_broker::Signature::new("opt.on_error", vec![json!("a note")]);
    // maestro.echo takes any arguments (no parameter list): sent the id, to its own queue.
    let id_only = maestro_broker::Signature::new("maestro.echo", vec![])
        .with_option("queue", json!(old_style.name));
    let mut msg = TaskMessage::new("maestro.fail", &json!(["boom"]), &json!({})).expect("message");
    msg.embed.errbacks = Some(vec![new_style, id_only]);
    let failed_id = msg.headers.id.clone();
    let mut r = client.send(msg, q, q).await.expect("sent");
    let report = r.get(Duration::from_secs(30)).await.expect("a state");
    assert_eq!(report.status, "FAILURE");
    let seen = states.get::<Seen>().expect("state");
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.0.lock().expect("not poisoned").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        *seen.0.lock().expect("not poisoned"),
        vec![json!([
            failed_id,
            "maestro.fail",
            "RuntimeError",
            true,
            "a note"
        ])]
    );
    // The old-style errback went out as a message with the failed task's id.
    let ch = client.connection().create_channel().await.expect("channel");
    let got = loop {
        if let Some(m) = ch
            .basic_get(old_style.name.as_str().into(), Default::default())
            .await
            .expect("get")
        {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the old-style errback was not sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let body: Value = serde_json::from_slice(&got.delivery.data).expect("JSON");
    assert_eq!(body[0], json!([failed_id]));
    shutdown.stop.cancel();
    worker.await.expect("joined").expect("clean stop");
    client.close().await;
}
