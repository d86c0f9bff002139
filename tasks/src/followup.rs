//! Tasks that start other tasks: a running task sends follow-up tasks (and chords) through the
//! worker that runs it, on the worker's confirmed publishing channel.

use std::future::Future;
use std::pin::Pin;

use maestro_broker::trace::TraceContext;
use maestro_broker::{Signature, TaskHeaders, TaskMessage};
use serde_json::Value;

/// A boxed future of a follow-up publish.
pub type SendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// The run a follow-up is sent from: what its message needs of the parent (ids and trace).
#[derive(Debug, Clone, Copy)]
pub struct Parent<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub root_id: Option<&'a str>,
    /// The parent run's span, which becomes the follow-up's parent span.
    pub trace: Option<&'a TraceContext>,
}

/// What the worker offers a task for sending more tasks.
pub trait FollowUp: Send + Sync + 'static {
    /// Publishes the task `sig` describes, as a child of `parent`, to its `queue` option (else
    /// the worker's default queue), declaring the queue when it does not exist yet. Done when
    /// the broker confirmed it; returns the task id.
    fn send<'a>(&'a self, parent: Parent<'a>, sig: Signature) -> SendFuture<'a, String>;

    /// Records a chord of `size` members whose results are handed, in order, to `callback`
    /// once every member has finished (needs the MongoDB result store). Members are sent
    /// afterwards, one by one, with [`ChordHandle::member`].
    fn start_chord<'a>(
        &'a self,
        parent: Parent<'a>,
        size: usize,
        callback: Signature,
    ) -> SendFuture<'a, ChordHandle>;
}

impl std::fmt::Debug for dyn FollowUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FollowUp")
    }
}

/// A chord whose group is recorded and whose members are yet to be sent.
#[derive(Debug, Clone)]
pub struct ChordHandle {
    pub group_id: String,
    pub member_ids: Vec<String>,
    pub callback: Signature,
}

impl ChordHandle {
    /// A chord of `size` members with fresh ids; `callback` gets a fresh `task_id` unless set.
    pub fn new(size: usize, callback: Signature) -> Self {
        let id = || uuid::Uuid::new_v4().to_string();
        let callback = if callback.option_str("task_id").is_some() {
            callback
        } else {
            callback.with_option("task_id", Value::String(id()))
        };
        Self {
            group_id: id(),
            member_ids: (0..size).map(|_| id()).collect(),
            callback,
        }
    }

    /// Member `index` of the chord: `sig` with the member's id, group and the callback.
    pub fn member(&self, index: usize, sig: Signature) -> Option<Signature> {
        let id = self.member_ids.get(index)?;
        let callback = serde_json::to_value(&self.callback).ok()?;
        Some(
            sig.with_option("task_id", Value::String(id.clone()))
                .with_option("group_id", Value::String(self.group_id.clone()))
                .with_option("group_index", Value::from(index as u64))
                .with_option("chord", callback),
        )
    }

    /// The callback's task id.
    pub fn callback_id(&self) -> &str {
        self.callback.option_str("task_id").unwrap_or_default()
    }
}

impl Parent<'_> {
    /// Headers naming this run as the parent of a follow-up (root and parent ids).
    pub fn headers(&self) -> TaskHeaders {
        let mut h = TaskHeaders::new(self.name, self.id);
        h.root_id = Some(self.root_id.unwrap_or(self.id).to_owned());
        h
    }

    /// Makes `msg`, sent by this run, a child of the run's span.
    pub fn propagate_trace(&self, msg: &mut TaskMessage) {
        if let Some(t) = self.trace {
            t.write(&mut msg.headers);
        }
    }
}
