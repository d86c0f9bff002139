//! `maestro.notify(channel, ...)` (queue `notify`): Maestro's notifications, each its own task
//! so that other tasks send it as a follow-up (`Notification::signature`, see
//! `maestro_contract::notify`) and its failures never touch their results.
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
//! `{"skipped": "<VARIABLE> unset"}` and says so once per worker in the log ([`SkipNotices`],
//! worker state).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use maestro_contract::Notification;
use maestro_contract::notify::{AuditRecord, WsNotification};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::Services;
use crate::delivery::{self, Class, DELIVERY_MAX_RETRIES};
use maestro_tasks::{TaskArgs, TaskContext, TaskError, TaskResult, task};

/// The task's name.
pub const TASK_NAME: &str = maestro_contract::names::TASK_NOTIFY;
/// The queue it goes to by default.
pub const QUEUE: &str = maestro_contract::names::QUEUE_NOTIFY;
/// Centrifugo's error code for its own internal errors (worth a retry); other codes are not.
const CENTRIFUGO_INTERNAL_ERROR: u64 = 100;

/// Whether "websocket skipped" / "audit skipped" were logged already: worker state, so that each
/// is said once per worker.
#[derive(Debug, Default)]
pub struct SkipNotices {
    ws: AtomicBool,
    audit: AtomicBool,
}

/// `maestro.notify(channel, ...)`: see the module documentation. Its parameters depend on the
/// channel, so it reads its call itself ([`Notification::from_args`]).
#[task(name = TASK_NAME, max_retries = DELIVERY_MAX_RETRIES)]
pub async fn notify(
    ctx: &TaskContext,
    #[state] svc: &Arc<Services>,
    #[state] skips: &SkipNotices,
    call: &TaskArgs,
) -> TaskResult<Value> {
    let n = Notification::from_args(call)?;
    Notify { svc, skips }.publish(ctx, n).await
}

/// One run of `maestro.notify`, over the worker's shared services.
struct Notify<'a> {
    svc: &'a Services,
    skips: &'a SkipNotices,
}

impl Notify<'_> {
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
            Notification::Ws(WsNotification {
                owner_id,
                notify: message,
                event,
            }) => {
                let Some(base) = self.svc.cfg.websocket_uri.as_deref() else {
                    return Ok(self.skipped(&self.skips.ws, "MAESTRO_WEBSOCKET_URI", "ws"));
                };
                let url = endpoint(base, "MAESTRO_WEBSOCKET_URI", &["api"])?;
                let channel = format!("maestro-{owner_id}");
                let body = json!({"method": "publish", "params": {
                    "channel": channel, "data": {"notify": message, "event": event}}});
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
            Notification::Audit(AuditRecord {
                entity,
                entity_id,
                method,
                user,
                body,
            }) => {
                let Some(base) = self.svc.cfg.audit_uri.as_deref() else {
                    return Ok(self.skipped(&self.skips.audit, "MAESTRO_AUDIT_URI", "audit"));
                };
                let mut path = vec!["audit", entity.as_str(), entity_id.as_str()];
                if let Some(u) = user.as_deref() {
                    path.push(u);
                }
                let url = endpoint(base, "MAESTRO_AUDIT_URI", &path)?;
                let what = format!("audit {} {}", method.as_str(), delivery::redacted(&url));
                let method = Method::from_bytes(method.as_str().as_bytes()).unwrap_or(Method::POST);
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
                    delivery::backoff(ctx.retries),
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

#[cfg(test)]
mod tests {
    use super::*;

    use maestro_broker::Signature;
    use maestro_contract::notify::{AuditMethod, NotifyType, ws_notification};
    use serde_json::Map;

    fn parse(sig: &Signature) -> Result<Notification, TaskError> {
        parse_kwargs(sig.kwargs.clone())
    }

    /// The call read as the task reads it.
    fn parse_kwargs(kwargs: Value) -> Result<Notification, TaskError> {
        let args = TaskArgs::from_values(&json!([]), &kwargs).expect("json");
        Notification::from_args(&args)
    }

    #[test]
    fn helpers_make_what_the_task_reads() {
        let n = ws_notification("u1", "Report", "ready", NotifyType::Success, &["reports"]);
        let sig = n.signature();
        assert_eq!(sig.task, "maestro.notify");
        assert_eq!(sig.option_str("queue"), Some("notify"));
        assert_eq!(parse(&sig).expect("valid"), n);
        assert_eq!(
            sig.kwargs,
            json!({"channel": "ws", "owner_id": "u1",
                "notify": {"title": "Report", "msg": "ready", "type": "success"},
                "event": {"caller": ["reports"]}})
        );
        let body: Map<String, Value> = [("hostname".to_owned(), json!("web-1"))]
            .into_iter()
            .collect();
        let audit = Notification::Audit(AuditRecord {
            entity: "servers".into(),
            entity_id: "5f1c".into(),
            method: AuditMethod::PATCH,
            user: Some("u1".into()),
            body: body.clone(),
        });
        assert_eq!(parse(&audit.signature()).expect("valid"), audit);
        let anonymous = Notification::Audit(AuditRecord {
            entity: "servers".into(),
            entity_id: "5f1c".into(),
            method: AuditMethod::DELETE,
            user: None,
            body: Map::new(),
        });
        assert!(matches!(
            parse(&anonymous.signature()),
            Ok(Notification::Audit(AuditRecord { user: None, .. }))
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
