//! What follows a task's outcome, as Celery's canvas defines it: links (callbacks) get the
//! result as their first argument, errbacks the failed task's id, the next task of a chain
//! (the last element of the reversed `chain` list) gets the result and carries the rest of the
//! chain on; a failure is stored for every task left in the chain, as Celery does. Chord
//! members count themselves done with one atomic `$inc` in MongoDB after their own result is
//! stored; the member that completes the count fires the callback with the members' results
//! in group order, and only then marks the chord fired. No polling task.
//!
//! Surviving a kill at any point: every follow-up has a fixed task id (its own when the
//! signature was frozen with one, as Celery does for chain steps and chord bodies, else one
//! derived from the parent's id and the follow-up's place), so sending one again is safe: a
//! worker runs an id that already succeeded once. A redelivered task whose SUCCESS is stored
//! sends its follow-ups again (`processor`), a member counted before learns the count, and a
//! chord marked fired only after its callback went out is fired again if the kill came between.
//!
//! Follow-ups are published to the default exchange with the target queue as routing key, as
//! Celery 5.7 publishes, with confirms; a queue that does not exist yet is declared in Celery's
//! layout first. If a follow-up cannot be published the caller requeues the delivery.

use maestro_broker::trace::TraceContext;
use maestro_broker::{
    BrokerError, ExceptionInfo, QueueType, Signature, TaskMessage, TaskQueue, TaskState, topology,
};
use maestro_results::{ResultStore, TaskRecord, member_ids};
use serde_json::Value;
use tracing::{info, warn};

use std::time::Duration;

use maestro_broker::dead_letter::DeadReason;
use serde_json::json;

use crate::retry::publish_retry;
use std::sync::Arc;

use maestro_tasks::Task;

use crate::session::{Session, Unfinished};
use crate::settle::Disposition;

/// Celery's chord synchronisation task for backends without native chord support.
pub(crate) const CHORD_UNLOCK: &str = "celery.chord_unlock";

/// After a SUCCESS is recorded: links, the next step of a chain, the chord count.
pub(crate) async fn on_success(
    s: &Session,
    msg: &TaskMessage,
    result: &Value,
) -> Result<(), Unfinished> {
    for (i, link) in msg.embed.callbacks.iter().flatten().enumerate() {
        let key = format!("{}/link:{i}", msg.headers.id);
        Box::pin(send(s, link, Some(result.clone()), msg, None, &key)).await?;
    }
    if let Some((next, rest)) = msg.embed.next_in_chain() {
        let key = format!("{}/chain", msg.headers.id);
        Box::pin(send(s, &next, Some(result.clone()), msg, Some(rest), &key)).await?;
    }
    chord_member_done(s, msg).await
}

/// After a FAILURE is recorded: the rest of the chain fails too, errbacks get the task id,
/// the chord count goes on (the callback then fails with ChordError).
pub(crate) async fn on_failure(
    s: &Arc<Session>,
    msg: &TaskMessage,
    exc: &ExceptionInfo,
    traceback: &str,
) -> Result<(), Unfinished> {
    if let Some(store) = &s.store {
        for step in msg.embed.chain.iter().flatten() {
            let Some(id) = step.option_str("task_id") else {
                continue;
            };
            let record = TaskRecord {
                traceback: Some(traceback.to_owned()),
                name: Some(step.task.clone()),
                // As for every stored result: arguments only with result_extended (a chain
                // step's signature has no reprs of its own).
                args: s.cfg.result_extended.then(|| step.args.clone()),
                kwargs: s.cfg.result_extended.then(|| step.kwargs.clone()),
                worker: Some(s.hostname.to_string()),
                queue: step.option_str("queue").map(str::to_owned),
                group_id: step.option_str("group_id").map(str::to_owned),
                parent_id: Some(msg.headers.id.clone()),
                ..TaskRecord::new(id, TaskState::Failure, exc.to_value())
            };
            store.store(&record).await.map_err(|e| {
                warn!(event = "chain_failure_not_recorded", id, error = %e);
                Unfinished
            })?;
        }
    }
    for (i, errback) in msg.embed.errbacks.iter().flatten().enumerate() {
        if let Some(task) = new_style_errback(s, errback) {
            call_errback(s, task.as_ref(), errback, msg, exc, traceback).await;
            continue;
        }
        send(
            s,
            errback,
            Some(Value::String(msg.headers.id.clone())),
            msg,
            None,
            &format!("{}/errback:{i}", msg.headers.id),
        )
        .await?;
    }
    chord_member_done(s, msg).await
}

