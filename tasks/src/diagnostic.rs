//! Diagnostic tasks, so a fleet can be smoke-tested from any Celery client:
//! `maestro.noop()`, `maestro.echo(*args, **kwargs)`, `maestro.sleep(seconds)`,
//! `maestro.fail(message)`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::args::TaskArgs;
use crate::context::TaskContext;
use crate::error::TaskError;
use crate::task::{Task, TaskFuture, TaskResult};

/// Longest `maestro.sleep` accepted: one day. Longer is a ValueError, not a stuck worker slot.
pub const SLEEP_SECS_MAX: f64 = 86_400.0;

pub(crate) fn all() -> Vec<Arc<dyn Task>> {
    vec![
        Arc::new(noop),
        Arc::new(Echo),
        Arc::new(sleep),
        Arc::new(fail),
    ]
}

/// `maestro.noop()`: does nothing, returns None.
#[crate::task(name = "maestro.noop", crate = "crate")]
pub async fn noop() {}

/// `maestro.echo(*args, **kwargs)`: returns `[args, kwargs]` as received. Written by hand:
/// `#[task]` functions have named parameters, and this one takes any.
pub struct Echo;

impl Task for Echo {
    fn name(&self) -> &str {
        "maestro.echo"
    }
    fn run<'a>(&'a self, _ctx: &'a TaskContext, args: &'a TaskArgs) -> TaskFuture<'a> {
        Box::pin(async move {
            Ok(Value::Array(vec![
                Value::Array(args.positional()?),
                Value::Object(args.keyword()?),
            ]))
        })
    }
}

/// `maestro.sleep(seconds)`: waits without holding a thread, returns `seconds`. Stops with
/// SoftTimeLimitExceeded when the soft time limit passes first.
#[crate::task(name = "maestro.sleep", crate = "crate")]
pub async fn sleep(
    ctx: &TaskContext,
    seconds: serde_json::Number,
) -> TaskResult<serde_json::Number> {
    let secs = seconds.as_f64().unwrap_or(f64::NAN);
    if !(0.0..=SLEEP_SECS_MAX).contains(&secs) {
        return Err(TaskError::value_error(format!(
            "argument 'seconds' must be between 0 and {SLEEP_SECS_MAX}, got {seconds}"
        )));
    }
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs_f64(secs)) => Ok(seconds),
        _ = ctx.soft_limit() => Err(ctx.soft_limit_error()),
    }
}

/// `maestro.fail(message)`: fails with `RuntimeError(message)`, never retried.
#[crate::task(name = "maestro.fail", max_retries = 0, crate = "crate")]
pub async fn fail(message: Option<Value>) -> TaskResult<()> {
    let text = match message {
        None | Some(Value::Null) => "maestro.fail was called".to_owned(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    };
    Err(TaskError::fail("RuntimeError", text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    fn ctx() -> TaskContext {
        TaskContext::new("t", "n", "q", Arc::from("w@h"))
    }

    async fn call(name: &str, args: Value, kwargs: Value) -> crate::task::TaskResult {
        let reg = Registry::with_diagnostics();
        let task = reg.get(name).expect("registered").clone();
        let a = TaskArgs::from_values(&args, &kwargs).expect("valid");
        task.run(&ctx(), &a).await
    }

    #[tokio::test]
    async fn echo_returns_args_and_kwargs_as_received() {
        let got = call(
            "maestro.echo",
            json!([1, "ü", null, [2.5]]),
            json!({"k": {"n": true}}),
        )
        .await;
        assert_eq!(
            got.expect("ok"),
            json!([[1, "ü", null, [2.5]], {"k": {"n": true}}])
        );
        let big: Value = serde_json::from_str("[123456789012345678901234567890]").expect("json");
        let got = call("maestro.echo", big.clone(), json!({}))
            .await
            .expect("ok");
        assert_eq!(got.to_string(), "[[123456789012345678901234567890],{}]");
    }

    #[tokio::test]
    async fn noop_and_fail() {
        assert_eq!(
            call("maestro.noop", json!([]), json!({})).await,
            Ok(Value::Null)
        );
        let err = call("maestro.fail", json!(["boom"]), json!({}))
            .await
            .expect_err("fails");
        assert_eq!(err, TaskError::fail("RuntimeError", "boom"));
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_waits_and_validates() {
        assert_eq!(
            call("maestro.sleep", json!([2]), json!({})).await,
            Ok(json!(2))
        );
        assert!(
            call("maestro.sleep", json!(["x"]), json!({}))
                .await
                .is_err()
        );
        assert!(call("maestro.sleep", json!([-1]), json!({})).await.is_err());
        assert!(call("maestro.sleep", json!([]), json!({})).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_stops_at_the_soft_limit() {
        let reg = Registry::with_diagnostics();
        let task = reg.get("maestro.sleep").expect("registered").clone();
        let mut c = ctx();
        c.soft_time_limit = Some(Duration::from_secs(1));
        let token = c.soft_limit_token().clone();
        let a = TaskArgs::from_values(&json!([60]), &json!({})).expect("valid");
        let run = tokio::spawn(async move { task.run(&c, &a).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        token.cancel();
        let err = run.await.expect("joined").expect_err("soft limit");
        assert!(err.to_string().contains("SoftTimeLimitExceeded"), "{err}");
    }
}
