//! What is wrong with one field of an input: its dotted path and why. One type for every
//! check a request goes through, wherever it runs: an HTTP API answers it as a 422 naming the
//! field, a task as the Python exception Celery callers expect (`TypeError` for a wrong type,
//! a missing or an unexpected argument; `ValueError` for a right type with a wrong value).

use std::fmt;

use serde::de::DeserializeOwned;

use crate::error::TaskError;

/// Which kind of mistake a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// Missing, unexpected, or of the wrong type (Python's `TypeError`).
    Type,
    /// Of the right type, with a value the check refuses (Python's `ValueError`).
    Value,
}

/// A field that failed a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field (`headers.X-Token`, `pipeline[2]`); `body` for the whole input.
    pub field: String,
    /// Why, phrased to follow the field's name (`must be 1 to 128 bytes`).
    pub reason: String,
    pub kind: FieldErrorKind,
}

impl FieldError {
    /// A field whose value the check refuses.
    pub fn value(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
            kind: FieldErrorKind::Value,
        }
    }

    /// A field that is missing, unexpected or of the wrong type.
    pub fn type_(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
            kind: FieldErrorKind::Type,
        }
    }

    /// The same error for a field found under `prefix` (`kwargs` makes `url` `kwargs.url`).
    pub fn within(mut self, prefix: &str) -> Self {
        if !prefix.is_empty() {
            self.field = if self.field == "body" {
                prefix.to_owned()
            } else {
                format!("{prefix}.{}", self.field)
            };
        }
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

/// In Python's words: `missing 1 required argument: 'x'`, `got an unexpected keyword argument
/// 'x'`, `argument 'x': invalid type ...` (TypeError); `argument 'x' must be ...` (ValueError).
impl From<FieldError> for TaskError {
    fn from(e: FieldError) -> Self {
        let name = &e.field;
        match e.kind {
            FieldErrorKind::Type if e.reason.starts_with("missing field") => {
                TaskError::type_error(format!("missing 1 required argument: '{name}'"))
            }
            FieldErrorKind::Type if e.reason.starts_with("unknown field") => {
                TaskError::type_error(format!("got an unexpected keyword argument '{name}'"))
            }
            FieldErrorKind::Type => {
                TaskError::type_error(format!("argument '{name}': {}", e.reason))
            }
            FieldErrorKind::Value => {
                TaskError::value_error(format!("argument '{name}' {}", e.reason))
            }
        }
    }
}

/// Why JSON text did not become a `T`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON at all (syntax, end of input): the reason without serde's position suffix.
    Malformed(String),
    /// JSON of the wrong shape: the field at fault.
    Field(FieldError),
}

/// Parses JSON text into `T`, naming the field at fault: a missing field by its own path
/// (serde reports it at its parent's), an unknown one (`deny_unknown_fields`) by its path,
/// a wrongly typed one by its path, a value `T` itself refuses at the innermost path.
pub fn from_json_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        classify(&path, &e.into_inner())
    })?;
    de.end().map_err(|e| JsonError::Malformed(message_of(&e)))?;
    Ok(value)
}

/// Deserializes a JSON value into `T`, naming the field at fault (see [`from_json_slice`]).
pub fn from_json_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, FieldError> {
    // Through the text: with serde_json's `arbitrary_precision` a `Value` holds numbers in a
    // form only serde_json's own deserializer reads, and the path-tracking one wraps it.
    let text = serde_json::to_vec(value).map_err(|e| FieldError::type_("body", e.to_string()))?;
    from_json_slice(&text).map_err(|e| match e {
        JsonError::Field(f) => f,
        JsonError::Malformed(reason) => FieldError::type_("body", reason),
    })
}

/// serde_json's message without its " at line L column C" suffix.
pub fn message_of(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

fn classify(path: &str, e: &serde_json::Error) -> JsonError {
    use serde_json::error::Category;
    let reason = message_of(e);
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => JsonError::Malformed(reason),
        Category::Data => {
            let parent = if path == "." { "" } else { path };
            // serde names a missing field only in its message (the path is its parent's);
            // an unknown field is already the last segment of the path.
            let named = reason
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next());
            let field = match named {
                Some(name) if parent.is_empty() => name.to_owned(),
                Some(name) => format!("{parent}.{name}"),
                None if parent.is_empty() => "body".to_owned(),
                None => parent.to_owned(),
            };
            JsonError::Field(FieldError::type_(field, reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
    }

    fn field(r: Result<Outer, JsonError>) -> Option<String> {
        match r.expect_err("refused") {
            JsonError::Field(f) => Some(f.field),
            JsonError::Malformed(_) => None,
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field(from_json_slice(b"{")), None);
        assert_eq!(
            field(from_json_slice(b"{\"name\": 1}")),
            Some("name".into())
        );
        assert_eq!(field(from_json_slice(b"{}")), Some("name".into()));
        assert_eq!(
            field(from_json_slice(b"{\"name\":\"x\",\"zz\":1}")),
            Some("zz".into())
        );
        assert_eq!(
            field(from_json_slice(b"{\"name\":\"x\",\"inner\":{\"n\":-1}}")),
            Some("inner.n".into())
        );
        assert_eq!(
            field(from_json_slice(b"{\"name\":\"x\",\"inner\":{}}")),
            Some("inner.n".into())
        );
        assert_eq!(field(from_json_slice(b"{\"name\":\"x\"} trailing")), None);
        assert!(from_json_slice::<Outer>(b"{\"name\":\"x\",\"inner\":{\"n\":3}}").is_ok());
    }

    #[test]
    fn a_task_reports_the_python_exception() {
        let e: TaskError = FieldError::type_("url", "invalid type: integer `5`").into();
        assert_eq!(
            e,
            TaskError::type_error("argument 'url': invalid type: integer `5`")
        );
        let e: TaskError = FieldError::type_("url", "missing field `url`").into();
        assert_eq!(
            e,
            TaskError::type_error("missing 1 required argument: 'url'")
        );
        let e: TaskError = FieldError::value("url", "is too long")
            .within("kwargs")
            .into();
        assert_eq!(
            e,
            TaskError::value_error("argument 'kwargs.url' is too long")
        );
    }
}
