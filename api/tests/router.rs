//! The router in-process (tower `oneshot`): auth, validation and error shapes. The broker and
//! MongoDB here are closed loopback ports, so anything that would enqueue must answer 503 and
//! nothing can be half-sent; the live tests (`live.rs`) cover the 202 paths.

mod common;

use axum::http::StatusCode;
use common::{NOAUTH, SECRET, auth, call, router, token_with};
use jsonwebtoken::Algorithm;
use serde_json::json;

/// A broker and MongoDB nobody listens on.
const DEAD: [&str; 6] = [
    "--broker",
    "amqp://guest:guest@127.0.0.1:9//",
    "--mongo-uri",
    "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300",
    "--publish-timeout",
    "2",
];

fn none_token() -> String {
    // {"alg":"none","typ":"JWT"} . {"noauth":"test-noauth"} . (no signature)
    let enc = |s: &str| {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for c in s.as_bytes().chunks(3) {
            let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    format!(
        "{}.{}.",
        enc(r#"{"alg":"none","typ":"JWT"}"#),
        enc(&format!(r#"{{"noauth":"{NOAUTH}"}}"#))
    )
}

#[tokio::test]
async fn health_document_and_metrics_are_open() {
    let app = router(&DEAD).await;
    let (s, _, b) = call(&app, "GET", "/healthz", None, None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["status"], "ok");
    let (s, _, doc) = call(&app, "GET", "/openapi.json", None, None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    for p in [
        "/tasks/{task}",
        "/crawler/{provider}/{conn_id}/{task}",
        "/reports/general",
        "/reports/pivot",
        "/aggregation",
        "/webhooks",
        "/notify/ws",
        "/notify/audit",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} documented");
    }
    assert!(doc["components"]["securitySchemes"]["jwt"].is_object());
    let (s, resp, _) = call(&app, "GET", "/metrics", None, None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .contains("openmetrics")
    );
    let (s, _, b) = call(&app, "GET", "/readyz", None, None, &[]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b["status"], "unavailable");
    // Which dependency, never the driver's text (it names hosts and ports).
    assert_eq!(b["checks"]["broker"], "unavailable");
    assert_eq!(b["checks"]["mongodb"], "unavailable");
    assert!(!b.to_string().contains("127.0.0.1"), "{b}");
}

#[tokio::test]
async fn made_up_methods_do_not_make_metric_series() {
    let app = router(&DEAD).await;
    for i in 0..20 {
        let method = format!("M{i}{}", "X".repeat(200));
        let _ = call(&app, &method, "/healthz", None, None, &[]).await;
    }
    // The exposition is text, not JSON: read it raw.
    let req = axum::http::Request::builder()
        .uri("/metrics")
        .body(axum::body::Body::empty())
        .expect("request");
    let resp = tower::ServiceExt::oneshot(app.clone(), req)
        .await
        .expect("answers");
    let text = String::from_utf8(
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf-8");
    assert!(!text.contains("XXXX"), "a made-up method became a label");
    assert!(text.contains("method=\"OTHER\""), "{text}");
}

#[tokio::test]
async fn requests_over_the_in_flight_limit_or_the_time_limit_get_503() {
    let a = auth();
    // MongoDB away: a schedules read waits out its server selection (300 ms).
    let mut args = DEAD.to_vec();
    args.extend(["--max-in-flight", "1"]);
    let app = router(&args).await;
    let (one, two) = tokio::join!(
        call(&app, "GET", "/schedules", Some(&a), None, &[]),
        call(&app, "GET", "/schedules", Some(&a), None, &[])
    );
    let busy: Vec<_> = [&one, &two]
        .into_iter()
        .filter(|(_, _, b)| b["error"] == "busy")
        .collect();
    assert_eq!(busy.len(), 1, "{:?} {:?}", one.2, two.2);
    assert_eq!(busy[0].0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        busy[0].2["reason"]
            .as_str()
            .expect("reason")
            .contains("MAESTRO_MAX_IN_FLIGHT")
    );
    assert_eq!(busy[0].1.headers()["retry-after"], "1");

    let mut args = DEAD.to_vec();
    args.extend(["--request-timeout", "0.1"]);
    let app = router(&args).await;
    let (s, _, b) = call(&app, "GET", "/schedules", Some(&a), None, &[]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert!(
        b["reason"]
            .as_str()
            .expect("reason")
            .contains("MAESTRO_REQUEST_TIMEOUT"),
        "{b}"
    );
}

#[tokio::test]
async fn forged_and_missing_tokens_get_401_with_a_reason() {
    let app = router(&DEAD).await;
    let now = chrono::Utc::now().timestamp();
    let body = r#"{"args":[],"kwargs":{}}"#;
    let cases: Vec<(String, &str)> = vec![
        (format!("JWT {}", none_token()), "HS256"),
        (
            format!(
                "JWT {}",
                token_with(Algorithm::HS256, "wrong-key", json!({"noauth": NOAUTH}))
            ),
            "signature",
        ),
        (
            format!(
                "JWT {}",
                token_with(Algorithm::HS512, SECRET, json!({"noauth": NOAUTH}))
            ),
            "HS256",
        ),
        (
            format!(
                "Bearer {}",
                token_with(
                    Algorithm::HS256,
                    SECRET,
                    json!({"noauth": NOAUTH, "exp": now - 3600})
                )
            ),
            "expired",
        ),
        (
            format!(
                "JWT {}",
                token_with(Algorithm::HS256, SECRET, json!({"noauth": "guess"}))
            ),
            "noauth",
        ),
        ("JWT not.a.jwt".into(), "invalid token"),
        ("JWT".into(), "scheme"),
        ("Basic dXNlcjpwYXNz".into(), "Basic"),
    ];
    for (header, why) in cases {
        let (s, resp, b) = call(
            &app,
            "POST",
            "/tasks/maestro.echo",
            Some(&header),
            Some(body),
            &[],
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{header}");
        assert_eq!(b["error"], "unauthorized");
        let reason = b["reason"].as_str().expect("reason");
        assert!(reason.contains(why), "{why}: {reason}");
        assert_eq!(resp.headers()["www-authenticate"], "JWT");
    }
    let (s, _, b) = call(&app, "GET", "/tasks/abc", None, None, &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(b["reason"].as_str().expect("reason").contains("missing"));
    let (s, _, _) = call(&app, "PUT", "/crawler/aws/c1/server-list", None, None, &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_bodies_name_the_field_and_enqueue_nothing() {
    let app = router(&DEAD).await;
    let a = auth();
    let cases: &[(&str, &str, u16, Option<&str>)] = &[
        ("/tasks/maestro.echo", "{\"args\": [", 400, None),
        ("/tasks/maestro.echo", "not json", 400, None),
        ("/tasks/maestro.echo", "[]", 422, Some("body")),
        ("/tasks/maestro.echo", r#"{"kwargs":{}}"#, 422, Some("args")),
        (
            "/tasks/maestro.echo",
            r#"{"args":{},"kwargs":{}}"#,
            422,
            Some("args"),
        ),
        (
            "/tasks/maestro.echo",
            r#"{"args":[],"kwargs":[]}"#,
            422,
            Some("kwargs"),
        ),
        (
            "/tasks/maestro.echo",
            r#"{"args":[],"kwargs":{},"extra":1}"#,
            422,
            Some("extra"),
        ),
        (
            "/tasks/maestro.echo",
            r#"{"args":[],"kwargs":{},"countdown":"soon"}"#,
            422,
            Some("countdown"),
        ),
        (
            "/tasks/maestro.echo",
            r#"{"args":[],"kwargs":{},"countdown":-1}"#,
            422,
            Some("countdown"),
        ),
        (
            "/tasks/maestro.echo",
            r#"{"args":[],"kwargs":{},"countdown":1,"eta":"2030-01-01T00:00:00Z"}"#,
            422,
            Some("eta"),
        ),
        (
            "/tasks/maestro.echo",
            r#"{"args":[],"kwargs":{},"eta":"tomorrow"}"#,
            422,
            Some("eta"),
        ),
        (
            "/tasks/maestro.echo",
            r#"{"args":[],"kwargs":{},"expires":"2001-01-01T00:00:00Z"}"#,
            422,
            Some("expires"),
        ),
        (
            "/tasks/maestro.echo",
            r#"{"args":[],"kwargs":{},"expires":true}"#,
            422,
            Some("expires"),
        ),
        (
            "/tasks/maestro.echo",
            r#"{"args":[],"kwargs":{},"queue":"amq.x"}"#,
            422,
            Some("queue"),
        ),
        (
            "/tasks/maestro.echo",
            r#"{"args":[],"kwargs":{},"queue":"not-routed"}"#,
            422,
            Some("queue"),
        ),
        (
            "/tasks/no.such.task",
            r#"{"args":[],"kwargs":{}}"#,
            404,
            Some("name"),
        ),
        (
            "/tasks/maestro.webhook",
            r#"{"args":[],"kwargs":{"url":"ftp://x"}}"#,
            422,
            Some("kwargs.url"),
        ),
        (
            "/tasks/maestro.webhook",
            r#"{"args":[1],"kwargs":{"url":"http://x/"}}"#,
            422,
            Some("args"),
        ),
        (
            "/reports/general",
            r#"{"report_id":"r1","component":"Servers","filters":"[]"}"#,
            422,
            Some("owner_user"),
        ),
        (
            "/reports/pivot",
            r#"{"report_id":"r1","owner_user":"5f0000000000000000000001","filters":"{bad"}"#,
            422,
            Some("filters"),
        ),
        (
            "/reports/pivot",
            r#"{"report_id":"r 1","owner_user":"5f0000000000000000000001","filters":"{}"}"#,
            422,
            Some("report_id"),
        ),
        (
            "/reports/general",
            r#"{"report_id":"r1","component":"Servers","owner_user":"5f0000000000000000000001","filters":"[{\"field\":\"x\",\"typ\":\"nope\",\"filter\":\"1\"}]"}"#,
            422,
            Some("filters[0].typ"),
        ),
        (
            "/aggregation",
            r#"{"collection":"servers","owner_user":"5f0000000000000000000001","pipeline":[{"match":{}}]}"#,
            422,
            Some("pipeline[0]"),
        ),
        (
            "/aggregation",
            r#"{"collection":"servers","owner_user":"5f0000000000000000000001","pipeline":"x"}"#,
            422,
            Some("pipeline"),
        ),
        (
            "/webhooks",
            r#"{"url":"http://h/","method":"GET"}"#,
            422,
            Some("method"),
        ),
        (
            "/webhooks",
            r#"{"url":"http://h/","headers":{"X-A":1}}"#,
            422,
            Some("headers.X-A"),
        ),
        (
            "/notify/ws",
            r#"{"owner_id":"u1","title":"t","msg":"m","type":"loud"}"#,
            422,
            Some("type"),
        ),
        (
            "/notify/audit",
            r#"{"entity":"servers","entity_id":"1","method":"POST","body":[]}"#,
            422,
            Some("body"),
        ),
    ];
    for (uri, body, status, field) in cases {
        let (s, _, b) = call(&app, "POST", uri, Some(&a), Some(body), &[]).await;
        assert_eq!(s.as_u16(), *status, "{uri} {body}: {b}");
        assert!(b["error"].is_string() && b["reason"].is_string(), "{b}");
        assert_eq!(b["field"].as_str(), *field, "{uri} {body}: {b}");
    }
    let (s, _, b) = call(
        &app,
        "PUT",
        "/crawler/aws/c1/flavor-list",
        Some(&a),
        None,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b["field"], "task");
    let (s, _, b) = call(
        &app,
        "PUT",
        "/crawler/vmware/c1/server-list",
        Some(&a),
        None,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b["field"], "provider");
    // Not JSON: 415.
    let (s, _, b) = call(&app, "POST", "/tasks/maestro.echo", Some(&a), None, &[]).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(b["error"], "unsupported_media_type");
    // Unknown route: JSON 404.
    let (s, _, b) = call(&app, "GET", "/nope", Some(&a), None, &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"], "not_found");
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let mut args = DEAD.to_vec();
    args.extend(["--body-bytes-max", "2048"]);
    let app = router(&args).await;
    let big = format!(r#"{{"args":["{}"],"kwargs":{{}}}}"#, "x".repeat(4096));
    let (s, _, b) = call(
        &app,
        "POST",
        "/tasks/maestro.echo",
        Some(&auth()),
        Some(&big),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(b["error"], "payload_too_large");
}

#[tokio::test]
async fn broker_away_is_503_with_a_reason() {
    let app = router(&DEAD).await;
    let started = std::time::Instant::now();
    let (s, resp, b) = call(
        &app,
        "POST",
        "/tasks/maestro.echo",
        Some(&auth()),
        Some(r#"{"args":[1],"kwargs":{}}"#),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_eq!(b["error"], "broker_unavailable");
    assert!(!b["reason"].as_str().expect("reason").is_empty());
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    let (s, _, b) = call(
        &app,
        "PUT",
        "/crawler/aws/c1/server-list",
        Some(&auth()),
        None,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    // Task states without a result backend: 503 naming the missing setting.
    let (s, _, b) = call(&app, "GET", "/tasks/some-id", Some(&auth()), None, &[]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        b["reason"]
            .as_str()
            .expect("reason")
            .contains("CELERY_RESULT_BACKEND")
    );
    // The failures are counted.
    let (_, _, _) = call(&app, "GET", "/metrics", None, None, &[]).await;
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let app = router(&DEAD).await;
    call(&app, "GET", "/tasks/x", None, None, &[]).await;
    let req = axum::http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .expect("request");
    let resp = tower::ServiceExt::oneshot(app.clone(), req)
        .await
        .expect("answers");
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains(
            r#"maestro_api_http_requests_total{route="/tasks/{task}",method="GET",status="401"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn internal_tasks_never_and_diagnostics_only_where_enabled() {
    let a = auth();
    let body = r#"{"args":[],"kwargs":{}}"#;
    let send = |app: &axum::Router, task: &str, body: &str| {
        let (app, path, body, a) = (
            app.clone(),
            format!("/tasks/{task}"),
            body.to_owned(),
            a.clone(),
        );
        async move { call(&app, "POST", &path, Some(&a), Some(&body), &[]).await }
    };
    let on = router(&DEAD).await;
    for task in [
        "maestro.report.upload",
        "maestro.report.finish",
        "celery.chord_unlock",
    ] {
        let (s, _, b) = send(&on, task, body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{task}: {b}");
        assert_eq!(b["error"], "forbidden");
        assert_eq!(b["field"], "name");
        assert!(
            b["reason"].as_str().expect("reason").contains("internal"),
            "{b}"
        );
    }
    // A diagnostic task goes only to its routed queue: maestro.sleep cannot hold report slots.
    let (s, _, b) = send(
        &on,
        "maestro.sleep",
        r#"{"args":[60],"kwargs":{},"queue":"report"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(
        b["reason"]
            .as_str()
            .expect("reason")
            .contains("routed queue"),
        "{b}"
    );

    let mut off = DEAD.to_vec();
    off.extend(["--enable-diagnostics", "false"]);
    let off = router(&off).await;
    for task in ["maestro.echo", "maestro.sleep", "maestro.noop"] {
        let (s, _, b) = send(&off, task, body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{task}: {b}");
        assert!(
            b["reason"]
                .as_str()
                .expect("reason")
                .contains("diagnostics are off"),
            "{b}"
        );
    }
    let sched = r#"{"name":"n","interval":{"every":10},"task":"maestro.sleep"}"#;
    let (s, _, b) = call(&off, "POST", "/schedules", Some(&a), Some(sched), &[]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["field"], "task");
}

#[tokio::test]
async fn schedule_input_is_checked_before_mongodb() {
    let app = router(&DEAD).await;
    let a = auth();
    let base = r#""name":"n","period_type":"interval","interval":{"every":10,"period":"seconds"},"task":"maestro.noop""#;
    for (body, field) in [
        (
            format!(r#"{{{base},"last_run_at":"2024-01-01T00:00:00Z"}}"#),
            "last_run_at",
        ),
        (
            format!(r#"{{{base},"total_run_count":3}}"#),
            "total_run_count",
        ),
        (format!(r#"{{{base},"beat_epoch":1}}"#), "beat_epoch"),
        (format!(r#"{{{base},"_id":"x"}}"#), "_id"),
        (
            r#"{"name":"n","period_type":"weekly","task":"maestro.noop"}"#.to_owned(),
            "period_type",
        ),
        // Keys MongoDB reads as paths or operators: a `$set` of these would write beat's fields.
        (
            format!(r#"{{{base},"beat_pending.task_id":"chosen"}}"#),
            "beat_pending.task_id",
        ),
        (
            format!(r#"{{{base},"kwargs":{{"x":{{"$where":"1"}}}}}}"#),
            "kwargs.x.$where",
        ),
        // What the schedule sends: no internal task, no queue outside the routing table.
        (
            r#"{"name":"n","interval":{"every":10},"task":"maestro.report.finish"}"#.to_owned(),
            "task",
        ),
        (
            r#"{"name":"n","interval":{"every":10},"task":"celery.chord_unlock"}"#.to_owned(),
            "task",
        ),
        (format!(r#"{{{base},"queue":"celery.pidbox"}}"#), "queue"),
    ] {
        let (s, _, b) = call(&app, "POST", "/schedules", Some(&a), Some(&body), &[]).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
        assert_eq!(b["field"], field, "{b}");
    }
    let (s, _, b) = call(&app, "GET", "/schedules/not-an-id", Some(&a), None, &[]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b["field"], "id");
    let (s, _, b) = call(&app, "GET", "/schedules?limit=0", Some(&a), None, &[]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b["field"], "limit");
    // MongoDB away: 503, not a hang.
    let (s, _, b) = call(
        &app,
        "POST",
        "/schedules",
        Some(&a),
        Some(&format!("{{{base}}}")),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
}
