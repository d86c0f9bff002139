//! Reports as Maestro's report-app made them: `maestro.report.general` and
//! `maestro.report.pivot` read the owner's inventory (a general report by its rule list, a
//! pivot along clients -> systems -> applications -> servers) and write the rows into
//! `<MAESTRO_REPORTS_DATABASE>.<report_id>_<general|pivot>` in chunks of `MAESTRO_INSERT_QTD`;
//! when every chunk is stored, `maestro.report.finish` computes the columns and charts and
//! writes the report's completion where server-app reads it.
//!
//! The chunks form a chord: the report task streams the inventory cursor (one chunk in memory
//! at a time) and sends each chunk as a `maestro.report.upload` task; the chord's callback
//! runs once, after the last chunk's result is stored. (Maestro's report-app had no chord, so
//! `finished` could arrive before the rows landed.)
//!
//! What server-app sees, as it saw it from report-app: its report document
//! (`maestro-client.reports`) gets `status` (`finished` with `msg: "completed"`, `columns` and
//! `aggr`; `warning` "This report is empty"; `error` with the reason), and the owner's
//! websocket channel hears "Finish Sync" on callers `reports-update`, `reports-<id>`. Rows are
//! stored as report-app stored them: ids and dates as text, each with its own `_id`.

use std::sync::Arc;

use chrono::Utc;
use futures_util::TryStreamExt;
use maestro_broker::Signature;
use maestro_contract::names::{
    TASK_NOTIFY, TASK_REPORT_FINISH, TASK_REPORT_GENERAL, TASK_REPORT_PIVOT, TASK_REPORT_UPLOAD,
};
use maestro_contract::notify::{AuditMethod, AuditRecord, NotifyType, ws_notification};
use maestro_contract::report::render::{Charts, View, columns};
use maestro_contract::report::{
    CHUNK_BYTES_MAX, FinishRequest, MAESTRO_REPORTS_COLLECTION, ReportPlan, SUMMARY_COLLECTION,
    UploadRequest,
};
use maestro_contract::stored::from_stored_document;
use maestro_contract::{Notification, ReportKind, ReportRequest};
use maestro_tasks::followup::ChordHandle;
use maestro_tasks::{FieldError, TaskContext, TaskError, TaskResult, task};
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::InsertManyOptions;
use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};

use crate::Services;
use crate::mongo::mongo_error;

/// Rows whose columns are listed on the finished report, as report-app took them.
pub const COLUMN_ROWS: usize = 50;
/// The pivot levels whose ids make a pivot row's own id.
const PIVOT_LEVELS: [&str; 3] = ["systems", "applications", "servers"];

/// Writes a report's state onto server-app's report document (`status`, `msg`, and on
/// completion `columns` and `aggr`), as report-app did through data-app; never creates one.
pub(crate) async fn write_status(
    svc: &Services,
    report_id: &str,
    status: &str,
    msg: &str,
    more: Document,
) -> Result<(), TaskError> {
    let Ok(oid) = ObjectId::parse_str(report_id) else {
        // A report that is not server-app's (an id of this project's own API) has no document.
        return Ok(());
    };
    let mut set = doc! {"status": status, "msg": msg, "updated_at": mongodb::bson::DateTime::now()};
    set.extend(more);
    svc.inventory
        .collection::<Document>(MAESTRO_REPORTS_COLLECTION)
        .update_one(doc! {"_id": oid}, doc! {"$set": set})
        .await
        .map_err(|e| mongo_error("writing the report's state", &e))?;
    Ok(())
}

/// `maestro.report.general(report_id, filters, component, owner_user)`: a general report; see
/// the module documentation.
#[task(name = TASK_REPORT_GENERAL)]
pub async fn general(
    ctx: &TaskContext,
    #[state] svc: &Arc<Services>,
    #[args] req: ReportRequest,
) -> TaskResult<Value> {
    report(ctx, svc, ReportKind::General, req).await
}

