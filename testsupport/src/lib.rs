//! Test-only helpers for tests against the real RabbitMQ.
//!
//! `Run` gives every test names of its own (task queues, delay prefix, dead-letter exchange and
//! queue) and deletes exactly those when it is dropped, also when the test panics: the
//! deletion runs on a thread of its own with its own runtime, since `Drop` cannot await.

use std::sync::Mutex;

use maestro_broker::connection::{connect, parse_broker_url};
use maestro_broker::delay::DelayTopology;
use maestro_broker::{QueueType, TaskQueue, topology};

/// The broker the tests use: `AMQP_URL`, else the local RabbitMQ.
pub fn broker_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672//".into())
}

/// How long deleting one run's broker names may take.
const TEARDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One test's broker names, deleted on drop.
pub struct Run {
    pub id: String,
    pub delay: DelayTopology,
    pub dead: String,
    queues: Mutex<Vec<TaskQueue>>,
}

impl Default for Run {
    fn default() -> Self {
        Self::new()
    }
}

impl Run {
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        Self {
            delay: DelayTopology::with_prefix(format!("t{id}_delayed")),
            dead: format!("t{id}.dead"),
            queues: Mutex::new(Vec::new()),
            id,
        }
    }

    /// A classic task queue named for this run, deleted on drop.
    pub fn queue(&self, label: &str) -> TaskQueue {
        let q = TaskQueue::named(&format!("t{}.{label}", self.id), QueueType::Classic);
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(q.clone());
        q
    }
}

impl Run {
    /// `maestro-worker` flags that put a worker on `queue` with this run's broker, delay prefix,
    /// dead-letter names and node name, and its metrics endpoint on a port of its own (tests
    /// run side by side); a test appends its own.
    pub fn worker_args(&self, queue: &TaskQueue) -> Vec<String> {
        [
            "maestro-worker",
            "-b",
            &broker_url(),
            "-Q",
            &queue.name,
            "--delay-prefix",
            self.delay.prefix(),
            "--dead-letter-exchange",
            &self.dead,
            "--dead-letter-queue",
            &self.dead,
            "-n",
            &format!("t{}@%h", self.id),
            "--metrics-addr",
            "127.0.0.1:0",
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let queues = std::mem::take(&mut *self.queues.lock().unwrap_or_else(|p| p.into_inner()));
        let (delay, dead) = (self.delay.clone(), self.dead.clone());
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            // Bounded: a broker that stops answering fails the next test, not hangs this one.
            // The timer is made inside the runtime (a timer made outside has no clock to use).
            let teardown = async move {
                let Ok(uri) = parse_broker_url(&broker_url()) else {
                    return;
                };
                let Ok(conn) = connect(&uri, "maestro test teardown").await else {
                    return;
                };
                for q in &queues {
                    let _ = topology::delete_task_queue(&conn, q).await;
                }
                let _ = topology::delete_delay_topology(&conn, &delay).await;
                let _ = topology::delete_dead_letter(&conn, &dead, &dead).await;
                let _ = conn.close(200, "teardown".into()).await;
            };
            let _ = rt.block_on(async { tokio::time::timeout(TEARDOWN_TIMEOUT, teardown).await });
        });
        // A teardown that panicked is a bug of the test harness: say so.
        if cleanup.join().is_err() {
            eprintln!("the broker teardown of this test panicked; its queues may be left");
        }
    }
}
