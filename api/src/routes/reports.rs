//! Reading reports back: a page of rows with the report's summary, and whole-report exports
//! as CSV or JSON, streamed from a MongoDB cursor (never built in memory).
//!
//! A report is the collection `<report_id>_<kind>` in `MAESTRO_REPORTS_DATABASE` and its
//! summary document in that database's `reports` collection (written by the catalogue's
//! `maestro.report.finish`, or `maestro.aggregation`'s rows alone).

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt, stream};
use mongodb::bson::{Bson, Document, doc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

use maestro_contract::report::{ReportKind, SUMMARY_COLLECTION, rows_collection};

/// One page of a report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct ReportPage {
    pub report_id: String,
    pub kind: String,
    /// `finished`, `warning` (empty) or `pending` (no summary yet).
    pub status: String,
    /// Rows in the report (from the summary; counted when there is none).
    pub rows: u64,
    /// Columns and how many rows fill each.
    #[schema(value_type = Vec<Object>)]
    pub columns: Vec<Value>,
    pub skip: u64,
    pub limit: u64,
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
}

/// Paging of `GET /reports/{report_id}/{kind}`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct RowsQuery {
    /// Rows to skip.
    #[serde(default)]
    pub skip: Option<u64>,
    /// Rows to return (default and most: MAESTRO_REPORT_RESULT_QTD).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// `GET /reports/{report_id}/{kind}/export?format=`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    /// `csv` or `json` (default json).
    #[serde(default)]
    pub format: Option<String>,
}

fn store_err(e: mongodb::error::Error) -> ApiError {
    ApiError::StoreUnavailable(format!("reports: {e}"))
}

/// The report id and kind of the path, checked, and the report's rows collection.
fn report_path(
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String, String), ApiError> {
    let Path((id, kind)) = p.map_err(|e| ApiError::invalid("path", e.body_text()))?;
    maestro_contract::check::check_id("report_id", &id)?;
    let Some(k) = ReportKind::parse(&kind) else {
        return Err(ApiError::invalid(
            "kind",
            format!("must be one of {}", ReportKind::NAMES.join(", ")),
        ));
    };
    let collection = rows_collection(&id, k);
    Ok((id, kind, collection))
}

async fn summary(state: &AppState, collection: &str) -> Result<Option<Document>, ApiError> {
    state
        .reports_db
        .collection::<Document>(SUMMARY_COLLECTION)
        .find_one(doc! {"_id": collection})
        .await
        .map_err(store_err)
}

async fn exists(state: &AppState, collection: &str) -> Result<bool, ApiError> {
    let names = state
        .reports_db
        .list_collection_names()
        .filter(doc! {"name": collection})
        .await
        .map_err(store_err)?;
    Ok(!names.is_empty())
}

fn not_found(id: &str, kind: &str) -> ApiError {
    ApiError::NotFound {
        field: Some("report_id".into()),
        reason: format!("no {kind} report {id}"),
    }
}

/// A row as JSON (relaxed extended JSON: dates as `{"$date": ...}`).
fn row_json(d: Document) -> Value {
    Bson::Document(d).into_relaxed_extjson()
}

/// A page of a report's rows, with its summary.
#[utoipa::path(get, path = "/reports/{report_id}/{kind}", tag = "reports",
    params(("report_id" = String, Path, description = "Report id"),
           ("kind" = String, Path, description = "general, pivot or aggregation"), RowsQuery),
    responses(
        (status = 200, description = "One page", body = ReportPage),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such report", body = ErrorBody),
        (status = 422, description = "Invalid path or paging", body = ErrorBody),
        (status = 503, description = "MongoDB unavailable", body = ErrorBody),
    ),
    security(("jwt" = [])))]
