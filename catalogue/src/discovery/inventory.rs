//! Discovered items as Maestro stores them, and the writes that keep the inventory in step.
//!
//! Every item gets Maestro's common fields ([`finish_item`]): the connection's `roles`, `owner`
//! `{refs: "connections", name: <dc>, _id: <connection>}`, `accountant: [<connection id>]`
//! (server-app lists servers without it as orphans), the datacenter (`name`, `provider`
//! label, `_id`, the full region label), `active`, and a `checksum` of the rest. Written with
//! `maestro_contract::stored` rules, ids are ObjectIds and dates are dates, as server-app's
//! ACL queries (`roles: {$elemMatch: {_id: ObjectId}}`) need.
//!
//! [`store_batch`] matches items to the owner's existing ones by the task's key (`ipv4_private`
//! for servers, `unique_id` otherwise), so a server the user entered by hand with the same
//! private IP is completed rather than duplicated, and writes only what changed.
//! [`deactivate_unseen`] marks the connection's items of this kind that a full scan did not see
//! `active: false`, selected as Maestro's discovery selected them (by `accountant`), so items
//! the original services wrote are retired too.

use std::collections::{HashMap, HashSet};

use futures_util::TryStreamExt;
use maestro_contract::stored::{to_stored, to_stored_document};
use maestro_results::{StoreError, TRANSIENT_CODES};
use mongodb::Collection;
use mongodb::bson::{Bson, DateTime, Document, doc, oid::ObjectId};
use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};

/// What a translated item gets from its connection and scan: Maestro's common fields.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Maestro's provider label (`AWS`), stored as `datacenters.provider`.
    pub provider_label: String,
    /// The connection's id (hex).
    pub conn_id: String,
    pub task: String,
    /// The task's family, when its collection holds several (`SecurityGroup`).
    pub family: Option<String>,
    /// The `provider` string of items in shared collections (`S3 (AWS)`).
    pub item_provider: Option<String>,
    /// The connection's `roles` (ids as hex).
    pub roles: Value,
    /// The owner the connection belongs to (hex): the scope of lookups and retirement.
    pub owner_id: Option<String>,
    /// The datacenter's name and id (hex).
    pub dc: Option<String>,
    pub dc_id: Option<String>,
    /// How items are matched to existing ones: `ipv4_private` or `unique_id`.
    pub key_comparer: String,
    /// Items of a global scan keep the region they name ([`super::Kind::item_regions`]).
    pub item_regions: bool,
}

/// Completes a provider's translated item, found in the region labelled `region` (none for
/// a global kind); `None` when it has no `unique_id`. `updated_at` is set when written.
pub fn finish_item(
    item: Value,
    origin: &Origin,
    region: Option<&str>,
) -> Option<Map<String, Value>> {
    let Value::Object(mut m) = item else {
        return None;
    };
    if !m.get("unique_id").is_some_and(Value::is_string) {
        return None;
    }
    m.insert("roles".into(), origin.roles.clone());
    let mut owner = Map::new();
    owner.insert("refs".into(), json!("connections"));
    if let Some(dc) = &origin.dc {
        owner.insert("name".into(), json!(dc));
    }
    owner.insert("_id".into(), json!(origin.conn_id));
    m.insert("owner".into(), Value::Object(owner));
    m.insert("accountant".into(), json!([origin.conn_id]));
    if let Some(f) = &origin.family {
        m.entry("family").or_insert_with(|| json!(f));
    }
    if let Some(p) = &origin.item_provider {
        m.entry("provider").or_insert_with(|| json!(p));
    }
    if let Some(Value::Object(dc)) = m.get_mut("datacenters") {
        dc.insert("provider".into(), json!(origin.provider_label));
        if let Some(name) = &origin.dc {
            dc.insert("name".into(), json!(name));
        }
        if let Some(id) = &origin.dc_id {
            dc.insert("_id".into(), json!(id));
        }
        // A regional scan's label; a global one has none, unless its items name their own
        // (a DigitalOcean droplet's).
        match region {
            Some(r) => {
                dc.insert("region".into(), json!(r));
            }
            None if origin.item_regions => {}
            None => {
                dc.remove("region");
            }
        }
    }
    m.entry("active").or_insert(Value::Bool(true));
    m.remove("updated_at");
    let sum = checksum(&m);
    m.insert("checksum".into(), Value::String(sum));
    Some(m)
}