/// The errback's task when Celery would call it in the new style: registered in this worker
/// and taking more than one parameter (`_call_task_errbacks`). Any other errback is sent the
/// failed task's id, as Celery sends errbacks it does not have.
fn new_style_errback(s: &Session, errback: &Signature) -> Option<Arc<dyn Task>> {
    let task = s.registry.get(&errback.task)?;
    (task.parameters()?.len() > 1).then(|| task.clone())
}

/// Calls a new-style errback here and now, as Celery does: `errback(request, exc, traceback)`
/// (then the signature's own arguments), no message and no stored result. Its failure is
/// logged; it does not change the failed task's outcome.
async fn call_errback(
    s: &Arc<Session>,
    task: &dyn Task,
    errback: &Signature,
    failed: &TaskMessage,
    exc: &ExceptionInfo,
    traceback: &str,
) {
    let h = &failed.headers;
    let request = json!({
        "id": h.id, "task": h.task, "args": serde_json::from_str::<Value>(failed.args.get()).ok(),
        "kwargs": serde_json::from_str::<Value>(failed.kwargs.get()).ok(), "retries": h.retries,
        "root_id": h.root_id, "parent_id": h.parent_id, "group": h.group,
        "hostname": &*s.hostname, "eta": h.eta.map(|t| t.to_rfc3339()),
        "expires": h.expires.map(|t| t.to_rfc3339()),
    });
    let mut args = vec![request, exc.to_value(), Value::String(traceback.to_owned())];
    args.extend(errback.args.as_array().into_iter().flatten().cloned());
    let kwargs = if errback.kwargs.is_object() {
        errback.kwargs.clone()
    } else {
        json!({})
    };
    let call = match maestro_tasks::TaskArgs::from_values(&Value::Array(args), &kwargs) {
        Ok(call) => call,
        Err(e) => {
            warn!(event = "errback_failed", task = %errback.task, parent = %h.id, error = %e);
            return;
        }
    };
    let queue = errback.option_str("queue").unwrap_or(&s.cfg.default_queue);
    let mut ctx = crate::run::context(s, queue, failed);
    ctx.name = errback.task.clone();
    ctx.id = errback
        .option_str("task_id")
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    ctx.parent_id = Some(h.id.clone());
    ctx.follow_up = Some(Arc::new(crate::followup::SessionFollowUp(s.clone())));
    match task.run(&ctx, &call).await {
        Ok(_) => info!(event = "errback_called", task = %errback.task, parent = %h.id),
        Err(e) => {
            warn!(event = "errback_failed", task = %errback.task, parent = %h.id, error = %e)
        }
    }
}

/// Publishes `msg` to `queue` through the default exchange, declaring the queue (Celery's
/// topology) first when it does not exist yet, as Celery does before publishing.
pub(crate) async fn publish_to_queue(
    s: &Session,
    queue: &str,
    msg: &TaskMessage,
) -> Result<(), BrokerError> {
    match s.publisher.publish_task("", queue, msg).await {
        Err(BrokerError::Unroutable { .. }) => {
            let q = TaskQueue::named(queue, QueueType::Classic);
            if let Err(e) = topology::declare_task_queue(&s.conn, &q).await {
                warn!(event = "follow_up_queue_not_declared", queue, error = %e);
            }
            s.publisher.publish_task("", queue, msg).await
        }
        other => other,
    }
}

/// Namespace of the task ids derived for follow-ups that have none (a fixed random UUID).
const FOLLOW_UP_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x8f3e_1c52_4b7a_4d09_9a61_2e5c_7d40_b1f3);

/// The task id of the follow-up `sig` whose place is `key` (`<parent id>/link:0`,
/// `<parent id>/chain`, `chord:<group id>`, ...): the signature's own, else one derived from
/// the key, the same every time it is sent.
fn follow_up_id(sig: &Signature, key: &str) -> String {
    sig.option_str("task_id").map_or_else(
        || uuid::Uuid::new_v5(&FOLLOW_UP_ID_NAMESPACE, key.as_bytes()).to_string(),
        str::to_owned,
    )
}

/// Publishes the task `sig` describes to its queue (`options.queue`, else the default queue),
/// with its fixed id ([`follow_up_id`] of `key`).
async fn send(
    s: &Session,
    sig: &Signature,
    first_arg: Option<Value>,
    parent: &TaskMessage,
    chain: Option<Vec<Signature>>,
    key: &str,
) -> Result<(), Unfinished> {
    let mut fixed = sig.clone();
    fixed
        .options
        .insert("task_id".into(), Value::String(follow_up_id(sig, key)));
    let sig = &fixed;
    let mut msg = TaskMessage::from_signature(sig, first_arg, Some(&parent.headers), chain)
        .map_err(|e| {
            warn!(event = "follow_up_invalid", parent = %parent.headers.id, error = %e);
            Unfinished
        })?;
    // The parent's run span (written into its headers when it ran) is the follow-up's parent.
    if let Some(t) = TraceContext::from_headers(&parent.headers) {
        t.write(&mut msg.headers);
    }
    let queue = sig
        .option_str("queue")
        .unwrap_or(&s.cfg.default_queue)
        .to_owned();
    let published = publish_to_queue(s, &queue, &msg).await;
    match published {
        Ok(()) => {
            info!(event = "follow_up_sent", parent = %parent.headers.id, task = %msg.headers.task, id = %msg.headers.id, queue);
            Ok(())
        }
        Err(e) => {
            warn!(event = "follow_up_failed", parent = %parent.headers.id, task = %msg.headers.task, queue, error = %e);
            Err(Unfinished)
        }
    }
}

