//! One outgoing HTTP delivery, shared by `maestro.webhook` and `maestro.notify`: send once,
//! classify the answer, and say what happens next. A retry is a `TaskError::Retry` with a
//! computed countdown, so the wait happens in the broker's delay queues and never in a worker
//! slot; nothing here sleeps.
//!
//! Policy: 2xx is delivered; 5xx, 429 and network errors (refused, reset, timed out) are
//! retried with exponential backoff and jitter, at most [`DELIVERY_MAX_RETRIES`] times; any
//! other status (3xx not followed, 4xx) fails at once with the status in the error, and so does
//! a destination the egress policy refuses (`EgressRefused`, see [`crate::egress`]).

use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode, Url};
use sha2::Sha256;

use maestro_tasks::{TaskContext, TaskError};

/// Retries of one delivery after its first attempt (so `DELIVERY_MAX_RETRIES + 1` attempts in
/// all); the attempt after the last retry that still fails is a FAILURE naming the last cause.
pub const DELIVERY_MAX_RETRIES: u32 = 5;
/// Upper bound of one retry's delay, jitter and `Retry-After` included, seconds.
pub const BACKOFF_SECS_MAX: u64 = 300;
/// Most response body bytes read (and kept for inspection); the rest is not read.
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024;

/// `sha256=<hex>` of HMAC-SHA256 over `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> Result<String, TaskError> {
    // HMAC pads or hashes a key of any length; the error is for fixed-key MACs only.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .map_err(|e| TaskError::fail("RuntimeError", format!("HMAC key: {e}")))?;
    mac.update(body);
    Ok(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// The delay before retry number `retries + 1`: the project's one backoff (exponential from
/// one second, jitter), within [`BACKOFF_SECS_MAX`].
pub fn backoff(retries: u32) -> Duration {
    let max = Duration::from_secs(BACKOFF_SECS_MAX);
    maestro_tasks::retry_delay(Duration::from_secs(1), max, retries).min(max)
}

/// How an answer is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 2xx: done.
    Delivered,
    /// 5xx, 429, or no answer: try again later.
    Retryable,
    /// Anything else: retrying cannot help.
    Permanent,
}

/// The class of an HTTP status.
pub fn classify(status: StatusCode) -> Class {
    if status.is_success() {
        Class::Delivered
    } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Class::Retryable
    } else {
        Class::Permanent
    }
}

/// What one attempt got back.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The status and up to [`RESPONSE_BYTES_MAX`] of the body, or why there was no answer.
    pub(crate) outcome: Result<(StatusCode, Vec<u8>), String>,
    /// A `Retry-After: <seconds>` the server asked for.
    pub(crate) retry_after: Option<Duration>,
    pub(crate) duration: Duration,
}

impl Answer {
    /// The class of this answer (no answer is retryable).
    pub(crate) fn class(&self) -> Class {
        match &self.outcome {
            Ok((status, _)) => classify(*status),
            Err(_) => Class::Retryable,
        }
    }

    /// A short description for errors and logs: `HTTP 503 Service Unavailable` or the
    /// network error.
    pub(crate) fn describe(&self) -> String {
        match &self.outcome {
            Ok((status, _)) => format!("HTTP {status}"),
            Err(e) => e.clone(),
        }
    }

    pub(crate) fn status(&self) -> Option<u16> {
        self.outcome.as_ref().ok().map(|(s, _)| s.as_u16())
    }
}

/// Sends `req` once and reads up to [`RESPONSE_BYTES_MAX`] of the answer. Stops with
/// SoftTimeLimitExceeded when the task's soft time limit passes first.
pub(crate) async fn send(ctx: &TaskContext, req: RequestBuilder) -> Result<Answer, TaskError> {
    let started = Instant::now();
    let exchange = async {
        let resp = match req.send().await {
            Ok(resp) => resp,
            // The guarded client's resolver refused every address: retrying cannot help.
            Err(e) => match crate::egress::refusal_in(&e) {
                Some(refused) => return Err(Err(refused.clone())),
                None => return Err(Ok(error_text(&e))),
            },
        };
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let body = read_limited(resp).await;
        Ok((status, body, retry_after))
    };
    let result = tokio::select! {
        r = exchange => r,
        _ = ctx.soft_limit() => return Err(ctx.soft_limit_error()),
    };
    let result = match result {
        Err(Err(refused)) => return Err(refused_error(&refused)),
        Err(Ok(text)) => Err(text),
        Ok(answer) => Ok(answer),
    };
    let duration = started.elapsed();
    Ok(match result {
        Ok((status, body, retry_after)) => Answer {
            outcome: Ok((status, body)),
            retry_after,
            duration,
        },
        Err(e) => Answer {
            outcome: Err(e),
            retry_after: None,
            duration,
        },
    })
}

/// The FAILURE for a destination the egress policy refuses (never retried).
pub(crate) fn refused_error(refused: &crate::egress::EgressRefused) -> TaskError {
    TaskError::fail("EgressRefused", refused.to_string())
}

async fn read_limited(mut resp: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    // A body that breaks off after the status arrived does not change the verdict.
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = RESPONSE_BYTES_MAX - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= RESPONSE_BYTES_MAX {
            break;
        }
    }
    body
}

/// `Retry-After` in delta-seconds (the HTTP-date form is ignored: backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(BACKOFF_SECS_MAX)))
}

