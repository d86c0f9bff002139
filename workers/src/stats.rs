//! What the worker knows about itself, for remote control and events: tasks reserved and
//! running now (each running one with the token that terminates it), totals per task name,
//! revoked ids, the Lamport clock Celery's events and replies carry, the settings remote control
//! changes at run time (task events, rate and time limits), and the Prometheus metrics
//! (`metrics`), shared the same way.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foldhash::HashMap as FastMap;
use maestro_broker::TaskQueue;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Revoked ids kept, oldest forgotten first (Celery keeps 50,000 too).
pub(crate) const REVOKED_MAX: usize = 50_000;
/// Longest task id kept as revoked: ids are uuids, a longer one is not a task of anyone's.
pub(crate) const REVOKED_ID_BYTES_MAX: usize = 255;

/// One task received by this worker, as `inspect active` and `inspect reserved` show it.
/// Made once per delivery and shared (`Arc`) by the reserved list, the active list and the
/// run, so listing a task copies nothing.
#[derive(Debug)]
pub(crate) struct TaskInfo {
    pub id: Arc<str>,
    pub name: String,
    /// The arguments as the producer showed them (`argsrepr`), else their JSON text, clipped.
    pub args: String,
    pub kwargs: String,
    pub queue: Arc<str>,
    pub redelivered: bool,
    /// Its stamps (`revoke_by_stamped_headers` matches them).
    pub stamps: Value,
}

impl TaskInfo {
    /// Celery's `Request.info()`: the arguments as values when they read as JSON (with
    /// `safe`, as the producer's reprs, which are text); `started_unix` is when it started
    /// running, `None` while only reserved.
    pub(crate) fn json(&self, hostname: &str, safe: bool, started_unix: Option<f64>) -> Value {
        let show = |text: &str| {
            if safe {
                json!(text)
            } else {
                serde_json::from_str::<Value>(text).unwrap_or_else(|_| json!(text))
            }
        };
        json!({
            "id": &*self.id, "name": self.name, "type": self.name,
            "args": show(&self.args), "kwargs": show(&self.kwargs),
            "hostname": hostname, "time_start": started_unix,
            "acknowledged": false,
            "delivery_info": {"exchange": "", "routing_key": &*self.queue, "priority": 0,
                              "redelivered": self.redelivered},
            "worker_pid": started_unix.map(|_| std::process::id()),
        })
    }
}

/// A running task: what it is, when it started, and the token `revoke(terminate=True)`
/// cancels.
#[derive(Debug)]
struct Running {
    info: Arc<TaskInfo>,
    started_unix: f64,
    terminate: CancellationToken,
}

impl Running {
    fn json(&self, hostname: &str, safe: bool) -> Value {
        self.info.json(hostname, safe, Some(self.started_unix))
    }
}

/// Per-task time limits set by remote control (`celery control time_limit`): `(hard, soft)`.
pub(crate) type TimeLimits = (Option<Duration>, Option<Duration>);

/// The worker's own state, shared by every session.
pub(crate) struct WorkerState {
    pub hostname: String,
    pub started: Instant,
    clock: AtomicU64,
    processed: AtomicU64,
    /// Keyed by the record's own id (an `Arc` clone, no copy). Touched for every message, so
    /// hashed with foldhash rather than SipHash: the lists hold at most the prefetch window,
    /// and totals only registered names, which bounds what colliding ids could cost.
    reserved: Mutex<FastMap<Arc<str>, Arc<TaskInfo>>>,
    active: Mutex<FastMap<Arc<str>, Running>>,
    totals: Mutex<FastMap<String, u64>>,
    revoked: Mutex<(HashSet<String>, VecDeque<String>)>,
    /// Whether task events are sent (`-E`, or `celery control enable_events`).
    task_events: AtomicBool,
    /// Time limits set by remote control, by task name.
    time_limits: Mutex<HashMap<String, TimeLimits>>,
    /// Stamps revoked by remote control (`revoke_by_stamped_headers`): header and value.
    revoked_stamps: Mutex<Vec<(String, Value)>>,
    /// The queues consumed now (the flags', and what remote control added or cancelled).
    queues: Mutex<Vec<TaskQueue>>,
    /// Tasks run at once (the flag's, and what `pool_grow`/`pool_shrink` made of it).
    concurrency: AtomicUsize,
    /// Counters, the run time histogram and readiness, served on `--metrics-addr`.
    pub metrics: Arc<Metrics>,
    /// When each rate-limited task may start next, and the limits remote control set.
    pub rates: crate::rate::RateLimits,
    /// Cancelled to stop the worker as SIGTERM does (`celery control shutdown`).
    pub stop: CancellationToken,
}

