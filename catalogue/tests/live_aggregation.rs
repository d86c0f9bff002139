//! `maestro.aggregation` against the real MongoDB at `MONGODB_URI` (scripts/test.sh sets it):
//! streamed output in batches, extended JSON stages, the old result dropped first, server
//! errors failing with the server's message, and another tenant's documents out of reach.

use std::sync::Arc;

use futures_util::TryStreamExt;
use maestro_catalogue::{CatalogueArgs, Services, register};
use maestro_tasks::{Registry, TaskArgs, TaskContext, TaskError, TaskResult};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{DateTime, Document, doc};
use serde_json::{Value, json};

const OWNER: &str = "5f0000000000000000000001";
const OTHER: &str = "5f0000000000000000000002";

fn oid(hex: &str) -> ObjectId {
    ObjectId::parse_str(hex).expect("oid")
}

fn settings(db: &str, insert_qtd: usize) -> CatalogueArgs {
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        catalogue: CatalogueArgs,
    }
    let uri = std::env::var("MONGODB_URI")
        .expect("MONGODB_URI must name a MongoDB server (scripts/test.sh sets it)");
    let reports = format!("{db}-reports");
    let qtd = insert_qtd.to_string();
    let argv = [
        "test",
        "--mongo-uri",
        &uri,
        "--mongo-database",
        db,
        "--reports-database",
        &reports,
        "--insert-qtd",
        &qtd,
    ];
    <Flags as clap::Parser>::try_parse_from(argv)
        .expect("flags")
        .catalogue
}

struct Fixture {
    svc: Arc<Services>,
    registry: Registry,
}

impl Fixture {
    async fn new(insert_qtd: usize) -> Self {
        let db = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let svc = Services::new(settings(&db, insert_qtd))
            .await
            .expect("services");
        let mut registry = Registry::new();
        register(&mut registry, &svc).expect("registered");
        Self { svc, registry }
    }

    async fn run(&self, id: &str, mut kwargs: Value) -> TaskResult {
        kwargs
            .as_object_mut()
            .expect("kwargs")
            .entry("owner_user")
            .or_insert(json!(OWNER));
        let task = self
            .registry
            .get("maestro.aggregation")
            .expect("registered")
            .clone();
        let mut ctx = TaskContext::new(id, "maestro.aggregation", "report", Arc::from("w@h"));
        ctx.states = self.registry.states().clone();
        task.run(
            &ctx,
            &TaskArgs::from_values(&json!([]), &kwargs).expect("json"),
        )
        .await
    }

    async fn rows(&self, collection: &str) -> Vec<Document> {
        self.svc
            .reports
            .collection::<Document>(collection)
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("read")
    }

    async fn cleanup(self) {
        self.svc.inventory.drop().await.expect("drop");
        self.svc.reports.drop().await.expect("drop");
    }
}

#[tokio::test]
async fn pipeline_output_is_streamed_into_the_report_collection_in_batches() {
    let f = Fixture::new(3).await;
    let servers = f.svc.inventory.collection::<Document>("servers");
    let old = DateTime::parse_rfc3339_str("2020-01-01T00:00:00Z").expect("date");
    let new = DateTime::parse_rfc3339_str("2025-01-01T00:00:00Z").expect("date");
    let docs: Vec<Document> = (0..10)
        .map(|i| {
            doc! {"_id": i, "hostname": format!("web-{i}"), "n": i,
            "created_at": if i < 7 { new } else { old }, "roles": [{"_id": oid(OWNER)}]}
        })
        .collect();
    servers.insert_many(docs).await.expect("seed");
    // Another tenant's servers, which no pipeline of this owner sees.
    let theirs: Vec<Document> = (100..103)
        .map(|i| {
            doc! {"_id": i, "hostname": format!("theirs-{i}"), "n": i, "created_at": new,
            "roles": [{"_id": oid(OTHER)}]}
        })
        .collect();
    servers.insert_many(theirs).await.expect("seed theirs");
    // A previous result under the same report id is replaced, not appended to.
    let target = f.svc.reports.collection::<Document>("r1_aggregation");
    target
        .insert_one(doc! {"_id": "stale"})
        .await
        .expect("stale row");

    let got = f
        .run(
            "t-1",
            json!({"collection": "servers", "report_id": "r1", "pipeline": [
                {"$match": {"created_at": {"$gte": {"$date": "2024-01-01T00:00:00Z"}}}},
                {"$project": {"hostname": 1, "double": {"$multiply": ["$n", 2]}}}
            ]}),
        )
        .await
        .expect("aggregated");
    assert_eq!(
        got,
        json!({"report_id": "r1", "collection": "r1_aggregation", "rows": 7})
    );
    let rows = f.rows("r1_aggregation").await;
    assert_eq!(rows.len(), 7, "{rows:?}");
    assert_eq!(rows[3], doc! {"_id": 3, "hostname": "web-3", "double": 6});

    // report_id defaults to the task id; a group's _id is kept.
    let got = f
        .run(
            "t-2",
            json!({"collection": "servers", "pipeline": [
                {"$group": {"_id": {"$gte": ["$n", 5]}, "count": {"$sum": 1}}}
            ]}),
        )
        .await
        .expect("aggregated");
    assert_eq!(got["collection"], "t-2_aggregation");
    assert_eq!(got["rows"], 2);
    let rows = f.rows("t-2_aggregation").await;
    assert_eq!(
        rows,
        vec![
            doc! {"_id": false, "count": 5},
            doc! {"_id": true, "count": 5}
        ]
    );

    // An empty output leaves an empty (dropped) collection and says 0 rows.
    let got = f
        .run(
            "t-3",
            json!({"collection": "servers", "report_id": "r1",
                   "pipeline": [{"$match": {"n": -1}}]}),
        )
        .await
        .expect("aggregated");
    assert_eq!(got["rows"], 0);
    assert!(f.rows("r1_aggregation").await.is_empty());
    f.cleanup().await;
}

