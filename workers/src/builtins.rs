//! Celery's canvas built-ins, which Python clients send by name: `celery.map` and
//! `celery.starmap` (`task.map(it)`, `task.starmap(it)`, and each part of `task.chunks(it, n)`),
//! `celery.chunks` (a `chunks` signature sent as one task, e.g. inside a chain) and
//! `celery.accumulate`. They behave as Celery 5's `app/builtins.py`:
//!
//! - `celery.map(task, it)`: calls `task` once per item of `it`, in this run, in order, with
//!   the item as its one argument; the result is the list of results. The signature's own
//!   arguments and options are not used (Celery calls the task's function directly).
//! - `celery.starmap(task, it)`: the same with each item spread as positional arguments.
//! - `celery.chunks(task, it, n)`: sends `it` in parts of `n` items as a group of
//!   `celery.starmap` tasks and returns that group (`GroupResult` in Celery's tuple form).
//! - `celery.accumulate(*args, index=None)`: its arguments, or the one at `index`.
//!
//! A task of one of these names registered by the application takes precedence. The inner
//! task must be registered in this worker; when it is not, the call fails with Celery's
//! `NotRegistered`, as a Python worker's does. A retry asked by the inner task fails the
//! call instead (Celery raises the retry's exception from a direct call); a reject rejects it.

use std::sync::{Arc, OnceLock, Weak};

use maestro_broker::{ExceptionInfo, Signature};
use maestro_tasks::{Registry, Task, TaskArgs, TaskContext, TaskError, TaskFuture};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The built-in names, in the order `inspect registered --builtins` lists them.
pub(crate) const NAMES: [&str; 4] = [
    "celery.accumulate",
    "celery.chunks",
    "celery.map",
    "celery.starmap",
];

/// The most items one `celery.map`, `starmap` or `chunks` call takes; the body limit bounds
/// them already, this bounds the work one message asks for.
const MAX_ITEMS: usize = 100_000;

/// The registry the built-ins look tasks up in, set once it is complete.
#[derive(Default, Clone)]
pub(crate) struct RegistryHandle(Arc<OnceLock<Weak<Registry>>>);

impl RegistryHandle {
    /// Makes `registry` the one the built-ins call into.
    pub(crate) fn set(&self, registry: &Arc<Registry>) {
        let _ = self.0.set(Arc::downgrade(registry));
    }

    fn task(&self, name: &str) -> Result<Arc<dyn Task>, TaskError> {
        self.0
            .get()
            .and_then(Weak::upgrade)
            .and_then(|r| r.get(name).cloned())
            .ok_or_else(|| TaskError::Fail {
                exc: ExceptionInfo::celery("NotRegistered", format!("'{name}'")),
                traceback: None,
            })
    }
}

/// Adds the built-ins `registry` does not have a task of the same name for; `handle` must be
/// set to the registry once it is shared.
pub(crate) fn add(registry: &mut Registry, handle: &RegistryHandle) {
    for name in NAMES {
        if registry.get(name).is_none() {
            let builtin = Builtin {
                name,
                registry: handle.clone(),
            };
            // Not present, so not a duplicate.
            let _ = registry.register(Arc::new(builtin));
        }
    }
}

/// `celery.map(task, it)` and `celery.starmap(task, it)`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MapCall {
    task: Value,
    it: Vec<Value>,
}

/// `celery.chunks(task, it, n)`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunksCall {
    task: Value,
    it: Vec<Value>,
    n: i64,
}

struct Builtin {
    name: &'static str,
    registry: RegistryHandle,
}

impl Task for Builtin {
    fn name(&self) -> &str {
        self.name
    }

