//! The captured Celery 5.7.0 wire traffic (tests/fixtures/celery-5.7-wire, copied from the
//! project's shared reference) decoded with this crate's codec. The traces keep each header's
//! AMQP type tag (`I:0`, `A[V(None), V(None)]`, `S:'...'`, `t:False`, `F{}`), so the field
//! tables rebuilt here are what py-amqp put on the wire, type for type.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use maestro_broker::{TaskMessage, field};
use serde_json::{Value, json};

/// One `basic.publish` / `basic.deliver` block of a trace.
#[derive(Debug)]
struct Frame {
    method: String,
    props: BasicProperties,
    body: Vec<u8>,
}

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/celery-5.7-wire")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A small parser for the trace's value notation.
struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> P<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            s: s.as_bytes(),
            i: 0,
        }
    }
    fn peek(&self) -> u8 {
        self.s.get(self.i).copied().unwrap_or(0)
    }
    fn eat(&mut self, t: &str) -> bool {
        if self.s[self.i..].starts_with(t.as_bytes()) {
            self.i += t.len();
            true
        } else {
            false
        }
    }
    fn ws(&mut self) {
        while matches!(self.peek(), b' ' | b',') {
            self.i += 1;
        }
    }
    fn until(&mut self, stop: &[u8]) -> &'a str {
        let start = self.i;
        while self.i < self.s.len() && !stop.contains(&self.s[self.i]) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).expect("utf-8")
    }
    /// A Python repr string: '...' or "..." with backslash escapes.
    fn pystr(&mut self) -> String {
        let q = self.peek();
        assert!(q == b'\'' || q == b'"', "string expected at {}", self.i);
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = self.peek();
            self.i += 1;
            match c {
                _ if c == q => break,
                b'\\' => {
                    let e = self.peek();
                    self.i += 1;
                    let hex = |p: &mut Self, n: usize| {
                        let h = std::str::from_utf8(&p.s[p.i..p.i + n]).expect("hex");
                        p.i += n;
                        u32::from_str_radix(h, 16).expect("hex")
                    };
                    let ch = match e {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'x' => char::from_u32(hex(self, 2)).expect("char"),
                        b'u' => char::from_u32(hex(self, 4)).expect("char"),
                        b'U' => char::from_u32(hex(self, 8)).expect("char"),
                        other => other as char,
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0 => panic!("unterminated string"),
                c => out.push(c),
            }
        }
        String::from_utf8(out).expect("utf-8")
    }
    fn value(&mut self) -> AMQPValue {
        self.ws();
        if self.eat("V(None)") {
            return AMQPValue::Void;
        }
        if self.eat("A[") {
            let mut items = Vec::new();
            loop {
                self.ws();
                if self.eat("]") {
                    return AMQPValue::FieldArray(FieldArray::from(items));
                }
                items.push(self.value());
            }
        }
        if self.eat("F{") {
            return AMQPValue::FieldTable(self.table_until(b'}'));
        }
        let tag = self.peek();
        self.i += 1;
        assert!(self.eat(":"), "type tag expected at {}", self.i);
        match tag {
            b'S' => AMQPValue::LongString(LongString::from(self.pystr().as_str())),
            b's' => AMQPValue::ShortString(ShortString::from(self.pystr())),
            b't' => AMQPValue::Boolean(self.until(b", ]}") == "True"),
            b'I' => AMQPValue::LongInt(self.until(b", ]}").parse().expect("int")),
            b'L' | b'l' => AMQPValue::LongLongInt(self.until(b", ]}").parse().expect("int")),
            b'B' => AMQPValue::ShortShortUInt(self.until(b", ]}").parse().expect("int")),
            b'd' => AMQPValue::Double(self.until(b", ]}").parse().expect("float")),
            other => panic!("type tag {:?} not handled", other as char),
        }
    }
    fn table_until(&mut self, end: u8) -> FieldTable {
        let mut t = FieldTable::default();
        loop {
            self.ws();
            if self.peek() == end {
                self.i += 1;
                return t;
            }
            let key = self.pystr();
            assert!(self.eat(":"));
            let v = self.value();
            t.insert(key.as_str().into(), v);
        }
    }
}

