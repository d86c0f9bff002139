//! Celery message protocol v2: what Python Celery 5.x puts on the wire, decoded, and task
//! messages encoded so Python Celery accepts them.
//!
//! A task message is AMQP properties (`content_type`, `correlation_id` = task id, `reply_to`,
//! `priority`), headers naming the task and its execution options, and a body
//! `[args, kwargs, embed]`: JSON, or kombu's msgpack or yaml, maybe compressed (see `codec`).
//! Arguments are kept as raw JSON text until a task asks for them, so a JSON message is never
//! parsed twice and big integers keep every digit.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::codec::{self, Accept, CONTENT_TYPE_AUTH, Compression, Serializer, Signing, WireFormat};
use crate::field;
use crate::signature::{Embed, Signature};

/// Celery's `json` serializer: what this runtime writes for new messages.
pub use crate::codec::CONTENT_TYPE_JSON;

/// The limit on a decoded body (decompressed, or converted from msgpack or yaml) of
/// [`TaskMessage::decode`]: the worker's default `--max-body-bytes`. The worker passes its own
/// limit to [`TaskMessage::decode_limited`].
pub const DEFAULT_MAX_DECODED_BYTES: usize = 8 * 1024 * 1024;

/// The header kombu names a body's compression in.
pub const COMPRESSION_HEADER: &str = "compression";

/// Longest `countdown` or `expires` (seconds from now) a signature may name: about a century;
/// longer is ignored rather than overflowing the clock.
const SIGNATURE_DELAY_SECS_MAX: f64 = 3.2e9;

/// Headers RabbitMQ adds when it dead-letters a message; dropped before a message is published
/// again so they do not grow on every pass through the delay queues.
const BROKER_DEATH_HEADERS: [&str; 5] = [
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-reason",
];

/// Why a delivery is not a task message this runtime can run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("content type {0:?} is not supported (accepted: {accepted})", accepted = codec::supported_content_types())]
    ContentType(String),
    #[error(
        "content encoding {0:?} is not supported for this content type (json and yaml: utf-8, msgpack: binary)"
    )]
    ContentEncoding(String),
    #[error("compression {0:?} is not supported (accepted: {accepted})", accepted = codec::supported_compressions())]
    Compression(String),
    /// A compressed body that does not decompress: truncated, corrupt, or not that compression.
    #[error("compressed body ({compression}) is invalid: {reason}")]
    Decompress {
        compression: &'static str,
        reason: String,
    },
    /// A body larger than the limit once decompressed or decoded (a decompression bomb, or yaml
    /// aliases repeating a node).
    #[error("{what} is more than the limit of {limit} bytes")]
    TooLarge { what: String, limit: usize },
    #[error("message has no headers: protocol v1 messages are not supported")]
    NoHeaders,
    #[error("header {0:?} is missing")]
    MissingHeader(&'static str),
    #[error("header {name:?} is invalid: {reason}")]
    BadHeader { name: &'static str, reason: String },
    #[error("body is invalid: {0}")]
    Body(String),
    /// A serializer this receiver does not accept (Celery's `ContentDisallowed`): unsigned
    /// where only signed messages are, or signed where no certificate is trusted.
    #[error(
        "refusing to deserialize untrusted content of type {content_type:?} (accepted: {accepted})"
    )]
    Disallowed {
        content_type: String,
        accepted: String,
    },
    /// A signed message whose signature does not check out, or whose signer is unknown.
    #[error("signed message refused: {0}")]
    Signature(String),
}

/// The `[hard, soft]` time limits of one task run, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TimeLimit {
    pub hard_secs: Option<f64>,
    pub soft_secs: Option<f64>,
}

/// Protocol-v2 headers, typed. Headers this crate does not interpret (trace context, stamps of
/// other tools, custom headers) are kept in `extra` and travel on with retries.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskHeaders {
    pub lang: String,
    pub task: String,
    pub id: String,
    pub shadow: Option<String>,
    pub eta: Option<DateTime<Utc>>,
    pub expires: Option<DateTime<Utc>>,
    pub group: Option<String>,
    pub group_index: Option<i64>,
    pub retries: u32,
    pub timelimit: TimeLimit,
    pub root_id: Option<String>,
    pub parent_id: Option<String>,
    pub argsrepr: Option<String>,
    pub kwargsrepr: Option<String>,
    pub origin: Option<String>,
    pub ignore_result: bool,
    pub replaced_task_nesting: i64,
    pub stamped_headers: Value,
    pub stamps: Value,
    pub extra: BTreeMap<String, Value>,
}

impl TaskHeaders {
    /// Headers for a new task run with defaults as Celery's `send_task` fills them.
    pub fn new(task: impl Into<String>, id: impl Into<String>) -> Self {
        let id = id.into();
        Self {
            lang: "py".into(),
            task: task.into(),
            root_id: Some(id.clone()),
            id,
            shadow: None,
            eta: None,
            expires: None,
            group: None,
            group_index: None,
            retries: 0,
            timelimit: TimeLimit::default(),
            parent_id: None,
            argsrepr: None,
            kwargsrepr: None,
            origin: None,
            ignore_result: false,
            replaced_task_nesting: 0,
            stamped_headers: Value::Null,
            stamps: Value::Object(Default::default()),
            extra: BTreeMap::new(),
        }
    }
}

/// AMQP properties of a task message that matter to a worker.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskProperties {
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub priority: Option<u8>,
}

/// One decoded task message.
#[derive(Debug, Clone)]
pub struct TaskMessage {
    pub headers: TaskHeaders,
    pub properties: TaskProperties,
    /// Positional arguments: a JSON array, as received.
    pub args: Box<RawValue>,
    /// Keyword arguments: a JSON object, as received.
    pub kwargs: Box<RawValue>,
    pub embed: Embed,
    /// The serializer and compression it came in (JSON, uncompressed, for a new message):
    /// [`TaskMessage::encode`] writes it in them again, so a retry goes out as its first try
    /// came, as a Celery worker configured like its clients sends it.
    pub format: WireFormat,
}

/// The task name and id of a delivery, read without decoding the rest, for logs about
/// messages that fail to decode.
pub fn peek_task_and_id(props: &BasicProperties) -> (Option<String>, Option<String>) {
    let Some(headers) = props.headers() else {
        return (None, props.correlation_id().as_ref().map(|s| s.to_string()));
    };
    let get = |k: &str| {
        headers
            .inner()
            .get(k)
            .and_then(field::as_str)
            .map(|s| s.into_owned())
    };
    (get("task"), get("id"))
}

