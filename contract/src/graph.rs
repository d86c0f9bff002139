//! `maestro.analytics.graph(graph_id, owner_id, kind, clients, systems, apps)`: Maestro's
//! business dependency map of an owner's applications, drawn by the workers. maestro-api takes
//! it as server-app sends it to analytics (`POST /graph {_id, owner_id, type, clients[],
//! systems[], apps[]}`, each selector a list of `{_id, ...}`) and enqueues the task on the
//! `analytics` queue.

use maestro_tasks::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::check::null_as_default;

/// Most ids in one selector (clients, systems or apps).
pub const SELECTOR_IDS_MAX: usize = 1000;

/// The map kinds drawn: Maestro's UI sends `bussiness` (its spelling). `infra` was accepted
/// by Maestro's worker but never drawn; here the task answers it with a `warning`.
pub const KINDS: [&str; 2] = ["bussiness", "business"];

/// `POST /graph`, as server-app sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"_id": "5f00000000000000000000a1", "owner_id": "5f0000000000000000000001", "type": "bussiness", "systems": [{"_id": "5f00000000000000000000b1", "name": "shop"}]})))]
pub struct GraphRequest {
    /// The graph document server-app created (`graphs._id`, 24 hex digits).
    #[serde(rename = "_id")]
    pub id: String,
    /// The user or team the graph belongs to (24 hex digits).
    pub owner_id: String,
    /// `bussiness` (or `business`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Clients whose systems are mapped (objects with `_id`).
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub clients: Vec<Value>,
    /// Systems to map.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub systems: Vec<Value>,
    /// Applications to start from.
    #[serde(default, deserialize_with = "null_as_default")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub apps: Vec<Value>,
}

/// The task's arguments: the request with each selector as its ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphJob {
    pub graph_id: String,
    pub owner_id: String,
    pub kind: String,
    #[serde(default)]
    pub clients: Vec<String>,
    #[serde(default)]
    pub systems: Vec<String>,
    #[serde(default)]
    pub apps: Vec<String>,
}

impl maestro_tasks::CallArgs for GraphJob {
    const PARAMETERS: &'static [&'static str] = &GraphJob::PARAMS;
}

impl GraphJob {
    /// The task's parameters, in order.
    pub const PARAMS: [&'static str; 6] =
        ["graph_id", "owner_id", "kind", "clients", "systems", "apps"];

    /// Checks every id and the kind.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_hex("graph_id", &self.graph_id)?;
        check_hex("owner_id", &self.owner_id)?;
        check_kind("kind", &self.kind)?;
        for (field, ids) in [
            ("clients", &self.clients),
            ("systems", &self.systems),
            ("apps", &self.apps),
        ] {
            if ids.len() > SELECTOR_IDS_MAX {
                return Err(FieldError::value(
                    field,
                    format!("at most {SELECTOR_IDS_MAX} ids"),
                ));
            }
            for id in ids {
                check_hex(field, id)?;
            }
        }
        Ok(())
    }
}

impl GraphRequest {
    /// The task's arguments, or the field that is wrong and why.
    pub fn job(&self) -> Result<GraphJob, FieldError> {
        let ids = |field: &str, list: &[Value]| -> Result<Vec<String>, FieldError> {
            list.iter()
                .map(|v| {
                    v.get("_id")
                        .and_then(Value::as_str)
                        .map(str::to_ascii_lowercase)
                        .ok_or_else(|| {
                            FieldError::value(field, "each element must be an object with an _id")
                        })
                })
                .collect()
        };
        let job = GraphJob {
            graph_id: self.id.to_ascii_lowercase(),
            owner_id: self.owner_id.to_ascii_lowercase(),
            kind: self.kind.clone(),
            clients: ids("clients", &self.clients)?,
            systems: ids("systems", &self.systems)?,
            apps: ids("apps", &self.apps)?,
        };
        let rename = |e: FieldError| match e.field.as_str() {
            "graph_id" => FieldError {
                field: "_id".into(),
                ..e
            },
            "kind" => FieldError {
                field: "type".into(),
                ..e
            },
            _ => e,
        };
        job.validate().map_err(rename)?;
        Ok(job)
    }
}

fn check_hex(field: &str, v: &str) -> Result<(), FieldError> {
    if v.len() == 24 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(FieldError::value(
            field,
            format!("{v:?} is not an id (24 hex digits)"),
        ))
    }
}

/// A map kind: a word. Any word is taken (the task answers one it does not draw with a
/// `warning` on the graph, as server-app shows it); only a malformed one is refused.
fn check_kind(field: &str, v: &str) -> Result<(), FieldError> {
    if (1..=32).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(FieldError::value(
            field,
            format!("{v:?} is not a map type (bussiness)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(v: Value) -> Result<GraphJob, String> {
        let r: GraphRequest = serde_json::from_value(v).map_err(|e| e.to_string())?;
        r.job().map_err(|e| e.field)
    }

    #[test]
    fn the_request_as_server_app_sends_it() {
        let job = request(
            json!({"_id": "5F00000000000000000000A1", "owner_id": "5f0000000000000000000001",
            "type": "bussiness", "clients": null,
            "systems": [{"_id": "5f00000000000000000000b1", "name": "shop"}]}),
        )
        .expect("job");
        assert_eq!(job.graph_id, "5f00000000000000000000a1");
        assert_eq!(job.systems, vec!["5f00000000000000000000b1"]);
        assert!(job.clients.is_empty() && job.apps.is_empty());
        let base = json!({"_id": "5f00000000000000000000a1", "owner_id": "5f0000000000000000000001", "type": "bussiness"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            request(b)
        };
        assert_eq!(
            with("type", json!("infra")).err(),
            None,
            "the task answers it"
        );
        assert_eq!(with("type", json!("in fra")).err().as_deref(), Some("type"));
        assert_eq!(with("_id", json!("x")).err().as_deref(), Some("_id"));
        assert_eq!(
            with("owner_id", json!("5f00")).err().as_deref(),
            Some("owner_id")
        );
        assert_eq!(
            with("apps", json!([{"name": "no id"}])).err().as_deref(),
            Some("apps")
        );
        assert_eq!(
            with("apps", json!([{"_id": {"$ne": 1}}])).err().as_deref(),
            Some("apps")
        );
        let many: Vec<Value> = (0..=SELECTOR_IDS_MAX)
            .map(|i| json!({"_id": format!("{i:024x}")}))
            .collect();
        assert_eq!(
            with("systems", Value::Array(many)).err().as_deref(),
            Some("systems")
        );
    }
}
