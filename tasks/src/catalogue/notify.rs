//! `maestro.notify(channel, ...)` (queue `notify`): Maestro's notifications, each its own task
//! so that other tasks send it as a follow-up ([`ws_notification`], [`audit_record`]) and its
//! failures never touch their results.
//!
//! - `channel="ws"`, `owner_id`, `notify={title, msg, type}`, `event={caller: [...]}`: a
//!   Centrifugo HTTP API publish, as Maestro's websocket-app took it:
//!   `POST <MAESTRO_WEBSOCKET_URI>/api`, `Authorization: apikey <MAESTRO_WEBSOCKET_SECRET>`,
//!   `{"method": "publish", "params": {"channel": "maestro-<owner_id>", "data": {notify, event}}}`.
//! - `channel="audit"`, `entity`, `entity_id`, `method` (POST|PUT|PATCH|DELETE), `user`?,
//!   `body`: `<method> <MAESTRO_AUDIT_URI>/audit/<entity>/<entity_id>[/<user>]` with `body`.
//!
//! Retries as webhooks do (`delivery`: 5xx, 429, network errors; backoff with jitter through the
//! broker). When the channel's service is not configured the task succeeds with
//! `{"skipped": "<VARIABLE> unset"}` and says so once per worker in the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use maestro_broker::Signature;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use super::Services;
use super::delivery::{self, Class, DELIVERY_MAX_RETRIES};
use crate::args::TaskArgs;
use crate::context::TaskContext;
use crate::error::TaskError;
use crate::task::{Task, TaskFuture};

/// The task's name.
pub const TASK_NAME: &str = crate::routes::TASK_NOTIFY;
/// The queue it goes to by default.
pub const QUEUE: &str = crate::routes::QUEUE_NOTIFY;
/// Longest identifier (owner, entity, entity id, user), bytes, as the API.
pub const ID_BYTES_MAX: usize = 128;
/// Longest title, message or caller name, bytes, as the API.
pub const TEXT_BYTES_MAX: usize = 4096;
/// Maestro's notification kinds.
pub const NOTIFY_TYPES: [&str; 5] = ["info", "success", "warning", "danger", "error"];
/// Centrifugo's error code for its own internal errors (worth a retry); other codes are not.
const CENTRIFUGO_INTERNAL_ERROR: u64 = 100;

/// The signature of a websocket notification to `owner_id` (Maestro's shape), for
/// `ctx.send(...)` from other tasks. `kind` is one of [`NOTIFY_TYPES`]; `caller` names what
/// raised it. It goes to queue `notify`; `.with_option("queue", ...)` moves it.
pub fn ws_notification(
    owner_id: &str,
    title: &str,
    msg: &str,
    kind: &str,
    caller: &[&str],
) -> Signature {
    let mut sig = Signature::new(TASK_NAME, vec![]).with_option("queue", QUEUE.into());
    sig.kwargs = json!({
        "channel": "ws",
        "owner_id": owner_id,
        "notify": {"title": title, "msg": msg, "type": kind},
        "event": {"caller": caller},
    });
    sig
}

/// The signature of an audit record of `entity`/`entity_id` after `method` (POST, PUT, PATCH
/// or DELETE) by `user`, carrying the whole entity as `body`; queue `notify`.
pub fn audit_record(
    entity: &str,
    entity_id: &str,
    method: &str,
    user: Option<&str>,
    body: Map<String, Value>,
) -> Signature {
    let mut sig = Signature::new(TASK_NAME, vec![]).with_option("queue", QUEUE.into());
    sig.kwargs = json!({
        "channel": "audit",
        "entity": entity,
        "entity_id": entity_id,
        "method": method,
        "user": user,
        "body": body,
    });
    sig
}

/// A checked notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// A websocket message to user `owner_id`.
    Ws {
        owner_id: String,
        /// `{title, msg, type}`.
        notify: Value,
        /// `{caller: [...]}`.
        event: Value,
    },
    /// An audit record.
    Audit {
        entity: String,
        entity_id: String,
        method: Method,
        user: Option<String>,
        body: Map<String, Value>,
    },
}

/// Checks an identifier that becomes part of a channel name or URL path: 1..=`ID_BYTES_MAX`
/// bytes of ASCII letters, digits, `_`, `-`, `.`, and not `.` or `..`.
pub(crate) fn check_id(name: &str, v: &str) -> Result<(), TaskError> {
    let ok_chars = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if v.is_empty() || v.len() > ID_BYTES_MAX || !ok_chars || v == "." || v == ".." {
        return Err(TaskError::value_error(format!(
            "argument '{name}' must be 1 to {ID_BYTES_MAX} ASCII letters, digits, '_', '-' or '.'"
        )));
    }
    Ok(())
}

