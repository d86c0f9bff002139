//! Input limits and the checks that keep tenant input from reaching MongoDB as operators.

use serde_json::Value;

use crate::report::query::RuleError;

/// Most rules accepted in one rule list (a general report, or one pivot level).
pub const MAX_RULES: usize = 100;

/// Longest string (value or object key) accepted anywhere in the input, in bytes.
pub const MAX_STRING_BYTES: usize = 4096;

/// Most top-level keys accepted in a `GET /reports/<table>?query=...` object or a pivot spec.
pub const MAX_KEYS: usize = 100;

/// Parses `text` as JSON, naming `field` in the error.
pub(crate) fn parse_json(text: &str, field: &str) -> Result<Value, RuleError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| RuleError::new(field, format!("not valid JSON: {e}")))?;
    check_strings(&value, field)?;
    Ok(value)
}

/// The JSON kind of `value`, for error messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Refuses any string or object key longer than [`MAX_STRING_BYTES`], anywhere in `value`.
pub(crate) fn check_strings(value: &Value, path: &str) -> Result<(), RuleError> {
    let too_long = |what: &str, len: usize| {
        RuleError::new(
            path,
            format!("{what} is {len} bytes long; at most {MAX_STRING_BYTES} are accepted"),
        )
    };
    match value {
        Value::String(s) if s.len() > MAX_STRING_BYTES => Err(too_long("the string", s.len())),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_strings(item, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            if key.len() > MAX_STRING_BYTES {
                return Err(too_long("an object key", key.len()));
            }
            check_strings(item, &format!("{path}.{key}"))
        }),
        _ => Ok(()),
    }
}

/// Checks a MongoDB field path taken from tenant input (a rule's `field`/`subfield`, a query
/// key, a sort field).
///
/// Refused: the empty path or an empty segment (`a..b`, `a.`), a segment starting with `$`
/// (an operator or `$where`-style injection, e.g. `$where` or `a.$ne`), and NUL bytes (which
/// BSON keys cannot hold). With `owner_scope` set, `roles`, `roles._id` and anything under
/// `roles.` are refused too: they are the owner scoping and a tenant must not replace or widen it.
pub(crate) fn check_path(path: &str, field: &str, owner_scope: bool) -> Result<(), RuleError> {
    let refuse = |why: &str| RuleError::new(field, format!("`{path}` {why}"));
    if path.contains('\0') {
        return Err(refuse("contains a NUL byte"));
    }
    if path.split('.').any(str::is_empty) {
        return Err(refuse("has an empty path segment"));
    }
    if path.split('.').any(|segment| segment.starts_with('$')) {
        return Err(refuse(
            "has a segment starting with `$`; MongoDB operators are not accepted in field names",
        ));
    }
    if owner_scope && (path == "roles" || path.starts_with("roles.")) {
        return Err(refuse(
            "is the owner scoping (`roles._id`), which rules may not change",
        ));
    }
    Ok(())
}

/// Checks a value that a rule puts into the query as is (`filter`, `subfilter`).
///
/// Scalars and arrays (of scalars or arrays) pass. JSON objects are refused anywhere inside,
/// because an object such as `{"$where": "..."}` or `{"$expr": ...}` would be read by MongoDB as
/// operators: the rule DSL only ever emits `$regex`, `$ne`, `$gte`, `$lte`, `$elemMatch` and
/// (through the list conversion) `$in`.
pub(crate) fn check_value(value: &Value, field: &str) -> Result<(), RuleError> {
    match value {
        Value::Object(_) => Err(RuleError::new(
            field,
            "a JSON object is not accepted as a rule value (it could carry MongoDB operators); use a string, number, boolean, null or a list of those",
        )),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_value(item, &format!("{field}[{i}]"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths() {
        assert!(check_path("datacenters._id", "f", true).is_ok());
        assert!(check_path("tags", "f", true).is_ok());
        for bad in [
            "$where",
            "a.$ne",
            "a..b",
            "a.",
            ".a",
            "a\0b",
            "roles",
            "roles._id",
            "roles.role",
        ] {
            assert!(check_path(bad, "f", true).is_err(), "{bad:?}");
        }
        assert!(check_path("roles._id", "f", false).is_ok());
        assert!(check_path("rolesx", "f", true).is_ok());
    }

    #[test]
    fn values() {
        assert!(check_value(&json!(["a", 1, [true, null]]), "f").is_ok());
        let err = check_value(&json!(["a", {"$where": "1"}]), "f").expect_err("refused");
        assert_eq!(err.field, "f[1]");
    }

    #[test]
    fn long_strings() {
        let long = "x".repeat(MAX_STRING_BYTES + 1);
        let err = check_strings(&json!([{"filter": long}]), "filters").expect_err("refused");
        assert_eq!(err.field, "filters[0].filter");
        let ok = "x".repeat(MAX_STRING_BYTES);
        assert!(check_strings(&json!([{"filter": ok}]), "filters").is_ok());
        let err = check_strings(&json!({ long.clone(): 1 }), "query").expect_err("refused");
        assert_eq!(err.field, "query");
    }
}
