//! Messages Python Celery 5.7 / kombu 5.7 wrote in msgpack and yaml and compressed with each of
//! kombu's compressions (tests/fixtures/kombu-5.7-codecs, made by its make.py), decoded with
//! this crate: the arguments must be those Celery's JSON serializer would have sent for the
//! same values, and a message re-encoded in its own format must decode to the same again.
#![cfg(feature = "codecs")]

use std::path::PathBuf;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use maestro_broker::{Compression, Embed, Serializer, TaskMessage, WireFormat, field};
use serde_json::{Number, Value};

fn fixtures() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kombu-5.7-codecs");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let doc = serde_json::from_slice(&std::fs::read(&p).expect("readable")).expect("json");
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                doc,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn delivery(doc: &Value) -> (BasicProperties, Vec<u8>) {
    let p = &doc["properties"];
    let mut headers = FieldTable::default();
    for (k, v) in doc["headers"].as_object().expect("headers") {
        headers.insert(ShortString::from(k.as_str()), field::from_json(v));
    }
    let props = BasicProperties::default()
        .with_content_type(p["content_type"].as_str().expect("content type").into())
        .with_content_encoding(p["content_encoding"].as_str().expect("encoding").into())
        .with_headers(headers);
    (props, hex(doc["body_hex"].as_str().expect("body")))
}

/// Floats compared by value: Python writes `1e-07` where Rust writes `1e-7`.
fn normal(v: Value) -> Value {
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() && n.to_string().contains(['.', 'e']) => {
            Value::Number(Number::from_f64(n.as_f64().expect("float")).expect("finite"))
        }
        Value::Array(a) => Value::Array(a.into_iter().map(normal).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normal(v))).collect()),
        v => v,
    }
}

fn parsed(raw: &serde_json::value::RawValue) -> Value {
    normal(serde_json::from_str(raw.get()).expect("json"))
}

#[test]
fn kombu_messages_decode_to_what_celerys_json_would_have_sent() {
    let all = fixtures();
    assert_eq!(
        all.len(),
        9,
        "fixtures: {:?}",
        all.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let mut seen = std::collections::BTreeSet::new();
    for (name, doc) in &all {
        let (props, body) = delivery(doc);
        let msg = TaskMessage::decode(&props, &body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let serializer = Serializer::from_content_type(
            doc["properties"]["content_type"]
                .as_str()
                .expect("content type"),
        )
        .expect("a serializer");
        let compression = doc["headers"]["compression"]
            .as_str()
            .map(|c| Compression::from_header(c).expect("a compression"));
        assert_eq!(
            msg.format,
            WireFormat {
                serializer,
                compression,
                signed: false,
            },
            "{name}"
        );
        seen.insert((
            serializer.name(),
            compression.map(Compression::content_type),
        ));
        let want = &doc["expect"];
        assert_eq!(
            parsed(&msg.args),
            normal(want["args"].clone()),
            "{name}: args"
        );
        assert_eq!(
            parsed(&msg.kwargs),
            normal(want["kwargs"].clone()),
            "{name}: kwargs"
        );
        let embed: Embed = serde_json::from_value(want["embed"].clone()).expect("embed");
        assert_eq!(msg.embed, embed, "{name}: embed");
        assert_eq!(msg.headers.task, "maestro.echo");
        assert_eq!(
            msg.headers.id,
            format!("fixture-{}", name.trim_end_matches(".json"))
        );
        assert!(!msg.headers.extra.contains_key("compression"), "{name}");

        // A retry writes it in its own format again, and that reads back the same.
        let (props, body) = msg.encode();
        assert_eq!(
            props.content_type().as_ref().map(ShortString::as_str),
            Some(serializer.content_type()),
            "{name}"
        );
        let header = props
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("compression").cloned());
        assert_eq!(
            header,
            compression.map(|c| AMQPValue::LongString(c.content_type().into())),
            "{name}"
        );
        let again = TaskMessage::decode(&props, &body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(again.format, msg.format, "{name}");
        assert_eq!(parsed(&again.args), parsed(&msg.args), "{name}: args again");
        assert_eq!(
            parsed(&again.kwargs),
            parsed(&msg.kwargs),
            "{name}: kwargs again"
        );
        assert_eq!(again.embed, msg.embed, "{name}: embed again");
    }
    // Both serializers, and every compression kombu has.
    let serializers: std::collections::BTreeSet<_> = seen.iter().map(|s| s.0).collect();
    assert_eq!(serializers, ["json", "msgpack", "yaml"].into());
    let compressions: std::collections::BTreeSet<_> = seen.iter().filter_map(|s| s.1).collect();
    assert_eq!(compressions.len(), Compression::ALL.len());
}

#[test]
fn yaml_strings_pyyaml_leaves_plain_stay_strings() {
    let (_, doc) = fixtures()
        .into_iter()
        .find(|(n, _)| n == "yaml.json")
        .expect("yaml fixture");
    let (props, body) = delivery(&doc);
    let msg = TaskMessage::decode(&props, &body).expect("decodes");
    let args = parsed(&msg.args);
    let args = args.as_array().expect("list");
    // safe_dump writes these plain: a YAML 1.2 reader would take them for numbers.
    for s in ["1e3", "0o17", "-.5"] {
        assert!(args.contains(&Value::String(s.into())), "{s} in {args:?}");
    }
    assert!(args.contains(&serde_json::from_str("1267650600228229401496703205376").expect("big")));
}
