//! Sending tasks and awaiting their results over `rpc://`, as a Celery client does.
//!
//! Lifecycle: `Client::connect` opens a connection, a confirm channel and one exclusive,
//! auto-delete reply queue (like Celery's RPC backend). A dispatcher task reads every reply and
//! hands it to the `AsyncResult` waiting for that task id (`correlation_id`). `send` returns once
//! the broker confirmed the message; `AsyncResult::get` waits for a ready state (SUCCESS,
//! FAILURE, REVOKED) and yields the intermediate ones (RETRY, STARTED) through `next_state`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::Connection;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::connection::{connect, parse_broker_url};
use crate::error::BrokerError;
use crate::message::TaskMessage;
use crate::publisher::Publisher;
use crate::signature::{Signature, TypedSignature};

/// One state a task reported.
#[derive(Debug, Clone, PartialEq)]
pub struct StateReport {
    pub status: String,
    pub result: Value,
    pub traceback: Option<String>,
}

impl StateReport {
    pub fn is_ready(&self) -> bool {
        matches!(self.status.as_str(), "SUCCESS" | "FAILURE" | "REVOKED")
    }
}

/// Why a result did not arrive.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("no result for task {id} within {waited:?}")]
    Timeout { id: String, waited: Duration },
    #[error("the reply consumer stopped (connection lost) before task {id} finished")]
    Closed { id: String },
    #[error("result store: {0}")]
    Store(String),
}

/// Why a typed call gave no result.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The task failed (or was revoked): its exception as the worker recorded it.
    #[error("task {id} ended {status}: {exc_type}: {message}")]
    Failed {
        id: String,
        status: String,
        exc_type: String,
        message: String,
        traceback: Option<String>,
    },
    /// The result is not the type the signature promised.
    #[error("task {id}'s result is not the expected type: {reason}")]
    Decode { id: String, reason: String },
}

/// The pending result of a typed call ([`Client::call`]).
pub struct TypedResult<R> {
    inner: AsyncResult,
    result: std::marker::PhantomData<fn() -> R>,
}

impl<R: serde::de::DeserializeOwned> TypedResult<R> {
    /// The task's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Waits for the result; the task's failure is a [`CallError::Failed`].
    pub async fn get(&mut self, timeout: Duration) -> Result<R, CallError> {
        let report = self.inner.get(timeout).await?;
        let id = self.inner.id.clone();
        if report.status != "SUCCESS" {
            let text = |k: &str| match report.result.get(k) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(a)) if a.len() == 1 => match &a[0] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                Some(other) => other.to_string(),
                None => String::new(),
            };
            return Err(CallError::Failed {
                id,
                status: report.status,
                exc_type: text("exc_type"),
                message: text("exc_message"),
                traceback: report.traceback,
            });
        }
        serde_json::from_value(report.result).map_err(|e| CallError::Decode {
            id,
            reason: e.to_string(),
        })
    }
}

