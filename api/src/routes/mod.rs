//! The API's routes, one file per area. Shared here: the answer of every enqueue and the steps
//! each enqueue takes (route the task, build the job in the request's trace, publish with
//! confirm, answer 202 with the task's location).
//!
//! - `service`   `GET /`: what this service is (Maestro's health page reads it)
//! - `tasks`     `POST /tasks/{task}` (any routed task), `GET /tasks/{id}` (its state)
//! - `discovery` Maestro's discovery: `/available/*`, `/crawler/...`
//! - `catalogue` the other catalogue endpoints: aggregation, webhooks, notify
//! - `reports`   Maestro's reports: start, read (in five formats), drop, charts
//! - `schedules` CRUD of beat's schedules
//! - `health`    `/healthz`, `/readyz`, `/metrics`

pub(crate) mod catalogue;
pub(crate) mod discovery;
pub(crate) mod health;
pub(crate) mod reports;
pub(crate) mod schedules;
pub(crate) mod service;
pub(crate) mod tasks;

use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;
use utoipa::ToSchema;

use crate::enqueue::Job;
use crate::error::ApiError;
use crate::state::AppState;

/// Answer of every enqueue: the task id and the queue it went to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct Enqueued {
    /// The Celery task id (UUID); read its state at `GET /tasks/{task_id}`.
    pub task_id: String,
    /// The queue the message was confirmed on.
    pub queue: String,
}

pub(crate) fn accepted(id: String, queue: String) -> Response {
    let location = HeaderValue::from_str(&format!("/tasks/{id}")).ok();
    let mut resp = (StatusCode::ACCEPTED, Json(Enqueued { task_id: id, queue })).into_response();
    if let Some(l) = location {
        resp.headers_mut().insert(LOCATION, l);
    }
    resp
}

/// Publishes a checked job; its id and queue after the broker's confirm, 503 otherwise.
pub(crate) async fn enqueue_job(state: &AppState, job: Job) -> Result<Enqueued, ApiError> {
    let sent = state
        .enqueuer
        .enqueue(&job)
        .instrument(job.span.clone())
        .await;
    match &sent {
        Ok(id) => job.span.record("task_id", id.as_str()),
        Err(_) => job.span.record("otel.status_code", "error"),
    };
    let id = sent.map_err(|e| ApiError::BrokerUnavailable(e.to_string()))?;
    Ok(Enqueued {
        task_id: id,
        queue: job.queue,
    })
}

/// Publishes a checked job; 202 after the broker's confirm, 503 otherwise.
pub(crate) async fn enqueue(state: &AppState, job: Job) -> Result<Response, ApiError> {
    let sent = enqueue_job(state, job).await?;
    Ok(accepted(sent.task_id, sent.queue))
}

/// A job without delay or expiry, in the request's trace.
pub(crate) fn job(headers: &HeaderMap, task: &str, queue: String, kwargs: Value) -> Job {
    let (span, trace) = crate::trace::enqueue_span(headers, task, &queue);
    Job {
        task: task.to_owned(),
        queue,
        args: Value::Array(vec![]),
        kwargs,
        eta: None,
        expires: None,
        trace,
        span,
    }
}

pub(crate) fn routed_queue(state: &AppState, task: &str) -> Result<String, ApiError> {
    state
        .config
        .routes
        .queue_for(task)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::NotFound {
            field: Some("name".into()),
            reason: format!("task {task:?} has no route (see MAESTRO_ROUTES)"),
        })
}

pub(crate) fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::invalid("path", e.body_text()))
}
