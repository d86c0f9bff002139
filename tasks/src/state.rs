//! Shared state tasks reach through their context: clients, pools, configuration, made once
//! per worker and looked up by type (`#[state] db: &Database` in a `#[task]`, or
//! [`TaskContext::state`](crate::TaskContext::state)).

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Values by type, one of each.
#[derive(Clone, Default)]
pub struct States {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    names: HashMap<TypeId, &'static str>,
}

impl States {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value`, replacing one of the same type.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
        self.names.insert(TypeId::of::<T>(), type_name::<T>());
    }

    /// The value of type `T`, if one was added.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// Whether a value of the type `id` was added.
    pub fn contains(&self, id: TypeId) -> bool {
        self.values.contains_key(&id)
    }
}

impl fmt::Debug for States {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.names.values().copied().collect();
        names.sort_unstable();
        f.debug_set().entries(names).finish()
    }
}

/// A state type a task needs: its id and its name (for the error when it is missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateNeed {
    pub id: TypeId,
    pub name: &'static str,
}

impl StateNeed {
    pub fn of<T: 'static>() -> Self {
        Self {
            id: TypeId::of::<T>(),
            name: type_name::<T>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_by_type() {
        let mut s = States::new();
        s.insert(5_u32);
        s.insert(String::from("db"));
        assert_eq!(s.get::<u32>(), Some(&5));
        assert_eq!(s.get::<String>().map(String::as_str), Some("db"));
        assert_eq!(s.get::<u64>(), None);
        assert!(s.contains(StateNeed::of::<u32>().id));
        assert!(format!("{s:?}").contains("alloc::string::String"));
    }
}
