//! AMQP field values to and from JSON.
//!
//! Python Celery (py-amqp) writes headers with every AMQP 0-9-1 field type RabbitMQ knows:
//! `S` strings, `I` int32, `L`/`l` int64, `t` bool, `V` void, `A` arrays, `F` tables, `d`
//! doubles, and others may come from other clients. Headers are read through these helpers so
//! no type is rejected for its tag; a value is only wrong when its meaning is.

use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use serde_json::{Map, Number, Value};

/// Any AMQP field value as JSON. Strings that are not UTF-8 are decoded lossily; byte arrays
/// that are not UTF-8 become arrays of byte values; doubles that JSON cannot hold become null.
pub fn to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Timestamp(n) => Value::from(*n),
        AMQPValue::Float(f) => Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number),
        AMQPValue::Double(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        AMQPValue::DecimalValue(d) => {
            let scaled = f64::from(d.value) / 10f64.powi(i32::from(d.scale));
            Number::from_f64(scaled).map_or(Value::Null, Value::Number)
        }
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_owned()),
        AMQPValue::LongString(s) => {
            Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        AMQPValue::ByteArray(b) => match std::str::from_utf8(b.as_slice()) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => Value::Array(b.as_slice().iter().map(|x| Value::from(*x)).collect()),
        },
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(to_json).collect()),
        AMQPValue::FieldTable(t) => Value::Object(table_to_json(t)),
        AMQPValue::Void => Value::Null,
    }
}

/// A field table as a JSON object.
pub fn table_to_json(table: &FieldTable) -> Map<String, Value> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), to_json(v)))
        .collect()
}

/// JSON as the AMQP field value py-amqp itself would write: integers as `I` when they fit in
/// 32 bits and `l` otherwise, strings as `S`, null as `V`. Integers beyond 64 bits and other
/// numbers become doubles, as they would in Python's float().
pub fn from_json(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                match i32::try_from(i) {
                    Ok(small) => AMQPValue::LongInt(small),
                    Err(_) => AMQPValue::LongLongInt(i),
                }
            } else {
                AMQPValue::Double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(a) => AMQPValue::FieldArray(FieldArray::from(
            a.iter().map(from_json).collect::<Vec<_>>(),
        )),
        Value::Object(o) => AMQPValue::FieldTable(object_to_table(o)),
    }
}

/// A JSON object as a field table. Keys longer than an AMQP short string (255 bytes) are cut.
pub fn object_to_table(object: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in object {
        table.insert(short(k), from_json(v));
    }
    table
}

/// A short string from any text, cut to the 255 bytes AMQP allows at a char boundary.
pub fn short(s: &str) -> ShortString {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::from(&s[..end])
}

/// An integer held in any AMQP integer type (or a double with no fraction).
pub fn as_i64(value: &AMQPValue) -> Option<i64> {
    match value {
        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::Timestamp(n) => i64::try_from(*n).ok(),
        AMQPValue::Double(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
        AMQPValue::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
        _ => None,
    }
}

/// A number held in any AMQP numeric type.
pub fn as_f64(value: &AMQPValue) -> Option<f64> {
    match value {
        AMQPValue::Float(f) => Some(f64::from(*f)),
        AMQPValue::Double(f) => Some(*f),
        AMQPValue::DecimalValue(d) => Some(f64::from(d.value) / 10f64.powi(i32::from(d.scale))),
        other => as_i64(other).map(|i| i as f64),
    }
}

/// Text held in a long string, short string or byte array.
pub fn as_str(value: &AMQPValue) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        AMQPValue::LongString(s) => Some(text(s.as_bytes())),
        AMQPValue::ShortString(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
        AMQPValue::ByteArray(b) => Some(text(b.as_slice())),
        _ => None,
    }
}

/// Bytes as text: borrowed when they are UTF-8 (every header a client sends; `from_utf8` checks
/// that faster than the lossy decoder walks it), else with U+FFFD for what is not.
fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// A boolean, also accepting integers (0/1) as some clients send them.
pub fn as_bool(value: &AMQPValue) -> Option<bool> {
    match value {
        AMQPValue::Boolean(b) => Some(*b),
        other => as_i64(other).map(|i| i != 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{ByteArray, DecimalValue};

    #[test]
    fn every_field_type_decodes() {
        let cases: Vec<(AMQPValue, Value)> = vec![
            (AMQPValue::Boolean(true), Value::Bool(true)),
            (AMQPValue::ShortShortInt(-3), Value::from(-3)),
            (AMQPValue::ShortShortUInt(250), Value::from(250)),
            (AMQPValue::ShortInt(-300), Value::from(-300)),
            (AMQPValue::ShortUInt(60000), Value::from(60000)),
            (AMQPValue::LongInt(-70000), Value::from(-70000)),
            (
                AMQPValue::LongUInt(4_000_000_000),
                Value::from(4_000_000_000u32),
            ),
            (
                AMQPValue::LongLongInt(1_099_511_627_776),
                Value::from(1_099_511_627_776i64),
            ),
            (
                AMQPValue::Timestamp(1_795_318_755),
                Value::from(1_795_318_755u64),
            ),
            (AMQPValue::Double(1.5), serde_json::json!(1.5)),
            (AMQPValue::Float(0.5), serde_json::json!(0.5)),
            (AMQPValue::Double(f64::NAN), Value::Null),
            (
                AMQPValue::DecimalValue(DecimalValue {
                    scale: 2,
                    value: 150,
                }),
                serde_json::json!(1.5),
            ),
            (AMQPValue::LongString("ünï".into()), Value::from("ünï")),
            (AMQPValue::ShortString("x".into()), Value::from("x")),
            (
                AMQPValue::ByteArray(ByteArray::from(b"ab".as_slice())),
                Value::from("ab"),
            ),
            (
                AMQPValue::ByteArray(ByteArray::from([0xffu8, 1].as_slice())),
                serde_json::json!([255, 1]),
            ),
            (AMQPValue::Void, Value::Null),
            (
                AMQPValue::FieldArray(vec![AMQPValue::Void, AMQPValue::LongInt(60)].into()),
                serde_json::json!([null, 60]),
            ),
        ];
        for (amqp, json) in cases {
            assert_eq!(to_json(&amqp), json, "{amqp:?}");
        }
    }

    #[test]
    fn integers_take_the_width_py_amqp_would() {
        assert_eq!(from_json(&Value::from(7)), AMQPValue::LongInt(7));
        assert_eq!(
            from_json(&Value::from(1i64 << 40)),
            AMQPValue::LongLongInt(1 << 40)
        );
        assert_eq!(from_json(&Value::Null), AMQPValue::Void);
        let round = to_json(&from_json(
            &serde_json::json!({"a": [1, "b", null, true, 2.5]}),
        ));
        assert_eq!(round, serde_json::json!({"a": [1, "b", null, true, 2.5]}));
    }

    #[test]
    fn short_strings_are_cut_on_char_boundaries() {
        let long = "é".repeat(200);
        let cut = short(&long);
        assert!(cut.as_str().len() <= 255);
        assert!(cut.as_str().chars().all(|c| c == 'é'));
    }

    #[test]
    fn numbers_read_from_any_integer_width() {
        assert_eq!(as_i64(&AMQPValue::ShortShortUInt(2)), Some(2));
        assert_eq!(as_i64(&AMQPValue::LongLongInt(-9)), Some(-9));
        assert_eq!(as_i64(&AMQPValue::LongString("3".into())), None);
        assert_eq!(as_f64(&AMQPValue::LongInt(60)), Some(60.0));
        assert_eq!(as_bool(&AMQPValue::ShortShortUInt(1)), Some(true));
    }
}
