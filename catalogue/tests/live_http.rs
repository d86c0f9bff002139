//! `maestro.webhook` and `maestro.notify` against real HTTP servers started here (axum on
//! loopback, recording every request and answering with scripted statuses), with the attempt
//! records in the real MongoDB at `MONGODB_URI` (scripts/test.sh sets it).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use maestro_catalogue::{CatalogueArgs, Services, register};
use maestro_tasks::{Registry, TaskArgs, TaskContext, TaskError, TaskResult};
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};

/// One request the server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// What the server answers next: a status after a delay; 200 when the script ran out.
#[derive(Default)]
struct Script {
    answers: VecDeque<(u16, Duration)>,
    seen: Vec<Seen>,
}

#[derive(Clone)]
struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<Script>>,
}

impl Server {
    async fn start(answers: &[(u16, Duration)]) -> Self {
        let state = Arc::new(Mutex::new(Script {
            answers: answers.iter().copied().collect(),
            seen: Vec::new(),
        }));
        let app = Router::new().fallback(record).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("lock").seen.clone()
    }
}

async fn record(
    State(state): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], &'static str) {
    let (status, delay) = {
        let mut s = state.lock().expect("lock");
        s.seen.push(Seen {
            method,
            uri,
            headers,
            body,
        });
        s.answers.pop_front().unwrap_or((200, Duration::ZERO))
    };
    tokio::time::sleep(delay).await;
    // A 3xx points back at this server, so a client that followed it would be seen twice.
    (
        StatusCode::from_u16(status).expect("status"),
        [("location", "/redirected")],
        "{\"result\":{}}",
    )
}

fn mongo_uri() -> String {
    std::env::var("MONGODB_URI")
        .expect("MONGODB_URI must name a MongoDB server (scripts/test.sh sets it)")
}

/// Settings as the worker's flags would give them (defaults for everything not named).
fn settings(db: &str) -> CatalogueArgs {
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        catalogue: CatalogueArgs,
    }
    let reports = format!("{db}-reports");
    let uri = mongo_uri();
    let argv = [
        "test",
        "--mongo-uri",
        &uri,
        "--mongo-database",
        db,
        "--reports-database",
        &reports,
        "--insert-qtd",
        "3",
        "--webhook-secret",
        "s3cret",
        "--http-timeout",
        "1",
        // The receivers here listen on loopback, which the egress policy refuses by default.
        "--egress-allow",
        "127.0.0.1",
    ];
    <Flags as clap::Parser>::try_parse_from(argv)
        .expect("flags")
        .catalogue
}

/// The catalogue over its own inventory database, dropped by `cleanup`.
struct Catalogue {
    svc: Arc<Services>,
    registry: Registry,
}

impl Catalogue {
    async fn new(cfg: CatalogueArgs) -> Self {
        let svc = Services::new(cfg).await.expect("services");
        let mut registry = Registry::new();
        register(&mut registry, &svc).expect("registered");
        Self { svc, registry }
    }

    async fn run(&self, name: &str, id: &str, retries: u32, kwargs: Value) -> TaskResult {
        let task = self.registry.get(name).expect("registered").clone();
        let mut ctx = TaskContext::new(id, name, "q", Arc::from("w@h"));
        ctx.states = self.registry.states().clone();
        ctx.retries = retries;
        let args = TaskArgs::from_values(&json!([]), &kwargs).expect("json");
        task.run(&ctx, &args).await
    }

    async fn attempts(&self, id: &str) -> Vec<Document> {
        use futures_util::TryStreamExt;
        self.svc
            .inventory
            .collection::<Document>("webhook_attempts")
            .find(doc! {"task_id": id})
            .sort(doc! {"attempt": 1})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("read")
    }

    async fn cleanup(self) {
        self.svc.inventory.drop().await.expect("drop inventory");
        self.svc.reports.drop().await.expect("drop reports");
    }
}

fn db_name() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

fn header<'a>(s: &'a Seen, name: &str) -> Option<&'a str> {
    s.headers.get(name).and_then(|v| v.to_str().ok())
}

fn countdown(r: &TaskResult) -> Duration {
    match r {
        Err(TaskError::Retry {
            countdown: Some(d), ..
        }) => *d,
        other => panic!("expected a retry with a countdown, got {other:?}"),
    }
}