pub(crate) async fn rows(
    State(state): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<RowsQuery>, QueryRejection>,
) -> Result<Json<ReportPage>, ApiError> {
    let (id, kind, collection) = report_path(p)?;
    let Query(q) = q.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let max = state.config.report_result_qtd;
    let limit = q.limit.unwrap_or(max);
    if limit == 0 || limit > max {
        return Err(ApiError::invalid("limit", format!("must be 1 to {max}")));
    }
    let skip = q.skip.unwrap_or(0);
    if skip > i64::MAX as u64 {
        return Err(ApiError::invalid("skip", "is too large"));
    }
    let sum = summary(&state, &collection).await?;
    if sum.is_none() && !exists(&state, &collection).await? {
        return Err(not_found(&id, &kind));
    }
    let coll = state.reports_db.collection::<Document>(&collection);
    let items: Vec<Value> = coll
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .skip(skip)
        .limit(limit as i64)
        .await
        .map_err(store_err)?
        .map_ok(row_json)
        .try_collect()
        .await
        .map_err(store_err)?;
    let (status, rows, columns) = match &sum {
        Some(s) => (
            s.get_str("status").unwrap_or("finished").to_owned(),
            match s.get("rows") {
                Some(Bson::Int32(n)) => *n as u64,
                Some(Bson::Int64(n)) => *n as u64,
                _ => 0,
            },
            s.get_array("columns")
                .map(|a| a.iter().map(|c| c.clone().into_relaxed_extjson()).collect())
                .unwrap_or_default(),
        ),
        None => (
            "pending".to_owned(),
            coll.count_documents(doc! {}).await.map_err(store_err)?,
            Vec::new(),
        ),
    };
    Ok(Json(ReportPage {
        report_id: id,
        kind,
        status,
        rows,
        columns,
        skip,
        limit,
        items,
    }))
}

/// The whole report as CSV or JSON, streamed row by row.
#[utoipa::path(get, path = "/reports/{report_id}/{kind}/export", tag = "reports",
    params(("report_id" = String, Path, description = "Report id"),
           ("kind" = String, Path, description = "general, pivot or aggregation"), ExportQuery),
    responses(
        (status = 200, description = "The rows: text/csv (header from the summary's columns) or a JSON array", content_type = "text/csv"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such report", body = ErrorBody),
        (status = 422, description = "Invalid path or format", body = ErrorBody),
        (status = 503, description = "MongoDB unavailable", body = ErrorBody),
    ),
    security(("jwt" = [])))]
pub(crate) async fn export(
    State(state): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (id, kind, collection) = report_path(p)?;
    let Query(q) = q.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let csv = match q.format.as_deref().unwrap_or("json") {
        "csv" => true,
        "json" => false,
        _ => return Err(ApiError::invalid("format", "must be csv or json")),
    };
    let sum = summary(&state, &collection).await?;
    if sum.is_none() && !exists(&state, &collection).await? {
        return Err(not_found(&id, &kind));
    }
    let cursor = state
        .reports_db
        .collection::<Document>(&collection)
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await
        .map_err(store_err)?;
    let filename = format!("{collection}.{}", if csv { "csv" } else { "json" });
    let disposition = format!("attachment; filename=\"{filename}\"");
    if csv {
        let mut columns: Vec<String> = vec!["_id".into()];
        if let Some(cols) = sum.as_ref().and_then(|s| s.get_array("columns").ok()) {
            columns.extend(cols.iter().filter_map(|c| {
                c.as_document()
                    .and_then(|d| d.get_str("name").ok())
                    .map(str::to_owned)
            }));
        }
        let header = csv_line(columns.iter().map(String::as_str));
        let rows = cursor.map(move |r| match r {
            Ok(d) => {
                let v = row_json(d);
                Ok(csv_line(
                    columns
                        .iter()
                        .map(|c| cell(v.get(c)))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(String::as_str),
                ))
            }
            Err(e) => Err(std::io::Error::other(e.to_string())),
        });
        let body = stream::once(async move { Ok::<_, std::io::Error>(header) }).chain(rows);
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            Body::from_stream(body),
        )
            .into_response());
    }
    let rows = cursor.enumerate().map(|(i, r)| match r {
        Ok(d) => {
            let mut out = if i == 0 { Vec::new() } else { b",\n".to_vec() };
            out.extend(serde_json::to_vec(&row_json(d)).unwrap_or_else(|_| b"null".to_vec()));
            Ok(out)
        }
        Err(e) => Err(std::io::Error::other(e.to_string())),
    });
    let body = stream::once(async { Ok::<_, std::io::Error>(b"[\n".to_vec()) })
        .chain(rows)
        .chain(stream::once(async { Ok(b"\n]\n".to_vec()) }));
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// A CSV cell: text as is, other scalars as JSON text, objects and lists as JSON.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// One CSV record (RFC 4180 quoting) with its line end.
fn csv_line<'a>(fields: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail; a record that somehow does becomes an empty line.
    let _ = w.write_record(fields);
    w.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_cells_and_quoting() {
        let v = json!({"a": "x,\"y\"", "b": 3, "c": {"k": [1]}, "d": null});
        let line = csv_line(
            ["a", "b", "c", "d", "missing"]
                .iter()
                .map(|c| cell(v.get(c)))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        );
        assert_eq!(
            String::from_utf8(line).expect("utf8"),
            "\"x,\"\"y\"\"\",3,\"{\"\"k\"\":[1]}\",,\r\n"
        );
    }
}
