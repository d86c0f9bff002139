//! `GET /`: what this service is, as each of Maestro's services answered it, so server-app's
//! health page (`GET /versions`) lists it UP with its description, version and licence. One
//! maestro-api answers for discovery, reports and analytics alike.

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The service's card.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct ServiceInfo {
    pub name: String,
    pub description: String,
    pub version: String,
    pub license: String,
}

/// What this service is (no token needed).
#[utoipa::path(get, path = "/", tag = "health",
    responses((status = 200, description = "Name, description, version, licence", body = ServiceInfo)))]
pub(crate) async fn info() -> Json<ServiceInfo> {
    Json(ServiceInfo {
        name: "maestro-api".into(),
        description:
            "Maestro workers: discovery, reports and scheduling on Celery-compatible Rust workers"
                .into(),
        version: env!("CARGO_PKG_VERSION").into(),
        license: env!("CARGO_PKG_LICENSE").into(),
    })
}
