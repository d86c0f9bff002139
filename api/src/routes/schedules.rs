//! CRUD of beat's schedules: documents in Maestro's `schedulers` shape in MongoDB
//! (`MAESTRO_MONGO_DATABASE`.`schedulers`), checked with maestro-beat's own
//! `validate_document`, so the API accepts exactly what beat can fire.
//!
//! The API never writes the fields beat owns (`last_run_at`, `total_run_count`, `beat_epoch`,
//! `beat_pending`, `beat_anchor`): input naming one is 422, and updates touch only the fields
//! the client sent (`$set`/`$unset`), never replacing the document, so a beat fire racing an
//! update keeps its compare-and-set fields.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use maestro_contract::names::QUEUE_CELERY;
use maestro_contract::schedule::{
    BEAT_OWNED_FIELDS, SCHEDULES_MAX, admit_target, validate_document,
};
use maestro_results::json_to_bson;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::body::JsonBody;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Most schedules one list page returns.
pub(crate) const PAGE_LIMIT_MAX: u64 = 500;
/// Schedules per page when the client names no limit.
pub(crate) const PAGE_LIMIT_DEFAULT: u64 = 50;

/// A schedule document (Maestro's `schedulers` shape); see maestro-beat for every field.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(value_type = Object, example = json!({"name": "nightly servers", "enabled": true, "period_type": "cron",
    "cron": {"minute": "0", "hour": "3", "day_of_month": "*", "month_of_year": "*", "day_of_week": "*"},
    "task": "maestro.discovery.scan", "kwargs": {"provider": "aws", "conn_id": "5f1c0a", "task": "server-list"}}))]
pub(crate) struct ScheduleDoc(pub Map<String, Value>);

/// One page of schedules.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct SchedulePage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    pub skip: u64,
    pub limit: u64,
    pub total: u64,
}

/// Paging of `GET /schedules`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    /// Schedules to skip.
    #[serde(default)]
    pub skip: Option<u64>,
    /// Schedules to return (1..=500, default 50).
    #[serde(default)]
    pub limit: Option<u64>,
}

fn store_err(e: mongodb::error::Error) -> ApiError {
    ApiError::StoreUnavailable(format!("schedules: {e}"))
}

fn object_id(p: Result<Path<String>, PathRejection>) -> Result<ObjectId, ApiError> {
    let Path(id) = p.map_err(|e| ApiError::invalid("id", e.body_text()))?;
    ObjectId::parse_str(&id).map_err(|_| ApiError::invalid("id", "is not a 24-digit hex ObjectId"))
}

fn not_found(id: &ObjectId) -> ApiError {
    ApiError::NotFound {
        field: Some("id".into()),
        reason: format!("no schedule {id}"),
    }
}

/// Rejects client input naming `_id` or a beat-owned field.
fn check_input(doc: &Map<String, Value>) -> Result<(), ApiError> {
    if doc.contains_key("_id") {
        return Err(ApiError::invalid("_id", "is chosen by the API"));
    }
    if let Some(f) = BEAT_OWNED_FIELDS.iter().find(|f| doc.contains_key(**f)) {
        return Err(ApiError::invalid(*f, "is written by maestro-beat only"));
    }
    Ok(())
}

/// Checks a schedule as beat will read it, and what it sends against the routing table (as
/// `POST /tasks/{name}` does: no internal task, diagnostics only where enabled).
fn validate(state: &AppState, doc: &Map<String, Value>) -> Result<(), ApiError> {
    let cfg = &state.config;
    validate_document(&Value::Object(doc.clone()))
        .and_then(|target| {
            admit_target(
                &target,
                &cfg.routes,
                QUEUE_CELERY,
                cfg.allow_any_queue,
                cfg.enable_diagnostics,
            )
        })
        .map(|_| ())
        .map_err(|e| {
            let field = if e.field == "$" {
                "body".into()
            } else {
                e.field
            };
            ApiError::invalid(field, e.reason)
        })
}

