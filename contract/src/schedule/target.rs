//! What a schedule sends when it fires: a Celery task (`task`, `queue`, `args`, `kwargs`),
//! or, for one of Maestro's scheduler documents (`task: connections | reports | webhook` with
//! an `endpoint`), `maestro.scheduler.run` carrying the HTTP job (`maestro_contract::job`).

use maestro_tasks::FieldError;
use serde_json::{Map, Value, json};

use crate::job::{JobKind, JobRequest};
use crate::names::TASK_SCHEDULER_RUN;

/// What to send when a schedule fires.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub task: String,
    pub queue: Option<String>,
    pub args: Value,
    pub kwargs: Value,
}

pub(crate) fn parse_target(
    obj: &Map<String, Value>,
    prefix: &str,
    schedule_id: &str,
) -> Result<Target, FieldError> {
    let field = |f: &str| format!("{prefix}{f}");
    if obj.contains_key("endpoint") {
        return maestro_job(obj, schedule_id);
    }
    let task = match obj.get("task") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => return Err(FieldError::value(field("task"), "is empty")),
        None | Some(Value::Null) => {
            return Err(FieldError::value(
                field("task"),
                "missing: the name of the task to send",
            ));
        }
        Some(_) => return Err(FieldError::value(field("task"), "must be a string")),
    };
    let queue = match obj.get("queue") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            maestro_broker::topology::validate_queue_name(s)
                .map_err(|e| FieldError::value(field("queue"), e))?;
            Some(s.clone())
        }
        Some(_) => return Err(FieldError::value(field("queue"), "must be a string")),
    };
    let mut kwargs = match obj.get("kwargs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        // Maestro's scheduler-app stored kwargs as a JSON string at times.
        Some(Value::String(s)) if s.trim().is_empty() => Map::new(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(FieldError::value(
                    field("kwargs"),
                    "must be an object (or a JSON string holding one)",
                ));
            }
        },
        Some(_) => return Err(FieldError::value(field("kwargs"), "must be an object")),
    };
    let args = match obj.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if is_key_value_list(items) => {
            // Maestro's `args: [{key, value}]` are named arguments.
            for item in items {
                if let (Some(Value::String(k)), Some(v)) = (item.get("key"), item.get("value")) {
                    kwargs.insert(k.clone(), v.clone());
                }
            }
            Vec::new()
        }
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(FieldError::value(field("args"), "must be a list")),
    };
    Ok(Target {
        task,
        queue,
        args: Value::Array(args),
        kwargs: Value::Object(kwargs),
    })
}

fn is_key_value_list(items: &[Value]) -> bool {
    !items.is_empty()
        && items.iter().all(|i| {
            i.as_object().is_some_and(|o| {
                o.len() == 2
                    && o.get("key").is_some_and(Value::is_string)
                    && o.contains_key("value")
            })
        })
}

/// One of Maestro's scheduler documents as the `maestro.scheduler.run` it fires.
fn maestro_job(obj: &Map<String, Value>, schedule_id: &str) -> Result<Target, FieldError> {
    let task = obj.get("task").and_then(Value::as_str).unwrap_or("webhook");
    let kind = JobKind::parse(task).ok_or_else(|| {
        FieldError::value(
            "task",
            format!("{task:?} is not a scheduled job Maestro ran (connections, reports, webhook)"),
        )
    })?;
    let mut job = obj.clone();
    job.retain(|k, _| {
        matches!(
            k.as_str(),
            "name" | "endpoint" | "method" | "source" | "args" | "chain"
        )
    });
    let mut job = match plain(Value::Object(job)) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    job.insert("job".into(), json!(kind));
    job.insert(
        "schedule_id".into(),
        json!(if schedule_id.is_empty() {
            "new"
        } else {
            schedule_id
        }),
    );
    let req: JobRequest = maestro_tasks::field::from_json_value(&Value::Object(job))?;
    req.validate()?;
    let kwargs = serde_json::to_value(&req).map_err(|e| FieldError::value("$", e.to_string()))?;
    Ok(Target {
        task: TASK_SCHEDULER_RUN.to_owned(),
        queue: None,
        args: json!([]),
        kwargs,
    })
}

/// Extended JSON ids and dates (`{"$oid": ..}`, `{"$date": ..}`) as the plain strings
/// server-app wrote before its driver stored them: a chain link's `_id` or a report job's
/// `owner_user` is an ObjectId in the document and text in the job.
fn plain(v: Value) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("$oid") => {
            m.get("$oid").cloned().unwrap_or(Value::Null)
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("$date") => match m.get("$date") {
            Some(Value::String(s)) => Value::String(s.clone()),
            Some(other) => other.clone(),
            None => Value::Null,
        },
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, plain(v))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(plain).collect()),
        other => other,
    }
}