#[tokio::test]
async fn a_pipeline_the_server_rejects_fails_with_its_message_and_keeps_the_old_result() {
    let f = Fixture::new(500).await;
    f.svc
        .inventory
        .collection::<Document>("servers")
        .insert_one(doc! {"n": 1})
        .await
        .expect("seed");
    let target = f.svc.reports.collection::<Document>("r2_aggregation");
    target
        .insert_one(doc! {"_id": "kept"})
        .await
        .expect("old row");
    let err = f
        .run(
            "t-4",
            json!({"collection": "servers", "report_id": "r2",
                   "pipeline": [{"$limit": -1}]}),
        )
        .await
        .expect_err("bad stage");
    assert!(matches!(err, TaskError::Fail { .. }), "{err:?}");
    assert!(err.to_string().contains("running the pipeline"), "{err}");
    assert_eq!(f.rows("r2_aggregation").await, vec![doc! {"_id": "kept"}]);

    let err = f
        .run(
            "t-5",
            json!({"collection": "servers", "pipeline": [{"$out": "elsewhere"}]}),
        )
        .await
        .expect_err("$out");
    assert!(err.to_string().contains("$out is not allowed"), "{err}");
    f.cleanup().await;
}

#[tokio::test]
async fn another_tenants_documents_and_the_stored_credentials_are_out_of_reach() {
    let f = Fixture::new(100).await;
    let inv = &f.svc.inventory;
    inv.collection::<Document>("servers")
        .insert_many([
            doc! {"_id": "mine", "app": "a1", "roles": [{"_id": oid(OWNER)}]},
            doc! {"_id": "theirs", "app": "a1", "roles": [{"_id": oid(OTHER)}]},
        ])
        .await
        .expect("servers");
    inv.collection::<Document>("applications")
        .insert_many([
            doc! {"_id": "a1-mine", "key": "a1", "tag": "mine", "roles": [{"_id": oid(OWNER)}]},
            doc! {"_id": "a1-theirs", "key": "a1", "tag": "theirs", "roles": [{"_id": oid(OTHER)}]},
            doc! {"_id": "a1-nobody", "key": "a1", "tag": "nobody"},
        ])
        .await
        .expect("applications");
    inv.collection::<Document>("connections")
        .insert_one(doc! {"conn": "eyJ.cloud-keys.sig", "roles": [{"_id": oid(OWNER)}]})
        .await
        .expect("connections");

    // Both join forms keep only the owner's documents.
    f.run(
        "t-7",
        json!({"collection": "servers", "report_id": "j", "pipeline": [
            {"$lookup": {"from": "applications", "localField": "app", "foreignField": "key",
                         "as": "apps"}},
            {"$lookup": {"from": "applications", "as": "all",
                         "pipeline": [{"$project": {"tag": 1}}]}},
            {"$project": {"apps.tag": 1, "all.tag": 1}}
        ]}),
    )
    .await
    .expect("aggregated");
    assert_eq!(
        f.rows("j_aggregation").await,
        vec![doc! {"_id": "mine", "apps": [{"tag": "mine"}], "all": [{"tag": "mine"}]}]
    );

    // The credentials cannot be read, joined or reached by a stage outside the allowlist, and
    // server-side JavaScript is refused before anything runs.
    for (n, pipeline, says) in [
        (0, json!([{"$match": {}}]), "not an inventory collection"),
        (
            1,
            json!([{"$lookup": {"from": "connections", "as": "c", "pipeline": []}}]),
            "pipeline[0].$lookup.from",
        ),
        (
            2,
            json!([{"$unionWith": "connections"}]),
            "$unionWith is not an allowed stage",
        ),
        (
            3,
            json!([{"$graphLookup": {"from": "connections"}}]),
            "$graphLookup",
        ),
        (
            4,
            json!([{"$match": {"$where": "sleep(100000)"}}]),
            "runs JavaScript",
        ),
    ] {
        let collection = if n == 0 { "connections" } else { "servers" };
        let err = f
            .run(
                &format!("a-{n}"),
                json!({"collection": collection, "report_id": format!("a{n}"),
                                          "pipeline": pipeline}),
            )
            .await
            .expect_err("refused");
        assert!(matches!(err, TaskError::Fail { .. }), "{err:?}");
        assert!(err.to_string().contains(says), "{n}: {err}");
        assert!(f.rows(&format!("a{n}_aggregation")).await.is_empty());
    }
    f.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_server_is_retried() {
    let mut cfg = settings("unused", 10);
    cfg.mongo.mongo_uri = "mongodb://127.0.0.1:9".into();
    let svc = Services::new(cfg).await.expect("services");
    let mut registry = Registry::new();
    register(&mut registry, &svc).expect("registered");
    let task = registry
        .get("maestro.aggregation")
        .expect("registered")
        .clone();
    let mut ctx = TaskContext::new("t-6", "maestro.aggregation", "report", Arc::from("w@h"));
    ctx.states = registry.states().clone();
    let kwargs =
        json!({"collection": "servers", "pipeline": [{"$match": {}}], "owner_user": OWNER});
    let err = task
        .run(
            &ctx,
            &TaskArgs::from_values(&json!([]), &kwargs).expect("json"),
        )
        .await
        .expect_err("unreachable");
    assert!(matches!(err, TaskError::Retry { .. }), "{err:?}");
}
