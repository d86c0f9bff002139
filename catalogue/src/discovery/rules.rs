//! Building blocks of the JSON providers' rules (DigitalOcean, OpenStack, Azure): Maestro's
//! translators copied a field only when it held something, so a stored item never carries the
//! provider's nulls, `false`s, zeros and empty lists.

use serde_json::{Map, Value};

/// Whether Maestro's rules kept a value: they dropped the falsy ones (null, false, 0, "",
/// [] and {}).
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A value with its object's falsy members dropped, as Maestro's rules stored objects.
pub fn pruned(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(_, v)| truthy(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `value` under `key` when it is truthy (objects pruned).
pub fn put(doc: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    if let Some(v) = value.filter(|v| truthy(v)) {
        doc.insert(key.into(), pruned(v));
    }
}

/// Each `(to, from)`: `raw[from]` under `to`, when truthy.
pub fn copy(doc: &mut Map<String, Value>, raw: &Value, pairs: &[(&str, &str)]) {
    for (to, from) in pairs {
        put(doc, to, raw.get(*from));
    }
}

/// An object of `raw`'s `keys` that are set, under `key` (a load balancer's `role`); nothing
/// when none is.
pub fn sub(doc: &mut Map<String, Value>, key: &str, raw: &Value, keys: &[(&str, &str)]) {
    let mut m = Map::new();
    copy(&mut m, raw, keys);
    if !m.is_empty() {
        doc.insert(key.into(), Value::Object(m));
    }
}

/// A tags object (`{"env": "prod"}`) as Maestro's list of `{key, value}`; empty without one.
pub fn key_values(tags: Option<&Value>) -> Value {
    Value::Array(
        tags.and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
            .collect(),
    )
}

/// Python's `str.capitalize`: first letter upper-case, the rest lower-case.
pub fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn falsy_values_are_dropped_and_objects_pruned() {
        let raw = json!({"a": 0, "b": "", "c": [], "d": {"x": null, "y": 1}, "e": false, "f": 2.5});
        let mut doc = Map::new();
        copy(
            &mut doc,
            &raw,
            &[
                ("a", "a"),
                ("b", "b"),
                ("c", "c"),
                ("d", "d"),
                ("e", "e"),
                ("f", "f"),
                ("g", "g"),
            ],
        );
        assert_eq!(Value::Object(doc), json!({"d": {"y": 1}, "f": 2.5}));
        let mut doc = Map::new();
        sub(&mut doc, "role", &raw, &[("a", "a")]);
        assert!(doc.is_empty());
    }

    #[test]
    fn capitalized_as_python_does() {
        assert_eq!(capitalized("ACTIVE"), "Active");
        assert_eq!(capitalized("new"), "New");
        assert_eq!(capitalized(""), "");
    }
}
