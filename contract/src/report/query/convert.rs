//! data-app's conversions, done here instead of in data-app: JSON to BSON, ids to ObjectIds,
//! date strings to BSON dates (contract §3.5 for queries, spec §3.3 for pipelines).

use bson::oid::ObjectId;
use bson::{Bson, DateTime, Document};
use serde_json::{Map, Value};

use crate::report::query::RuleError;

/// data-app's id key rule, the regex `(^_id)|(\._id)`: `_id`, `x._id`, but also `_idfoo`, `a._id.b`.
pub(crate) fn is_id_key(key: &str) -> bool {
    key.starts_with("_id") || key.contains("._id")
}

/// data-app's date key rule: the key contains `_at` anywhere (`created_at`, also `data_attr`).
pub(crate) fn is_date_key(key: &str) -> bool {
    key.contains("_at")
}

/// A 24-hex-digit string as an ObjectId (either case, like Python's `bson.ObjectId`).
pub(crate) fn object_id(s: &str) -> Option<ObjectId> {
    if s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        ObjectId::parse_str(s).ok()
    } else {
        None
    }
}

/// Parses the first 19 characters of `s` as `%Y-%m-%dT%H:%M:%S`, read as UTC (what a naive
/// Python datetime becomes in BSON). Anything after them (fraction, `Z`, offset) is ignored.
///
/// Stricter than Python's `strptime` in one way: every field must have its full width
/// (`2020-1-1T0:0:0` is refused; Python accepts it when the whole string is that short).
pub(crate) fn date_prefix(s: &str) -> Result<DateTime, String> {
    let head: String = s.chars().take(19).collect();
    let bad = || format!("{s:?} is not a date: expected YYYY-MM-DDTHH:MM:SS at the start");
    let b = head.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let digits = &b[range];
        if digits.iter().all(u8::is_ascii_digit) {
            Ok(digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
        } else {
            Err(bad())
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => {
            return Err(format!(
                "{s:?} is not a date: month {month} is out of range"
            ));
        }
    };
    if year == 0 || day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return Err(format!("{s:?} is not a date: a field is out of range"));
    }
    let days = days_from_civil(year, month, day);
    let millis = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000;
    Ok(DateTime::from_millis(millis))
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Plain JSON to BSON, the way pymongo stores what `json.loads` gives: integers as int32 when
/// they fit, else int64; other numbers as doubles. Integers beyond int64 are refused (pymongo
/// raises `OverflowError` there).
pub(crate) fn to_bson(value: &Value) -> Result<Bson, String> {
    Ok(match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i32::try_from(i).map_or(Bson::Int64(i), Bson::Int32)
            } else if n.is_u64() {
                return Err(format!("the integer {n} is too large for MongoDB (int64)"));
            } else {
                Bson::Double(
                    n.as_f64()
                        .ok_or_else(|| format!("the number {n} is not representable"))?,
                )
            }
        }
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(items) => Bson::Array(items.iter().map(to_bson).collect::<Result<_, _>>()?),
        Value::Object(map) => Bson::Document(to_document(map)?),
    })
}

fn to_document(map: &Map<String, Value>) -> Result<Document, String> {
    map.iter()
        .map(|(k, v)| Ok((k.clone(), to_bson(v)?)))
        .collect()
}

/// data-app's query-side conversions (contract §3.5, spec §1.6), on each top-level key:
///
/// 1. an id key (`(^_id)|(\._id)`): a string becomes an ObjectId, a list one element-wise;
///    anything else (a dict such as `{"$ne": ...}`, a number, null) or an invalid id is refused,
///    where data-app answered 500;
/// 2. a list value becomes `{"$in": list}`;
/// 3. a date key (`_at`) with a truthy value: a string becomes a date from its first 19
///    characters; in a dict, each string becomes a date, each list's strings become dates, each
///    other scalar becomes null (data-app's quirk: `{"$lt": 5}` becomes `{"$lt": null}`), and a
///    nested dict is refused (data-app sent `{"$elemMatch": null}`, which MongoDB rejects).
///
/// `blame` maps a key to the input path named in errors.
pub(crate) fn query_document(
    entries: &Map<String, Value>,
    blame: impl Fn(&str) -> String,
) -> Result<Document, RuleError> {
    entries
        .iter()
        .map(|(key, value)| {
            convert_entry(key, value)
                .map(|bson| (key.clone(), bson))
                .map_err(|reason| RuleError::new(blame(key), reason))
        })
        .collect()
}

fn convert_entry(key: &str, value: &Value) -> Result<Bson, String> {
    let mut bson = if is_id_key(key) {
        id_value(key, value)?
    } else {
        to_bson(value)?
    };
    if let Bson::Array(items) = bson {
        bson = Bson::Document(bson::doc! { "$in": items });
    }
    if is_date_key(key) {
        bson = date_value(key, bson)?;
    }
    Ok(bson)
}

