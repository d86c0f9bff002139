//! Canvas built in Rust (`Signature`, `Client::send_chain/send_group/send_chord`) and run by
//! the worker in-process against the real RabbitMQ and MongoDB (`MONGODB_URI`, which
//! scripts/test.sh sets): a chain passes results along, a group runs every member, a chord's
//! callback gets every member's result and fires once.

use std::time::Duration;

use clap::Parser;
use maestro_broker::client::Client;
use maestro_broker::{Signature, topology};
use maestro_results::ResultStore;
use maestro_tasks::Registry;
use maestro_testsupport::{Run, broker_url};
use maestro_worker::Shutdown;
use maestro_worker::WorkerCli;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_groups_and_chords_built_in_rust() {
    let mongo = std::env::var("MONGODB_URI")
        .expect("MONGODB_URI must name a MongoDB server (scripts/test.sh sets it)");
    let run = Run::new();
    let queue = run.queue("canvas");
    let backend = format!("{}/t{}", mongo.trim_end_matches('/'), run.id);
    let mut args = run.worker_args(&queue);
    args.extend(["--result-backend", &backend, "--default-queue", &queue.name].map(str::to_owned));
    let cfg = WorkerCli::try_parse_from(args)
        .expect("flags")
        .worker
        .into_config()
        .expect("config");
    let shutdown = Shutdown::default();
    // Dropped before `run` (declared later): even if the test panics, the worker stops before
    // the teardown deletes its topology, so it cannot reconnect and declare it again.
    let _stop_worker = shutdown.stop.clone().drop_guard();
    let worker = tokio::spawn(maestro_worker::run(
        cfg,
        Registry::with_diagnostics(),
        shutdown.clone(),
    ));
    let store = ResultStore::connect(&backend, None)
        .await
        .expect("MongoDB is reachable");
    let client = Client::connect(&broker_url(), "canvas test")
        .await
        .expect("RabbitMQ is reachable");
    topology::declare_task_queue(client.connection(), &queue)
        .await
        .expect("queue");
    let wait = Duration::from_secs(60);
    let echo = |args: Vec<serde_json::Value>| Signature::new("maestro.echo", args);

    // Results are read from MongoDB, as a client with this result backend reads them.
    let stored = |id: String| {
        let store = store.clone();
        async move {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                if let Some(m) = store
                    .get(&id)
                    .await
                    .expect("readable")
                    .filter(|m| m.status == "SUCCESS")
                {
                    return m;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{id} never succeeded"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };

    let chained = client
        .send_chain(
            vec![echo(vec![json!(1)]), echo(vec![json!("b")]), echo(vec![])],
            &queue.name,
        )
        .await
        .expect("sent");
    assert_eq!(
        stored(chained.id.clone()).await.result,
        json!([[[[[[1], {}], "b"], {}]], {}])
    );

    let (_, members) = client
        .send_group(
            vec![echo(vec![json!(1)]), echo(vec![json!(2)])],
            &queue.name,
        )
        .await
        .expect("sent");
    for (i, m) in members.iter().enumerate() {
        assert_eq!(stored(m.id.clone()).await.result, json!([[i + 1], {}]));
    }

    let header = (0..5).map(|i| echo(vec![json!(i)])).collect();
    let callback = client
        .send_chord(header, echo(vec![json!("all")]), &queue.name, &store)
        .await
        .expect("sent");
    let meta = stored(callback).await;
    let results: Vec<_> = (0..5).map(|i| json!([[i], {}])).collect();
    assert_eq!(meta.result, json!([[results, "all"], {}]));

    shutdown.stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("stops")
        .expect("joined")
        .expect("clean exit");
    let _ = store
        .mongo_database()
        .expect("a MongoDB store")
        .drop()
        .await;
    client.close().await;
}