fn frames(trace: &str) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut lines = trace.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(at) = line
            .find("basic.publish(")
            .or_else(|| line.find("basic.deliver("))
        else {
            continue;
        };
        let method = line[at..].to_owned();
        let mut props = BasicProperties::default();
        let mut headers = FieldTable::default();
        let mut body = Vec::new();
        let mut in_headers = false;
        while let Some(next) = lines.peek() {
            if !next.starts_with("    ") {
                break;
            }
            let l = lines.next().expect("peeked");
            if l.starts_with("        ") && in_headers {
                let mut p = P::new(l.trim());
                let key = p.pystr();
                assert!(p.eat(":"));
                headers.insert(key.as_str().into(), p.value());
                continue;
            }
            in_headers = false;
            let l = l.trim();
            if l.starts_with("headers (") {
                in_headers = true;
            } else if let Some(b) = l.strip_prefix("body = ") {
                body = b.as_bytes().to_vec();
            } else if let Some((k, v)) = l.split_once(" = ") {
                let v = P::new(v).value();
                let short = || match &v {
                    AMQPValue::ShortString(s) => s.clone(),
                    other => panic!("{k}: {other:?}"),
                };
                let byte = || match &v {
                    AMQPValue::ShortShortUInt(b) => *b,
                    other => panic!("{k}: {other:?}"),
                };
                props = match k {
                    "content_type" => props.with_content_type(short()),
                    "content_encoding" => props.with_content_encoding(short()),
                    "delivery_mode" => props.with_delivery_mode(byte()),
                    "priority" => props.with_priority(byte()),
                    "correlation_id" => props.with_correlation_id(short()),
                    "reply_to" => props.with_reply_to(short()),
                    "expiration" => props.with_expiration(short()),
                    _ => props,
                };
            }
        }
        out.push(Frame {
            method,
            props: props.with_headers(headers),
            body,
        });
    }
    out
}

fn task_frames(trace: &str) -> Vec<Frame> {
    frames(trace)
        .into_iter()
        .filter(|f| {
            f.props
                .headers()
                .as_ref()
                .is_some_and(|h| h.contains_key("task"))
        })
        .collect()
}