impl TaskMessage {
    /// The task message `sig` describes: `first_arg` (a parent's result, or a failed task's id
    /// for an errback) goes first unless the signature is immutable; `parent` gives root and
    /// parent ids; `chain` is the rest of a chain, last step first. Options honoured: task_id,
    /// group_id, group_index, reply_to, time_limit, soft_time_limit, countdown, link,
    /// link_error, chord.
    pub fn from_signature(
        sig: &Signature,
        first_arg: Option<Value>,
        parent: Option<&TaskHeaders>,
        chain: Option<Vec<Signature>>,
    ) -> Result<Self, DecodeError> {
        let mut args = match &sig.args {
            Value::Array(a) => a.clone(),
            Value::Null => Vec::new(),
            other => {
                return Err(DecodeError::Body(format!(
                    "signature {} has args {other} (not a list)",
                    sig.task
                )));
            }
        };
        if let (Some(first), false) = (first_arg, sig.immutable) {
            args.insert(0, first);
        }
        let kwargs = if sig.kwargs.is_null() {
            Value::Object(Map::new())
        } else {
            sig.kwargs.clone()
        };
        let id = sig
            .option_str("task_id")
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let mut msg = Self::with_id(&sig.task, id, &Value::Array(args), &kwargs)?;
        if let Some(p) = parent {
            msg.headers.root_id = Some(p.root_id.clone().unwrap_or_else(|| p.id.clone()));
            msg.headers.parent_id = Some(p.id.clone());
        }
        msg.headers.group = sig.option_str("group_id").map(str::to_owned);
        msg.headers.group_index = sig.options.get("group_index").and_then(Value::as_i64);
        msg.properties.reply_to = sig.option_str("reply_to").map(str::to_owned);
        let secs = |k: &str| sig.options.get(k).and_then(Value::as_f64);
        msg.headers.timelimit.hard_secs = secs("time_limit");
        msg.headers.timelimit.soft_secs = secs("soft_time_limit");
        let after = |secs: f64| {
            let secs = secs.max(0.0);
            (secs.is_finite() && secs <= SIGNATURE_DELAY_SECS_MAX).then(|| {
                chrono::Utc::now() + chrono::Duration::milliseconds((secs * 1000.0) as i64)
            })
        };
        if let Some(countdown) = secs("countdown") {
            msg.headers.eta = after(countdown);
        }
        // As Celery's apply_async: `eta` and `expires` as ISO 8601 times, `expires` also as
        // seconds from now.
        let at = |k: &str| {
            sig.options
                .get(k)
                .and_then(Value::as_str)
                .and_then(parse_time)
                .filter(in_python_range)
        };
        if let Some(eta) = at("eta") {
            msg.headers.eta = Some(eta);
        }
        if let Some(expires) = secs("expires").and_then(after).or_else(|| at("expires")) {
            msg.headers.expires = Some(expires);
        }
        let list = |k: &str| {
            sig.options
                .get(k)
                .and_then(|v| serde_json::from_value::<Vec<Signature>>(v.clone()).ok())
        };
        msg.embed.callbacks = list("link");
        msg.embed.errbacks = list("link_error");
        msg.embed.chain = chain.filter(|c| !c.is_empty());
        msg.embed.chord = sig
            .options
            .get("chord")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        Ok(msg)
    }

    /// The first message of a chain of `steps` (run in order, each getting the previous
    /// result): the first step, carrying the rest reversed as Celery sends it.
    pub fn chain(steps: &[Signature]) -> Result<Self, DecodeError> {
        let (first, rest) = steps
            .split_first()
            .ok_or_else(|| DecodeError::Body("a chain needs a step".into()))?;
        let mut reversed: Vec<Signature> = rest.to_vec();
        reversed.reverse();
        Self::from_signature(first, None, None, Some(reversed))
    }

    /// A new message for `task` with the given arguments (`args` a JSON array, `kwargs` an
    /// object) and a fresh random id.
    pub fn new(task: impl Into<String>, args: &Value, kwargs: &Value) -> Result<Self, DecodeError> {
        let id = uuid::Uuid::new_v4().to_string();
        Self::with_id(task, id, args, kwargs)
    }

    /// A new message for `task` with the given id.
    pub fn with_id(
        task: impl Into<String>,
        id: impl Into<String>,
        args: &Value,
        kwargs: &Value,
    ) -> Result<Self, DecodeError> {
        if !args.is_array() {
            return Err(DecodeError::Body("args must be a JSON array".into()));
        }
        if !kwargs.is_object() {
            return Err(DecodeError::Body("kwargs must be a JSON object".into()));
        }
        let to_raw = |v: &Value| {
            serde_json::value::to_raw_value(v).map_err(|e| DecodeError::Body(e.to_string()))
        };
        let headers = TaskHeaders::new(task, id);
        Ok(Self {
            properties: TaskProperties {
                correlation_id: Some(headers.id.clone()),
                reply_to: None,
                priority: Some(0),
            },
            headers,
            args: to_raw(args)?,
            kwargs: to_raw(kwargs)?,
            embed: Embed::default(),
            format: WireFormat::default(),
        })
    }

    /// Decodes one delivery's properties and body, a decoded body of at most
    /// [`DEFAULT_MAX_DECODED_BYTES`].
    pub fn decode(props: &BasicProperties, body: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_limited(props, body, DEFAULT_MAX_DECODED_BYTES)
    }

    /// Decodes one delivery's properties and body: JSON, msgpack or yaml (the `content_type`),
    /// compressed or not (the `compression` header). A body that decompresses, or converts
    /// from msgpack or yaml, to more than `max_decoded` bytes is [`DecodeError::TooLarge`],
    /// refused before it is all in memory. Signed (`auth`) messages are refused: see
    /// [`TaskMessage::decode_accepting`].
    pub fn decode_limited(
        props: &BasicProperties,
        body: &[u8],
        max_decoded: usize,
    ) -> Result<Self, DecodeError> {
        Self::decode_accepting(props, body, max_decoded, &Accept::default())
    }

