//! `JsonBody<T>`: a JSON request body whose errors name the field. Not JSON: 400. Valid JSON of
//! the wrong shape (missing, unknown or wrongly typed field): 422 with the field's dotted path.
//! Over the body limit: 413. Not `application/json`: 415.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use maestro_tasks::field::{JsonError, from_json_slice, message_of};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A request body parsed as JSON into `T`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::MediaType(
                "the body must be JSON with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(e.body_text())
            } else {
                ApiError::MalformedJson {
                    reason: e.body_text(),
                }
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses `bytes` (a JSON object) into `T`, naming the field at fault.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would also build a struct from an array; a body must be an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Err(ApiError::invalid("body", "must be a JSON object")),
            Err(e) => Err(ApiError::MalformedJson {
                reason: message_of(&e),
            }),
        };
    }
    from_json_slice(bytes).map_err(|e| match e {
        JsonError::Malformed(reason) => ApiError::MalformedJson { reason },
        JsonError::Field(f) => f.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
    }

    fn field(e: ApiError) -> (u16, Option<String>) {
        (e.status().as_u16(), e.body().field)
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse::<Outer>(b"{").expect_err("eof");
        assert_eq!(field(e), (400, None));
        let e = parse::<Outer>(b"{\"name\": 1}").expect_err("type");
        assert_eq!(field(e), (422, Some("name".into())));
        let e = parse::<Outer>(b"{}").expect_err("missing");
        assert_eq!(field(e), (422, Some("name".into())));
        let e = parse::<Outer>(b"{\"name\":\"x\",\"zz\":1}").expect_err("unknown");
        assert_eq!(field(e), (422, Some("zz".into())));
        let e = parse::<Outer>(b"{\"name\":\"x\",\"inner\":{\"n\":-1}}").expect_err("range");
        assert_eq!(field(e), (422, Some("inner.n".into())));
        let e = parse::<Outer>(b"{\"name\":\"x\",\"inner\":{}}").expect_err("nested missing");
        assert_eq!(field(e), (422, Some("inner.n".into())));
        let e = parse::<Outer>(b"[1]").expect_err("not an object");
        assert_eq!(field(e), (422, Some("body".into())));
        let e = parse::<Outer>(b"{\"name\":\"x\"} trailing").expect_err("trailing");
        assert_eq!(field(e), (400, None));
        assert!(parse::<Outer>(b"{\"name\":\"x\",\"inner\":{\"n\":3}}").is_ok());
    }
}
