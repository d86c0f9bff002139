//! Shared input builders for the fuzz targets.
//!
//! A delivery input is `[len_lo, len_hi] ++ section[len] ++ body`: the little-endian length
//! `len` says how many of the following bytes drive the AMQP properties and the header field
//! table (read through `arbitrary::Unstructured`); every byte after them is the body, as is.
//! An all-zero (or empty) section means "the headers Celery 5.7 sends, application/json,
//! utf-8", so a seed is just `[0, 0]` followed by a real Celery body, and mutations of the
//! section change, add and remove headers and properties from there.

use arbitrary::{Result, Unstructured};
use lapin::BasicProperties;
use lapin::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};

/// Header names the decoder interprets, and a few it should leave alone.
pub const HEADER_NAMES: &[&str] = &[
    "task",
    "id",
    "lang",
    "shadow",
    "eta",
    "expires",
    "group",
    "group_index",
    "retries",
    "timelimit",
    "root_id",
    "parent_id",
    "argsrepr",
    "kwargsrepr",
    "origin",
    "ignore_result",
    "replaced_task_nesting",
    "stamped_headers",
    "stamps",
    "x-death",
    "traceparent",
    "tracestate",
    "x-maestro-dead-reason",
];

/// Strings worth trying in any header: times in the forms Python writes, and edge cases.
const STRINGS: &[&str] = &[
    "",
    "tasks.add",
    "maestro.echo",
    "2026-11-22T03:39:11.385063+00:00",
    "2030-01-02 03:04:05",
    "9999-12-31T23:59:59.999999+00:00",
    "+262142-12-31T23:59:59Z",
    "-0001-01-01T00:00:00Z",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "NaN",
    "1e308",
    "é",
];

const CONTENT_TYPES: &[&str] = &[
    "application/x-python-serialize",
    "application/x-yaml",
    "application/x-msgpack",
    "application/data",
    "text/plain",
    "APPLICATION/JSON",
    "application/json; charset=utf-8",
    "",
];

const ENCODINGS: &[&str] = &["binary", "UTF8", "utf-16", "gzip", "ascii", ""];

/// The header table Celery 5.7 sends with `send_task` (wire fixture `raw_messages_pika.txt`).
pub fn celery_headers() -> FieldTable {
    let s = |v: &str| AMQPValue::LongString(v.into());
    let id = "6944816b-af7f-4871-9747-a9beea1e88df";
    let mut t = FieldTable::default();
    t.insert("lang".into(), s("py"));
    t.insert("task".into(), s("tasks.add"));
    t.insert("id".into(), s(id));
    for k in [
        "shadow",
        "eta",
        "expires",
        "group",
        "group_index",
        "parent_id",
    ] {
        t.insert(k.into(), AMQPValue::Void);
    }
    t.insert("retries".into(), AMQPValue::LongInt(0));
    t.insert(
        "timelimit".into(),
        AMQPValue::FieldArray(vec![AMQPValue::Void, AMQPValue::Void].into()),
    );
    t.insert("root_id".into(), s(id));
    t.insert("argsrepr".into(), s("(2, 3)"));
    t.insert("kwargsrepr".into(), s("{}"));
    t.insert("origin".into(), s("gen11533@vm"));
    t.insert("ignore_result".into(), AMQPValue::Boolean(false));
    t.insert("replaced_task_nesting".into(), AMQPValue::LongInt(0));
    t.insert("stamped_headers".into(), AMQPValue::Void);
    t.insert(
        "stamps".into(),
        AMQPValue::FieldTable(FieldTable::default()),
    );
    t
}

