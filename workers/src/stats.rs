//! What the worker knows about itself, for remote control and events: tasks running now,
//! totals per task name, revoked ids, and the Lamport clock Celery's events and replies carry;
//! and the Prometheus metrics (`metrics`), shared the same way.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

use crate::metrics::Metrics;

/// Revoked ids kept, oldest forgotten first (Celery keeps 50,000 too).
pub(crate) const REVOKED_MAX: usize = 50_000;

/// One running task, as `inspect active` shows it.
#[derive(Debug, Clone)]
pub(crate) struct ActiveTask {
    pub id: String,
    pub name: String,
    pub args: String,
    pub kwargs: String,
    pub queue: String,
    pub started_unix: f64,
}

/// The worker's own state, shared by every session.
pub(crate) struct WorkerState {
    pub hostname: String,
    pub started: Instant,
    clock: AtomicU64,
    processed: AtomicU64,
    active: Mutex<HashMap<String, ActiveTask>>,
    totals: Mutex<HashMap<String, u64>>,
    revoked: Mutex<(HashSet<String>, VecDeque<String>)>,
    /// Counters, the run time histogram and readiness, served on `--metrics-addr`.
    pub metrics: Arc<Metrics>,
    /// When each rate-limited task may start next.
    pub rates: crate::rate::RateLimits,
}

impl WorkerState {
    pub(crate) fn new(hostname: impl Into<String>, metrics: Arc<Metrics>) -> Self {
        Self {
            hostname: hostname.into(),
            started: Instant::now(),
            clock: AtomicU64::new(0),
            processed: AtomicU64::new(0),
            active: Mutex::default(),
            totals: Mutex::default(),
            revoked: Mutex::default(),
            metrics,
            rates: crate::rate::RateLimits::default(),
        }
    }

    /// Advances the Lamport clock; with `seen`, first moves it past a clock value received.
    pub(crate) fn tick(&self, seen: Option<u64>) -> u64 {
        if let Some(seen) = seen {
            self.clock.fetch_max(seen, Ordering::Relaxed);
        }
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn started(&self, task: ActiveTask) {
        lock(&self.active).insert(task.id.clone(), task);
        self.metrics.task_running(true);
    }

    pub(crate) fn finished(&self, id: &str, name: &str) {
        lock(&self.active).remove(id);
        *lock(&self.totals).entry(name.to_owned()).or_default() += 1;
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
    pub(crate) fn active_json(&self) -> Value {
        let active = lock(&self.active);
        Value::Array(
            active
                .values()
                .map(|t| {
                    json!({
                        "id": t.id, "name": t.name, "args": t.args, "kwargs": t.kwargs, "type": t.name,
                        "hostname": self.hostname, "time_start": t.started_unix, "acknowledged": false,
                        "delivery_info": {"exchange": "", "routing_key": t.queue, "priority": 0, "redelivered": false},
                        "worker_pid": std::process::id(),
                    })
                })
                .collect(),
        )
    }

    pub(crate) fn totals_json(&self) -> Value {
        json!(*lock(&self.totals))
    }

    /// Marks ids revoked: they are not run if they arrive later.
    pub(crate) fn revoke(&self, ids: &[String]) {
        let mut guard = lock(&self.revoked);
        let (set, order) = &mut *guard;
        for id in ids {
            if set.insert(id.clone()) {
                order.push_back(id.clone());
            }
        }
        while order.len() > REVOKED_MAX {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
    }

    pub(crate) fn is_revoked(&self, id: &str) -> bool {
        let guard = lock(&self.revoked);
        !guard.0.is_empty() && guard.0.contains(id)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_ids_are_bounded_oldest_first() {
        let s = WorkerState::new("w", Arc::new(Metrics::new([], [])));
        let ids: Vec<String> = (0..REVOKED_MAX + 2).map(|i| i.to_string()).collect();
        s.revoke(&ids);
        assert!(!s.is_revoked("0") && !s.is_revoked("1"));
        assert!(s.is_revoked("2") && s.is_revoked(&(REVOKED_MAX + 1).to_string()));
    }

    #[test]
    fn the_clock_moves_past_what_it_sees() {
        let s = WorkerState::new("w", Arc::new(Metrics::new([], [])));
        assert_eq!(s.tick(None), 1);
        assert_eq!(s.tick(Some(10)), 11);
    }
}
