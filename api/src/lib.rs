//! maestro-api: the authenticated REST API that enqueues Maestro jobs.
//!
//! - `config`    flags and environment variables, checked once
//! - `auth`      Maestro's private JWT scheme (HS256, `noauth` claim), as middleware
//! - `body`      JSON bodies whose errors name the field (400 / 413 / 415 / 422)
//! - `catalogue` the Maestro tasks' requests (from `maestro_contract`) as endpoint bodies
//! - `enqueue`   confirmed publishing over a pool of confirm channels (deadpool-lapin)
//! - `trace`     W3C trace context into the task message headers
//! - `routes`    the endpoints, one file per area: service, tasks, discovery, reports,
//!   catalogue, schedules, health
//! - `openapi`   the OpenAPI document
//! - `metrics`   Prometheus metrics
//! - `state`     what the handlers share
//! - `error`     `ApiError` and the one place errors become responses

mod auth;
mod body;
mod catalogue;
pub mod config;
mod enqueue;
mod error;
mod metrics;
mod openapi;
mod routes;
pub mod serve;
mod state;
mod trace;

#[cfg(test)]
mod testing;

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router, middleware};
use utoipa::OpenApi;

pub use auth::Authenticator;
pub use config::{ApiConfig, Cli};
pub use error::{ApiError, ErrorBody};
pub use openapi::ApiDoc;
pub use state::AppState;

/// The API's router: authenticated routes behind the token check, health and the document
/// open, every route counted in the metrics, bodies limited to `body_bytes_max`.
pub fn app(state: AppState) -> Router {
    let authenticated = Router::new()
        .route(
            "/tasks/{task}",
            post(routes::tasks::send_task).get(routes::tasks::task_status),
        )
        .route("/available/info", get(routes::discovery::info_all))
        .route(
            "/available/info/{provider}",
            get(routes::discovery::info_one),
        )
        .route("/available/rules", get(routes::discovery::rules_all))
        .route(
            "/available/rules/{provider}",
            get(routes::discovery::rules_one),
        )
        .route("/crawler", get(routes::discovery::crawler_index))
        .route(
            "/crawler/{provider}",
            get(routes::discovery::crawler_provider),
        )
        .route(
            "/crawler/{provider}/{conn_id}/{task}",
            put(routes::discovery::crawl),
        )
        .route(
            "/reports/general",
            post(routes::reports::general_post).patch(routes::reports::general_patch),
        )
        .route(
            "/reports/pivot",
            post(routes::reports::pivot_post).patch(routes::reports::pivot_patch),
        )
        .route(
            "/reports/{table}",
            get(routes::reports::read).delete(routes::reports::drop_rows),
        )
        .route("/aggregation/{table}", get(routes::reports::aggregation))
        .route("/aggregation", post(routes::catalogue::aggregation))
        .route("/graph", post(routes::catalogue::graph))
        .route("/webhooks", post(routes::catalogue::webhook))
        .route("/notify/ws", post(routes::catalogue::notify_ws))
        .route("/notify/audit", post(routes::catalogue::notify_audit))
        .route(
            "/schedules",
            post(routes::schedules::create).get(routes::schedules::list),
        )
        .route(
            "/schedules/{id}",
            get(routes::schedules::get_one)
                .put(routes::schedules::replace)
                .patch(routes::schedules::patch)
                .delete(routes::schedules::delete),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let open = Router::new()
        .route("/", get(routes::service::info))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
        .route("/openapi.json", get(openapi_json));
    authenticated
        .merge(open)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.config.body_bytes_max))
        .layer(middleware::from_fn_with_state(state.clone(), limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Middleware: at most `max_in_flight` requests at once (the rest get 503 at once, with
/// Retry-After), each within `request_timeout` (503 after it). Counted by the metrics layer
/// around it.
async fn limit(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        return ApiError::Busy(format!(
            "more than {} requests at once (MAESTRO_MAX_IN_FLIGHT)",
            state.config.max_in_flight
        ))
        .into_response();
    };
    let timeout = state.config.request_timeout;
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::Busy(format!(
            "the request took longer than {timeout:?} (MAESTRO_REQUEST_TIMEOUT)"
        ))
        .into_response(),
    }
}

async fn openapi_json() -> impl IntoResponse {
    Json(openapi::ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    ApiError::NotFound {
        field: None,
        reason: "no such route".into(),
    }
}
