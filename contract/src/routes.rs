//! Maestro's routing table: every catalogue task to its service's queue, the diagnostic
//! tasks to Celery's default queue. `MAESTRO_ROUTES=task=queue,...` moves or adds tasks.

use maestro_tasks::RoutingTable;

use crate::names::*;

/// Where each task goes unless `MAESTRO_ROUTES` says otherwise.
pub const DEFAULT_ROUTES: [(&str, &str); 14] = [
    (TASK_DISCOVERY_SCAN, QUEUE_DISCOVERY),
    (TASK_REPORT_GENERAL, QUEUE_REPORT),
    (TASK_REPORT_PIVOT, QUEUE_REPORT),
    (TASK_REPORT_UPLOAD, QUEUE_REPORT),
    (TASK_REPORT_FINISH, QUEUE_REPORT),
    (TASK_AGGREGATION, QUEUE_ANALYTICS),
    (TASK_ANALYTICS_GRAPH, QUEUE_ANALYTICS),
    (TASK_WEBHOOK, QUEUE_WEBHOOK),
    (TASK_NOTIFY, QUEUE_NOTIFY),
    (TASK_SCHEDULER_RUN, QUEUE_SCHEDULER),
    ("maestro.noop", QUEUE_CELERY),
    ("maestro.echo", QUEUE_CELERY),
    ("maestro.sleep", QUEUE_CELERY),
    ("maestro.fail", QUEUE_CELERY),
];

/// Tasks only the project's own tasks send: a report's chunks and chord callback (they write
/// any report collection they are given), and Celery's built-ins (`celery.chord_unlock`, ...).
/// `POST /tasks/{task}` and schedules refuse them.
pub const INTERNAL_TASKS: [&str; 2] = [TASK_REPORT_UPLOAD, TASK_REPORT_FINISH];

/// The diagnostic tasks: only where the operator enables them (`MAESTRO_ENABLE_DIAGNOSTICS`
/// on the API and the worker), and only to their routed queue. `maestro.record` writes into
/// any inventory collection it is given; `maestro.sleep` holds a worker slot up to a day.
pub const DIAGNOSTIC_TASKS: [&str; 5] = [
    "maestro.noop",
    "maestro.echo",
    "maestro.sleep",
    "maestro.fail",
    TASK_RECORD,
];

/// Who may send a task from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Any caller (a catalogue task, or an application's own task).
    Public,
    /// Only the project's own tasks ([`INTERNAL_TASKS`], `celery.*`).
    Internal,
    /// Only where diagnostics are enabled ([`DIAGNOSTIC_TASKS`]).
    Diagnostic,
}

/// Who may send `task` from outside.
pub fn reach(task: &str) -> Reach {
    if INTERNAL_TASKS.contains(&task) || task.starts_with("celery.") {
        Reach::Internal
    } else if DIAGNOSTIC_TASKS.contains(&task) {
        Reach::Diagnostic
    } else {
        Reach::Public
    }
}

/// Why an outside caller (the API's `POST /tasks/{task}`, a schedule) may not send `task` to
/// `queue`, whose route is `routed`; `None` when it may.
pub fn refusal(task: &str, queue: &str, routed: &str, diagnostics: bool) -> Option<String> {
    match reach(task) {
        Reach::Public => None,
        Reach::Internal => Some(format!(
            "{task} is internal: only the project's own tasks send it"
        )),
        Reach::Diagnostic if !diagnostics => Some(format!(
            "{task} is a diagnostic task, and diagnostics are off (MAESTRO_ENABLE_DIAGNOSTICS)"
        )),
        Reach::Diagnostic if queue != routed => Some(format!(
            "{task} is a diagnostic task: it goes only to its routed queue {routed:?}"
        )),
        Reach::Diagnostic => None,
    }
}

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

    #[test]
    fn internal_and_diagnostic_tasks_are_not_for_outside_callers() {
        assert_eq!(reach(TASK_REPORT_GENERAL), Reach::Public);
        assert_eq!(reach("app.tasks.add"), Reach::Public);
        for t in [
            TASK_REPORT_UPLOAD,
            TASK_REPORT_FINISH,
            "celery.chord_unlock",
            "celery.map",
        ] {
            assert_eq!(reach(t), Reach::Internal, "{t}");
            assert!(refusal(t, "report", "report", true).is_some(), "{t}");
        }
        assert_eq!(reach(TASK_RECORD), Reach::Diagnostic);
        assert!(refusal("maestro.sleep", "celery", "celery", false).is_some());
        assert!(refusal("maestro.sleep", "report", "celery", true).is_some());
        assert_eq!(refusal("maestro.sleep", "celery", "celery", true), None);
        assert_eq!(refusal(TASK_WEBHOOK, "webhook", "webhook", false), None);
    }
}
