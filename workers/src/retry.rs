//! Tries after this one: the next try's message (retries + 1, `eta`, its parent the try
//! before), its delay (the project's one backoff, from `--retry-backoff-min` to
//! `--retry-backoff-max`), and its publish through the broker's delay queues, confirmed, so
//! no wait ever sits in worker memory. Early deliveries (an `eta` still ahead, as Python
//! Celery sends countdowns to classic queues) take the same path.

use std::time::Duration;

use chrono::Utc;
use maestro_broker::message::republish_properties;
use maestro_broker::{BrokerError, TaskMessage};
use tracing::{debug, warn};

use crate::config::WorkerConfig;
use crate::session::{Received, Session};
use crate::settle::Disposition;

/// The next try of `msg`: retries + 1, `eta` = `now` + `wait`, its parent the try before.
pub fn next_try(msg: &TaskMessage, wait: Duration, now: chrono::DateTime<Utc>) -> TaskMessage {
    let mut next = msg.clone();
    next.headers.retries = msg.headers.retries.saturating_add(1);
    next.headers.eta = Some(now + chrono::Duration::from_std(wait).unwrap_or_default());
    next.headers.parent_id = Some(msg.headers.id.clone());
    next
}

/// Publishes the next try of `msg` (retries + 1, `eta` = now + `wait`) through the delay
/// queues back to `queue`, with confirm.
pub(crate) async fn publish_retry(
    s: &Session,
    queue: &str,
    msg: &TaskMessage,
    wait: Duration,
) -> Result<(), BrokerError> {
    let next = next_try(msg, wait, Utc::now());
    let wait_secs = wait.as_secs_f64().ceil() as u64;
    if wait_secs == 0 {
        Box::pin(s.publisher.publish_task("", queue, &next)).await
    } else {
        let (props, body) = next.encode();
        Box::pin(
            s.publisher
                .publish_delayed(&s.cfg.delay, wait_secs, queue, props, &body),
        )
        .await
    }
}

/// The retry delay after `retries` earlier tries: exponential from the minimum, with jitter.
pub fn retry_delay(cfg: &WorkerConfig, retries: u32) -> Duration {
    maestro_tasks::retry_delay(cfg.retry_backoff_min, cfg.retry_backoff_max, retries)
}

/// The delay of a task's retry that names no countdown: its own backoff (`retry_backoff`,
/// `retry_backoff_max`, `retry_jitter`) when it has one, else its `default_retry_delay`, else
/// the worker's backoff.
pub fn task_retry_delay(
    cfg: &WorkerConfig,
    options: &maestro_tasks::TaskOptions,
    retries: u32,
) -> Duration {
    if let Some(first) = options.retry_backoff {
        let max = options
            .retry_backoff_max
            .unwrap_or(maestro_tasks::DEFAULT_RETRY_BACKOFF_MAX);
        return maestro_tasks::backoff_delay(
            first,
            max,
            retries,
            options.retry_jitter.unwrap_or(true),
        );
    }
    options
        .default_retry_delay
        .unwrap_or_else(|| retry_delay(cfg, retries))
}

/// Moves a delivery whose `eta` is `wait_secs` ahead into the delay queues, unchanged, and
/// acknowledges it; requeues it when the move is not confirmed.
pub(crate) async fn delay_early(
    s: &Session,
    d: &Received,
    msg: &TaskMessage,
    wait_secs: u64,
) -> Disposition {
    let props = republish_properties(&d.properties, &[]);
    let moved =
        Box::pin(
            s.publisher
                .publish_delayed(&s.cfg.delay, wait_secs, &d.queue, props, &d.data),
        )
        .await;
    match moved {
        Ok(()) => {
            debug!(event = "task_delayed", task = %msg.headers.task, id = %msg.headers.id, delay_secs = wait_secs);
            Disposition::Ack
        }
        Err(e) => {
            warn!(event = "delay_failed", task = %msg.headers.task, id = %msg.headers.id, error = %e, "requeued");
            s.publish_failed(&e);
            Disposition::Requeue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;
    use std::time::Instant;

    fn cfg() -> WorkerConfig {
        crate::config::WorkerCli::try_parse_from(["maestro-worker", "--metrics-addr", "off"])
            .expect("flags")
            .worker
            .into_config()
            .expect("config")
    }

    /// A message claiming u32::MAX retries: its next try overflowed the count (a panic in
    /// debug builds, back to 0 in release), and its retry delay stepped through four billion
    /// backoff values first.
    #[test]
    fn a_message_at_the_retry_count_limit_retries_without_overflow_or_hanging() {
        let cfg = cfg();
        let started = Instant::now();
        let wait = retry_delay(&cfg, u32::MAX);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(wait <= cfg.retry_backoff_max * 2 && wait >= cfg.retry_backoff_min);
        let mut msg =
            TaskMessage::with_id("maestro.echo", "r-1", &json!([]), &json!({})).expect("message");
        msg.headers.retries = u32::MAX;
        let next = next_try(&msg, wait, Utc::now());
        assert_eq!(next.headers.retries, u32::MAX);
        let again = TaskMessage::decode(&next.encode_properties(), &next.encode_body());
        assert_eq!(again.expect("decodes").headers.retries, u32::MAX);
    }

    /// A retry goes out in the serializer and compression its message came in, as a Celery
    /// worker configured like its clients sends it (`publish_retry` publishes `encode()`).
    #[cfg(feature = "codecs")]
    #[test]
    fn a_retry_keeps_the_serializer_and_compression_of_its_message() {
        use maestro_broker::{Compression, Serializer, WireFormat};
        for (serializer, compression) in [
            (Serializer::Msgpack, Some(Compression::Bzip2)),
            (Serializer::Yaml, Some(Compression::Lzma)),
            (Serializer::Json, Some(Compression::Brotli)),
            (Serializer::Msgpack, None),
        ] {
            let mut first = TaskMessage::with_id(
                "maestro.echo",
                "r-2",
                &json!(["ü", 1, {"__type__": "bytes", "__value__": "b"}]),
                &json!({"k": 2.5}),
            )
            .expect("message");
            first.format = WireFormat {
                serializer,
                compression,
                signed: false,
            };
            // As the worker got it from a Python client.
            let (props, body) = first.encode();
            let got = TaskMessage::decode(&props, &body).expect("decodes");
            let next = next_try(&got, Duration::from_secs(3), Utc::now());
            let (props, body) = next.encode();
            assert_eq!(
                props.content_type().as_ref().map(|c| c.as_str()),
                Some(serializer.content_type())
            );
            let retried = TaskMessage::decode(&props, &body).expect("the retry decodes");
            assert_eq!(retried.format, first.format);
            assert_eq!(retried.headers.retries, 1);
            assert_eq!(retried.headers.parent_id.as_deref(), Some("r-2"));
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(retried.args.get()).expect("json"),
                json!(["ü", 1, {"__type__": "bytes", "__value__": "b"}])
            );
        }
    }
}
