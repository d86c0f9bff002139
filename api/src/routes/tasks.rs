//! `POST /tasks/{task}`: send any routed task (checked as its own endpoint would when it is a
//! catalogue task), with countdown, eta and expiry; `GET /tasks/{id}`: its state as the
//! result store has it (PENDING when unknown).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maestro_broker::message::{format_time, parse_time};
use maestro_broker::topology::validate_queue_name;
use maestro_tasks::validate_task_name;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{Enqueued, enqueue, job, path, routed_queue};
use crate::body::JsonBody;
use crate::catalogue::check_catalogue_kwargs;
use crate::enqueue::Job;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use maestro_contract::routes::{Reach, reach, refusal};

/// Longest delay accepted for `countdown`/`eta`, seconds (one year; the delay queues reach
/// 2^28 s, but a job a year out is a mistake more often than a plan).
pub(crate) const DELAY_SECS_MAX: f64 = 366.0 * 86_400.0;
/// Longest task id looked up, bytes.
pub(crate) const TASK_ID_BYTES_MAX: usize = 255;

/// Body of `POST /tasks/{name}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"args": [1, "two"], "kwargs": {"k": "v"}, "countdown": 5, "expires": 3600}))]
#[serde(deny_unknown_fields)]
pub(crate) struct SendTaskRequest {
    /// Positional arguments.
    #[schema(value_type = Vec<Object>)]
    pub args: Vec<Value>,
    /// Keyword arguments.
    #[schema(value_type = Object)]
    pub kwargs: Map<String, Value>,
    /// Queue to send to instead of the task's route.
    #[serde(default)]
    pub queue: Option<String>,
    /// Seconds from now before the task may run.
    #[serde(default)]
    pub countdown: Option<f64>,
    /// Earliest run time, ISO 8601 (naive means UTC). Not with `countdown`.
    #[serde(default)]
    pub eta: Option<String>,
    /// When the task is no longer worth running: ISO 8601 time, or seconds from now.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub expires: Option<Value>,
}

/// A task's state as the result store has it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct TaskStatus {
    pub task_id: String,
    /// Celery's state: PENDING (also: unknown), RECEIVED, STARTED, SUCCESS, FAILURE, RETRY,
    /// REVOKED.
    pub state: String,
    /// The return value (SUCCESS).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// The exception (FAILURE, RETRY, REVOKED).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskErrorInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
    /// When it finished, ISO 8601.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_done: Option<String>,
}

/// An exception as Celery stored it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct TaskErrorInfo {
    #[serde(rename = "type")]
    pub exc_type: String,
    pub message: String,
}

fn delay_secs(field: &str, secs: f64) -> Result<chrono::Duration, ApiError> {
    if !secs.is_finite() || !(0.0..=DELAY_SECS_MAX).contains(&secs) {
        return Err(ApiError::invalid(
            field,
            format!("must be between 0 and {DELAY_SECS_MAX} seconds"),
        ));
    }
    Ok(chrono::Duration::milliseconds((secs * 1000.0) as i64))
}

fn time_field(field: &str, text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let t = parse_time(text)
        .ok_or_else(|| ApiError::invalid(field, format!("{text:?} is not an ISO 8601 time")))?;
    if t - now > chrono::Duration::milliseconds((DELAY_SECS_MAX * 1000.0) as i64) {
        return Err(ApiError::invalid(field, "is more than a year away"));
    }
    Ok(t)
}