/// A reqwest error without its URL (a query string may hold a token), with its causes.
fn error_text(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let s = cause.to_string();
        if !text.ends_with(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = cause.source();
    }
    text
}

/// `url` as logs and error messages show it (see `maestro_broker::connection::redact`).
pub fn redacted(url: &Url) -> String {
    maestro_broker::connection::redact(url.as_str())
}

/// The error for an answer that was not delivered: a retry after backoff (or the server's
/// `Retry-After`, whichever is longer) while retries remain, else a FAILURE naming `what` and
/// the last cause. `attempt` is 1-based.
pub(crate) fn not_delivered(ctx: &TaskContext, what: &str, answer: &Answer) -> TaskError {
    let cause = answer.describe();
    match answer.class() {
        Class::Delivered => TaskError::fail(
            "RuntimeError",
            format!("{what}: {cause} was treated as not delivered"),
        ),
        Class::Permanent => TaskError::fail(
            "RuntimeError",
            format!("{what} answered {cause} (not retried)"),
        ),
        Class::Retryable if ctx.retries >= DELIVERY_MAX_RETRIES => TaskError::fail(
            "RuntimeError",
            format!(
                "{what} failed after {} attempts; last: {cause}",
                ctx.retries + 1
            ),
        ),
        Class::Retryable => {
            let mut wait = backoff(ctx.retries);
            if let Some(asked) = answer.retry_after {
                wait = wait.max(asked);
            }
            let exc_type = if answer.outcome.is_err() {
                "ConnectionError"
            } else {
                "RuntimeError"
            };
            TaskError::retry_in(wait, exc_type, format!("{what}: {cause}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_rfc_hmac_sha256_in_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?").expect("any key"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            signature(b"key", b"The quick brown fox jumps over the lazy dog").expect("any key"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        // Keys longer than a block are hashed first, not rejected.
        let long = signature(&[7u8; 200], b"{}").expect("any key");
        assert!(long.starts_with("sha256="), "{long}");
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_a_cap() {
        for (retries, base) in [(0, 1), (1, 2), (4, 16)] {
            let d = backoff(retries);
            let base = Duration::from_secs(base);
            assert!(d >= base && d <= base * 2, "{retries}: {d:?}");
        }
        assert_eq!(backoff(9), Duration::from_secs(BACKOFF_SECS_MAX));
        assert_eq!(backoff(200), Duration::from_secs(BACKOFF_SECS_MAX));
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(StatusCode::OK), Class::Delivered);
        assert_eq!(classify(StatusCode::NO_CONTENT), Class::Delivered);
        assert_eq!(
            classify(StatusCode::INTERNAL_SERVER_ERROR),
            Class::Retryable
        );
        assert_eq!(classify(StatusCode::BAD_GATEWAY), Class::Retryable);
        assert_eq!(classify(StatusCode::TOO_MANY_REQUESTS), Class::Retryable);
        assert_eq!(classify(StatusCode::NOT_FOUND), Class::Permanent);
        assert_eq!(classify(StatusCode::UNAUTHORIZED), Class::Permanent);
        assert_eq!(classify(StatusCode::FOUND), Class::Permanent);
    }

    fn answer(outcome: Result<(StatusCode, Vec<u8>), String>) -> Answer {
        Answer {
            outcome,
            retry_after: None,
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn retries_until_the_limit_then_fails_naming_the_cause() {
        let mut ctx = TaskContext::new("t", "n", "q", std::sync::Arc::from("w@h"));
        let a = answer(Ok((StatusCode::SERVICE_UNAVAILABLE, Vec::new())));
        match not_delivered(&ctx, "webhook POST http://h/", &a) {
            TaskError::Retry {
                countdown: Some(d), ..
            } => assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2)),
            other => panic!("expected a retry, got {other:?}"),
        }
        ctx.retries = DELIVERY_MAX_RETRIES;
        let err = not_delivered(&ctx, "webhook POST http://h/", &a);
        let text = err.to_string();
        assert!(matches!(err, TaskError::Fail { .. }), "{text}");
        assert!(
            text.contains("after 6 attempts") && text.contains("503"),
            "{text}"
        );

        ctx.retries = 0;
        let err = not_delivered(&ctx, "x", &answer(Ok((StatusCode::NOT_FOUND, Vec::new()))));
        assert!(matches!(err, TaskError::Fail { .. }));
        assert!(err.to_string().contains("404 Not Found"), "{err}");

        let mut slow = answer(Ok((StatusCode::TOO_MANY_REQUESTS, Vec::new())));
        slow.retry_after = Some(Duration::from_secs(30));
        match not_delivered(&ctx, "x", &slow) {
            TaskError::Retry {
                countdown: Some(d), ..
            } => assert_eq!(d, Duration::from_secs(30)),
            other => panic!("expected a retry, got {other:?}"),
        }
        let err = not_delivered(&ctx, "x", &answer(Err("timed out".into())));
        assert!(err.to_string().contains("ConnectionError"), "{err}");
    }

    #[test]
    fn redaction_drops_credentials_query_and_fragment() {
        let u = Url::parse("https://user:pw@h.example:8443/a/b?token=s3cret#f").expect("url");
        assert_eq!(redacted(&u), "https://user:***@h.example:8443/a/b");
    }
}
