//! Reports: `maestro.report.general` and `maestro.report.pivot` query the inventory and write
//! the rows into `<MAESTRO_REPORTS_DATABASE>.<report_id>_<general|pivot>` in chunks of
//! `MAESTRO_INSERT_QTD`; when every chunk is stored, `maestro.report.finish` computes the
//! column summary and notifies `finished`.
//!
//! The chunks form a chord: the report task streams the inventory cursor (one chunk in memory
//! at a time) and sends each chunk as a `maestro.report.upload` task; the chord's callback
//! runs once, after the last chunk's result is stored. (Maestro's report-app had no chord, so
//! `finished` could arrive before the chunks landed.) An empty report notifies a `warning`
//! "This report is empty" and writes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use futures_util::TryStreamExt;
use maestro_broker::Signature;
use maestro_contract::notify::{NotifyType, ws_notification};
use maestro_contract::report::{FinishRequest, SUMMARY_COLLECTION, UploadRequest};
use maestro_contract::{ReportKind, ReportRequest};
use maestro_tasks::FieldError;
use maestro_tasks::followup::ChordHandle;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::InsertManyOptions;
use serde_json::{Value, json};

use crate::Services;
use maestro_contract::names::{
    TASK_NOTIFY, TASK_REPORT_FINISH, TASK_REPORT_GENERAL, TASK_REPORT_PIVOT, TASK_REPORT_UPLOAD,
};
use maestro_tasks::TaskArgs;
use maestro_tasks::TaskContext;
use maestro_tasks::TaskError;

use crate::mongo::mongo_error;
use maestro_tasks::{Task, TaskFuture};

pub(crate) fn all(svc: &Arc<Services>) -> Vec<Arc<dyn Task>> {
    vec![
        Arc::new(Report {
            svc: svc.clone(),
            kind: ReportKind::General,
        }),
        Arc::new(Report {
            svc: svc.clone(),
            kind: ReportKind::Pivot,
        }),
        Arc::new(Upload { svc: svc.clone() }),
        Arc::new(Finish { svc: svc.clone() }),
    ]
}

/// Reads and checks a report call.
fn request(args: &TaskArgs) -> Result<ReportRequest, TaskError> {
    let req: ReportRequest = args.parse(&ReportRequest::PARAMS)?;
    req.validate()?;
    Ok(req)
}

/// The inventory filter: the owner's items matching the request's query.
fn match_filter(req: &ReportRequest) -> Result<Document, TaskError> {
    let mut m = req.query();
    m.insert("roles._id".into(), Value::String(req.owner_user.clone()));
    to_document("filters", Value::Object(m))
}

/// A pivot's pipeline: `$match` on the owner's items, then for each join a `$lookup` and an
/// `$unwind` that keeps rows without a match.
fn pivot_pipeline(req: &ReportRequest) -> Result<Vec<Document>, TaskError> {
    let mut pipeline = vec![doc! {"$match": match_filter(req)?}];
    for join in req.joins()? {
        pipeline.push(doc! {"$lookup": {
            "from": join.from, "localField": join.local_field,
            "foreignField": join.foreign_field, "as": &join.as_,
        }});
        pipeline.push(doc! {"$unwind": {
            "path": format!("${}", join.as_), "preserveNullAndEmptyArrays": true,
        }});
    }
    Ok(pipeline)
}

fn to_document(field: &str, v: Value) -> Result<Document, TaskError> {
    match Bson::try_from(v) {
        Ok(Bson::Document(d)) => Ok(d),
        Ok(_) => Err(FieldError::value(field, "must be an object").into()),
        Err(e) => Err(FieldError::value(field, format!("is not extended JSON: {e}")).into()),
    }
}

/// `maestro.report.general(report_id, filters, component, owner_user)` and
/// `maestro.report.pivot(...)`: see the module documentation.
pub struct Report {
    svc: Arc<Services>,
    kind: ReportKind,
}

