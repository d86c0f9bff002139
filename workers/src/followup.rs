//! The worker's side of `maestro_tasks::followup`: tasks send follow-ups on the session's
//! confirmed publishing channel; chords are recorded in the session's result store.

use std::sync::Arc;

use maestro_broker::{Signature, TaskMessage};
use maestro_tasks::followup::{ChordHandle, FollowUp, Parent, SendFuture};
use tracing::info;

use crate::canvas::publish_to_queue;
use crate::session::Session;

/// Follow-ups of the tasks of one session.
pub(crate) struct SessionFollowUp(pub(crate) Arc<Session>);

impl FollowUp for SessionFollowUp {
    fn send<'a>(&'a self, parent: Parent<'a>, sig: Signature) -> SendFuture<'a, String> {
        Box::pin(async move {
            let s = &self.0;
            let mut msg = TaskMessage::from_signature(&sig, None, Some(&parent.headers()), None)
                .map_err(|e| e.to_string())?;
            parent.propagate_trace(&mut msg);
            let queue = sig.queue(&s.cfg.default_queue).to_owned();
            publish_to_queue(s, &queue, &msg).await.map_err(|e| {
                s.publish_failed(&e);
                e.to_string()
            })?;
            info!(event = "follow_up_sent", parent = %parent.id, task = %msg.headers.task,
                id = %msg.headers.id, queue);
            Ok(msg.headers.id)
        })
    }

    fn start_chord<'a>(
        &'a self,
        _parent: Parent<'a>,
        size: usize,
        callback: Signature,
    ) -> SendFuture<'a, ChordHandle> {
        Box::pin(async move {
            if size == 0 {
                return Err("a chord needs at least one member".into());
            }
            let store =
                self.0.store.as_ref().ok_or(
                    "chords need the MongoDB result store (--result-backend mongodb://...)",
                )?;
            let chord = ChordHandle::new(size, callback);
            store
                .save_group(&chord.group_id, &chord.member_ids)
                .await
                .map_err(|e| e.to_string())?;
            Ok(chord)
        })
    }
}
