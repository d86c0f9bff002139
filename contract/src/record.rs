//! `maestro.record(collection, ms=0)`: a diagnostic task that upserts one document per task
//! id into `<collection>`, so an operator (and the fault suite) sees how often each task ran.

use maestro_tasks::FieldError;
use serde::{Deserialize, Serialize};

use crate::check::{check_collection, null_as_default};

/// Longest wait accepted, one minute: a diagnostic, not a way to hold a worker slot.
pub const WAIT_MS_MAX: u64 = 60_000;

/// The request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRequest {
    /// Where the run counts go (in the inventory database).
    pub collection: String,
    /// Milliseconds to wait before writing (work in progress, where a kill can land).
    #[serde(default, deserialize_with = "null_as_default")]
    pub ms: u64,
}

/// The task's call binds to the request: `#[args] req: RecordRequest` in a `#[task]`.
impl maestro_tasks::CallArgs for RecordRequest {
    const PARAMETERS: &'static [&'static str] = &RecordRequest::PARAMS;
}

impl RecordRequest {
    /// The task's parameters, in order.
    pub const PARAMS: [&'static str; 2] = ["collection", "ms"];

    pub fn validate(&self) -> Result<(), FieldError> {
        check_collection("collection", &self.collection)?;
        if self.ms > WAIT_MS_MAX {
            return Err(FieldError::value(
                "ms",
                format!("must be at most {WAIT_MS_MAX}"),
            ));
        }
        Ok(())
    }
}
