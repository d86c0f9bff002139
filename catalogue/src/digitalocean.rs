//! The DigitalOcean discovery provider: Maestro's eight DigitalOcean tasks over the public
//! REST API v2 (`GET /v2/droplets`, `/v2/volumes`, ...), with the connection's API token as a
//! bearer token, `page`/`per_page` paging that follows `links.pages.next`, and the answers
//! translated as Maestro's DigitalOcean rules wrote them (docs/catalogue/discovery.md has the
//! shapes). The common fields (roles, owner, `accountant`, `checksum`, the datacenter's name
//! and id) are added by [`crate::discovery`].
//!
//! DigitalOcean is not regional for discovery: every call lists the whole account, and each
//! item carries its own region (`region.slug`), kept in `datacenters.region`.
//!
//! Lifecycle: one [`DigitalOceanProvider`] per worker, holding the shared HTTP client; each
//! call sends one request and returns one page.

use serde_json::{Map, Value, json};

pub use crate::discovery::http::{
    REQUEST_ATTEMPTS, RESPONSE_BYTES_MAX, RETRY_AFTER_MAX, RETRY_HERE_MAX,
};
use crate::discovery::http::{fetch, retried};
use crate::discovery::rules::{capitalized, copy, put, sub, truthy};
use crate::discovery::{Kind, Page, PageRequest, Provider, ProviderError, ProviderFuture};

/// DigitalOcean's API.
pub const DEFAULT_ENDPOINT: &str = "https://api.digitalocean.com";
/// Largest `per_page` the API accepts.
pub const PAGE_SIZE_MAX: usize = 200;
/// Pages read of one call before the scan gives up on an API that never stops paging.
pub const PAGES_MAX: u64 = 10_000;

/// One of Maestro's DigitalOcean tasks: the API path, the key of the list in the answer, the
/// collection and the rules of its items.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// Maestro's task name.
    pub task: &'static str,
    /// Path under `/v2/`, with any fixed query (`images?private=true`).
    pub path: &'static str,
    /// Key of the item list in the answer (`droplets`).
    pub list: &'static str,
    pub collection: &'static str,
    rules: fn(&Value) -> Map<String, Value>,
}

/// The eight tasks, in the contract's order (`maestro_contract::providers`).
pub const CALLS: [Call; 8] = [
    Call {
        task: "server-list",
        path: "droplets",
        list: "droplets",
        collection: "servers",
        rules: droplet,
    },
    Call {
        task: "volumes-list",
        path: "volumes",
        list: "volumes",
        collection: "volumes",
        rules: volume,
    },
    Call {
        task: "images-list",
        path: "images?private=true",
        list: "images",
        collection: "images",
        rules: image,
    },
    Call {
        task: "loadbalance-list",
        path: "load_balancers",
        list: "load_balancers",
        collection: "applications",
        rules: load_balancer,
    },
    Call {
        task: "snapshot-list",
        path: "snapshots",
        list: "snapshots",
        collection: "snapshots",
        rules: image,
    },
    Call {
        task: "cdns-list",
        path: "cdn/endpoints",
        list: "endpoints",
        collection: "applications",
        rules: cdn,
    },
    Call {
        task: "container-orchestration-list",
        path: "kubernetes/clusters",
        list: "kubernetes_clusters",
        collection: "applications",
        rules: kubernetes,
    },
    Call {
        task: "network-list",
        path: "firewalls",
        list: "firewalls",
        collection: "networks",
        rules: firewall,
    },
];

/// DigitalOcean over its REST API.
pub struct DigitalOceanProvider {
    http: reqwest::Client,
    endpoint: String,
    page_size: usize,
}

impl DigitalOceanProvider {
    /// A provider using `http` against `endpoint` (DigitalOcean's own unless a stand-in is
    /// configured), asking `page_size` items per page (1..=200).
    pub fn new(http: reqwest::Client, endpoint: Option<String>, page_size: usize) -> Self {
        Self {
            http,
            endpoint: endpoint
                .unwrap_or_else(|| DEFAULT_ENDPOINT.into())
                .trim_end_matches('/')
                .to_owned(),
            page_size: page_size.clamp(1, PAGE_SIZE_MAX),
        }
    }