fn check_text(name: &str, v: &str) -> Result<(), TaskError> {
    if v.trim().is_empty() || v.len() > TEXT_BYTES_MAX {
        return Err(TaskError::value_error(format!(
            "argument '{name}' must be non-blank and at most {TEXT_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

fn text_field(obj: &Map<String, Value>, parent: &str, key: &str) -> Result<String, TaskError> {
    let name = format!("{parent}.{key}");
    let v = obj
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| TaskError::type_error(format!("argument '{name}' must be a string")))?;
    check_text(&name, v)?;
    Ok(v.to_owned())
}

impl Notification {
    /// Reads and checks the kwargs (keywords only: the two channels take different ones).
    pub fn from_args(args: &TaskArgs) -> Result<Self, TaskError> {
        let channel: String = args.require(0, "channel")?;
        match channel.as_str() {
            "ws" => Self::ws(args),
            "audit" => Self::audit(args),
            other => Err(TaskError::value_error(format!(
                "argument 'channel' must be \"ws\" or \"audit\", got {other:?}"
            ))),
        }
    }

    fn ws(args: &TaskArgs) -> Result<Self, TaskError> {
        let owner_id: String = args.require(1, "owner_id")?;
        check_id("owner_id", &owner_id)?;
        let notify: Map<String, Value> = args.require(2, "notify")?;
        let title = text_field(&notify, "notify", "title")?;
        let msg = text_field(&notify, "notify", "msg")?;
        let kind = notify
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| TaskError::type_error("argument 'notify.type' must be a string"))?;
        if !NOTIFY_TYPES.contains(&kind) {
            return Err(TaskError::value_error(format!(
                "argument 'notify.type' must be one of {}, got {kind:?}",
                NOTIFY_TYPES.join(", ")
            )));
        }
        let event: Option<Map<String, Value>> = args.get(3, "event")?;
        let caller = match event.as_ref().and_then(|e| e.get("caller")) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut names = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let name = format!("event.caller[{i}]");
                    let s = item.as_str().ok_or_else(|| {
                        TaskError::type_error(format!("argument '{name}' must be a string"))
                    })?;
                    check_text(&name, s)?;
                    names.push(Value::String(s.to_owned()));
                }
                names
            }
            Some(_) => {
                return Err(TaskError::type_error(
                    "argument 'event.caller' must be a list of strings",
                ));
            }
        };
        Ok(Notification::Ws {
            owner_id,
            notify: json!({"title": title, "msg": msg, "type": kind}),
            event: json!({"caller": caller}),
        })
    }

    fn audit(args: &TaskArgs) -> Result<Self, TaskError> {
        let entity: String = args.require(1, "entity")?;
        check_id("entity", &entity)?;
        let entity_id: String = args.require(2, "entity_id")?;
        check_id("entity_id", &entity_id)?;
        let method: String = args.require(3, "method")?;
        let method = match method.as_str() {
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            other => {
                return Err(TaskError::value_error(format!(
                    "argument 'method' must be POST, PUT, PATCH or DELETE, got {other:?}"
                )));
            }
        };
        let user: Option<String> = args.get::<Option<String>>(4, "user")?.flatten();
        if let Some(u) = &user {
            check_id("user", u)?;
        }
        let body: Map<String, Value> = args.require(5, "body")?;
        Ok(Notification::Audit {
            entity,
            entity_id,
            method,
            user,
            body,
        })
    }
}

/// The `maestro.notify` task.
pub struct Notify {
    svc: Arc<Services>,
    /// Whether "websocket skipped" / "audit skipped" were logged already.
    ws_skip_logged: AtomicBool,
    audit_skip_logged: AtomicBool,
}

impl Notify {
    /// The task over the worker's shared services.
    pub fn new(svc: Arc<Services>) -> Self {
        Self {
            svc,
            ws_skip_logged: AtomicBool::new(false),
            audit_skip_logged: AtomicBool::new(false),
        }
    }

    fn skipped(&self, logged: &AtomicBool, variable: &str, channel: &str) -> Value {
        if !logged.swap(true, Ordering::Relaxed) {
            info!(event = "notify_skipped", channel, reason = %format!("{variable} unset"),
                "notifications of this channel are skipped while {variable} is unset");
        }
        json!({"skipped": format!("{variable} unset")})
    }

