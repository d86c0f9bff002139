//! The routing table: which queue each task goes to, shared by the API (which enqueues) and
//! the catalogue (whose tasks send follow-ups). Maestro sent every task of a service to that
//! service's queue, and task names clash across services, so the queue is part of a task's
//! identity; `MAESTRO_ROUTES=task=queue,...` adds tasks or moves them.

use std::collections::BTreeMap;

use maestro_broker::topology::validate_queue_name;

/// Maestro's default queues.
pub const QUEUE_DISCOVERY: &str = "discovery";
/// Reports (Maestro's code said `reports`, its docs `report`; this project uses `report`).
pub const QUEUE_REPORT: &str = "report";
pub const QUEUE_ANALYTICS: &str = "analytics";
pub const QUEUE_WEBHOOK: &str = "webhook";
pub const QUEUE_NOTIFY: &str = "notify";
/// Celery's default queue, where the diagnostic tasks go.
pub const QUEUE_CELERY: &str = "celery";

/// Task names of the catalogue.
pub const TASK_DISCOVERY_SCAN: &str = "maestro.discovery.scan";
pub const TASK_REPORT_GENERAL: &str = "maestro.report.general";
pub const TASK_REPORT_PIVOT: &str = "maestro.report.pivot";
pub const TASK_AGGREGATION: &str = "maestro.aggregation";
pub const TASK_WEBHOOK: &str = "maestro.webhook";
pub const TASK_NOTIFY: &str = "maestro.notify";
pub const TASK_REPORT_UPLOAD: &str = "maestro.report.upload";
pub const TASK_REPORT_FINISH: &str = "maestro.report.finish";

/// Longest task name accepted (Celery has no limit; AMQP short strings end at 255 bytes and
/// the name also travels in a long-string header, so this is generous).
pub const TASK_NAME_BYTES_MAX: usize = 255;

const DEFAULT_ROUTES: [(&str, &str); 12] = [
    (TASK_DISCOVERY_SCAN, QUEUE_DISCOVERY),
    (TASK_REPORT_GENERAL, QUEUE_REPORT),
    (TASK_REPORT_PIVOT, QUEUE_REPORT),
    (TASK_REPORT_UPLOAD, QUEUE_REPORT),
    (TASK_REPORT_FINISH, QUEUE_REPORT),
    (TASK_AGGREGATION, QUEUE_ANALYTICS),
    (TASK_WEBHOOK, QUEUE_WEBHOOK),
    (TASK_NOTIFY, QUEUE_NOTIFY),
    ("maestro.noop", QUEUE_CELERY),
    ("maestro.echo", QUEUE_CELERY),
    ("maestro.sleep", QUEUE_CELERY),
    ("maestro.fail", QUEUE_CELERY),
];

/// Task name -> queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingTable {
    routes: BTreeMap<String, String>,
}

impl Default for RoutingTable {
    fn default() -> Self {
        Self {
            routes: DEFAULT_ROUTES
                .iter()
                .map(|(t, q)| ((*t).to_owned(), (*q).to_owned()))
                .collect(),
        }
    }
}

/// Checks a task name: non-empty, at most `TASK_NAME_BYTES_MAX` bytes, no control characters
/// or spaces.
pub fn validate_task_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("task name is empty".into());
    }
    if name.len() > TASK_NAME_BYTES_MAX {
        return Err(format!(
            "task name is longer than {TASK_NAME_BYTES_MAX} bytes"
        ));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "task name {name:?} holds a space or control character"
        ));
    }
    Ok(())
}

impl RoutingTable {
    /// The defaults with `spec` (`task=queue,...`; blanks ignored) added over them.
    pub fn with_overrides(spec: &str) -> Result<Self, String> {
        let mut table = Self::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (task, queue) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not task=queue"))?;
            let (task, queue) = (task.trim(), queue.trim());
            validate_task_name(task)?;
            validate_queue_name(queue)?;
            table.routes.insert(task.to_owned(), queue.to_owned());
        }
        Ok(table)
    }

    /// The queue of `task`, if the task is known.
    pub fn queue_for(&self, task: &str) -> Option<&str> {
        self.routes.get(task).map(String::as_str)
    }

    /// Whether some task routes to `queue`.
    pub fn has_queue(&self, queue: &str) -> bool {
        self.routes.values().any(|q| q == queue)
    }

    /// Every (task, queue) pair, sorted by task.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.routes.iter().map(|(t, q)| (t.as_str(), q.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_maestro_services() {
        let t = RoutingTable::default();
        assert_eq!(t.queue_for(TASK_DISCOVERY_SCAN), Some("discovery"));
        assert_eq!(t.queue_for(TASK_REPORT_GENERAL), Some("report"));
        assert_eq!(t.queue_for(TASK_AGGREGATION), Some("analytics"));
        assert_eq!(t.queue_for(TASK_WEBHOOK), Some("webhook"));
        assert_eq!(t.queue_for(TASK_NOTIFY), Some("notify"));
        assert_eq!(t.queue_for("maestro.echo"), Some("celery"));
        assert_eq!(t.queue_for("nope"), None);
        assert!(t.has_queue("report"));
        assert!(!t.has_queue("reports"));
    }

    #[test]
    fn overrides_add_and_move() {
        let t = RoutingTable::with_overrides(" maestro.echo = q1 , app.task=q2,").expect("valid");
        assert_eq!(t.queue_for("maestro.echo"), Some("q1"));
        assert_eq!(t.queue_for("app.task"), Some("q2"));
        assert!(RoutingTable::with_overrides("noequals").is_err());
        assert!(RoutingTable::with_overrides("a=").is_err());
        assert!(RoutingTable::with_overrides("=q").is_err());
        assert!(RoutingTable::with_overrides("a b=q").is_err());
    }
}
