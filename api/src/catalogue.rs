//! The Maestro tasks' requests as the API takes them: each endpoint's body is the task's
//! `maestro_contract` request, checked by the same `validate()` the task runs, and enqueued as
//! the task's keyword arguments. The same checks guard `POST /tasks/{name}` when it names a
//! catalogue task, so the generic endpoint cannot bypass them.

use maestro_contract::names::{
    TASK_AGGREGATION, TASK_ANALYTICS_GRAPH, TASK_DISCOVERY_SCAN, TASK_NOTIFY, TASK_REPORT_GENERAL,
    TASK_REPORT_PIVOT, TASK_WEBHOOK,
};
use maestro_contract::{
    AggregationRequest, AuditRecord, FieldError, GraphJob, Notification, NotifyWsRequest,
    ReportKind, ReportRequest, ScanRequest, WebhookRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// The keyword arguments of a checked request, named as the task takes them.
pub(crate) fn kwargs_of<T: Serialize>(req: &T) -> Result<Value, ApiError> {
    serde_json::to_value(req).map_err(|e| ApiError::invalid("body", e.to_string()))
}

/// An endpoint's body: checked, then the task's keyword arguments.
pub(crate) trait CatalogueBody {
    fn into_kwargs(self) -> Result<Value, ApiError>;
}

macro_rules! checked_body {
    ($($t:ty),*) => {$(
        impl CatalogueBody for $t {
            fn into_kwargs(self) -> Result<Value, ApiError> {
                self.validate()?;
                kwargs_of(&self)
            }
        }
    )*};
}

checked_body!(AggregationRequest, WebhookRequest, Notification);

impl CatalogueBody for NotifyWsRequest {
    fn into_kwargs(self) -> Result<Value, ApiError> {
        Notification::from(self).into_kwargs()
    }
}

impl CatalogueBody for AuditRecord {
    fn into_kwargs(self) -> Result<Value, ApiError> {
        Notification::Audit(self).into_kwargs()
    }
}

/// Kwargs of `maestro.discovery.scan` after checking the provider runs the task; the provider
/// is named by its key.
pub(crate) fn discovery_kwargs(
    provider: &str,
    conn_id: &str,
    task: &str,
) -> Result<Value, ApiError> {
    let mut req = ScanRequest {
        provider: provider.to_owned(),
        conn_id: conn_id.to_owned(),
        task: task.to_owned(),
    };
    let (p, _) = req.check()?;
    // Maestro names providers by label (`AWS`, `Digital Ocean`); the task gets the key.
    req.provider = p.key.to_owned();
    kwargs_of(&req)
}

/// A request of type `T` from a task's kwargs, checked; errors name `kwargs.<field>`.
fn checked<T, F>(kwargs: &Value, validate: F) -> Result<Value, ApiError>
where
    T: DeserializeOwned + Serialize,
    F: FnOnce(&T) -> Result<(), FieldError>,
{
    let text =
        serde_json::to_vec(kwargs).map_err(|e| ApiError::invalid("kwargs", e.to_string()))?;
    let req: T = crate::body::parse(&text).map_err(|e| match e {
        ApiError::Invalid { field, reason } => {
            ApiError::from(FieldError::type_(field, reason).within("kwargs"))
        }
        other => other,
    })?;
    validate(&req).map_err(|e| ApiError::from(e.within("kwargs")))?;
    kwargs_of(&req)
}

/// For a catalogue task sent through `POST /tasks/{name}`: the checked (and normalised)
/// kwargs, as its own endpoint would make them; `None` for other tasks.
pub(crate) fn check_catalogue_kwargs(
    task: &str,
    kwargs: &Value,
) -> Result<Option<Value>, ApiError> {
    let checked = match task {
        TASK_DISCOVERY_SCAN => checked(kwargs, ScanRequest::validate)?,
        TASK_REPORT_GENERAL => checked(kwargs, |r: &ReportRequest| {
            r.validate_for(ReportKind::General)
        })?,
        TASK_REPORT_PIVOT => checked(kwargs, |r: &ReportRequest| {
            r.validate_for(ReportKind::Pivot)
        })?,
        TASK_AGGREGATION => checked(kwargs, AggregationRequest::validate)?,
        TASK_ANALYTICS_GRAPH => checked(kwargs, GraphJob::validate)?,
        TASK_WEBHOOK => checked(kwargs, WebhookRequest::validate)?,
        TASK_NOTIFY => {
            let n = Notification::from_kwargs(kwargs)
                .and_then(|n| n.validate().map(|()| n))
                .map_err(|e| ApiError::from(e.within("kwargs")))?;
            kwargs_of(&n)?
        }
        _ => return Ok(None),
    };
    Ok(Some(checked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(e: ApiError) -> String {
        e.body().field.unwrap_or_default()
    }

    #[test]
    fn discovery_permissions() {
        assert!(discovery_kwargs("aws", "5f1c0a", "server-list").is_ok());
        assert_eq!(
            field(discovery_kwargs("aws", "c1", "flavor-list").expect_err("not aws")),
            "task"
        );
        assert_eq!(
            field(discovery_kwargs("vmware", "c1", "server-list").expect_err("unknown")),
            "provider"
        );
        assert_eq!(
            field(discovery_kwargs("aws", "a b", "server-list").expect_err("bad id")),
            "conn_id"
        );
    }

    #[test]
    fn generic_endpoint_checks_catalogue_kwargs() {
        assert_eq!(
            check_catalogue_kwargs("app.other", &json!({"x": 1})).expect("free"),
            None
        );
        let e = check_catalogue_kwargs(TASK_WEBHOOK, &json!({"url": 5})).expect_err("type");
        assert_eq!(field(e), "kwargs.url");
        let e = check_catalogue_kwargs(TASK_REPORT_GENERAL, &json!({"report_id": "r"}))
            .expect_err("missing");
        assert_eq!(field(e), "kwargs.filters");
        let e = check_catalogue_kwargs(
            TASK_DISCOVERY_SCAN,
            &json!({"provider": "aws", "conn_id": "c", "task": "x"}),
        )
        .expect_err("not allowed");
        assert_eq!(field(e), "kwargs.task");
        let e =
            check_catalogue_kwargs(TASK_NOTIFY, &json!({"channel": "sms"})).expect_err("channel");
        assert_eq!(field(e), "kwargs.channel");
        let ws = check_catalogue_kwargs(
            TASK_NOTIFY,
            &json!({"channel": "ws", "owner_id": "u1", "notify": {"title": "t", "msg": "m", "type": "info"}, "event": {"caller": ["reports"]}}),
        )
        .expect("stored shape")
        .expect("catalogue");
        assert_eq!(ws["notify"]["type"], "info");
        assert_eq!(ws["event"]["caller"], json!(["reports"]));
        let rules =
            json!([{"field": "active", "filter": "true", "comparer": "equal", "typ": "boolean"}]);
        let owner = "5f0000000000000000000001";
        let general = check_catalogue_kwargs(
            TASK_REPORT_GENERAL,
            &json!({"report_id": "r1", "component": "Servers", "owner_user": owner, "filters": rules}),
        )
        .expect("valid")
        .expect("catalogue");
        assert_eq!(
            general["filters"],
            json!(rules.to_string()),
            "kept as Maestro's text"
        );
        let e = check_catalogue_kwargs(
            TASK_REPORT_PIVOT,
            &json!({"report_id": "r1", "owner_user": owner, "filters": rules}),
        )
        .expect_err("a pivot's filters are an object");
        assert_eq!(field(e), "kwargs.filters");
    }
}