    /// [`TaskMessage::decode_limited`], reading what `accept` accepts (Celery's
    /// `accept_content`): unsigned serializers, and signed (`auth`) messages whose signature
    /// a trusted certificate checks. A signed body is decompressed first (kombu compresses
    /// the signed body), then opened; its inner serializer is read whatever `accept` says of
    /// it unsigned, as Celery's `auth` serializer does.
    pub fn decode_accepting(
        props: &BasicProperties,
        body: &[u8],
        max_decoded: usize,
        accept: &Accept,
    ) -> Result<Self, DecodeError> {
        let content_type = props
            .content_type()
            .as_ref()
            .map_or("", ShortString::as_str);
        let signed = content_type == CONTENT_TYPE_AUTH;
        if signed && !accept.signed() {
            return Err(DecodeError::Disallowed {
                content_type: content_type.to_owned(),
                accepted: accept.describe(),
            });
        }
        let serializer = if signed {
            None
        } else {
            let serializer = Serializer::from_content_type(content_type)
                .ok_or_else(|| DecodeError::ContentType(content_type.to_owned()))?;
            if !accept.unsigned(serializer) {
                return Err(DecodeError::Disallowed {
                    content_type: content_type.to_owned(),
                    accepted: accept.describe(),
                });
            }
            if let Some(enc) = props.content_encoding()
                && !serializer.accepts_encoding(enc.as_str())
            {
                return Err(DecodeError::ContentEncoding(enc.as_str().to_owned()));
            }
            Some(serializer)
        };
        let table = props.headers().as_ref().ok_or(DecodeError::NoHeaders)?;
        // Celery's `compression=` keeps the content type and names the compression here.
        let compression = match table.inner().get(COMPRESSION_HEADER) {
            None | Some(AMQPValue::Void) => None,
            Some(c) => {
                let name = field::as_str(c).map_or_else(|| format!("{c:?}"), |s| s.into_owned());
                Some(Compression::from_header(&name).ok_or(DecodeError::Compression(name))?)
            }
        };
        let headers = decode_headers(table)?;
        let inflated;
        let body = match compression {
            None => body,
            Some(c) => {
                inflated = codec::decompress(c, body, max_decoded)?;
                &inflated[..]
            }
        };
        let opened;
        let (serializer, body) = match serializer {
            Some(s) => (s, body),
            None => {
                opened = accept.open_signed(body).map_err(DecodeError::Signature)?;
                let inner = Serializer::from_content_type(&opened.content_type)
                    .ok_or_else(|| DecodeError::ContentType(opened.content_type.clone()))?;
                if !inner.accepts_encoding(&opened.content_encoding) {
                    return Err(DecodeError::ContentEncoding(
                        opened.content_encoding.clone(),
                    ));
                }
                (inner, &opened.body[..])
            }
        };
        let (args, kwargs, embed) = match serializer {
            Serializer::Json => decode_body(body)?,
            other => split_body(codec::decode_value(other, body, max_decoded)?)?,
        };
        Ok(Self {
            headers,
            properties: TaskProperties {
                correlation_id: props.correlation_id().as_ref().map(|s| s.to_string()),
                reply_to: props.reply_to().as_ref().map(|s| s.to_string()),
                priority: *props.priority(),
            },
            args,
            kwargs,
            embed,
            format: WireFormat {
                serializer,
                compression,
                signed,
            },
        })
    }

    /// The message as it goes on the wire, in its own [`TaskMessage::format`]: properties
    /// (content type and encoding of its serializer, the `compression` header) and body. What
    /// that format cannot say (an integer beyond 64 bits in msgpack) goes out as JSON,
    /// uncompressed, which every Celery reads.
    pub fn encode(&self) -> (BasicProperties, Vec<u8>) {
        if self.format == WireFormat::default() {
            return (self.encode_properties(), self.encode_body());
        }
        match self.encode_as(self.format) {
            Ok(out) => out,
            Err(error) => {
                tracing::warn!(event = "message_sent_as_json", task = %self.headers.task,
                    id = %self.headers.id, serializer = self.format.serializer.name(),
                    compression = self.format.compression.map(Compression::content_type),
                    %error, "the message's own format cannot carry it");
                (self.encode_properties(), self.encode_body())
            }
        }
    }

    /// The message signed with Celery's `auth` serializer by `signing`: its own serializer
    /// inside (JSON where that cannot carry it), signed, then compressed as its format says.
    pub fn encode_signed(&self, signing: &Signing) -> (BasicProperties, Vec<u8>) {
        let inner = WireFormat {
            compression: None,
            signed: false,
            ..self.format
        };
        let (props, body) = self
            .encode_as(inner)
            .unwrap_or_else(|_| (self.encode_properties(), self.encode_body()));
        let text = |v: &Option<ShortString>| v.as_ref().map_or("", ShortString::as_str).to_owned();
        let signed = signing.sign(
            &text(props.content_type()),
            &text(props.content_encoding()),
            &body,
        );
        let compression = self.format.compression;
        let body = match compression.map(|c| codec::compress(c, &signed)) {
            Some(Ok(compressed)) => compressed,
            _ => signed,
        };
        let mut headers = encode_headers(&self.headers);
        if let Some(c) = compression {
            headers.insert(
                COMPRESSION_HEADER.into(),
                AMQPValue::LongString(c.content_type().into()),
            );
        }
        let props = props
            .with_content_type(CONTENT_TYPE_AUTH.into())
            .with_content_encoding("utf-8".into())
            .with_headers(headers);
        (props, body)
    }

    fn encode_as(&self, format: WireFormat) -> Result<(BasicProperties, Vec<u8>), String> {
        let body = match format.serializer {
            Serializer::Json => self.encode_body(),
            other => {
                let embed = serde_json::to_value(&self.embed).map_err(|e| e.to_string())?;
                let parse = |raw: &RawValue| -> Result<Value, String> {
                    serde_json::from_str(raw.get()).map_err(|e| e.to_string())
                };
                let parts = Value::Array(vec![parse(&self.args)?, parse(&self.kwargs)?, embed]);
                codec::encode_value(other, &parts)?
            }
        };
        let body = match format.compression {
            None => body,
            Some(c) => codec::compress(c, &body)?,
        };
        let mut headers = encode_headers(&self.headers);
        if let Some(c) = format.compression {
            headers.insert(
                COMPRESSION_HEADER.into(),
                AMQPValue::LongString(c.content_type().into()),
            );
        }
        let props = self
            .encode_properties()
            .with_content_type(format.serializer.content_type().into())
            .with_content_encoding(format.serializer.content_encoding().into())
            .with_headers(headers);
        Ok((props, body))
    }

    /// The body `[args, kwargs, embed]` as JSON bytes (whatever [`TaskMessage::format`] says:
    /// [`TaskMessage::encode`] writes the message's own format).
    pub fn encode_body(&self) -> Vec<u8> {
        let embed = serde_json::to_string(&self.embed).unwrap_or_else(|_| "{}".into());
        let mut out =
            Vec::with_capacity(self.args.get().len() + self.kwargs.get().len() + embed.len() + 4);
        out.push(b'[');
        out.extend_from_slice(self.args.get().as_bytes());
        out.extend_from_slice(b", ");
        out.extend_from_slice(self.kwargs.get().as_bytes());
        out.extend_from_slice(b", ");
        out.extend_from_slice(embed.as_bytes());
        out.push(b']');
        out
    }