fn id_value(key: &str, value: &Value) -> Result<Bson, String> {
    let one = |v: &Value| match v {
        Value::String(s) => object_id(s)
            .map(Bson::ObjectId)
            .ok_or_else(|| format!("`{key}` holds ids: {s:?} is not a 24-hex-digit ObjectId")),
        other => Err(format!(
            "`{key}` holds ids: only a 24-hex-digit string or a list of them can be compared with it, found {}",
            crate::report::query::guard::kind(other)
        )),
    };
    match value {
        Value::Array(items) => Ok(Bson::Array(
            items.iter().map(one).collect::<Result<_, _>>()?,
        )),
        other => one(other),
    }
}

fn date_value(key: &str, value: Bson) -> Result<Bson, String> {
    let date = |s: &str| {
        date_prefix(s)
            .map(Bson::DateTime)
            .map_err(|e| format!("`{key}` holds dates: {e}"))
    };
    match value {
        Bson::String(s) if !s.is_empty() => date(&s),
        Bson::Document(doc) if !doc.is_empty() => doc
            .into_iter()
            .map(|(op, inner)| {
                let converted = match inner {
                    Bson::String(s) => date(&s)?,
                    Bson::Array(items) => Bson::Array(
                        items
                            .into_iter()
                            .map(|item| match item {
                                Bson::String(s) => date(&s),
                                other => Ok(other),
                            })
                            .collect::<Result<_, _>>()?,
                    ),
                    Bson::Document(_) => {
                        return Err(format!(
                            "`{key}` holds dates: `{op}` with a nested object cannot be converted"
                        ));
                    }
                    _ => Bson::Null,
                };
                Ok((op, converted))
            })
            .collect::<Result<Document, String>>()
            .map(Bson::Document),
        other => Ok(other),
    }
}

/// One step of a path into a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// An object key.
    Key(String),
    /// A list position.
    Index(usize),
}

/// The "key" data-app's leaf walker tests: the last key, or, under a list index, the whole
/// path joined with dots (`3.$match.servers.applications._id.0`).
fn leaf_key(path: &[Step]) -> String {
    match path.last() {
        Some(Step::Key(k)) => k.clone(),
        _ => path
            .iter()
            .map(|step| match step {
                Step::Key(k) => k.clone(),
                Step::Index(i) => i.to_string(),
            })
            .collect::<Vec<_>>()
            .join("."),
    }
}

