//! The checks a delivery goes through before any task code is looked at. Pure: no broker, no
//! I/O, so they are fuzzed and corpus-tested as they are.

use lapin::BasicProperties;
use maestro_broker::dead_letter::DeadReason;
use maestro_broker::{Accept, DecodeError, TaskMessage};

/// Why a delivery cannot run at all: the dead-letter reason and its detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrunnable {
    pub reason: DeadReason,
    pub detail: String,
}

/// The checks, in order: its size (more than `max_body_bytes`: oversized), its decoding
/// (content type, encoding and compression this worker does not read: unsupported-content-type;
/// a body larger than `max_body_bytes` once decompressed or converted from msgpack or yaml:
/// oversized; headers and body, corrupt compressed bodies: undecodable), and whether `runnable`
/// knows its task (unknown-task). Every serializer this build reads is accepted unsigned and
/// none signed: see [`triage_accepting`].
pub fn triage(
    properties: &BasicProperties,
    data: &[u8],
    max_body_bytes: usize,
    runnable: impl Fn(&str) -> bool,
) -> Result<TaskMessage, Unrunnable> {
    triage_accepting(
        properties,
        data,
        max_body_bytes,
        &Accept::default(),
        runnable,
    )
}

/// [`triage`] with what the worker accepts (`--accept-content`, `--security-cert-store`): a
/// serializer not accepted is unsupported-content-type (Celery's `ContentDisallowed`), a
/// signed message whose signer is not trusted or whose signature does not check out is
/// untrusted.
pub fn triage_accepting(
    properties: &BasicProperties,
    data: &[u8],
    max_body_bytes: usize,
    accept: &Accept,
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
    let msg =
        TaskMessage::decode_accepting(properties, data, max_body_bytes, accept).map_err(|e| {
            Unrunnable {
                reason: match e {
                    DecodeError::ContentType(_)
                    | DecodeError::ContentEncoding(_)
                    | DecodeError::Compression(_)
                    | DecodeError::Disallowed { .. } => DeadReason::UnsupportedContentType,
                    DecodeError::Signature(_) => DeadReason::Untrusted,
                    DecodeError::TooLarge { .. } => DeadReason::Oversized,
                    _ => DeadReason::Undecodable,
                },
                detail: e.to_string(),
            }
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

    /// msgpack, yaml and compressed messages run; one that decompresses past the body limit
    /// is oversized, however small it came.
    #[cfg(feature = "codecs")]
    #[test]
    fn the_body_limit_holds_after_decompression() {
        use maestro_broker::{Compression, Serializer, WireFormat};
        let known = |n: &str| n == "maestro.echo";
        let mut msg = TaskMessage::with_id(
            "maestro.echo",
            "t-2",
            &json!(["x".repeat(8000)]),
            &json!({}),
        )
        .expect("message");
        for serializer in [Serializer::Msgpack, Serializer::Yaml] {
            msg.format = WireFormat {
                serializer,
                compression: Some(Compression::Zstd),
                signed: false,
            };
            let (props, body) = msg.encode();
            assert!(body.len() < 1024, "{serializer:?}: {} bytes", body.len());
            let ok = triage(&props, &body, 10_000, known).expect("runs");
            assert_eq!(ok.format, msg.format);
            let err = triage(&props, &body, 4096, known).expect_err("too large");
            assert_eq!(err.reason, DeadReason::Oversized, "{}", err.detail);
            assert!(
                err.detail.contains("decompressed (application/zstd)"),
                "{}",
                err.detail
            );
        }
    }
}