/// `maestro.report.pivot(report_id, filters, component, owner_user)`: a pivot report; see the
/// module documentation.
#[task(name = TASK_REPORT_PIVOT)]
pub async fn pivot(
    ctx: &TaskContext,
    #[state] svc: &Arc<Services>,
    #[args] req: ReportRequest,
) -> TaskResult<Value> {
    report(ctx, svc, ReportKind::Pivot, req).await
}

/// A report of `kind`: its rows sent as a chord of chunks, or, when it cannot be made, its
/// error written where server-app reads it and told to the owner.
async fn report(
    ctx: &TaskContext,
    svc: &Services,
    kind: ReportKind,
    req: ReportRequest,
) -> Result<Value, TaskError> {
    let report = Report { svc, kind };
    let outcome = match req.plan(kind) {
        Ok(plan) => report.build(ctx, &req, plan).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e @ (TaskError::Fail { .. } | TaskError::Reject { .. })) = &outcome {
        // For good: the report must not stay "process" in server-app.
        let msg = e.to_string();
        if let Err(w) = write_status(svc, &req.report_id, "error", &msg, doc! {}).await {
            tracing::warn!(report_id = %req.report_id, error = %w, "report_error_not_recorded");
        }
        if let Err(w) = ctx
            .send(report.finished_notice(&req, NotifyType::Danger))
            .await
        {
            tracing::warn!(report_id = %req.report_id, error = %w, "report_notice_not_sent");
        }
    }
    outcome
}

/// One report of one kind, over the worker's shared services.
struct Report<'a> {
    svc: &'a Services,
    kind: ReportKind,
}

