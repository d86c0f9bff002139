//! The tasks a worker can run, by name.

use std::sync::Arc;

use crate::state::States;
use crate::task::Task;

/// A task name registered twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {0:?} is registered twice")]
pub struct DuplicateTask(pub String);

/// A task needs state the worker was not given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {task:?} needs state of type {state}, which this worker was not given")]
pub struct MissingState {
    pub task: String,
    pub state: &'static str,
}

/// Tasks by name, and the state they share. A name registered twice is an error at start-up,
/// never a silent override.
#[derive(Default, Clone)]
pub struct Registry {
    /// Looked up twice per message; names are the registry's own, so a fast hasher is safe.
    tasks: foldhash::HashMap<String, Arc<dyn Task>>,
    states: Arc<States>,
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

    /// Adds `task` (a `#[task]` function's value, or any [`Task`]).
    pub fn add<T: Task>(&mut self, task: T) -> Result<(), DuplicateTask> {
        self.register(Arc::new(task))
    }

    /// Adds state the tasks look up by type (a client, a pool, configuration).
    pub fn insert_state<T: Send + Sync + 'static>(&mut self, value: T) {
        Arc::make_mut(&mut self.states).insert(value);
    }

    /// The shared state, for each run's context.
    pub fn states(&self) -> &Arc<States> {
        &self.states
    }

    /// The first task needing state the registry does not hold.
    pub fn check_states(&self) -> Result<(), MissingState> {
        for name in self.names() {
            let Some(task) = self.tasks.get(name) else {
                continue;
            };
            if let Some(need) = task
                .state_needs()
                .into_iter()
                .find(|n| !self.states.contains(n.id))
            {
                return Err(MissingState {
                    task: name.to_owned(),
                    state: need.name,
                });
            }
        }
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