#[tokio::test]
async fn webhook_is_signed_retried_on_500_and_recorded() {
    let server = Server::start(&[(500, Duration::ZERO)]).await;
    let cat = Catalogue::new(settings(&db_name())).await;
    let kwargs = json!({"url": server.url("/hook?token=abc"), "method": "PUT",
        "payload": {"event": "done", "n": 12345678901234567890u64, "text": "ü"},
        "headers": {"X-Token": "tok-value"}});

    let first = cat.run("maestro.webhook", "d1", 0, kwargs.clone()).await;
    let wait = countdown(&first);
    assert!(
        wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2),
        "{wait:?}"
    );
    assert!(first.expect_err("retry").to_string().contains("500"));
    let second = cat.run("maestro.webhook", "d1", 1, kwargs).await;
    assert_eq!(
        second.expect("delivered"),
        json!({"status": 200, "attempts": 2})
    );

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.method, Method::PUT);
        assert_eq!(s.uri.to_string(), "/hook?token=abc");
        let body: Value = serde_json::from_slice(&s.body).expect("json body");
        assert_eq!(body["n"].to_string(), "12345678901234567890");
        let expected =
            maestro_catalogue::delivery::signature(b"s3cret", &s.body).expect("signature");
        assert_eq!(header(s, "x-maestro-signature"), Some(expected.as_str()));
        assert_eq!(header(s, "x-maestro-delivery"), Some("d1"));
        assert_eq!(
            header(s, "x-maestro-attempt"),
            Some((i + 1).to_string().as_str())
        );
        assert_eq!(header(s, "x-token"), Some("tok-value"));
        assert_eq!(header(s, "content-type"), Some("application/json"));
    }

    let recs = cat.attempts("d1").await;
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[0].get_i32("status").ok(), Some(500));
    assert_eq!(recs[1].get_i32("status").ok(), Some(200));
    assert_eq!(recs[1].get_i64("attempt").ok(), Some(2));
    assert_eq!(recs[1].get_str("method").ok(), Some("PUT"));
    // The query string (a token here) is not recorded.
    assert_eq!(
        recs[1].get_str("url").ok(),
        Some(server.url("/hook").as_str())
    );
    assert!(recs[1].get_datetime("at").is_ok() && recs[1].get_i64("duration_ms").is_ok());
    cat.cleanup().await;
}

#[tokio::test]
async fn webhook_404_fails_at_once_and_unsigned_without_a_secret() {
    let server = Server::start(&[(404, Duration::ZERO)]).await;
    let mut cfg = settings(&db_name());
    cfg.webhook_secret = None;
    let cat = Catalogue::new(cfg).await;
    let r = cat
        .run(
            "maestro.webhook",
            "d2",
            0,
            json!({"url": server.url("/gone"), "payload": [1]}),
        )
        .await;
    let err = r.expect_err("fails");
    assert!(matches!(err, TaskError::Fail { .. }), "{err:?}");
    assert!(err.to_string().contains("404 Not Found") && err.to_string().contains("not retried"));
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(header(&seen[0], "x-maestro-signature"), None);
    assert_eq!(&seen[0].body[..], b"[1]");
    assert_eq!(cat.attempts("d2").await.len(), 1);
    cat.cleanup().await;
}

#[tokio::test]
async fn webhook_timeouts_and_refused_connections_retry_then_give_up() {
    let server = Server::start(&[(200, Duration::from_secs(3))]).await;
    let cat = Catalogue::new(settings(&db_name())).await;
    let r = cat
        .run(
            "maestro.webhook",
            "d3",
            0,
            json!({"url": server.url("/slow")}),
        )
        .await;
    countdown(&r);
    assert!(r.expect_err("retry").to_string().contains("timed out"));
    let recs = cat.attempts("d3").await;
    assert_eq!(recs.len(), 1);
    assert!(
        recs[0]
            .get_str("error")
            .is_ok_and(|e| e.contains("timed out")),
        "{recs:?}"
    );
    assert!(recs[0].get_i32("status").is_err());

    // Nothing listens on a port just released.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let url = format!("http://{closed}/x");
    countdown(
        &cat.run("maestro.webhook", "d4", 4, json!({"url": url}))
            .await,
    );
    let last = cat
        .run("maestro.webhook", "d4", 5, json!({"url": url}))
        .await;
    let err = last.expect_err("gives up");
    assert!(matches!(err, TaskError::Fail { .. }), "{err:?}");
    assert!(err.to_string().contains("after 6 attempts"), "{err}");
    cat.cleanup().await;
}

