//! Maestro's report endpoints, as server-app and scheduler-app call them:
//!
//! - `POST|PATCH /reports/general`, `/reports/pivot`: check the rules, enqueue the report,
//!   answer 200 `{filter, general-id|pivot-id, _id, component}` (server-app stores `_id` and
//!   `component` of this answer on a datacenter's analytics);
//! - `GET /reports/<report_id>_<kind>`: a page of the rows, `{found, total_pages, page, limit,
//!   items}`, in the format the `Accept` header picks (JSON, CSV, XML, text, Ansible
//!   inventory), read with `limit`, `page`, `query`, `orderBy`, `ascending`;
//! - `DELETE /reports/<report_id>_<kind>`: drop the rows (200 also when there are none, so
//!   server-app's delete of a report never fails on it);
//! - `GET /aggregation/<report_id>_<kind>`: the charts of every row, `{name, aggr}`.
//!
//! Rows live in `MAESTRO_REPORTS_DATABASE`, one collection per report (`<report_id>_<kind>`),
//! written by the catalogue's report tasks. Only such names are read or dropped: nothing else
//! in that database (this project's summaries) is reachable.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use maestro_contract::names::{TASK_REPORT_GENERAL, TASK_REPORT_PIVOT};
use maestro_contract::report::query::{Paging, RuleError, read_query, sort_of};
use maestro_contract::report::render::{Charts, Format, Page, View, render};
use maestro_contract::report::{MAESTRO_REPORTS_COLLECTION, ReportKind, SUMMARY_COLLECTION};
use maestro_contract::stored::from_stored_document;
use maestro_contract::{FieldError, ReportRequest};
use mongodb::bson::{Document, doc, oid::ObjectId};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;

use super::{enqueue_job, job, path, routed_queue};
use crate::body::JsonBody;
use crate::catalogue::kwargs_of;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Rows `GET /aggregation/<table>` reads, newest first, as report-app did.
pub(crate) const AGGREGATION_ROWS: i64 = 99_999;

fn store_err(e: mongodb::error::Error) -> ApiError {
    ApiError::StoreUnavailable(format!("reports: {e}"))
}

fn rule_err(e: RuleError) -> ApiError {
    ApiError::invalid(e.field, e.reason)
}

/// A report's rows table, `<report_id>_<kind>`, checked: the id is server-app's report id (or
/// any id the API accepts) and the kind one of general, pivot, aggregation.
fn table_of(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let table = path(p)?;
    let refused = || {
        ApiError::invalid(
            "table",
            format!(
                "must be <report_id>_<kind> with kind one of {}",
                ReportKind::NAMES.join(", ")
            ),
        )
    };
    let (id, kind) = table.rsplit_once('_').ok_or_else(refused)?;
    ReportKind::parse(kind).ok_or_else(refused)?;
    maestro_contract::check::check_id("table", id)?;
    maestro_contract::check::check_collection("table", &table)?;
    Ok(table)
}

/// Enqueues a report of `kind`; on refused rules also marks server-app's report `error` with
/// the reason, as report-app did, so the report does not stay `process`.
async fn start(
    state: &AppState,
    headers: &HeaderMap,
    kind: ReportKind,
    req: ReportRequest,
) -> Result<Response, ApiError> {
    if let Err(e) = req.validate_for(kind) {
        mark_refused(state, &req.report_id, &e).await;
        return Err(e.into());
    }
    let task = match kind {
        ReportKind::Pivot => TASK_REPORT_PIVOT,
        _ => TASK_REPORT_GENERAL,
    };
    let queue = routed_queue(state, task)?;
    let kwargs = kwargs_of(&req)?;
    let sent = enqueue_job(state, job(headers, task, queue, kwargs)).await?;
    let id_key = format!("{}-id", kind.as_str());
    let mut body = Map::new();
    body.insert("filter".into(), Value::String(req.filters));
    body.insert(id_key, Value::String(sent.task_id));
    body.insert("_id".into(), Value::String(req.report_id));
    body.insert(
        "component".into(),
        req.component.map_or(Value::Null, Value::String),
    );
    Ok(Json(Value::Object(body)).into_response())
}

