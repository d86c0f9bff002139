//! `maestro.webhook(url, method="POST", payload=None, headers=None)` (queue `webhook`):
//! delivers `payload` as a JSON body to `url`, signed, and retried through the broker's delay
//! queues while the receiver answers 5xx or 429 or cannot be reached (see `delivery`).
//!
//! Each attempt is recorded in `<MAESTRO_MONGO_DATABASE>.webhook_attempts`
//! `{task_id, attempt, url, method, status?, error?, duration_ms, at}`; a record that cannot
//! be written is logged and does not change the delivery's outcome. Header values, the
//! secret and the URL's query string are never logged or recorded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{self, Document, doc};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::Services;
use super::delivery::{
    self, ATTEMPT_HEADER, Answer, Class, DELIVERY_HEADER, DELIVERY_MAX_RETRIES, SIGNATURE_HEADER,
};
use crate::args::TaskArgs;
use crate::context::TaskContext;
use crate::error::TaskError;
use crate::task::{Task, TaskFuture};

/// The task's name.
pub const TASK_NAME: &str = crate::routes::TASK_WEBHOOK;
/// The queue the API sends it to.
pub const QUEUE: &str = crate::routes::QUEUE_WEBHOOK;
/// Collection (in the inventory database) of delivery attempts.
pub const ATTEMPTS_COLLECTION: &str = "webhook_attempts";
/// Longest URL accepted, bytes (as the API).
pub const URL_BYTES_MAX: usize = 2048;
/// Most extra headers accepted (as the API).
pub const HEADERS_MAX: usize = 32;
/// Longest wait for an attempt's record to be written; past it the record is given up.
pub const RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// Headers a caller may not set: the delivery's own, and those that frame the request.
pub const RESERVED_HEADERS: [&str; 7] = [
    SIGNATURE_HEADER,
    DELIVERY_HEADER,
    ATTEMPT_HEADER,
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
];

/// One delivery's checked kwargs.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub url: Url,
    pub method: Method,
    pub payload: Value,
    /// Extra headers, checked; a `content-type` among them replaces `application/json`.
    pub headers: HeaderMap,
}

impl WebhookRequest {
    /// Reads and checks `url`, `method`, `payload`, `headers` (by position or keyword). A wrong
    /// type is a TypeError, a wrong value a ValueError; both name the argument.
    pub fn from_args(args: &TaskArgs) -> Result<Self, TaskError> {
        let url: String = args.require(0, "url")?;
        let method: Option<String> = args.get::<Option<String>>(1, "method")?.flatten();
        let payload: Option<Value> = args.get(2, "payload")?;
        let headers: Option<BTreeMap<String, String>> =
            args.get::<Option<_>>(3, "headers")?.flatten();

        if url.len() > URL_BYTES_MAX {
            return Err(TaskError::value_error(format!(
                "argument 'url' is longer than {URL_BYTES_MAX} bytes"
            )));
        }
        let url = Url::parse(&url)
            .map_err(|e| TaskError::value_error(format!("argument 'url' is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(TaskError::value_error(
                "argument 'url' must be an absolute http:// or https:// URL with a host",
            ));
        }
        let method = match method.as_deref() {
            None | Some("POST") => Method::POST,
            Some("PUT") => Method::PUT,
            Some(other) => {
                return Err(TaskError::value_error(format!(
                    "argument 'method' must be \"POST\" or \"PUT\", got {other:?}"
                )));
            }
        };
        let headers = headers.unwrap_or_default();
        if headers.len() > HEADERS_MAX {
            return Err(TaskError::value_error(format!(
                "argument 'headers' holds more than {HEADERS_MAX} headers"
            )));
        }
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                TaskError::value_error(format!("headers: {name:?} is not a valid header name"))
            })?;
            if RESERVED_HEADERS.contains(&header.as_str()) {
                return Err(TaskError::value_error(format!(
                    "headers: {name:?} is set by the delivery and cannot be given"
                )));
            }
            // The value is never echoed: it may be a credential.
            let value = HeaderValue::from_str(&value).map_err(|_| {
                TaskError::value_error(format!("headers: the value of {name:?} is not valid"))
            })?;
            map.insert(header, value);
        }
        Ok(Self {
            url,
            method,
            payload: payload.unwrap_or(Value::Null),
            headers: map,
        })
    }
}

