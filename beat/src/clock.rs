//! Wall-clock time, injectable so tests can drive it with tokio's paused clock.

use chrono::{DateTime, TimeDelta, Utc};

/// A source of wall-clock time (UTC). Lease expiry and due times are wall-clock; deadlines
/// inside one process use tokio's monotonic `Instant`.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Wall time that moves with tokio's clock: `start` plus the tokio time elapsed since it was
/// made. Under `tokio::time::pause` it advances only when the test advances time.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    wall: DateTime<Utc>,
    at: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(wall: DateTime<Utc>) -> Self {
        Self {
            wall,
            at: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.at.elapsed()).unwrap_or(TimeDelta::MAX);
        self.wall + elapsed
    }
}

pub use maestro_contract::schedule::{from_bson_date as from_bson, to_bson_date as to_bson};