impl Report<'_> {
    async fn build(
        &self,
        ctx: &TaskContext,
        req: &ReportRequest,
        plan: ReportPlan,
    ) -> Result<Value, TaskError> {
        let collection = req.collection(self.kind);
        let qtd = self.svc.cfg.insert_qtd;
        let batch = u32::try_from(qtd).unwrap_or(u32::MAX);
        // As Maestro did: the report's collection is rebuilt from scratch.
        self.svc
            .reports
            .collection::<Document>(&collection)
            .drop()
            .await
            .map_err(|e| mongo_error("dropping the old report", &e))?;
        let (count, mut cursor, entity) = match plan {
            ReportPlan::General {
                collection: source,
                filter,
            } => {
                let inventory = self.svc.inventory.collection::<Document>(&source);
                let count = inventory
                    .count_documents(filter.clone())
                    .await
                    .map_err(|e| mongo_error("counting the inventory", &e))?;
                let cursor = inventory
                    .find(filter)
                    .batch_size(batch)
                    .limit(i64::try_from(count).unwrap_or(i64::MAX))
                    .await
                    .map_err(|e| mongo_error("querying the inventory", &e))?;
                (count, cursor, Some(source))
            }
            ReportPlan::Pivot { start, pipeline } => {
                self.index_joins(&pipeline).await;
                let inventory = self.svc.inventory.collection::<Document>(&start);
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
                        Bson::Int32(i) => u64::try_from(*i).ok(),
                        Bson::Int64(i) => u64::try_from(*i).ok(),
                        _ => None,
                    })
                    .unwrap_or(0);
                let mut limited = pipeline;
                limited.push(doc! {"$limit": i64::try_from(count.max(1)).unwrap_or(i64::MAX)});
                let cursor = inventory
                    .aggregate(limited)
                    .batch_size(batch)
                    .await
                    .map_err(|e| mongo_error("running the pivot", &e))?;
                (count, cursor, None)
            }
        };

        if count == 0 {
            record_summary(
                self.svc,
                &req.report_id,
                self.kind,
                &collection,
                0,
                &[],
                "warning",
            )
            .await?;
            write_status(
                self.svc,
                &req.report_id,
                "warning",
                "This report is empty",
                doc! {},
            )
            .await?;
            ctx.send(self.finished_notice(req, NotifyType::Info))
                .await?;
            return Ok(json!({"report_id": req.report_id, "collection": collection,
                             "rows": 0, "chunks": 0, "status": "warning"}));
        }

        let chunks = usize::try_from(count).unwrap_or(usize::MAX).div_ceil(qtd);
        let callback = Signature::new(TASK_REPORT_FINISH, vec![])
            .with_option("queue", self.svc.queue_for(TASK_REPORT_FINISH).into())
            .with_kwargs(json!({
                "report_id": req.report_id, "kind": self.kind.as_str(),
                "collection": collection, "owner_user": req.owner_user, "entity": entity,
            }));
        let chord = ctx.start_chord(chunks, callback).await?;
        let mut rows: Vec<Value> = Vec::with_capacity(qtd);
        let mut bytes = 0usize;
        let mut stored = 0u64;
        let mut sent = 0usize;
        loop {
            let next = cursor
                .try_next()
                .await
                .map_err(|e| mongo_error("reading the inventory", &e))?;
            let done = next.is_none();
            if let Some(d) = next {
                let row = Value::Object(self.row(d));
                bytes += serde_json::to_string(&row).map_or(0, |t| t.len());
                rows.push(row);
                if bytes > CHUNK_BYTES_MAX {
                    // Too large for one message: stored here, counted in the chunk's result.
                    stored += store_rows(self.svc, &collection, std::mem::take(&mut rows)).await?;
                    bytes = 0;
                }
            }
            let in_chunk = rows.len() + usize::try_from(stored).unwrap_or(usize::MAX);
            if in_chunk >= qtd || (done && in_chunk > 0) {
                self.send_chunk(
                    ctx,
                    &chord,
                    sent,
                    &collection,
                    std::mem::take(&mut rows),
                    stored,
                )
                .await?;
                rows.reserve(qtd);
                (bytes, stored) = (0, 0);
                sent += 1;
            }
            if done || sent == chunks {
                break;
            }
        }
        // Items removed since the count: the chord still needs every member.
        while sent < chunks {
            self.send_chunk(ctx, &chord, sent, &collection, Vec::new(), 0)
                .await?;
            sent += 1;
        }
        Ok(json!({"report_id": req.report_id, "collection": collection,
                  "rows": count, "chunks": chunks, "finish_task_id": chord.callback_id()}))
    }

    /// Makes sure each level a pivot joins has an index on the field it is joined by
    /// (`systems.clients._id`, `applications.system._id`, `servers.applications._id`):
    /// without one MongoDB scans the level once per row of the level above. Creating an index
    /// that exists is a no-op; one that cannot be made (no privilege) is logged and the pivot
    /// runs without it.
    async fn index_joins(&self, pipeline: &[Document]) {
        for stage in pipeline {
            let Ok(lookup) = stage.get_document("$lookup") else {
                continue;
            };
            let (Ok(from), Ok(field)) = (lookup.get_str("from"), lookup.get_str("foreignField"))
            else {
                continue;
            };
            let index = mongodb::IndexModel::builder().keys(doc! {field: 1}).build();
            let made = self
                .svc
                .inventory
                .collection::<Document>(from)
                .create_index(index)
                .await;
            if let Err(e) = made {
                tracing::warn!(collection = from, field, error = %e, "pivot_join_not_indexed");
            }
        }
    }

    /// One inventory document (or pivot combination) as a stored row: its values as
    /// report-app stored them (ids and dates as text), and an `_id` of its own that is the
    /// same on every run (a general row keeps its item's; a pivot row's comes from the ids
    /// of its levels), so a chunk stored twice is stored once.
    fn row(&self, d: Document) -> Map<String, Value> {
        let mut row = from_stored_document(&d);
        if self.kind == ReportKind::Pivot {
            let mut h = Sha1::new();
            h.update(row.get("_id").map(Value::to_string).unwrap_or_default());
            for level in PIVOT_LEVELS {
                h.update(b"/");
                h.update(
                    row.get(level)
                        .and_then(|l| l.get("_id"))
                        .map(Value::to_string)
                        .unwrap_or_default(),
                );
            }
            let digest = h.finalize();
            let id: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            row.insert("_id".into(), Value::String(id));
        }
        row
    }

    async fn send_chunk(
        &self,
        ctx: &TaskContext,
        chord: &ChordHandle,
        index: usize,
        collection: &str,
        rows: Vec<Value>,
        stored: u64,
    ) -> Result<(), TaskError> {
        let sig = Signature::new(TASK_REPORT_UPLOAD, vec![])
            .with_option("queue", self.svc.queue_for(TASK_REPORT_UPLOAD).into())
            .with_kwargs(
                json!({"collection": collection, "chunk": index, "rows": rows, "stored": stored}),
            );
        let member = chord
            .member(index, sig)
            .ok_or_else(|| TaskError::fail("RuntimeError", "chord member out of range"))?;
        ctx.send(member).await.map(|_| ())
    }

    fn finished_notice(&self, req: &ReportRequest, kind: NotifyType) -> Signature {
        notice(self.svc, &req.owner_user, &req.report_id, self.kind, kind)
    }
}