#[tokio::test]
async fn webhooks_reach_no_private_address_in_any_spelling_and_follow_no_redirect() {
    let server = Server::start(&[(302, Duration::ZERO)]).await;
    let port = server.addr.port();
    let mut cfg = settings(&db_name());
    cfg.egress_allow = String::new();
    let cat = Catalogue::new(cfg).await;
    for (i, url) in [
        server.url("/x"),
        format!("http://localhost:{port}/x"),
        format!("http://2130706433:{port}/x"),
        format!("http://0x7f.1:{port}/x"),
        format!("http://[::ffff:127.0.0.1]:{port}/x"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fd00::1]/".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        let err = cat
            .run("maestro.webhook", &format!("s{i}"), 0, json!({"url": url}))
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, TaskError::Fail { exc, .. } if exc.exc_type == "EgressRefused"),
            "{url}: {err:?}"
        );
        assert!(
            err.to_string().contains("destination refused"),
            "{url}: {err}"
        );
    }
    assert!(server.seen().is_empty(), "nothing reached the receiver");
    cat.cleanup().await;

    // Allowed, but a 3xx is an answer, not an instruction: not followed, and not retried.
    let cat = Catalogue::new(settings(&db_name())).await;
    let err = cat
        .run("maestro.webhook", "r1", 0, json!({"url": server.url("/x")}))
        .await
        .expect_err("302 fails");
    assert!(err.to_string().contains("302"), "{err}");
    assert_eq!(server.seen().len(), 1, "the redirect was not followed");
    cat.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_attempt_store_does_not_fail_the_delivery() {
    let server = Server::start(&[]).await;
    let mut cfg = settings(&db_name());
    // Nothing listens there: every record times out at server selection and is logged.
    cfg.mongo.mongo_uri = "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=200".into();
    let svc = Services::new(cfg).await.expect("services");
    let mut registry = Registry::new();
    register(&mut registry, &svc).expect("registered");
    let task = registry.get("maestro.webhook").expect("registered").clone();
    let mut ctx = TaskContext::new("d5", "maestro.webhook", "q", Arc::from("w@h"));
    ctx.states = registry.states().clone();
    let args = TaskArgs::from_values(&json!([server.url("/ok")]), &json!({})).expect("json");
    let got = task.run(&ctx, &args).await.expect("delivered");
    assert_eq!(got, json!({"status": 200, "attempts": 1}));
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn notify_ws_publishes_to_centrifugo_as_maestro_did() {
    let server = Server::start(&[(503, Duration::ZERO)]).await;
    let mut cfg = settings(&db_name());
    cfg.websocket_uri = Some(server.url("/"));
    cfg.websocket_secret = Some("ws-key".into());
    let cat = Catalogue::new(cfg).await;
    let sig = maestro_contract::notify::ws_notification(
        "u1",
        "Report",
        "Report r1 is ready",
        maestro_contract::notify::NotifyType::Success,
        &["reports"],
    )
    .signature();
    let first = cat.run("maestro.notify", "n1", 0, sig.kwargs.clone()).await;
    countdown(&first);
    let got = cat
        .run("maestro.notify", "n1", 1, sig.kwargs)
        .await
        .expect("published");
    assert_eq!(
        got,
        json!({"channel": "maestro-u1", "status": 200, "attempts": 2})
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let s = &seen[1];
    assert_eq!(s.method, Method::POST);
    assert_eq!(s.uri.path(), "/api");
    assert_eq!(header(s, "authorization"), Some("apikey ws-key"));
    let body: Value = serde_json::from_slice(&s.body).expect("json");
    assert_eq!(
        body,
        json!({"method": "publish", "params": {"channel": "maestro-u1", "data": {
            "notify": {"title": "Report", "msg": "Report r1 is ready", "type": "success"},
            "event": {"caller": ["reports"]}}}})
    );
    cat.cleanup().await;
}

#[tokio::test]
async fn notify_audit_calls_the_entity_path_with_the_method() {
    let server = Server::start(&[(200, Duration::ZERO), (400, Duration::ZERO)]).await;
    let mut cfg = settings(&db_name());
    cfg.audit_uri = Some(server.url("/base"));
    let cat = Catalogue::new(cfg).await;
    let body = json!({"hostname": "web-1", "n": 1});
    let got = cat
        .run(
            "maestro.notify",
            "a1",
            0,
            json!({"channel": "audit", "entity": "servers", "entity_id": "5f1c",
                   "method": "PATCH", "user": "u1", "body": body}),
        )
        .await
        .expect("recorded");
    assert_eq!(got["status"], 200);
    let err = cat
        .run(
            "maestro.notify",
            "a2",
            0,
            json!({"channel": "audit", "entity": "servers", "entity_id": "5f1c",
                   "method": "DELETE", "user": null, "body": {}}),
        )
        .await
        .expect_err("400 is not retried");
    assert!(matches!(err, TaskError::Fail { .. }), "{err:?}");
    assert!(err.to_string().contains("400 Bad Request"), "{err}");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, Method::PATCH);
    assert_eq!(seen[0].uri.path(), "/base/audit/servers/5f1c/u1");
    assert_eq!(
        serde_json::from_slice::<Value>(&seen[0].body).expect("json"),
        body
    );
    assert_eq!(seen[1].method, Method::DELETE);
    assert_eq!(seen[1].uri.path(), "/base/audit/servers/5f1c");
    cat.cleanup().await;
}

#[tokio::test]
async fn notify_is_skipped_when_its_service_is_not_configured() {
    let cat = Catalogue::new(settings(&db_name())).await;
    let sig = maestro_contract::notify::ws_notification(
        "u1",
        "t",
        "m",
        maestro_contract::notify::NotifyType::Info,
        &[],
    )
    .signature();
    assert_eq!(
        cat.run("maestro.notify", "s1", 0, sig.kwargs).await,
        Ok(json!({"skipped": "MAESTRO_WEBSOCKET_URI unset"}))
    );
    let audit = json!({"channel": "audit", "entity": "servers", "entity_id": "1",
                       "method": "POST", "body": {}});
    assert_eq!(
        cat.run("maestro.notify", "s2", 0, audit).await,
        Ok(json!({"skipped": "MAESTRO_AUDIT_URI unset"}))
    );
    cat.cleanup().await;
}

#[tokio::test]
async fn register_adds_every_task_with_its_options_and_state() {
    let mut cfg = settings(&db_name());
    let registered = |cfg: CatalogueArgs| async move {
        let svc = Services::new(cfg).await.expect("services");
        let mut registry = Registry::new();
        register(&mut registry, &svc).expect("registered");
        // Every task's state is there: a worker over this registry starts.
        registry.check_states().expect("state");
        registry
    };
    let registry = registered(cfg.clone()).await;
    assert_eq!(
        registry.names(),
        [
            "maestro.aggregation",
            "maestro.analytics.graph",
            "maestro.discovery.scan",
            "maestro.notify",
            "maestro.report.finish",
            "maestro.report.general",
            "maestro.report.pivot",
            "maestro.report.upload",
            "maestro.scheduler.run",
            "maestro.webhook",
        ]
    );
    let retries = |name: &str| registry.get(name).expect(name).options().max_retries;
    use maestro_catalogue::{delivery::DELIVERY_MAX_RETRIES, discovery::SCAN_MAX_RETRIES};
    assert_eq!(retries("maestro.webhook"), Some(DELIVERY_MAX_RETRIES));
    assert_eq!(retries("maestro.notify"), Some(DELIVERY_MAX_RETRIES));
    assert_eq!(retries("maestro.discovery.scan"), Some(SCAN_MAX_RETRIES));
    assert_eq!(
        retries("maestro.analytics.graph"),
        Some(maestro_catalogue::analytics::GRAPH_MAX_RETRIES)
    );
    for other in [
        "maestro.report.general",
        "maestro.aggregation",
        "maestro.scheduler.run",
    ] {
        assert_eq!(
            retries(other),
            Some(maestro_tasks::DEFAULT_MAX_RETRIES),
            "{other}"
        );
    }
    let (args, kwargs) = registry
        .get("maestro.webhook")
        .expect("webhook")
        .shown_arguments(
            &json!(["https://h/x?token=t", "PUT", {}, {"X-Token": "secret"}]),
            &json!({}),
        )
        .expect("webhook arguments are shown redacted");
    assert_eq!(args[3]["X-Token"], "***");
    assert!(!args.to_string().contains("token=t"), "{args}");
    assert_eq!(kwargs, json!({}));
    assert!(
        registry
            .get("maestro.notify")
            .expect("notify")
            .shown_arguments(&json!([]), &json!({}))
            .is_none()
    );

    cfg.enable_diagnostics = true;
    let registry = registered(cfg).await;
    assert!(registry.get("maestro.record").is_some());
}