impl WorkerState {
    pub(crate) fn new(hostname: impl Into<String>, metrics: Arc<Metrics>) -> Self {
        Self {
            hostname: hostname.into(),
            started: Instant::now(),
            clock: AtomicU64::new(0),
            processed: AtomicU64::new(0),
            reserved: Mutex::default(),
            active: Mutex::default(),
            totals: Mutex::default(),
            revoked: Mutex::default(),
            task_events: AtomicBool::new(false),
            time_limits: Mutex::default(),
            revoked_stamps: Mutex::default(),
            queues: Mutex::default(),
            concurrency: AtomicUsize::new(1),
            metrics,
            rates: crate::rate::RateLimits::default(),
            stop: CancellationToken::new(),
        }
    }

    /// The state whose `stop` is the worker's own stop token, with the flags' queues and
    /// concurrency.
    pub(crate) fn for_worker(
        hostname: impl Into<String>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
        queues: Vec<TaskQueue>,
        concurrency: usize,
    ) -> Self {
        let me = Self {
            stop,
            ..Self::new(hostname, metrics)
        };
        *lock(&me.queues) = queues;
        me.concurrency.store(concurrency, Ordering::Relaxed);
        me
    }

    /// The queues consumed now.
    pub(crate) fn queues(&self) -> Vec<TaskQueue> {
        lock(&self.queues).clone()
    }

    /// Adds a queue (`add_consumer`); false when it is consumed already.
    pub(crate) fn add_queue(&self, q: TaskQueue) -> bool {
        let mut queues = lock(&self.queues);
        if queues.iter().any(|x| x.name == q.name) {
            return false;
        }
        queues.push(q);
        true
    }