/// Writes `status: error` and the reason onto server-app's report `report_id`, if it has one;
/// a failure to do so is only logged (the caller gets the 422 either way).
async fn mark_refused(state: &AppState, report_id: &str, e: &FieldError) {
    let Ok(oid) = ObjectId::parse_str(report_id) else {
        return;
    };
    let msg = format!("{}: {}", e.field, e.reason);
    let set = doc! {"status": "error", "msg": msg, "updated_at": mongodb::bson::DateTime::now()};
    let written = state
        .maestro_db
        .collection::<Document>(MAESTRO_REPORTS_COLLECTION)
        .update_one(doc! {"_id": oid}, doc! {"$set": set})
        .await;
    if let Err(w) = written {
        tracing::warn!(report_id, error = %w, "report_error_not_recorded");
    }
}

macro_rules! report_endpoint {
    ($fn:ident, $method:ident, $path:literal, $kind:expr, $id_key:literal) => {
        #[doc = concat!("Start a report (", $path, "): Maestro's rules, owner-scoped.")]
        #[utoipa::path($method, path = $path, tag = "reports",
            request_body = ReportRequest,
            responses(
                (status = 200, description = concat!("Confirmed by the broker: `{filter, ", $id_key, ", _id, component}`")),
                (status = 400, description = "Malformed JSON", body = ErrorBody),
                (status = 401, description = "No valid token", body = ErrorBody),
                (status = 422, description = "Invalid field or rule (the report is marked `error`)", body = ErrorBody),
                (status = 503, description = "Broker unavailable; nothing enqueued", body = ErrorBody),
            ),
            security(("jwt" = [])))]
        pub(crate) async fn $fn(
            State(state): State<AppState>,
            headers: HeaderMap,
            JsonBody(req): JsonBody<ReportRequest>,
        ) -> Result<Response, ApiError> {
            start(&state, &headers, $kind, req).await
        }
    };
}

report_endpoint!(
    general_post,
    post,
    "/reports/general",
    ReportKind::General,
    "general-id"
);
report_endpoint!(
    general_patch,
    patch,
    "/reports/general",
    ReportKind::General,
    "general-id"
);
report_endpoint!(
    pivot_post,
    post,
    "/reports/pivot",
    ReportKind::Pivot,
    "pivot-id"
);
report_endpoint!(
    pivot_patch,
    patch,
    "/reports/pivot",
    ReportKind::Pivot,
    "pivot-id"
);

/// The parameters of `GET /reports/<table>`, as text (they are read as report-app read them);
/// other parameters are ignored.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub(crate) struct ReadParams {
    /// Rows per page (default MAESTRO_REPORT_RESULT_QTD; at most MAESTRO_REPORT_PAGE_MAX).
    limit: Option<String>,
    /// Page number, from 1.
    page: Option<String>,
    /// A JSON object filtering the rows, e.g. `{"hostname": {"$regex": "web", "$options": "i"}}`.
    query: Option<String>,
    /// The field to sort by (default `updated_at`).
    #[serde(rename = "orderBy")]
    #[param(rename = "orderBy")]
    order_by: Option<String>,
    /// An integer: 0 sorts descending, anything else ascending (report-app's rule).
    ascending: Option<String>,
}

/// A page of a report's rows, in the format the `Accept` header picks.
#[utoipa::path(get, path = "/reports/{table}", tag = "reports",
    params(("table" = String, Path, description = "`<report_id>_<kind>`", example = "5f1a2b3c4d5e6f7a8b9c0d1e_general"), ReadParams),
    responses(
        (status = 200, description = "`{found, total_pages, page, limit, items}` as JSON, or the items as CSV, XML, text or an Ansible inventory (Accept: application/json, text/csv, application/xml, text/plain, text/inventory)"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "Invalid table name or parameter", body = ErrorBody),
        (status = 503, description = "MongoDB unavailable", body = ErrorBody),
    ),
    security(("jwt" = [])))]
