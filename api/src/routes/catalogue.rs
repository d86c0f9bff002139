//! Maestro's endpoints: `PUT /crawler/{provider}/{conn_id}/{task}` and one `POST` per
//! catalogue task. Each body is the task's `maestro_contract` request, checked by its own
//! `validate()`, and enqueued as the task's keyword arguments on the task's route.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maestro_contract::names::{
    TASK_AGGREGATION, TASK_DISCOVERY_SCAN, TASK_NOTIFY, TASK_REPORT_GENERAL, TASK_REPORT_PIVOT,
    TASK_WEBHOOK,
};
use maestro_contract::{
    AggregationRequest, AuditRecord, NotifyWsRequest, ReportRequest, WebhookRequest,
};
use serde_json::Value;

use super::{Enqueued, enqueue, job, path, routed_queue};
use crate::body::JsonBody;
use crate::catalogue::{CatalogueBody, discovery_kwargs};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Scan one connection's resources (Maestro's discovery app).
#[utoipa::path(
    put, path = "/crawler/{provider}/{conn_id}/{task}", tag = "discovery",
    params(
        ("provider" = String, Path, description = "aws, openstack, azure or gcp", example = "aws"),
        ("conn_id" = String, Path, description = "The connection's id", example = "5f1c0a"),
        ("task" = String, Path, description = "A task the provider allows, e.g. server-list", example = "server-list"),
    ),
    responses(
        (status = 202, description = "Confirmed by the broker", body = Enqueued),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "Unknown provider, bad id, or a task the provider does not allow", body = ErrorBody),
        (status = 503, description = "Broker unavailable; nothing enqueued", body = ErrorBody),
    ),
    security(("jwt" = []))
)]
pub(crate) async fn crawler(
    State(state): State<AppState>,
    params: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (provider, conn_id, task) = path(params)?;
    let kwargs = discovery_kwargs(&provider, &conn_id, &task)?;
    let queue = routed_queue(&state, TASK_DISCOVERY_SCAN)?;
    enqueue(&state, job(&headers, TASK_DISCOVERY_SCAN, queue, kwargs)).await
}

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
    report_general,
    "/reports/general",
    "reports",
    ReportRequest,
    TASK_REPORT_GENERAL,
    "Build a general (inventory query) report."
);
catalogue_endpoint!(
    report_pivot,
    "/reports/pivot",
    "reports",
    ReportRequest,
    TASK_REPORT_PIVOT,
    "Build a pivot (aggregation) report."
);
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
