//! A task call's arguments, as raw JSON until a task asks for them. Lookups follow Python's
//! call rules: a parameter is taken by position, else by keyword; a wrong type is a TypeError
//! that names the parameter.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::TaskError;
use crate::field::from_json_value;

/// Positional and keyword arguments of one call.
#[derive(Debug, Clone)]
pub struct TaskArgs {
    args: Box<RawValue>,
    kwargs: Box<RawValue>,
}

impl TaskArgs {
    pub fn new(args: Box<RawValue>, kwargs: Box<RawValue>) -> Self {
        Self { args, kwargs }
    }

    /// Arguments from JSON values (`args` an array, `kwargs` an object).
    pub fn from_values(args: &Value, kwargs: &Value) -> Result<Self, TaskError> {
        let raw = |v: &Value| {
            serde_json::value::to_raw_value(v).map_err(|e| TaskError::type_error(e.to_string()))
        };
        Ok(Self::new(raw(args)?, raw(kwargs)?))
    }

    /// The raw positional and keyword arguments back.
    pub fn into_parts(self) -> (Box<RawValue>, Box<RawValue>) {
        (self.args, self.kwargs)
    }

    /// The positional arguments' JSON text, as received.
    pub fn args_json(&self) -> &str {
        self.args.get()
    }

    /// The keyword arguments' JSON text, as received.
    pub fn kwargs_json(&self) -> &str {
        self.kwargs.get()
    }

    pub fn positional(&self) -> Result<Vec<Value>, TaskError> {
        serde_json::from_str(self.args.get())
            .map_err(|e| TaskError::type_error(format!("args: {e}")))
    }

    pub fn keyword(&self) -> Result<Map<String, Value>, TaskError> {
        serde_json::from_str(self.kwargs.get())
            .map_err(|e| TaskError::type_error(format!("kwargs: {e}")))
    }

    /// Parameter `name` at position `index`, or given by keyword; `None` when absent.
    pub fn get<T: DeserializeOwned>(
        &self,
        index: usize,
        name: &str,
    ) -> Result<Option<T>, TaskError> {
        let mut positional = self.positional()?;
        let mut keyword = self.keyword()?;
        let by_position = (index < positional.len()).then(|| positional.swap_remove(index));
        let by_keyword = keyword.remove(name);
        let value = match (by_position, by_keyword) {
            (Some(_), Some(_)) => {
                return Err(TaskError::type_error(format!(
                    "got multiple values for argument '{name}'"
                )));
            }
            (Some(v), None) | (None, Some(v)) => v,
            (None, None) => return Ok(None),
        };
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| TaskError::type_error(format!("argument '{name}': {e}")))
    }

    /// The call as one keyword object for a function of `params` (in order): positional
    /// arguments take the names of the parameters they stand for, as Python binds a call.
    /// More positional arguments than parameters, or one given both ways, is a TypeError.
    pub fn bind(&self, params: &[&str]) -> Result<Map<String, Value>, TaskError> {
        let positional = self.positional()?;
        let mut keyword = self.keyword()?;
        if positional.len() > params.len() {
            return Err(TaskError::type_error(format!(
                "takes {} positional arguments but {} were given",
                params.len(),
                positional.len()
            )));
        }
        for (name, value) in params.iter().zip(positional) {
            if keyword.contains_key(*name) {
                return Err(TaskError::type_error(format!(
                    "got multiple values for argument '{name}'"
                )));
            }
            keyword.insert((*name).to_owned(), value);
        }
        Ok(keyword)
    }

    /// Binds the call to `params` (see [`bind`](Self::bind)) and deserializes it into `T`,
    /// whose fields are the parameters: a missing, unexpected or wrongly typed argument is a
    /// TypeError naming it.
    pub fn parse<T: DeserializeOwned>(&self, params: &[&str]) -> Result<T, TaskError> {
        let bound = self.bind(params)?;
        from_json_value(&Value::Object(bound)).map_err(TaskError::from)
    }

    /// Binds the call to the parameters of the function `function` as Python binds one, for
    /// code that reads each parameter itself (what `#[task]` generates): more positional
    /// arguments than parameters, an argument given twice, a required one missing or an
    /// unexpected keyword is a `TypeError` in Python's words (`add() missing 1 required
    /// positional argument: 'y'`).
    pub fn bind_call(&self, function: &'static str, params: &[Param]) -> Result<Bound, TaskError> {
        let named = |m: String| TaskError::type_error(format!("{function}() {m}"));
        let positional = self.positional()?;
        let mut keyword = self.keyword()?;
        if positional.len() > params.len() {
            return Err(named(format!(
                "takes {} positional argument{} but {} {} given",
                params.len(),
                if params.len() == 1 { "" } else { "s" },
                positional.len(),
                if positional.len() == 1 { "was" } else { "were" },
            )));
        }
        for (p, value) in params.iter().zip(positional) {
            if keyword.contains_key(p.name) {
                return Err(named(format!(
                    "got multiple values for argument '{}'",
                    p.name
                )));
            }
            keyword.insert(p.name.to_owned(), value);
        }
        let missing: Vec<String> = params
            .iter()
            .filter(|p| p.required && !keyword.contains_key(p.name))
            .map(|p| format!("'{}'", p.name))
            .collect();
        if !missing.is_empty() {
            let list = match missing.as_slice() {
                [one] => one.clone(),
                [a, b] => format!("{a} and {b}"),
                [init @ .., last] => format!("{}, and {last}", init.join(", ")),
                [] => String::new(),
            };
            return Err(named(format!(
                "missing {} required positional argument{}: {list}",
                missing.len(),
                if missing.len() == 1 { "" } else { "s" },
            )));
        }
        if let Some(extra) = keyword
            .keys()
            .find(|k| !params.iter().any(|p| p.name == *k))
        {
            return Err(named(format!(
                "got an unexpected keyword argument '{extra}'"
            )));
        }
        Ok(Bound {
            function,
            values: keyword,
        })
    }

    /// Like `get`, but a missing parameter is a TypeError.
    pub fn require<T: DeserializeOwned>(&self, index: usize, name: &str) -> Result<T, TaskError> {
        self.get(index, name)?.ok_or_else(|| {
            TaskError::type_error(format!("missing 1 required positional argument: '{name}'"))
        })
    }
}

