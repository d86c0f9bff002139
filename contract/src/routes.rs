//! Maestro's routing table: every catalogue task to its service's queue, the diagnostic
//! tasks to Celery's default queue. `MAESTRO_ROUTES=task=queue,...` moves or adds tasks.

use maestro_tasks::RoutingTable;

use crate::names::*;

/// Where each task goes unless `MAESTRO_ROUTES` says otherwise.
pub const DEFAULT_ROUTES: [(&str, &str); 13] = [
    (TASK_DISCOVERY_SCAN, QUEUE_DISCOVERY),
    (TASK_REPORT_GENERAL, QUEUE_REPORT),
    (TASK_REPORT_PIVOT, QUEUE_REPORT),
    (TASK_REPORT_UPLOAD, QUEUE_REPORT),
    (TASK_REPORT_FINISH, QUEUE_REPORT),
    (TASK_AGGREGATION, QUEUE_ANALYTICS),
    (TASK_WEBHOOK, QUEUE_WEBHOOK),
    (TASK_NOTIFY, QUEUE_NOTIFY),
    (TASK_SCHEDULER_RUN, QUEUE_SCHEDULER),
    ("maestro.noop", QUEUE_CELERY),
    ("maestro.echo", QUEUE_CELERY),
    ("maestro.sleep", QUEUE_CELERY),
    ("maestro.fail", QUEUE_CELERY),
];

/// Maestro's default routes.
pub fn maestro() -> RoutingTable {
    RoutingTable::from_pairs(DEFAULT_ROUTES)
}

/// Maestro's default routes with `spec` (`task=queue,...`, as `MAESTRO_ROUTES`) over them.
pub fn maestro_with(spec: &str) -> Result<RoutingTable, String> {
    maestro().with_overrides(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_maestro_services() {
        let t = maestro();
        assert_eq!(t.queue_for(TASK_DISCOVERY_SCAN), Some("discovery"));
        assert_eq!(t.queue_for(TASK_REPORT_GENERAL), Some("report"));
        assert_eq!(t.queue_for(TASK_AGGREGATION), Some("analytics"));
        assert_eq!(t.queue_for(TASK_WEBHOOK), Some("webhook"));
        assert_eq!(t.queue_for(TASK_NOTIFY), Some("notify"));
        assert_eq!(t.queue_for("maestro.echo"), Some("celery"));
        assert_eq!(t.queue_for("nope"), None);
        assert!(t.has_queue("report"));
        assert!(!t.has_queue("reports"));
        let moved = maestro_with("maestro.echo=q1").expect("valid");
        assert_eq!(moved.queue_for("maestro.echo"), Some("q1"));
        assert_eq!(moved.queue_for(TASK_WEBHOOK), Some("webhook"));
    }
}