    /// AMQP properties as Celery's own producer sets them (persistent, JSON, utf-8, no
    /// compression): those of [`TaskMessage::encode_body`].
    pub fn encode_properties(&self) -> BasicProperties {
        let mut props = BasicProperties::default()
            .with_content_type(CONTENT_TYPE_JSON.into())
            .with_content_encoding("utf-8".into())
            .with_headers(encode_headers(&self.headers))
            .with_delivery_mode(2)
            .with_priority(self.properties.priority.unwrap_or(0))
            .with_correlation_id(field::short(
                self.properties
                    .correlation_id
                    .as_deref()
                    .unwrap_or(&self.headers.id),
            ));
        if let Some(reply_to) = &self.properties.reply_to {
            props = props.with_reply_to(field::short(reply_to));
        }
        props
    }

    /// Positional arguments parsed as JSON values.
    pub fn args_vec(&self) -> Vec<Value> {
        serde_json::from_str(self.args.get()).unwrap_or_default()
    }
}

/// Properties of a message about to be published again (into a delay queue or the dead-letter
/// exchange): the per-message TTL is dropped so it cannot expire inside a delay queue, and the
/// broker's dead-lettering history is dropped so it does not grow without bound.
pub fn republish_properties(
    props: &BasicProperties,
    extra_headers: &[(&str, AMQPValue)],
) -> BasicProperties {
    let mut table = props.headers().clone().unwrap_or_default();
    let mut map = table.inner().clone();
    for name in BROKER_DEATH_HEADERS {
        map.remove(name);
    }
    for (k, v) in extra_headers {
        map.insert(field::short(k), v.clone());
    }
    table = FieldTable::from(map);
    let mut out = BasicProperties::default().with_headers(table);
    if let Some(v) = props.content_type() {
        out = out.with_content_type(v.clone());
    }
    if let Some(v) = props.content_encoding() {
        out = out.with_content_encoding(v.clone());
    }
    out = out.with_delivery_mode(props.delivery_mode().unwrap_or(2));
    if let Some(v) = props.priority() {
        out = out.with_priority(*v);
    }
    if let Some(v) = props.correlation_id() {
        out = out.with_correlation_id(v.clone());
    }
    if let Some(v) = props.reply_to() {
        out = out.with_reply_to(v.clone());
    }
    if let Some(v) = props.message_id() {
        out = out.with_message_id(v.clone());
    }
    if let Some(v) = props.timestamp() {
        out = out.with_timestamp(*v);
    }
    if let Some(v) = props.kind() {
        out = out.with_type(v.clone());
    }
    if let Some(v) = props.app_id() {
        out = out.with_app_id(v.clone());
    }
    out
}

fn decode_headers(table: &FieldTable) -> Result<TaskHeaders, DecodeError> {
    let mut h = TaskHeaders::new(String::new(), String::new());
    h.root_id = None;
    h.stamps = Value::Null;
    let mut have_task = false;
    let mut have_id = false;
    for (key, value) in table.inner() {
        let key = key.as_str();
        match key {
            "task" => {
                h.task = required_str("task", value)?;
                have_task = true;
            }
            "id" => {
                h.id = required_str("id", value)?;
                have_id = true;
            }
            "lang" => h.lang = optional_str("lang", value)?.unwrap_or_default(),
            "shadow" => h.shadow = optional_str("shadow", value)?,
            "eta" => h.eta = optional_time("eta", value)?,
            "expires" => h.expires = optional_time("expires", value)?,
            "group" => h.group = optional_str("group", value)?,
            "group_index" => h.group_index = optional_int("group_index", value)?,
            "retries" => {
                let n = optional_int("retries", value)?.unwrap_or(0);
                h.retries =
                    u32::try_from(n).map_err(|_| bad("retries", format!("{n} is out of range")))?;
            }
            "timelimit" => h.timelimit = decode_timelimit(value)?,
            "root_id" => h.root_id = optional_str("root_id", value)?,
            "parent_id" => h.parent_id = optional_str("parent_id", value)?,
            "argsrepr" => h.argsrepr = optional_str("argsrepr", value)?,
            "kwargsrepr" => h.kwargsrepr = optional_str("kwargsrepr", value)?,
            "origin" => h.origin = optional_str("origin", value)?,
            "ignore_result" => {
                h.ignore_result = match value {
                    AMQPValue::Void => false,
                    v => field::as_bool(v).ok_or_else(|| bad("ignore_result", "not a boolean"))?,
                }
            }
            "replaced_task_nesting" => {
                h.replaced_task_nesting = optional_int("replaced_task_nesting", value)?.unwrap_or(0)
            }
            "stamped_headers" => h.stamped_headers = field::to_json(value),
            "stamps" => h.stamps = field::to_json(value),
            other if BROKER_DEATH_HEADERS.contains(&other) => {}
            // The body's compression: `TaskMessage::format`, written again by `encode`.
            COMPRESSION_HEADER => {}
            other => {
                h.extra.insert(other.to_owned(), field::to_json(value));
            }
        }
    }
    if !have_task {
        return Err(DecodeError::MissingHeader("task"));
    }
    if !have_id {
        return Err(DecodeError::MissingHeader("id"));
    }
    if h.task.is_empty() {
        return Err(bad("task", "empty task name"));
    }
    if h.id.is_empty() {
        return Err(bad("id", "empty task id"));
    }
    Ok(h)
}

fn encode_headers(h: &TaskHeaders) -> FieldTable {
    let s = |v: &str| AMQPValue::LongString(v.into());
    let opt_s = |v: &Option<String>| v.as_deref().map_or(AMQPValue::Void, s);
    let time = |v: &Option<DateTime<Utc>>| v.map_or(AMQPValue::Void, |t| s(&format_time(t)));
    let secs = |v: Option<f64>| match v {
        None => AMQPValue::Void,
        Some(x) if x.fract() == 0.0 && x.abs() < f64::from(i32::MAX) => {
            AMQPValue::LongInt(x as i32)
        }
        Some(x) => AMQPValue::Double(x),
    };
    let mut t = FieldTable::default();
    for (k, v) in h.extra.iter().filter(|(k, _)| *k != COMPRESSION_HEADER) {
        t.insert(field::short(k), field::from_json(v));
    }
    t.insert("lang".into(), s(&h.lang));
    t.insert("task".into(), s(&h.task));
    t.insert("id".into(), s(&h.id));
    t.insert("shadow".into(), opt_s(&h.shadow));
    t.insert("eta".into(), time(&h.eta));
    t.insert("expires".into(), time(&h.expires));
    t.insert("group".into(), opt_s(&h.group));
    t.insert(
        "group_index".into(),
        h.group_index
            .map_or(AMQPValue::Void, |i| field::from_json(&Value::from(i))),
    );
    t.insert("retries".into(), field::from_json(&Value::from(h.retries)));
    t.insert(
        "timelimit".into(),
        AMQPValue::FieldArray(
            vec![secs(h.timelimit.hard_secs), secs(h.timelimit.soft_secs)].into(),
        ),
    );
    t.insert("root_id".into(), opt_s(&h.root_id));
    t.insert("parent_id".into(), opt_s(&h.parent_id));
    t.insert("argsrepr".into(), opt_s(&h.argsrepr));
    t.insert("kwargsrepr".into(), opt_s(&h.kwargsrepr));
    t.insert("origin".into(), opt_s(&h.origin));
    t.insert("ignore_result".into(), AMQPValue::Boolean(h.ignore_result));
    t.insert(
        "replaced_task_nesting".into(),
        field::from_json(&Value::from(h.replaced_task_nesting)),
    );
    t.insert(
        "stamped_headers".into(),
        field::from_json(&h.stamped_headers),
    );
    t.insert(
        "stamps".into(),
        match &h.stamps {
            Value::Null => AMQPValue::FieldTable(FieldTable::default()),
            v => field::from_json(v),
        },
    );
    t
}

