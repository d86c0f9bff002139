//! maestro-beat: a periodic scheduler that runs as several replicas with one leader and fires
//! each schedule once per due time, across crashes and failovers.
//!
//! - [`lease`]: leadership, one MongoDB document taken and renewed by single atomic
//!   find-and-modify operations, with an epoch that grows on every takeover.
//! - [`schedule`]: Maestro's `schedulers` documents and when they are due.
//! - [`fire`]: a fire is a compare-and-set on the schedule document fenced by the epoch, then a
//!   confirmed publish of a task whose id derives from (schedule, due time).

pub mod beat;
pub mod clock;
pub mod config;
pub mod fire;
pub mod lease;
pub mod metrics;
pub mod schedule;
