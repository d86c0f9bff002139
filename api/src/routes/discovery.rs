//! Maestro's discovery endpoints, as Maestro's server-app calls them:
//!
//! - `GET /available/info[/<provider>]`: the providers and their connection templates
//!   (the UI renders the connection form from them);
//! - `GET /available/rules[/<provider>]`: each provider's tasks and their API calls (server-app
//!   schedules every task whose first call says `init_job` when a connection is created);
//! - `PUT /crawler/<provider>/<conn_id>/<task>`: scan a connection, answered 201
//!   `{msg, conn_id, task, status: "warning"}` once the broker confirmed the scan; the
//!   connection's `process.<task>` says "In progress" from then (put back if the broker
//!   refused);
//! - `GET /crawler`, `GET /crawler/<provider>`: what the crawler offers.
//!
//! Every answer of `/available/*` is wrapped as `{"items": [{"value": ...}]}`, as Maestro's
//! discovery wrapped it. Providers are named by label in any case and spacing (`AWS`,
//! `Digital Ocean`); only tasks this project really runs are advertised or accepted.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maestro_contract::names::TASK_DISCOVERY_SCAN;
use maestro_contract::providers::{self, Provider, ScanState, progress_update};
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use serde_json::{Value, json};

use super::{enqueue_job, job, path, routed_queue};
use crate::catalogue::discovery_kwargs;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// server-app's connections (in `MAESTRO_MONGO_DATABASE`).
const CONNECTIONS: &str = "connections";

fn items(value: Value) -> Json<Value> {
    Json(json!({"items": [{"value": value}]}))
}

fn known(label: &str) -> Option<&'static Provider> {
    providers::provider(label).filter(|p| p.runs())
}

/// The providers this project scans, each `{icon, label, method}`.
#[utoipa::path(get, path = "/available/info", tag = "discovery",
    responses((status = 200, description = "`{items: [{value: {providers: [...]}}]}`"),
        (status = 401, description = "No valid token", body = ErrorBody)),
    security(("jwt" = [])))]
pub(crate) async fn info_all() -> Json<Value> {
    let list: Vec<Value> = providers::running()
        .map(|p| Value::Object(p.summary()))
        .collect();
    items(json!({"providers": list}))
}

/// One provider with its connection templates (`{providers: []}` when unknown).
#[utoipa::path(get, path = "/available/info/{provider}", tag = "discovery",
    params(("provider" = String, Path, description = "Label or key: AWS, aws", example = "AWS")),
    responses((status = 200, description = "`{items: [{value: {providers: {...}}}]}`"),
        (status = 401, description = "No valid token", body = ErrorBody)),
    security(("jwt" = [])))]
pub(crate) async fn info_one(
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let label = path(p)?;
    Ok(items(
        json!({"providers": known(&label).map_or(json!([]), Provider::info)}),
    ))
}

/// Every provider's name.
#[utoipa::path(get, path = "/available/rules", tag = "discovery",
    responses((status = 200, description = "`{items: [{value: [{name}, ...]}]}`"),
        (status = 401, description = "No valid token", body = ErrorBody)),
    security(("jwt" = [])))]
pub(crate) async fn rules_all() -> Json<Value> {
    let list: Vec<Value> = providers::running()
        .map(|p| json!({"name": p.label}))
        .collect();
    items(Value::Array(list))
}

/// One provider's tasks and their calls (`[]` when unknown).
#[utoipa::path(get, path = "/available/rules/{provider}", tag = "discovery",
    params(("provider" = String, Path, description = "Label or key: AWS, aws", example = "aws")),
    responses((status = 200, description = "`{items: [{value: {permissions: {task: [command, ...]}}}]}`"),
        (status = 401, description = "No valid token", body = ErrorBody)),
    security(("jwt" = [])))]
pub(crate) async fn rules_one(
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let label = path(p)?;
    Ok(items(known(&label).map_or(json!([]), Provider::rules)))
}

/// What the crawler offers.
#[utoipa::path(get, path = "/crawler", tag = "discovery",
    responses((status = 200, description = "The crawler's resources"),
        (status = 401, description = "No valid token", body = ErrorBody)),
    security(("jwt" = [])))]
pub(crate) async fn crawler_index() -> Json<Value> {
    Json(json!({"resources": [
        {"path": "/crawler/<provider>", "description": "The tasks a provider's connections may scan"},
        {"path": "/crawler/<provider>/<conn_id>/<task>", "description": "PUT: scan one connection for one task"},
    ]}))
}