    /// Removes a queue (`cancel_consumer`); false when it was not consumed.
    pub(crate) fn remove_queue(&self, name: &str) -> bool {
        let mut queues = lock(&self.queues);
        let before = queues.len();
        queues.retain(|q| q.name != name);
        queues.len() != before
    }

    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency.load(Ordering::Relaxed)
    }

    pub(crate) fn set_concurrency(&self, n: usize) {
        self.concurrency.store(n, Ordering::Relaxed);
    }

    /// Revokes tasks by stamp: `{header: value}` (a list value revokes each of its items).
    pub(crate) fn revoke_stamps(&self, headers: &Map<String, Value>) {
        let mut stamps = lock(&self.revoked_stamps);
        for (k, v) in headers {
            let values: Vec<Value> = match v {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            for value in values {
                if !stamps.iter().any(|(h, x)| h == k && *x == value) {
                    stamps.push((k.clone(), value));
                }
            }
        }
    }

    /// Whether a task with these stamps is revoked by stamp.
    pub(crate) fn is_revoked_by_stamps(&self, stamps: &Value) -> bool {
        let revoked = lock(&self.revoked_stamps);
        if revoked.is_empty() {
            return false;
        }
        matches_stamps(&revoked, stamps)
    }

    /// Terminates the running tasks whose stamps match `headers`; their ids.
    pub(crate) fn terminate_stamped(&self, headers: &Map<String, Value>) -> Vec<String> {
        let wanted: Vec<(String, Value)> = headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let active = lock(&self.active);
        active
            .values()
            .filter(|r| matches_stamps(&wanted, &r.info.stamps))
            .map(|r| {
                r.terminate.cancel();
                r.info.id.to_string()
            })
            .collect()
    }

    /// Advances the Lamport clock; with `seen`, first moves it past a clock value received.
    pub(crate) fn tick(&self, seen: Option<u64>) -> u64 {
        if let Some(seen) = seen {
            self.clock.fetch_max(seen, Ordering::Relaxed);
        }
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The clock's value, not advanced.
    pub(crate) fn clock(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    /// A task received and waiting to run.
    pub(crate) fn reserve(&self, task: Arc<TaskInfo>) {
        lock(&self.reserved).insert(task.id.clone(), task);
    }

    /// A reserved task that will not run here after all (dead-lettered, expired, revoked,
    /// moved, requeued).
    pub(crate) fn unreserve(&self, id: &str) {
        lock(&self.reserved).remove(id);
    }

    /// A task starts running; the token that terminates it. It is listed as active from its
    /// own record (not the reserved entry of its id, which another delivery of the same id may
    /// have replaced or removed). One lock at a time: `query_json` takes active, then
    /// reserved.
    pub(crate) fn started(&self, task: Arc<TaskInfo>) -> CancellationToken {
        lock(&self.reserved).remove(&*task.id);
        let terminate = CancellationToken::new();
        lock(&self.active).insert(
            task.id.clone(),
            Running {
                info: task,
                started_unix: maestro_broker::events::now_unix(),
                terminate: terminate.clone(),
            },
        );
        self.metrics.task_running(true);
        terminate
    }

    pub(crate) fn finished(&self, id: &str, name: &str) {
        lock(&self.active).remove(id);
        let mut totals = lock(&self.totals);
        // The name is copied only the first time it is counted.
        match totals.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                totals.insert(name.to_owned(), 1);
            }
        }
        self.processed.fetch_add(1, Ordering::Relaxed);
        self.metrics.task_running(false);
    }

    pub(crate) fn active_count(&self) -> usize {
        lock(&self.active).len()
    }

    pub(crate) fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }

    /// `inspect active`'s list.
    pub(crate) fn active_json(&self, safe: bool) -> Value {
        let active = lock(&self.active);
        Value::Array(
            active
                .values()
                .map(|r| r.json(&self.hostname, safe))
                .collect(),
        )
    }

    /// `inspect reserved`'s list.
    pub(crate) fn reserved_json(&self) -> Value {
        let reserved = lock(&self.reserved);
        Value::Array(
            reserved
                .values()
                .map(|t| t.json(&self.hostname, false, None))
                .collect(),
        )
    }

    /// `inspect query_task`: `{id: [state, info]}` for the ids this worker holds.
    pub(crate) fn query_json(&self, ids: &[String]) -> Value {
        let mut out = serde_json::Map::new();
        let active = lock(&self.active);
        let reserved = lock(&self.reserved);
        for id in ids {
            if let Some(r) = active.get(id.as_str()) {
                out.insert(id.clone(), json!(["active", r.json(&self.hostname, false)]));
            } else if let Some(t) = reserved.get(id.as_str()) {
                out.insert(
                    id.clone(),
                    json!(["reserved", t.json(&self.hostname, false, None)]),
                );
            }
        }
        Value::Object(out)
    }

    pub(crate) fn totals_json(&self) -> Value {
        json!(*lock(&self.totals))
    }

    /// Marks ids revoked: they are not run if they arrive later. Ids longer than
    /// [`REVOKED_ID_BYTES_MAX`] are ignored. The ids newly revoked.
    pub(crate) fn revoke(&self, ids: &[String]) -> Vec<String> {
        let mut added = Vec::new();
        let mut guard = lock(&self.revoked);
        let (set, order) = &mut *guard;
        for id in ids.iter().filter(|i| i.len() <= REVOKED_ID_BYTES_MAX) {
            if set.insert(id.clone()) {
                order.push_back(id.clone());
                added.push(id.clone());
            }
        }
        while order.len() > REVOKED_MAX {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
        added
    }

    pub(crate) fn is_revoked(&self, id: &str) -> bool {
        let guard = lock(&self.revoked);
        !guard.0.is_empty() && guard.0.contains(id)
    }

    /// Revoked ids, oldest first (`inspect revoked`, mingle, the state file).
    pub(crate) fn revoked_ids(&self) -> Vec<String> {
        lock(&self.revoked).1.iter().cloned().collect()
    }

    /// Terminates the running tasks among `ids`; the ids terminated.
    pub(crate) fn terminate(&self, ids: &[String]) -> Vec<String> {
        let active = lock(&self.active);
        ids.iter()
            .filter_map(|id| {
                let r = active.get(id.as_str())?;
                r.terminate.cancel();
                Some(id.clone())
            })
            .collect()
    }

    /// Whether task events are sent now.
    pub(crate) fn task_events(&self) -> bool {
        self.task_events.load(Ordering::Relaxed)
    }

    /// Turns task events on or off; whether that changed anything.
    pub(crate) fn set_task_events(&self, on: bool) -> bool {
        self.task_events.swap(on, Ordering::Relaxed) != on
    }

    /// The time limits remote control set for `task`, if any.
    pub(crate) fn time_limits(&self, task: &str) -> Option<TimeLimits> {
        let limits = lock(&self.time_limits);
        if limits.is_empty() {
            return None;
        }
        limits.get(task).copied()
    }

    pub(crate) fn set_time_limits(&self, task: &str, limits: TimeLimits) {
        lock(&self.time_limits).insert(task.to_owned(), limits);
    }
}

