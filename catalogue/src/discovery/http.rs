//! What every provider's HTTP calls share: one answer read whole within a size limit (the
//! `Retry-After` it asked for kept), reqwest's errors without the URL, and the backoff of a
//! request's own retries. Each provider classifies the answers it gets.

use std::time::Duration;

use std::future::Future;

use backon::{ExponentialBuilder, Retryable};

use super::provider::ProviderError;

/// Largest provider answer read, in bytes; a bigger one is an error rather than unbounded
/// memory.
pub const RESPONSE_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Longest retry delay a `Retry-After` may ask for; longer is cut to this.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);
/// Attempts of one request that meets throttling or a 5xx before the scan task's own retry
/// takes over.
pub const REQUEST_ATTEMPTS: usize = 3;

/// The backoff between a request's [`REQUEST_ATTEMPTS`]: 0.5 s doubled, at most 8 s, jittered.
pub fn request_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(8))
        .with_max_times(REQUEST_ATTEMPTS - 1)
        .with_jitter()
}

/// Longest `Retry-After` waited for within one request's attempts; a longer one ends them and
/// the scan task's retry waits for it instead.
pub const RETRY_HERE_MAX: Duration = Duration::from_secs(30);

/// `attempt` tried up to [`REQUEST_ATTEMPTS`] times while it meets throttling, a 5xx or the
/// network ([`ProviderError::Transient`]), waiting a short `Retry-After` when the answer gave
/// one, else [`request_backoff`]. These retries come before the scan's own, which would start
/// the whole listing over.
pub async fn retried<T, F, Fut>(attempt: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    attempt
        .retry(request_backoff())
        .when(|e| matches!(e, ProviderError::Transient { .. }))
        // (`pause` is `None` once the attempts are spent: that stays so.)
        .adjust(|e, pause| match (e, pause) {
            (_, None) => None,
            (
                ProviderError::Transient {
                    retry_after: Some(after),
                    ..
                },
                Some(_),
            ) => (*after <= RETRY_HERE_MAX).then_some(*after),
            (_, pause) => pause,
        })
        .await
}

/// One answer, read whole. Its Debug shows the status only: headers and body may carry a
/// token (Keystone's `X-Subject-Token`).
pub struct Answer {
    pub status: reqwest::StatusCode,
    /// The `Retry-After` in seconds, cut to [`RETRY_AFTER_MAX`].
    pub retry_after: Option<Duration>,
    /// The answer's headers (Keystone gives its token in `X-Subject-Token`).
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Sends `req` and reads its answer, piece by piece, up to [`RESPONSE_BYTES_MAX`] (an answer
/// without a length stops at the limit, not after it). Network errors are transient; `who`
/// names the service in messages (`AWS`, `DigitalOcean`).
pub async fn fetch(who: &str, req: reqwest::RequestBuilder) -> Result<Answer, ProviderError> {
    let transient = |what: &str, e: &reqwest::Error| ProviderError::Transient {
        message: format!("{who} {what}: {}", without_url(e)),
        retry_after: None,
    };
    let mut resp = req.send().await.map_err(|e| {
        // The guarded client refused every address of the host: the connection's to mend,
        // and the address is not named (a tenant learns nothing of the network).
        if crate::egress::refusal_in(&e).is_some() {
            ProviderError::Auth(format!(
                "{who}: destination refused: the host is not at a public address (an operator may allow it in MAESTRO_EGRESS_ALLOW)"
            ))
        } else {
            transient("request failed", &e)
        }
    })?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s).min(RETRY_AFTER_MAX));
    let too_large = || {
        ProviderError::Invalid(format!(
            "{who} answer is larger than {RESPONSE_BYTES_MAX} bytes"
        ))
    };
    if resp
        .content_length()
        .is_some_and(|n| n > RESPONSE_BYTES_MAX as u64)
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transient("answer not read", &e))?
    {
        if bytes.len() + chunk.len() > RESPONSE_BYTES_MAX {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    let headers = std::mem::take(resp.headers_mut());
    Ok(Answer {
        status,
        retry_after,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// reqwest's error text without the URL (it may carry a continuation token).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut first = true;
    while let Some(err) = source {
        if first {
            s.push_str(if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "connection failed"
            } else {
                "error"
            });
            first = false;
        } else {
            s.push_str(": ");
            s.push_str(&err.to_string());
        }
        source = err.source();
    }
    s
}
