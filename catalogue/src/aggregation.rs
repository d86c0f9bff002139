//! `maestro.aggregation(collection, pipeline, owner_user, report_id=None)`: runs a stored
//! MongoDB aggregation pipeline over the owner's documents of `<MAESTRO_MONGO_DATABASE>.<collection>`
//! and writes its output to `<MAESTRO_REPORTS_DATABASE>.<report_id>_aggregation` (report_id
//! defaults to the task id).
//!
//! Lifecycle: check the kwargs as the API does (the collection and joins among the inventory
//! entities, the stage allowlist, no server-side JavaScript; see
//! [`maestro_contract::aggregation`]), scope the pipeline to the owner, convert the stages from
//! extended JSON (`{"$date": ...}`, `{"$oid": ...}`), open the cursor
//! (so a pipeline the server rejects fails before anything is dropped), drop the target
//! collection, then stream the cursor into it in batches of `MAESTRO_INSERT_QTD` rows; at most
//! one batch is held in memory. Rows are stored as the pipeline emits them, `_id` included, so
//! duplicate `_id`s fail as they would under `$out`. A rerun (retry or redelivery) drops and
//! rewrites the collection, so it is idempotent. The pipeline runs with `maxTimeMS` (one
//! minute, [`PIPELINE_MAX_TIME`]) and without `allowDiskUse`.
//!
//! Errors: network and server-selection errors, and server errors MongoDB calls transient,
//! are retried after the worker's backoff; any other server error fails with its message.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use maestro_contract::AggregationRequest;
use maestro_tasks::FieldError;
use mongodb::bson::Document;
use serde_json::{Value, json};
use tracing::info;

use crate::Services;
use crate::mongo::mongo_error;
use maestro_tasks::{TaskContext, TaskError, TaskResult, task};

/// The task's name.
pub const TASK_NAME: &str = maestro_contract::names::TASK_AGGREGATION;

/// Longest a pipeline may run on the server (its `maxTimeMS`).
pub const PIPELINE_MAX_TIME: Duration = Duration::from_secs(60);

/// A checked aggregation, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub collection: String,
    pub pipeline: Vec<Document>,
    pub report_id: String,
    /// The output collection (`<report_id>_aggregation`).
    pub target: String,
}

impl Aggregate {
    /// Checks the call (`report_id` defaults to the task's id), scopes the pipeline to the
    /// owner, and converts the stages from extended JSON.
    pub fn from_request(req: AggregationRequest, task_id: &str) -> Result<Self, TaskError> {
        req.validate()?;
        let target = req.target(task_id);
        // The caller's stages are converted first, so that an error names the caller's stage;
        // the scoped pipeline only adds owner matches to them.
        to_documents(req.pipeline.clone())?;
        let pipeline = to_documents(req.scoped_pipeline())?;
        Ok(Self {
            collection: req.collection,
            pipeline,
            report_id: req.report_id.unwrap_or_else(|| task_id.to_owned()),
            target,
        })
    }
}

/// `stages` from extended JSON (`{"$date": ...}`, `{"$oid": ...}`) to BSON.
fn to_documents(stages: Vec<Value>) -> Result<Vec<Document>, FieldError> {
    stages
        .into_iter()
        .enumerate()
        .map(|(i, stage)| match stage {
            Value::Object(map) => Document::try_from(map).map_err(|e| {
                FieldError::value(
                    format!("pipeline[{i}]"),
                    format!("is not extended JSON: {e}"),
                )
            }),
            _ => Err(FieldError::value(
                format!("pipeline[{i}]"),
                "must be an object",
            )),
        })
        .collect()
}

/// `maestro.aggregation(collection, pipeline, owner_user, report_id=None)`: see the module
/// documentation.
#[task(name = TASK_NAME)]
pub async fn aggregation(
    ctx: &TaskContext,
    #[state] svc: &Arc<Services>,
    #[args] req: AggregationRequest,
) -> TaskResult<Value> {
    let req = Aggregate::from_request(req, &ctx.id)?;
    aggregate(svc, ctx, req).await
}

