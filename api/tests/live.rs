//! The router in-process against the real RabbitMQ (127.0.0.1:5672 or `AMQP_URL`) and, when
//! `MONGODB_URI` is set (scripts/test.sh sets it), MongoDB. Every test publishes to queues of
//! its own (`maestro_testsupport::Run`), deleted afterwards.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{auth, call, router};
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use maestro_broker::connection::{connect, parse_broker_url};
use maestro_broker::{TaskMessage, TaskState};
use maestro_results::{ResultStore, TaskRecord};
use maestro_testsupport::{Run, broker_url};
use serde_json::{Value, json};

async fn inspect_conn() -> lapin::Connection {
    let uri = parse_broker_url(&broker_url()).expect("broker url");
    connect(&uri, "maestro-api live test")
        .await
        .expect("broker is up")
}

/// Takes one message off `queue` and decodes it.
async fn take(conn: &lapin::Connection, queue: &str) -> (TaskMessage, FieldTable) {
    let ch = conn.create_channel().await.expect("channel");
    let msg = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
        .expect("a message is waiting");
    let headers = msg.properties.headers().clone().expect("headers");
    let decoded = TaskMessage::decode(&msg.properties, &msg.data).expect("a Celery message");
    (decoded, headers)
}

async fn depth(conn: &lapin::Connection, queue: &str) -> u32 {
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("queue exists")
    .message_count()
}

