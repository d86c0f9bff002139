//! Canvas signatures as Celery serialises them in a message body's embed: a task name, its
//! arguments and options. Unknown fields are kept so a signature from Python travels on intact.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::message::{DecodeError, TaskHeaders, TaskMessage};

/// One `Signature` (celery.canvas.Signature as a dict).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub task: String,
    #[serde(default = "empty_array")]
    pub args: Value,
    #[serde(default = "empty_object")]
    pub kwargs: Value,
    #[serde(default)]
    pub options: Map<String, Value>,
    #[serde(default)]
    pub subtask_type: Option<String>,
    #[serde(default)]
    pub immutable: bool,
    /// Fields this crate does not interpret (chord_size, a group's `tasks`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn empty_array() -> Value {
    Value::Array(Vec::new())
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl Signature {
    /// A signature for `task` with positional arguments.
    pub fn new(task: impl Into<String>, args: Vec<Value>) -> Self {
        Self {
            task: task.into(),
            args: Value::Array(args),
            kwargs: empty_object(),
            options: Map::new(),
            subtask_type: None,
            immutable: false,
            extra: Map::new(),
        }
    }

    /// The option `name` as a string, when set.
    pub fn option_str(&self, name: &str) -> Option<&str> {
        self.options.get(name).and_then(Value::as_str)
    }

    /// Sets option `name` (`queue`, `task_id`, `countdown`, `link`, ...), as Celery's
    /// `sig.set(...)`.
    pub fn with_option(mut self, name: &str, value: Value) -> Self {
        self.options.insert(name.to_owned(), value);
        self
    }

    /// Sets the keyword arguments (a JSON object).
    pub fn with_kwargs(mut self, kwargs: Value) -> Self {
        self.kwargs = kwargs;
        self
    }

    /// The queue this signature goes to, else `default_queue`.
    pub fn queue<'a>(&'a self, default_queue: &'a str) -> &'a str {
        self.option_str("queue").unwrap_or(default_queue)
    }

    /// The task message this signature describes: `first_arg` (a parent's result, or a failed
    /// task's id for an errback) goes first unless the signature is immutable; `parent` gives
    /// root and parent ids; `chain` is the rest of a chain, last step first. Options honoured:
    /// task_id, group_id, group_index, reply_to, time_limit, soft_time_limit, countdown, link,
    /// link_error, chord.
    pub fn to_message(
        &self,
        first_arg: Option<Value>,
        parent: Option<&TaskHeaders>,
        chain: Option<Vec<Signature>>,
    ) -> Result<TaskMessage, DecodeError> {
        let mut args = match &self.args {
            Value::Array(a) => a.clone(),
            Value::Null => Vec::new(),
            other => {
                return Err(DecodeError::Body(format!(
                    "signature {} has args {other} (not a list)",
                    self.task
                )));
            }
        };
        if let (Some(first), false) = (first_arg, self.immutable) {
            args.insert(0, first);
        }
        let kwargs = if self.kwargs.is_null() {
            Value::Object(Map::new())
        } else {
            self.kwargs.clone()
        };
        let id = self
            .option_str("task_id")
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let mut msg = TaskMessage::with_id(&self.task, id, &Value::Array(args), &kwargs)?;
        if let Some(p) = parent {
            msg.headers.root_id = Some(p.root_id.clone().unwrap_or_else(|| p.id.clone()));
            msg.headers.parent_id = Some(p.id.clone());
        }
        msg.headers.group = self.option_str("group_id").map(str::to_owned);
        msg.headers.group_index = self.options.get("group_index").and_then(Value::as_i64);
        msg.properties.reply_to = self.option_str("reply_to").map(str::to_owned);
        let secs = |k: &str| self.options.get(k).and_then(Value::as_f64);
        msg.headers.timelimit.hard_secs = secs("time_limit");
        msg.headers.timelimit.soft_secs = secs("soft_time_limit");
        if let Some(countdown) = secs("countdown") {
            msg.headers.eta = Some(
                chrono::Utc::now() + chrono::Duration::milliseconds((countdown * 1000.0) as i64),
            );
        }
        let list = |k: &str| {
            self.options
                .get(k)
                .and_then(|v| serde_json::from_value::<Vec<Signature>>(v.clone()).ok())
        };
        msg.embed.callbacks = list("link");
        msg.embed.errbacks = list("link_error");
        msg.embed.chain = chain.filter(|c| !c.is_empty());
        msg.embed.chord = self
            .options
            .get("chord")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        Ok(msg)
    }
}

/// The first message of a chain of `steps` (run in order, each getting the previous result):
/// the first step, carrying the rest reversed as Celery sends it.
pub fn chain_message(steps: &[Signature]) -> Result<TaskMessage, DecodeError> {
    let (first, rest) = steps
        .split_first()
        .ok_or_else(|| DecodeError::Body("a chain needs a step".into()))?;
    let mut reversed: Vec<Signature> = rest.to_vec();
    reversed.reverse();
    first.to_message(None, None, Some(reversed))
}

/// The third element of a protocol-v2 body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Embed {
    #[serde(default)]
    pub callbacks: Option<Vec<Signature>>,
    #[serde(default)]
    pub errbacks: Option<Vec<Signature>>,
    /// The rest of a chain, last task first: the next task to run is the last element.
    #[serde(default)]
    pub chain: Option<Vec<Signature>>,
    #[serde(default)]
    pub chord: Option<Signature>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Embed {
    /// The task that runs after this one in a chain, and the chain it carries on with.
    pub fn next_in_chain(&self) -> Option<(Signature, Vec<Signature>)> {
        let chain = self.chain.as_ref()?;
        let (next, rest) = chain.split_last()?;
        Some((next.clone(), rest.to_vec()))
    }
}