/// The websocket message of a finished report, as report-app sent it.
fn notice(
    svc: &Services,
    owner: &str,
    report_id: &str,
    kind: ReportKind,
    status: NotifyType,
) -> Signature {
    let callers = ["reports-update".to_owned(), format!("reports-{report_id}")];
    let callers: Vec<&str> = callers.iter().map(String::as_str).collect();
    ws_notification(
        owner,
        &format!("{} ({report_id})", kind.as_str()),
        "Finish Sync",
        status,
        &callers,
    )
    .signature()
    .with_option("queue", svc.queue_for(TASK_NOTIFY).into())
}

/// `maestro.report.upload(collection, chunk, rows, stored=0)`: stores one chunk of report rows.
/// Redelivered chunks are harmless: rows keep their `_id`, and duplicates are skipped.
#[task(name = TASK_REPORT_UPLOAD)]
pub async fn upload(#[state] svc: &Arc<Services>, #[args] req: UploadRequest) -> TaskResult<Value> {
    req.validate()?;
    let UploadRequest {
        collection,
        chunk,
        rows,
        stored,
    } = req;
    let n = store_rows(svc, &collection, rows).await? + stored;
    Ok(json!({"chunk": chunk, "rows": n}))
}

/// Stores report rows (their `_id`s kept, so a chunk stored twice is stored once); how many.
async fn store_rows(svc: &Services, collection: &str, rows: Vec<Value>) -> Result<u64, TaskError> {
    let mut docs = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        docs.push(row_document(&format!("rows[{i}]"), row)?);
    }
    let n = docs.len() as u64;
    if n > 0 {
        let result = svc
            .reports
            .collection::<Document>(collection)
            .insert_many(docs)
            .with_options(InsertManyOptions::builder().ordered(false).build())
            .await;
        if let Err(e) = result
            && !only_duplicates(&e)
        {
            return Err(mongo_error("writing report rows", &e));
        }
    }
    Ok(n)
}

