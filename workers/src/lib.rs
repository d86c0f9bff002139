//! The worker runtime: Celery protocol-v2 tasks from RabbitMQ queues, run by Rust code.
//!
//! - `config`    [`WorkerArgs`] (flags), [`WorkerConfig`] (checked; also built in code)
//! - `launch`    a worker process from `main`: stack guard, logging, runtime, signals
//! - `worker`    lifecycle: connect, declare, consume, reconnect
//! - `consumer`  one session: channels, prefetch, deliveries to runs, drain on shutdown
//! - `processor` one delivery into one task run and one settlement
//! - `canvas`    links, errbacks, chain steps and chord callbacks after an outcome
//! - `acker`     the one place that acks or requeues, with batched acks
//! - `shutdown`  cancellation: stop taking, drain to one deadline, requeue the rest
//! - `stats`     running tasks, totals, revoked ids, the Lamport clock
//! - `events`    Celery events (-E) on celeryev
//! - `control`   remote control on celery.pidbox (inspect, revoke)
//! - `metrics`   Prometheus metrics and readiness, served on --metrics-addr

mod acker;
mod canvas;
pub mod config;
mod consumer;
mod control;
mod events;
mod followup;
pub mod launch;
mod metrics;
pub mod processor;
mod shutdown;
mod stats;
mod worker;

pub use config::{ResultBackend, WorkerArgs, WorkerBuilder, WorkerCli, WorkerConfig};
pub use maestro_broker::config::ConfigError;
pub use shutdown::Shutdown;
pub use worker::{WorkerError, run};
