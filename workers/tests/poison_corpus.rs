//! The poison-message corpus (tests/poison/*.json, described in tests/poison/README.md): every
//! malformed delivery goes through the worker's triage (size, decode, task lookup) and must
//! come out as the dead-letter reason and detail its file records, never as a task to run and
//! never as a panic. tests/test_poison_corpus.py publishes the same files to a real worker.

use std::path::{Path, PathBuf};

use lapin::BasicProperties;
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldTable, ShortString};
use maestro_broker::Accept;
use maestro_broker::field;
use maestro_tasks::Registry;
use maestro_worker::triage::{Unrunnable, triage, triage_accepting};
use serde_json::Value;

/// The body limit the corpus assumes (its `oversized` entry is just over it); the end-to-end
/// test starts its worker with `--max-body-bytes 65536` too.
const MAX_BODY_BYTES: usize = 65_536;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/poison")
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

fn double(v: &Value) -> f64 {
    match v {
        Value::String(s) => match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            other => panic!("double {other:?}"),
        },
        v => v.as_f64().expect("a number"),
    }
}

/// A header value as py-amqp (and pika) would type it; `{"$amqp": tag, "value": v}` picks a
/// type JSON cannot say: `d` double, `x` byte array (hex), `T` timestamp, `D` decimal.
fn amqp(v: &Value) -> AMQPValue {
    match v {
        Value::Object(o) if o.contains_key("$amqp") => {
            let value = &o["value"];
            match o["$amqp"].as_str().expect("tag") {
                "d" => AMQPValue::Double(double(value)),
                "x" => AMQPValue::ByteArray(ByteArray::from(hex(value.as_str().expect("hex")))),
                "T" => AMQPValue::Timestamp(value.as_u64().expect("seconds")),
                "D" => AMQPValue::DecimalValue(DecimalValue {
                    scale: value["scale"].as_u64().expect("scale") as u8,
                    value: value["value"].as_u64().expect("value") as u32,
                }),
                other => panic!("unknown $amqp tag {other:?}"),
            }
        }
        Value::Object(o) => {
            let mut t = FieldTable::default();
            for (k, v) in o {
                t.insert(ShortString::from(k.as_str()), amqp(v));
            }
            AMQPValue::FieldTable(t)
        }
        Value::Array(a) => AMQPValue::FieldArray(a.iter().map(amqp).collect::<Vec<_>>().into()),
        Value::Number(n) if n.as_i64().is_none() && n.as_u64().is_none() => {
            AMQPValue::Double(n.as_f64().expect("a number"))
        }
        other => field::from_json(other),
    }
}

/// The delivery a corpus file describes.
fn delivery(doc: &Value) -> (BasicProperties, Vec<u8>) {
    let mut props = BasicProperties::default();
    let p = &doc["properties"];
    if let Some(ct) = p.get("content_type").and_then(Value::as_str) {
        props = props.with_content_type(ct.into());
    }
    if let Some(enc) = p.get("content_encoding").and_then(Value::as_str) {
        props = props.with_content_encoding(enc.into());
    }
    if let Some(h) = doc["headers"].as_object() {
        let AMQPValue::FieldTable(t) = amqp(&Value::Object(h.clone())) else {
            unreachable!("an object is a table")
        };
        if let Some(id) = h.get("id").and_then(Value::as_str) {
            props = props.with_correlation_id(id.into());
        }
        props = props.with_headers(t);
    }
    let body = if let Some(text) = doc.get("body").and_then(Value::as_str) {
        text.as_bytes().to_vec()
    } else if let Some(h) = doc.get("body_hex").and_then(Value::as_str) {
        hex(h)
    } else if let Some(parts) = doc.get("body_parts").and_then(Value::as_array) {
        let mut out = String::new();
        for part in parts {
            let text = part[0].as_str().expect("text");
            out.push_str(&text.repeat(part[1].as_u64().expect("count") as usize));
        }
        out.into_bytes()
    } else {
        panic!("no body, body_hex or body_parts")
    };
    (props, body)
}

/// What the worker of a corpus file accepts: `accept.content` (`--accept-content`) and
/// `accept.cert_store` (`--security-cert-store`, relative to the repository), else the default.
fn accept(doc: &Value) -> Result<Accept, String> {
    let Some(a) = doc.get("accept") else {
        return Ok(Accept::default());
    };
    let content: Option<Vec<String>> = a["content"].as_array().map(|l| {
        l.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    });
    let store = a["cert_store"]
        .as_str()
        .map(|p| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p));
    Accept::configure(content.as_deref(), store.as_deref())
}

#[test]
fn every_poison_message_gets_its_dead_letter_reason() {
    let registry = Registry::with_diagnostics();
    let runnable = |name: &str| registry.get(name).is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/poison exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the corpus has {} files", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let doc: Value = serde_json::from_slice(&std::fs::read(path).expect("readable"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (props, body) = delivery(&doc);
        let want_reason = doc["expect"]["reason"].as_str().expect("expect.reason");
        let want_detail = doc["expect"]["detail"].as_str().expect("expect.detail");
        let accept = accept(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            triage_accepting(&props, &body, MAX_BODY_BYTES, &accept, runnable)
        }));
        match outcome {
            Err(_) => failures.push(format!("{name}: panicked")),
            Ok(Ok(msg)) => failures.push(format!(
                "{name}: decoded as a runnable {} task, expected {want_reason}",
                msg.headers.task
            )),
            Ok(Err(Unrunnable { reason, detail })) => {
                if reason.as_str() != want_reason || !detail.contains(want_detail) {
                    failures.push(format!(
                        "{name}: got {} ({detail:?}), expected {want_reason} with {want_detail:?}",
                        reason.as_str()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_corpus_headers_are_otherwise_runnable() {
    // The control: a corpus header table with a good body is a task the worker runs, so each
    // file fails for its own defect and not for a mistake in the shared headers.
    let registry = Registry::with_diagnostics();
    let doc: Value = serde_json::from_slice(
        &std::fs::read(corpus_dir().join("not-json.json")).expect("readable"),
    )
    .expect("json");
    let (props, _) = delivery(&doc);
    let good =
        br#"[["alive"], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]"#;
    let msg =
        triage(&props, good, MAX_BODY_BYTES, |n| registry.get(n).is_some()).expect("runnable");
    assert_eq!(msg.headers.task, "maestro.echo");
}