/// The `maestro.webhook` task.
pub struct Webhook {
    svc: Arc<Services>,
}

impl Webhook {
    /// The task over the worker's shared services.
    pub fn new(svc: Arc<Services>) -> Self {
        Self { svc }
    }

    async fn deliver(&self, ctx: &TaskContext, req: WebhookRequest) -> Result<Value, TaskError> {
        let body = serde_json::to_vec(&req.payload)
            .map_err(|e| TaskError::value_error(format!("argument 'payload': {e}")))?;
        let attempt = ctx.retries + 1;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.extend(req.headers);
        let delivery_id = HeaderValue::from_str(&ctx.id)
            .map_err(|_| TaskError::value_error("the task id is not a valid header value"))?;
        headers.insert(DELIVERY_HEADER, delivery_id);
        headers.insert(ATTEMPT_HEADER, HeaderValue::from(attempt));
        if let Some(secret) = self.svc.cfg.webhook_secret.as_deref()
            && !secret.is_empty()
        {
            let sig = delivery::signature(secret.as_bytes(), &body)?;
            let value = HeaderValue::from_str(&sig)
                .map_err(|_| TaskError::fail("RuntimeError", "signature header"))?;
            headers.insert(SIGNATURE_HEADER, value);
        }
        let shown = delivery::redacted(&req.url);
        let what = format!("webhook {} {shown}", req.method);
        let request = self
            .svc
            .http
            .request(req.method.clone(), req.url.clone())
            .timeout(Duration::from_secs(self.svc.cfg.http_timeout_secs.max(1)))
            .headers(headers)
            .body(body);
        let answer = delivery::send(ctx, request).await?;
        self.record(ctx, attempt, &shown, &req.method, &answer)
            .await;
        let duration_ms = answer.duration.as_millis() as u64;
        match answer.class() {
            Class::Delivered => {
                let status = answer.status().unwrap_or_default();
                info!(event = "webhook_delivered", id = %ctx.id, url = %shown, method = %req.method,
                    status, attempt, duration_ms);
                Ok(json!({"status": status, "attempts": attempt}))
            }
            class => {
                warn!(event = "webhook_not_delivered", id = %ctx.id, url = %shown,
                    method = %req.method, status = answer.status(), cause = %answer.describe(),
                    retryable = class == Class::Retryable, attempt, duration_ms);
                Err(delivery::not_delivered(ctx, &what, &answer))
            }
        }
    }

    /// Writes the attempt's record; a failure is logged, never returned.
    async fn record(
        &self,
        ctx: &TaskContext,
        attempt: u32,
        url: &str,
        method: &Method,
        answer: &Answer,
    ) {
        let doc = attempt_record(ctx, attempt, url, method, answer);
        let attempts = self
            .svc
            .inventory
            .collection::<Document>(ATTEMPTS_COLLECTION);
        match tokio::time::timeout(RECORD_TIMEOUT, attempts.insert_one(doc)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                warn!(event = "webhook_attempt_not_recorded", id = %ctx.id, attempt, error = %e)
            }
            Err(_) => warn!(event = "webhook_attempt_not_recorded", id = %ctx.id, attempt,
                error = "timed out", timeout_secs = RECORD_TIMEOUT.as_secs()),
        }
    }
}

/// The `webhook_attempts` document of one attempt.
fn attempt_record(
    ctx: &TaskContext,
    attempt: u32,
    url: &str,
    method: &Method,
    answer: &Answer,
) -> Document {
    let mut doc = doc! {
        "task_id": &ctx.id,
        "attempt": i64::from(attempt),
        "url": url,
        "method": method.as_str(),
        "duration_ms": i64::try_from(answer.duration.as_millis()).unwrap_or(i64::MAX),
        "at": bson::DateTime::now(),
    };
    match &answer.outcome {
        Ok((status, _)) => {
            doc.insert("status", i32::from(status.as_u16()));
        }
        Err(e) => {
            doc.insert("error", e.as_str());
        }
    }
    doc
}