impl Task for Report {
    fn name(&self) -> &str {
        match self.kind {
            ReportKind::Pivot => TASK_REPORT_PIVOT,
            _ => TASK_REPORT_GENERAL,
        }
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext, args: &'a TaskArgs) -> TaskFuture<'a> {
        Box::pin(async move {
            let req = request(args)?;
            let collection = req.collection(self.kind);
            let reports = &self.svc.reports;
            let inventory = self.svc.inventory.collection::<Document>(&req.component);
            let qtd = self.svc.cfg.insert_qtd;

            // As Maestro did: the report's collection is rebuilt from scratch.
            reports
                .collection::<Document>(&collection)
                .drop()
                .await
                .map_err(|e| mongo_error("dropping the old report", &e))?;

            let (count, cursor) = match self.kind {
                ReportKind::General | ReportKind::Aggregation => {
                    let filter = match_filter(&req)?;
                    let count = inventory
                        .count_documents(filter.clone())
                        .await
                        .map_err(|e| mongo_error("counting the inventory", &e))?;
                    let cursor = inventory
                        .find(filter)
                        .batch_size(qtd.min(u32::MAX as usize) as u32)
                        .limit(count as i64)
                        .await
                        .map_err(|e| mongo_error("querying the inventory", &e))?;
                    (count, cursor)
                }
                ReportKind::Pivot => {
                    let pipeline = pivot_pipeline(&req)?;
                    let mut counting = pipeline.clone();
                    counting.push(doc! {"$count": "n"});
                    let counted: Vec<Document> = inventory
                        .aggregate(counting)
                        .await
                        .map_err(|e| mongo_error("counting the pivot", &e))?
                        .try_collect()
                        .await
                        .map_err(|e| mongo_error("counting the pivot", &e))?;
                    let count = counted
                        .first()
                        .and_then(|d| d.get("n"))
                        .and_then(|n| match n {
                            Bson::Int32(i) => Some(*i as u64),
                            Bson::Int64(i) => Some(*i as u64),
                            _ => None,
                        })
                        .unwrap_or(0);
                    let mut limited = pipeline;
                    limited.push(doc! {"$limit": count.max(1) as i64});
                    let cursor = inventory
                        .aggregate(limited)
                        .batch_size(qtd.min(u32::MAX as usize) as u32)
                        .await
                        .map_err(|e| mongo_error("running the pivot", &e))?;
                    (count, cursor)
                }
            };

            if count == 0 {
                record_summary(
                    &self.svc,
                    &req.report_id,
                    self.kind,
                    &collection,
                    0,
                    &[],
                    "warning",
                )
                .await?;
                ctx.send(notification(
                    &self.svc,
                    &req.owner_user,
                    "Report",
                    "This report is empty",
                    NotifyType::Warning,
                ))
                .await?;
                return Ok(json!({"report_id": req.report_id, "collection": collection,
                                 "rows": 0, "chunks": 0, "status": "warning"}));
            }

            let chunks = (count as usize).div_ceil(qtd);
            let callback = Signature::new(TASK_REPORT_FINISH, vec![])
                .with_option("queue", self.svc.queue_for(TASK_REPORT_FINISH).into())
                .with_kwargs(json!({
                    "report_id": req.report_id, "kind": self.kind.as_str(),
                    "collection": collection, "owner_user": req.owner_user,
                }));
            let chord = ctx.start_chord(chunks, callback).await?;
            let mut cursor = cursor;
            let mut rows: Vec<Value> = Vec::with_capacity(qtd);
            let mut sent = 0usize;
            loop {
                let next = cursor
                    .try_next()
                    .await
                    .map_err(|e| mongo_error("reading the inventory", &e))?;
                let done = next.is_none();
                if let Some(d) = next {
                    rows.push(Bson::Document(d).into_relaxed_extjson());
                }
                if rows.len() == qtd || (done && !rows.is_empty()) {
                    self.send_chunk(ctx, &chord, sent, &collection, std::mem::take(&mut rows))
                        .await?;
                    rows.reserve(qtd);
                    sent += 1;
                }
                if done || sent == chunks {
                    break;
                }
            }
            // Items removed since the count: the chord still needs every member.
            while sent < chunks {
                self.send_chunk(ctx, &chord, sent, &collection, Vec::new())
                    .await?;
                sent += 1;
            }
            Ok(json!({"report_id": req.report_id, "collection": collection,
                      "rows": count, "chunks": chunks, "finish_task_id": chord.callback_id()}))
        })
    }
}

impl Report {
    async fn send_chunk(
        &self,
        ctx: &TaskContext,
        chord: &ChordHandle,
        index: usize,
        collection: &str,
        rows: Vec<Value>,
    ) -> Result<(), TaskError> {
        let sig = Signature::new(TASK_REPORT_UPLOAD, vec![])
            .with_option("queue", self.svc.queue_for(TASK_REPORT_UPLOAD).into())
            .with_kwargs(json!({"collection": collection, "chunk": index, "rows": rows}));
        let member = chord
            .member(index, sig)
            .ok_or_else(|| TaskError::fail("RuntimeError", "chord member out of range"))?;
        ctx.send(member).await.map(|_| ())
    }
}

/// `maestro.report.upload(collection, chunk, rows)`: stores one chunk of report rows.
/// Redelivered chunks are harmless: rows keep their inventory `_id`, and duplicates are
/// skipped. Returns `{chunk, rows, columns: {name: filled}}` for the summary.
pub struct Upload {
    svc: Arc<Services>,
}

impl Task for Upload {
    fn name(&self) -> &str {
        TASK_REPORT_UPLOAD
    }