    fn call(task: &str) -> Result<&'static Call, ProviderError> {
        CALLS
            .iter()
            .find(|c| c.task == task)
            .ok_or_else(|| ProviderError::UnknownTask {
                provider: "digitalocean".into(),
                task: task.into(),
            })
    }

    async fn call_page(
        &self,
        token: &str,
        call: &Call,
        page_token: Option<&str>,
    ) -> Result<Page, ProviderError> {
        let page: u64 = match page_token {
            None => 1,
            Some(t) => match t.parse() {
                Ok(p) if (2..=PAGES_MAX).contains(&p) => p,
                Ok(p) if p > PAGES_MAX => {
                    return Err(ProviderError::Invalid(format!(
                        "more than {PAGES_MAX} pages: DigitalOcean keeps answering with a next page"
                    )));
                }
                _ => return Err(ProviderError::Invalid(format!("page token {t:?}"))),
            },
        };
        let sep = if call.path.contains('?') { '&' } else { '?' };
        let url = format!(
            "{}/v2/{}{sep}page={page}&per_page={}",
            self.endpoint, call.path, self.page_size
        );
        let body = retried(|| send(self.http.get(&url).bearer_auth(token))).await?;
        let answer: Value = serde_json::from_str(&body)
            .map_err(|e| ProviderError::Invalid(format!("DigitalOcean answer is not JSON: {e}")))?;
        let items = match answer.get(call.list) {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => &Vec::new(),
            Some(_) => {
                return Err(ProviderError::Invalid(format!(
                    "DigitalOcean answer's {:?} is not a list",
                    call.list
                )));
            }
        };
        let more = answer
            .pointer("/links/pages/next")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        Ok(Page {
            items: items.iter().filter_map(|i| item(call, i)).collect(),
            next: (more && !items.is_empty()).then(|| (page + 1).to_string()),
            partial: false,
        })
    }
}

impl Provider for DigitalOceanProvider {
    fn name(&self) -> &'static str {
        "digitalocean"
    }

    fn kind(&self, task: &str) -> Result<Kind, ProviderError> {
        let call = Self::call(task)?;
        Ok(Kind {
            task: call.task,
            collection: call.collection,
            global: true,
            item_regions: true,
        })
    }

    fn page<'a>(&'a self, req: PageRequest<'a>) -> ProviderFuture<'a, Page> {
        Box::pin(async move {
            let token = req
                .credentials
                .string(&["token", "access_token"])
                .ok_or_else(|| {
                    ProviderError::Auth(
                        "the connection's credentials have no DigitalOcean API token (claim token)"
                            .into(),
                    )
                })?;
            let call = Self::call(req.kind.task)?;
            self.call_page(token, call, req.token)
                .await
                .map_err(|e| e.within(&format!("GET /v2/{}", call.path)))
        })
    }
}

/// Sends one request and returns the body of a 2xx answer, read up to [`RESPONSE_BYTES_MAX`];
/// errors are classified (credentials, throttling and 5xx, calls the endpoint lacks, others).
async fn send(req: reqwest::RequestBuilder) -> Result<String, ProviderError> {
    let answer = fetch("DigitalOcean", req).await?;
    let (status, retry_after, text) = (answer.status, answer.retry_after, answer.body);
    if status.is_success() {
        return Ok(text);
    }
    // DigitalOcean's errors: {"id": "unauthorized", "message": "Unable to authenticate you"}.
    let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let id = error.get("id").and_then(Value::as_str).unwrap_or("");
    let message: String = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    let what = match (id.is_empty(), message.is_empty()) {
        (true, _) => format!("HTTP {}", status.as_u16()),
        (false, true) => format!("{id} (HTTP {})", status.as_u16()),
        (false, false) => format!("{id} (HTTP {}): {message}", status.as_u16()),
    };
    Err(match status.as_u16() {
        401 | 403 => ProviderError::Auth(format!(
            "DigitalOcean refused the connection's token: {what}"
        )),
        404 => {
            ProviderError::Unsupported(format!("the endpoint does not answer this call: {what}"))
        }
        429 | 500.. => ProviderError::Transient {
            message: format!("DigitalOcean is throttling or unavailable: {what}"),
            retry_after,
        },
        _ => ProviderError::Api(format!("DigitalOcean answered {what}")),
    })
}

