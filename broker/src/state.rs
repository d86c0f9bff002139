//! Task states in Celery's words, and result payloads as Celery's backends write them.

use serde::Serialize;
use serde_json::{Value, json};

/// A task's state (celery.states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskState {
    Pending,
    Received,
    Started,
    Success,
    Failure,
    Retry,
    Revoked,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "PENDING",
            TaskState::Received => "RECEIVED",
            TaskState::Started => "STARTED",
            TaskState::Success => "SUCCESS",
            TaskState::Failure => "FAILURE",
            TaskState::Retry => "RETRY",
            TaskState::Revoked => "REVOKED",
        }
    }

    /// SUCCESS, FAILURE and REVOKED are final (celery.states.READY_STATES).
    pub fn is_ready(self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Failure | TaskState::Revoked
        )
    }
}

/// An exception as Celery serialises it for JSON backends, so a Python client re-raises it:
/// `{"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExceptionInfo {
    pub exc_type: String,
    pub exc_message: Vec<Value>,
    pub exc_module: String,
}

impl ExceptionInfo {
    /// A Python builtin exception type (`ValueError`, `RuntimeError`, `TypeError`, ...).
    pub fn builtin(exc_type: &str, message: impl Into<String>) -> Self {
        Self {
            exc_type: exc_type.into(),
            exc_message: vec![Value::String(message.into())],
            exc_module: "builtins".into(),
        }
    }

    /// An exception from `celery.exceptions` (TimeLimitExceeded, SoftTimeLimitExceeded, ...).
    pub fn celery(exc_type: &str, message: impl Into<String>) -> Self {
        Self {
            exc_type: exc_type.into(),
            exc_message: vec![Value::String(message.into())],
            exc_module: "celery.exceptions".into(),
        }
    }

    /// `Type('message')`, as Python's repr shows it in events and logs.
    pub fn repr(&self) -> String {
        match self.exc_message.first() {
            Some(Value::String(msg)) => format!("{}({msg:?})", self.exc_type),
            Some(other) => format!("{}({other})", self.exc_type),
            None => format!("{}()", self.exc_type),
        }
    }

    pub fn to_value(&self) -> Value {
        json!({"exc_type": self.exc_type, "exc_message": self.exc_message, "exc_module": self.exc_module})
    }
}

/// The body of an `rpc://` reply (what Celery's RPC backend publishes to `reply_to`).
pub fn rpc_reply(
    task_id: &str,
    state: TaskState,
    result: &Value,
    traceback: Option<&str>,
    parent_id: Option<&str>,
) -> Vec<u8> {
    let mut body = json!({
        "status": state.as_str(),
        "result": result,
        "traceback": traceback,
        "children": [],
        "date_done": if state.is_ready() { Value::String(crate::message::format_time(chrono::Utc::now())) } else { Value::Null },
        "task_id": task_id,
    });
    if let (Some(parent), Some(obj)) = (parent_id, body.as_object_mut()) {
        obj.insert("parent_id".into(), Value::String(parent.into()));
    }
    serde_json::to_vec(&body).unwrap_or_default()
}