#[test]
fn every_task_message_celery_sent_decodes() {
    let mut decoded = BTreeMap::new();
    for file in [
        "wire/client-publish.log",
        "wire/worker-results-retry-chain.log",
    ] {
        let frames = task_frames(&fixture(file));
        assert!(!frames.is_empty(), "{file} holds task messages");
        for f in frames {
            let msg = TaskMessage::decode(&f.props, &f.body)
                .unwrap_or_else(|e| panic!("{file}: {}: {e}", f.method));
            decoded.insert(msg.headers.id.clone(), msg);
        }
    }
    assert_eq!(
        decoded.len(),
        14,
        "11 client messages and 3 follow-ups the worker sent"
    );

    // countdown + expires + retries + priority + link/errback + time limits
    let m = &decoded["custom-task-id-0001"];
    assert_eq!(m.headers.task, "tasks.add");
    assert_eq!(m.headers.retries, 2);
    assert_eq!(m.headers.timelimit.hard_secs, Some(60.0));
    assert_eq!(m.headers.timelimit.soft_secs, Some(50.0));
    assert_eq!(
        m.headers
            .eta
            .map(maestro_broker::message::format_time)
            .as_deref(),
        Some("2026-11-22T03:39:11.385063+00:00")
    );
    assert_eq!(
        m.headers
            .expires
            .map(maestro_broker::message::format_time)
            .as_deref(),
        Some("2026-11-22T03:40:41.385063+00:00")
    );
    assert_eq!(m.properties.priority, Some(5));
    assert_eq!(m.kwargs.get(), r#"{"y": 3}"#);
    let callbacks = m.embed.callbacks.as_ref().expect("link");
    assert_eq!(
        (callbacks[0].task.as_str(), &callbacks[0].args),
        ("tasks.add", &json!([10]))
    );
    let errbacks = m.embed.errbacks.as_ref().expect("link_error");
    assert!(errbacks[0].immutable);

    // a chain travels reversed: the next task is the last element
    let chain = decoded
        .values()
        .find(|m| m.embed.chain.as_ref().is_some_and(|c| c.len() == 2))
        .expect("chain");
    let (next, rest) = chain.embed.next_in_chain().expect("next");
    assert_eq!(next.args, json!([3]));
    assert_eq!(rest[0].args, json!([4]));

    // a group member and a shadowed, result-ignoring task with an ETA years ahead
    let member = decoded
        .values()
        .find(|m| m.headers.group_index == Some(1))
        .expect("group member");
    assert!(member.headers.group.is_some());
    let shadowed = decoded
        .values()
        .find(|m| m.headers.shadow.is_some())
        .expect("shadow");
    assert_eq!(shadowed.headers.shadow.as_deref(), Some("add-shadowed"));
    assert!(shadowed.headers.ignore_result);

    // integers past 32 bits keep their digits; unicode survives
    assert!(
        decoded
            .values()
            .any(|m| m.args.get() == "[1099511627776, -8589934592]")
    );
    let unicode = decoded
        .values()
        .find(|m| m.args.get().contains("\\u00fcn"))
        .expect("unicode");
    assert_eq!(
        serde_json::from_str::<Value>(unicode.args.get()).expect("json")[0][0],
        "ünïcødé"
    );

    // a retry the worker published: eta set, retries 1, parent is itself
    let retry = decoded
        .values()
        .find(|m| m.headers.task == "tasks.flaky" && m.headers.retries == 1)
        .expect("retry");
    assert!(retry.headers.eta.is_some());
    assert_eq!(
        retry.headers.parent_id.as_deref(),
        Some(retry.headers.id.as_str())
    );
}

#[test]
fn chord_members_carry_the_callback() {
    let trace = fixture("raw_messages_chord_pika.txt");
    let body = trace
        .lines()
        .find_map(|l| l.trim().strip_prefix("body(raw): "))
        .expect("a chord body");
    let mut headers = FieldTable::default();
    headers.insert("task".into(), AMQPValue::LongString("tasks.add".into()));
    headers.insert("id".into(), AMQPValue::LongString("m-1".into()));
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_headers(headers);
    let msg = TaskMessage::decode(&props, body.as_bytes()).expect("decodes");
    let chord = msg.embed.chord.expect("chord callback");
    assert_eq!(chord.task, "tasks.add");
    assert_eq!(chord.option_str("queue"), Some("report"));
    assert!(chord.option_str("group_id").is_some());
}

#[test]
fn messages_we_encode_carry_the_same_header_types_as_celerys() {
    let theirs = &task_frames(&fixture("wire/client-publish.log"))[0];
    let their_headers = theirs.props.headers().clone().expect("headers");
    let mut ours =
        TaskMessage::with_id("tasks.add", "x", &json!([2, 3]), &json!({})).expect("message");
    ours.headers.origin = Some("gen@vm".into());
    ours.headers.argsrepr = Some("(2, 3)".into());
    ours.headers.kwargsrepr = Some("{}".into());
    let our_props = ours.encode_properties();
    let our_headers = our_props.headers().clone().expect("headers");
    for (key, value) in their_headers.inner() {
        let mine = our_headers
            .inner()
            .get(key)
            .unwrap_or_else(|| panic!("we do not send header {key}"));
        assert_eq!(
            mine.get_type(),
            value.get_type(),
            "header {key}: {mine:?} vs Celery's {value:?}"
        );
        if let (AMQPValue::FieldArray(a), AMQPValue::FieldArray(b)) = (mine, value) {
            let types = |x: &FieldArray| {
                x.as_slice()
                    .iter()
                    .map(AMQPValue::get_type)
                    .collect::<Vec<_>>()
            };
            assert_eq!(types(a), types(b), "header {key}");
        }
    }
    assert_eq!(our_props.content_type(), theirs.props.content_type());
    assert_eq!(our_props.delivery_mode(), theirs.props.delivery_mode());
    // and our body has Celery's shape
    let body: Value = serde_json::from_slice(&ours.encode_body()).expect("json");
    assert_eq!(
        body,
        json!([[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}])
    );
    let _ = field::to_json(&AMQPValue::Void);
}
