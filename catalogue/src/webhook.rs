//! `maestro.webhook(url, method="POST", payload=None, headers=None)` (queue `webhook`):
//! delivers `payload` as a JSON body to `url`, signed, and retried through the broker's delay
//! queues while the receiver answers 5xx or 429 or cannot be reached (see `delivery`).
//!
//! Each attempt is recorded in `<MAESTRO_MONGO_DATABASE>.webhook_attempts`
//! `{task_id, attempt, url, method, status?, error?, duration_ms, at}`; a record that cannot
//! be written is logged and does not change the delivery's outcome. Header values, the
//! secret and the URL's query string are never logged or recorded.

use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{self, Document, doc};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::Services;
use crate::delivery::{self, Answer, Class, DELIVERY_MAX_RETRIES};
use maestro_contract::WebhookRequest;
use maestro_contract::webhook::{ATTEMPT_HEADER, DELIVERY_HEADER, SIGNATURE_HEADER, WebhookMethod};
use maestro_tasks::{TaskContext, TaskError, TaskResult, task};

/// The task's name.
pub const TASK_NAME: &str = maestro_contract::names::TASK_WEBHOOK;
/// The queue the API sends it to.
pub const QUEUE: &str = maestro_contract::names::QUEUE_WEBHOOK;
/// Collection (in the inventory database) of delivery attempts.
pub const ATTEMPTS_COLLECTION: &str = "webhook_attempts";
/// Longest wait for an attempt's record to be written; past it the record is given up.
pub const RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// One delivery, checked and ready to send.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub url: Url,
    pub method: Method,
    pub payload: Value,
    /// Extra headers, checked; a `content-type` among them replaces `application/json`.
    pub headers: HeaderMap,
}

impl Delivery {
    /// Checks the call (see `maestro_contract::webhook`).
    pub fn from_request(req: WebhookRequest) -> Result<Self, TaskError> {
        let url = req.parsed_url()?;
        let headers = req.parsed_headers()?.into_iter().collect();
        Ok(Self {
            url,
            method: match req.method {
                WebhookMethod::POST => Method::POST,
                WebhookMethod::PUT => Method::PUT,
            },
            payload: req.payload,
            headers,
        })
    }
}

/// `maestro.webhook(url, method="POST", payload=None, headers=None)`: see the module
/// documentation. Results, `inspect active` and events show the call without its header values
/// and the URL's secrets.
#[task(
    name = TASK_NAME,
    max_retries = DELIVERY_MAX_RETRIES,
    shown_arguments = WebhookRequest::shown_arguments
)]
pub async fn webhook(
    ctx: &TaskContext,
    #[state] svc: &Arc<Services>,
    #[args] req: WebhookRequest,
) -> TaskResult<Value> {
    let delivery = Delivery::from_request(req)?;
    Webhook { svc }.deliver(ctx, delivery).await
}

/// One run of `maestro.webhook`, over the worker's shared services.
struct Webhook<'a> {
    svc: &'a Services,
}

impl Webhook<'_> {
    async fn deliver(&self, ctx: &TaskContext, req: Delivery) -> Result<Value, TaskError> {
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
        self.svc
            .egress
            .check_url(&req.url)
            .map_err(|e| delivery::refused_error(&e))?;
        let request = self
            .svc
            .outbound
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

#[cfg(test)]
mod tests {
    use super::*;

    use maestro_contract::webhook::{HEADERS_MAX, URL_BYTES_MAX};
    use maestro_tasks::{CallArgs, TaskArgs};

    /// The call read as the task reads it: bound to `WebhookRequest`, then checked.
    fn parse(kwargs: Value) -> Result<Delivery, TaskError> {
        let args = TaskArgs::from_values(&json!([]), &kwargs).expect("json");
        Delivery::from_request(args.parse(WebhookRequest::PARAMETERS)?)
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