/// One answer item as Maestro stores it, or `None` without an id.
fn item(call: &Call, raw: &Value) -> Option<Value> {
    let id = match raw.get("id")? {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let mut doc = (call.rules)(raw);
    doc.insert("unique_id".into(), Value::String(id));
    put(&mut doc, "created_at", raw.get("created_at"));
    doc.insert("datacenters".into(), Value::Object(datacenter(raw)));
    Some(Value::Object(doc))
}

/// The item's `status` word, capitalised, and `active` unless it is one of `inactive`. A
/// Kubernetes cluster gives its status as `{state, message}`.
fn status(doc: &mut Map<String, Value>, raw: &Value, inactive: &[&str]) {
    let state = raw
        .pointer("/status/state")
        .or_else(|| raw.get("status"))
        .and_then(Value::as_str);
    if let Some(s) = state.filter(|s| !s.is_empty()) {
        doc.insert("status".into(), json!(capitalized(s)));
        doc.insert("active".into(), json!(!inactive.contains(&s)));
    }
}

/// Maestro's datacenter of a DigitalOcean item: region, size and price, kernel, features.
fn datacenter(raw: &Value) -> Map<String, Value> {
    let mut dc = Map::new();
    if let Some(region) = raw.get("region").filter(|r| r.is_object()) {
        put(&mut dc, "region", region.get("slug"));
        put(&mut dc, "available", region.get("available"));
    }
    dc.insert("type".into(), json!("Virtual"));
    put(&mut dc, "instance", raw.get("size_slug"));
    if raw.get("size_slug").is_some() {
        put(&mut dc, "instance_id", raw.get("id"));
    }
    if let Some(size) = raw.get("size").filter(|s| s.is_object()) {
        put(&mut dc, "price_monthly", size.get("price_monthly"));
        put(&mut dc, "price_hourly", size.get("price_hourly"));
    }
    put(&mut dc, "kernel", raw.get("kernel"));
    if let Some(Value::Array(features)) = raw.get("features") {
        for f in features.iter().filter_map(Value::as_str) {
            if FEATURES.contains(&f) {
                dc.insert(f.into(), Value::Bool(true));
            }
        }
    }
    dc
}

/// The droplet features Maestro kept as flags of the datacenter.
const FEATURES: [&str; 8] = [
    "monitoring",
    "backups",
    "virtio",
    "storage",
    "image_transfer",
    "install_agent",
    "ipv6",
    "private_networking",
];

/// The first IPv4 address of `kind` (`private`, `public`) in a droplet's networks.
fn address<'a>(raw: &'a Value, kind: &str) -> Option<&'a Value> {
    raw.pointer("/networks/v4")?
        .as_array()?
        .iter()
        .find(|n| n.get("type").and_then(Value::as_str) == Some(kind))?
        .get("ip_address")
}

