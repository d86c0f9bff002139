//! A task's own options, as Celery's task attributes: each one left unset falls back to the
//! worker's flag of the same meaning, and a message's own value (its `timelimit`, its
//! `ignore_result`) wins over both.

use std::fmt;
use std::time::Duration;

use maestro_broker::ExceptionInfo;
use serde_json::Value;

use crate::context::TaskContext;

/// Celery's default `max_retries`.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// Celery's `retry_backoff_max`: the longest delay of an automatic retry with backoff.
pub const DEFAULT_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(600);

/// The options of one task (Celery's task attributes). Made in code with the setters, or by
/// `#[task(...)]` from its arguments.
#[derive(Clone)]
pub struct TaskOptions {
    /// Retries honoured before the task fails for good; `None` retries for ever.
    pub max_retries: Option<u32>,
    /// Delay of a retry that names no countdown. Unset: the retry backoff below, else the
    /// worker's `--retry-backoff-min/max`.
    pub default_retry_delay: Option<Duration>,
    /// Exception types (`ConnectionError`, `OperationalError`, ...) whose failures are
    /// retried rather than recorded, as Celery's `autoretry_for`; when the retries run out
    /// the task fails with that exception.
    pub autoretry_for: Vec<String>,
    /// First delay of an exponential backoff for retries without a countdown (Celery's
    /// `retry_backoff`), doubled per retry.
    pub retry_backoff: Option<Duration>,
    /// Longest backoff delay (Celery's `retry_backoff_max`, 600 s).
    pub retry_backoff_max: Option<Duration>,
    /// Randomise backoff delays (Celery's `retry_jitter`, on by default).
    pub retry_jitter: Option<bool>,
    /// Runs started per worker at most, as Celery's `rate_limit` (`"10/s"`); messages past
    /// it wait in the worker without holding a concurrency slot.
    pub rate_limit: Option<RateLimit>,
    /// Hard time limit: the run is dropped and fails with `TimeLimitExceeded`.
    pub time_limit: Option<Duration>,
    /// Soft time limit: the context's cancellation fires, the task decides how to stop.
    pub soft_time_limit: Option<Duration>,
    /// Acknowledge after the run (true) or before it (false).
    pub acks_late: Option<bool>,
    /// Store no result (a message's own `ignore_result` counts too).
    pub ignore_result: Option<bool>,
    /// Store STARTED before the run.
    pub track_started: Option<bool>,
    /// The queue its calls go to when the sender names none (typed signatures, follow-ups).
    pub queue: Option<String>,
    /// How long after sending a call expires (typed signatures set `expires` from it).
    pub expires: Option<Duration>,
    /// Called after the outcome is recorded.
    pub hooks: Hooks,
}

impl Default for TaskOptions {
    fn default() -> Self {
        Self {
            max_retries: Some(DEFAULT_MAX_RETRIES),
            default_retry_delay: None,
            autoretry_for: Vec::new(),
            retry_backoff: None,
            retry_backoff_max: None,
            retry_jitter: None,
            rate_limit: None,
            time_limit: None,
            soft_time_limit: None,
            acks_late: None,
            ignore_result: None,
            track_started: None,
            queue: None,
            expires: None,
            hooks: Hooks::default(),
        }
    }
}

impl fmt::Debug for TaskOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskOptions")
            .field("max_retries", &self.max_retries)
            .field("default_retry_delay", &self.default_retry_delay)
            .field("autoretry_for", &self.autoretry_for)
            .field("retry_backoff", &self.retry_backoff)
            .field("retry_backoff_max", &self.retry_backoff_max)
            .field("retry_jitter", &self.retry_jitter)
            .field("rate_limit", &self.rate_limit)
            .field("time_limit", &self.time_limit)
            .field("soft_time_limit", &self.soft_time_limit)
            .field("acks_late", &self.acks_late)
            .field("ignore_result", &self.ignore_result)
            .field("track_started", &self.track_started)
            .field("queue", &self.queue)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl TaskOptions {
    /// Celery's defaults: three retries, everything else from the worker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Retries honoured; `None` retries for ever.
    pub fn max_retries(mut self, max: Option<u32>) -> Self {
        self.max_retries = max;
        self
    }

    pub fn default_retry_delay(mut self, delay: Duration) -> Self {
        self.default_retry_delay = Some(delay);
        self
    }

    /// Retries failures of these exception types (see the field).
    pub fn autoretry_for<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.autoretry_for = types.into_iter().map(Into::into).collect();
        self
    }

    pub fn retry_backoff(mut self, first: Duration) -> Self {
        self.retry_backoff = Some(first);
        self
    }

    pub fn retry_backoff_max(mut self, max: Duration) -> Self {
        self.retry_backoff_max = Some(max);
        self
    }

    pub fn retry_jitter(mut self, jitter: bool) -> Self {
        self.retry_jitter = Some(jitter);
        self
    }

    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = Some(limit);
        self
    }

    pub fn soft_time_limit(mut self, limit: Duration) -> Self {
        self.soft_time_limit = Some(limit);
        self
    }

    pub fn acks_late(mut self, late: bool) -> Self {
        self.acks_late = Some(late);
        self
    }

    pub fn ignore_result(mut self, ignore: bool) -> Self {
        self.ignore_result = Some(ignore);
        self
    }

    pub fn track_started(mut self, track: bool) -> Self {
        self.track_started = Some(track);
        self
    }

    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    pub fn expires(mut self, after: Duration) -> Self {
        self.expires = Some(after);
        self
    }

    pub fn on_success(mut self, hook: SuccessHook) -> Self {
        self.hooks.on_success = Some(hook);
        self
    }

    pub fn on_failure(mut self, hook: ErrorHook) -> Self {
        self.hooks.on_failure = Some(hook);
        self
    }

    pub fn on_retry(mut self, hook: ErrorHook) -> Self {
        self.hooks.on_retry = Some(hook);
        self
    }

    /// Whether a failure with `exc` is retried automatically.
    pub fn autoretries(&self, exc: &ExceptionInfo) -> bool {
        self.autoretry_for
            .iter()
            .any(|t| *t == exc.exc_type || *t == format!("{}.{}", exc.exc_module, exc.exc_type))
    }
}

