//! What crosses the wire between Maestro's API, its scheduler and its workers, written once:
//! the API checks a request with the same code the task runs, beat accepts exactly the
//! schedules the API stores.
//!
//! - `names`       queue and task names
//! - `routes`      Maestro's routing table (task -> queue)
//! - `check`       identifiers, collection names, free text
//! - `providers`   discovery's providers: tasks, their API calls, connection templates; the
//!   scan request
//! - `report`      the report request and where reports live
//! - `aggregation` the aggregation request
//! - `webhook`     the webhook request and the delivery's own headers
//! - `job`         Maestro's scheduled HTTP jobs (`maestro.scheduler.run`)
//! - `notify`      websocket and audit notifications
//! - `record`      the diagnostic `maestro.record` request
//! - `schedule`    schedule documents (`schedulers`): cadence, target, fencing fields
//! - `stored`      how Maestro's documents hold values (ObjectIds, dates)
//! - `mongo`       the flags naming Maestro's MongoDB
//!
//! Every request is a serde type with `PARAMS` (its positional order, for task calls) and
//! `validate()`, whose `FieldError` the API answers as a 422 and a task as a `ValueError`. Each
//! is its task's `CallArgs`: the worker's `#[task]` takes the whole call into it (`#[args]`);
//! `maestro.notify`, whose parameters depend on its channel, reads its call itself
//! ([`Notification::from_args`]).

pub mod aggregation;
pub mod check;
pub mod graph;
pub mod job;
pub mod mongo;
pub mod names;
pub mod notify;
pub mod providers;
pub mod record;
pub mod report;
pub mod routes;
pub mod schedule;
pub mod stored;
pub mod webhook;

pub use aggregation::AggregationRequest;
pub use graph::{GraphJob, GraphRequest};
pub use maestro_tasks::FieldError;
pub use mongo::{MongoArgs, ReportsArgs};
pub use notify::{AuditRecord, Notification, NotifyWsRequest};
pub use providers::ScanRequest;
pub use record::RecordRequest;
pub use report::{ReportKind, ReportRequest};
pub use webhook::WebhookRequest;
