//! Shared helpers of the API's tests: configs, tokens, requests through the router in-process.

#![allow(dead_code, unreachable_pub)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use clap::Parser;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use maestro_api::{AppState, Cli, app};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const SECRET: &str = "test-secret";
pub const NOAUTH: &str = "test-noauth";

/// A router for `args` (flags after the binary name) with the test secret and noauth, and the
/// diagnostic tasks on unless `args` says otherwise (the tests send `maestro.echo`).
pub async fn router(args: &[&str]) -> Router {
    let mut argv = vec![
        "maestro-api".to_owned(),
        "--secret-jwt-private".into(),
        SECRET.into(),
        "--noauth".into(),
        NOAUTH.into(),
    ];
    if !args.contains(&"--enable-diagnostics") {
        argv.extend(["--enable-diagnostics".into(), "true".into()]);
    }
    argv.extend(args.iter().map(|s| (*s).to_owned()));
    let cfg = Cli::try_parse_from(argv)
        .expect("flags parse")
        .into_config()
        .expect("config is valid");
    app(AppState::new(cfg).await.expect("state"))
}

pub fn token_with(alg: Algorithm, secret: &str, claims: Value) -> String {
    encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encodes")
}

/// A valid `Authorization` header value.
pub fn auth() -> String {
    format!(
        "JWT {}",
        token_with(Algorithm::HS256, SECRET, json!({"noauth": NOAUTH}))
    )
}

/// Sends one request; returns status, headers and the body parsed as JSON (Null if not JSON).
pub async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, Response<()>, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("router answers");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, Response::from_parts(parts, ()), json)
}
