//! Celery events on the `celeryev` topic exchange in Celery's shapes, so Flower and `celery
//! events` show these workers. As Celery's worker: worker events (`worker.online`,
//! `worker.heartbeat` every 2 s, `worker.offline`) always, unless `--without-heartbeat`; task
//! events (routing key `task.multi`, a list body, as Celery 5.7 sends them) with `-E`, or once
//! `celery control enable_events` turns them on. Events are transient (delivery mode 1) and not
//! confirmed: a lost event never holds up a task.

use std::sync::Arc;
use std::time::Duration;

use lapin::{Channel, Connection};
use maestro_broker::{BrokerError, events};
use serde_json::{Map, Value, json};

use crate::stats::WorkerState;

/// Seconds between worker heartbeats, as Celery's default.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(2);

/// Publishes events for one session.
#[derive(Clone)]
pub(crate) struct Events {
    channel: Channel,
    state: Arc<WorkerState>,
}

impl Events {
    pub(crate) async fn open(
        conn: &Connection,
        state: Arc<WorkerState>,
    ) -> Result<Self, BrokerError> {
        let channel = conn.create_channel().await?;
        events::declare_exchange(&channel).await?;
        Ok(Self { channel, state })
    }

    fn base(&self, kind: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("hostname".into(), json!(self.state.hostname));
        m.insert("utcoffset".into(), json!(0.0));
        m.insert("pid".into(), json!(std::process::id()));
        m.insert("clock".into(), json!(self.state.tick(None)));
        m.insert("timestamp".into(), json!(events::now_unix()));
        m.insert("type".into(), json!(kind));
        m
    }

    async fn publish(&self, routing_key: &str, body: &Value) {
        // Best effort: an event that cannot go out never holds up a task.
        let _ = Box::pin(events::publish(
            &self.channel,
            &self.state.hostname,
            routing_key,
            body,
        ))
        .await;
    }

    /// Closes the channel and awaits the broker's close-ok (see `control::Running::stop`).
    pub(crate) async fn close(&self) {
        let _ = self.channel.close(200, "worker stopping".into()).await;
    }

    /// Whether task events are sent now.
    pub(crate) fn tasks_on(&self) -> bool {
        self.state.task_events()
    }

    /// A task event (`task-received`, `task-started`, ...) with its own fields, when task
    /// events are on.
    pub(crate) async fn task(&self, kind: &str, uuid: &str, fields: Value) {
        if !self.state.task_events() {
            return;
        }
        let mut m = self.base(kind);
        m.insert("uuid".into(), json!(uuid));
        if let Value::Object(extra) = fields {
            m.extend(extra);
        }
        self.publish("task.multi", &Value::Array(vec![Value::Object(m)]))
            .await;
    }

    /// A worker event: `worker-online`, `worker-heartbeat`, `worker-offline`.
    pub(crate) async fn worker(&self, kind: &str) {
        let mut m = self.base(kind);
        m.insert("freq".into(), json!(HEARTBEAT.as_secs_f64()));
        m.insert("active".into(), json!(self.state.active_count()));
        m.insert("processed".into(), json!(self.state.processed()));
        m.insert("loadavg".into(), json!(loadavg()));
        m.insert("sw_ident".into(), json!("maestro-worker"));
        m.insert("sw_ver".into(), json!(env!("CARGO_PKG_VERSION")));
        m.insert("sw_sys".into(), json!(std::env::consts::OS));
        let key = format!("worker.{}", kind.trim_start_matches("worker-"));
        self.publish(&key, &Value::Object(m)).await;
    }

    /// Sends heartbeats every `HEARTBEAT` until dropped.
    pub(crate) fn spawn_heartbeat(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(HEARTBEAT);
            every.tick().await;
            loop {
                every.tick().await;
                me.worker("worker-heartbeat").await;
            }
        })
    }
}

fn loadavg() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| {
            s.split_whitespace()
                .take(3)
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
