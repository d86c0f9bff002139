//! The tasks a worker can run, by name.

use std::collections::HashMap;
use std::sync::Arc;

use crate::task::Task;

/// A task name registered twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {0:?} is registered twice")]
pub struct DuplicateTask(pub String);

/// Tasks by name. A name registered twice is an error at start-up, never a silent override.
#[derive(Default, Clone)]
pub struct Registry {
    tasks: HashMap<String, Arc<dyn Task>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry holding the diagnostic tasks (`maestro.noop`, `echo`, `sleep`, `fail`).
    pub fn with_diagnostics() -> Self {
        let mut r = Self::new();
        for task in crate::diagnostic::all() {
            // The diagnostic names are distinct constants.
            let _ = r.register(task);
        }
        r
    }

    /// Adds `task`; a name taken already is an error, never a silent override.
    pub fn register(&mut self, task: Arc<dyn Task>) -> Result<(), DuplicateTask> {
        let name = task.name().to_owned();
        if self.tasks.contains_key(&name) {
            return Err(DuplicateTask(name));
        }
        self.tasks.insert(name, task);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Task>> {
        self.tasks.get(name)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tasks.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}