pub(crate) async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<String>, PathRejection>,
    q: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let table = table_of(p)?;
    let Query(q) = q.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let paging = Paging::parse(
        q.limit.as_deref(),
        q.page.as_deref(),
        state.config.report_result_qtd,
    )
    .map_err(rule_err)?;
    let max = state.config.report_page_max;
    if paging.limit > max {
        return Err(ApiError::invalid("limit", format!("must be at most {max}")));
    }
    let filter = match q.query.as_deref() {
        Some(text) => read_query(text).map_err(rule_err)?,
        None => Document::new(),
    };
    let sort = sort_of(q.order_by.as_deref(), q.ascending.as_deref()).map_err(rule_err)?;
    let format = Format::negotiate(headers.get(ACCEPT).and_then(|v| v.to_str().ok()));

    let rows = state.reports_db.collection::<Document>(&table);
    let found = rows
        .count_documents(filter.clone())
        .await
        .map_err(store_err)?;
    let items: Vec<Map<String, Value>> = rows
        .find(filter)
        .sort(sort)
        .skip(paging.skip())
        .limit(i64::try_from(paging.limit).unwrap_or(i64::MAX))
        .await
        .map_err(store_err)?
        .map_ok(|d| from_stored_document(&d))
        .try_collect()
        .await
        .map_err(store_err)?;
    let page = Page::new(found, paging.page, paging.limit, items);
    let mut resp = render(format, &page).into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(resp)
}

/// Drops a report's rows (and this project's summary of it); 200 `{ns, ok}` whether or not
/// there were any.
#[utoipa::path(delete, path = "/reports/{table}", tag = "reports",
    params(("table" = String, Path, description = "`<report_id>_<kind>`", example = "5f1a2b3c4d5e6f7a8b9c0d1e_general")),
    responses(
        (status = 200, description = "`{ns, ok: 1.0}`"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "Invalid table name", body = ErrorBody),
        (status = 503, description = "MongoDB unavailable", body = ErrorBody),
    ),
    security(("jwt" = [])))]
pub(crate) async fn drop_rows(
    State(state): State<AppState>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let table = table_of(p)?;
    state
        .reports_db
        .collection::<Document>(&table)
        .drop()
        .await
        .map_err(store_err)?;
    state
        .reports_db
        .collection::<Document>(SUMMARY_COLLECTION)
        .delete_one(doc! {"_id": &table})
        .await
        .map_err(store_err)?;
    let ns = format!("{}.{table}", state.reports_db.name());
    Ok(Json(json!({"ns": ns, "ok": 1.0})))
}

/// The charts of a report's rows (the newest 99,999): `{name, aggr: {chart: {aggr, opts}}}`.
#[utoipa::path(get, path = "/aggregation/{table}", tag = "reports",
    params(("table" = String, Path, description = "`<report_id>_<kind>`", example = "5f1a2b3c4d5e6f7a8b9c0d1e_general")),
    responses(
        (status = 200, description = "`{name, aggr}`; `aggr` is `{}` for a missing or empty report"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "Invalid table name", body = ErrorBody),
        (status = 503, description = "MongoDB unavailable", body = ErrorBody),
    ),
    security(("jwt" = [])))]
pub(crate) async fn aggregation(
    State(state): State<AppState>,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let table = table_of(p)?;
    let mut cursor = state
        .reports_db
        .collection::<Document>(&table)
        .find(doc! {})
        .sort(doc! {"updated_at": -1})
        .limit(AGGREGATION_ROWS)
        .await
        .map_err(store_err)?;
    let mut charts = Charts::new(None);
    while let Some(d) = cursor.try_next().await.map_err(store_err)? {
        charts.add(&from_stored_document(&d));
    }
    Ok(Json(
        json!({"name": table, "aggr": charts.finish(View::Dict)}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(t: &str) -> Result<String, ApiError> {
        table_of(Ok(Path(t.to_owned())))
    }

    #[test]
    fn only_report_tables_are_reachable() {
        assert!(table("5f1a2b3c4d5e6f7a8b9c0d1e_general").is_ok());
        assert!(table("r1_pivot").is_ok());
        for bad in [
            "reports",
            "system.users",
            "r1_other",
            "_general",
            "a b_general",
            "system.x_pivot",
        ] {
            let e = table(bad).expect_err(bad);
            assert_eq!(e.body().field.as_deref(), Some("table"), "{bad}");
        }
    }
}
