//! JSON and BSON, converted the way the Python services did: pymongo's integer rules on the
//! way in (int32 when the value fits, int64 otherwise), and Maestro's `Normalize` on the way
//! out (ObjectIds as hex strings, dates as RFC 3339). Every crate that writes JSON into
//! MongoDB or reads documents back as JSON uses these two, so stored types never depend on
//! which component wrote a document.

use mongodb::bson::Bson;
use serde_json::Value;

/// JSON as BSON the way pymongo writes Python values: integers as int32 when they fit, int64
/// otherwise; integers beyond 64 bits (which BSON cannot hold) as their decimal text.
pub fn json_to_bson(v: &Value) -> Bson {
    match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i32::try_from(i).map_or(Bson::Int64(i), Bson::Int32)
            } else if n.as_u64().is_some() || !n.to_string().contains(['.', 'e', 'E']) {
                Bson::String(n.to_string())
            } else {
                n.as_f64()
                    .map_or_else(|| Bson::String(n.to_string()), Bson::Double)
            }
        }
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(a) => Bson::Array(a.iter().map(json_to_bson).collect()),
        Value::Object(o) => Bson::Document(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_bson(v)))
                .collect(),
        ),
    }
}

/// A stored value as plain JSON: ObjectIds as their hex text, dates as RFC 3339 strings,
/// everything else as relaxed extended JSON.
pub fn bson_to_json(b: &Bson) -> Value {
    match b {
        Bson::ObjectId(o) => Value::String(o.to_hex()),
        Bson::DateTime(d) => Value::String(
            d.try_to_rfc3339_string()
                .unwrap_or_else(|_| d.timestamp_millis().to_string()),
        ),
        Bson::Array(a) => Value::Array(a.iter().map(bson_to_json).collect()),
        Bson::Document(d) => Value::Object(
            d.iter()
                .map(|(k, v)| (k.clone(), bson_to_json(v)))
                .collect(),
        ),
        other => other.clone().into_relaxed_extjson(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::oid::ObjectId;
    use serde_json::json;

    #[test]
    fn integers_follow_pymongo() {
        assert_eq!(json_to_bson(&json!(7)), Bson::Int32(7));
        assert_eq!(json_to_bson(&json!(1_i64 << 40)), Bson::Int64(1 << 40));
        assert_eq!(json_to_bson(&json!(1.5)), Bson::Double(1.5));
        let huge: Value = serde_json::from_str("123456789012345678901234567890").expect("json");
        assert_eq!(
            json_to_bson(&huge),
            Bson::String("123456789012345678901234567890".into())
        );
    }

    #[test]
    fn documents_come_back_as_plain_json() {
        let oid = ObjectId::parse_str("5f1c0a0000000000000000aa").expect("oid");
        let at = mongodb::bson::DateTime::from_millis(0);
        let doc = mongodb::bson::doc! {"_id": oid, "at": at, "n": [1_i32, {"k": "v"}]};
        assert_eq!(
            bson_to_json(&Bson::Document(doc)),
            json!({"_id": "5f1c0a0000000000000000aa", "at": "1970-01-01T00:00:00Z", "n": [1, {"k": "v"}]})
        );
    }
}
