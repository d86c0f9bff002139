//! maestro-beat: a periodic scheduler that runs as several replicas with one leader and fires
//! each schedule once per due time, across crashes and failovers.
//!
//! - `beat`    the loop: elect, read schedules each tick, fire what is due
//! - `lease`   leadership: one MongoDB document taken and renewed by single atomic
//!   find-and-modify operations, with an epoch that grows on every takeover
//! - `fire`    a fire is a compare-and-set on the schedule document fenced by the epoch, then a
//!   confirmed publish of a task whose id derives from (schedule, due time)
//! - `clock`   the time source (paused in tests)
//! - `config`  flags and environment, checked once
//! - `metrics` Prometheus metrics and the health endpoint
//!
//! The schedule documents themselves (Maestro's `schedulers` shape, when each is due) are
//! `maestro_contract::schedule`, shared with the API that stores them.

pub mod beat;
pub mod clock;
pub mod config;
pub mod fire;
pub mod lease;
pub mod metrics;

pub use beat::{BeatError, run};
pub use config::{BeatConfig, Cli};
