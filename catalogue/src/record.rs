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
use serde_json::json;

use crate::Services;
use crate::mongo::mongo_error;
use maestro_contract::RecordRequest;
use maestro_tasks::TaskArgs;
use maestro_tasks::TaskContext;
use maestro_tasks::TaskError;
use maestro_tasks::{Task, TaskFuture};

/// The task's name.
pub const TASK_NAME: &str = maestro_contract::names::TASK_RECORD;

/// See the module docs.
pub struct Record {
    svc: Arc<Services>,
}

impl Record {
    pub fn new(svc: Arc<Services>) -> Self {
        Self { svc }
    }
}

/// Reads and checks the call.
fn request(args: &TaskArgs) -> Result<(String, u64), TaskError> {
    let req: RecordRequest = args.parse(&RecordRequest::PARAMS)?;
    req.validate()?;
    Ok((req.collection, req.ms))
}

impl Task for Record {
    fn name(&self) -> &str {
        TASK_NAME
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext, args: &'a TaskArgs) -> TaskFuture<'a> {
        Box::pin(async move {
            let (collection, ms) = request(args)?;
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
            let outcome = self
                .svc
                .inventory
                .collection::<mongodb::bson::Document>(&collection)
                .update_one(doc! {"_id": &ctx.id}, update)
                .upsert(true)
                .await
                .map_err(|e| mongo_error("recording the run", &e))?;
            let first = outcome.upserted_id.is_some();
            Ok(json!({"collection": collection, "first_run": first}))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn args(a: Value, k: Value) -> TaskArgs {
        TaskArgs::from_values(&a, &k).expect("json")
    }

    #[test]
    fn arguments_are_checked() {
        assert_eq!(
            request(&args(json!(["ledger"]), json!({}))).expect("ok"),
            ("ledger".into(), 0)
        );
        assert_eq!(
            request(&args(json!([]), json!({"collection": "l", "ms": 5}))).expect("ok"),
            ("l".into(), 5)
        );
        for (a, k, field) in [
            (json!([]), json!({}), "collection"),
            (json!(["a b"]), json!({}), "collection"),
            (json!(["system.users"]), json!({}), "collection"),
            (json!(["l", -1]), json!({}), "ms"),
            (json!(["l"]), json!({"ms": 60_001}), "ms"),
        ] {
            let e = request(&args(a, k)).expect_err("refused");
            assert!(e.to_string().contains(field), "{e}");
        }
    }
}