async fn aggregate(svc: &Services, ctx: &TaskContext, req: Aggregate) -> Result<Value, TaskError> {
    let batch_rows = svc.cfg.insert_qtd.max(1);
    let target_name = req.target.clone();
    let source = svc.inventory.collection::<Document>(&req.collection);
    let target = svc.reports.collection::<Document>(&target_name);
    let mut cursor = source
        .aggregate(req.pipeline)
        .batch_size(u32::try_from(batch_rows).unwrap_or(u32::MAX))
        .max_time(PIPELINE_MAX_TIME)
        .allow_disk_use(false)
        .await
        .map_err(|e| mongo_error("running the pipeline", &e))?;
    target
        .drop()
        .await
        .map_err(|e| mongo_error("dropping the old result", &e))?;
    let mut rows: u64 = 0;
    let mut batch = Vec::with_capacity(batch_rows);
    loop {
        if ctx.soft_limit_reached() {
            return Err(ctx.soft_limit_error());
        }
        let next = cursor
            .try_next()
            .await
            .map_err(|e| mongo_error("reading the pipeline's output", &e))?;
        let done = next.is_none();
        if let Some(doc) = next {
            batch.push(doc);
        }
        if batch.len() >= batch_rows || (done && !batch.is_empty()) {
            let n = batch.len() as u64;
            target
                .insert_many(std::mem::take(&mut batch))
                .await
                .map_err(|e| mongo_error("writing the result", &e))?;
            rows += n;
        }
        if done {
            break;
        }
    }
    info!(event = "aggregation_stored", id = %ctx.id, collection = %req.collection,
        target = %target_name, rows);
    Ok(json!({"report_id": req.report_id, "collection": target_name, "rows": rows}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestro_tasks::{CallArgs, TaskArgs};
    use mongodb::bson::{Bson, doc};

    const OWNER: &str = "5f0000000000000000000001";

    /// The call read as the task reads it: bound to `AggregationRequest`, then checked.
    fn parse(mut kwargs: Value) -> Result<Aggregate, TaskError> {
        if let Value::Object(m) = &mut kwargs {
            m.entry("owner_user").or_insert(json!(OWNER));
        }
        let args = TaskArgs::from_values(&json!([]), &kwargs).expect("json");
        Aggregate::from_request(args.parse(AggregationRequest::PARAMETERS)?, "task-1")
    }

    #[test]
    fn stages_convert_from_extended_json() {
        let r = parse(json!({"collection": "servers", "pipeline": [
            {"$match": {"created_at": {"$gte": {"$date": "2024-01-02T00:00:00Z"}}, "n": 5}},
            {"$group": {"_id": "$status", "count": {"$sum": 1}}}
        ], "report_id": null}))
        .expect("valid");
        assert_eq!(r.report_id, "task-1");
        assert_eq!(r.target, "task-1_aggregation");
        assert_eq!(
            r.pipeline[0],
            doc! {"$match": {"roles._id": mongodb::bson::oid::ObjectId::parse_str(OWNER).expect("oid")}}
        );
        let m = r.pipeline[1].get_document("$match").expect("match");
        let gte = m
            .get_document("created_at")
            .expect("created_at")
            .get("$gte");
        assert!(matches!(gte, Some(Bson::DateTime(_))), "{gte:?}");
        assert_eq!(m.get("n"), Some(&Bson::Int32(5)));
        assert_eq!(
            r.pipeline[2],
            doc! {"$group": {"_id": "$status", "count": {"$sum": 1}}}
        );
    }

    #[test]
    fn bad_pipelines_and_names_are_refused() {
        let err = |k: Value| parse(k).expect_err("invalid").to_string();
        let p = |pipeline: Value| json!({"collection": "servers", "pipeline": pipeline});
        assert!(err(p(json!([]))).contains("1 to 64"));
        assert!(err(p(json!([{"$out": "x"}]))).contains("$out is not allowed"));
        assert!(err(p(json!([{"$match": {}}, {"$merge": {"into": "x"}}]))).contains("pipeline[1]"));
        assert!(err(p(json!([{"match": {}}]))).contains("not a stage operator"));
        assert!(err(p(json!([{"$match": {}, "$limit": 1}]))).contains("exactly one key"));
        assert!(err(p(json!([3]))).contains("must be an object"));
        assert!(err(p(json!({"$match": {}}))).contains("TypeError"));
        assert!(
            err(json!({"collection": "system.users", "pipeline": [{"$match": {}}]}))
                .contains("system")
        );
        assert!(
            err(json!({"collection": "a/b", "pipeline": [{"$match": {}}]})).contains("collection")
        );
        assert!(
            err(json!({"collection": "connections", "pipeline": [{"$match": {}}]}))
                .contains("not an inventory collection")
        );
        assert!(
            err(json!({"collection": "servers", "pipeline": [{"$match": {}}], "owner_user": "x"}))
                .contains("owner_user")
        );
        // An extended-JSON error names the caller's stage, not the added owner match.
        assert!(
            err(p(
                json!([{"$match": {}}, {"$match": {"d": {"$date": "nope"}}}])
            ))
            .contains("pipeline[1]")
        );
        assert!(
            err(json!({"collection": "servers", "pipeline": [{"$match": {}}], "report_id": "a b"}))
                .contains("report_id")
        );
    }
}