/// A row as stored: its values as they are (text stays text), its `_id` an ObjectId.
fn row_document(field: &str, row: Value) -> Result<Document, TaskError> {
    let Value::Object(m) = row else {
        return Err(FieldError::value(field, "must be an object").into());
    };
    let mut d = Document::new();
    for (k, v) in m {
        let b = match (k.as_str(), &v) {
            ("_id", Value::String(s)) => ObjectId::parse_str(s)
                .map(Bson::ObjectId)
                .unwrap_or_else(|_| Bson::String(s.clone())),
            _ => maestro_results::json_to_bson(&v),
        };
        d.insert(k, b);
    }
    Ok(d)
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

/// `maestro.report.finish(chunk_results, report_id, kind, collection, owner_user, entity)`:
/// the chord callback. Reads the stored rows back for the columns (of the first
/// [`COLUMN_ROWS`]) and the charts (of all), writes the completion onto server-app's report,
/// the summary, and tells the owner.
#[task(name = TASK_REPORT_FINISH)]
pub async fn finish(
    ctx: &TaskContext,
    #[state] svc: &Arc<Services>,
    #[args] req: FinishRequest,
) -> TaskResult<Value> {
    req.validate()?;
    let rows: u64 = req
        .chunk_results
        .iter()
        .filter_map(|r| r.get("rows").and_then(Value::as_u64))
        .sum();
    // Read in the server's own order: the columns come from the rows with the smallest ids,
    // kept here as they pass, so the server does not sort the whole report (SecantusDB sorts
    // in memory; MongoDB would walk the _id index and fetch each row in its order).
    let mut cursor = svc
        .reports
        .collection::<Document>(&req.collection)
        .find(doc! {})
        // Batches of a chunk's size: without it the server answers getMore with up to 16 MB,
        // which the worker holds at once (a 100,000-row report peaked at 74 MB RSS).
        .batch_size(u32::try_from(svc.cfg.insert_qtd.max(1)).unwrap_or(u32::MAX))
        .await
        .map_err(|e| mongo_error("reading the report back", &e))?;
    let mut first = FirstById::new(COLUMN_ROWS);
    let mut charts = Charts::new(req.entity.as_deref());
    while let Some(d) = cursor
        .try_next()
        .await
        .map_err(|e| mongo_error("reading the report back", &e))?
    {
        let row = from_stored_document(&d);
        charts.add(&row);
        first.offer(IdKey::of(d.get("_id")), row);
    }
    let first = first.into_sorted();
    let names = columns(&first);
    let aggr = charts.finish(View::Label);
    record_summary(
        svc,
        &req.report_id,
        req.kind,
        &req.collection,
        rows,
        &names,
        "finished",
    )
    .await?;
    let more = doc! {
        "columns": names.iter().map(|c| Bson::String(c.clone())).collect::<Vec<_>>(),
        "aggr": maestro_results::json_to_bson(&Value::Object(aggr.clone())),
    };
    write_status(svc, &req.report_id, "finished", "completed", more).await?;
    let audit = Notification::Audit(AuditRecord {
        entity: "reports".into(),
        entity_id: req.report_id.clone(),
        method: AuditMethod::PUT,
        user: None,
        body: [("aggr".to_owned(), Value::Object(aggr))]
            .into_iter()
            .collect(),
    });
    ctx.send(
        audit
            .signature()
            .with_option("queue", svc.queue_for(TASK_NOTIFY).into()),
    )
    .await?;
    ctx.send(notice(
        svc,
        &req.owner_user,
        &req.report_id,
        req.kind,
        NotifyType::Success,
    ))
    .await?;
    Ok(
        json!({"report_id": req.report_id, "collection": req.collection, "rows": rows,
              "columns": names}),
    )
}

/// A row's `_id` in MongoDB's sort order for the ids report rows have (their item's ObjectId,
/// or its text id, or a pivot row's hex digest): strings (byte order) before ObjectIds (byte
/// order). Any other type sorts after both, by its debug text: deterministic, but not
/// MongoDB's order (which puts null and numbers before strings).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum IdKey {
    Text(String),
    Object([u8; 12]),
    Other(String),
}

impl IdKey {
    fn of(id: Option<&Bson>) -> Self {
        match id {
            Some(Bson::String(s)) => IdKey::Text(s.clone()),
            Some(Bson::ObjectId(o)) => IdKey::Object(o.bytes()),
            other => IdKey::Other(format!("{other:?}")),
        }
    }
}

