//! The field rules of Maestro's AWS mappers, as data: each API call's items are translated by
//! a list of [`Rule`]s read against the item's JSON tree ([`super::tree`]). The rules are the
//! ones Maestro's discovery applied (its `aws_mapper/*.py` and `rules.py`); a path takes the
//! first present of its `|` alternatives, as Maestro's `switch` did.

use serde_json::{Map, Value, json};

use super::tree::{capitalized, get, list, present, text};

/// One field of a translated item.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// `out` = the text at the path.
    Str(&'static str, &'static str),
    /// `out` = the text at the path with a capital first letter (Maestro's `switchCapitalized`).
    Cap(&'static str, &'static str),
    /// `out` = the number at the path.
    Int(&'static str, &'static str),
    /// `out` = the boolean at the path.
    Bool(&'static str, &'static str),
    /// `out` = the value at the path as it is (lists and objects included).
    Raw(&'static str, &'static str),
    /// `out` = field `.2` of every element of the list at `.1`.
    Pluck(&'static str, &'static str, &'static str),
    /// `out` = the date at the path as RFC 3339 text: AWS's JSON protocols give seconds since
    /// the epoch, its XML ones text (kept as it is).
    Time(&'static str, &'static str),
    /// `out` = a fixed text.
    Const(&'static str, &'static str),
    /// `out` = a nested object of its own rules (Maestro's `batch`: `role`, `datacenters`).
    Obj(&'static str, &'static [Rule]),
    /// `status` = the capitalised text at the path; `active` is false when the text is one of
    /// the listed states (Maestro's `switchOptions`), true otherwise.
    Status(&'static str, &'static [&'static str]),
    /// `datacenters.zone` = the zones at the path (strings, or objects with `ZoneName`), and
    /// `datacenters.subnet_zones` the value as it is (Maestro's `fctDcApp`).
    Zones(&'static str),
}

/// How an item is named and keyed.
#[derive(Debug, Clone, Copy)]
pub struct Naming {
    /// Path of `unique_id`; an item without one is skipped.
    pub unique_id: &'static str,
    /// Path of `name`; empty: the `Name` tag. Either way the `unique_id` when absent.
    pub name: &'static str,
}

/// `{key, value}` of the item's tags (`Tags` or EC2's `TagSet`) whose key and value are both
/// non-empty, as Maestro's `fctTags` kept them.
pub fn tags(item: &Value) -> Vec<Value> {
    list(item, "Tags|TagSet")
        .into_iter()
        .filter_map(|t| {
            let key = text(t, "Key")?;
            let value = text(t, "Value")?;
            Some(json!({"key": key, "value": value}))
        })
        .collect()
}

/// The value of tag `key` among Maestro's tags, compared without case (Maestro's `arrCatcher`).
pub fn tag<'a>(tags: &'a [Value], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| {
            t["key"]
                .as_str()
                .is_some_and(|k| k.eq_ignore_ascii_case(key))
        })
        .and_then(|t| t["value"].as_str())
}

/// The item translated by `rules`, with `unique_id`, `name`, `tags`, `environment` and a
/// `datacenters` object; `None` without a `unique_id`.
pub fn translate(item: &Value, naming: &Naming, rules: &[Rule]) -> Option<Value> {
    let unique_id = text(item, naming.unique_id)?;
    let tags = tags(item);
    let mut out = Map::new();
    let name = if naming.name.is_empty() {
        tag(&tags, "name").map(str::to_owned)
    } else {
        text(item, naming.name)
    };
    out.insert(
        "name".into(),
        json!(name.unwrap_or_else(|| unique_id.clone())),
    );
    out.insert("unique_id".into(), json!(unique_id));
    if let Some(env) = tag(&tags, "environment") {
        out.insert("environment".into(), json!(env));
    }
    out.insert("tags".into(), Value::Array(tags));
    out.insert("datacenters".into(), Value::Object(Map::new()));
    apply(item, rules, &mut out);
    Some(Value::Object(out))
}

fn apply(item: &Value, rules: &[Rule], out: &mut Map<String, Value>) {
    for rule in rules {
        match *rule {
            Rule::Str(k, p) => put(out, k, text(item, p).map(Value::String)),
            Rule::Cap(k, p) => put(out, k, text(item, p).map(|s| json!(capitalized(&s)))),
            Rule::Int(k, p) => put(out, k, get(item, p).and_then(number)),
            Rule::Bool(k, p) => put(out, k, get(item, p).and_then(boolean)),
            Rule::Raw(k, p) => put(out, k, get(item, p).cloned()),
            Rule::Time(k, p) => put(out, k, get(item, p).and_then(time)),
            Rule::Pluck(k, p, field) => {
                let values: Vec<Value> = list(item, p)
                    .into_iter()
                    .filter_map(|e| text(e, field).map(Value::String))
                    .collect();
                put(out, k, Some(Value::Array(values)));
            }
            Rule::Const(k, v) => {
                out.insert(k.into(), json!(v));
            }
            Rule::Obj(k, inner) => {
                let mut m = match out.remove(k) {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                apply(item, inner, &mut m);
                if !m.is_empty() || k == "datacenters" {
                    out.insert(k.into(), Value::Object(m));
                }
            }
            Rule::Status(p, inactive) => {
                let state = text(item, p);
                let active = !state
                    .as_deref()
                    .is_some_and(|s| inactive.iter().any(|i| i.eq_ignore_ascii_case(s)));
                put(out, "status", state.map(|s| json!(capitalized(&s))));
                out.insert("active".into(), Value::Bool(active));
            }
            Rule::Zones(p) => {
                let zones: Vec<Value> = list(item, p)
                    .into_iter()
                    .filter_map(|z| match z {
                        Value::String(s) => Some(json!(s)),
                        other => text(other, "ZoneName").map(Value::String),
                    })
                    .collect();
                if let Some(Value::Object(dc)) = out.get_mut("datacenters") {
                    if !zones.is_empty() {
                        dc.insert("zone".into(), Value::Array(zones));
                    }
                    if let Some(raw) = get(item, p) {
                        dc.insert("subnet_zones".into(), raw.clone());
                    }
                }
            }
        }
    }
}

fn put(out: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v.filter(present) {
        out.insert(key.into(), v);
    }
}

fn number(v: &Value) -> Option<Value> {
    match v {
        Value::Number(_) => Some(v.clone()),
        Value::String(s) => s
            .parse::<i64>()
            .map(Value::from)
            .ok()
            .or_else(|| s.parse::<f64>().ok().map(Value::from)),
        _ => None,
    }
}

fn time(v: &Value) -> Option<Value> {
    let secs = match v {
        // Seconds written as text (moto's API Gateway) are still seconds.
        Value::String(s) => match s.parse::<f64>() {
            Ok(n) => n,
            Err(_) => return Some(v.clone()),
        },
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    let millis = (secs * 1000.0).round();
    if !millis.is_finite() || millis.abs() > 1e15 {
        return None;
    }
    let t = chrono::DateTime::from_timestamp_millis(millis as i64)?;
    Some(json!(
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    ))
}

fn boolean(v: &Value) -> Option<Value> {
    match v {
        Value::Bool(_) => Some(v.clone()),
        Value::String(s) if s == "true" || s == "false" => Some(Value::Bool(s == "true")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &[Rule] = &[
        Rule::Str("engine", "Engine"),
        Rule::Obj(
            "role",
            &[
                Rule::Str("endpoint", "Endpoint.Address"),
                Rule::Int("port", "Endpoint.Port"),
                Rule::Bool("encrypted", "StorageEncrypted"),
                Rule::Raw("groups", "VpcSecurityGroups"),
                Rule::Str("absent", "Nope"),
            ],
        ),
        Rule::Pluck("group_ids", "VpcSecurityGroups", "VpcSecurityGroupId"),
        Rule::Status("DBInstanceStatus", &["stopped", "failed"]),
        Rule::Zones("AvailabilityZone"),
        Rule::Const("engine_family", "RDS"),
        Rule::Time("created_at", "Created"),
    ];

    #[test]
    fn rules_translate_like_maestros_mapper() {
        let item = json!({
            "DBInstanceIdentifier": "db-1", "Engine": "postgres",
            "Endpoint": {"Address": "db-1.x.rds.amazonaws.com", "Port": "5432"},
            "StorageEncrypted": "true",
            "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-1", "Status": "active"}],
            "DBInstanceStatus": "stopped", "AvailabilityZone": "us-east-1a",
            "Created": 1700000000.5,
            "TagList": [],
            "Tags": [{"Key": "Environment", "Value": "prod"}, {"Key": "empty", "Value": ""}],
        });
        let naming = Naming {
            unique_id: "DBInstanceIdentifier",
            name: "DBInstanceIdentifier",
        };
        let t = translate(&item, &naming, RULES).expect("translated");
        assert_eq!(t["unique_id"], "db-1");
        assert_eq!(t["name"], "db-1");
        assert_eq!(t["environment"], "prod");
        assert_eq!(t["tags"], json!([{"key": "Environment", "value": "prod"}]));
        assert_eq!(t["role"]["endpoint"], "db-1.x.rds.amazonaws.com");
        assert_eq!(t["role"]["port"], 5432);
        assert_eq!(t["role"]["encrypted"], true);
        assert!(t["role"].get("absent").is_none());
        assert_eq!(t["group_ids"], json!(["sg-1"]));
        assert_eq!(t["status"], "Stopped");
        assert_eq!(t["active"], false);
        assert_eq!(t["datacenters"]["zone"], json!(["us-east-1a"]));
        assert_eq!(t["engine_family"], "RDS");
        assert_eq!(t["created_at"], "2023-11-14T22:13:20.500Z");
        let unnamed = translate(
            &json!({"VpcId": "vpc-1", "TagSet": [{"Key": "Name", "Value": "main"}]}),
            &Naming {
                unique_id: "VpcId",
                name: "",
            },
            &[],
        )
        .expect("translated");
        assert_eq!(unnamed["name"], "main");
        assert!(translate(&json!({}), &naming, RULES).is_none());
    }
}
