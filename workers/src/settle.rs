//! What is done with a delivery, decided once by the pipeline and carried out here, once:
//! acknowledge it, put it back on the queue, or copy it to the dead-letter exchange and then
//! acknowledge it. `processor::process` is the only caller, after the outcome is recorded.

use maestro_broker::dead_letter::{self, DeadReason};
use maestro_broker::message::{peek_task_and_id, republish_properties};
use tracing::warn;

use crate::acker::AckToken;
use crate::session::{Received, Session, Unfinished};

/// The fate of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Done, whatever the task's outcome: remove it from the queue.
    Ack,
    /// Not done (a write or publish could not be made, or shutdown abandoned the run): back to
    /// the queue for any worker.
    Requeue,
    /// Cannot run: a copy goes to the dead-letter exchange with why, then it is acknowledged.
    DeadLetter { reason: DeadReason, detail: String },
}

impl Disposition {
    /// Acknowledge once `recorded` is done; requeue when it could not be.
    pub(crate) fn after(recorded: Result<(), Unfinished>) -> Self {
        match recorded {
            Ok(()) => Disposition::Ack,
            Err(Unfinished) => Disposition::Requeue,
        }
    }
}

/// Carries out `how` for the delivery `d`, whose token is `token`.
pub(crate) async fn settle(s: &Session, d: &Received, token: AckToken, how: Disposition) {
    match how {
        Disposition::Ack => token.ack(),
        Disposition::Requeue => token.requeue(),
        Disposition::DeadLetter { reason, detail } => {
            Box::pin(dead_letter(s, d, reason, &detail, token)).await
        }
    }
}

/// Copies the message to the dead-letter exchange with why, then acknowledges it. If the copy
/// is not confirmed the message is requeued, never dropped.
async fn dead_letter(s: &Session, d: &Received, reason: DeadReason, detail: &str, token: AckToken) {
    let queue = &*d.queue;
    let (task, id) = peek_task_and_id(&d.properties);
    let headers = dead_letter::headers(reason, detail, queue, &s.hostname);
    let props = republish_properties(&d.properties, &headers);
    match s
        .publisher
        .publish(&s.cfg.dead_letter_exchange, queue, props, &d.data, true)
        .await
    {
        Ok(()) => {
            s.state.metrics.dead_lettered(queue, reason);
            warn!(
                event = "dead_lettered",
                reason = reason.as_str(),
                queue,
                task = task.as_deref().unwrap_or("?"),
                id = id.as_deref().unwrap_or("?"),
                detail,
                "message cannot run; moved to the dead-letter exchange"
            );
            // Acked, not rejected: a DLX policy on the queue would otherwise dead-letter it twice.
            token.ack();
        }
        Err(e) => {
            warn!(event = "dead_letter_failed", reason = reason.as_str(), queue, error = %e, "requeued");
            s.publish_failed(&e);
            token.requeue();
        }
    }
}