/// A provider's tasks and their calls, unwrapped (`null` when unknown).
#[utoipa::path(get, path = "/crawler/{provider}", tag = "discovery",
    params(("provider" = String, Path, description = "Label or key", example = "AWS")),
    responses((status = 200, description = "`{task: [command, ...]}`"),
        (status = 401, description = "No valid token", body = ErrorBody)),
    security(("jwt" = [])))]
pub(crate) async fn crawler_provider(
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let label = path(p)?;
    Ok(Json(
        known(&label).map_or(Value::Null, |p| p.rules()["permissions"].clone()),
    ))
}

/// Scan one connection's resources for one task (Maestro's discovery app).
#[utoipa::path(
    put, path = "/crawler/{provider}/{conn_id}/{task}", tag = "discovery",
    params(
        ("provider" = String, Path, description = "Maestro's label or its key: AWS, aws", example = "AWS"),
        ("conn_id" = String, Path, description = "The connection's id", example = "5f1b00000000000000000010"),
        ("task" = String, Path, description = "A task the provider runs, e.g. server-list", example = "server-list"),
    ),
    responses(
        (status = 201, description = "Confirmed by the broker: `{msg, conn_id, task, status: \"warning\", task_id, queue}`"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "Unknown provider, bad id, or a task the provider does not run", body = ErrorBody),
        (status = 503, description = "Broker unavailable; nothing enqueued", body = ErrorBody),
    ),
    security(("jwt" = []))
)]
pub(crate) async fn crawl(
    State(state): State<AppState>,
    params: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (provider, conn_id, task) = path(params)?;
    let kwargs = discovery_kwargs(&provider, &conn_id, &task)?;
    let queue = routed_queue(&state, TASK_DISCOVERY_SCAN)?;
    // As Maestro's discovery did on accepting a scan: the connection says "In progress" at
    // once (the UI reads it), not only when a worker picks the scan up.
    let before = mark_in_progress(&state, &conn_id, &task).await;
    let sent = match enqueue_job(&state, job(&headers, TASK_DISCOVERY_SCAN, queue, kwargs)).await {
        Ok(sent) => sent,
        Err(e) => {
            if let Some(before) = before {
                restore_progress(&state, &conn_id, &task, before).await;
            }
            return Err(e);
        }
    };
    let body = json!({
        "msg": format!("In progress. {task}"),
        "conn_id": conn_id,
        "task": task,
        "status": "warning",
        "task_id": sent.task_id,
        "queue": sent.queue,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The connection's `_id` as server-app stores it (an ObjectId), or the text it is.
fn connection_key(conn_id: &str) -> Bson {
    ObjectId::parse_str(conn_id).map_or_else(|_| Bson::String(conn_id.to_owned()), Bson::ObjectId)
}

/// Sets `process.<task>` to `warning` "In progress. <task> At <now>"; what it was before
/// (`Null` when unset), or `None` when there is no such connection or MongoDB did not answer
/// (logged: the scan is enqueued all the same).
async fn mark_in_progress(state: &AppState, conn_id: &str, task: &str) -> Option<Bson> {
    let set = progress_update(task, ScanState::Warning, &format!("In progress. {task}"));
    let field = format!("process.{task}");
    let old = state
        .maestro_db
        .collection::<Document>(CONNECTIONS)
        .find_one_and_update(doc! {"_id": connection_key(conn_id)}, doc! {"$set": set})
        .projection(doc! {&field: 1})
        .await;
    match old {
        Ok(Some(d)) => Some(
            d.get_document("process")
                .ok()
                .and_then(|p| p.get(task))
                .cloned()
                .unwrap_or(Bson::Null),
        ),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(conn_id, task, error = %e, "scan_progress_not_recorded");
            None
        }
    }
}

/// Puts `process.<task>` back as it was, when the scan could not be enqueued.
async fn restore_progress(state: &AppState, conn_id: &str, task: &str, before: Bson) {
    let field = format!("process.{task}");
    let update = match before {
        Bson::Null => doc! {"$unset": {&field: ""}},
        b => doc! {"$set": {&field: b}},
    };
    let restored = state
        .maestro_db
        .collection::<Document>(CONNECTIONS)
        .update_one(
            doc! {"_id": connection_key(conn_id), format!("{field}.state"): "warning"},
            update,
        )
        .await;
    if let Err(e) = restored {
        tracing::warn!(conn_id, task, error = %e, "scan_progress_not_restored");
    }
}
