//! `maestro.record(collection, ms=0)`: a diagnostic task with a side effect in MongoDB, so an
//! operator (and the fault suite) can see how often each task id really ran.
//!
//! It waits `ms` milliseconds (work in progress, where a kill can land), then upserts one
//! document per task id into `<MAESTRO_MONGO_DATABASE>.<collection>`:
//! `{_id: task id, runs: n, at: [run times], workers: [node names], retries: [..]}`,
//! incrementing `runs` and appending to the arrays on every run. With acks late a task can run
//! again when its worker dies after the side effect and before its result is recorded: `runs`
//! shows that; a task whose SUCCESS was recorded is never run again, so no entry of `at` is
//! later than the result's `date_done`. Network errors and server selection timeouts retry.

use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{DateTime as BsonDateTime, doc};
use serde_json::{Value, json};

use crate::Services;
use crate::mongo::mongo_error;
use maestro_contract::RecordRequest;
use maestro_tasks::{TaskContext, TaskError, TaskResult, task};

/// The task's name.
pub const TASK_NAME: &str = maestro_contract::names::TASK_RECORD;

/// Checks the call: the collection and the wait.
fn request(req: RecordRequest) -> Result<(String, u64), TaskError> {
    req.validate()?;
    Ok((req.collection, req.ms))
}

/// `maestro.record(collection, ms=0)`: see the module documentation.
#[task(name = TASK_NAME)]
pub async fn record(
    ctx: &TaskContext,
    #[state] svc: &Arc<Services>,
    #[args] req: RecordRequest,
) -> TaskResult<Value> {
    let (collection, ms) = request(req)?;
    if ms > 0 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
            _ = ctx.soft_limit_token().cancelled() => return Err(ctx.soft_limit_error()),
        }
    }
    let update = doc! {
        "$inc": {"runs": 1},
        "$push": {
            "at": BsonDateTime::now(),
            "workers": ctx.hostname.as_ref(),
            "retries": i64::from(ctx.retries),
        },
    };
    let outcome = svc
        .inventory
        .collection::<mongodb::bson::Document>(&collection)
        .update_one(doc! {"_id": &ctx.id}, update)
        .upsert(true)
        .await
        .map_err(|e| mongo_error("recording the run", &e))?;
    let first = outcome.upserted_id.is_some();
    Ok(json!({"collection": collection, "first_run": first}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestro_tasks::{CallArgs, TaskArgs};

    /// The call read as the task reads it: bound to `RecordRequest`, then checked.
    fn read(a: Value, k: Value) -> Result<(String, u64), TaskError> {
        let args = TaskArgs::from_values(&a, &k).expect("json");
        request(args.parse(RecordRequest::PARAMETERS)?)
    }

    #[test]
    fn arguments_are_checked() {
        assert_eq!(
            read(json!(["ledger"]), json!({})).expect("ok"),
            ("ledger".into(), 0)
        );
        assert_eq!(
            read(json!([]), json!({"collection": "l", "ms": 5})).expect("ok"),
            ("l".into(), 5)
        );
        for (a, k, field) in [
            (json!([]), json!({}), "collection"),
            (json!(["a b"]), json!({}), "collection"),
            (json!(["system.users"]), json!({}), "collection"),
            (json!(["l", -1]), json!({}), "ms"),
            (json!(["l"]), json!({"ms": 60_001}), "ms"),
        ] {
            let e = read(a, k).expect_err("refused");
            assert!(e.to_string().contains(field), "{e}");
        }
    }
}
