//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the handlers'
//! annotations, so it cannot drift from the routes.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::routes::Enqueued;
use crate::routes::health::Health;
use crate::routes::tasks::{SendTaskRequest, TaskErrorInfo, TaskStatus};
use maestro_contract::notify::{AuditMethod, NotifyType};
use maestro_contract::webhook::WebhookMethod;
use maestro_contract::{
    AggregationRequest, AuditRecord, GraphRequest, NotifyWsRequest, ReportRequest, WebhookRequest,
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
        crate::routes::tasks::send_task,
        crate::routes::tasks::task_status,
        crate::routes::service::info,
        crate::routes::discovery::info_all,
        crate::routes::discovery::info_one,
        crate::routes::discovery::rules_all,
        crate::routes::discovery::rules_one,
        crate::routes::discovery::crawler_index,
        crate::routes::discovery::crawler_provider,
        crate::routes::discovery::crawl,
        crate::routes::reports::general_post,
        crate::routes::reports::general_patch,
        crate::routes::reports::pivot_post,
        crate::routes::reports::pivot_patch,
        crate::routes::reports::read,
        crate::routes::reports::drop_rows,
        crate::routes::reports::aggregation,
        crate::routes::catalogue::aggregation,
        crate::routes::catalogue::graph,
        crate::routes::catalogue::webhook,
        crate::routes::catalogue::notify_ws,
        crate::routes::catalogue::notify_audit,
        crate::routes::schedules::create,
        crate::routes::schedules::list,
        crate::routes::schedules::get_one,
        crate::routes::schedules::replace,
        crate::routes::schedules::patch,
        crate::routes::schedules::delete,
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::routes::health::metrics,
    ),
    components(schemas(
        ErrorBody, Enqueued, SendTaskRequest, TaskStatus, TaskErrorInfo, Health,
        crate::routes::service::ServiceInfo,
        ReportRequest, AggregationRequest, GraphRequest, WebhookRequest, WebhookMethod,
        NotifyWsRequest, NotifyType, AuditRecord, AuditMethod,
        crate::routes::schedules::ScheduleDoc, crate::routes::schedules::SchedulePage,
    )),
    modifiers(&JwtScheme)
)]
pub struct ApiDoc;
