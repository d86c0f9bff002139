//! What every result backend stores and reads: a task's state record, what a write did, the
//! state a client reads back, and the errors, classified once.

use chrono::{DateTime, Utc};
use maestro_broker::TaskState;
use serde_json::Value;

/// Most statements in one batched write or ids in one batched lookup.
pub const BATCH_MAX: usize = 256;

/// Errors of the result store.
/// Errors of the result store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("result backend URL is invalid: {0}")]
    Url(String),
    /// The server or the network is away, or the server said the error is transient (a
    /// primary stepping down, a write concern not met yet): trying again later may succeed.
    #[error("MongoDB: {0}")]
    Unavailable(String),
    /// The server refused the operation for good (document too large, unauthorized,
    /// validation): trying again cannot help.
    #[error("MongoDB refused it: {0}")]
    Refused(String),
    #[error("the result store is shut down")]
    Closed,
}

impl StoreError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Server error codes MongoDB's drivers treat as transient (retryable reads and writes), and
/// the write-concern ones (`64` WriteConcernFailed, `100` UnsatisfiableWriteConcern while a
/// replica set member is away).
pub const TRANSIENT_CODES: [i32; 17] = [
    6,     // HostUnreachable
    7,     // HostNotFound
    63,    // StaleShardVersion
    64,    // WriteConcernFailed
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    100,   // UnsatisfiableWriteConcern
    134,   // ReadConcernMajorityNotAvailableYet
    150,   // StaleEpoch
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// One task state to store.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub id: String,
    pub state: TaskState,
    pub result: Value,
    pub traceback: Option<String>,
    pub children: Vec<Value>,
    pub name: Option<String>,
    pub args: Option<Value>,
    pub kwargs: Option<Value>,
    pub worker: Option<String>,
    pub retries: u32,
    pub queue: Option<String>,
    pub group_id: Option<String>,
    pub parent_id: Option<String>,
}

impl TaskRecord {
    /// A record of `state` for `id` with `result`; the other fields empty, to fill in with
    /// struct update syntax.
    pub fn new(id: impl Into<String>, state: TaskState, result: Value) -> Self {
        Self {
            id: id.into(),
            state,
            result,
            traceback: None,
            children: Vec::new(),
            name: None,
            args: None,
            kwargs: None,
            worker: None,
            retries: 0,
            queue: None,
            group_id: None,
            parent_id: None,
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Written,
    /// A SUCCESS for this id was already stored; it was left as it is.
    AlreadySucceeded,
}

/// A stored task state, as a client reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMeta {
    pub id: String,
    pub status: String,
    pub result: Value,
    pub traceback: Option<String>,
    pub date_done: Option<DateTime<Utc>>,
    pub group_id: Option<String>,
    pub parent_id: Option<String>,
}

/// Member ids from a saved group result, or from `celery.chord_unlock`'s `result` argument:
/// `["id", ...]` or Celery's tuples `[[["id", null], null], ...]`.
pub fn member_ids(v: &Value) -> Vec<String> {
    fn first_str(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Array(a) => a.first().and_then(first_str),
            _ => None,
        }
    }
    v.as_array()
        .map(|a| a.iter().filter_map(first_str).collect())
        .unwrap_or_default()
}