/// Called with the run's context and its result, after the SUCCESS is recorded.
pub type SuccessHook = fn(&TaskContext, &Value);
/// Called with the run's context and the exception, after the FAILURE (or RETRY) is recorded.
pub type ErrorHook = fn(&TaskContext, &ExceptionInfo);

/// Celery's `on_success`, `on_failure` and `on_retry`. A hook runs on the worker's async
/// thread after the outcome is recorded: keep it short (a log line, a metric, a channel
/// send); a panic in it is caught and logged.
#[derive(Clone, Copy, Default)]
pub struct Hooks {
    pub on_success: Option<SuccessHook>,
    pub on_failure: Option<ErrorHook>,
    pub on_retry: Option<ErrorHook>,
}

/// Runs started per period at most: Celery's `rate_limit` (`"10/s"`, `"100/m"`, `"1000/h"`,
/// or a bare number per second), spread evenly as Celery's token bucket of capacity one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Time between two starts.
    pub interval: Duration,
}

/// A rate limit that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit {0:?}: expected a positive number of runs per s, m or h, like \"10/s\"")]
pub struct BadRateLimit(pub String);

impl RateLimit {
    /// `runs` starts per second.
    pub fn per_second(runs: f64) -> Option<Self> {
        (runs.is_finite() && runs > 0.0).then(|| Self {
            interval: Duration::from_secs_f64(1.0 / runs),
        })
    }

    /// Reads Celery's syntax.
    pub fn parse(text: &str) -> Result<Self, BadRateLimit> {
        let bad = || BadRateLimit(text.to_owned());
        let (count, per) = match text.trim().split_once('/') {
            Some((n, unit)) => (n, unit.trim()),
            None => (text.trim(), "s"),
        };
        let count: f64 = count.trim().parse().map_err(|_| bad())?;
        let secs = match per {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        Self::per_second(count / secs).ok_or_else(bad)
    }

    /// Runs per second.
    pub fn per_second_rate(&self) -> f64 {
        1.0 / self.interval.as_secs_f64()
    }
}

/// In Celery's syntax, in the largest unit that gives a whole count (`10/m`, not
/// `0.1666/s`).
impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_second = self.per_second_rate();
        for (unit, secs) in [("s", 1.0), ("m", 60.0), ("h", 3600.0)] {
            let count = per_second * secs;
            if (count - count.round()).abs() < 1e-6 && count.round() >= 1.0 {
                return write!(f, "{}/{unit}", count.round());
            }
        }
        write!(f, "{per_second}/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_read_celery_syntax() {
        let per = |t: &str| RateLimit::parse(t).map(|r| r.interval);
        assert_eq!(per("10/s"), Ok(Duration::from_millis(100)));
        assert_eq!(per("120/m"), Ok(Duration::from_millis(500)));
        assert_eq!(per("3600/h"), Ok(Duration::from_secs(1)));
        assert_eq!(per("4"), Ok(Duration::from_millis(250)));
        assert_eq!(per(" 2 / s "), Ok(Duration::from_millis(500)));
        let shown = |t: &str| {
            RateLimit::parse(t)
                .map(|r| r.to_string())
                .unwrap_or_default()
        };
        assert_eq!(shown("10/s"), "10/s");
        assert_eq!(shown("10/m"), "10/m");
        assert_eq!(shown("90/m"), "90/m");
        assert_eq!(shown("7/h"), "7/h");
        for bad in ["", "x/s", "10/d", "0/s", "-1/s", "10/", "inf/s", "NaN"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn autoretry_matches_the_type_or_its_qualified_name() {
        let o = TaskOptions::new().autoretry_for(["ConnectionError", "celery.exceptions.Foo"]);
        assert!(o.autoretries(&ExceptionInfo::builtin("ConnectionError", "x")));
        assert!(!o.autoretries(&ExceptionInfo::builtin("ValueError", "x")));
        assert!(o.autoretries(&ExceptionInfo::celery("Foo", "x")));
    }
}
