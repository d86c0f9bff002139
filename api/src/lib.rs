//! maestro-api: the authenticated REST API that enqueues Maestro jobs.
//!
//! - `config`    flags and environment variables, checked once
//! - `auth`      Maestro's private JWT scheme (HS256, `noauth` claim), as middleware
//! - `body`      JSON bodies whose errors name the field (400 / 413 / 415 / 422)
//! - `catalogue` the Maestro tasks' requests (from `maestro_contract`) as endpoint bodies
//! - `enqueue`   confirmed publishing over a pool of confirm channels (deadpool-lapin)
//! - `trace`     W3C trace context into the task message headers
//! - `handlers`  enqueue endpoints, task states, health, readiness, metrics
//! - `reports`   report pages and streamed CSV/JSON exports
//! - `schedules` CRUD of beat's schedules in MongoDB
//! - `openapi`   the OpenAPI document
//! - `metrics`   Prometheus metrics
//! - `state`     what the handlers share
//! - `error`     `ApiError` and the one place errors become responses

pub mod auth;
pub mod body;
pub mod catalogue;
pub mod config;
pub mod enqueue;
pub mod error;
pub mod handlers;
pub mod metrics;
pub mod openapi;
pub mod reports;
pub mod schedules;
pub mod state;
pub mod trace;

#[cfg(test)]
mod testing;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router, middleware};
use utoipa::OpenApi;

pub use config::{ApiConfig, Cli};
pub use error::ApiError;
pub use state::AppState;

/// The API's router: authenticated routes behind the token check, health and the document
/// open, every route counted in the metrics, bodies limited to `body_bytes_max`.
pub fn app(state: AppState) -> Router {
    let authenticated = Router::new()
        .route(
            "/tasks/{task}",
            post(handlers::send_task).get(handlers::task_status),
        )
        .route(
            "/crawler/{provider}/{conn_id}/{task}",
            put(handlers::crawler),
        )
        .route("/reports/general", post(handlers::report_general))
        .route("/reports/pivot", post(handlers::report_pivot))
        .route("/reports/{report_id}/{kind}", get(reports::rows))
        .route("/reports/{report_id}/{kind}/export", get(reports::export))
        .route("/aggregation", post(handlers::aggregation))
        .route("/webhooks", post(handlers::webhook))
        .route("/notify/ws", post(handlers::notify_ws))
        .route("/notify/audit", post(handlers::notify_audit))
        .route("/schedules", post(schedules::create).get(schedules::list))
        .route(
            "/schedules/{id}",
            get(schedules::get_one)
                .put(schedules::replace)
                .patch(schedules::patch)
                .delete(schedules::delete),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let open = Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(openapi_json));
    authenticated
        .merge(open)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.config.body_bytes_max))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

async fn openapi_json() -> impl IntoResponse {
    Json(openapi::ApiDoc::openapi())
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(error::ErrorBody {
            error: "not_found".into(),
            field: None,
            reason: "no such route".into(),
        }),
    )
}