    /// The items as the inner task shows its own arguments: a task that hides credentials
    /// (`maestro.webhook`'s header values) hides them inside a map too.
    fn shown_arguments(&self, args: &Value, kwargs: &Value) -> Option<(Value, Value)> {
        if self.name == "celery.accumulate" {
            return None;
        }
        let (mut args, mut kwargs) = (args.clone(), kwargs.clone());
        let task = args.get(0).or_else(|| kwargs.get("task"))?;
        let inner = self.registry.task(inner_name(task).ok()?).ok()?;
        let it = match args.get_mut(1) {
            Some(it) => it,
            None => kwargs.get_mut("it")?,
        };
        let spread = self.name != "celery.map";
        let mut changed = false;
        for item in it.as_array_mut()? {
            let positional = if spread { item.clone() } else { json!([item]) };
            if let Some((shown, _)) = inner.shown_arguments(&positional, &json!({})) {
                *item = if spread {
                    shown
                } else {
                    shown.get(0).cloned().unwrap_or(Value::Null)
                };
                changed = true;
            }
        }
        changed.then_some((args, kwargs))
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext, args: &'a TaskArgs) -> TaskFuture<'a> {
        Box::pin(async move {
            match self.name {
                "celery.map" => self.map(ctx, args, false).await,
                "celery.starmap" => self.map(ctx, args, true).await,
                "celery.chunks" => chunks(ctx, args).await,
                _ => accumulate(args),
            }
        })
    }
}

impl Builtin {
    /// `celery.map` (`spread` false) and `celery.starmap` (`spread` true).
    async fn map(
        &self,
        ctx: &TaskContext,
        args: &TaskArgs,
        spread: bool,
    ) -> Result<Value, TaskError> {
        let MapCall { task, it } = args.parse(&["task", "it"])?;
        let name = inner_name(&task)?;
        if it.len() > MAX_ITEMS {
            return Err(too_many(self.name, it.len()));
        }
        let inner = self.registry.task(name)?;
        let mut call_ctx = ctx.clone();
        call_ctx.name = name.to_owned();
        let mut results = Vec::with_capacity(it.len());
        for (i, item) in it.into_iter().enumerate() {
            let positional = match item {
                Value::Array(items) if spread => Value::Array(items),
                other if spread => {
                    return Err(TaskError::type_error(format!(
                        "{name}() argument after * must be an iterable, not {} (item {i} of it)",
                        python_type(&other)
                    )));
                }
                other => Value::Array(vec![other]),
            };
            let call = TaskArgs::from_values(&positional, &Value::Object(Map::new()))?;
            let result = inner.run(&call_ctx, &call).await.map_err(direct_call)?;
            results.push(result);
            if ctx.soft_limit_reached() {
                return Err(ctx.soft_limit_error());
            }
        }
        Ok(Value::Array(results))
    }
}

/// `celery.chunks(task, it, n)`: a group of `celery.starmap` tasks of `n` items each, sent
/// from this run with ids derived from its own, so a retry of this run sends the same ids
/// again (and the duplicate-run guard keeps the parts that ran from running twice).
async fn chunks(ctx: &TaskContext, args: &TaskArgs) -> Result<Value, TaskError> {
    let ChunksCall { task, it, n } = args.parse(&["task", "it", "n"])?;
    inner_name(&task)?;
    if n < 1 {
        return Err(TaskError::fail(
            "ValueError",
            format!("chunks: n must be at least 1, not {n}"),
        ));
    }
    if it.len() > MAX_ITEMS {
        return Err(too_many("celery.chunks", it.len()));
    }
    let queue = task
        .get("options")
        .and_then(|o| o.get("queue"))
        .and_then(Value::as_str)
        .unwrap_or(&ctx.queue)
        .to_owned();
    let namespace = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, ctx.id.as_bytes());
    let group_id = uuid::Uuid::new_v5(&namespace, b"group").to_string();
    let mut members = Vec::new();
    for (index, part) in it.chunks(n as usize).enumerate() {
        let id = uuid::Uuid::new_v5(&namespace, index.to_string().as_bytes()).to_string();
        let sig = Signature::new("celery.starmap", vec![])
            .with_kwargs(json!({"task": task, "it": part}))
            .with_option("task_id", json!(id))
            .with_option("group_id", json!(group_id))
            .with_option("group_index", json!(index))
            .with_option("queue", json!(queue));
        ctx.send(sig).await?;
        members.push(json!([[id, null], null]));
    }
    Ok(json!([[group_id, null], members]))
}

/// `celery.accumulate(*args, index=None)`.
fn accumulate(args: &TaskArgs) -> Result<Value, TaskError> {
    let positional = args.positional()?;
    let mut keyword = args.keyword()?;
    let index = keyword.remove("index");
    if let Some(extra) = keyword.keys().next() {
        // Celery's accumulate takes **kwargs and ignores all but index.
        tracing::debug!(event = "accumulate_ignored_keyword", keyword = %extra);
    }
    match index {
        None | Some(Value::Null) => Ok(Value::Array(positional)),
        Some(Value::Number(i)) if i.as_i64().is_some() => {
            let i = i.as_i64().unwrap_or_default();
            let len = positional.len() as i64;
            let at = if i < 0 { len + i } else { i };
            usize::try_from(at)
                .ok()
                .and_then(|at| positional.get(at).cloned())
                .ok_or_else(|| TaskError::fail("IndexError", "tuple index out of range"))
        }
        Some(other) => Err(TaskError::type_error(format!(
            "tuple indices must be integers or slices, not {}",
            python_type(&other)
        ))),
    }
}

/// The task name of a signature argument (a dict with `task`, as Python sends it, or a name).
fn inner_name(task: &Value) -> Result<&str, TaskError> {
    match task {
        Value::String(name) => Ok(name),
        Value::Object(sig) => sig
            .get("task")
            .and_then(Value::as_str)
            .ok_or_else(|| TaskError::type_error("task: a signature needs its task name (`task`)")),
        other => Err(TaskError::type_error(format!(
            "task: a signature or a task name, not {}",
            python_type(other)
        ))),
    }
}

/// What a direct call's error becomes: a retry fails the call with its exception.
fn direct_call(e: TaskError) -> TaskError {
    match e {
        TaskError::Retry { exc, .. } => TaskError::Fail {
            exc,
            traceback: None,
        },
        other => other,
    }
}

