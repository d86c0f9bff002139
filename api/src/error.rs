//! Every error the API answers, and the one place they become responses:
//! 4xx `{"error", "field"?, "reason", "message": {field: text}}`, 401 `{"error":"unauthorized", ...}`,
//! 503 `{"error":"broker_unavailable"|"store_unavailable", ...}`.

use axum::http::StatusCode;
use axum::http::header::WWW_AUTHENTICATE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A short machine-readable code: `invalid_json`, `invalid_field`, `unauthorized`,
    /// `forbidden`, `not_found`, `payload_too_large`, `unsupported_media_type`, `broker_unavailable`,
    /// `store_unavailable`, `busy`.
    pub error: String,
    /// The field at fault (a dotted path into the body, or a path parameter), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub reason: String,
    /// The same for Maestro's server-app: `{<field or code>: "<field>: <reason>"}`. server-app
    /// joins the *values* of a failed answer's `message` into the text its user sees (a plain
    /// string would be joined letter by letter), as it did with report-app's
    /// `{"message": {"report_id": "Must've report id"}}`.
    pub message: std::collections::BTreeMap<String, String>,
}

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON (400).
    #[error("malformed JSON: {reason}")]
    MalformedJson { reason: String },
    /// A field is missing, unknown, of the wrong type or out of range (422).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The caller may not do this (403), e.g. send an internal task.
    #[error("forbidden: {field}: {reason}")]
    Forbidden { field: String, reason: String },
    /// No valid token (401).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Nothing here (404), e.g. an unknown task or schedule.
    #[error("not found: {reason}")]
    NotFound {
        field: Option<String>,
        reason: String,
    },
    /// The body is over the size limit (413).
    #[error("payload too large: {0}")]
    TooLarge(String),
    /// The body is not `application/json` (415).
    #[error("unsupported media type: {0}")]
    MediaType(String),
    /// The broker is away or refused the message; nothing was enqueued (503).
    #[error("broker unavailable: {0}")]
    BrokerUnavailable(String),
    /// Too many requests at once, or one that took too long (503).
    #[error("busy: {0}")]
    Busy(String),
    /// MongoDB (result store or schedules) is away (503).
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
}

impl ApiError {
    /// A 422 naming `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson { .. } => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BrokerUnavailable(_) | ApiError::StoreUnavailable(_) | ApiError::Busy(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        let (error, field, reason) = match self {
            ApiError::MalformedJson { reason } => ("invalid_json", None, reason.clone()),
            ApiError::Invalid { field, reason } => {
                ("invalid_field", Some(field.clone()), reason.clone())
            }
            ApiError::Unauthorized(r) => ("unauthorized", None, r.clone()),
            ApiError::Forbidden { field, reason } => {
                ("forbidden", Some(field.clone()), reason.clone())
            }
            ApiError::NotFound { field, reason } => ("not_found", field.clone(), reason.clone()),
            ApiError::TooLarge(r) => ("payload_too_large", None, r.clone()),
            ApiError::MediaType(r) => ("unsupported_media_type", None, r.clone()),
            ApiError::BrokerUnavailable(r) => ("broker_unavailable", None, r.clone()),
            ApiError::StoreUnavailable(r) => ("store_unavailable", None, r.clone()),
            ApiError::Busy(r) => ("busy", None, r.clone()),
        };
        let message = match &field {
            Some(f) => [(f.clone(), format!("{f}: {reason}"))].into(),
            None => [(error.to_owned(), reason.clone())].into(),
        };
        ErrorBody {
            error: error.into(),
            field,
            reason,
            message,
        }
    }
}

/// A field a request's check refused: 422 naming it.
impl From<maestro_tasks::FieldError> for ApiError {
    fn from(e: maestro_tasks::FieldError) -> Self {
        ApiError::Invalid {
            field: e.field,
            reason: e.reason,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(event = "request_failed", status = status.as_u16(), error = %self);
        }
        let mut resp = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("JWT"),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}
