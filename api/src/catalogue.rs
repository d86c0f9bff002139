//! The Maestro catalogue's request bodies and their checks: what each task's kwargs must look
//! like before the API enqueues it. The same checks guard `POST /tasks/{name}` when it names a
//! catalogue task, so the generic endpoint cannot bypass them.
//!
//! Discovery's permission table (provider -> tasks it may scan) is small on purpose: the
//! commands the catalogue's scanners know. A task a provider does not list is 422.

use axum::http::{HeaderName, HeaderValue, Uri};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::routes::{
    TASK_AGGREGATION, TASK_DISCOVERY_SCAN, TASK_NOTIFY, TASK_REPORT_GENERAL, TASK_REPORT_PIVOT,
    TASK_WEBHOOK,
};

/// The tasks each provider's connections may scan (`PUT /crawler/{provider}/{conn_id}/{task}`).
pub const PROVIDER_TASKS: [(&str, &[&str]); 4] = [
    (
        "aws",
        &[
            "server-list",
            "volume-list",
            "security-list",
            "storage-object-list",
            "network-list",
            "loadbalance-list",
            "dbs-list",
            "snapshot-list",
            "image-list",
        ],
    ),
    (
        "openstack",
        &[
            "server-list",
            "volume-list",
            "security-list",
            "storage-object-list",
            "network-list",
            "flavor-list",
            "image-list",
        ],
    ),
    (
        "azure",
        &[
            "server-list",
            "volume-list",
            "security-list",
            "storage-object-list",
            "network-list",
            "loadbalance-list",
            "dbs-list",
        ],
    ),
    (
        "gcp",
        &[
            "server-list",
            "volume-list",
            "security-list",
            "storage-object-list",
            "network-list",
            "dbs-list",
        ],
    ),
];

/// Longest identifier (connection, report, owner, entity ids), bytes.
pub const ID_BYTES_MAX: usize = 128;
/// Longest free text (titles, messages), bytes.
pub const TEXT_BYTES_MAX: usize = 4096;
/// Most stages in an aggregation pipeline.
pub const PIPELINE_STAGES_MAX: usize = 64;
/// Longest webhook URL, bytes.
pub const URL_BYTES_MAX: usize = 2048;
/// Most webhook headers.
pub const WEBHOOK_HEADERS_MAX: usize = 32;

/// Checks an identifier: 1..=`ID_BYTES_MAX` bytes of ASCII letters, digits, `_`, `-`, `.`.
pub fn check_id(field: &str, v: &str) -> Result<(), ApiError> {
    if v.is_empty() || v.len() > ID_BYTES_MAX {
        return Err(ApiError::invalid(
            field,
            format!("must be 1 to {ID_BYTES_MAX} bytes"),
        ));
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(ApiError::invalid(
            field,
            "may hold only ASCII letters, digits, '_', '-' and '.'",
        ));
    }
    Ok(())
}

