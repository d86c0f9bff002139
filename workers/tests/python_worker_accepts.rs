//! A message this crate encodes is accepted and run by a real Python Celery 5.7 worker: the
//! Python side reports what it understood (args, kwargs, id, retries, eta, time limits) back
//! over rpc://. Needs the test venv's Python (`MAESTRO_TEST_PYTHON`, set by scripts/test.sh).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use maestro_broker::client::Client;
use maestro_broker::{TaskMessage, TimeLimit, topology};
use maestro_testsupport::{Run, broker_url};
use serde_json::json;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_worker_runs_what_we_encode() {
    let python = std::env::var("MAESTRO_TEST_PYTHON")
        .expect("MAESTRO_TEST_PYTHON must name the test venv's python (scripts/test.sh sets it)");
    let run = Run::new();
    let queue = run.queue("py");
    let url = broker_url();
    let client = Client::connect(&url, "python interop test")
        .await
        .expect("RabbitMQ is reachable");
    topology::declare_task_queue(client.connection(), &queue)
        .await
        .expect("queue");

    let app_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/pyworker");
    let log_path = std::env::temp_dir().join(format!("maestro-pyworker-{}.log", run.id));
    let log = std::fs::File::create(&log_path).expect("log file");
    let worker_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let worker = Killed(
        Command::new(&python)
            .args([
                "-m",
                "celery",
                "-A",
                "interop_app",
                "worker",
                "-Q",
                &queue.name,
                "--pool=solo",
                "--loglevel=WARNING",
                "-n",
                &format!("py{}@%h", run.id),
                "--without-gossip",
                "--without-mingle",
            ])
            .env("CELERY_BROKER_URL", &url)
            .current_dir(app_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("python celery worker starts"),
    );

    let args = json!([1, "ünï", null, 12345678901234567890u64, 2.5, {"deep": [true]}]);
    let kwargs = json!({"k": "v", "n": -3});
    let mut msg = TaskMessage::new("interop.describe", &args, &kwargs).expect("message");
    msg.headers.retries = 2;
    msg.headers.timelimit = TimeLimit {
        hard_secs: Some(30.0),
        soft_secs: Some(20.0),
    };
    msg.headers.eta = Some(chrono::Utc::now() - chrono::Duration::seconds(1));
    msg.headers.parent_id = Some("parent-1".into());
    let id = msg.headers.id.clone();
    let mut pending = client
        .send(msg, &queue.exchange, &queue.routing_key)
        .await
        .expect("confirmed");
    let report = pending
        .get(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}; the Python worker's log:\n{}", worker_log()));
    assert_eq!(report.status, "SUCCESS", "{report:?}\n{}", worker_log());
    let r = &report.result;
    assert_eq!(r["args"], args);
    assert_eq!(r["kwargs"], kwargs);
    assert_eq!(r["id"], json!(id));
    assert_eq!(r["retries"], json!(2));
    assert_eq!(r["timelimit"], json!([30, 20]));
    assert_eq!(r["parent_id"], json!("parent-1"));
    assert!(r["eta"].as_str().is_some_and(|e| !e.is_empty()), "{r}");

    drop(worker);
    let _ = std::fs::remove_file(&log_path);
    client.close().await;
}
