//! Dead letters: a message no worker can run is published, unchanged but for headers saying
//! why, to the dead-letter exchange (routing key = the queue it came from), then acknowledged.
//!
//! Queues keep Celery's arguments (none), so a Python worker declaring the same queue is not
//! refused; the reason travels in headers rather than in RabbitMQ's `x-death`.

use lapin::types::AMQPValue;

/// Header naming why the message was dead-lettered (one of `DeadReason`'s strings).
pub const REASON_HEADER: &str = "x-maestro-dead-reason";
/// Header with the human-readable detail (the decoder's error, the unknown task name, ...).
pub const DETAIL_HEADER: &str = "x-maestro-dead-detail";
/// Header naming the queue the message was taken from.
pub const QUEUE_HEADER: &str = "x-maestro-dead-queue";
/// Header naming the worker that dead-lettered it.
pub const WORKER_HEADER: &str = "x-maestro-dead-worker";
/// Header with the time it was dead-lettered (ISO 8601, UTC).
pub const TIME_HEADER: &str = "x-maestro-dead-at";

/// Why a message cannot be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// Headers or body are not a protocol-v2 task message.
    Undecodable,
    /// A content type (pickle), content encoding or compression the worker does not read.
    UnsupportedContentType,
    /// No task of that name is registered in this worker.
    UnknownTask,
    /// The body is larger than the worker's limit, as received or once decompressed or
    /// decoded (a decompression bomb).
    Oversized,
    /// The task itself rejected the message without requeue (`TaskError::Reject`).
    Rejected,
    /// Redelivered and started more often than the worker's limit (a poison message that
    /// kills the worker running it).
    RedeliveredTooOften,
    /// Signed (Celery's `auth` serializer) but not by a trusted certificate, or not as signed:
    /// an unknown signer, an expired certificate, a signature that does not check out.
    Untrusted,
}

impl DeadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Undecodable => "undecodable",
            DeadReason::UnsupportedContentType => "unsupported-content-type",
            DeadReason::UnknownTask => "unknown-task",
            DeadReason::Oversized => "oversized",
            DeadReason::Rejected => "rejected",
            DeadReason::RedeliveredTooOften => "redelivered-too-often",
            DeadReason::Untrusted => "untrusted",
        }
    }
}

/// The headers added to a dead letter.
pub fn headers(
    reason: DeadReason,
    detail: &str,
    queue: &str,
    worker: &str,
) -> Vec<(&'static str, AMQPValue)> {
    let s = |v: &str| AMQPValue::LongString(v.into());
    vec![
        (REASON_HEADER, s(reason.as_str())),
        (DETAIL_HEADER, s(detail)),
        (QUEUE_HEADER, s(queue)),
        (WORKER_HEADER, s(worker)),
        (
            TIME_HEADER,
            s(&crate::message::format_time(chrono::Utc::now())),
        ),
    ]
}