fn text(u: &mut Unstructured<'_>) -> Result<String> {
    let pick = u8::arbitrary_take(u)?;
    if usize::from(pick) < STRINGS.len() * 2 && pick % 2 == 1 {
        return Ok(STRINGS[usize::from(pick) / 2].to_owned());
    }
    let len = usize::from(u8::arbitrary_take(u)?) % 64;
    let bytes = u.bytes(len.min(u.len()))?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

trait Take: Sized {
    fn arbitrary_take(u: &mut Unstructured<'_>) -> Result<Self>;
}

impl<T: for<'a> arbitrary::Arbitrary<'a>> Take for T {
    fn arbitrary_take(u: &mut Unstructured<'_>) -> Result<Self> {
        T::arbitrary(u)
    }
}

/// Any AMQP field value, nested at most `depth` levels.
pub fn field_value(u: &mut Unstructured<'_>, depth: u32) -> Result<AMQPValue> {
    let tag = u8::arbitrary_take(u)? % if depth == 0 { 17 } else { 19 };
    Ok(match tag {
        0 => AMQPValue::LongString(LongString::from(text(u)?.as_str())),
        1 => AMQPValue::Void,
        2 => AMQPValue::Boolean(bool::arbitrary_take(u)?),
        3 => AMQPValue::ShortShortInt(i8::arbitrary_take(u)?),
        4 => AMQPValue::ShortShortUInt(u8::arbitrary_take(u)?),
        5 => AMQPValue::ShortInt(i16::arbitrary_take(u)?),
        6 => AMQPValue::ShortUInt(u16::arbitrary_take(u)?),
        7 => AMQPValue::LongInt(i32::arbitrary_take(u)?),
        8 => AMQPValue::LongUInt(u32::arbitrary_take(u)?),
        9 => AMQPValue::LongLongInt(i64::arbitrary_take(u)?),
        10 => AMQPValue::Timestamp(u64::arbitrary_take(u)?),
        11 => AMQPValue::Float(f32::arbitrary_take(u)?),
        12 => AMQPValue::Double(f64::arbitrary_take(u)?),
        13 => AMQPValue::DecimalValue(DecimalValue {
            scale: u8::arbitrary_take(u)?,
            value: u32::arbitrary_take(u)?,
        }),
        14 => AMQPValue::ShortString(ShortString::from(text(u)?)),
        15 => {
            let len = usize::from(u8::arbitrary_take(u)?) % 32;
            AMQPValue::ByteArray(ByteArray::from(u.bytes(len.min(u.len()))?))
        }
        16 => match u8::arbitrary_take(u)? % 12 {
            0 => AMQPValue::Double(f64::NAN),
            1 => AMQPValue::Double(f64::INFINITY),
            2 => AMQPValue::Double(-0.0),
            3 => AMQPValue::Double(1e300),
            4 => AMQPValue::Double(1e20),
            5 => AMQPValue::Double(4294967296.0),
            6 => AMQPValue::Double(1e12),
            7 => AMQPValue::LongUInt(u32::MAX),
            8 => AMQPValue::LongLongInt(i64::MAX),
            9 => AMQPValue::LongLongInt(i64::MIN),
            10 => AMQPValue::Timestamp(u64::MAX),
            _ => AMQPValue::LongInt(-1),
        },
        17 => {
            let n = usize::from(u8::arbitrary_take(u)?) % 5;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(field_value(u, depth - 1)?);
            }
            AMQPValue::FieldArray(FieldArray::from(items))
        }
        _ => AMQPValue::FieldTable(field_table(u, depth - 1)?),
    })
}

fn header_name(u: &mut Unstructured<'_>) -> Result<String> {
    let pick = usize::from(u8::arbitrary_take(u)?);
    Ok(match HEADER_NAMES.get(pick) {
        Some(name) => (*name).to_owned(),
        None => text(u)?,
    })
}

/// A field table of arbitrary entries.
pub fn field_table(u: &mut Unstructured<'_>, depth: u32) -> Result<FieldTable> {
    let n = usize::from(u8::arbitrary_take(u)?) % 6;
    let mut t = FieldTable::default();
    for _ in 0..n {
        let k = header_name(u)?;
        t.insert(ShortString::from(k), field_value(u, depth)?);
    }
    Ok(t)
}

fn choose<'a>(
    u: &mut Unstructured<'_>,
    default: Option<&'a str>,
    others: &'a [&'a str],
) -> Result<Option<String>> {
    let pick = usize::from(u8::arbitrary_take(u)?);
    Ok(match pick {
        0 => default.map(str::to_owned),
        1 => None,
        n if n - 2 < others.len() => Some(others[n - 2].to_owned()),
        _ => Some(text(u)?),
    })
}

/// The properties a section describes (see the module docs).
pub fn properties(u: &mut Unstructured<'_>) -> Result<BasicProperties> {
    let mut props = BasicProperties::default();
    if let Some(ct) = choose(u, Some("application/json"), CONTENT_TYPES)? {
        props = props.with_content_type(ShortString::from(ct));
    }
    if let Some(enc) = choose(u, Some("utf-8"), ENCODINGS)? {
        props = props.with_content_encoding(ShortString::from(enc));
    }
    let mut headers = match u8::arbitrary_take(u)? % 4 {
        0 | 3 => Some(celery_headers()),
        1 => Some(FieldTable::default()),
        _ => None,
    };
    let edits = usize::from(u8::arbitrary_take(u)?) % 12;
    for _ in 0..edits {
        let Some(table) = headers.as_mut() else { break };
        let name = header_name(u)?;
        if u8::arbitrary_take(u)? % 4 == 3 {
            let mut map = table.inner().clone();
            map.remove(name.as_str());
            *table = FieldTable::from(map);
        } else {
            table.insert(ShortString::from(name), field_value(u, 3)?);
        }
    }
    if let Some(h) = headers {
        props = props.with_headers(h);
    }
    if bool::arbitrary_take(u)? {
        props = props.with_correlation_id(ShortString::from(text(u)?));
    }
    if bool::arbitrary_take(u)? {
        props = props.with_reply_to(ShortString::from(text(u)?));
    }
    if bool::arbitrary_take(u)? {
        props = props.with_priority(u8::arbitrary_take(u)?);
    }
    Ok(props)
}

/// Splits a fuzz input into a delivery's properties and body.
pub fn delivery(data: &[u8]) -> (BasicProperties, &[u8]) {
    let (len, rest) = match data {
        [lo, hi, rest @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), rest),
        _ => (0, data),
    };
    let (section, body) = rest.split_at(len.min(rest.len()));
    let mut u = Unstructured::new(section);
    // Running out of bytes is not an error here: the rest takes its defaults.
    let props = properties(&mut u).unwrap_or_else(|_| {
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_headers(celery_headers())
    });
    (props, body)
}

/// Command-line arguments for `cmd`: flags picked from its own long names (so most inputs
/// reach value checking rather than clap's unknown-argument error) with arbitrary values.
pub fn cli_args(bin: &str, cmd: &clap::Command, data: &[u8]) -> Vec<String> {
    let flags: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    let mut u = Unstructured::new(data);
    let mut out = vec![bin.to_owned()];
    while !u.is_empty() && out.len() < 40 {
        let Ok(pick) = u8::arbitrary_take(&mut u) else {
            break;
        };
        match flags.get(usize::from(pick)) {
            Some(flag) => out.push(flag.clone()),
            None if pick == 255 => {}
            None => {
                let Ok(t) = text(&mut u) else { break };
                out.push(t);
                continue;
            }
        }
        let Ok(t) = text(&mut u) else { break };
        out.push(t);
    }
    out
}
