//! Canvas signatures as Celery serialises them in a message body's embed: a task name, its
//! arguments and options. Unknown fields are kept so a signature from Python travels on intact.
//! Data only: the message a signature describes is `TaskMessage::from_signature`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
}

/// A signature whose task returns an `R`: what `#[task]`'s `<task>::new(...)` makes, sent with
/// `Client::call`, whose result is read back as an `R`. An argument that could not be written
/// as JSON is kept as an error until sending.
#[derive(Debug, Clone)]
pub struct TypedSignature<R> {
    task: String,
    signature: Result<Signature, String>,
    result: std::marker::PhantomData<fn() -> R>,
}

impl<R> TypedSignature<R> {
    /// A call of `task` with `args` by position, or the error writing one of them.
    pub fn new(task: &str, args: Result<Vec<Value>, String>) -> Self {
        Self {
            task: task.to_owned(),
            signature: args.map(|a| Signature::new(task, a)),
            result: std::marker::PhantomData,
        }
    }

    /// A call of `task` with keyword arguments `kwargs` (a JSON object), or the error writing
    /// them.
    pub fn with_kwargs(task: &str, kwargs: Result<Value, String>) -> Self {
        Self {
            task: task.to_owned(),
            signature: kwargs.map(|k| Signature::new(task, Vec::new()).with_kwargs(k)),
            result: std::marker::PhantomData,
        }
    }

    /// A call of `task` with positional `args` and keyword `kwargs` as they are.
    pub fn with_call(task: &str, args: Vec<Value>, kwargs: Map<String, Value>) -> Self {
        Self {
            task: task.to_owned(),
            signature: Ok(Signature::new(task, args).with_kwargs(Value::Object(kwargs))),
            result: std::marker::PhantomData,
        }
    }

    /// Sets option `name` (`queue`, `countdown`, `expires`, `task_id`, `link`, ...).
    pub fn with_option(mut self, name: &str, value: Value) -> Self {
        self.signature = self.signature.map(|s| s.with_option(name, value));
        self
    }

    /// Sends it to `queue`.
    pub fn queue(self, queue: &str) -> Self {
        self.with_option("queue", Value::from(queue))
    }

    /// Runs it no sooner than `secs` seconds after sending.
    pub fn countdown(self, secs: f64) -> Self {
        self.with_option("countdown", Value::from(secs))
    }

    /// Gives it this id.
    pub fn task_id(self, id: &str) -> Self {
        self.with_option("task_id", Value::from(id))
    }

    /// The task's name.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The untyped signature (for chains, groups and chords), or why an argument could not be
    /// written as JSON.
    pub fn into_signature(self) -> Result<Signature, String> {
        self.signature
    }
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