/// A request type that takes a whole call (`#[args] req: T` in a `#[task]`): its fields are the
/// task's parameters, in this order for positional arguments.
pub trait CallArgs: serde::de::DeserializeOwned + serde::Serialize {
    /// The parameter names, in positional order.
    const PARAMETERS: &'static [&'static str];
}

/// One parameter of a function a call is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    /// Without a default: a call must give it.
    pub required: bool,
}

/// A call bound to its function's parameters ([`TaskArgs::bind_call`]): each value taken
/// once, converted to the parameter's type.
#[derive(Debug)]
pub struct Bound {
    function: &'static str,
    values: Map<String, Value>,
}

impl Bound {
    /// The value of `name` as a `T`, or `default()` when the call did not give it; a value of
    /// the wrong type is a TypeError naming the parameter.
    pub fn take<T: DeserializeOwned>(
        &mut self,
        name: &str,
        default: impl FnOnce() -> Option<T>,
    ) -> Result<T, TaskError> {
        let missing = || {
            TaskError::type_error(format!(
                "{}() missing 1 required positional argument: '{name}'",
                self.function
            ))
        };
        match self.values.remove(name) {
            Some(v) => serde_json::from_value(v).map_err(|e| {
                TaskError::type_error(format!("{}() argument '{name}': {e}", self.function))
            }),
            None => default().ok_or_else(missing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_come_by_position_or_keyword() {
        let a = TaskArgs::from_values(&json!([1.5]), &json!({"message": "m"})).expect("valid");
        assert_eq!(a.require::<f64>(0, "seconds").expect("present"), 1.5);
        assert_eq!(a.require::<String>(1, "message").expect("present"), "m");
        assert_eq!(a.get::<String>(2, "other").expect("absent"), None);
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Call {
        url: String,
        #[serde(default)]
        method: Option<String>,
    }

    #[test]
    fn a_call_binds_like_python() {
        let a = TaskArgs::from_values(&json!(["u"]), &json!({"method": "PUT"})).expect("valid");
        let call: Call = a.parse(&["url", "method"]).expect("binds");
        assert_eq!(
            call,
            Call {
                url: "u".into(),
                method: Some("PUT".into())
            }
        );
        let err = |args: Value, kwargs: Value| {
            let a = TaskArgs::from_values(&args, &kwargs).expect("valid");
            a.parse::<Call>(&["url", "method"])
                .expect_err("refused")
                .to_string()
        };
        assert!(err(json!([1, 2, 3]), json!({})).contains("takes 2 positional arguments but 3"));
        assert!(
            err(json!(["u"]), json!({"url": "v"})).contains("multiple values for argument 'url'")
        );
        assert!(err(json!([]), json!({})).contains("missing 1 required argument: 'url'"));
        assert!(err(json!(["u"]), json!({"x": 1})).contains("unexpected keyword argument 'x'"));
        assert!(err(json!([5]), json!({})).contains("argument 'url': invalid type"));
    }

    #[test]
    fn calls_bind_to_a_function_in_pythons_words() {
        let params = [
            Param {
                name: "x",
                required: true,
            },
            Param {
                name: "y",
                required: true,
            },
            Param {
                name: "z",
                required: false,
            },
        ];
        let bind = |args: Value, kwargs: Value| {
            TaskArgs::from_values(&args, &kwargs)
                .expect("valid")
                .bind_call("add", &params)
        };
        let mut b = bind(json!([1]), json!({"y": 2})).expect("binds");
        assert_eq!(b.take::<i64>("x", || None).expect("x"), 1);
        assert_eq!(b.take::<i64>("y", || None).expect("y"), 2);
        assert_eq!(b.take::<i64>("z", || Some(7)).expect("default"), 7);
        // The exception's type and message, as a Python caller reads them.
        let text = |e: TaskError| match e {
            TaskError::Fail { exc, .. } => format!(
                "{}: {}",
                exc.exc_type,
                exc.exc_message
                    .first()
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ),
            other => other.to_string(),
        };
        let err = |args: Value, kwargs: Value| text(bind(args, kwargs).expect_err("refused"));
        assert_eq!(
            err(json!([]), json!({})),
            "TypeError: add() missing 2 required positional arguments: 'x' and 'y'"
        );
        assert_eq!(
            err(json!([1]), json!({})),
            "TypeError: add() missing 1 required positional argument: 'y'"
        );
        assert_eq!(
            err(json!([1, 2, 3, 4]), json!({})),
            "TypeError: add() takes 3 positional arguments but 4 were given"
        );
        assert_eq!(
            err(json!([1]), json!({"x": 2, "y": 1})),
            "TypeError: add() got multiple values for argument 'x'"
        );
        assert_eq!(
            err(json!([1, 2]), json!({"w": 0})),
            "TypeError: add() got an unexpected keyword argument 'w'"
        );
        let mut wrong = bind(json!(["a", 2]), json!({})).expect("binds");
        let e = text(wrong.take::<i64>("x", || None).expect_err("wrong type"));
        assert_eq!(
            e,
            "TypeError: add() argument 'x': invalid type: string \"a\", expected i64"
        );
    }

    #[test]
    fn wrong_calls_are_type_errors_naming_the_parameter() {
        let a = TaskArgs::from_values(&json!(["x"]), &json!({"seconds": 2})).expect("valid");
        let err = a.require::<f64>(0, "seconds").expect_err("twice");
        assert!(
            err.to_string()
                .contains("multiple values for argument 'seconds'"),
            "{err}"
        );
        let b = TaskArgs::from_values(&json!(["x"]), &json!({})).expect("valid");
        let err = b.require::<f64>(0, "seconds").expect_err("wrong type");
        assert!(
            err.to_string().contains("TypeError") && err.to_string().contains("'seconds'"),
            "{err}"
        );
        let c = TaskArgs::from_values(&json!([]), &json!({})).expect("valid");
        assert!(c.require::<f64>(0, "seconds").is_err());
    }
}