/// Whether `stamps` (a task's `{header: value or [values]}`) holds one of `revoked`.
fn matches_stamps(revoked: &[(String, Value)], stamps: &Value) -> bool {
    revoked
        .iter()
        .any(|(header, value)| match stamps.get(header) {
            Some(Value::Array(a)) => a.contains(value),
            Some(v) => v == value,
            None => false,
        })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> Arc<TaskInfo> {
        Arc::new(TaskInfo {
            id: id.into(),
            name: "t".into(),
            args: "[1]".into(),
            kwargs: "{}".into(),
            queue: "q".into(),
            redelivered: false,
            stamps: json!({"tenant": ["a", "b"]}),
        })
    }

    #[test]
    fn revoked_ids_are_bounded_oldest_first() {
        let s = WorkerState::new("w", Arc::new(Metrics::new([], [])));
        let ids: Vec<String> = (0..REVOKED_MAX + 2).map(|i| i.to_string()).collect();
        s.revoke(&ids);
        assert!(!s.is_revoked("0") && !s.is_revoked("1"));
        assert!(s.is_revoked("2") && s.is_revoked(&(REVOKED_MAX + 1).to_string()));
        assert_eq!(s.revoked_ids().first().map(String::as_str), Some("2"));
        assert!(s.revoke(&["x".repeat(REVOKED_ID_BYTES_MAX + 1)]).is_empty());
    }

    #[test]
    fn the_clock_moves_past_what_it_sees() {
        let s = WorkerState::new("w", Arc::new(Metrics::new([], [])));
        assert_eq!(s.tick(None), 1);
        assert_eq!(s.tick(Some(10)), 11);
        assert_eq!(s.clock(), 11);
    }

    #[test]
    fn tasks_move_from_reserved_to_active_and_can_be_terminated() {
        let s = WorkerState::new("w", Arc::new(Metrics::new([], [])));
        s.reserve(info("a"));
        assert_eq!(s.query_json(&["a".into()])["a"][0], "reserved");
        let token = s.started(info("a"));
        assert_eq!(s.query_json(&["a".into()])["a"][0], "active");
        assert_eq!(s.reserved_json(), json!([]));
        assert_eq!(s.active_json(false)[0]["args"], json!([1]));
        assert_eq!(s.active_json(true)[0]["args"], json!("[1]"));
        assert_eq!(s.terminate(&["a".into(), "b".into()]), ["a"]);
        assert!(token.is_cancelled());
        s.finished("a", "t");
        assert_eq!(s.query_json(&["a".into()]), json!({}));
    }

    #[test]
    fn stamps_revoke_what_carries_them() {
        let s = WorkerState::new("w", Arc::new(Metrics::new([], [])));
        assert!(!s.is_revoked_by_stamps(&json!({"tenant": "a"})));
        let headers = json!({"tenant": "b"});
        s.revoke_stamps(headers.as_object().expect("object"));
        assert!(s.is_revoked_by_stamps(&json!({"tenant": ["a", "b"]})));
        assert!(s.is_revoked_by_stamps(&json!({"tenant": "b"})));
        assert!(!s.is_revoked_by_stamps(&json!({"tenant": "c"})));
        let token = s.started(info("x"));
        assert_eq!(
            s.terminate_stamped(headers.as_object().expect("object")),
            ["x"]
        );
        assert!(token.is_cancelled());
    }
}
