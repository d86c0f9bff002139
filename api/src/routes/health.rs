//! Health, readiness and metrics: `/healthz` (the process is up), `/readyz` (the broker,
//! MongoDB and the result store answer) and `/metrics` (Prometheus).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::state::AppState;

/// Health answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`, or `unavailable`.
    pub status: String,
    /// Per dependency: `ok` or `unavailable` (the reason is in the API's log).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub checks: Option<Map<String, Value>>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Up", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        checks: None,
    })
}

/// How long a `/readyz` answer is reused.
const READY_CACHE: std::time::Duration = std::time::Duration::from_secs(1);

/// The broker and MongoDB are reachable. The answer says which dependency is not, never why
/// (driver errors name hosts); the reason is logged. One check runs at a time and its answer is
/// reused for a second, so the open endpoint costs the dependencies nothing under a flood.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "A dependency is unreachable", body = Health),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let mut cached = state.readiness.lock().await;
    let (ok, checks) = match &*cached {
        Some((at, ok, checks)) if at.elapsed() < READY_CACHE => (*ok, checks.clone()),
        _ => {
            let checks = check_dependencies(&state).await;
            let ok = checks.iter().all(|(_, up)| *up);
            *cached = Some((std::time::Instant::now(), ok, checks.clone()));
            (ok, checks)
        }
    };
    drop(cached);
    let checks: Map<String, Value> = checks
        .into_iter()
        .map(|(name, up)| {
            (
                name.to_owned(),
                Value::from(if up { "ok" } else { "unavailable" }),
            )
        })
        .collect();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if ok { "ok" } else { "unavailable" }.into(),
        checks: Some(checks),
    };
    (status, Json(body)).into_response()
}

/// Whether the broker, MongoDB and the result store answer; why not is logged.
async fn check_dependencies(state: &AppState) -> Vec<(&'static str, bool)> {
    let timeout = state.config.ready_timeout;
    let late = || format!("no answer within {timeout:?}");
    let broker = state.enqueuer.ready(timeout);
    let mongo = async {
        let ping = state
            .maestro_db
            .run_command(mongodb::bson::doc! {"ping": 1});
        match tokio::time::timeout(timeout, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(late()),
        }
    };
    let results = async {
        match &state.results {
            None => Ok(()),
            Some(r) => match tokio::time::timeout(timeout, r.get()).await {
                Ok(Ok(store)) => {
                    let ping = store.ping();
                    match tokio::time::timeout(timeout, ping).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(late()),
                    }
                }
                Ok(Err(e)) => Err(e.body().reason),
                Err(_) => Err(late()),
            },
        }
    };
    let (broker, mongo, results) = tokio::join!(broker, mongo, results);
    [
        ("broker", broker),
        ("mongodb", mongo),
        ("result_store", results),
    ]
    .into_iter()
    .map(|(name, r)| {
        if let Err(why) = &r {
            tracing::warn!(event = "not_ready", dependency = name, error = %why);
        }
        (name, r.is_ok())
    })
    .collect()
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Metrics", content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => (
            [(
                CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
