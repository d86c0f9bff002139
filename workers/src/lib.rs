//! The worker runtime.
//!
//! - `config`    flags and environment, checked once
//! - `worker`    lifecycle: connect, declare, consume, reconnect
//! - `consumer`  one session: channels, prefetch, deliveries to runs, drain on shutdown
//! - `processor` one delivery into one task run and one settlement
//! - `canvas`    links, errbacks, chain steps and chord callbacks after an outcome
//! - `acker`     the one place that acks or requeues, with batched acks
//! - `shutdown`  cancellation: stop taking, drain to one deadline, requeue the rest
//! - `stats`     running tasks, totals, revoked ids, the Lamport clock
//! - `events`    Celery events (-E) on celeryev
//! - `control`   remote control on celery.pidbox (inspect, revoke)
//! - `metrics`   /healthz, /readyz and Prometheus /metrics on --metrics-addr

pub mod acker;
pub mod canvas;
pub mod config;
pub mod consumer;
pub mod control;
pub mod events;
mod followup;
pub mod metrics;
pub mod processor;
pub mod shutdown;
pub mod stats;
pub mod worker;
