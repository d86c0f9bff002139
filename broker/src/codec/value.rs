//! What msgpack and yaml bodies share: the size budget, kombu's JSON envelopes for bytes and
//! times, map keys as JSON writes them.

use serde_json::{Map, Value};

use super::Serializer;
use crate::message::DecodeError;

/// What a decoded body may still grow to: about the length of its JSON text. Every scalar,
/// key and container is charged as it is made, and a yaml alias is charged the size of the
/// node it repeats, so no body is ever built past the limit.
pub(crate) struct Budget {
    left: usize,
    limit: usize,
    serializer: Serializer,
}

impl Budget {
    pub(crate) fn new(limit: usize, serializer: Serializer) -> Self {
        Self {
            left: limit,
            limit,
            serializer,
        }
    }

    pub(crate) fn charge(&mut self, bytes: usize) -> Result<(), DecodeError> {
        match self.left.checked_sub(bytes) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(DecodeError::TooLarge {
                what: format!("the body decoded from {}", self.serializer.content_type()),
                limit: self.limit,
            }),
        }
    }

    /// Bytes charged so far.
    #[cfg(feature = "yaml")]
    pub(crate) fn used(&self) -> usize {
        self.limit - self.left
    }
}

/// The JSON-text size of a number, string or small value, for the budget.
pub(crate) fn scalar_cost(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(n) => n.to_string().len(),
        Value::String(s) => s.len() + 2,
        // Envelopes and other small objects.
        Value::Array(_) | Value::Object(_) => serde_json::to_string(v).map_or(2, |s| s.len()),
    }
}

/// Marker keys of kombu's JSON envelopes for types JSON has not.
const TYPE_KEY: &str = "__type__";
const VALUE_KEY: &str = "__value__";

fn envelope(kind: &str, value: String) -> Value {
    let mut m = Map::new();
    m.insert(TYPE_KEY.into(), Value::String(kind.into()));
    m.insert(VALUE_KEY.into(), Value::String(value));
    Value::Object(m)
}

/// Bytes as kombu's JSON encoder writes them: text when UTF-8, else base64.
pub(crate) fn bytes_envelope(bytes: &[u8]) -> Value {
    use base64::Engine;
    match std::str::from_utf8(bytes) {
        Ok(text) => envelope("bytes", text.to_owned()),
        Err(_) => envelope(
            "base64",
            base64::engine::general_purpose::STANDARD.encode(bytes),
        ),
    }
}

/// A date or time as kombu's JSON encoder writes it (`kind` is `datetime` or `date`).
#[cfg(feature = "yaml")]
pub(crate) fn time_envelope(kind: &str, iso: String) -> Value {
    envelope(kind, iso)
}

/// The bytes a kombu envelope (`bytes` or `base64`) stands for.
pub(crate) fn envelope_bytes(m: &Map<String, Value>) -> Option<Vec<u8>> {
    use base64::Engine;
    let (kind, value) = envelope_parts(m)?;
    match kind {
        "bytes" => Some(value.as_bytes().to_vec()),
        "base64" => base64::engine::general_purpose::STANDARD.decode(value).ok(),
        _ => None,
    }
}

/// The kind and value of a kombu envelope: an object of exactly `__type__` and `__value__`,
/// both strings.
pub(crate) fn envelope_parts(m: &Map<String, Value>) -> Option<(&str, &str)> {
    if m.len() != 2 {
        return None;
    }
    Some((m.get(TYPE_KEY)?.as_str()?, m.get(VALUE_KEY)?.as_str()?))
}

/// A map key as Python's `json.dumps` writes a key that is not a string: integers in decimal,
/// `true`, `false`, `null`. Floats and anything else are refused (their text would depend on
/// Python's float repr, and kombu's JSON would refuse containers and bytes).
pub(crate) fn key_text(key: Value) -> Result<String, String> {
    match key {
        Value::String(s) => Ok(s),
        Value::Bool(b) => Ok(if b { "true" } else { "false" }.into()),
        Value::Null => Ok("null".into()),
        Value::Number(n) if n.is_i64() || n.is_u64() || is_integer_text(&n.to_string()) => {
            Ok(n.to_string())
        }
        Value::Number(n) => Err(format!("a map key is the float {n}")),
        Value::Array(_) => Err("a map key is a list".into()),
        Value::Object(_) => Err("a map key is a map, bytes or a time".into()),
    }
}

/// Whether a JSON number's text is an integer (no fraction, no exponent).
pub(crate) fn is_integer_text(text: &str) -> bool {
    !text.contains(['.', 'e', 'E'])
}