/// Canonical JSON text: object keys sorted, no whitespace (what Python's
/// `json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` writes).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(x) = m.get(k) {
                    write_canonical(x, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// sha1 hex of the item's canonical JSON, without its `checksum` and `updated_at`.
pub fn checksum(item: &Map<String, Value>) -> String {
    let mut m = item.clone();
    m.remove("checksum");
    m.remove("updated_at");
    let digest = Sha1::digest(canonical_json(&Value::Object(m)).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The least role (Maestro's numbers) that lets a connection's owner rewrite an item.
pub const ROLE_WRITE: i64 = 3;

/// The owner scope of lookups: items one of whose roles is the connection's owner.
fn owner_scope(origin: &Origin) -> Document {
    match origin
        .owner_id
        .as_deref()
        .and_then(|o| ObjectId::parse_str(o).ok())
    {
        Some(oid) => doc! {"roles._id": oid},
        None => doc! {"accountant": &origin.conn_id},
    }
}

/// An existing item a discovered one is matched to.
struct Existing {
    id: Bson,
    checksum: String,
    active: Option<bool>,
}

/// The owner's items whose `field` is one of `values`, by that value (the first found of
/// each).
async fn lookup(
    coll: &Collection<Document>,
    origin: &Origin,
    field: &str,
    values: Vec<String>,
) -> Result<HashMap<String, Existing>, StoreError> {
    // Asked by the indexed field alone, the owner checked here: a server that cannot combine
    // the index with the owner's `roles._id` (SecantusDB scans the collection then) still
    // answers from the index.
    let scope = owner_scope(origin);
    let mut found = HashMap::new();
    let mut cursor = coll
        .find(doc! {field: {"$in": values}})
        .projection(
            doc! {"_id": 1, field: 1, "checksum": 1, "active": 1, "roles._id": 1, "accountant": 1},
        )
        .await?;
    while let Some(d) = cursor.try_next().await? {
        let Ok(value) = d.get_str(field) else {
            continue;
        };
        if !in_scope(&d, &scope) {
            continue;
        }
        found.entry(value.to_owned()).or_insert_with(|| Existing {
            id: d.get("_id").cloned().unwrap_or(Bson::Null),
            checksum: d.get_str("checksum").unwrap_or_default().to_owned(),
            active: d.get_bool("active").ok(),
        });
    }
    Ok(found)
}

/// Whether the stored `d` is within `scope` ([`owner_scope`]): one of its roles is the owner,
/// or (without an owner) its accountants hold the connection.
fn in_scope(d: &Document, scope: &Document) -> bool {
    let holds = |array: Option<&Vec<Bson>>, want: &Bson, key: Option<&str>| {
        array.is_some_and(|a| {
            a.iter().any(|x| match key {
                Some(k) => x.as_document().and_then(|e| e.get(k)) == Some(want),
                None => x == want,
            })
        })
    };
    if let Some(owner) = scope.get("roles._id") {
        // The owner must be able to write the item: a connection made by a user who may only
        // read a shared item never rewrites it (Maestro's roles: 1 read, 3 write, 7 admin).
        return d.get_array("roles").is_ok_and(|roles| {
            roles.iter().any(|r| {
                let Some(r) = r.as_document() else {
                    return false;
                };
                r.get("_id") == Some(owner)
                    && match r.get("role") {
                        Some(Bson::Int32(n)) => *n >= ROLE_WRITE as i32,
                        Some(Bson::Int64(n)) => *n >= ROLE_WRITE,
                        Some(Bson::Double(n)) => *n >= ROLE_WRITE as f64,
                        _ => true,
                    }
            })
        });
    }
    scope
        .get("accountant")
        .is_some_and(|conn| holds(d.get_array("accountant").ok(), conn, None))
}

/// One item [`store_batch`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The stored document's `_id`.
    pub id: Bson,
    /// Inserted, rather than an existing item rewritten.
    pub inserted: bool,
    /// The item as written.
    pub item: Map<String, Value>,
}

/// Writes the batch's items that are new, whose checksum changed or whose stored `active`
/// differs: each onto the owner's item with the same key (`key_comparer`) when there is one
/// (one `update` command), the others inserted (one `insert` command); returns what was
/// written. The lookup before is one indexed query, so a batch costs the server three
/// commands whatever its size. Like the upserts Maestro's data-app made, two scans of the
/// same connection racing on a new item can both insert it (nothing unique but `_id`).
pub async fn store_batch(
    coll: &Collection<Document>,
    origin: &Origin,
    batch: Vec<Map<String, Value>>,
) -> Result<Vec<Written>, StoreError> {
    let key = origin.key_comparer.as_str();
    let text = |m: &Map<String, Value>, field: &str| {
        m.get(field).and_then(Value::as_str).map(str::to_owned)
    };
    let ids: Vec<String> = batch.iter().filter_map(|m| text(m, "unique_id")).collect();
    let mut by_key: HashMap<String, Existing> = HashMap::new();
    let by_id = lookup(coll, origin, "unique_id", ids).await?;
    if key != "unique_id" {
        // Two indexed `$in` queries rather than one `$or` of both, which some servers
        // (SecantusDB) answer by scanning the collection.
        let keys: Vec<String> = batch
            .iter()
            .filter(|m| text(m, "unique_id").is_none_or(|u| !by_id.contains_key(&u)))
            .filter_map(|m| text(m, key))
            .collect();
        if !keys.is_empty() {
            by_key = lookup(coll, origin, key, keys).await?;
        }
    }
    let now = DateTime::now();
    let mut inserts: Vec<(Document, Map<String, Value>)> = Vec::new();
    let mut rewrites: Vec<(Bson, Document, Map<String, Value>)> = Vec::new();
    for m in batch {
        let unique = m
            .get("unique_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let existing = by_id.get(unique).or_else(|| {
            m.get(key)
                .and_then(Value::as_str)
                .and_then(|k| by_key.get(k))
        });
        let sum = m
            .get("checksum")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let active = m.get("active").and_then(Value::as_bool);
        if existing.is_some_and(|e| e.checksum == sum && e.active == active) {
            continue;
        }
        let mut set = to_stored_document(&m);
        set.insert("updated_at", now);
        match existing {
            Some(e) => rewrites.push((e.id.clone(), set, m)),
            None => {
                if !set.contains_key("created_at") {
                    set.insert("created_at", now);
                }
                set.insert("_id", ObjectId::new());
                inserts.push((set, m));
            }
        }
    }
    let mut written = Vec::with_capacity(inserts.len() + rewrites.len());
    if !rewrites.is_empty() {
        let statements: Vec<Document> = rewrites
            .iter()
            .map(|(id, set, _)| doc! {"q": {"_id": id.clone()}, "u": {"$set": set.clone()}})
            .collect();
        write_command(coll, "update", "updates", statements).await?;
        written.extend(rewrites.into_iter().map(|(id, _, item)| Written {
            id,
            inserted: false,
            item,
        }));
    }
    if !inserts.is_empty() {
        let ids: Vec<Bson> = inserts
            .iter()
            .map(|(d, _)| d.get("_id").cloned().unwrap_or(Bson::Null))
            .collect();
        let documents: Vec<Document> = inserts.iter().map(|(d, _)| d.clone()).collect();
        write_command(coll, "insert", "documents", documents).await?;
        written.extend(inserts.into_iter().zip(ids).map(|((_, item), id)| Written {
            id,
            inserted: true,
            item,
        }));
    }
    Ok(written)
}

/// Largest write command sent at once, bytes: MongoDB refuses commands over 16 MiB, so a
/// batch of large items goes as several.
const COMMAND_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Writes `entries` (insert documents or update statements) with as few `command`s as fit
/// under [`COMMAND_BYTES_MAX`], unordered: every entry is tried, and the first refusal is the
/// error (a retry of the scan finds what was written and writes only the rest).
async fn write_command(
    coll: &Collection<Document>,
    command: &str,
    field: &str,
    entries: Vec<Document>,
) -> Result<(), StoreError> {
    let mut rest = entries;
    while !rest.is_empty() {
        let mut bytes = 0;
        let split = rest
            .iter()
            .position(|d| {
                bytes += mongodb::bson::to_vec(d).map_or(0, |v| v.len());
                bytes > COMMAND_BYTES_MAX
            })
            .map_or(rest.len(), |p| p.max(1));
        let tail = rest.split_off(split);
        let part = std::mem::replace(&mut rest, tail);
        let reply = coll
            .client()
            .database(&coll.namespace().db)
            .run_command(doc! {command: coll.name(), field: part, "ordered": false})
            .await?;
        if let Ok(e) = reply.get_document("writeConcernError") {
            let text = e.get_str("errmsg").unwrap_or("write concern not met");
            return Err(StoreError::Unavailable(format!(
                "{command} of {}: {text}",
                coll.name()
            )));
        }
        let first = reply
            .get_array("writeErrors")
            .ok()
            .and_then(|errors| errors.first())
            .and_then(Bson::as_document);
        if let Some(e) = first {
            let code = e.get_i32("code").unwrap_or(0);
            let text = format!(
                "{command} of {}: {} (code {code})",
                coll.name(),
                e.get_str("errmsg").unwrap_or("write refused")
            );
            return Err(if TRANSIENT_CODES.contains(&code) {
                StoreError::Unavailable(text)
            } else {
                StoreError::Refused(text)
            });
        }
    }
    Ok(())
}

/// Makes sure `coll` has the indexes discovery's lookups use: `unique_id`, the task's match key
/// and `accountant` (retirement). Without them every lookup and write scans the collection,
/// which made a 2,000-server scan write 12 items a second. Creating an index that exists is a
/// no-op; one that cannot be made (no privilege) is logged and the scan goes on without it.
pub async fn ensure_indexes(coll: &Collection<Document>, key_comparer: &str) {
    let mut fields = vec!["unique_id", "accountant"];
    if !fields.contains(&key_comparer) {
        fields.push(key_comparer);
    }
    let models = fields
        .iter()
        .map(|f| mongodb::IndexModel::builder().keys(doc! {*f: 1}).build());
    if let Err(e) = coll.create_indexes(models).await {
        tracing::warn!(collection = coll.name(), error = %e, "discovery_indexes_not_made");
    }
}

/// Marks the connection's active items of this kind in `region` (every region for a global
/// kind) that the scan did not see `active: false`. Selected as Maestro's discovery selected
/// them: by `accountant`, datacenter, owner, region, family and item provider; compared by
/// `unique_id`, which every discovered item has (a key such as `ipv4_private` can be absent).
pub async fn deactivate_unseen(
    coll: &Collection<Document>,
    origin: &Origin,
    region: Option<&str>,
    seen: &HashSet<String>,
) -> Result<u64, mongodb::error::Error> {
    let mut filter = owner_scope(origin);
    filter.insert("accountant", &origin.conn_id);
    filter.insert("active", true);
    if let Some(dc) = origin
        .dc_id
        .as_deref()
        .and_then(|d| ObjectId::parse_str(d).ok())
    {
        filter.insert("datacenters._id", dc);
    }
    if let Some(r) = region {
        filter.insert("datacenters.region", r);
    }
    if let Some(f) = &origin.family {
        filter.insert("family", f);
    }
    if let Some(p) = &origin.item_provider {
        filter.insert("provider", p);
    }
    // The candidates are read (ids only) and compared here, then retired by `_id`: a `$nin`
    // of every id seen costs some servers (SecantusDB) the product of both sizes.
    let mut unseen: Vec<Bson> = Vec::new();
    let mut cursor = coll
        .find(filter)
        .projection(doc! {"_id": 1, "unique_id": 1})
        .await?;
    while let Some(d) = cursor.try_next().await? {
        let unique = match d.get("unique_id") {
            Some(Bson::String(s)) => s.clone(),
            Some(Bson::ObjectId(o)) => o.to_hex(),
            Some(other) => to_stored(&json!(other.to_string())).to_string(),
            None => String::new(),
        };
        if !seen.contains(&unique)
            && let Some(id) = d.get("_id")
        {
            unseen.push(id.clone());
        }
    }
    let mut retired = 0;
    for ids in unseen.chunks(RETIRE_BATCH_MAX) {
        let r = coll
            .update_many(
                doc! {"_id": {"$in": ids}, "active": true},
                doc! {"$set": {"active": false, "updated_at": DateTime::now()}},
            )
            .await?;
        retired += r.modified_count;
    }
    Ok(retired)
}

/// Items retired by one update.
const RETIRE_BATCH_MAX: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn origin() -> Origin {
        Origin {
            provider_label: "AWS".into(),
            conn_id: "5f1b00000000000000000010".into(),
            task: "server-list".into(),
            family: None,
            item_provider: None,
            roles: json!([{"_id": "5f0000000000000000000001", "refs": "users", "role": 7}]),
            owner_id: Some("5f0000000000000000000001".into()),
            dc: Some("aws-dc".into()),
            dc_id: Some("5f00000000000000000000dc".into()),
            key_comparer: "ipv4_private".into(),
            item_regions: false,
        }
    }

    #[test]
    fn checksum_is_sha1_of_sorted_json_and_ignores_updated_at() {
        let a = json!({"b": 1, "a": {"y": [true, null], "x": "é"}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":"é","y":[true,null]},"b":1}"#
        );
        let m = a.as_object().cloned().unwrap_or_default();
        // sha1 of the canonical text above, computed with Python's hashlib.
        assert_eq!(checksum(&m), "35839b254a276247b2e4f868e47ceaf4bb4050c0");
        let mut with_time = m.clone();
        with_time.insert("updated_at".into(), json!("now"));
        assert_eq!(checksum(&m), checksum(&with_time));
        let mut changed = m.clone();
        changed.insert("b".into(), json!(2));
        assert_ne!(checksum(&m), checksum(&changed));
        assert_eq!(checksum(&m).len(), 40);
    }

    #[test]
    fn finished_items_carry_maestro_common_fields() {
        let item = json!({"unique_id": "i-1", "name": "web", "tags": [],
                          "datacenters": {"provider": "aws", "region": "us-east-1"}});
        let m =
            finish_item(item.clone(), &origin(), Some("us-east-1 (N. Virginia)")).expect("item");
        assert_eq!(m["roles"][0]["_id"], "5f0000000000000000000001");
        assert_eq!(m["active"], true);
        assert_eq!(m["accountant"], json!(["5f1b00000000000000000010"]));
        assert_eq!(
            m["owner"],
            json!({"refs": "connections", "name": "aws-dc", "_id": "5f1b00000000000000000010"})
        );
        assert_eq!(m["datacenters"]["_id"], "5f00000000000000000000dc");
        assert_eq!(m["datacenters"]["name"], "aws-dc");
        assert_eq!(m["datacenters"]["provider"], "AWS");
        assert_eq!(m["datacenters"]["region"], "us-east-1 (N. Virginia)");
        assert_eq!(m["checksum"].as_str().map(str::len), Some(40));
        let again = finish_item(item, &origin(), Some("us-east-1 (N. Virginia)")).expect("item");
        assert_eq!(m["checksum"], again["checksum"], "stable");
        let mut other = origin();
        other.roles = json!([]);
        let moved = finish_item(json!({"unique_id": "i-1"}), &other, None).expect("item");
        assert_ne!(m["checksum"], moved["checksum"]);
        assert!(finish_item(json!({"name": "no id"}), &origin(), None).is_none());
        // A global scan: an S3 bucket's own region is not kept, a DigitalOcean droplet's is.
        let bucket = json!({"unique_id": "b", "datacenters": {"region": "eu-west-1"}});
        let global = finish_item(bucket.clone(), &origin(), None).expect("item");
        assert!(global["datacenters"].get("region").is_none());
        let mut droplets = origin();
        droplets.item_regions = true;
        let kept = finish_item(bucket, &droplets, None).expect("item");
        assert_eq!(kept["datacenters"]["region"], "eu-west-1");
        let stored = to_stored_document(&m);
        let role = stored.get_array("roles").expect("roles")[0]
            .as_document()
            .cloned()
            .expect("doc");
        assert!(matches!(role.get("_id"), Some(Bson::ObjectId(_))));
        assert!(matches!(
            stored.get_document("owner").expect("owner").get("_id"),
            Some(Bson::ObjectId(_))
        ));
    }
}
