//! The worker's whole decode path for one raw delivery: size check, properties and header
//! field table, body, task lookup (`maestro_worker::triage::triage`), then what the worker
//! computes from a decoded message before and after a run: time limits, trace context, the
//! dead-letter copy's properties, retry delay and the next try, which must decode again.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use maestro_broker::TaskMessage;
use maestro_broker::dead_letter::{self, DeadReason};
use maestro_broker::message::{peek_task_and_id, republish_properties};
use maestro_broker::trace::TraceContext;
use maestro_worker::retry::{next_try, retry_delay};
use maestro_worker::triage::{Unrunnable, triage};
use maestro_worker::{WorkerCli, WorkerConfig, time_limits};

static CFG: LazyLock<WorkerConfig> = LazyLock::new(|| {
    WorkerCli::try_parse_from(["maestro-worker", "--metrics-addr", "off"])
        .expect("default flags parse")
        .worker
        .into_config()
        .expect("default flags are valid")
});

const MAX_BODY: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let (props, body) = maestro_fuzz::delivery(data);
    let cfg = &*CFG;
    let runnable = |name: &str| name != "no.such.task";
    let _ = peek_task_and_id(&props);
    match triage(&props, body, MAX_BODY, runnable) {
        Err(Unrunnable { reason, detail }) => {
            assert!(!detail.is_empty());
            assert_ne!(reason, DeadReason::Rejected);
            let extra = dead_letter::headers(reason, &detail, "q", "w@h");
            let out = republish_properties(&props, &extra);
            let h = out.headers().as_ref().expect("dead letters carry headers");
            assert!(h.contains_key(dead_letter::REASON_HEADER));
            assert!(!h.contains_key("x-death"));
        }
        Ok(msg) => {
            assert!(!msg.headers.task.is_empty() && !msg.headers.id.is_empty());
            let _ = time_limits(&msg.headers, cfg);
            if let Some(t) = TraceContext::from_headers(&msg.headers) {
                let child = t.child();
                let mut h = msg.headers.clone();
                child.write(&mut h);
                assert_eq!(TraceContext::from_headers(&h), Some(child));
            }
            let _ = msg.args_vec();
            let _ = msg.embed.next_in_chain();
            for sig in msg.embed.callbacks.iter().flatten().take(4) {
                let _ = TaskMessage::from_signature(&sig, Some(serde_json::Value::Null), Some(&msg.headers), None);
            }
            // The worker re-encodes a message to publish its retry: it must decode again.
            let wait = retry_delay(cfg, msg.headers.retries);
            let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("valid");
            for next in [
                next_try(&msg, wait, now),
                next_try(&msg, Duration::ZERO, now),
            ] {
                let again = TaskMessage::decode(&next.encode_properties(), &next.encode_body())
                    .unwrap_or_else(|e| {
                        panic!("a retry of {:?} does not decode: {e}", msg.headers)
                    });
                assert_eq!(again.headers.task, msg.headers.task);
                assert_eq!(again.headers.retries, next.headers.retries);
                assert_eq!(again.headers.expires, msg.headers.expires);
                assert_eq!(again.headers.timelimit, msg.headers.timelimit);
                assert_eq!(again.args.get(), msg.args.get());
            }
        }
    }
});