/// A stored document as JSON: `_id` as hex, dates as ISO 8601 (relaxed extended JSON
/// otherwise).
fn to_json(d: Document) -> Value {
    let mut out = Map::new();
    for (k, v) in d {
        let v = match v {
            Bson::ObjectId(o) => Value::String(o.to_hex()),
            Bson::DateTime(t) => Value::String(
                t.try_to_rfc3339_string()
                    .unwrap_or_else(|_| t.timestamp_millis().to_string()),
            ),
            Bson::Document(inner) => to_json(inner),
            other => other.into_relaxed_extjson(),
        };
        out.insert(k, v);
    }
    Value::Object(out)
}

/// The document's fields as the client may see and change them (no `_id`, no beat fields).
fn client_fields(d: &Document) -> Map<String, Value> {
    match to_json(d.clone()) {
        Value::Object(mut m) => {
            m.remove("_id");
            for f in BEAT_OWNED_FIELDS {
                m.remove(f);
            }
            m
        }
        _ => Map::new(),
    }
}

fn to_bson_doc(fields: &Map<String, Value>) -> Document {
    let mut d = Document::new();
    for (k, v) in fields {
        d.insert(k.clone(), json_to_bson(v));
    }
    d
}

async fn load(state: &AppState, id: &ObjectId) -> Result<Document, ApiError> {
    state
        .schedules()
        .find_one(doc! {"_id": id})
        .await
        .map_err(store_err)?
        .ok_or_else(|| not_found(id))
}

/// Create a schedule.
#[utoipa::path(post, path = "/schedules", tag = "schedules", request_body = ScheduleDoc,
    responses(
        (status = 201, description = "Created; the stored document with its _id", body = ScheduleDoc),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "Invalid field (or a beat-owned one)", body = ErrorBody),
        (status = 503, description = "MongoDB unavailable", body = ErrorBody),
    ),
    security(("jwt" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    JsonBody(doc): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    check_input(&doc)?;
    validate(&state, &doc)?;
    let held = state
        .schedules()
        .estimated_document_count()
        .await
        .map_err(store_err)?;
    if held >= SCHEDULES_MAX {
        return Err(ApiError::invalid(
            "body",
            format!("there are already {held} schedules; at most {SCHEDULES_MAX} are kept"),
        ));
    }
    let id = ObjectId::new();
    let mut stored = to_bson_doc(&doc);
    stored.insert("_id", id);
    state
        .schedules()
        .insert_one(&stored)
        .await
        .map_err(store_err)?;
    Ok((StatusCode::CREATED, Json(to_json(stored))).into_response())
}

/// List schedules, paged.
#[utoipa::path(get, path = "/schedules", tag = "schedules", params(PageQuery),
    responses(
        (status = 200, description = "One page", body = SchedulePage),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "Invalid paging", body = ErrorBody),
        (status = 503, description = "MongoDB unavailable", body = ErrorBody),
    ),
    security(("jwt" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<SchedulePage>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = q.limit.unwrap_or(PAGE_LIMIT_DEFAULT);
    if limit == 0 || limit > PAGE_LIMIT_MAX {
        return Err(ApiError::invalid(
            "limit",
            format!("must be 1 to {PAGE_LIMIT_MAX}"),
        ));
    }
    let skip = q.skip.unwrap_or(0);
    if skip > i64::MAX as u64 {
        return Err(ApiError::invalid("skip", "is too large"));
    }
    let coll = state.schedules();
    let total = coll.count_documents(doc! {}).await.map_err(store_err)?;
    let items: Vec<Document> = coll
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .skip(skip)
        .limit(limit as i64)
        .await
        .map_err(store_err)?
        .try_collect()
        .await
        .map_err(store_err)?;
    Ok(Json(SchedulePage {
        items: items.into_iter().map(to_json).collect(),
        skip,
        limit,
        total,
    }))
}

/// One schedule.
#[utoipa::path(get, path = "/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "ObjectId (24 hex digits)", example = "65f0c0ffee0000000000beef")),
    responses(
        (status = 200, description = "The document", body = ScheduleDoc),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 422, description = "Invalid id", body = ErrorBody),
        (status = 503, description = "MongoDB unavailable", body = ErrorBody),
    ),
    security(("jwt" = [])))]