    fn run<'a>(&'a self, _ctx: &'a TaskContext, args: &'a TaskArgs) -> TaskFuture<'a> {
        Box::pin(async move {
            let req: UploadRequest = args.parse(&UploadRequest::PARAMS)?;
            req.validate()?;
            let UploadRequest {
                collection,
                chunk,
                rows,
            } = req;
            let mut columns: BTreeMap<String, u64> = BTreeMap::new();
            let mut docs = Vec::with_capacity(rows.len());
            for (i, row) in rows.into_iter().enumerate() {
                if let Value::Object(m) = &row {
                    for (k, v) in m {
                        if k != "_id" && !v.is_null() {
                            *columns.entry(k.clone()).or_default() += 1;
                        }
                    }
                }
                docs.push(to_document(&format!("rows[{i}]"), row)?);
            }
            let n = docs.len();
            if n > 0 {
                let result = self
                    .svc
                    .reports
                    .collection::<Document>(&collection)
                    .insert_many(docs)
                    .with_options(InsertManyOptions::builder().ordered(false).build())
                    .await;
                if let Err(e) = result
                    && !only_duplicates(&e)
                {
                    return Err(mongo_error("writing report rows", &e));
                }
            }
            Ok(json!({"chunk": chunk, "rows": n, "columns": columns}))
        })
    }
}

fn only_duplicates(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::InsertMany(f) => {
            f.write_concern_error.is_none()
                && f.write_errors
                    .as_ref()
                    .is_some_and(|errs| errs.iter().all(|w| w.code == 11000))
        }
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        _ => false,
    }
}

/// `maestro.report.finish(chunk_results, report_id, kind, collection, owner_user)`: the
/// chord callback. Sums the chunks' column counts into the summary, stores it in
/// `reports.reports`, and notifies the owner `finished`.
pub struct Finish {
    svc: Arc<Services>,
}

