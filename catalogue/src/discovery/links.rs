//! Maestro's servers-to-applications link by tag: a server tagged `applications` (names,
//! comma-separated) or `applications_id` (ids) gets `applications: [{_id, name, family}]` of
//! the owner's applications so named, as Maestro's discovery linked them. Unlike Maestro's,
//! the lookup is scoped to the connection's owner: a tag cannot link another tenant's
//! application. One query per page for the names and ids not looked up yet.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use mongodb::Database;
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use serde_json::{Value, json};

/// Names or ids in one tag that are looked up; the rest are ignored.
pub const LINKS_PER_TAG_MAX: usize = 50;

/// The applications looked up during one scan, by `name:<name>` or `id:<hex>`.
#[derive(Debug, Default)]
pub struct Links {
    known: HashMap<String, Vec<Value>>,
}

/// The `applications`/`applications_id` references of a server's tags.
fn references(item: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(tags) = item.get("tags").and_then(Value::as_array) else {
        return out;
    };
    for (tag, prefix) in [("applications", "name:"), ("applications_id", "id:")] {
        let Some(v) = tags
            .iter()
            .find(|t| {
                t["key"]
                    .as_str()
                    .is_some_and(|k| k.eq_ignore_ascii_case(tag))
            })
            .and_then(|t| t["value"].as_str())
        else {
            continue;
        };
        out.extend(
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .take(LINKS_PER_TAG_MAX)
                .map(|s| format!("{prefix}{s}")),
        );
    }
    out
}

impl Links {
    /// Sets `applications` on the servers of `items` whose tags name applications of
    /// `owner` (hex id) that exist.
    pub async fn complete(
        &mut self,
        db: &Database,
        owner: Option<&str>,
        items: &mut [Value],
    ) -> Result<(), mongodb::error::Error> {
        let Some(owner) = owner.and_then(|o| ObjectId::parse_str(o).ok()) else {
            return Ok(());
        };
        let mut wanted: Vec<String> = items
            .iter()
            .flat_map(references)
            .filter(|r| !self.known.contains_key(r))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if !wanted.is_empty() {
            let names: Vec<Bson> = wanted
                .iter()
                .filter_map(|r| r.strip_prefix("name:"))
                .map(|n| Bson::String(n.to_owned()))
                .collect();
            let ids: Vec<Bson> = wanted
                .iter()
                .filter_map(|r| r.strip_prefix("id:"))
                .filter_map(|i| ObjectId::parse_str(i).ok())
                .map(Bson::ObjectId)
                .collect();
            let filter = doc! {
                "roles._id": owner,
                "$or": [{"name": {"$in": names}}, {"_id": {"$in": ids}}],
            };
            let mut cursor = db
                .collection::<Document>("applications")
                .find(filter)
                .projection(doc! {"_id": 1, "name": 1, "family": 1})
                .await?;
            while let Some(d) = cursor.try_next().await? {
                let Some(id) = d.get_object_id("_id").ok() else {
                    continue;
                };
                let name = d.get_str("name").unwrap_or_default();
                let mut app = json!({"_id": id.to_hex(), "name": name});
                if let Ok(f) = d.get_str("family") {
                    app["family"] = json!(f);
                }
                self.known
                    .entry(format!("name:{name}"))
                    .or_default()
                    .push(app.clone());
                self.known
                    .entry(format!("id:{}", id.to_hex()))
                    .or_default()
                    .push(app);
            }
            for r in wanted {
                self.known.entry(r).or_default();
            }
        }
        for item in items.iter_mut() {
            let mut apps: Vec<Value> = Vec::new();
            for r in references(item) {
                for app in self.known.get(&r).into_iter().flatten() {
                    if !apps.iter().any(|a| a["_id"] == app["_id"]) {
                        apps.push(app.clone());
                    }
                }
            }
            if !apps.is_empty()
                && let Value::Object(m) = item
            {
                m.insert("applications".into(), Value::Array(apps));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_applications_by_name_or_id() {
        let s = json!({"tags": [
            {"key": "Applications", "value": "shop, api ,"},
            {"key": "applications_id", "value": "5f0000000000000000000abc"},
            {"key": "Name", "value": "web"},
        ]});
        assert_eq!(
            references(&s),
            ["name:shop", "name:api", "id:5f0000000000000000000abc"]
        );
        assert!(references(&json!({"tags": []})).is_empty());
        assert!(references(&json!({})).is_empty());
    }
}