/// A time as Python's `datetime.isoformat()` writes an aware UTC time.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Parses an `eta`/`expires` value: ISO 8601 text (naive times are UTC, as Celery treats them
/// with `enable_utc`), or a number of seconds since the epoch.
pub fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%:z"] {
        if let Ok(t) = DateTime::parse_from_str(value, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    None
}

fn bad(name: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::BadHeader {
        name,
        reason: reason.into(),
    }
}

fn required_str(name: &'static str, value: &AMQPValue) -> Result<String, DecodeError> {
    field::as_str(value).map(|s| s.into_owned()).ok_or_else(|| {
        bad(
            name,
            format!("expected a string, got {:?}", value.get_type()),
        )
    })
}

fn optional_str(name: &'static str, value: &AMQPValue) -> Result<Option<String>, DecodeError> {
    match value {
        AMQPValue::Void => Ok(None),
        v => required_str(name, v).map(Some),
    }
}

fn optional_int(name: &'static str, value: &AMQPValue) -> Result<Option<i64>, DecodeError> {
    match value {
        AMQPValue::Void => Ok(None),
        v => field::as_i64(v)
            .map(Some)
            .ok_or_else(|| bad(name, format!("expected an integer, got {:?}", v.get_type()))),
    }
}

fn optional_time(
    name: &'static str,
    value: &AMQPValue,
) -> Result<Option<DateTime<Utc>>, DecodeError> {
    match value {
        AMQPValue::Void => Ok(None),
        v => {
            if let Some(text) = field::as_str(v) {
                return parse_time(&text)
                    .filter(in_python_range)
                    .map(Some)
                    .ok_or_else(|| bad(name, format!("{text:?} is not an ISO 8601 time")));
            }
            let secs = field::as_f64(v).ok_or_else(|| bad(name, "expected an ISO 8601 time"))?;
            // NaN would cast to 0 (1970) and infinities to the ends of time: neither is a time.
            Some(secs * 1000.0)
                .filter(|ms| ms.is_finite())
                .and_then(|ms| DateTime::from_timestamp_millis(ms as i64))
                .filter(in_python_range)
                .map(Some)
                .ok_or_else(|| bad(name, format!("{secs} is out of range")))
        }
    }
}

/// Whether a time is one Python's `datetime` can hold (years 1 to 9999): what Celery can send
/// and read back, so a retry re-encoding it stays decodable.
fn in_python_range(t: &DateTime<Utc>) -> bool {
    (1..=9999).contains(&t.year())
}

fn decode_timelimit(value: &AMQPValue) -> Result<TimeLimit, DecodeError> {
    let limit = |v: &AMQPValue| -> Result<Option<f64>, DecodeError> {
        match v {
            AMQPValue::Void => Ok(None),
            // The worker runs tasks under `Duration::from_secs_f64(limit)`: it must hold it.
            v => match field::as_f64(v) {
                Some(x) if std::time::Duration::try_from_secs_f64(x).is_ok() => Ok(Some(x)),
                _ => Err(bad(
                    "timelimit",
                    format!("{:?} is not a number of seconds", field::to_json(v)),
                )),
            },
        }
    };
    match value {
        AMQPValue::Void => Ok(TimeLimit::default()),
        AMQPValue::FieldArray(a) => match a.as_slice() {
            [] => Ok(TimeLimit::default()),
            [hard] => Ok(TimeLimit {
                hard_secs: limit(hard)?,
                soft_secs: None,
            }),
            [hard, soft, ..] => Ok(TimeLimit {
                hard_secs: limit(hard)?,
                soft_secs: limit(soft)?,
            }),
        },
        other => Err(bad(
            "timelimit",
            format!("expected [hard, soft], got {:?}", other.get_type()),
        )),
    }
}

