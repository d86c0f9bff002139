//! The routing table: which queue each task goes to, shared by whatever enqueues (an API, a
//! scheduler) and the tasks that send follow-ups. Overrides in `task=queue,...` form (Maestro's
//! `MAESTRO_ROUTES`) add tasks or move them.

use std::collections::BTreeMap;

use maestro_broker::topology::validate_queue_name;

/// Longest task name accepted (Celery has no limit; AMQP short strings end at 255 bytes and
/// the name also travels in a long-string header, so this is generous).
pub const TASK_NAME_BYTES_MAX: usize = 255;

/// Task name -> queue. Empty by default: an application fills it with its own routes
/// (Maestro's are `maestro_contract::routes::maestro()`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingTable {
    routes: BTreeMap<String, String>,
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
    /// A table of `(task, queue)` pairs (names are not checked: these are the program's own).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            routes: pairs
                .into_iter()
                .map(|(t, q)| (t.to_owned(), q.to_owned()))
                .collect(),
        }
    }

    /// This table with `spec` (`task=queue,...`; blanks ignored) added over it.
    pub fn with_overrides(self, spec: &str) -> Result<Self, String> {
        let mut table = self;
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
    fn overrides_add_and_move() {
        let t = RoutingTable::from_pairs([("maestro.echo", "celery")])
            .with_overrides(" maestro.echo = q1 , app.task=q2,")
            .expect("valid");
        assert_eq!(t.queue_for("maestro.echo"), Some("q1"));
        assert_eq!(t.queue_for("app.task"), Some("q2"));
        assert!(RoutingTable::default().with_overrides("noequals").is_err());
        assert!(RoutingTable::default().with_overrides("a=").is_err());
        assert!(RoutingTable::default().with_overrides("=q").is_err());
        assert!(RoutingTable::default().with_overrides("a b=q").is_err());
    }
}
