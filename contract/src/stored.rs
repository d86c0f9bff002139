//! How Maestro's documents hold their values, so what the workers write is what Maestro's
//! server-app reads (its queries filter on ObjectIds, `roles: {$elemMatch: {_id: ObjectId}}`,
//! and on dates).
//!
//! Maestro's Python services wrote `maestro-client` through its data-app, which turned JSON
//! into BSON by two rules: a 24-hex string under an id key (`_id`, `roles[]._id`, `owner._id`,
//! `datacenters._id`, `link._id`: a key that starts with `_id` or holds `._id`) became an
//! ObjectId, and a date string under a key holding `_at` became a date. Lists of ids under
//! other keys (`accountant: [conn_id]`) stayed strings. [`to_stored`] applies the same rules;
//! [`from_stored`] turns a stored document back into the JSON the data-app answered with
//! (ObjectIds as hex, dates as naive ISO 8601 text).

use bson::oid::ObjectId;
use bson::{Bson, Document};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

/// Whether `key` names an id, as Maestro's data-app decided it: it starts with `_id` or
/// holds `._id`.
pub fn is_id_key(key: &str) -> bool {
    key.starts_with("_id") || key.contains("._id")
}

/// Whether `key` names a date: it holds `_at` (`created_at`, `updated_at`, `last_run_at`).
pub fn is_date_key(key: &str) -> bool {
    key.contains("_at")
}

/// A date string as Maestro's services wrote them: RFC 3339 (any offset, any fraction), or
/// a naive `YYYY-MM-DDTHH:MM:SS[.fff]` taken as UTC.
pub fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = text.trim_end_matches('Z');
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(naive, f).ok())
    .map(|t| t.and_utc())
}

/// JSON as Maestro stores it (see the module docs): ids as ObjectIds, dates as dates,
/// integers as pymongo writes them (int32 when they fit).
pub fn to_stored(v: &Value) -> Bson {
    convert(v, "")
}

/// A JSON object as a stored document.
pub fn to_stored_document(m: &Map<String, Value>) -> Document {
    m.iter().map(|(k, v)| (k.clone(), convert(v, k))).collect()
}

fn convert(v: &Value, key: &str) -> Bson {
    match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i32::try_from(i).map_or(Bson::Int64(i), Bson::Int32),
            None => n
                .as_f64()
                .filter(|_| n.to_string().contains(['.', 'e', 'E']))
                .map_or_else(|| Bson::String(n.to_string()), Bson::Double),
        },
        Value::String(s) => {
            if s.len() == 24
                && is_id_key(key)
                && let Ok(oid) = ObjectId::parse_str(s)
            {
                return Bson::ObjectId(oid);
            }
            if is_date_key(key)
                && let Some(t) = parse_date(s)
            {
                return Bson::DateTime(bson::DateTime::from_millis(t.timestamp_millis()));
            }
            Bson::String(s.clone())
        }
        // A list keeps its key (`roles` -> each element's `_id`; `accountant` stays text).
        Value::Array(a) => Bson::Array(a.iter().map(|x| convert(x, "")).collect()),
        Value::Object(m) => Bson::Document(to_stored_document(m)),
    }
}

/// A stored value as the JSON Maestro's data-app answered with: ObjectIds as hex, dates as
/// naive ISO 8601 (`2020-05-01T10:00:00.123000`, the fraction only when there is one).
pub fn from_stored(b: &Bson) -> Value {
    match b {
        Bson::ObjectId(o) => Value::String(o.to_hex()),
        Bson::DateTime(d) => Value::String(iso_naive(*d)),
        Bson::Array(a) => Value::Array(a.iter().map(from_stored).collect()),
        Bson::Document(d) => Value::Object(from_stored_document(d)),
        Bson::Null | Bson::Undefined => Value::Null,
        Bson::Boolean(b) => Value::Bool(*b),
        Bson::Int32(i) => Value::from(*i),
        Bson::Int64(i) => Value::from(*i),
        Bson::Double(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Bson::String(s) => Value::String(s.clone()),
        other => other.clone().into_relaxed_extjson(),
    }
}

/// A stored document as JSON (see [`from_stored`]).
pub fn from_stored_document(d: &Document) -> Map<String, Value> {
    d.iter().map(|(k, v)| (k.clone(), from_stored(v))).collect()
}

/// A date as Python's `datetime.isoformat()` writes a naive UTC time.
pub fn iso_naive(d: bson::DateTime) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(d.timestamp_millis()).unwrap_or_default();
    let micros = t.timestamp_subsec_micros();
    if micros == 0 {
        t.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        format!("{}.{micros:06}", t.format("%Y-%m-%dT%H:%M:%S"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_and_dates_are_stored_as_maestro_stored_them() {
        let item = json!({
            "_id": "5f1b00000000000000000011",
            "roles": [{"_id": "5f0000000000000000000001", "role": 7, "refs": "users"}],
            "owner": {"_id": "5f1b00000000000000000010", "refs": "connections"},
            "datacenters": {"_id": "5f00000000000000000000dc", "name": "dc1"},
            "accountant": ["5f1b00000000000000000010"],
            "unique_id": "i-0123456789abcdef01234",
            "created_at": "2020-07-13T10:00:00.000Z",
            "size": 8,
            "name": "not-an-id-but-24-chars!!",
        });
        let Bson::Document(d) = to_stored(&item) else {
            panic!("a document")
        };
        assert!(matches!(d.get("_id"), Some(Bson::ObjectId(_))));
        let roles = d.get_array("roles").expect("roles");
        let role = roles[0].as_document().expect("doc");
        assert!(matches!(role.get("_id"), Some(Bson::ObjectId(_))));
        let owner = d.get_document("owner").expect("owner");
        assert!(matches!(owner.get("_id"), Some(Bson::ObjectId(_))));
        assert!(matches!(
            d.get_document("datacenters").expect("dc").get("_id"),
            Some(Bson::ObjectId(_))
        ));
        assert_eq!(
            d.get_array("accountant").expect("accountant")[0],
            Bson::String("5f1b00000000000000000010".into())
        );
        assert!(matches!(d.get("unique_id"), Some(Bson::String(_))));
        assert!(matches!(d.get("created_at"), Some(Bson::DateTime(_))));
        assert_eq!(d.get("size"), Some(&Bson::Int32(8)));
        let back = from_stored_document(&d);
        assert_eq!(back["_id"], "5f1b00000000000000000011");
        assert_eq!(back["created_at"], "2020-07-13T10:00:00");
        assert_eq!(back["roles"][0]["_id"], "5f0000000000000000000001");
    }

    #[test]
    fn dates_in_every_form_maestro_wrote() {
        for text in [
            "2020-05-01T10:00:00",
            "2020-05-01T10:00:00.123000",
            "2020-05-01T10:00:00Z",
            "2020-05-01T10:00:00.123Z",
            "2020-05-01T10:00:00+00:00",
            "2020-05-01 10:00:00.5",
        ] {
            assert!(parse_date(text).is_some(), "{text}");
        }
        assert!(parse_date("yesterday").is_none());
        let d = bson::DateTime::from_millis(1_588_327_200_123);
        assert_eq!(iso_naive(d), "2020-05-01T10:00:00.123000");
    }
}