fn check_text(field: &str, v: &str) -> Result<(), ApiError> {
    if v.trim().is_empty() || v.len() > TEXT_BYTES_MAX {
        return Err(ApiError::invalid(
            field,
            format!("must be non-blank and at most {TEXT_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

/// The provider's allowed tasks, or 422 naming `provider`.
pub fn provider_tasks(provider: &str) -> Result<&'static [&'static str], ApiError> {
    PROVIDER_TASKS
        .iter()
        .find(|(p, _)| *p == provider)
        .map(|(_, tasks)| *tasks)
        .ok_or_else(|| {
            let known: Vec<&str> = PROVIDER_TASKS.iter().map(|(p, _)| *p).collect();
            ApiError::invalid(
                "provider",
                format!("provider {provider:?} is not one of {}", known.join(", ")),
            )
        })
}

/// Kwargs of `maestro.discovery.scan` after checking the provider allows the task.
pub fn discovery_kwargs(provider: &str, conn_id: &str, task: &str) -> Result<Value, ApiError> {
    let allowed = provider_tasks(provider)?;
    check_id("conn_id", conn_id)?;
    if !allowed.contains(&task) {
        return Err(ApiError::invalid(
            "task",
            format!(
                "provider {provider} does not allow task {task:?} (allowed: {})",
                allowed.join(", ")
            ),
        ));
    }
    Ok(json!({"provider": provider, "conn_id": conn_id, "task": task}))
}

/// Body of `POST /reports/general` and `POST /reports/pivot`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"report_id": "r1", "filters": {"status": "active"}, "component": "servers", "owner_user": "u1"}))]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// The report's id; results land in collection `<report_id>_<general|pivot>`.
    pub report_id: String,
    /// Query filters: an object, or (as Maestro sent it) a JSON string holding one.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filters: Option<Value>,
    /// The inventory entity reported on (e.g. `servers`).
    pub component: String,
    /// Id of the user whose inventory is read.
    pub owner_user: String,
}

impl ReportRequest {
    /// The task kwargs, with `filters` always an object.
    pub fn kwargs(&self, prefix: &str) -> Result<Value, ApiError> {
        let f = |name: &str| format!("{prefix}{name}");
        check_id(&f("report_id"), &self.report_id)?;
        check_id(&f("component"), &self.component)?;
        check_id(&f("owner_user"), &self.owner_user)?;
        let filters = match &self.filters {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(Value::Object(m)) => Value::Object(m.clone()),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => Value::Object(m),
                Ok(_) => {
                    return Err(ApiError::invalid(
                        f("filters"),
                        "the JSON string must hold an object",
                    ));
                }
                Err(e) => {
                    return Err(ApiError::invalid(
                        f("filters"),
                        format!("the string is not JSON: {e}"),
                    ));
                }
            },
            Some(_) => {
                return Err(ApiError::invalid(
                    f("filters"),
                    "must be an object or a JSON string holding one",
                ));
            }
        };
        Ok(json!({
            "report_id": self.report_id,
            "filters": filters,
            "component": self.component,
            "owner_user": self.owner_user,
        }))
    }
}

/// Body of `POST /aggregation`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"collection": "servers", "pipeline": [{"$match": {"active": true}}, {"$count": "n"}], "report_id": "r1"}))]
#[serde(deny_unknown_fields)]
pub struct AggregationRequest {
    /// The collection the pipeline runs over.
    pub collection: String,
    /// MongoDB aggregation stages, each an object with one `$` operator.
    #[schema(value_type = Vec<Object>)]
    pub pipeline: Vec<Value>,
    /// The report the result belongs to, if any.
    #[serde(default)]
    pub report_id: Option<String>,
}

impl AggregationRequest {
    /// The task kwargs.
    pub fn kwargs(&self, prefix: &str) -> Result<Value, ApiError> {
        let f = |name: &str| format!("{prefix}{name}");
        check_id(&f("collection"), &self.collection)?;
        if self.collection.starts_with("system.") {
            return Err(ApiError::invalid(
                f("collection"),
                "system collections cannot be aggregated",
            ));
        }
        if let Some(r) = &self.report_id {
            check_id(&f("report_id"), r)?;
        }
        if self.pipeline.is_empty() || self.pipeline.len() > PIPELINE_STAGES_MAX {
            return Err(ApiError::invalid(
                f("pipeline"),
                format!("must hold 1 to {PIPELINE_STAGES_MAX} stages"),
            ));
        }
        for (i, stage) in self.pipeline.iter().enumerate() {
            let field = format!("{prefix}pipeline[{i}]");
            let Value::Object(m) = stage else {
                return Err(ApiError::invalid(field, "a stage must be an object"));
            };
            let mut keys = m.keys();
            let (Some(op), None) = (keys.next(), keys.next()) else {
                return Err(ApiError::invalid(
                    field,
                    "a stage must have exactly one key",
                ));
            };
            if !op.starts_with('$') {
                return Err(ApiError::invalid(
                    field,
                    format!("{op:?} is not a stage operator ($...)"),
                ));
            }
            if op == "$out" || op == "$merge" {
                return Err(ApiError::invalid(
                    field,
                    format!("{op} is not allowed: the task stores the result itself"),
                ));
            }
        }
        Ok(json!({
            "collection": self.collection,
            "pipeline": self.pipeline,
            "report_id": self.report_id,
        }))
    }
}

/// HTTP method of a webhook delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, ToSchema)]
pub enum WebhookMethod {
    #[default]
    POST,
    PUT,
}

/// Body of `POST /webhooks`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"url": "https://hooks.example.com/maestro", "method": "POST", "payload": {"event": "done"}, "headers": {"X-Token": "abc"}}))]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where to deliver: an absolute http:// or https:// URL.
    pub url: String,
    /// POST (default) or PUT.
    #[serde(default)]
    pub method: WebhookMethod,
    /// The JSON body delivered.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Extra request headers.
    #[serde(default)]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
}

impl WebhookRequest {
    /// The task kwargs.
    pub fn kwargs(&self, prefix: &str) -> Result<Value, ApiError> {
        let f = |name: &str| format!("{prefix}{name}");
        if self.url.len() > URL_BYTES_MAX {
            return Err(ApiError::invalid(
                f("url"),
                format!("is longer than {URL_BYTES_MAX} bytes"),
            ));
        }
        let uri: Uri = self
            .url
            .parse()
            .map_err(|e| ApiError::invalid(f("url"), format!("is not a URL: {e}")))?;
        match (uri.scheme_str(), uri.host()) {
            (Some("http" | "https"), Some(h)) if !h.is_empty() => {}
            _ => {
                return Err(ApiError::invalid(
                    f("url"),
                    "must be an absolute http:// or https:// URL with a host",
                ));
            }
        }
        let headers = self.headers.clone().unwrap_or_default();
        if headers.len() > WEBHOOK_HEADERS_MAX {
            return Err(ApiError::invalid(
                f("headers"),
                format!("at most {WEBHOOK_HEADERS_MAX} headers"),
            ));
        }
        for (k, v) in &headers {
            let field = format!("{prefix}headers.{k}");
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| ApiError::invalid(&field, "is not a valid header name"))?;
            if maestro_tasks::catalogue::webhook::RESERVED_HEADERS.contains(&name.as_str()) {
                return Err(ApiError::invalid(
                    &field,
                    "is set by the delivery itself and cannot be given",
                ));
            }
            HeaderValue::from_str(v)
                .map_err(|_| ApiError::invalid(&field, "is not a valid header value"))?;
        }
        Ok(json!({
            "url": self.url,
            "method": self.method,
            "payload": self.payload,
            "headers": headers,
        }))
    }
}

