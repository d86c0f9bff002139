//! AWS answers as one JSON tree, whatever the protocol: query and REST-XML answers are read
//! into JSON the way AWS's SDKs shape them (element names with a capital first letter, EC2's
//! `item` and the query APIs' `member` lists as arrays, `true`/`false` as booleans, counts and
//! ports as numbers); JSON answers are used as they come. [`get`] finds a value by a path such
//! as `Endpoint.Address` or `Tags|TagSet` (the first alternative present wins).

use roxmltree::Node;
use serde_json::{Map, Value};

/// Element names whose text AWS's SDKs give as numbers.
const NUMBER_KEYS: &[&str] = &[
    "AllocatedStorage",
    "AmazonSideAsn",
    "AvailableIpAddressCount",
    "BackupRetentionPeriod",
    "CodeSize",
    "DefaultCooldown",
    "DefaultTTL",
    "DesiredCapacity",
    "DeviceIndex",
    "FromPort",
    "HealthCheckGracePeriod",
    "HealthyThreshold",
    "InstancePort",
    "Interval",
    "Iops",
    "LoadBalancerPort",
    "MaxSize",
    "MaxTTL",
    "MemorySize",
    "MinSize",
    "MinTTL",
    "MonitoringInterval",
    "NumCacheNodes",
    "Port",
    "Quantity",
    "RuleNumber",
    "SearchInstanceCount",
    "SearchPartitionCount",
    "Size",
    "SnapshotRetentionLimit",
    "Throughput",
    "Timeout",
    "ToPort",
    "UnhealthyThreshold",
    "VolumeSize",
];

/// `s` with its first letter in capitals (`instanceId` -> `InstanceId`).
pub fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Deepest element read; deeper ones (no AWS answer nests so far) are left out, so a hostile
/// answer cannot exhaust the stack. serde_json has the same kind of limit for JSON answers.
pub const XML_DEPTH_MAX: usize = 64;

/// The JSON form of an XML element (see the module's notes).
pub fn from_xml(n: Node<'_, '_>) -> Value {
    element(n, 0)
}

fn element(n: Node<'_, '_>, depth: usize) -> Value {
    if depth >= XML_DEPTH_MAX {
        return Value::Null;
    }
    let kids: Vec<Node<'_, '_>> = n.children().filter(Node::is_element).collect();
    if kids.is_empty() {
        let text = n.text().unwrap_or_default().trim();
        return leaf(n.tag_name().name(), text);
    }
    if kids
        .iter()
        .all(|k| matches!(k.tag_name().name(), "item" | "member"))
    {
        return Value::Array(kids.into_iter().map(|k| element(k, depth + 1)).collect());
    }
    // A name repeated among siblings is a flattened list (SQS's `QueueUrl`).
    let mut m = Map::new();
    for k in kids {
        let key = capitalized(k.tag_name().name());
        let v = element(k, depth + 1);
        match m.get_mut(&key) {
            None => {
                m.insert(key, v);
            }
            Some(Value::Object(o)) if o.contains_key(REPEATED) => {
                if let Some(Value::Array(a)) = o.get_mut(REPEATED) {
                    a.push(v);
                }
            }
            Some(prev) => {
                let first = prev.take();
                *prev = Value::Object(Map::from_iter([(
                    REPEATED.to_owned(),
                    Value::Array(vec![first, v]),
                )]));
            }
        }
    }
    for v in m.values_mut() {
        if let Value::Object(o) = v
            && let Some(a) = o.remove(REPEATED)
        {
            *v = a;
        }
    }
    Value::Object(m)
}

/// Holds a repeated element's values while its siblings are read (not a valid XML name).
const REPEATED: &str = " repeated";

fn leaf(name: &str, text: &str) -> Value {
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => {
            if NUMBER_KEYS.contains(&capitalized(name).as_str())
                && let Ok(n) = text.parse::<i64>()
            {
                return Value::from(n);
            }
            Value::String(text.to_owned())
        }
    }
}

/// Whether `v` holds something: not null, not an empty string, list or object.
pub fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// The value at `path`: dot-separated names, `|` between alternatives (the first present).
pub fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('|').find_map(|alt| {
        alt.split('.')
            .filter(|s| !s.is_empty())
            .try_fold(v, |v, name| v.get(name))
            .filter(|v| present(v))
    })
}

/// The list at `path`: an array as is, a single element (a flattened list of one) as a list
/// of one, nothing as empty.
pub fn list<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    match get(v, path) {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(other) => vec![other],
        None => Vec::new(),
    }
}

/// The text at `path`: a string, or a number or boolean written out.
pub fn text(v: &Value, path: &str) -> Option<String> {
    match get(v, path)? {
        Value::String(s) => Some(s.clone()),
        n @ (Value::Number(_) | Value::Bool(_)) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree(xml: &str) -> Value {
        let doc = roxmltree::Document::parse(xml).expect("xml");
        from_xml(doc.root_element())
    }

    #[test]
    fn xml_reads_as_the_sdks_shape_it() {
        let t = tree(
            "<R><vpcSet><item><vpcId>vpc-1</vpcId><isDefault>true</isDefault>\
             <tagSet><item><key>Name</key><value>main</value></item></tagSet></item></vpcSet>\
             <empty/><nextToken>n</nextToken></R>",
        );
        assert_eq!(
            t,
            json!({"VpcSet": [{"VpcId": "vpc-1", "IsDefault": true,
                   "TagSet": [{"Key": "Name", "Value": "main"}]}],
                   "Empty": "", "NextToken": "n"})
        );
        let q = tree(
            "<ListQueuesResponse><ListQueuesResult><QueueUrl>a</QueueUrl><QueueUrl>b</QueueUrl>\
             <QueueUrl>c</QueueUrl></ListQueuesResult></ListQueuesResponse>",
        );
        assert_eq!(
            q,
            json!({"ListQueuesResult": {"QueueUrl": ["a", "b", "c"]}})
        );
        let one = tree("<R><Result><QueueUrl>a</QueueUrl></Result></R>");
        assert_eq!(list(&one, "Result.QueueUrl"), vec![&json!("a")]);
        let n = tree("<R><Port>5432</Port><OwnerId>012345678901</OwnerId></R>");
        assert_eq!(n, json!({"Port": 5432, "OwnerId": "012345678901"}));
        let deep = format!("{}x{}", "<a>".repeat(5000), "</a>".repeat(5000));
        let doc = roxmltree::Document::parse_with_options(
            &deep,
            roxmltree::ParsingOptions {
                nodes_limit: u32::MAX,
                ..Default::default()
            },
        );
        if let Ok(doc) = doc {
            assert!(
                present(&from_xml(doc.root_element())),
                "cut, not overflowed"
            );
        }
    }

    #[test]
    fn paths_take_the_first_alternative_present() {
        let v = json!({"A": {"B": ""}, "C": 3, "D": [], "E": {"F": "x"}});
        assert_eq!(get(&v, "A.B|C"), Some(&json!(3)));
        assert_eq!(get(&v, "D|E.F"), Some(&json!("x")));
        assert_eq!(get(&v, "Z"), None);
        assert_eq!(text(&v, "C").as_deref(), Some("3"));
        assert!(list(&v, "D").is_empty());
    }
}
