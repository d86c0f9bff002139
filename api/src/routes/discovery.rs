//! Maestro's discovery endpoints, as Maestro's server-app calls them:
//!
//! - `GET /available/info[/<provider>]`: the providers and their connection templates
//!   (the UI renders the connection form from them);
//! - `GET /available/rules[/<provider>]`: each provider's tasks and their API calls (server-app
//!   schedules every task whose first call says `init_job` when a connection is created);
//! - `PUT /crawler/<provider>/<conn_id>/<task>`: scan a connection, answered 201
//!   `{msg, conn_id, task, status: "warning"}` once the broker confirmed the scan;
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
use maestro_contract::providers::{self, Provider};
use serde_json::{Value, json};

use super::{enqueue_job, job, path, routed_queue};
use crate::catalogue::discovery_kwargs;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

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
    let sent = enqueue_job(&state, job(&headers, TASK_DISCOVERY_SCAN, queue, kwargs)).await?;
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