    async fn publish(&self, ctx: &TaskContext, n: Notification) -> Result<Value, TaskError> {
        let timeout = Duration::from_secs(self.svc.cfg.http_timeout_secs.max(1));
        let (what, request, channel) = match n {
            Notification::Ws {
                owner_id,
                notify,
                event,
            } => {
                let Some(base) = self.svc.cfg.websocket_uri.as_deref() else {
                    return Ok(self.skipped(&self.ws_skip_logged, "MAESTRO_WEBSOCKET_URI", "ws"));
                };
                let url = endpoint(base, "MAESTRO_WEBSOCKET_URI", &["api"])?;
                let channel = format!("maestro-{owner_id}");
                let body = json!({"method": "publish", "params": {
                    "channel": channel, "data": {"notify": notify, "event": event}}});
                let mut req = self.svc.http.post(url.clone()).json(&body);
                if let Some(secret) = self.svc.cfg.websocket_secret.as_deref() {
                    let mut auth =
                        HeaderValue::from_str(&format!("apikey {secret}")).map_err(|_| {
                            TaskError::fail(
                                "ValueError",
                                "MAESTRO_WEBSOCKET_SECRET is not a valid header value",
                            )
                        })?;
                    auth.set_sensitive(true);
                    req = req.header(AUTHORIZATION, auth);
                }
                let what = format!("websocket publish to {}", delivery::redacted(&url));
                (what, req, channel)
            }
            Notification::Audit {
                entity,
                entity_id,
                method,
                user,
                body,
            } => {
                let Some(base) = self.svc.cfg.audit_uri.as_deref() else {
                    return Ok(self.skipped(&self.audit_skip_logged, "MAESTRO_AUDIT_URI", "audit"));
                };
                let mut path = vec!["audit", entity.as_str(), entity_id.as_str()];
                if let Some(u) = user.as_deref() {
                    path.push(u);
                }
                let url = endpoint(base, "MAESTRO_AUDIT_URI", &path)?;
                let what = format!("audit {method} {}", delivery::redacted(&url));
                let req = self.svc.http.request(method, url).json(&body);
                (what, req, format!("audit/{entity}"))
            }
        };
        let answer = delivery::send(ctx, request.timeout(timeout)).await?;
        let attempt = ctx.retries + 1;
        let duration_ms = answer.duration.as_millis() as u64;
        if answer.class() == Class::Delivered
            && let Some((code, message)) = centrifugo_error(&answer)
        {
            let cause = format!("Centrifugo error {code}: {message}");
            let retryable = code == CENTRIFUGO_INTERNAL_ERROR;
            warn!(event = "notify_not_delivered", id = %ctx.id, channel = %channel,
                cause = %cause, retryable, attempt, duration_ms);
            return Err(if !retryable {
                TaskError::fail("RuntimeError", format!("{what}: {cause} (not retried)"))
            } else if ctx.retries >= DELIVERY_MAX_RETRIES {
                TaskError::fail(
                    "RuntimeError",
                    format!("{what} failed after {attempt} attempts; last: {cause}"),
                )
            } else {
                TaskError::retry_in(
                    delivery::backoff(ctx.retries, fastrand::f64()),
                    "RuntimeError",
                    format!("{what}: {cause}"),
                )
            });
        }
        match answer.class() {
            Class::Delivered => {
                let status = answer.status().unwrap_or_default();
                info!(event = "notify_delivered", id = %ctx.id, channel = %channel, status,
                    attempt, duration_ms);
                Ok(json!({"channel": channel, "status": status, "attempts": attempt}))
            }
            class => {
                warn!(event = "notify_not_delivered", id = %ctx.id, channel = %channel,
                    cause = %answer.describe(), retryable = class == Class::Retryable, attempt,
                    duration_ms);
                Err(delivery::not_delivered(ctx, &what, &answer))
            }
        }
    }
}