fn too_many(name: &str, n: usize) -> TaskError {
    TaskError::fail(
        "ValueError",
        format!("{name}: {n} items is more than the {MAX_ITEMS} one call takes"),
    )
}

fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(args: Value, kwargs: Value) -> TaskArgs {
        TaskArgs::from_values(&args, &kwargs).expect("JSON arguments")
    }

    #[test]
    fn accumulate_returns_its_arguments_or_one_of_them() {
        let a = call(json!([1, "b", [3]]), json!({}));
        assert_eq!(accumulate(&a).ok(), Some(json!([1, "b", [3]])));
        let at = |i: Value| accumulate(&call(json!([1, "b", [3]]), json!({ "index": i })));
        assert_eq!(at(json!(1)).ok(), Some(json!("b")));
        assert_eq!(at(json!(-1)).ok(), Some(json!([3])));
        assert!(
            matches!(at(json!(3)), Err(TaskError::Fail { exc, .. }) if exc.exc_type == "IndexError")
        );
        assert!(at(json!("x")).is_err());
        assert_eq!(at(Value::Null).ok(), Some(json!([1, "b", [3]])));
    }

    /// Shows its one argument as `***`, as a task hiding a credential does.
    struct Secretive;

    impl Task for Secretive {
        fn name(&self) -> &str {
            "t.secret"
        }
        fn run<'a>(&'a self, _: &'a TaskContext, _: &'a TaskArgs) -> TaskFuture<'a> {
            Box::pin(async { Ok(Value::Null) })
        }
        fn shown_arguments(&self, _: &Value, kwargs: &Value) -> Option<(Value, Value)> {
            Some((json!(["***"]), kwargs.clone()))
        }
    }

    #[test]
    fn a_map_shows_its_items_as_the_inner_task_shows_its_arguments() {
        let mut registry = Registry::new();
        registry.register(Arc::new(Secretive)).expect("one task");
        let handle = RegistryHandle::default();
        add(&mut registry, &handle);
        let registry = Arc::new(registry);
        handle.set(&registry);
        let map = registry.get("celery.map").expect("built in");
        let shown = map.shown_arguments(
            &json!([{"task": "t.secret"}, ["token-1", "token-2"]]),
            &json!({}),
        );
        assert_eq!(
            shown,
            Some((json!([{"task": "t.secret"}, ["***", "***"]]), json!({})))
        );
        let starmap = registry.get("celery.starmap").expect("built in");
        let shown =
            starmap.shown_arguments(&json!([]), &json!({"task": "t.secret", "it": [["a"]]}));
        assert_eq!(
            shown,
            Some((json!([]), json!({"task": "t.secret", "it": [["***"]]})))
        );
        assert_eq!(
            map.shown_arguments(&json!([{"task": "other"}, [1]]), &json!({})),
            None
        );
    }

    #[test]
    fn the_inner_task_is_named_by_its_signature() {
        assert_eq!(
            inner_name(&json!({"task": "t.add", "args": [], "options": {}})).ok(),
            Some("t.add")
        );
        assert_eq!(inner_name(&json!("t.add")).ok(), Some("t.add"));
        assert!(inner_name(&json!({"args": []})).is_err());
        assert!(inner_name(&json!(3)).is_err());
    }

    #[tokio::test]
    async fn map_and_starmap_call_the_task_per_item() {
        let mut registry = Registry::new();
        registry
            .register(Arc::new(maestro_tasks::diagnostic::Echo))
            .expect("one echo");
        let handle = RegistryHandle::default();
        add(&mut registry, &handle);
        let registry = Arc::new(registry);
        handle.set(&registry);
        let ctx = TaskContext::new("id-1", "celery.map", "q", Arc::from("w@h"));
        let map = registry.get("celery.map").expect("built in").clone();
        let r = map
            .run(
                &ctx,
                &call(json!([{"task": "maestro.echo"}, [1, [2, 3]]]), json!({})),
            )
            .await;
        assert_eq!(r.ok(), Some(json!([[[1], {}], [[[2, 3]], {}]])));
        let starmap = registry.get("celery.starmap").expect("built in").clone();
        let r = starmap
            .run(
                &ctx,
                &call(
                    json!([]),
                    json!({"task": {"task": "maestro.echo"}, "it": [[1, 2], []]}),
                ),
            )
            .await;
        assert_eq!(r.ok(), Some(json!([[[1, 2], {}], [[], {}]])));
        let r = starmap
            .run(
                &ctx,
                &call(json!([{"task": "maestro.echo"}, [5]]), json!({})),
            )
            .await;
        assert!(matches!(r, Err(TaskError::Fail { exc, .. }) if exc.exc_type == "TypeError"));
        let r = map
            .run(&ctx, &call(json!([{"task": "nope"}, [1]]), json!({})))
            .await;
        assert!(matches!(r, Err(TaskError::Fail { exc, .. }) if exc.exc_type == "NotRegistered"));
    }
}
