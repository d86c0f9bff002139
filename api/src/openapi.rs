//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the handlers'
//! annotations, so it cannot drift from the routes.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::handlers::{Enqueued, Health, SendTaskRequest, TaskErrorInfo, TaskStatus};
use maestro_contract::notify::{AuditMethod, NotifyType};
use maestro_contract::webhook::WebhookMethod;
use maestro_contract::{
    AggregationRequest, AuditRecord, NotifyWsRequest, ReportRequest, WebhookRequest,
};

struct JwtScheme;

impl Modify for JwtScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "jwt",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`JWT <token>` or `Bearer <token>`: HS256 under MAESTRO_SECRETJWT_PRIVATE with claim noauth = MAESTRO_NOAUTH",
            ))),
        );
    }
}

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "maestro-api", description = "Authenticated REST API that enqueues Maestro jobs onto RabbitMQ (Celery protocol v2)."),
    paths(
        crate::handlers::send_task,
        crate::handlers::task_status,
        crate::handlers::crawler,
        crate::handlers::report_general,
        crate::handlers::report_pivot,
        crate::handlers::aggregation,
        crate::handlers::webhook,
        crate::handlers::notify_ws,
        crate::handlers::notify_audit,
        crate::reports::rows,
        crate::reports::export,
        crate::schedules::create,
        crate::schedules::list,
        crate::schedules::get_one,
        crate::schedules::replace,
        crate::schedules::patch,
        crate::schedules::delete,
        crate::handlers::healthz,
        crate::handlers::readyz,
        crate::handlers::metrics,
    ),
    components(schemas(
        ErrorBody, Enqueued, SendTaskRequest, TaskStatus, TaskErrorInfo, Health,
        ReportRequest, AggregationRequest, WebhookRequest, WebhookMethod,
        NotifyWsRequest, NotifyType, AuditRecord, AuditMethod,
        crate::schedules::ScheduleDoc, crate::schedules::SchedulePage,
        crate::reports::ReportPage,
    )),
    modifiers(&JwtScheme)
)]
pub struct ApiDoc;