/// Counts this chord member done; the member that completes the count fires the callback.
async fn chord_member_done(s: &Session, msg: &TaskMessage) -> Result<(), Unfinished> {
    let Some(body) = &msg.embed.chord else {
        return Ok(());
    };
    let Some(group) = msg
        .headers
        .group
        .clone()
        .or_else(|| body.option_str("group_id").map(str::to_owned))
    else {
        warn!(event = "chord_without_group", id = %msg.headers.id, "a chord member without a group id; callback not counted");
        return Ok(());
    };
    let Some(store) = &s.store else {
        warn!(event = "chord_needs_store", id = %msg.headers.id, "chords need --result-backend mongodb://...");
        return Ok(());
    };
    // Boxed: only chord members wait on the store here (see `processor`'s size note).
    Box::pin(count_chord_member(s, store, &group, body, msg)).await
}

/// Counts a chord member in the store, and fires the callback when it was the last.
async fn count_chord_member(
    s: &Session,
    store: &ResultStore,
    group: &str,
    body: &Signature,
    msg: &TaskMessage,
) -> Result<(), Unfinished> {
    let fail = |e: maestro_results::StoreError| {
        warn!(event = "chord_count_failed", group, error = %e);
        Unfinished
    };
    let done = store
        .chord_member_done(group, &msg.headers.id)
        .await
        .map_err(fail)?;
    let Some(members) = store.group_members(group).await.map_err(fail)? else {
        warn!(
            event = "chord_group_unsaved",
            group, "the chord's group result was not saved; callback not fired"
        );
        return Ok(());
    };
    if done == 0 || (done as usize) < members.len() {
        return Ok(());
    }
    try_fire_chord(s, group, body, &members, msg)
        .await
        .map(|_| ())
}

/// Fires a chord's callback if every member is ready and nobody fired it yet: with the members'
/// results in group order, or, when one failed, as a FAILURE (ChordError) with its errbacks.
/// `Ok(false)` when some member is not ready yet.
pub(crate) async fn try_fire_chord(
    s: &Session,
    group: &str,
    body: &Signature,
    members: &[String],
    parent: &TaskMessage,
) -> Result<bool, Unfinished> {
    let Some(store) = &s.store else {
        return Ok(true);
    };
    let fail = |e: maestro_results::StoreError| {
        warn!(event = "chord_check_failed", group, error = %e);
        Unfinished
    };
    let mut metas = Vec::with_capacity(members.len());
    for meta in store.get_many(members).await.map_err(fail)? {
        match meta {
            Some(m) if matches!(m.status.as_str(), "SUCCESS" | "FAILURE" | "REVOKED") => {
                metas.push(m)
            }
            _ => return Ok(false),
        }
    }
    if store.chord_fired(group).await.map_err(fail)? {
        return Ok(true);
    }
    if let Some(failed) = metas.iter().find(|m| m.status != "SUCCESS") {
        let exc = ExceptionInfo::celery(
            "ChordError",
            format!("Dependency {} raised {}", failed.id, failed.status),
        );
        let callback_id = follow_up_id(body, &format!("chord:{group}"));
        warn!(event = "chord_failed", group, member = %failed.id, callback = %callback_id);
        let record = TaskRecord {
            name: Some(body.task.clone()),
            worker: Some(s.hostname.to_string()),
            queue: body.option_str("queue").map(str::to_owned),
            ..TaskRecord::new(callback_id.clone(), TaskState::Failure, exc.to_value())
        };
        store.store(&record).await.map_err(fail)?;
        let errbacks = body
            .options
            .get("link_error")
            .and_then(|v| serde_json::from_value::<Vec<Signature>>(v.clone()).ok());
        for (i, errback) in errbacks.iter().flatten().enumerate() {
            send(
                s,
                errback,
                Some(Value::String(callback_id.clone())),
                parent,
                None,
                &format!("{callback_id}/errback:{i}"),
            )
            .await?;
        }
    } else {
        info!(event = "chord_complete", group, members = members.len());
        let results = metas.into_iter().map(|m| m.result).collect();
        send(
            s,
            body,
            Some(Value::Array(results)),
            parent,
            None,
            &format!("chord:{group}"),
        )
        .await?;
    }
    // Marked only now that the callback is out: a kill before this fires it again, with the
    // same id.
    store.mark_chord_fired(group).await.map_err(fail)?;
    Ok(true)
}