fn droplet(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(
        &mut d,
        raw,
        &[
            ("name", "name"),
            ("cpu", "vcpus"),
            ("image", "image"),
            ("backup_ids", "backup_ids"),
            ("snapshot_ids", "snapshot_ids"),
            ("next_backup_window", "next_backup_window"),
        ],
    );
    // Megabytes as Maestro stored them: divided by a thousand (1024 MB is 1.024).
    if let Some(mb) = raw
        .get("memory")
        .and_then(Value::as_f64)
        .filter(|m| *m > 0.0)
    {
        d.insert("memory".into(), json!(mb / 1000.0));
    }
    put(&mut d, "ipv4_private", address(raw, "private"));
    put(&mut d, "ipv4_public", address(raw, "public"));
    let mut storage: Vec<Value> = raw
        .get("volume_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|v| json!({"name": format!("v-{v}"), "unique_id": v, "status": "Active"}))
        .collect();
    if let Some(disk) = raw.get("disk").filter(|d| truthy(d)) {
        storage.push(json!({"size": disk, "name": "v-built", "status": "Active"}));
    }
    if !storage.is_empty() {
        d.insert("storage".into(), Value::Array(storage));
    }
    if let Some(s) = raw.get("status").and_then(Value::as_str) {
        d.insert("active".into(), json!(!matches!(s, "off" | "archive")));
    }
    d
}

fn volume(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(
        &mut d,
        raw,
        &[
            ("name", "name"),
            ("size", "size_gigabytes"),
            ("fftype", "filesystem_type"),
            ("label", "filesystem_label"),
            ("description", "description"),
        ],
    );
    d.insert("status".into(), json!("Active"));
    d.insert("active".into(), json!(true));
    d
}

/// Images and snapshots alike, as Maestro translated both.
fn image(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(
        &mut d,
        raw,
        &[
            ("name", "name"),
            ("distribution", "distribution"),
            ("slug", "slug"),
            ("public", "public"),
            ("regions", "regions"),
            ("min_disk_size", "min_disk_size"),
            ("type", "type"),
            ("size", "size_gigabytes"),
            ("description", "description"),
        ],
    );
    status(&mut d, raw, &["deleted"]);
    d
}

fn load_balancer(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    put(&mut d, "name", raw.get("name"));
    sub(
        &mut d,
        "role",
        raw,
        &[
            ("ip", "ip"),
            ("algorithm", "algorithm"),
            ("forwarding_rules", "forwarding_rules"),
            ("health_check", "health_check"),
            ("sticky_sessions", "sticky_sessions"),
            ("droplet_ids", "droplet_ids"),
            ("redirect_http_to_https", "redirect_http_to_https"),
        ],
    );
    status(&mut d, raw, &["errored"]);
    d.insert("own".into(), json!(1));
    d
}

fn cdn(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    put(&mut d, "name", raw.get("endpoint"));
    sub(
        &mut d,
        "role",
        raw,
        &[
            ("origins", "origin"),
            ("endpoint", "endpoint"),
            ("ttl", "ttl"),
        ],
    );
    d.insert("type".into(), json!("Web"));
    d.insert("own".into(), json!(1));
    d
}

fn kubernetes(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    put(&mut d, "name", raw.get("name"));
    sub(
        &mut d,
        "role",
        raw,
        &[
            ("region", "region"),
            ("endpoint", "endpoint"),
            ("version", "version"),
            ("ipv4", "ipv4"),
            ("cluster_subnet", "cluster_subnet"),
            ("service_subnet", "service_subnet"),
            ("node_pools", "node_pools"),
        ],
    );
    status(&mut d, raw, &["errored"]);
    d.insert("own".into(), json!(1));
    d
}

fn firewall(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(
        &mut d,
        raw,
        &[
            ("name", "name"),
            ("inbound_rules", "inbound_rules"),
            ("outbound_rules", "outbound_rules"),
            ("pending_changes", "pending_changes"),
            ("droplet_ids", "droplet_ids"),
        ],
    );
    status(&mut d, raw, &["failed"]);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A droplet as DigitalOcean's API reference shows one (GET /v2/droplets, trimmed).
    fn droplet_answer() -> Value {
        json!({
            "id": 3164444, "name": "example.com", "memory": 1024, "vcpus": 1, "disk": 25,
            "locked": false, "status": "active", "kernel": null,
            "created_at": "2020-07-21T18:37:44Z",
            "features": ["backups", "private_networking", "ipv6"],
            "backup_ids": [53893572], "next_backup_window": null, "snapshot_ids": [],
            "image": {"id": 63663980, "name": "20.04 (LTS) x64", "distribution": "Ubuntu",
                      "public": true, "regions": []},
            "volume_ids": ["506f78a4-e098-11e5-ad9f-000f53306ae1"],
            "size": {"slug": "s-1vcpu-1gb", "price_monthly": 5, "price_hourly": 0.00743999984115362},
            "size_slug": "s-1vcpu-1gb",
            "networks": {"v4": [
                {"ip_address": "10.128.192.124", "netmask": "255.255.0.0", "gateway": "nil", "type": "private"},
                {"ip_address": "192.241.165.154", "netmask": "255.255.255.0", "gateway": "192.241.165.1", "type": "public"}
            ], "v6": []},
            "region": {"name": "New York 3", "slug": "nyc3", "available": true},
            "tags": ["web", "env:prod"]
        })
    }

    #[test]
    fn a_droplet_as_maestro_stored_it() {
        let call = &CALLS[0];
        let d = item(call, &droplet_answer()).expect("item");
        assert_eq!(d["unique_id"], "3164444");
        assert_eq!(d["name"], "example.com");
        assert_eq!(d["cpu"], 1);
        assert_eq!(d["memory"], 1.024);
        assert_eq!(d["ipv4_private"], "10.128.192.124");
        assert_eq!(d["ipv4_public"], "192.241.165.154");
        assert_eq!(d["active"], true);
        assert_eq!(d["backup_ids"], json!([53893572]));
        assert!(d.get("snapshot_ids").is_none(), "empty lists are dropped");
        assert!(d["image"].get("public").is_some() && d["image"].get("regions").is_none());
        assert_eq!(
            d["storage"],
            json!([{"name": "v-506f78a4-e098-11e5-ad9f-000f53306ae1",
                    "unique_id": "506f78a4-e098-11e5-ad9f-000f53306ae1", "status": "Active"},
                   {"size": 25, "name": "v-built", "status": "Active"}])
        );
        let dc = &d["datacenters"];
        assert_eq!(dc["region"], "nyc3");
        assert_eq!(dc["instance"], "s-1vcpu-1gb");
        assert_eq!(dc["instance_id"], 3164444);
        assert_eq!(dc["price_monthly"], 5);
        assert_eq!(dc["backups"], true);
        assert_eq!(dc["type"], "Virtual");
        assert!(dc.get("kernel").is_none() && dc.get("monitoring").is_none());
        let mut off = droplet_answer();
        off["status"] = json!("off");
        assert_eq!(item(call, &off).expect("item")["active"], false);
    }

    #[test]
    fn status_words_and_kubernetes_state_objects() {
        let k8s = CALLS
            .iter()
            .find(|c| c.task == "container-orchestration-list")
            .expect("kubernetes");
        let d = item(
            k8s,
            &json!({"id": "bd5f5959-5e1e-4205-a714-a914373942af", "name": "prod-cluster-01",
                    "region": "nyc1", "version": "1.18.6-do.0",
                    "status": {"state": "errored", "message": "boom"}, "node_pools": []}),
        )
        .expect("item");
        assert_eq!(d["status"], "Errored");
        assert_eq!(d["active"], false);
        assert_eq!(
            d["role"],
            json!({"region": "nyc1", "version": "1.18.6-do.0"})
        );
        assert!(
            d["datacenters"].get("region").is_none(),
            "a plain region string"
        );
        let fw = CALLS
            .iter()
            .find(|c| c.task == "network-list")
            .expect("firewalls");
        let d = item(
            fw,
            &json!({"id": "fb6045f1", "name": "web", "status": "succeeded"}),
        )
        .expect("item");
        assert_eq!(
            (d["status"].as_str(), d["active"].as_bool()),
            (Some("Succeeded"), Some(true))
        );
        assert!(item(fw, &json!({"name": "no id"})).is_none());
    }

    #[test]
    fn the_calls_are_the_contracts() {
        let p = maestro_contract::providers::provider("Digital Ocean").expect("digitalocean");
        let contract: Vec<(&str, &str)> = p
            .tasks
            .iter()
            .filter(|t| t.runs)
            .map(|t| (t.name, t.commands[0].entity))
            .collect();
        let here: Vec<(&str, &str)> = CALLS.iter().map(|c| (c.task, c.collection)).collect();
        assert_eq!(
            here, contract,
            "one call per task of the contract, in order"
        );
        assert!(p.tasks.iter().all(|t| t.runs && t.commands.len() == 1));
        let provider = DigitalOceanProvider::new(reqwest::Client::new(), None, 500);
        assert_eq!(provider.page_size, PAGE_SIZE_MAX);
        assert_eq!(
            provider.kind("server-list").expect("kind").collection,
            "servers"
        );
        assert!(provider.kind("flavor-list").is_err());
    }
}
