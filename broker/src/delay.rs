//! Broker-side delays, compatible with kombu 5.5+ native delayed delivery.
//!
//! 28 topic exchanges and queues `celery_delayed_{0..27}`; queue `L` holds messages for 2^L
//! seconds and dead-letters them on to level `L-1`, the last level to the topic exchange
//! `celery_delayed_delivery`. A message's routing key is its delay written as 28 binary digits,
//! most significant first, each followed by a dot, then the destination routing key: at each
//! level a `1` digit routes it into that level's queue and a `0` straight on to the next
//! exchange. Nothing waits in worker memory, however many delayed tasks there are.

use chrono::{DateTime, Utc};

/// Number of delay levels (and binary digits in a delay routing key), as in kombu.
pub const LEVELS: u32 = 28;
/// Longest delay one pass through the levels can hold: 2^28 - 1 seconds (about 8.5 years).
/// A longer delay is cut to this; the message is delayed again when it comes out early.
pub const DELAY_SECS_MAX: u64 = (1 << LEVELS) - 1;

/// Names of the delay exchanges and queues. The default prefix `celery_delayed` is kombu's;
/// another prefix gives an isolated set (tests use one per run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayTopology {
    prefix: String,
}

impl Default for DelayTopology {
    fn default() -> Self {
        Self {
            prefix: "celery_delayed".into(),
        }
    }
}

impl DelayTopology {
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Exchange and queue name of one level.
    pub fn level_name(&self, level: u32) -> String {
        format!("{}_{level}", self.prefix)
    }

    /// Where a delayed message is published: the highest level.
    pub fn entry_exchange(&self) -> String {
        self.level_name(LEVELS - 1)
    }

    /// The topic exchange messages reach when their delay has passed.
    pub fn delivery_exchange(&self) -> String {
        format!("{}_delivery", self.prefix)
    }
}

/// The routing key that delays a message by `delay_secs` on its way to `destination`.
pub fn routing_key(delay_secs: u64, destination: &str) -> String {
    let delay = delay_secs.min(DELAY_SECS_MAX);
    let mut key = String::with_capacity(LEVELS as usize * 2 + destination.len());
    for level in (0..LEVELS).rev() {
        key.push(if delay >> level & 1 == 1 { '1' } else { '0' });
        key.push('.');
    }
    key.push_str(destination);
    key
}

/// The binding key that takes delayed messages for `destination` out of the delivery exchange
/// into its queue. Exactly 28 single-word wildcards, so `x.report` never matches `report`.
pub fn queue_binding_key(destination: &str) -> String {
    let mut key = "*.".repeat(LEVELS as usize);
    key.push_str(destination);
    key
}

/// Whole seconds from `now` until `eta`, rounded up so a task never runs early; `None` when
/// the time has come.
pub fn delay_until(eta: DateTime<Utc>, now: DateTime<Utc>) -> Option<u64> {
    let ms = (eta - now).num_milliseconds();
    if ms <= 0 {
        return None;
    }
    Some((ms as u64).div_ceil(1000).min(DELAY_SECS_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_match_kombu() {
        // kombu: '.'.join(list(f'{countdown:028b}')) + f'.{routing_key}'
        assert_eq!(
            routing_key(1, "report"),
            format!("{}1.report", "0.".repeat(27))
        );
        assert_eq!(routing_key(5, "q"), format!("{}1.0.1.q", "0.".repeat(25)));
        assert_eq!(
            routing_key(DELAY_SECS_MAX, "q"),
            format!("{}q", "1.".repeat(28))
        );
        assert_eq!(routing_key(u64::MAX, "q"), routing_key(DELAY_SECS_MAX, "q"));
    }

    #[test]
    fn delays_round_up_and_never_run_early() {
        let now = Utc::now();
        assert_eq!(delay_until(now, now), None);
        assert_eq!(delay_until(now - chrono::Duration::seconds(5), now), None);
        assert_eq!(
            delay_until(now + chrono::Duration::milliseconds(1), now),
            Some(1)
        );
        assert_eq!(
            delay_until(now + chrono::Duration::milliseconds(1001), now),
            Some(2)
        );
        assert_eq!(
            delay_until(now + chrono::Duration::seconds(30), now),
            Some(30)
        );
    }

    #[test]
    fn names_follow_the_prefix() {
        let t = DelayTopology::default();
        assert_eq!(t.entry_exchange(), "celery_delayed_27");
        assert_eq!(t.delivery_exchange(), "celery_delayed_delivery");
        assert_eq!(t.level_name(0), "celery_delayed_0");
        assert_eq!(queue_binding_key("a.b").matches('*').count(), 28);
    }
}
