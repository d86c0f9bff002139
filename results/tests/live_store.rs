//! The MongoDB result store against a real server (`MONGODB_URI`, set by scripts/test.sh):
//! chord counting under concurrency, and a SUCCESS that later writes cannot overwrite.

use maestro_broker::TaskState;
use maestro_results::{ResultStore, Stored, TaskRecord};
use serde_json::json;

async fn store(db: &str) -> ResultStore {
    let uri = std::env::var("MONGODB_URI")
        .expect("MONGODB_URI must name a MongoDB server (scripts/test.sh sets it)");
    ResultStore::connect(&format!("{}/{db}", uri.trim_end_matches('/')), None)
        .await
        .expect("MongoDB is reachable")
}

fn record(id: &str, state: TaskState, result: serde_json::Value) -> TaskRecord {
    TaskRecord {
        name: Some("t".into()),
        ..TaskRecord::new(id, state, result)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chord_members_finishing_at_once_are_each_counted_once() {
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    let s = store(&db).await;
    let group = "g-1";
    let counts = futures_util::future::join_all((0..20).map(|i| {
        let s = s.clone();
        async move {
            s.chord_member_done(group, &format!("m-{i}"))
                .await
                .expect("counted")
        }
    }))
    .await;
    assert_eq!(counts.iter().max(), Some(&20), "{counts:?}");
    let mut sorted = counts.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=20).collect::<Vec<u64>>(),
        "every member counted exactly once: {counts:?}"
    );
    assert_eq!(
        s.chord_member_done(group, "m-3").await.expect("checked"),
        20,
        "a redelivered member is not counted again, and learns the count"
    );
    assert!(!s.chord_fired(group).await.expect("read"));
    assert!(s.mark_chord_fired(group).await.expect("mark"));
    assert!(
        !s.mark_chord_fired(group).await.expect("mark"),
        "marked once"
    );
    assert!(s.chord_fired(group).await.expect("read"));
    let _ = s.mongo_database().expect("a MongoDB store").drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_is_never_overwritten() {
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    let s = store(&db).await;
    assert_eq!(
        s.store(&record("a", TaskState::Started, json!(null)))
            .await
            .expect("stored"),
        Stored::Written
    );
    assert_eq!(
        s.store(&record("a", TaskState::Success, json!(1)))
            .await
            .expect("stored"),
        Stored::Written
    );
    assert_eq!(
        s.store(&record("a", TaskState::Failure, json!(2)))
            .await
            .expect("stored"),
        Stored::AlreadySucceeded
    );
    let meta = s.get("a").await.expect("read").expect("present");
    assert_eq!((meta.status.as_str(), meta.result), ("SUCCESS", json!(1)));
    assert!(s.has_succeeded("a").await.expect("lookup"));
    assert!(!s.has_succeeded("b").await.expect("lookup"));
    s.store(&record("c", TaskState::Failure, json!({"exc_type": "E"})))
        .await
        .expect("stored");
    // Read at once, in the order asked, unknown ids as None (more ids than one query takes).
    let mut ids: Vec<String> = (0..1_500).map(|i| format!("unknown-{i}")).collect();
    ids.extend(["c".to_owned(), "b".to_owned(), "a".to_owned()]);
    let metas = s.get_many(&ids).await.expect("read");
    assert_eq!(metas.len(), ids.len());
    assert!(metas[..1_500].iter().all(Option::is_none));
    let tail: Vec<Option<(String, String)>> = metas[1_500..]
        .iter()
        .map(|m| m.as_ref().map(|m| (m.id.clone(), m.status.clone())))
        .collect();
    assert_eq!(
        tail,
        vec![
            Some(("c".into(), "FAILURE".into())),
            None,
            Some(("a".into(), "SUCCESS".into()))
        ]
    );
    let _ = s.mongo_database().expect("a MongoDB store").drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_are_split_and_a_refused_write_is_not_retryable() {
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    let s = store(&db).await;
    // Three 6 MiB results at once would make one 18 MiB command: they go as several.
    let big = "x".repeat(6 * 1024 * 1024);
    let records: Vec<TaskRecord> = (0..3)
        .map(|i| record(&format!("big-{i}"), TaskState::Success, json!(big)))
        .collect();
    let writes = futures_util::future::join_all(records.iter().map(|r| s.store(r))).await;
    for w in writes {
        assert_eq!(w.expect("stored"), Stored::Written);
    }
    assert_eq!(
        s.get("big-2").await.expect("read").expect("present").result,
        json!(big)
    );
    // A document over MongoDB's 16 MiB: refused for good, so the worker does not retry it.
    let huge = "y".repeat(17 * 1024 * 1024);
    match s
        .store(&record("huge", TaskState::Success, json!(huge)))
        .await
    {
        Err(e) => assert!(!e.is_retryable(), "{e}"),
        Ok(got) => {
            eprintln!("this server stores documents over 16 MiB ({got:?}); MongoDB does not")
        }
    }
    let _ = s.mongo_database().expect("a MongoDB store").drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_concern_of_the_url_is_sent() {
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    let uri = std::env::var("MONGODB_URI").expect("MONGODB_URI");
    let (base, query) = match uri.split_once('?') {
        Some((b, q)) => (b.trim_end_matches('/').to_owned(), format!("{q}&")),
        None => (uri.trim_end_matches('/').to_owned(), String::new()),
    };
    let s = ResultStore::connect(&format!("{base}/{db}?{query}w=1&journal=true"), None)
        .await
        .expect("connects");
    assert_eq!(
        s.store(&record("wc", TaskState::Success, json!(1)))
            .await
            .expect("stored with the URL's write concern"),
        Stored::Written
    );
    let _ = s.mongo_database().expect("a MongoDB store").drop().await;
}