/// `base` (an http(s) URL from the settings) with `segments` appended, each percent-encoded.
fn endpoint(base: &str, variable: &str, segments: &[&str]) -> Result<Url, TaskError> {
    let bad = |why: &str| TaskError::fail("ValueError", format!("{variable}: {why}"));
    let mut url = Url::parse(base).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http:// or https:// URL"));
    }
    url.path_segments_mut()
        .map_err(|_| bad("cannot take a path"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Centrifugo answers API errors with 200 and `{"error": {"code", "message"}}`.
fn centrifugo_error(answer: &delivery::Answer) -> Option<(u64, String)> {
    let (_, body) = answer.outcome.as_ref().ok()?;
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    let code = e.get("code")?.as_u64()?;
    let message = e.get("message").and_then(Value::as_str).unwrap_or_default();
    Some((code, message.to_owned()))
}

impl Task for Notify {
    fn name(&self) -> &str {
        TASK_NAME
    }

    fn max_retries(&self) -> Option<u32> {
        Some(DELIVERY_MAX_RETRIES)
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext, args: &'a TaskArgs) -> TaskFuture<'a> {
        Box::pin(async move {
            let n = Notification::from_args(args)?;
            self.publish(ctx, n).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sig: &Signature) -> Result<Notification, TaskError> {
        Notification::from_args(&TaskArgs::from_values(&json!([]), &sig.kwargs).expect("json"))
    }

    fn parse_kwargs(kwargs: Value) -> Result<Notification, TaskError> {
        Notification::from_args(&TaskArgs::from_values(&json!([]), &kwargs).expect("json"))
    }

    #[test]
    fn helpers_make_what_the_task_reads() {
        let sig = ws_notification("u1", "Report", "ready", "success", &["reports"]);
        assert_eq!(sig.task, "maestro.notify");
        assert_eq!(sig.option_str("queue"), Some("notify"));
        assert_eq!(
            parse(&sig).expect("valid"),
            Notification::Ws {
                owner_id: "u1".into(),
                notify: json!({"title": "Report", "msg": "ready", "type": "success"}),
                event: json!({"caller": ["reports"]}),
            }
        );
        let body: Map<String, Value> = [("hostname".to_owned(), json!("web-1"))]
            .into_iter()
            .collect();
        let sig = audit_record("servers", "5f1c", "PATCH", Some("u1"), body.clone());
        match parse(&sig).expect("valid") {
            Notification::Audit {
                entity,
                entity_id,
                method,
                user,
                body: b,
            } => {
                assert_eq!((entity.as_str(), entity_id.as_str()), ("servers", "5f1c"));
                assert_eq!(method, Method::PATCH);
                assert_eq!(user.as_deref(), Some("u1"));
                assert_eq!(b, body);
            }
            other => panic!("{other:?}"),
        }
        let sig = audit_record("servers", "5f1c", "DELETE", None, Map::new());
        assert!(matches!(
            parse(&sig),
            Ok(Notification::Audit { user: None, .. })
        ));
    }

    #[test]
    fn bad_kwargs_name_the_argument() {
        let err = |k: Value| parse_kwargs(k).expect_err("invalid").to_string();
        assert!(err(json!({})).contains("'channel'"));
        let e = err(json!({"channel": "sms"}));
        assert!(e.contains("'channel'") && e.contains("sms"), "{e}");
        let ws = |owner: &str, kind: &str| {
            json!({"channel": "ws", "owner_id": owner,
                   "notify": {"title": "t", "msg": "m", "type": kind}, "event": {"caller": []}})
        };
        assert!(parse_kwargs(ws("u1", "info")).is_ok());
        assert!(err(ws("a/b", "info")).contains("'owner_id'"));
        assert!(err(ws("..", "info")).contains("'owner_id'"));
        assert!(err(ws("u1", "loud")).contains("'notify.type'"));
        assert!(
            err(
                json!({"channel": "ws", "owner_id": "u", "notify": {"title": " ", "msg": "m",
                "type": "info"}})
            )
            .contains("'notify.title'")
        );
        assert!(
            err(
                json!({"channel": "ws", "owner_id": "u", "notify": {"title": "t", "msg": "m",
                "type": "info"}, "event": {"caller": "x"}})
            )
            .contains("'event.caller'")
        );
        let audit = |method: &str| {
            json!({"channel": "audit", "entity": "servers", "entity_id": "1",
                   "method": method, "body": {}})
        };
        assert!(parse_kwargs(audit("DELETE")).is_ok());
        assert!(err(audit("GET")).contains("'method'"));
        assert!(
            err(
                json!({"channel": "audit", "entity": "servers", "entity_id": "1",
                "method": "PUT"})
            )
            .contains("'body'")
        );
    }

    #[test]
    fn endpoints_append_encoded_segments() {
        let u = endpoint("http://h:8000", "V", &["api"]).expect("url");
        assert_eq!(u.as_str(), "http://h:8000/api");
        let u = endpoint("http://h/base/", "V", &["audit", "servers", "1"]).expect("url");
        assert_eq!(u.as_str(), "http://h/base/audit/servers/1");
        assert!(endpoint("ftp://h", "V", &["api"]).is_err());
        assert!(endpoint("not a url", "V", &["api"]).is_err());
    }
}
