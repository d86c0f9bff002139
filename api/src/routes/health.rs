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
    /// Per dependency: `ok` or the reason it is not.
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

/// The broker and MongoDB are reachable.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "A dependency is unreachable", body = Health),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let timeout = state.config.ready_timeout;
    let broker = state.enqueuer.ready(timeout);
    let mongo = async {
        let ping = state
            .maestro_db
            .run_command(mongodb::bson::doc! {"ping": 1});
        match tokio::time::timeout(timeout, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    };
    let results = async {
        match &state.results {
            None => Ok(()),
            Some(r) => match tokio::time::timeout(timeout, r.get()).await {
                Ok(Ok(store)) => {
                    let ping = store
                        .database()
                        .run_command(mongodb::bson::doc! {"ping": 1});
                    match tokio::time::timeout(timeout, ping).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no answer within {timeout:?}")),
                    }
                }
                Ok(Err(e)) => Err(e.body().reason),
                Err(_) => Err(format!("no answer within {timeout:?}")),
            },
        }
    };
    let (broker, mongo, results) = tokio::join!(broker, mongo, results);
    let mut checks = Map::new();
    let mut ok = true;
    for (name, r) in [
        ("broker", broker),
        ("mongodb", mongo),
        ("result_store", results),
    ] {
        ok &= r.is_ok();
        checks.insert(
            name.into(),
            Value::String(r.err().unwrap_or_else(|| "ok".into())),
        );
    }
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
