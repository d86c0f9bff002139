//! Maestro's cpu-and-memory hook: a discovered server whose provider gives only an instance
//! type (`datacenters.instance`, e.g. `t3.micro`) gets `cpu` and `memory` from the flavors
//! Maestro keeps in `flavors_public` (AWS's `{api_name, vcpus: "2 vCPUs", memory: "1 GiB"}`,
//! Azure's `{size: "Standard_B1s", vcpu: 1, memory_gib: 1}`), as
//! Maestro's discovery did. One query per page for the types not looked up yet; the answers
//! are kept for the rest of the scan.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use mongodb::Database;
use mongodb::bson::{Bson, Document, doc};
use serde_json::{Value, json};

/// Collection of the public flavors (instance types) Maestro's data holds.
pub const FLAVORS_PUBLIC: &str = "flavors_public";

/// The flavors looked up during one scan, by instance type (`None`: not known).
#[derive(Debug, Default)]
pub struct Flavors {
    known: HashMap<String, Option<(i64, f64)>>,
}

impl Flavors {
    /// Sets `cpu` and `memory` on the servers of `items` that have an instance type with a
    /// known flavor and no `cpu` of their own.
    pub async fn complete(
        &mut self,
        db: &Database,
        items: &mut [Value],
    ) -> Result<(), mongodb::error::Error> {
        let wanted: Vec<String> = items
            .iter()
            .filter_map(instance_type)
            .filter(|t| !self.known.contains_key(*t))
            .map(str::to_owned)
            .collect();
        if !wanted.is_empty() {
            let names: Vec<Bson> = wanted.iter().map(|t| Bson::String(t.clone())).collect();
            let mut cursor = db
                .collection::<Document>(FLAVORS_PUBLIC)
                .find(doc! {"$or": [{"api_name": {"$in": &names}}, {"size": {"$in": &names}}]})
                .projection(doc! {"api_name": 1, "size": 1, "vcpus": 1, "vcpu": 1,
                "memory": 1, "memory_gib": 1})
                .await?;
            while let Some(d) = cursor.try_next().await? {
                // AWS's flavors: {api_name, vcpus: "2 vCPUs", memory: "1 GiB"}; Azure's:
                // {size, vcpu, memory_gib}.
                let Ok(name) = d.get_str("api_name").or_else(|_| d.get_str("size")) else {
                    continue;
                };
                let cpu = d
                    .get("vcpus")
                    .or_else(|| d.get("vcpu"))
                    .and_then(leading_number);
                let memory = d
                    .get("memory")
                    .or_else(|| d.get("memory_gib"))
                    .and_then(leading_number);
                if let (Some(cpu), Some(memory)) = (cpu, memory) {
                    // Maestro kept the first flavor of a type.
                    self.known
                        .entry(name.to_owned())
                        .or_insert(Some((cpu as i64, memory)));
                }
            }
            for t in wanted {
                self.known.entry(t).or_insert(None);
            }
        }
        for item in items.iter_mut() {
            let Some(found) = instance_type(item).and_then(|t| self.known.get(t).copied()) else {
                continue;
            };
            let (Some((cpu, memory)), Value::Object(m)) = (found, item) else {
                continue;
            };
            if !m.contains_key("cpu") {
                m.insert("cpu".into(), json!(cpu));
                m.insert("memory".into(), json!(memory));
            }
        }
        Ok(())
    }
}

fn instance_type(item: &Value) -> Option<&str> {
    item.pointer("/datacenters/instance")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The number a flavor field starts with: `"2 vCPUs"` is 2, `"0.5 GiB"` 0.5; a number as is.
fn leading_number(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        Bson::String(s) => {
            let s = s.trim_start();
            let end = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(s.len());
            s[..end].parse::<f64>().ok()
        }
        _ => None,
    }
    .filter(|n| n.is_finite() && *n >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavor_fields_are_read_as_maestro_wrote_them() {
        assert_eq!(leading_number(&Bson::String("2 vCPUs".into())), Some(2.0));
        assert_eq!(leading_number(&Bson::String("0.5 GiB".into())), Some(0.5));
        assert_eq!(leading_number(&Bson::String("16".into())), Some(16.0));
        assert_eq!(leading_number(&Bson::Int32(4)), Some(4.0));
        assert_eq!(leading_number(&Bson::String("n/a".into())), None);
        assert_eq!(leading_number(&Bson::Null), None);
        let s = json!({"datacenters": {"instance": "t3.micro"}});
        assert_eq!(instance_type(&s), Some("t3.micro"));
        assert_eq!(instance_type(&json!({"datacenters": {}})), None);
    }
}
