//! The checks a delivery goes through before any task code is looked at. Pure: no broker, no
//! I/O, so they are fuzzed and corpus-tested as they are.

use lapin::BasicProperties;
use maestro_broker::dead_letter::DeadReason;
use maestro_broker::{DecodeError, TaskMessage};

/// Why a delivery cannot run at all: the dead-letter reason and its detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrunnable {
    pub reason: DeadReason,
    pub detail: String,
}

/// The checks, in order: its size (more than `max_body_bytes`: oversized), its decoding
/// (content type and encoding: unsupported-content-type; headers and body: undecodable), and
/// whether `runnable` knows its task (unknown-task).
pub fn triage(
    properties: &BasicProperties,
    data: &[u8],
    max_body_bytes: usize,
    runnable: impl Fn(&str) -> bool,
) -> Result<TaskMessage, Unrunnable> {
    if data.len() > max_body_bytes {
        return Err(Unrunnable {
            reason: DeadReason::Oversized,
            detail: format!(
                "body is {} bytes, more than the limit of {max_body_bytes}",
                data.len()
            ),
        });
    }
    let msg = TaskMessage::decode(properties, data).map_err(|e| Unrunnable {
        reason: match e {
            DecodeError::ContentType(_)
            | DecodeError::ContentEncoding(_)
            | DecodeError::Compression(_) => DeadReason::UnsupportedContentType,
            _ => DeadReason::Undecodable,
        },
        detail: e.to_string(),
    })?;
    if !runnable(&msg.headers.task) {
        return Err(Unrunnable {
            reason: DeadReason::UnknownTask,
            detail: format!(
                "no task named {:?} is registered in this worker",
                msg.headers.task
            ),
        });
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn triage_checks_size_then_decoding_then_the_task() {
        let ok =
            TaskMessage::with_id("maestro.echo", "t-1", &json!([1]), &json!({})).expect("message");
        let (props, body) = (ok.encode_properties(), ok.encode_body());
        let known = |n: &str| n == "maestro.echo";
        assert!(triage(&props, &body, 1024, known).is_ok());
        let reason = |r: Result<TaskMessage, Unrunnable>| r.expect_err("unrunnable").reason;
        assert_eq!(
            reason(triage(&props, &body, 4, known)),
            DeadReason::Oversized
        );
        assert_eq!(
            reason(triage(&props, b"{", 1024, known)),
            DeadReason::Undecodable
        );
        assert_eq!(
            reason(triage(&props, &body, 1024, |_| false)),
            DeadReason::UnknownTask
        );
        let pickle = props
            .clone()
            .with_content_type("application/x-python-serialize".into());
        assert_eq!(
            reason(triage(&pickle, &body, 1024, known)),
            DeadReason::UnsupportedContentType
        );
    }
}