pub(crate) async fn get_one(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = object_id(id)?;
    Ok(Json(to_json(load(&state, &id).await?)))
}

/// Sets `set` and unsets `unset` on schedule `id` (beat's fields untouched); the new document.
async fn update(
    state: &AppState,
    id: &ObjectId,
    set: &Map<String, Value>,
    unset: &[String],
) -> Result<Json<Value>, ApiError> {
    let mut update = Document::new();
    if !set.is_empty() {
        update.insert("$set", to_bson_doc(set));
    }
    if !unset.is_empty() {
        let mut u = Document::new();
        for f in unset {
            u.insert(f.clone(), "");
        }
        update.insert("$unset", u);
    }
    if !update.is_empty() {
        let r = state
            .schedules()
            .update_one(doc! {"_id": id}, update)
            .await
            .map_err(store_err)?;
        if r.matched_count == 0 {
            return Err(not_found(id));
        }
    }
    Ok(Json(to_json(load(state, id).await?)))
}

/// Replace a schedule's fields (beat's fields are kept).
#[utoipa::path(put, path = "/schedules/{id}", tag = "schedules", request_body = ScheduleDoc,
    params(("id" = String, Path, description = "ObjectId (24 hex digits)", example = "65f0c0ffee0000000000beef")),
    responses(
        (status = 200, description = "The updated document", body = ScheduleDoc),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 422, description = "Invalid field (or a beat-owned one)", body = ErrorBody),
        (status = 503, description = "MongoDB unavailable", body = ErrorBody),
    ),
    security(("jwt" = [])))]
pub(crate) async fn replace(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(doc): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let id = object_id(id)?;
    check_input(&doc)?;
    validate(&state, &doc)?;
    let existing = load(&state, &id).await?;
    let unset: Vec<String> = client_fields(&existing)
        .keys()
        .filter(|k| !doc.contains_key(*k))
        .cloned()
        .collect();
    update(&state, &id, &doc, &unset).await
}

/// Change some fields of a schedule (JSON merge patch: `null` removes a field).
#[utoipa::path(patch, path = "/schedules/{id}", tag = "schedules", request_body = ScheduleDoc,
    params(("id" = String, Path, description = "ObjectId (24 hex digits)", example = "65f0c0ffee0000000000beef")),
    responses(
        (status = 200, description = "The updated document", body = ScheduleDoc),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 422, description = "Invalid field (or a beat-owned one)", body = ErrorBody),
        (status = 503, description = "MongoDB unavailable", body = ErrorBody),
    ),
    security(("jwt" = [])))]
pub(crate) async fn patch(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(patch): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let id = object_id(id)?;
    check_input(&patch)?;
    let existing = load(&state, &id).await?;
    let mut merged = client_fields(&existing);
    let mut set = Map::new();
    let mut unset = Vec::new();
    for (k, v) in patch {
        if v.is_null() {
            merged.remove(&k);
            unset.push(k);
        } else {
            merged.insert(k.clone(), v.clone());
            set.insert(k, v);
        }
    }
    validate(&state, &merged)?;
    update(&state, &id, &set, &unset).await
}

/// Delete a schedule.
#[utoipa::path(delete, path = "/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "ObjectId (24 hex digits)", example = "65f0c0ffee0000000000beef")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 422, description = "Invalid id", body = ErrorBody),
        (status = 503, description = "MongoDB unavailable", body = ErrorBody),
    ),
    security(("jwt" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = object_id(id)?;
    let r = state
        .schedules()
        .delete_one(doc! {"_id": id})
        .await
        .map_err(store_err)?;
    if r.deleted_count == 0 {
        return Err(not_found(&id));
    }
    Ok(StatusCode::NO_CONTENT)
}