/// Kind of a websocket notification (Maestro's notify types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifyType {
    Info,
    Success,
    Warning,
    Danger,
    Error,
}

/// Body of `POST /notify/ws`: a websocket (Centrifugo) message to a user's channel.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"owner_id": "u1", "title": "Report", "msg": "Report r1 is ready", "type": "success", "caller": ["reports"]}))]
#[serde(deny_unknown_fields)]
pub struct NotifyWsRequest {
    /// The user notified; the channel is `maestro-<owner_id>`.
    pub owner_id: String,
    pub title: String,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: NotifyType,
    /// Names of what raised the notification (`event.caller`).
    #[serde(default)]
    pub caller: Vec<String>,
}

impl NotifyWsRequest {
    /// The task kwargs: `{channel: "ws", owner_id, notify: {title, msg, type}, event: {caller}}`.
    pub fn kwargs(&self, prefix: &str) -> Result<Value, ApiError> {
        let f = |name: &str| format!("{prefix}{name}");
        check_id(&f("owner_id"), &self.owner_id)?;
        check_text(&f("title"), &self.title)?;
        check_text(&f("msg"), &self.msg)?;
        for (i, c) in self.caller.iter().enumerate() {
            check_text(&format!("{prefix}caller[{i}]"), c)?;
        }
        Ok(json!({
            "channel": "ws",
            "owner_id": self.owner_id,
            "notify": {"title": self.title, "msg": self.msg, "type": self.kind},
            "event": {"caller": self.caller},
        }))
    }
}

