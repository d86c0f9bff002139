//! Maestro's queues and task names. Maestro sent every task of a service to that service's
//! queue, and task names clash across services, so the queue is part of a task's identity.

/// Discovery (Maestro's discovery-api workers).
pub const QUEUE_DISCOVERY: &str = "discovery";
/// Reports (Maestro's code said `reports`, its docs `report`; this project uses `report`).
pub const QUEUE_REPORT: &str = "report";
pub const QUEUE_ANALYTICS: &str = "analytics";
pub const QUEUE_WEBHOOK: &str = "webhook";
pub const QUEUE_NOTIFY: &str = "notify";
/// Maestro's scheduled HTTP jobs (scheduler-app's worker queue).
pub const QUEUE_SCHEDULER: &str = "scheduler";
/// Celery's default queue, where the diagnostic tasks go.
pub const QUEUE_CELERY: &str = "celery";

pub const TASK_DISCOVERY_SCAN: &str = "maestro.discovery.scan";
pub const TASK_REPORT_GENERAL: &str = "maestro.report.general";
pub const TASK_REPORT_PIVOT: &str = "maestro.report.pivot";
/// One chunk of a report's rows (sent by the report task, never by clients).
pub const TASK_REPORT_UPLOAD: &str = "maestro.report.upload";
/// A report's chord callback (sent by the report task, never by clients).
pub const TASK_REPORT_FINISH: &str = "maestro.report.finish";
pub const TASK_AGGREGATION: &str = "maestro.aggregation";
/// Maestro's business dependency map of a graph document (analytics).
pub const TASK_ANALYTICS_GRAPH: &str = "maestro.analytics.graph";
pub const TASK_WEBHOOK: &str = "maestro.webhook";
pub const TASK_NOTIFY: &str = "maestro.notify";
/// A diagnostic task with a side effect: how often each task id really ran.
pub const TASK_RECORD: &str = "maestro.record";
/// One run of one of Maestro's scheduled HTTP jobs (`maestro_contract::job`).
pub const TASK_SCHEDULER_RUN: &str = "maestro.scheduler.run";
