//! The lease and fenced firing against a real MongoDB (`MONGODB_URI`, set by scripts/test.sh)
//! and the local RabbitMQ. The three-process failover test is `tests/test_beat.py`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use maestro_beat::clock::{SystemClock, to_bson};
use maestro_beat::fire::{FireConfig, Firer};
use maestro_beat::lease::{Leadership, LeaseStore, MongoLease};
use maestro_beat::metrics::Metrics;
use maestro_broker::connection::{connect, parse_broker_url};
use maestro_broker::lapin::options::BasicGetOptions;
use maestro_broker::{QueueType, TaskMessage};
use maestro_contract::schedule::task_id;
use maestro_testsupport::{Run, broker_url};
use mongodb::bson::{Document, doc};
use tokio::sync::watch;

async fn database() -> mongodb::Database {
    let uri = std::env::var("MONGODB_URI")
        .expect("MONGODB_URI must name a MongoDB server (scripts/test.sh sets it)");
    let client = mongodb::Client::with_uri_str(&uri)
        .await
        .expect("MongoDB URI");
    client.database(&format!("t{}_beat", uuid::Uuid::new_v4().simple()))
}

fn leadership(
    epoch: i64,
) -> (
    watch::Sender<Option<Leadership>>,
    watch::Receiver<Option<Leadership>>,
) {
    watch::channel(Some(Leadership {
        epoch,
        valid_until: tokio::time::Instant::now() + Duration::from_secs(3600),
    }))
}

/// A firer for `run`'s queues: any queue, diagnostics on (the tests fire `maestro.noop`).
fn firer(db: &mongodb::Database, run: &Run, name: &str) -> Firer<SystemClock> {
    firer_with(db, run, name, |_| {})
}

fn firer_with(
    db: &mongodb::Database,
    run: &Run,
    name: &str,
    tweak: impl FnOnce(&mut FireConfig),
) -> Firer<SystemClock> {
    let mut cfg = FireConfig {
        broker: maestro_broker::connection::parse_broker_urls(&broker_url()).expect("url"),
        routes: maestro_contract::routes::maestro(),
        default_queue: format!("t{}.default", run.id),
        allow_any_queue: true,
        enable_diagnostics: true,
        queue_type: QueueType::Classic,
        grace: Duration::from_secs(5),
        origin: name.into(),
    };
    tweak(&mut cfg);
    Firer::new(
        db.collection("schedulers"),
        cfg,
        SystemClock,
        Arc::new(Metrics::default()),
    )
}

/// Every message on `queue`, acknowledged.
async fn take_all(queue: &str) -> Vec<TaskMessage> {
    let conn = connect(
        &parse_broker_url(&broker_url()).expect("url"),
        "live-beat-test",
    )
    .await
    .expect("broker");
    let ch = conn.create_channel().await.expect("channel");
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        out.push(TaskMessage::decode(&m.delivery.properties, &m.delivery.data).expect("decodes"));
    }
    let _ = conn.close(200, "done".into()).await;
    out
}

fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).expect("time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_takeover_wins_and_epochs_grow() {
    let db = database().await;
    let coll = db.collection::<Document>("lease");
    let lease = |holder: &'static str| (holder, MongoLease::new(coll.clone(), "beat"));
    let now = Utc::now();
    let ttl = Duration::from_secs(10);
    let contenders = [lease("a"), lease("b"), lease("c")];
    let results = futures_util::future::join_all(
        contenders
            .iter()
            .map(|(h, l)| async move { (*h, l.take_over(h, now, ttl).await.expect("store")) }),
    )
    .await;
    let winners: Vec<_> = results.iter().filter(|(_, e)| e.is_some()).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one takes a fresh lease: {results:?}"
    );
    let (winner, epoch) = (winners[0].0, winners[0].1.expect("epoch"));
    assert_eq!(epoch, 1);
    let store = MongoLease::new(coll.clone(), "beat");
    let other = if winner == "a" { "b" } else { "a" };

    assert!(store.renew(winner, 1, now, ttl).await.expect("renew"));
    assert!(
        !store.renew(winner, 2, now, ttl).await.expect("renew"),
        "wrong epoch"
    );
    assert!(
        !store.renew(other, 1, now, ttl).await.expect("renew"),
        "not the holder"
    );
    assert_eq!(
        store.take_over(other, now, ttl).await.expect("store"),
        None,
        "not expired"
    );

    let later = now + TimeDelta::seconds(11);
    assert_eq!(
        store.take_over(other, later, ttl).await.expect("store"),
        Some(2)
    );
    assert!(
        !store.renew(winner, 1, later, ttl).await.expect("renew"),
        "the old leader cannot renew after a takeover"
    );
    let rec = store.read().await.expect("read").expect("lease");
    assert_eq!((rec.holder.as_str(), rec.epoch), (other, 2));

    store.release(other, 2, later).await.expect("release");
    assert_eq!(
        store.take_over(winner, later, ttl).await.expect("store"),
        Some(3),
        "a released lease is taken at once"
    );
    db.drop().await.expect("drop test database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_leaders_fire_each_slot_once() {
    let db = database().await;
    let run = Run::new();
    let queue = run.queue("beat");
    let start = whole_second(Utc::now()) - TimeDelta::seconds(2);
    db.collection::<Document>("schedulers")
        .insert_one(doc! {
            "_id": "every-second", "name": "tick", "period_type": "interval",
            "interval": {"every": 1, "period": "seconds"}, "task": "maestro.noop",
            "queue": &queue.name, "enabled": true, "last_run_at": to_bson(start),
        })
        .await
        .expect("insert schedule");

    // Two beats that both believe they lead (an old leader that has not noticed yet, and the
    // new one), passing over the same schedule at the same moments for three seconds.
    let (_old_tx, old_lead) = leadership(1);
    let (_new_tx, new_lead) = leadership(2);
    let mut old = firer(&db, &run, "old");
    let mut new = firer(&db, &run, "new");
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let (mut old_fired, mut new_fired, mut republished) = (0, 0, 0);
    while tokio::time::Instant::now() < until {
        let (a, b) = tokio::join!(old.pass(&old_lead), new.pass(&new_lead));
        let (a, b) = (a.expect("old pass"), b.expect("new pass"));
        // The newer leader may see the older one's fire between its write and its publish
        // and send it too, with the same task id (workers run an id once). With the lease
        // this overlap needs clocks further apart than TTL - renew deadline.
        republished += a.republished + b.republished;
        old_fired += a.fired;
        new_fired += b.fired;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let msgs = take_all(&queue.name).await;
    let mut ids: Vec<_> = msgs.iter().map(|m| m.headers.id.clone()).collect();
    assert_eq!(ids.len() as u64, old_fired + new_fired + republished);
    ids.sort();
    ids.dedup();
    let expected: Vec<_> = (1..=ids.len() as i64)
        .map(|i| task_id("every-second", start + TimeDelta::seconds(i)))
        .collect();
    ids.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(
        ids, expected_sorted,
        "each slot once, none skipped, none twice"
    );
    assert!(
        ids.len() >= 4,
        "the two late slots and at least two more fired: {ids:?}"
    );
    let total = ids.len() as i64;

    // Once the newer epoch has written the schedule, the old leader never fires it again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = new.pass(&new_lead).await.expect("new pass");
    assert!(r.fired >= 1, "{r:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = old.pass(&old_lead).await.expect("old pass");
    assert_eq!((r.fired, r.cas_skipped), (0, 1), "{r:?}");
    old.close().await;
    new.close().await;
    let sched = db
        .collection::<Document>("schedulers")
        .find_one(doc! {"_id": "every-second"})
        .await
        .expect("read")
        .expect("schedule");
    assert_eq!(sched.get_i64("beat_epoch").ok(), Some(2), "{sched}");
    assert!(!sched.contains_key("beat_pending"), "{sched}");
    let late = take_all(&queue.name).await;
    assert_eq!(
        i64::from(sched.get_i32("total_run_count").unwrap_or_default()),
        total + late.len() as i64
    );
    db.drop().await.expect("drop test database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_written_but_not_published_is_sent_by_the_next_leader_with_its_id() {
    let db = database().await;
    let run = Run::new();
    let queue = run.queue("beat");
    let due = whole_second(Utc::now()) - TimeDelta::seconds(30);
    let id = task_id("nightly", due);
    // What a leader (epoch 1) leaves behind when it dies between the write and the publish.
    db.collection::<Document>("schedulers")
        .insert_one(doc! {
            "_id": "nightly", "period_type": "interval", "interval": {"every": 1, "period": "days"},
            "task": "maestro.echo", "queue": &queue.name, "last_run_at": to_bson(due),
            "total_run_count": 1, "beat_epoch": 1_i64,
            "beat_pending": {"task_id": &id, "due": to_bson(due), "task": "maestro.echo",
                             "queue": &queue.name, "args": [1, "two"], "kwargs": {"k": true},
                             "epoch": 1_i64},
        })
        .await
        .expect("insert schedule");

    let (_tx, lead) = leadership(2);
    let mut next = firer(&db, &run, "next");
    let r = next.pass(&lead).await.expect("pass");
    assert_eq!((r.republished, r.fired), (1, 0));
    // The old leader, back from the dead, is fenced out and sends nothing.
    let (_tx1, old_lead) = leadership(1);
    let mut old = firer(&db, &run, "old");
    let r = old.pass(&old_lead).await.expect("pass");
    assert_eq!((r.republished, r.fired), (0, 0));
    next.close().await;
    old.close().await;

    let msgs = take_all(&queue.name).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].headers.id, id);
    assert_eq!(msgs[0].headers.task, "maestro.echo");
    assert_eq!(msgs[0].args.get(), r#"[1,"two"]"#);
    let sched = db
        .collection::<Document>("schedulers")
        .find_one(doc! {"_id": "nightly"})
        .await
        .expect("read")
        .expect("schedule");
    assert!(!sched.contains_key("beat_pending"), "{sched}");
    assert_eq!(
        sched.get_i32("total_run_count").ok(),
        Some(1),
        "not counted twice"
    );
    db.drop().await.expect("drop test database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_disabled_schedules_do_not_stop_the_others() {
    let db = database().await;
    let run = Run::new();
    let queue = run.queue("beat");
    let start = whole_second(Utc::now()) - TimeDelta::seconds(61);
    let coll = db.collection::<Document>("schedulers");
    coll.insert_many([
        doc! {"_id": "bad-cron", "period_type": "cron", "cron": {"minute": "99"}, "task": "x"},
        doc! {"_id": "no-task", "interval": {"every": 1}},
        doc! {"_id": "off", "interval": {"every": 1}, "task": "maestro.noop", "queue": &queue.name,
        "enabled": false, "last_run_at": to_bson(start)},
        doc! {"_id": "deleted", "interval": {"every": 1}, "task": "maestro.noop",
        "queue": &queue.name, "active": false, "last_run_at": to_bson(start)},
        doc! {"_id": "good", "interval": {"every": 1, "period": "minutes"}, "task": "maestro.noop",
        "queue": &queue.name, "last_run_at": to_bson(start)},
    ])
    .await
    .expect("insert");
    let (_tx, lead) = leadership(1);
    let mut f = firer(&db, &run, "f");
    let r = f.pass(&lead).await.expect("pass");
    f.close().await;
    assert_eq!(r.invalid, 2);
    assert_eq!(r.fired, 1);
    let msgs = take_all(&queue.name).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0].headers.id,
        task_id("good", start + TimeDelta::seconds(60))
    );
    db.drop().await.expect("drop test database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_the_broker_refuses_does_not_stop_the_ones_after_it() {
    let db = database().await;
    let run = Run::new();
    let queue = run.queue("beat");
    // A name the broker already holds as a fanout exchange (as `celery.pidbox` is): declaring
    // it as a task queue's direct exchange fails on the channel, for this schedule only.
    let fanout = run.queue("fanout");
    let conn = connect(
        &parse_broker_url(&broker_url()).expect("url"),
        "live-beat-test",
    )
    .await
    .expect("broker");
    let ch = conn.create_channel().await.expect("channel");
    ch.exchange_declare(
        fanout.name.as_str().into(),
        maestro_broker::lapin::ExchangeKind::Fanout,
        Default::default(),
        Default::default(),
    )
    .await
    .expect("fanout exchange");
    let start = whole_second(Utc::now()) - TimeDelta::seconds(61);
    let coll = db.collection::<Document>("schedulers");
    coll.insert_many([
        doc! {"_id": "a-bad", "interval": {"every": 1, "period": "minutes"}, "task": "maestro.noop",
        "queue": &fanout.name, "last_run_at": to_bson(start)},
        doc! {"_id": "b-good", "interval": {"every": 1, "period": "minutes"}, "task": "maestro.noop",
        "queue": &queue.name, "last_run_at": to_bson(start)},
    ])
    .await
    .expect("insert");
    let (_tx, lead) = leadership(1);
    let mut f = firer(&db, &run, "f");
    let r = f.pass(&lead).await.expect("pass");
    assert_eq!((r.failed, r.fired), (1, 1), "{r:?}");
    // The refused one stays pending (retried every pass), the good one is not held up again.
    let r = f.pass(&lead).await.expect("pass");
    assert_eq!((r.failed, r.fired), (1, 0), "{r:?}");
    f.close().await;
    let msgs = take_all(&queue.name).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0].headers.id,
        task_id("b-good", start + TimeDelta::seconds(60))
    );
    let bad = coll
        .find_one(doc! {"_id": "a-bad"})
        .await
        .expect("read")
        .expect("doc");
    assert!(bad.contains_key("beat_pending"), "{bad:?}");
    let _ = conn.close(200, "done".into()).await;
    db.drop().await.expect("drop test database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_outside_the_routing_table_are_not_fired() {
    let db = database().await;
    let run = Run::new();
    let queue = run.queue("beat");
    let start = whole_second(Utc::now()) - TimeDelta::seconds(61);
    let every = doc! {"every": 1, "period": "minutes"};
    let coll = db.collection::<Document>("schedulers");
    coll.insert_many([
        // A queue no route names (MAESTRO_ALLOW_ANY_QUEUE off).
        doc! {"_id": "unrouted", "interval": every.clone(), "task": "app.job", "queue": "celery.pidbox",
        "last_run_at": to_bson(start)},
        // Internal tasks: a report's chord callback would write any report.
        doc! {"_id": "internal", "interval": every.clone(), "task": "maestro.report.finish",
        "last_run_at": to_bson(start)},
        doc! {"_id": "unlock", "interval": every.clone(), "task": "celery.chord_unlock",
        "last_run_at": to_bson(start)},
        // A diagnostic task with diagnostics off.
        doc! {"_id": "diag", "interval": every.clone(), "task": "maestro.sleep",
        "last_run_at": to_bson(start)},
        // The default queue is always allowed.
        doc! {"_id": "ok", "interval": every, "task": "app.job", "queue": &queue.name,
        "last_run_at": to_bson(start)},
    ])
    .await
    .expect("insert");
    let (_tx, lead) = leadership(1);
    let name = queue.name.clone();
    let mut f = firer_with(&db, &run, "f", |c| {
        c.allow_any_queue = false;
        c.enable_diagnostics = false;
        c.default_queue = name;
    });
    let r = f.pass(&lead).await.expect("pass");
    f.close().await;
    assert_eq!((r.invalid, r.fired, r.failed), (4, 1, 0), "{r:?}");
    let msgs = take_all(&queue.name).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].headers.task, "app.job");
    db.drop().await.expect("drop test database");
}