/// HTTP method of an audit record (Maestro's audit-app routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, ToSchema)]
pub enum AuditMethod {
    POST,
    PUT,
    PATCH,
    DELETE,
}

/// Body of `POST /notify/audit`: an audit record of one entity change.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"entity": "servers", "entity_id": "5f1c0a", "method": "PATCH", "user": "u1", "body": {"hostname": "web-1"}}))]
#[serde(deny_unknown_fields)]
pub struct NotifyAuditRequest {
    /// Entity kind (e.g. `servers`).
    pub entity: String,
    /// The entity's id.
    pub entity_id: String,
    /// What happened to it.
    pub method: AuditMethod,
    /// Who did it, if known.
    #[serde(default)]
    pub user: Option<String>,
    /// The whole entity.
    #[schema(value_type = Object)]
    pub body: Map<String, Value>,
}

impl NotifyAuditRequest {
    /// The task kwargs: `{channel: "audit", entity, entity_id, method, user, body}`.
    pub fn kwargs(&self, prefix: &str) -> Result<Value, ApiError> {
        let f = |name: &str| format!("{prefix}{name}");
        check_id(&f("entity"), &self.entity)?;
        check_id(&f("entity_id"), &self.entity_id)?;
        if let Some(u) = &self.user {
            check_id(&f("user"), u)?;
        }
        Ok(json!({
            "channel": "audit",
            "entity": self.entity,
            "entity_id": self.entity_id,
            "method": self.method,
            "user": self.user,
            "body": self.body,
        }))
    }
}

fn from_kwargs<T: serde::de::DeserializeOwned>(kwargs: &Value) -> Result<T, ApiError> {
    let text =
        serde_json::to_vec(kwargs).map_err(|e| ApiError::invalid("kwargs", e.to_string()))?;
    crate::body::parse::<T>(&text).map_err(|e| match e {
        ApiError::Invalid { field, reason } if field == "body" => {
            ApiError::invalid("kwargs", reason)
        }
        ApiError::Invalid { field, reason } => ApiError::invalid(format!("kwargs.{field}"), reason),
        other => other,
    })
}

