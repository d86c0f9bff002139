//! Against the real RabbitMQ on 127.0.0.1:5672 (AMQP_URL overrides): delayed delivery through
//! the 28 levels, confirms, unroutable detection, and tolerance of topology conflicts. Every
//! test uses names of its own (`maestro_testsupport::Run`), deleted even when it fails.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use maestro_broker::connection::{connect, parse_broker_url};
use maestro_broker::{BrokerError, Publisher, QueueType, TaskMessage, TaskQueue, topology};
use maestro_testsupport::Run;

async fn conn() -> Connection {
    let url = maestro_testsupport::broker_url();
    connect(
        &parse_broker_url(&url).expect("valid url"),
        "maestro-broker tests",
    )
    .await
    .expect("RabbitMQ is reachable")
}

#[tokio::test]
async fn a_delayed_message_arrives_after_its_delay_and_not_before() {
    let conn = conn().await;
    let run = Run::new();
    let topo = run.delay.clone();
    let queue = run.queue("delayed");
    topology::declare_delay_topology(&conn, &topo, QueueType::Classic)
        .await
        .expect("delay topology");
    topology::declare_task_queue(&conn, &queue)
        .await
        .expect("task queue");
    topology::bind_delayed_delivery(&conn, &topo, &queue)
        .await
        .expect("binding");

    let publisher = Publisher::open(&conn).await.expect("publisher");
    let msg = TaskMessage::new(
        "maestro.noop",
        &serde_json::json!([]),
        &serde_json::json!({}),
    )
    .expect("message");
    let sent = Instant::now();
    // 3 s = levels 1 and 0: the message passes through two queues.
    publisher
        .publish_delayed(
            &topo,
            3,
            &queue.name,
            msg.encode_properties(),
            &msg.encode_body(),
        )
        .await
        .expect("confirmed");
    let ch = conn.create_channel().await.expect("channel");
    let mut consumer = ch
        .basic_consume(
            queue.name.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let delivery = tokio::time::timeout(Duration::from_secs(20), consumer.next())
        .await
        .expect("arrives within 20 s")
        .expect("stream open")
        .expect("delivery");
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(2900),
        "arrived after {waited:?}, before its 3 s delay"
    );
    let got = TaskMessage::decode(&delivery.properties, &delivery.data).expect("decodes");
    assert_eq!(got.headers.id, msg.headers.id);
}

#[tokio::test]
async fn an_unroutable_task_is_an_error_not_a_silent_drop() {
    let conn = conn().await;
    let run = Run::new();
    let publisher = Publisher::open(&conn).await.expect("publisher");
    let msg = TaskMessage::new(
        "maestro.noop",
        &serde_json::json!([]),
        &serde_json::json!({}),
    )
    .expect("message");
    let err = publisher
        .publish_task("", &format!("t{}.nowhere", run.id), &msg)
        .await
        .expect_err("unroutable");
    assert!(matches!(err, BrokerError::Unroutable { .. }), "{err}");
    // The channel stays usable afterwards.
    let queue = run.queue("somewhere");
    topology::declare_task_queue(&conn, &queue)
        .await
        .expect("queue");
    publisher
        .publish_task(&queue.exchange, &queue.routing_key, &msg)
        .await
        .expect("routable");
}

#[tokio::test]
async fn a_queue_declared_with_other_arguments_is_used_as_it_is() {
    let conn = conn().await;
    let run = Run::new();
    // Deleted by `run` on drop, whatever its arguments.
    let name = run.queue("conflict").name;
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("classic queue");
    // Asking for quorum where a classic queue exists: warned about, not fatal.
    let queue = TaskQueue::named(&name, QueueType::Quorum);
    topology::declare_task_queue(&conn, &queue)
        .await
        .expect("tolerated");
    let publisher = Publisher::open(&conn).await.expect("publisher");
    let props = BasicProperties::default();
    publisher
        .publish(&queue.exchange, &queue.routing_key, props, b"x", true)
        .await
        .expect("bound and routable");
}

#[tokio::test]
async fn a_failover_list_skips_a_node_that_is_down() {
    // A port nothing listens on, then the real broker: the connection lands on the second
    // URL, and the next connection starts after it (round robin), on the dead node first.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let spec = format!(
        "amqp://guest:guest@127.0.0.1:{dead}//;{}",
        maestro_testsupport::broker_url()
    );
    let urls = maestro_broker::connection::parse_broker_urls(&spec).expect("valid urls");
    let (conn, i) = urls
        .connect("maestro-broker failover test")
        .await
        .expect("connects");
    assert_eq!(i, 1);
    assert!(conn.status().connected());
    let (again, j) = urls
        .connect("maestro-broker failover test")
        .await
        .expect("connects");
    assert_eq!(j, 1, "the dead node was tried and skipped");
    let _ = again.close(200, "done".into()).await;
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test]
async fn a_client_asked_to_announces_what_it_sends_with_task_sent() {
    let conn = conn().await;
    let run = Run::new();
    let queue = run.queue("announced");
    topology::declare_task_queue(&conn, &queue)
        .await
        .expect("queue");
    let client = maestro_broker::client::Client::connect(
        &maestro_testsupport::broker_url(),
        "sent events test",
    )
    .await
    .expect("client")
    .with_sent_events()
    .await
    .expect("the event exchange");
    let ch = conn.create_channel().await.expect("channel");
    let events = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("events queue");
    ch.queue_bind(
        events.name().clone(),
        maestro_broker::events::EXCHANGE.into(),
        maestro_broker::events::ROUTING_KEY.into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("bound");
    let mut consumer = ch
        .basic_consume(
            events.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consumer");
    let sent = client
        .send_task(
            "maestro.noop",
            serde_json::json!([]),
            serde_json::json!({}),
            &queue.routing_key,
        )
        .await
        .expect("sent");
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(d)) = consumer.next().await {
            let e: serde_json::Value = serde_json::from_slice(&d.data).expect("JSON event");
            if e["uuid"] == sent.id.as_str() {
                return e;
            }
        }
        panic!("the consumer ended");
    })
    .await
    .expect("the task-sent event arrives");
    assert_eq!(event["type"], "task-sent");
    assert_eq!(event["name"], "maestro.noop");
    assert_eq!(event["queue"], queue.routing_key.as_str());
    assert!(
        event["hostname"]
            .as_str()
            .is_some_and(|h| h.starts_with("gen"))
    );
}