/// data-app's pipeline conversion (spec §3.3), applied to every leaf of `value`, which sits at
/// `path` in the pipeline: a string of exactly 24 characters whose key is an id key becomes an
/// ObjectId (refused when not hex, where data-app answered 500); a string longer than 24
/// characters whose key contains `_at` becomes a date from its first 19 characters. Everything
/// else is kept, so a date inside `{"$gte": ...}` (key `$gte`) stays a string, as in the original.
pub(crate) fn pipeline_value(value: &Value, path: &mut Vec<Step>) -> Result<Bson, String> {
    match value {
        Value::Object(map) => {
            let mut doc = Document::new();
            for (k, v) in map {
                path.push(Step::Key(k.clone()));
                let converted = pipeline_value(v, path);
                path.pop();
                doc.insert(k.clone(), converted?);
            }
            Ok(Bson::Document(doc))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, v) in items.iter().enumerate() {
                path.push(Step::Index(i));
                let converted = pipeline_value(v, path);
                path.pop();
                out.push(converted?);
            }
            Ok(Bson::Array(out))
        }
        Value::String(s) => {
            let key = leaf_key(path);
            let len = s.chars().count();
            if len == 24 && is_id_key(&key) {
                object_id(s).map(Bson::ObjectId).ok_or_else(|| {
                    format!("`{key}` holds ids: {s:?} is 24 characters long but not a hex ObjectId")
                })
            } else if len > 24 && is_date_key(&key) {
                date_prefix(s)
                    .map(Bson::DateTime)
                    .map_err(|e| format!("`{key}` holds dates: {e}"))
            } else {
                Ok(Bson::String(s.clone()))
            }
        }
        scalar => to_bson(scalar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;
    use serde_json::json;

    fn oid(s: &str) -> ObjectId {
        ObjectId::parse_str(s).expect("valid")
    }

    #[test]
    fn id_and_date_keys() {
        for key in ["_id", "x._id", "_idfoo", "a._id.b", "roles._id"] {
            assert!(is_id_key(key), "{key}");
        }
        for key in ["id", "x_id", "a.id"] {
            assert!(!is_id_key(key), "{key}");
        }
        assert!(is_date_key("created_at") && is_date_key("data_attr"));
        assert!(!is_date_key("date"));
    }

    #[test]
    fn dates() {
        let ms = |s: &str| date_prefix(s).expect("valid").timestamp_millis();
        assert_eq!(ms("1970-01-01T00:00:00"), 0);
        assert_eq!(ms("2020-01-01T00:00:00"), 1_577_836_800_000);
        assert_eq!(ms("2020-05-01T03:00:00.000Z"), 1_588_302_000_000);
        assert_eq!(ms("2020-02-29T23:59:59+05:00"), 1_583_020_799_000);
        assert_eq!(ms("1969-12-31T23:59:59"), -1000);
        assert_eq!(ms("0001-01-01T00:00:00"), -62_135_596_800_000);
        for bad in [
            "2020-01-01",
            "2020-01-01 00:00:00",
            "2020-1-01T00:00:00Z",
            "2019-02-29T00:00:00",
            "2020-13-01T00:00:00",
            "2020-01-01T24:00:00",
            "2020-01-01T00:00:60",
            "0000-01-01T00:00:00",
            "ééééééééééééééééééééééé",
            "",
        ] {
            assert!(date_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(to_bson(&json!(5)).expect("valid"), Bson::Int32(5));
        assert_eq!(
            to_bson(&json!(5_000_000_000i64)).expect("valid"),
            Bson::Int64(5_000_000_000)
        );
        assert_eq!(to_bson(&json!(1.5)).expect("valid"), Bson::Double(1.5));
        assert!(to_bson(&json!(u64::MAX)).is_err());
    }

    #[test]
    fn query_conversions() {
        let entries = json!({
            "_id": "5f00000000000000000000dc",
            "servers._id": ["5f00000000000000000000dc", "5F00000000000000000000DD"],
            "tags": ["a", "b"],
            "created_at": "2020-01-01T00:00:00.000Z",
            "updated_at": {"$gte": "2020-01-01T00:00:00", "$lt": 5, "$in": ["2020-01-01T00:00:00", 3]},
            "deleted_at": "",
            "x_at": 7,
            "n": {"$regex": "a"},
        });
        let got =
            query_document(entries.as_object().expect("valid"), str::to_owned).expect("valid");
        let day = DateTime::from_millis(1_577_836_800_000);
        assert_eq!(
            got,
            doc! {
                "_id": oid("5f00000000000000000000dc"),
                "servers._id": {"$in": [oid("5f00000000000000000000dc"), oid("5f00000000000000000000dd")]},
                "tags": {"$in": ["a", "b"]},
                "created_at": day,
                "updated_at": {"$gte": day, "$lt": Bson::Null, "$in": [day, 3]},
                "deleted_at": "",
                "x_at": 7,
                "n": {"$regex": "a"},
            }
        );
    }

    #[test]
    fn query_conversion_errors() {
        let err = |v: Value| {
            query_document(v.as_object().expect("valid"), |k| format!("q.{k}"))
                .expect_err("refused")
        };
        let e = err(json!({"datacenters._id": "5f1"}));
        assert_eq!(e.field, "q.datacenters._id");
        assert!(e.reason.contains("\"5f1\""), "{}", e.reason);
        assert_eq!(
            err(json!({"_id": {"$ne": "5f00000000000000000000dc"}})).field,
            "q._id"
        );
        assert_eq!(err(json!({"_id": null})).field, "q._id");
        assert_eq!(
            err(json!({"_id": ["5f00000000000000000000dc", 1]})).field,
            "q._id"
        );
        assert_eq!(
            err(json!({"created_at": "2020-01-01"})).field,
            "q.created_at"
        );
        assert_eq!(
            err(json!({"created_at": {"$gte": "x"}})).field,
            "q.created_at"
        );
        assert_eq!(
            err(json!({"logs_at": {"$elemMatch": {"a": 1}}})).field,
            "q.logs_at"
        );
        assert_eq!(err(json!({"n": u64::MAX})).field, "q.n");
    }

    #[test]
    fn pipeline_leaves() {
        let v = json!({
            "roles._id": "5f00000000000000000000dc",
            "a._id": "short",
            "b._id": ["5f00000000000000000000dc"],
            "accountant": ["5f00000000000000000000dc"],
            "created_at": "2020-01-01T00:00:00.000Z",
            "updated_at": "2020-01-01T00:00:00.000+00:00",
            "deleted_at": {"$gte": "2020-01-01T00:00:00.000+00:00"},
        });
        let mut path = vec![Step::Index(0), Step::Key("$match".into())];
        let got = pipeline_value(&v, &mut path).expect("valid");
        assert_eq!(
            got,
            Bson::Document(doc! {
                "roles._id": oid("5f00000000000000000000dc"),
                "a._id": "short",
                "b._id": [oid("5f00000000000000000000dc")],
                "accountant": ["5f00000000000000000000dc"],
                "created_at": "2020-01-01T00:00:00.000Z",
                "updated_at": DateTime::from_millis(1_577_836_800_000),
                "deleted_at": {"$gte": "2020-01-01T00:00:00.000+00:00"},
            })
        );
        let bad = json!({"x._id": "zzzzzzzzzzzzzzzzzzzzzzzz"});
        assert!(pipeline_value(&bad, &mut path).is_err());
    }
}