impl Task for Webhook {
    fn name(&self) -> &str {
        TASK_NAME
    }

    fn max_retries(&self) -> Option<u32> {
        Some(DELIVERY_MAX_RETRIES)
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext, args: &'a TaskArgs) -> TaskFuture<'a> {
        Box::pin(async move {
            let req = WebhookRequest::from_args(args)?;
            self.deliver(ctx, req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kwargs: Value) -> Result<WebhookRequest, TaskError> {
        WebhookRequest::from_args(&TaskArgs::from_values(&json!([]), &kwargs).expect("json"))
    }

    #[test]
    fn kwargs_as_the_api_sends_them() {
        let r = parse(json!({"url": "https://h.example/hook?x=1", "method": "PUT",
            "payload": {"a": [1, 2]}, "headers": {"X-Token": "abc"}}))
        .expect("valid");
        assert_eq!(r.method, Method::PUT);
        assert_eq!(r.url.as_str(), "https://h.example/hook?x=1");
        assert_eq!(r.payload, json!({"a": [1, 2]}));
        assert_eq!(
            r.headers.get("x-token").map(|v| v.as_bytes()),
            Some(&b"abc"[..])
        );

        let r = parse(json!({"url": "http://h/", "method": null, "headers": null})).expect("nulls");
        assert_eq!(r.method, Method::POST);
        let r = parse(json!({"url": "http://h/"})).expect("defaults");
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.payload, Value::Null);
        assert!(r.headers.is_empty());
    }

    #[test]
    fn bad_kwargs_name_the_argument() {
        let err = |k: Value| parse(k).expect_err("invalid").to_string();
        assert!(err(json!({})).contains("'url'"));
        assert!(err(json!({"url": 5})).contains("TypeError"));
        assert!(err(json!({"url": "ftp://h/x"})).contains("ValueError"));
        assert!(err(json!({"url": "not a url"})).contains("'url'"));
        assert!(err(json!({"url": "http://h/", "method": "GET"})).contains("'method'"));
        assert!(err(json!({"url": "http://h/", "headers": {"bad name": "v"}})).contains("name"));
        let e = err(json!({"url": "http://h/", "headers": {"X-Secret": "a\nb"}}));
        assert!(e.contains("X-Secret") && !e.contains("a\nb"), "{e}");
        assert!(
            err(json!({"url": "http://h/", "headers": {"X-Maestro-Signature": "forged"}}))
                .contains("set by the delivery")
        );
        let many: serde_json::Map<String, Value> = (0..=HEADERS_MAX)
            .map(|i| (format!("x-h{i}"), json!("v")))
            .collect();
        assert!(err(json!({"url": "http://h/", "headers": many})).contains("more than"));
        let long = format!("http://h/{}", "a".repeat(URL_BYTES_MAX));
        assert!(err(json!({"url": long})).contains("longer"));
    }

    #[test]
    fn attempt_records_hold_status_or_error() {
        let ctx = TaskContext::new("t1", TASK_NAME, QUEUE, Arc::from("w@h"));
        let ok = Answer {
            outcome: Ok((reqwest::StatusCode::OK, Vec::new())),
            retry_after: None,
            duration: Duration::from_millis(12),
        };
        let d = attempt_record(&ctx, 2, "http://h/x", &Method::POST, &ok);
        assert_eq!(d.get_str("task_id").ok(), Some("t1"));
        assert_eq!(d.get_i64("attempt").ok(), Some(2));
        assert_eq!(d.get_i32("status").ok(), Some(200));
        assert_eq!(d.get_i64("duration_ms").ok(), Some(12));
        assert!(!d.contains_key("error"));
        let failed = Answer {
            outcome: Err("timed out".into()),
            ..ok
        };
        let d = attempt_record(&ctx, 1, "http://h/x", &Method::PUT, &failed);
        assert_eq!(d.get_str("error").ok(), Some("timed out"));
        assert_eq!(d.get_str("method").ok(), Some("PUT"));
        assert!(!d.contains_key("status"));
    }
}