/// Send any routed task.
#[utoipa::path(
    post, path = "/tasks/{task}", tag = "tasks",
    params(("task" = String, Path, description = "Registered task name (see the routing table)", example = "maestro.echo")),
    request_body = SendTaskRequest,
    responses(
        (status = 202, description = "Confirmed by the broker", body = Enqueued),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "An internal task, or a diagnostic one where diagnostics are off", body = ErrorBody),
        (status = 404, description = "Unknown task", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 503, description = "Broker unavailable; nothing enqueued", body = ErrorBody),
    ),
    security(("jwt" = []))
)]
pub(crate) async fn send_task(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<SendTaskRequest>,
) -> Result<Response, ApiError> {
    let name = path(name)?;
    validate_task_name(&name).map_err(|r| ApiError::invalid("name", r))?;
    let forbidden = |reason| ApiError::Forbidden {
        field: "name".into(),
        reason,
    };
    if reach(&name) == Reach::Internal {
        // Refused whether routed or not: a report's chunks and callback write any report.
        return Err(forbidden(refusal(&name, "", "", false).unwrap_or_default()));
    }
    let routed = routed_queue(&state, &name)?;
    let queue = match req.queue {
        None => routed.clone(),
        Some(q) => {
            validate_queue_name(&q).map_err(|r| ApiError::invalid("queue", r))?;
            if !state.config.allow_any_queue && !state.config.routes.has_queue(&q) {
                return Err(ApiError::invalid(
                    "queue",
                    format!(
                        "queue {q:?} is not in the routing table (MAESTRO_ALLOW_ANY_QUEUE is off)"
                    ),
                ));
            }
            q
        }
    };
    if let Some(reason) = refusal(&name, &queue, &routed, state.config.enable_diagnostics) {
        return Err(forbidden(reason));
    }
    let now = Utc::now();
    let eta = match (req.countdown, req.eta.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("eta", "give countdown or eta, not both"));
        }
        (Some(secs), None) => Some(now + delay_secs("countdown", secs)?),
        (None, Some(text)) => Some(time_field("eta", text, now)?),
        (None, None) => None,
    };
    let expires = match &req.expires {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(time_field("expires", text, now)?),
        Some(Value::Number(n)) => {
            let secs = n
                .as_f64()
                .ok_or_else(|| ApiError::invalid("expires", "is not a number of seconds"))?;
            Some(now + delay_secs("expires", secs)?)
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "expires",
                "must be an ISO 8601 time or a number of seconds",
            ));
        }
    };
    if let Some(x) = expires {
        if x <= now {
            return Err(ApiError::invalid("expires", "is already past"));
        }
        if eta.is_some_and(|e| x <= e) {
            return Err(ApiError::invalid("expires", "is not after the eta"));
        }
    }
    let mut kwargs = Value::Object(req.kwargs);
    if let Some(checked) = check_catalogue_kwargs(&name, &kwargs)? {
        if !req.args.is_empty() {
            return Err(ApiError::invalid(
                "args",
                format!("{name} takes keyword arguments only"),
            ));
        }
        kwargs = checked;
    }
    let job = Job {
        args: Value::Array(req.args),
        eta,
        expires,
        ..job(&headers, &name, queue, kwargs)
    };
    enqueue(&state, job).await
}

/// A task's state, result or error (PENDING when unknown).
#[utoipa::path(
    get, path = "/tasks/{task}", tag = "tasks",
    params(("task" = String, Path, description = "Task id", example = "0d5b1c2e-6a57-4c1e-9d7b-3f1d6a2b9e10")),
    responses(
        (status = 200, description = "State (PENDING when unknown)", body = TaskStatus),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "Invalid id", body = ErrorBody),
        (status = 503, description = "Result store unavailable", body = ErrorBody),
    ),
    security(("jwt" = []))
)]
pub(crate) async fn task_status(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<TaskStatus>, ApiError> {
    let id = path(id)?;
    if id.is_empty() || id.len() > TASK_ID_BYTES_MAX || id.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "id",
            format!("must be 1 to {TASK_ID_BYTES_MAX} bytes without control characters"),
        ));
    }
    let results = state.results.as_ref().ok_or_else(|| {
        ApiError::StoreUnavailable(
            "no result backend is configured (--result-backend, CELERY_RESULT_BACKEND)".into(),
        )
    })?;
    let store = results.get().await?;
    let meta = tokio::time::timeout(state.config.publish_timeout, store.get(&id))
        .await
        .map_err(|_| ApiError::StoreUnavailable("result store did not answer in time".into()))?
        .map_err(|e| ApiError::StoreUnavailable(format!("result store: {e}")))?;
    let Some(meta) = meta else {
        return Ok(Json(TaskStatus {
            task_id: id,
            state: "PENDING".into(),
            result: None,
            error: None,
            traceback: None,
            date_done: None,
        }));
    };
    let failed = matches!(meta.status.as_str(), "FAILURE" | "RETRY" | "REVOKED");
    let error = failed.then(|| exception(&meta.result));
    Ok(Json(TaskStatus {
        task_id: id,
        result: (!failed && !meta.result.is_null()).then_some(meta.result),
        state: meta.status,
        error,
        traceback: meta.traceback,
        date_done: meta.date_done.map(format_time),
    }))
}

/// Celery's stored exception `{exc_type, exc_message, exc_module}` as `{type, message}`.
fn exception(v: &Value) -> TaskErrorInfo {
    let exc_type = v
        .get("exc_type")
        .and_then(Value::as_str)
        .unwrap_or("Exception")
        .to_owned();
    let message = match v.get("exc_message") {
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None if v.is_null() => String::new(),
        None => v.to_string(),
    };
    TaskErrorInfo { exc_type, message }
}