/// `[args, kwargs, embed]` decoded from msgpack or yaml, checked as a JSON body is.
fn split_body(body: Value) -> Result<(Box<RawValue>, Box<RawValue>, Embed), DecodeError> {
    let parts = match body {
        Value::Array(parts) => parts,
        other => {
            return Err(DecodeError::Body(format!(
                "expected [args, kwargs, embed], got {}",
                json_type(&other)
            )));
        }
    };
    let n = parts.len();
    let mut parts = parts.into_iter();
    let (args, kwargs, embed) = match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(k), e) if n <= 3 => (a, k, e),
        _ => {
            return Err(DecodeError::Body(format!(
                "expected [args, kwargs, embed], got an array of {n} elements"
            )));
        }
    };
    if !args.is_array() {
        return Err(DecodeError::Body("args (element 0) is not an array".into()));
    }
    let kwargs = match kwargs {
        Value::Null => Value::Object(Map::new()),
        k @ Value::Object(_) => k,
        _ => {
            return Err(DecodeError::Body(
                "kwargs (element 1) is not an object".into(),
            ));
        }
    };
    let embed = match embed {
        None | Some(Value::Null) => Embed::default(),
        Some(e) => serde_json::from_value(e)
            .map_err(|err| DecodeError::Body(format!("embed (element 2) is invalid: {err}")))?,
    };
    let raw = |v: &Value| {
        serde_json::value::to_raw_value(v).map_err(|e| DecodeError::Body(e.to_string()))
    };
    Ok((raw(&args)?, raw(&kwargs)?, embed))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn decode_body(body: &[u8]) -> Result<(Box<RawValue>, Box<RawValue>, Embed), DecodeError> {
    let text =
        std::str::from_utf8(body).map_err(|e| DecodeError::Body(format!("not UTF-8: {e}")))?;
    let parts: Vec<&RawValue> = serde_json::from_str(text)
        .map_err(|e| DecodeError::Body(format!("not a JSON array: {e}")))?;
    let (args, kwargs, embed) = match parts.as_slice() {
        [a, k] => (*a, *k, None),
        [a, k, e] => (*a, *k, Some(*e)),
        other => {
            return Err(DecodeError::Body(format!(
                "expected [args, kwargs, embed], got an array of {} elements",
                other.len()
            )));
        }
    };
    if !args.get().trim_start().starts_with('[') {
        return Err(DecodeError::Body(
            "args (element 0) is not a JSON array".into(),
        ));
    }
    let kw = kwargs.get().trim_start();
    let kwargs: Box<RawValue> = if kw.starts_with('{') {
        kwargs.to_owned()
    } else if kw == "null" {
        RawValue::from_string("{}".into()).map_err(|e| DecodeError::Body(e.to_string()))?
    } else {
        return Err(DecodeError::Body(
            "kwargs (element 1) is not a JSON object".into(),
        ));
    };
    let embed = match embed {
        None => Embed::default(),
        Some(e) if e.get() == "null" => Embed::default(),
        Some(e) => serde_json::from_str(e.get())
            .map_err(|err| DecodeError::Body(format!("embed (element 2) is invalid: {err}")))?,
    };
    Ok((args.to_owned(), kwargs, embed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props_with(headers: FieldTable) -> BasicProperties {
        BasicProperties::default()
            .with_content_type(CONTENT_TYPE_JSON.into())
            .with_content_encoding("utf-8".into())
            .with_headers(headers)
    }

    fn minimal_headers() -> FieldTable {
        let mut t = FieldTable::default();
        t.insert("task".into(), AMQPValue::LongString("maestro.noop".into()));
        t.insert("id".into(), AMQPValue::LongString("t-1".into()));
        t
    }

    #[test]
    fn a_message_round_trips_through_encode_and_decode() {
        let mut msg = TaskMessage::with_id(
            "maestro.echo",
            "id-1",
            &serde_json::json!([1, "ü", null, 123456789012345678901234567890u128.to_string()]),
            &serde_json::json!({"k": {"n": [true]}}),
        )
        .expect("valid");
        msg.headers.eta = parse_time("2030-01-02T03:04:05.000001+00:00");
        msg.headers.timelimit = TimeLimit {
            hard_secs: Some(60.0),
            soft_secs: Some(50.5),
        };
        msg.headers.retries = 2;
        msg.headers
            .extra
            .insert("traceparent".into(), Value::from("00-abc-def-01"));
        let decoded =
            TaskMessage::decode(&msg.encode_properties(), &msg.encode_body()).expect("decodes");
        assert_eq!(decoded.headers, msg.headers);
        assert_eq!(decoded.args.get(), msg.args.get());
        assert_eq!(decoded.kwargs.get(), msg.kwargs.get());
        assert_eq!(decoded.properties.correlation_id.as_deref(), Some("id-1"));
    }

    #[test]
    fn big_integers_keep_every_digit() {
        let body = br#"[[123456789012345678901234567890, -8589934592], {}, null]"#;
        let msg = TaskMessage::decode(&props_with(minimal_headers()), body).expect("decodes");
        assert_eq!(
            msg.args.get(),
            "[123456789012345678901234567890, -8589934592]"
        );
        assert_eq!(msg.embed, Embed::default());
    }

    #[test]
    fn bad_input_names_the_field() {
        let ok_body = b"[[], {}, {}]";
        let cases: Vec<(BasicProperties, &[u8], &str)> = vec![
            (
                BasicProperties::default()
                    .with_content_type("application/x-python-serialize".into()),
                ok_body,
                "content type",
            ),
            (BasicProperties::default(), ok_body, "content type"),
            (
                BasicProperties::default().with_content_type(CONTENT_TYPE_JSON.into()),
                ok_body,
                "no headers",
            ),
            (
                props_with(FieldTable::default()),
                ok_body,
                "\"task\" is missing",
            ),
            (
                props_with(minimal_headers()),
                b"{not json",
                "not a JSON array",
            ),
            (
                props_with(minimal_headers()),
                b"[{}, {}, {}]",
                "args (element 0)",
            ),
            (
                props_with(minimal_headers()),
                b"[[], [], {}]",
                "kwargs (element 1)",
            ),
            (
                props_with(minimal_headers()),
                b"[[], {}, {\"chain\": 5}]",
                "embed (element 2)",
            ),
            (
                props_with(minimal_headers()),
                b"[[]]",
                "array of 1 elements",
            ),
            (props_with(minimal_headers()), &[0xff, 0xfe], "not UTF-8"),
        ];
        for (props, body, expected) in cases {
            let err = TaskMessage::decode(&props, body)
                .expect_err("must fail")
                .to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
        let mut h = minimal_headers();
        h.insert("retries".into(), AMQPValue::LongString("two".into()));
        let err = TaskMessage::decode(&props_with(h), ok_body)
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("\"retries\""), "{err}");
        let mut h = minimal_headers();
        h.insert("eta".into(), AMQPValue::LongString("tomorrow".into()));
        let err = TaskMessage::decode(&props_with(h), ok_body)
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("\"eta\""), "{err}");
        let mut h = minimal_headers();
        h.insert(
            "timelimit".into(),
            AMQPValue::FieldArray(vec![AMQPValue::LongString("x".into())].into()),
        );
        let err = TaskMessage::decode(&props_with(h), ok_body)
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("\"timelimit\""), "{err}");
    }

    #[test]
    fn times_parse_in_every_form_python_writes() {
        let want = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).single();
        assert_eq!(parse_time("2030-01-02T03:04:05+00:00"), want);
        assert_eq!(parse_time("2030-01-02T03:04:05"), want);
        assert_eq!(parse_time("2030-01-02T05:04:05+02:00"), want);
        assert_eq!(parse_time("2030-01-02 03:04:05.000000+00:00"), want);
        assert_eq!(parse_time("nope"), None);
        let mut h = minimal_headers();
        h.insert("expires".into(), AMQPValue::Double(1_893_553_445.0));
        let msg = TaskMessage::decode(&props_with(h), b"[[], {}, {}]").expect("decodes");
        assert_eq!(msg.headers.expires, want);
    }

    /// Found by the poison corpus: header values that decoded into messages the worker could
    /// not run (a time limit no `Duration` holds panicked the run), mis-timed (NaN eta read as
    /// 1970) or could not re-encode for a retry (a time past Python's year 9999).
    #[test]
    fn headers_that_cannot_be_run_or_retried_are_refused() {
        let cases: Vec<(&str, AMQPValue)> = vec![
            ("eta", AMQPValue::Double(f64::NAN)),
            ("eta", AMQPValue::Double(1e12)),
            ("eta", AMQPValue::Double(-1e12)),
            ("expires", AMQPValue::Double(f64::INFINITY)),
            ("expires", AMQPValue::Float(f32::NAN)),
            ("eta", AMQPValue::LongLongInt(i64::MAX)),
            (
                "timelimit",
                AMQPValue::FieldArray(vec![AMQPValue::Double(1e300)].into()),
            ),
            (
                "timelimit",
                AMQPValue::FieldArray(vec![AMQPValue::Void, AMQPValue::Double(1e20)].into()),
            ),
            (
                "timelimit",
                AMQPValue::FieldArray(vec![AMQPValue::Double(f64::NAN)].into()),
            ),
        ];
        for (name, value) in cases {
            let mut h = minimal_headers();
            h.insert(name.into(), value.clone());
            let err = TaskMessage::decode(&props_with(h), b"[[], {}, {}]")
                .expect_err("must fail")
                .to_string();
            assert!(err.contains(&format!("{name:?}")), "{value:?}: {err}");
        }
        // The largest time Python can write still decodes, and re-encodes decodably.
        let mut h = minimal_headers();
        h.insert(
            "eta".into(),
            AMQPValue::LongString("9999-12-31T23:59:59.999999+00:00".into()),
        );
        let msg = TaskMessage::decode(&props_with(h), b"[[], {}, {}]").expect("decodes");
        TaskMessage::decode(&msg.encode_properties(), &msg.encode_body()).expect("round trip");
    }

    #[cfg(feature = "codecs")]
    /// Celery's `compression=` keeps the content type and names the compression in a header:
    /// one this worker does not know is unsupported; a corrupt body of one it knows is
    /// undecodable.
    #[test]
    fn compressed_bodies_name_their_compression() {
        let with = |c: AMQPValue| {
            let mut h = minimal_headers();
            h.insert("compression".into(), c);
            props_with(h)
        };
        let err = TaskMessage::decode(
            &with(AMQPValue::LongString("application/x-snappy".into())),
            b"[[], {}, {}]",
        );
        let err = err.expect_err("must fail");
        assert_eq!(err, DecodeError::Compression("application/x-snappy".into()));
        assert!(err.to_string().contains("application/zstd"), "{err}");
        let err = TaskMessage::decode(
            &with(AMQPValue::LongString("application/x-gzip".into())),
            &[0x1f, 0x8b, 0x08, 0x00],
        );
        assert!(
            matches!(
                err,
                Err(DecodeError::Decompress {
                    compression: "application/x-gzip",
                    ..
                })
            ),
            "{err:?}"
        );
        TaskMessage::decode(&with(AMQPValue::Void), b"[[], {}, {}]").expect("no compression");
    }

    #[cfg(feature = "codecs")]
    fn sample() -> TaskMessage {
        let mut msg = TaskMessage::with_id(
            "maestro.echo",
            "id-9",
            &serde_json::json!([1, -2, "ü", null, true, 0.5, [{"a": {"b": []}}],
                {"__type__": "bytes", "__value__": "raw"}]),
            &serde_json::json!({"k": "v", "n": 18446744073709551615u64}),
        )
        .expect("valid");
        msg.headers.retries = 1;
        msg.embed.callbacks = Some(vec![
            serde_json::from_value(serde_json::json!({"task": "maestro.noop", "args": [],
                "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false}))
            .expect("signature"),
        ]);
        msg
    }

    #[cfg(feature = "codecs")]
    /// A message is written in its own serializer and compression and reads back the same:
    /// what a retry of a msgpack, yaml or compressed message sends.
    #[test]
    fn every_format_round_trips_through_encode_and_decode() {
        let serializers = [Serializer::Json, Serializer::Msgpack, Serializer::Yaml];
        let compressions = std::iter::once(None).chain(Compression::ALL.map(Some));
        for compression in compressions {
            for serializer in serializers {
                let format = WireFormat {
                    serializer,
                    compression,
                    signed: false,
                };
                let mut msg = sample();
                msg.format = format;
                let (props, body) = msg.encode();
                assert_eq!(
                    props.content_type().as_ref().map(ShortString::as_str),
                    Some(serializer.content_type())
                );
                assert_eq!(
                    props.content_encoding().as_ref().map(ShortString::as_str),
                    Some(serializer.content_encoding())
                );
                let header = props
                    .headers()
                    .as_ref()
                    .and_then(|h| h.inner().get("compression").cloned());
                assert_eq!(
                    header
                        .as_ref()
                        .and_then(field::as_str)
                        .map(|s| s.into_owned()),
                    compression.map(|c| c.content_type().to_owned()),
                );
                let back = TaskMessage::decode(&props, &body)
                    .unwrap_or_else(|e| panic!("{format:?}: {e}"));
                assert_eq!(back.format, format);
                assert_eq!(back.headers, msg.headers, "{format:?}");
                let json = |raw: &RawValue| serde_json::from_str::<Value>(raw.get()).expect("json");
                assert_eq!(json(&back.args), json(&msg.args), "{format:?}");
                assert_eq!(json(&back.kwargs), json(&msg.kwargs), "{format:?}");
                assert_eq!(back.embed, msg.embed, "{format:?}");
                // The compression travels in the format, not as a stale header: the JSON
                // properties of the decoded message say nothing of it.
                let plain = back.encode_properties();
                assert!(
                    !plain
                        .headers()
                        .as_ref()
                        .is_some_and(|h| h.contains_key("compression")),
                    "{format:?}"
                );
                TaskMessage::decode(&plain, &back.encode_body()).expect("plain JSON");
            }
        }
    }

    #[cfg(feature = "auth")]
    #[test]
    fn a_signed_message_reads_back_only_where_its_signer_is_trusted() {
        let fixture = |f: &str| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/auth")
                .join(f)
        };
        let signing =
            Signing::load(&fixture("producer.key"), &fixture("producer.pem")).expect("signing");
        let trusted = |names: &[&str], store: &str| {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            Accept::configure(Some(&names), Some(&fixture(store))).expect("accept")
        };
        for compression in [None, Some(Compression::Zlib)] {
            let mut msg = sample();
            msg.format.compression = compression;
            let (props, body) = msg.encode_signed(&signing);
            assert_eq!(
                props.content_type().as_ref().map(ShortString::as_str),
                Some("application/data")
            );
            let back = TaskMessage::decode_accepting(
                &props,
                &body,
                1 << 20,
                &trusted(&["auth"], "producer.pem"),
            )
            .expect("trusted");
            assert!(back.format.signed);
            assert_eq!(back.format.compression, compression);
            assert_eq!(back.headers, msg.headers);
            assert_eq!(back.args.get(), msg.args.get());
            // Nobody trusted, or another signer trusted: refused.
            let e = TaskMessage::decode(&props, &body).expect_err("no store");
            assert!(matches!(e, DecodeError::Disallowed { .. }), "{e}");
            let e = TaskMessage::decode_accepting(
                &props,
                &body,
                1 << 20,
                &trusted(&["auth"], "other.pem"),
            )
            .expect_err("another signer");
            assert!(
                matches!(&e, DecodeError::Signature(s) if s.contains("Unknown certificate")),
                "{e}"
            );
        }
        // Signed only: a plain JSON message is refused.
        let msg = sample();
        let e = TaskMessage::decode_accepting(
            &msg.encode_properties(),
            &msg.encode_body(),
            1 << 20,
            &trusted(&["auth"], "producer.pem"),
        )
        .expect_err("unsigned");
        assert!(
            e.to_string()
                .contains("refusing to deserialize untrusted content"),
            "{e}"
        );
    }

    #[cfg(feature = "codecs")]
    #[test]
    fn what_msgpack_cannot_carry_is_sent_as_json() {
        let mut msg = TaskMessage::with_id(
            "maestro.echo",
            "id-big",
            &serde_json::from_str::<Value>("[123456789012345678901234567890]").expect("json"),
            &serde_json::json!({}),
        )
        .expect("valid");
        msg.format = WireFormat {
            serializer: Serializer::Msgpack,
            compression: Some(Compression::Zlib),
            signed: false,
        };
        let (props, body) = msg.encode();
        assert_eq!(
            props.content_type().as_ref().map(ShortString::as_str),
            Some(CONTENT_TYPE_JSON)
        );
        let back = TaskMessage::decode(&props, &body).expect("decodes");
        assert_eq!(back.format, WireFormat::default());
        assert_eq!(back.args.get(), "[123456789012345678901234567890]");
    }

    #[cfg(feature = "codecs")]
    /// A small compressed body that inflates past the limit is refused at the limit.
    #[test]
    fn a_decompression_bomb_is_too_large() {
        let mut msg = TaskMessage::with_id(
            "maestro.echo",
            "bomb",
            &serde_json::json!(["0".repeat(4 << 20)]),
            &serde_json::json!({}),
        )
        .expect("valid");
        for c in Compression::ALL {
            msg.format.compression = Some(c);
            let (props, body) = msg.encode();
            assert!(body.len() < 64 * 1024, "{c:?}: {}", body.len());
            let err = TaskMessage::decode_limited(&props, &body, 1 << 20).expect_err("a bomb");
            assert!(
                matches!(
                    err,
                    DecodeError::TooLarge {
                        limit: 1_048_576,
                        ..
                    }
                ),
                "{err}"
            );
            TaskMessage::decode_limited(&props, &body, 8 << 20).expect("within the limit");
        }
    }

    #[cfg(feature = "codecs")]
    #[test]
    fn pickle_is_never_read_and_encodings_must_match_the_serializer() {
        let mut h = minimal_headers();
        h.insert("x".into(), AMQPValue::Void);
        let pickle = props_with(h.clone())
            .with_content_type(codec::CONTENT_TYPE_PICKLE.into())
            .with_content_encoding("binary".into());
        let err = TaskMessage::decode(&pickle, b"\x80\x04K\x01.").expect_err("refused");
        assert_eq!(
            err,
            DecodeError::ContentType(codec::CONTENT_TYPE_PICKLE.into())
        );
        assert!(err.to_string().contains("application/x-msgpack"), "{err}");
        let msgpack_as_text = props_with(h.clone())
            .with_content_type(codec::CONTENT_TYPE_MSGPACK.into())
            .with_content_encoding("utf-8".into());
        let err = TaskMessage::decode(&msgpack_as_text, &[0x93, 0x90, 0x80, 0xc0]);
        assert!(
            matches!(err, Err(DecodeError::ContentEncoding(_))),
            "{err:?}"
        );
        let msgpack = props_with(h)
            .with_content_type(codec::CONTENT_TYPE_MSGPACK.into())
            .with_content_encoding("binary".into());
        let msg = TaskMessage::decode(&msgpack, &[0x93, 0x91, 0x01, 0x80, 0xc0]).expect("msgpack");
        assert_eq!(msg.args.get(), "[1]");
        assert_eq!(msg.kwargs.get(), "{}");
        for (body, want) in [
            (&[0x91, 0x90][..], "array of 1 elements"),
            (&[0x94, 0x90, 0x80, 0xc0, 0xc0][..], "array of 4 elements"),
            (&[0x93, 0x80, 0x80, 0xc0][..], "args (element 0)"),
            (&[0x93, 0x90, 0x90, 0xc0][..], "kwargs (element 1)"),
            (&[0x93, 0x90, 0x80, 0x05][..], "embed (element 2)"),
            (&[0xc0][..], "got null"),
        ] {
            let err = TaskMessage::decode(&msgpack, body)
                .expect_err("refused")
                .to_string();
            assert!(err.contains(want), "{body:x?}: {err}");
        }
    }

    /// Without the codecs, msgpack, yaml and compressed messages are unsupported, as before.
    #[cfg(not(any(feature = "msgpack", feature = "yaml", feature = "compression")))]
    #[test]
    fn without_the_codecs_only_plain_json_is_read() {
        for ct in [codec::CONTENT_TYPE_MSGPACK, codec::CONTENT_TYPE_YAML] {
            let props = props_with(minimal_headers()).with_content_type(ct.into());
            let err = TaskMessage::decode(&props, b"[[], {}, null]").expect_err("refused");
            assert_eq!(err, DecodeError::ContentType(ct.into()));
        }
        let mut h = minimal_headers();
        h.insert(
            "compression".into(),
            AMQPValue::LongString("application/x-gzip".into()),
        );
        let err = TaskMessage::decode(&props_with(h), b"x").expect_err("refused");
        assert_eq!(err, DecodeError::Compression("application/x-gzip".into()));
        assert!(err.to_string().contains("none in this build"), "{err}");
    }

    #[test]
    fn republishing_drops_ttl_and_death_history() {
        let mut h = minimal_headers();
        h.insert("x-death".into(), AMQPValue::FieldArray(Default::default()));
        let props = props_with(h)
            .with_expiration("1000".into())
            .with_priority(5);
        let out = republish_properties(
            &props,
            &[("x-maestro-reason", AMQPValue::LongString("r".into()))],
        );
        assert_eq!(out.expiration(), &None);
        assert_eq!(out.priority(), &Some(5));
        let headers = out.headers().clone().unwrap_or_default();
        assert!(!headers.contains_key("x-death"));
        assert!(headers.contains_key("x-maestro-reason"));
        assert!(headers.contains_key("task"));
    }
}
