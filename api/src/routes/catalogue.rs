//! One `POST` per catalogue task besides discovery and reports (which have their Maestro
//! routes in `discovery` and `reports`). Each body is the task's `maestro_contract` request,
//! checked by its own `validate()`, and enqueued as the task's keyword arguments on the
//! task's route.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use maestro_contract::names::{TASK_AGGREGATION, TASK_ANALYTICS_GRAPH, TASK_NOTIFY, TASK_WEBHOOK};
use maestro_contract::{
    AggregationRequest, AuditRecord, GraphRequest, NotifyWsRequest, WebhookRequest,
};
use serde_json::Value;

use super::{Enqueued, enqueue, enqueue_job, job, routed_queue};
use crate::body::JsonBody;
use crate::catalogue::CatalogueBody;
use crate::catalogue::kwargs_of;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

async fn enqueue_kwargs(
    state: &AppState,
    headers: &HeaderMap,
    task: &str,
    kwargs: Value,
) -> Result<Response, ApiError> {
    let queue = routed_queue(state, task)?;
    enqueue(state, job(headers, task, queue, kwargs)).await
}

macro_rules! catalogue_endpoint {
    ($fn:ident, $path:literal, $tag:literal, $body:ty, $task:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            post, path = $path, tag = $tag,
            request_body = $body,
            responses(
                (status = 202, description = "Confirmed by the broker", body = Enqueued),
                (status = 400, description = "Malformed JSON", body = ErrorBody),
                (status = 401, description = "No valid token", body = ErrorBody),
                (status = 413, description = "Body too large", body = ErrorBody),
                (status = 415, description = "Not JSON", body = ErrorBody),
                (status = 422, description = "Invalid field", body = ErrorBody),
                (status = 503, description = "Broker unavailable; nothing enqueued", body = ErrorBody),
            ),
            security(("jwt" = []))
        )]
        pub(crate) async fn $fn(
            State(state): State<AppState>,
            headers: HeaderMap,
            JsonBody(req): JsonBody<$body>,
        ) -> Result<Response, ApiError> {
            let kwargs = req.into_kwargs()?;
            enqueue_kwargs(&state, &headers, $task, kwargs).await
        }
    };
}

catalogue_endpoint!(
    aggregation,
    "/aggregation",
    "analytics",
    AggregationRequest,
    TASK_AGGREGATION,
    "Run an aggregation pipeline."
);
catalogue_endpoint!(
    webhook,
    "/webhooks",
    "webhook",
    WebhookRequest,
    TASK_WEBHOOK,
    "Deliver a webhook."
);
catalogue_endpoint!(
    notify_ws,
    "/notify/ws",
    "notify",
    NotifyWsRequest,
    TASK_NOTIFY,
    "Send a websocket notification to a user's channel."
);
catalogue_endpoint!(
    notify_audit,
    "/notify/audit",
    "notify",
    AuditRecord,
    TASK_NOTIFY,
    "Record an audit entry for an entity change."
);

/// Draw a business dependency map (analytics-maestro's `POST /graph`, as server-app sends it
/// with its private token): answers 201 with the task's id, as analytics did.
#[utoipa::path(
    post, path = "/graph", tag = "analytics",
    request_body = GraphRequest,
    responses(
        (status = 201, description = "Confirmed by the broker: the task id", body = String),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 503, description = "Broker unavailable; nothing enqueued", body = ErrorBody),
    ),
    security(("jwt" = []))
)]
pub(crate) async fn graph(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<GraphRequest>,
) -> Result<Response, ApiError> {
    let kwargs = kwargs_of(&req.job()?)?;
    let queue = routed_queue(&state, TASK_ANALYTICS_GRAPH)?;
    let sent = enqueue_job(&state, job(&headers, TASK_ANALYTICS_GRAPH, queue, kwargs)).await?;
    Ok((StatusCode::CREATED, Json(sent.task_id)).into_response())
}