impl Task for Finish {
    fn name(&self) -> &str {
        TASK_REPORT_FINISH
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext, args: &'a TaskArgs) -> TaskFuture<'a> {
        Box::pin(async move {
            let req: FinishRequest = args.parse(&FinishRequest::PARAMS)?;
            req.validate()?;
            let FinishRequest {
                chunk_results: results,
                report_id,
                kind,
                collection,
                owner_user,
            } = req;
            let mut rows = 0u64;
            let mut columns: BTreeMap<String, u64> = BTreeMap::new();
            for r in &results {
                rows += r.get("rows").and_then(Value::as_u64).unwrap_or(0);
                if let Some(Value::Object(c)) = r.get("columns") {
                    for (k, v) in c {
                        *columns.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
                    }
                }
            }
            let summary: Vec<(String, u64)> = columns.into_iter().collect();
            record_summary(
                &self.svc,
                &report_id,
                kind,
                &collection,
                rows,
                &summary,
                "finished",
            )
            .await?;
            ctx.send(notification(
                &self.svc,
                &owner_user,
                "Report",
                &format!("Report {report_id} is ready ({rows} rows)"),
                NotifyType::Success,
            ))
            .await?;
            Ok(
                json!({"report_id": report_id, "collection": collection, "rows": rows,
                      "columns": summary.iter().map(|(k, v)| json!({"name": k, "filled": v}))
                          .collect::<Vec<_>>()}),
            )
        })
    }
}

async fn record_summary(
    svc: &Services,
    report_id: &str,
    kind: ReportKind,
    collection: &str,
    rows: u64,
    columns: &[(String, u64)],
    status: &str,
) -> Result<(), TaskError> {
    let cols: Vec<Document> = columns
        .iter()
        .map(|(k, v)| doc! {"name": k, "filled": *v as i64})
        .collect();
    svc.reports
        .collection::<Document>(SUMMARY_COLLECTION)
        .replace_one(
            doc! {"_id": collection},
            doc! {"_id": collection, "report_id": report_id, "kind": kind.as_str(),
            "collection": collection, "rows": rows as i64, "columns": cols,
            "status": status, "finished_at": mongodb::bson::DateTime::from_millis(
                Utc::now().timestamp_millis())},
        )
        .upsert(true)
        .await
        .map_err(|e| mongo_error("storing the report summary", &e))?;
    Ok(())
}

/// A websocket notification to `owner` (Maestro's shape), sent as its own `maestro.notify`
/// task so its failures cannot touch the report's result.
fn notification(
    svc: &Services,
    owner: &str,
    title: &str,
    msg: &str,
    kind: NotifyType,
) -> Signature {
    ws_notification(owner, title, msg, kind, &["reports"])
        .signature()
        .with_option("queue", svc.queue_for(TASK_NOTIFY).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(filters: Value) -> Result<ReportRequest, TaskError> {
        let args = TaskArgs::from_values(
            &json!([]),
            &json!({"report_id": "r1", "filters": filters, "component": "servers",
                    "owner_user": "u1"}),
        )
        .expect("args");
        request(&args)
    }

    #[test]
    fn filters_are_scoped_to_the_owner() {
        let r = req(json!({"status": "active", "roles._id": "someone-else"})).expect("valid");
        let f = match_filter(&r).expect("filter");
        assert_eq!(f.get_str("roles._id").ok(), Some("u1"));
        assert_eq!(f.get_str("status").ok(), Some("active"));
        assert_eq!(r.collection(ReportKind::Pivot), "r1_pivot");
    }

    #[test]
    fn json_string_filters_and_server_code_operators() {
        assert!(req(json!("{\"a\": 1}")).is_ok());
        let e = req(json!({"$where": "sleep(1000)"})).expect_err("code");
        assert!(e.to_string().contains("$where"), "{e}");
        let e = req(json!({"a": {"$elemMatch": {"$function": {}}}})).expect_err("nested");
        assert!(e.to_string().contains("$function"), "{e}");
        assert!(req(json!([1])).is_err());
    }

    #[test]
    fn pivot_joins() {
        let r = req(
            json!({"pivot": [{"from": "applications", "local_field": "_id",
                                      "foreign_field": "servers", "as": "app"}]}),
        )
        .expect("valid");
        let p = pivot_pipeline(&r).expect("pipeline");
        assert_eq!(p.len(), 3);
        assert!(p[1].contains_key("$lookup") && p[2].contains_key("$unwind"));
        assert!(req(json!({"pivot": [{"from": "$x"}]})).is_err());
    }
}
