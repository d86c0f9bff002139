//! The connection document a scan starts from, as Maestro's server-app writes it
//! (`maestro-client.connections`): its provider label, datacenter, region labels, the owner
//! and roles whose inventory it fills, and the credential token. Secrets stay in `token` and
//! are never printed.

use mongodb::bson::{Bson, Document};
use serde_json::Value;

use maestro_contract::stored::from_stored;

/// The parts of a connection a scan uses.
pub(crate) struct Connection {
    /// `_id` exactly as stored (an ObjectId from server-app).
    pub(crate) id: Bson,
    /// `_id` as hex (or the string it is).
    pub(crate) id_text: String,
    /// Maestro's provider label (`AWS`).
    pub(crate) provider: Option<String>,
    /// The datacenter's name (`dc`).
    pub(crate) dc: Option<String>,
    /// The datacenter's id (`dc_id`), as hex.
    pub(crate) dc_id: Option<String>,
    /// Region labels as stored (`us-east-1 (N. Virginia)`).
    pub(crate) regions: Vec<String>,
    /// `roles`, ids as hex (stored again as ObjectIds).
    pub(crate) roles: Value,
    /// The user the connection belongs to (`owner_user._id`, else `owner._id`), as hex: the
    /// owner scope of the scan and its websocket channel.
    pub(crate) owner_id: Option<String>,
    /// Every owner of the connection (`owner_user._id`, `owner._id`: the user, or the team it
    /// was made for), as hex: whose uploaded files an import may read.
    pub(crate) owners: Vec<String>,
    pub(crate) token: Option<String>,
    /// The provider's settings of the connection that are not secret ([`SETTINGS`]: OpenStack's
    /// Keystone URL, project and user domain), as server-app stores them at the top level.
    pub(crate) settings: serde_json::Map<String, Value>,
}

/// The connection fields a provider may read besides its credentials (the `extra` part of
/// Maestro's connection templates).
pub(crate) const SETTINGS: [&str; 5] =
    ["service", "url", "project", "user_domain_id", "api_version"];

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id_text)
            .field("provider", &self.provider)
            .field("regions", &self.regions)
            .finish_non_exhaustive()
    }
}

fn text(b: Option<&Bson>) -> Option<String> {
    match b? {
        Bson::String(s) if !s.is_empty() => Some(s.clone()),
        Bson::ObjectId(o) => Some(o.to_hex()),
        _ => None,
    }
}

impl Connection {
    pub(crate) fn from_document(d: &Document) -> Self {
        let regions = match d.get("regions") {
            Some(Bson::Array(a)) => a
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .filter(|r| !r.trim().is_empty())
                .collect(),
            Some(Bson::String(s)) if !s.trim().is_empty() => vec![s.clone()],
            _ => Vec::new(),
        };
        let roles = match (d.get("roles"), d.get("owner")) {
            (Some(r @ Bson::Array(_)), _) => from_stored(r),
            (_, Some(o @ Bson::Document(_))) => Value::Array(vec![from_stored(o)]),
            _ => Value::Array(Vec::new()),
        };
        let owner_id = ["owner_user", "owner"]
            .iter()
            .find_map(|k| text(d.get_document(k).ok()?.get("_id")));
        let owners = ["owner_user", "owner"]
            .iter()
            .filter_map(|k| text(d.get_document(k).ok()?.get("_id")))
            .collect();
        let token = ["conn", "token"]
            .iter()
            .find_map(|k| d.get_str(k).ok())
            .map(str::to_owned);
        let settings = SETTINGS
            .iter()
            .filter_map(|k| Some((k.to_string(), Value::String(text(d.get(*k))?))))
            .collect();
        let id = d.get("_id").cloned().unwrap_or(Bson::Null);
        Self {
            id_text: text(Some(&id)).unwrap_or_default(),
            id,
            provider: text(d.get("provider")),
            dc: text(d.get("dc")),
            dc_id: text(d.get("dc_id")),
            regions,
            roles,
            owner_id,
            owners,
            token,
            settings,
        }
    }
}

/// The region an API call is made in, from Maestro's region label: the label up to its first
/// space (`us-east-1 (N. Virginia)` -> `us-east-1`), as Maestro's discovery cut it.
pub fn api_region(label: &str) -> &str {
    label.split_whitespace().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;
    use mongodb::bson::oid::ObjectId;
    use serde_json::json;

    #[test]
    fn the_connection_as_server_app_writes_it() {
        let (id, user, dc) = (ObjectId::new(), ObjectId::new(), ObjectId::new());
        let d = doc! {"_id": id, "provider": "AWS", "dc": "aws-dc", "dc_id": dc.to_hex(),
        "regions": ["us-east-1 (N. Virginia)", "eu-west-1 (Ireland)"],
        "roles": [{"_id": user, "refs": "users", "role": 7}],
        "owner_user": {"_id": user, "email": "u@x", "role": 7, "refs": "users"},
        "conn": "x.y.z"};
        let c = Connection::from_document(&d);
        assert_eq!(c.id_text, id.to_hex());
        assert_eq!(c.provider.as_deref(), Some("AWS"));
        assert_eq!(c.dc_id.as_deref(), Some(dc.to_hex().as_str()));
        assert_eq!(c.owner_id.as_deref(), Some(user.to_hex().as_str()));
        assert_eq!(c.owners, vec![user.to_hex()]);
        assert_eq!(c.roles[0]["_id"], user.to_hex());
        assert_eq!(c.roles[0]["role"], 7);
        assert_eq!(c.regions.len(), 2);
        assert_eq!(api_region(&c.regions[0]), "us-east-1");
        assert!(!format!("{c:?}").contains("x.y.z"));
        let d = doc! {"_id": "c2", "owner": {"_id": "u", "refs": "teams", "role": 3}, "token": "t"};
        let c = Connection::from_document(&d);
        assert_eq!(c.roles, json!([{"_id": "u", "refs": "teams", "role": 3}]));
        assert_eq!(c.owner_id.as_deref(), Some("u"));
        assert_eq!(c.token.as_deref(), Some("t"));
        assert!(c.settings.is_empty());
        let d = doc! {"_id": "c3", "url": "https://keystone.example:5000/v3", "project": "p1",
        "user_domain_id": "default", "api_version": "3", "other": "x", "regions": ["RegionOne"],
        "service": "OpenStack"};
        let c = Connection::from_document(&d);
        assert_eq!(
            Value::Object(c.settings),
            json!({"service": "OpenStack", "url": "https://keystone.example:5000/v3", "project": "p1",
                   "user_domain_id": "default", "api_version": "3"})
        );
    }
}
