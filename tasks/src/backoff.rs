//! Retry delays, computed one way for everything that retries: exponential from a minimum,
//! doubling, with jitter (`backon`), and never past a ceiling. The worker uses it for a
//! `TaskError::Retry` without a countdown; a task that needs its own floor or ceiling (an HTTP
//! delivery honouring `Retry-After`) calls it with its own bounds.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The delay before try `retries + 1`: `min` doubled `retries` times, plus up to as much
/// again as jitter, at most `max` before jitter and `2 x max` after.
pub fn retry_delay(min: Duration, max: Duration, retries: u32) -> Duration {
    backoff_delay(min, max, retries, true)
}

/// [`retry_delay`], with the jitter on or off (a task's `retry_jitter`).
pub fn backoff_delay(min: Duration, max: Duration, retries: u32, jitter: bool) -> Duration {
    let mut builder = ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_factor(2.0)
        .without_max_times();
    if jitter {
        builder = builder.with_jitter();
    }
    builder
        .build()
        // Past 64 doublings every delay is the maximum; a message claiming billions of
        // retries must not make the caller step through them one by one.
        .nth(retries.min(64) as usize)
        .unwrap_or(max)
        .min(max * 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn delays_double_with_jitter_up_to_the_ceiling() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        for retries in 0..10u32 {
            let base = (min * 2u32.pow(retries)).min(max);
            let d = retry_delay(min, max, retries);
            assert!(
                d >= base && d <= (base * 2).min(max * 2),
                "{retries}: {d:?}"
            );
        }
        let started = Instant::now();
        let d = retry_delay(min, max, u32::MAX);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(d >= max && d <= max * 2);
    }
}
