//! Rate limits per task (Celery's `rate_limit`): when each task may start next on this worker.
//! A run over its limit waits without its concurrency slot, so other tasks run meanwhile; the
//! message stays unacknowledged, as Celery keeps rate-limited messages reserved.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use maestro_tasks::RateLimit;
use tokio::time::Instant;

/// The next start allowed per task name, and the limits remote control set.
#[derive(Debug, Default)]
pub(crate) struct RateLimits {
    next: Mutex<HashMap<String, Instant>>,
    /// `celery control rate_limit`: a task's limit replaced (`None`: no limit).
    set: Mutex<HashMap<String, Option<RateLimit>>>,
}

impl RateLimits {
    /// The limit in force for `task`: the one remote control set, else the task's own.
    pub(crate) fn limit_for(&self, task: &str, own: Option<RateLimit>) -> Option<RateLimit> {
        let set = self.set.lock().unwrap_or_else(|p| p.into_inner());
        if set.is_empty() {
            return own;
        }
        set.get(task).copied().unwrap_or(own)
    }

    /// Replaces `task`'s limit (`None`: none) until the worker stops.
    pub(crate) fn set_limit(&self, task: &str, limit: Option<RateLimit>) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.to_owned(), limit);
        self.next
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(task);
    }

    /// Reserves the next start of `task` under `limit`: how long from now it must wait.
    /// Starts are spaced `limit.interval` apart (a token bucket of capacity one).
    pub(crate) fn reserve(&self, task: &str, limit: RateLimit) -> Duration {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let at = next.get(task).copied().filter(|t| *t > now).unwrap_or(now);
        next.insert(task.to_owned(), at + limit.interval);
        at - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn starts_are_spaced_by_the_interval() {
        let r = RateLimits::default();
        let limit = RateLimit::parse("10/s").expect("valid");
        assert_eq!(r.reserve("a", limit), Duration::ZERO);
        assert_eq!(r.reserve("a", limit), Duration::from_millis(100));
        assert_eq!(r.reserve("a", limit), Duration::from_millis(200));
        assert_eq!(r.reserve("b", limit), Duration::ZERO, "per task");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(r.reserve("a", limit), Duration::ZERO, "no burst saved up");
        assert_eq!(r.reserve("a", limit), Duration::from_millis(100));
    }

    #[test]
    fn remote_control_replaces_a_tasks_limit() {
        let r = RateLimits::default();
        let own = RateLimit::parse("10/s").ok();
        assert_eq!(r.limit_for("a", own), own);
        r.set_limit("a", None);
        assert_eq!(r.limit_for("a", own), None, "disabled");
        let new = RateLimit::parse("1/m").ok();
        r.set_limit("a", new);
        assert_eq!(r.limit_for("a", own), new);
        assert_eq!(r.limit_for("b", own), own, "per task");
    }
}
