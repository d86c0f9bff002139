//! `maestro.webhook(url, method="POST", payload=None, headers=None)`: one JSON delivery to a
//! receiver, signed, with the headers a receiver verifies and deduplicates on.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};
use maestro_tasks::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::check::null_as_default;

/// Longest URL accepted, bytes.
pub const URL_BYTES_MAX: usize = 2048;
/// Most extra headers accepted.
pub const HEADERS_MAX: usize = 32;

/// The header carrying the body's HMAC-SHA256: `sha256=<lowercase hex>`.
pub const SIGNATURE_HEADER: &str = "x-maestro-signature";
/// The header carrying the task id, the same on every attempt (receivers deduplicate on it).
pub const DELIVERY_HEADER: &str = "x-maestro-delivery";
/// The header carrying the attempt number, 1 for the first.
pub const ATTEMPT_HEADER: &str = "x-maestro-attempt";

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

/// HTTP method of a webhook delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WebhookMethod {
    #[default]
    POST,
    PUT,
}

impl WebhookMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::POST => "POST",
            Self::PUT => "PUT",
        }
    }
}

/// The request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"url": "https://hooks.example.com/maestro", "method": "POST", "payload": {"event": "done"}, "headers": {"X-Token": "abc"}})))]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where to deliver: an absolute http:// or https:// URL.
    pub url: String,
    /// POST (default) or PUT.
    #[serde(default, deserialize_with = "null_as_default")]
    pub method: WebhookMethod,
    /// The JSON body delivered.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Value,
    /// Extra request headers; a `content-type` among them replaces `application/json`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub headers: BTreeMap<String, String>,
}

/// The task's call binds to the request: `#[args] req: WebhookRequest` in a `#[task]`.
impl maestro_tasks::CallArgs for WebhookRequest {
    const PARAMETERS: &'static [&'static str] = &WebhookRequest::PARAMS;
}

impl WebhookRequest {
    /// A call's arguments as results, `inspect active` and events show them: header values
    /// `***` (they are often tokens), the URL without its user, query and fragment; given by
    /// name or by position (`url, method, payload, headers`).
    pub fn shown_arguments(args: &Value, kwargs: &Value) -> (Value, Value) {
        fn hide_url(url: Option<&mut Value>) {
            if let Some(Value::String(u)) = url {
                *u = maestro_broker::connection::redact(u);
            }
        }
        fn hide_headers(headers: Option<&mut Value>) {
            if let Some(Value::Object(h)) = headers {
                for v in h.values_mut() {
                    *v = Value::String("***".into());
                }
            }
        }
        let (mut args, mut kwargs) = (args.clone(), kwargs.clone());
        if let Value::Array(a) = &mut args {
            hide_url(a.get_mut(0));
            hide_headers(a.get_mut(3));
        }
        if let Value::Object(k) = &mut kwargs {
            hide_url(k.get_mut("url"));
            hide_headers(k.get_mut("headers"));
        }
        (args, kwargs)
    }

    /// The task's parameters, in order.
    pub const PARAMS: [&'static str; 4] = ["url", "method", "payload", "headers"];

    /// The URL, parsed and checked.
    pub fn parsed_url(&self) -> Result<url::Url, FieldError> {
        if self.url.len() > URL_BYTES_MAX {
            return Err(FieldError::value(
                "url",
                format!("is longer than {URL_BYTES_MAX} bytes"),
            ));
        }
        let url = url::Url::parse(&self.url)
            .map_err(|e| FieldError::value("url", format!("is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(FieldError::value(
                "url",
                "must be an absolute http:// or https:// URL with a host",
            ));
        }
        Ok(url)
    }

    /// The extra headers, checked. Values are never echoed in errors: they may be credentials.
    pub fn parsed_headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, FieldError> {
        if self.headers.len() > HEADERS_MAX {
            return Err(FieldError::value(
                "headers",
                format!("holds more than {HEADERS_MAX} headers"),
            ));
        }
        self.headers
            .iter()
            .map(|(k, v)| {
                let field = format!("headers.{k}");
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| FieldError::value(&field, "is not a valid header name"))?;
                if RESERVED_HEADERS.contains(&name.as_str()) {
                    return Err(FieldError::value(
                        &field,
                        "is set by the delivery itself and cannot be given",
                    ));
                }
                let value = HeaderValue::from_str(v)
                    .map_err(|_| FieldError::value(&field, "is not a valid header value"))?;
                Ok((name, value))
            })
            .collect()
    }

    /// Checks the URL and the headers.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.parsed_url()?;
        self.parsed_headers().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_arguments_hide_header_values_and_url_secrets() {
        let (a, k) = WebhookRequest::shown_arguments(
            &json!(["https://u:p@h/x?token=t", "POST", {}, {"Authorization": "Bearer s"}]),
            &json!({"url": "https://h/y?key=k#f", "headers": {"X-Api-Key": "k1"}, "payload": {"a": 1}}),
        );
        let text = format!("{a}{k}");
        for secret in ["Bearer s", "token=t", "u:p@", "k1", "key=k"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(k["headers"]["X-Api-Key"], "***");
        assert_eq!(a[3]["Authorization"], "***");
        assert_eq!(k["payload"], json!({"a": 1}));
    }
    use serde_json::json;

    fn w(url: &str) -> WebhookRequest {
        WebhookRequest {
            url: url.into(),
            method: WebhookMethod::PUT,
            payload: json!({"a": 1}),
            headers: BTreeMap::new(),
        }
    }

    fn field(r: &WebhookRequest) -> String {
        r.validate().expect_err("refused").field
    }

    #[test]
    fn webhook_urls_and_headers() {
        assert!(w("https://example.com/hook").validate().is_ok());
        assert_eq!(field(&w("ftp://x/y")), "url");
        assert_eq!(field(&w("/relative")), "url");
        assert_eq!(
            field(&w(&format!("http://h/{}", "a".repeat(URL_BYTES_MAX)))),
            "url"
        );
        let mut forged = w("https://example.com/hook");
        forged.headers = [("X-Maestro-Signature".to_owned(), "x".to_owned())].into();
        assert_eq!(field(&forged), "headers.X-Maestro-Signature");
        let mut h = w("http://h/");
        h.headers = [("bad header".to_owned(), "v".to_owned())].into();
        assert_eq!(field(&h), "headers.bad header");
        h.headers = (0..=HEADERS_MAX)
            .map(|i| (format!("x-{i}"), "v".to_owned()))
            .collect();
        assert_eq!(field(&h), "headers");
    }

    #[test]
    fn null_method_and_headers_mean_the_defaults() {
        let r: WebhookRequest =
            serde_json::from_value(json!({"url": "http://h/", "method": null, "headers": null}))
                .expect("valid");
        assert_eq!(r.method, WebhookMethod::POST);
        assert!(r.headers.is_empty());
    }
}