/// The `n` rows with the smallest ids of those offered, as `find().sort({_id: 1}).limit(n)`
/// would give them, kept while reading in any order.
struct FirstById {
    n: usize,
    rows: Vec<(IdKey, Map<String, Value>)>,
}

impl FirstById {
    fn new(n: usize) -> Self {
        Self {
            n,
            rows: Vec::with_capacity(n + 1),
        }
    }

    fn offer(&mut self, key: IdKey, row: Map<String, Value>) {
        if self.rows.len() == self.n {
            // Full: the new row replaces the largest id kept, if it is smaller.
            let Some((largest, _)) = self
                .rows
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.0.cmp(&b.1.0))
            else {
                return;
            };
            if key >= self.rows[largest].0 {
                return;
            }
            self.rows.swap_remove(largest);
        }
        self.rows.push((key, row));
    }

    fn into_sorted(mut self) -> Vec<Map<String, Value>> {
        self.rows.sort_by(|a, b| a.0.cmp(&b.0));
        self.rows.into_iter().map(|(_, row)| row).collect()
    }
}

/// This project's summary of a report (in the reports database): its rows, columns, status.
async fn record_summary(
    svc: &Services,
    report_id: &str,
    kind: ReportKind,
    collection: &str,
    rows: u64,
    columns: &[String],
    status: &str,
) -> Result<(), TaskError> {
    let cols: Vec<Bson> = columns.iter().map(|c| Bson::String(c.clone())).collect();
    svc.reports
        .collection::<Document>(SUMMARY_COLLECTION)
        .replace_one(
            doc! {"_id": collection},
            doc! {"_id": collection, "report_id": report_id, "kind": kind.as_str(),
            "collection": collection, "rows": i64::try_from(rows).unwrap_or(i64::MAX),
            "columns": cols, "status": status,
            "finished_at": mongodb::bson::DateTime::from_millis(Utc::now().timestamp_millis())},
        )
        .upsert(true)
        .await
        .map_err(|e| mongo_error("storing the report summary", &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_rows_by_id_are_kept_in_any_reading_order() {
        let oid =
            |i: u8| Bson::ObjectId(ObjectId::from_bytes([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i]));
        // Strings sort before ObjectIds, as in MongoDB; each by its bytes.
        let ids: Vec<Bson> = (0..40u8)
            .rev()
            .map(oid)
            .chain(["b", "a", "c"].map(|s| Bson::String(s.into())))
            .collect();
        let mut first = FirstById::new(5);
        for id in &ids {
            let mut row = Map::new();
            row.insert("id".into(), json!(format!("{id}")));
            first.offer(IdKey::of(Some(id)), row);
        }
        let kept: Vec<String> = first
            .into_sorted()
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        let expected: Vec<String> = [Bson::String("a".into()), Bson::String("b".into())]
            .into_iter()
            .chain([Bson::String("c".into()), oid(0), oid(1)])
            .map(|id| format!("{id}"))
            .collect();
        assert_eq!(kept, expected);
        let mut few = FirstById::new(5);
        few.offer(IdKey::of(None), Map::new());
        assert_eq!(few.into_sorted().len(), 1, "fewer rows than n are all kept");
    }

    #[test]
    fn stored_rows_keep_text_and_get_object_ids() {
        let d = row_document(
            "rows[0]",
            json!({"_id": "64b000000000000000000001", "created_at": "2020-05-01T10:00:00",
                   "roles": [{"_id": "5f0000000000000000000001"}], "n": 2}),
        )
        .expect("row");
        assert!(matches!(d.get("_id"), Some(Bson::ObjectId(_))));
        assert_eq!(d.get_str("created_at"), Ok("2020-05-01T10:00:00"));
        let role = d.get_array("roles").expect("roles")[0]
            .as_document()
            .cloned()
            .expect("doc");
        assert_eq!(role.get_str("_id"), Ok("5f0000000000000000000001"));
        assert!(row_document("rows[1]", json!([1])).is_err());
    }
}