/// For a catalogue task sent through `POST /tasks/{name}`: the checked (and normalised)
/// kwargs, as its own endpoint would make them; `None` for other tasks.
pub fn check_catalogue_kwargs(task: &str, kwargs: &Value) -> Result<Option<Value>, ApiError> {
    const P: &str = "kwargs.";
    let checked = match task {
        TASK_DISCOVERY_SCAN => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Scan {
                provider: String,
                conn_id: String,
                task: String,
            }
            let s: Scan = from_kwargs(kwargs)?;
            discovery_kwargs(&s.provider, &s.conn_id, &s.task).map_err(|e| match e {
                ApiError::Invalid { field, reason } => {
                    ApiError::invalid(format!("{P}{field}"), reason)
                }
                other => other,
            })?
        }
        TASK_REPORT_GENERAL | TASK_REPORT_PIVOT => {
            from_kwargs::<ReportRequest>(kwargs)?.kwargs(P)?
        }
        TASK_AGGREGATION => from_kwargs::<AggregationRequest>(kwargs)?.kwargs(P)?,
        TASK_WEBHOOK => from_kwargs::<WebhookRequest>(kwargs)?.kwargs(P)?,
        TASK_NOTIFY => match kwargs.get("channel").and_then(Value::as_str) {
            Some("ws") => {
                let mut k = kwargs.clone();
                let m = k
                    .as_object_mut()
                    .ok_or_else(|| ApiError::invalid("kwargs", "must be an object"))?;
                m.remove("channel");
                // Accept the stored shape back: {owner_id, notify: {title,msg,type}, event: {caller}}.
                if let Some(Value::Object(n)) = m.remove("notify") {
                    m.extend(n);
                }
                if let Some(Value::Object(mut ev)) = m.remove("event")
                    && let Some(c) = ev.remove("caller")
                {
                    m.insert("caller".into(), c);
                }
                from_kwargs::<NotifyWsRequest>(&k)?.kwargs(P)?
            }
            Some("audit") => {
                let mut k = kwargs.clone();
                if let Some(m) = k.as_object_mut() {
                    m.remove("channel");
                }
                from_kwargs::<NotifyAuditRequest>(&k)?.kwargs(P)?
            }
            _ => {
                return Err(ApiError::invalid(
                    "kwargs.channel",
                    "must be \"ws\" or \"audit\"",
                ));
            }
        },
        _ => return Ok(None),
    };
    Ok(Some(checked))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn report_filters_accept_object_or_json_string() {
        let r = ReportRequest {
            report_id: "r1".into(),
            filters: Some(Value::String("{\"status\":\"active\"}".into())),
            component: "servers".into(),
            owner_user: "u1".into(),
        };
        assert_eq!(
            r.kwargs("").expect("valid")["filters"],
            json!({"status": "active"})
        );
        let bad = ReportRequest {
            filters: Some(json!("[1]")),
            ..r.clone()
        };
        assert_eq!(field(bad.kwargs("").expect_err("array")), "filters");
        let bad = ReportRequest {
            filters: Some(json!(3)),
            ..r
        };
        assert_eq!(field(bad.kwargs("").expect_err("number")), "filters");
    }

    #[test]
    fn aggregation_stages() {
        let a = |p: Value| AggregationRequest {
            collection: "servers".into(),
            pipeline: serde_json::from_value(p).expect("array"),
            report_id: None,
        };
        assert!(a(json!([{"$match": {}}])).kwargs("").is_ok());
        assert_eq!(
            field(a(json!([])).kwargs("").expect_err("empty")),
            "pipeline"
        );
        assert_eq!(
            field(
                a(json!([{"$match": {}}, {"a": 1}]))
                    .kwargs("")
                    .expect_err("op")
            ),
            "pipeline[1]"
        );
        assert_eq!(
            field(a(json!([{"$out": "x"}])).kwargs("").expect_err("out")),
            "pipeline[0]"
        );
        assert_eq!(
            field(a(json!([1])).kwargs("").expect_err("number")),
            "pipeline[0]"
        );
    }

    #[test]
    fn webhook_urls_and_headers() {
        let w = |url: &str| WebhookRequest {
            url: url.into(),
            method: WebhookMethod::PUT,
            payload: json!({"a": 1}),
            headers: None,
        };
        assert!(w("https://example.com/hook").kwargs("").is_ok());
        assert_eq!(field(w("ftp://x/y").kwargs("").expect_err("ftp")), "url");
        assert_eq!(
            field(w("/relative").kwargs("").expect_err("relative")),
            "url"
        );
        let mut h = w("http://h/");
        let mut forged = w("https://example.com/hook");
        forged.headers = Some([("X-Maestro-Signature".to_owned(), "x".to_owned())].into());
        assert_eq!(
            field(forged.kwargs("").expect_err("reserved")),
            "headers.X-Maestro-Signature"
        );
        h.headers = Some([("bad header".to_owned(), "v".to_owned())].into());
        assert_eq!(
            field(h.kwargs("").expect_err("header")),
            "headers.bad header"
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
        assert_eq!(field(e), "kwargs.component");
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
    }
}