/// Where a chord's group is recorded before its members are sent, as Celery saves the group
/// first so the member completing it can find every sibling: the MongoDB result store
/// (`maestro_results::ResultStore`) is one.
pub trait GroupStore {
    /// Records `member_ids` as the group `group_id`.
    fn save_group(
        &self,
        group_id: &str,
        member_ids: &[String],
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

fn invalid(what: &str, e: crate::message::DecodeError) -> BrokerError {
    BrokerError::Topology {
        name: what.to_owned(),
        reason: e.to_string(),
    }
}

type Waiters = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<StateReport>>>>;

/// A Celery client with an `rpc://` result backend.
pub struct Client {
    conn: Connection,
    publisher: Publisher,
    reply_queue: String,
    waiters: Waiters,
    dispatcher: tokio::task::JoinHandle<()>,
    /// This producer's node name when it sends `task-sent` events.
    sent_events: Option<String>,
}

/// The pending result of one sent task. Dropping it stops listening for its replies.
pub struct AsyncResult {
    pub id: String,
    rx: mpsc::UnboundedReceiver<StateReport>,
    waiters: Waiters,
}

impl Drop for AsyncResult {
    fn drop(&mut self) {
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl Client {
    /// Connects to `broker_url` (Celery spelling) with a reply queue of its own.
    pub async fn connect(broker_url: &str, name: &str) -> Result<Self, BrokerError> {
        let conn = connect(&parse_broker_url(broker_url)?, name).await?;
        let publisher = Publisher::open(&conn).await?;
        let channel = conn.create_channel().await?;
        let reply_queue = format!("{}.reply.maestro", uuid::Uuid::new_v4());
        channel
            .queue_declare(
                reply_queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let mut replies = channel
            .basic_consume(
                reply_queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let waiters: Waiters = Arc::default();
        let dispatch_to = waiters.clone();
        let dispatcher = tokio::spawn(async move {
            while let Some(Ok(delivery)) = replies.next().await {
                let Some(id) = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|s| s.to_string())
                else {
                    continue;
                };
                let Ok(body) = serde_json::from_slice::<Value>(&delivery.data) else {
                    continue;
                };
                let report = StateReport {
                    status: body["status"].as_str().unwrap_or_default().to_owned(),
                    result: body["result"].clone(),
                    traceback: body["traceback"].as_str().map(str::to_owned),
                };
                let waiters = dispatch_to.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(tx) = waiters.get(&id) {
                    let _ = tx.send(report);
                }
            }
        });
        Ok(Self {
            conn,
            publisher,
            reply_queue,
            waiters,
            dispatcher,
            sent_events: None,
        })
    }

    /// Announces every task this client sends with Celery's `task-sent` event (Python's
    /// `task_send_sent_event = True`), as node `gen<pid>@<host>`, so Flower lists the task as
    /// SENT before a worker takes it. Declares the `celeryev` exchange.
    pub async fn with_sent_events(mut self) -> Result<Self, BrokerError> {
        self.publisher.declare_event_exchange().await?;
        self.sent_events = Some(crate::events::producer_hostname());
        Ok(self)
    }

    /// The connection, for declaring topology or inspecting queues.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Sends `msg` to `exchange` / `routing_key` with this client as `reply_to`; returns once
    /// the broker confirmed it.
    pub async fn send(
        &self,
        mut msg: TaskMessage,
        exchange: &str,
        routing_key: &str,
    ) -> Result<AsyncResult, BrokerError> {
        msg.properties.reply_to = Some(self.reply_queue.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let id = msg.headers.id.clone();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), tx);
        if let Err(e) = self
            .publisher
            .publish_task(exchange, routing_key, &msg)
            .await
        {
            self.waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return Err(e);
        }
        if let Some(hostname) = &self.sent_events {
            let queue = if exchange.is_empty() { routing_key } else { "" };
            if let Err(e) = self
                .publisher
                .publish_sent_event(hostname, &msg, queue, exchange, routing_key)
                .await
            {
                tracing::warn!(event = "task_sent_event_lost", id = %id, error = %e);
            }
        }
        Ok(AsyncResult {
            id,
            rx,
            waiters: self.waiters.clone(),
        })
    }

    /// Sends `task(*args, **kwargs)` to `queue` through the default exchange, as Celery 5.7
    /// publishes: a queue that does not exist is an `Unroutable` error and the channel stays
    /// usable (publishing to a missing named exchange would close it).
    pub async fn send_task(
        &self,
        task: &str,
        args: Value,
        kwargs: Value,
        queue: &str,
    ) -> Result<AsyncResult, BrokerError> {
        let msg = TaskMessage::new(task, &args, &kwargs).map_err(|e| invalid(task, e))?;
        self.send(msg, "", queue).await
    }

    /// Sends the task `sig` describes to its queue (else `default_queue`), replying here.
    pub async fn send_signature(
        &self,
        sig: &Signature,
        default_queue: &str,
    ) -> Result<AsyncResult, BrokerError> {
        let msg = TaskMessage::from_signature(sig, None, None, None)
            .map_err(|e| invalid(&sig.task, e))?;
        let queue = sig.queue(default_queue).to_owned();
        self.send(msg, "", &queue).await
    }

    /// Sends a typed call (`add::new(1, 2)` of a `#[task]` function) to its queue (else
    /// `celery`); its result comes back as the task's return type.
    pub async fn call<R>(&self, sig: TypedSignature<R>) -> Result<TypedResult<R>, BrokerError> {
        let task = sig.task().to_owned();
        let sig = sig.into_signature().map_err(|reason| BrokerError::Encode {
            task,
            reason: format!("an argument has no JSON form: {reason}"),
        })?;
        let inner = self.send_signature(&sig, "celery").await?;
        Ok(TypedResult {
            inner,
            result: std::marker::PhantomData,
        })
    }

    /// Sends a chain: each step gets the previous step's result. Every step replies here;
    /// the result returned is the last step's.
    pub async fn send_chain(
        &self,
        steps: Vec<Signature>,
        default_queue: &str,
    ) -> Result<AsyncResult, BrokerError> {
        let steps: Vec<Signature> = steps.into_iter().map(|s| self.addressed(s)).collect();
        let last_id = steps
            .last()
            .and_then(|s| s.option_str("task_id"))
            .unwrap_or_default()
            .to_owned();
        let first = TaskMessage::chain(&steps).map_err(|e| invalid("chain", e))?;
        let queue = steps[0].queue(default_queue).to_owned();
        let (tx, rx) = mpsc::unbounded_channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(last_id.clone(), tx);
        let pending = AsyncResult {
            id: last_id,
            rx,
            waiters: self.waiters.clone(),
        };
        let mut first = first;
        first.properties.reply_to = Some(self.reply_queue.clone());
        self.publisher.publish_task("", &queue, &first).await?;
        Ok(pending)
    }

    /// Sends a group: every member at once, with the group's id and its index.
    pub async fn send_group(
        &self,
        members: Vec<Signature>,
        default_queue: &str,
    ) -> Result<(String, Vec<AsyncResult>), BrokerError> {
        let group_id = uuid::Uuid::new_v4().to_string();
        let mut pending = Vec::with_capacity(members.len());
        for (i, m) in members.into_iter().enumerate() {
            let m = m
                .with_option("group_id", Value::from(group_id.clone()))
                .with_option("group_index", Value::from(i));
            pending.push(self.send_signature(&m, default_queue).await?);
        }
        Ok((group_id, pending))
    }

    /// Sends a chord: the group is saved in `store` first (as Celery does), then each member
    /// carries the callback, which the worker completing the group fires once. Returns the
    /// callback's task id; its result is in `store`.
    pub async fn send_chord(
        &self,
        header: Vec<Signature>,
        body: Signature,
        default_queue: &str,
        store: &impl GroupStore,
    ) -> Result<String, ClientError> {
        let group_id = uuid::Uuid::new_v4().to_string();
        let callback_id = uuid::Uuid::new_v4().to_string();
        let body = body
            .with_option("task_id", Value::from(callback_id.clone()))
            .with_option("group_id", Value::from(group_id.clone()));
        let members: Vec<Signature> = header
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                m.with_option("task_id", Value::from(uuid::Uuid::new_v4().to_string()))
                    .with_option("group_id", Value::from(group_id.clone()))
                    .with_option("group_index", Value::from(i))
                    .with_option("chord", serde_json::to_value(&body).unwrap_or_default())
            })
            .collect();
        let ids: Vec<String> = members
            .iter()
            .filter_map(|m| m.option_str("task_id").map(str::to_owned))
            .collect();
        store
            .save_group(&group_id, &ids)
            .await
            .map_err(ClientError::Store)?;
        for m in &members {
            let msg = TaskMessage::from_signature(m, None, None, None)
                .map_err(|e| invalid(&m.task, e))?;
            self.publisher
                .publish_task("", m.queue(default_queue), &msg)
                .await?;
        }
        Ok(callback_id)
    }

    fn addressed(&self, sig: Signature) -> Signature {
        let id = sig
            .option_str("task_id")
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        sig.with_option("task_id", Value::from(id))
            .with_option("reply_to", Value::from(self.reply_queue.clone()))
    }

    /// Closes the connection (the reply queue goes with it).
    pub async fn close(self) {
        self.dispatcher.abort();
        let _ = self.conn.close(200, "client closed".into()).await;
    }
}

impl AsyncResult {
    /// The next state the task reports.
    pub async fn next_state(&mut self, timeout: Duration) -> Result<StateReport, ClientError> {
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(Some(report)) => Ok(report),
            Ok(None) => Err(ClientError::Closed {
                id: self.id.clone(),
            }),
            Err(_) => Err(ClientError::Timeout {
                id: self.id.clone(),
                waited: timeout,
            }),
        }
    }

    /// Waits for a ready state (SUCCESS, FAILURE, REVOKED); returns every state seen, the
    /// ready one last.
    pub async fn wait(&mut self, timeout: Duration) -> Result<Vec<StateReport>, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let report = self.next_state(left).await.map_err(|e| match e {
                ClientError::Timeout { id, .. } => ClientError::Timeout {
                    id,
                    waited: timeout,
                },
                other => other,
            })?;
            let ready = report.is_ready();
            seen.push(report);
            if ready {
                return Ok(seen);
            }
        }
    }

    /// Waits for the ready state only.
    pub async fn get(&mut self, timeout: Duration) -> Result<StateReport, ClientError> {
        let mut seen = self.wait(timeout).await?;
        seen.pop().ok_or_else(|| ClientError::Closed {
            id: self.id.clone(),
        })
    }
}