/// Member ids of a chord from `celery.chord_unlock`'s arguments: the `result` keyword (a
/// GroupResult as tuples) when given, else the saved group.
pub(crate) async fn chord_unlock_members(
    s: &Session,
    group: &str,
    kwargs: &Value,
) -> Result<Option<Vec<String>>, Unfinished> {
    if let Some(result) = kwargs.get("result") {
        let ids = member_ids(result);
        if !ids.is_empty() {
            return Ok(Some(ids));
        }
    }
    let Some(store) = &s.store else {
        return Ok(None);
    };
    store.group_members(group).await.map_err(|e| {
        warn!(event = "chord_check_failed", group, error = %e);
        Unfinished
    })
}

/// Celery's `celery.chord_unlock`, which Python clients send for chords when the result
/// backend is MongoDB: fires the callback once every member is ready (through the same claim
/// as the member count, so it fires once however both paths race), else comes back after
/// `interval` seconds.
pub(crate) async fn chord_unlock(s: &Session, queue: &str, msg: &TaskMessage) -> Disposition {
    let args = msg.args_vec();
    let kwargs: Value = serde_json::from_str(msg.kwargs.get()).unwrap_or_else(|_| json!({}));
    let group = args.first().and_then(Value::as_str);
    let body = args
        .get(1)
        .and_then(|v| serde_json::from_value::<maestro_broker::Signature>(v.clone()).ok());
    let (Some(group), Some(body)) = (group, body) else {
        return Disposition::DeadLetter {
            reason: DeadReason::Undecodable,
            detail: "celery.chord_unlock without (group_id, callback) arguments".into(),
        };
    };
    let members = match chord_unlock_members(s, group, &kwargs).await {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Disposition::DeadLetter {
                reason: DeadReason::Undecodable,
                detail: format!("chord group {group} is unknown"),
            };
        }
        Err(Unfinished) => return Disposition::Requeue,
    };
    match try_fire_chord(s, group, &body, &members, msg).await {
        Ok(true) => Disposition::Ack,
        Ok(false) => {
            let interval = kwargs
                .get("interval")
                .and_then(Value::as_f64)
                .unwrap_or(1.0)
                .clamp(0.0, 3600.0);
            match publish_retry(s, queue, msg, Duration::from_secs_f64(interval)).await {
                Ok(()) => Disposition::Ack,
                Err(e) => {
                    warn!(event = "retry_publish_failed", task = %msg.headers.task, id = %msg.headers.id, error = %e);
                    s.publish_failed(&e);
                    Disposition::Requeue
                }
            }
        }
        Err(Unfinished) => Disposition::Requeue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parent() -> TaskMessage {
        TaskMessage::with_id("tasks.add", "p-1", &json!([1, 2]), &json!({})).expect("message")
    }

    #[test]
    fn a_link_gets_the_result_first_unless_immutable() {
        let mut sig = Signature::new("tasks.add", vec![json!(10)]);
        sig.options.insert("task_id".into(), json!("c-1"));
        sig.options.insert("queue".into(), json!("report"));
        let m = TaskMessage::from_signature(&sig, Some(json!(3)), Some(&parent().headers), None)
            .expect("valid");
        assert_eq!(m.args.get(), "[3,10]");
        assert_eq!(m.headers.id, "c-1");
        assert_eq!(m.headers.parent_id.as_deref(), Some("p-1"));
        assert_eq!(m.headers.root_id.as_deref(), Some("p-1"));
        sig.immutable = true;
        let m = TaskMessage::from_signature(&sig, Some(json!(3)), Some(&parent().headers), None)
            .expect("valid");
        assert_eq!(m.args.get(), "[10]");
    }

    #[test]
    fn the_chain_carries_on_reversed() {
        let a = Signature::new("a", vec![]);
        let b = Signature::new("b", vec![]);
        let mut p = parent();
        p.embed.chain = Some(vec![b.clone(), a.clone()]);
        let (next, rest) = p.embed.next_in_chain().expect("next");
        assert_eq!(next.task, "a");
        let m = TaskMessage::from_signature(&next, Some(json!(1)), Some(&p.headers), Some(rest))
            .expect("valid");
        assert_eq!(
            m.embed.chain.as_ref().map(|c| c[0].task.as_str()),
            Some("b")
        );
        let last = TaskMessage::from_signature(&b, Some(json!(1)), Some(&m.headers), Some(vec![]))
            .expect("valid");
        assert_eq!(last.embed.chain, None);
    }
}