#[tokio::test]
async fn enqueue_is_confirmed_and_carries_task_trace_and_times() {
    let run = Run::new();
    let q = run.queue("echo");
    let disc = run.queue("disc");
    let routes = format!(
        "maestro.echo={},maestro.discovery.scan={}",
        q.name, disc.name
    );
    let app = router(&["--broker", &broker_url(), "--routes", &routes]).await;
    let conn = inspect_conn().await;

    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (s, resp, b) = call(
        &app,
        "POST",
        "/tasks/maestro.echo",
        Some(&auth()),
        Some(r#"{"args":[1,"two"],"kwargs":{"k":{"n":3}},"countdown":30,"expires":3600}"#),
        &[("traceparent", parent), ("tracestate", "congo=t61rcWkgMzE")],
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["queue"], q.name.as_str());
    let id = b["task_id"].as_str().expect("task id").to_owned();
    assert_eq!(resp.headers()["location"], format!("/tasks/{id}").as_str());
    // The 202 came after the confirm: the message is on the queue now.
    assert_eq!(depth(&conn, &q.name).await, 1);
    let (msg, headers) = take(&conn, &q.name).await;
    assert_eq!(msg.headers.task, "maestro.echo");
    assert_eq!(msg.headers.id, id);
    assert_eq!(msg.args_vec(), vec![json!(1), json!("two")]);
    assert_eq!(
        serde_json::from_str::<Value>(msg.kwargs.get()).expect("kwargs"),
        json!({"k": {"n": 3}})
    );
    let now = chrono::Utc::now();
    let eta = msg.headers.eta.expect("countdown sets eta");
    assert!(eta > now + chrono::Duration::seconds(25) && eta < now + chrono::Duration::seconds(31));
    let expires = msg.headers.expires.expect("expires");
    assert!(expires > now + chrono::Duration::seconds(3500));
    let tp = match headers.inner().get("traceparent") {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("traceparent header: {other:?}"),
    };
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert!(!tp.contains("00f067aa0ba902b7"), "the API's own span: {tp}");
    assert!(
        matches!(headers.inner().get("tracestate"), Some(AMQPValue::LongString(s)) if s.to_string() == "congo=t61rcWkgMzE")
    );

    // Maestro's discovery endpoint (server-app's `PUT /crawler/<label>/<id>/<task>`): 201 with
    // the answer Maestro's discovery gave, kwargs as the scanner expects.
    let (s, _, b) = call(
        &app,
        "PUT",
        "/crawler/AWS/5f1c0a/server-list",
        Some(&auth()),
        None,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["msg"], "In progress. server-list");
    assert_eq!(b["status"], "warning");
    assert_eq!(b["conn_id"], "5f1c0a");
    assert_eq!(b["queue"], disc.name.as_str());
    let (msg, headers) = take(&conn, &disc.name).await;
    assert_eq!(msg.headers.task, "maestro.discovery.scan");
    assert_eq!(
        serde_json::from_str::<Value>(msg.kwargs.get()).expect("kwargs"),
        json!({"provider": "aws", "conn_id": "5f1c0a", "task": "server-list"})
    );
    assert!(
        headers.inner().contains_key("traceparent"),
        "a new trace without a parent"
    );
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test]
async fn many_concurrent_enqueues_all_confirm() {
    let run = Run::new();
    let q = run.queue("burst");
    let routes = format!("maestro.noop={}", q.name);
    // More at once than the default in-flight limit (256), which this test is not about.
    let app = router(&[
        "--broker",
        &broker_url(),
        "--routes",
        &routes,
        "--max-in-flight",
        "1000",
    ])
    .await;
    let a = auth();
    let n = 400;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let app = app.clone();
        let a = a.clone();
        set.spawn(async move {
            let body = format!(r#"{{"args":[{i}],"kwargs":{{}}}}"#);
            call(
                &app,
                "POST",
                "/tasks/maestro.noop",
                Some(&a),
                Some(&body),
                &[],
            )
            .await
        });
    }
    let mut ids = std::collections::HashSet::new();
    while let Some(r) = set.join_next().await {
        let (s, _, b) = r.expect("task");
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        ids.insert(b["task_id"].as_str().expect("id").to_owned());
    }
    assert_eq!(ids.len(), n);
    let conn = inspect_conn().await;
    assert_eq!(depth(&conn, &q.name).await, n as u32);
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test]
async fn a_deleted_queue_is_declared_again() {
    let run = Run::new();
    let q = run.queue("redeclare");
    let routes = format!("maestro.noop={}", q.name);
    let app = router(&["--broker", &broker_url(), "--routes", &routes]).await;
    let body = r#"{"args":[],"kwargs":{}}"#;
    let (s, _, _) = call(
        &app,
        "POST",
        "/tasks/maestro.noop",
        Some(&auth()),
        Some(body),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let conn = inspect_conn().await;
    maestro_broker::topology::delete_task_queue(&conn, &q)
        .await
        .expect("deleted");
    // The cached declaration is stale: the mandatory publish comes back, the API declares
    // the queue again and publishes once more.
    let (s, _, b) = call(
        &app,
        "POST",
        "/tasks/maestro.noop",
        Some(&auth()),
        Some(body),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(depth(&conn, &q.name).await, 1);
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test]
async fn task_states_come_from_the_result_store() {
    let Ok(mongo) = std::env::var("MONGODB_URI") else {
        eprintln!("MONGODB_URI is unset: skipping the result store part (scripts/test.sh sets it)");
        return;
    };
    let run = Run::new();
    let db = format!("t{}", run.id);
    let base = mongo.trim_end_matches('/');
    let backend = match base.split_once('?') {
        Some((head, query)) => format!("{}/{db}?{query}", head.trim_end_matches('/')),
        None => format!("{base}/{db}"),
    };
    let app = router(&[
        "--broker",
        &broker_url(),
        "--result-backend",
        &backend,
        "--mongo-uri",
        &mongo,
    ])
    .await;
    let store = ResultStore::connect(&backend, None)
        .await
        .expect("mongo is up");
    store
        .store(&TaskRecord::new(
            "ok-1",
            TaskState::Success,
            json!({"answer": 42}),
        ))
        .await
        .expect("stored");
    let failure = maestro_broker::ExceptionInfo::builtin("ValueError", "boom").to_value();
    store
        .store(&TaskRecord::new("bad-1", TaskState::Failure, failure))
        .await
        .expect("stored");
    let a = auth();
    let (s, _, b) = call(&app, "GET", "/tasks/ok-1", Some(&a), None, &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "SUCCESS");
    assert_eq!(b["result"], json!({"answer": 42}));
    assert!(b["date_done"].is_string());
    let (_, _, b) = call(&app, "GET", "/tasks/bad-1", Some(&a), None, &[]).await;
    assert_eq!(b["state"], "FAILURE");
    assert_eq!(b["error"], json!({"type": "ValueError", "message": "boom"}));
    let (_, _, b) = call(&app, "GET", "/tasks/never-sent", Some(&a), None, &[]).await;
    assert_eq!(b, json!({"task_id": "never-sent", "state": "PENDING"}));
    let (s, _, b) = call(&app, "GET", "/readyz", None, None, &[]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    store
        .mongo_database()
        .expect("a MongoDB store")
        .drop()
        .await
        .expect("drop test database");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn schedules_crud_in_mongodb_never_touches_beat_fields() {
    let Ok(mongo) = std::env::var("MONGODB_URI") else {
        eprintln!("MONGODB_URI is unset: skipping the schedules part (scripts/test.sh sets it)");
        return;
    };
    let run = Run::new();
    let db = format!("t{}", run.id);
    let app = router(&[
        "--broker",
        &broker_url(),
        "--mongo-uri",
        &mongo,
        "--mongo-database",
        &db,
    ])
    .await;
    let a = auth();
    let body = r#"{"name":"every 10s","enabled":true,"period_type":"interval","interval":{"every":10,"period":"seconds"},"task":"maestro.noop","args":[],"kwargs":{}}"#;
    let (s, _, created) = call(&app, "POST", "/schedules", Some(&a), Some(body), &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["_id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 24);
    // beat writes its fields; the API's updates keep them.
    let client = mongodb::Client::with_uri_str(&mongo).await.expect("client");
    let coll = client
        .database(&db)
        .collection::<mongodb::bson::Document>("schedulers");
    let oid = mongodb::bson::oid::ObjectId::parse_str(&id).expect("oid");
    coll.update_one(
        mongodb::bson::doc! {"_id": oid},
        mongodb::bson::doc! {"$set": {"total_run_count": 7_i64, "beat_epoch": 3_i64}},
    )
    .await
    .expect("beat write");
    let (s, _, b) = call(
        &app,
        "PATCH",
        &format!("/schedules/{id}"),
        Some(&a),
        Some(r#"{"enabled":false}"#),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["enabled"], false);
    assert_eq!(b["total_run_count"], 7);
    let put = r#"{"name":"cron","period_type":"cron","cron":{"minute":"0","hour":"3","day_of_month":"*","month_of_year":"*","day_of_week":"*"},"task":"maestro.noop"}"#;
    let (s, _, b) = call(
        &app,
        "PUT",
        &format!("/schedules/{id}"),
        Some(&a),
        Some(put),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["period_type"], "cron");
    assert!(
        b.get("interval").is_none(),
        "PUT removes fields it does not name: {b}"
    );
    assert_eq!(b["beat_epoch"], 3);
    let (s, _, b) = call(
        &app,
        "PATCH",
        &format!("/schedules/{id}"),
        Some(&a),
        Some(r#"{"last_run_at":null}"#),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, _, page) = call(&app, "GET", "/schedules?limit=10", Some(&a), None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["_id"], id.as_str());
    let (s, _, _) = call(
        &app,
        "DELETE",
        &format!("/schedules/{id}"),
        Some(&a),
        None,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = call(
        &app,
        "GET",
        &format!("/schedules/{id}"),
        Some(&a),
        None,
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    client
        .database(&db)
        .drop()
        .await
        .expect("drop test database");
}
