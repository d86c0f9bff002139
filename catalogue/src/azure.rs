//! The Azure discovery provider: Maestro's five Azure tasks over the Azure Resource Manager
//! REST API. The connection's service principal (`client`, `secret`, `tenant`, `sub` in its
//! credential JWT) logs in with OAuth2's client-credentials grant at Microsoft Entra ID; ARM's
//! subscription-wide lists (`GET /subscriptions/{sub}/providers/Microsoft.Compute/
//! virtualMachines`, ...) are read page by page, following `nextLink`, and translated as
//! Maestro's Azure rules wrote them (docs/catalogue/discovery.md has the shapes). The common
//! fields are added by [`crate::discovery`].
//!
//! Like Maestro's, discovery is not regional here: every list is the whole subscription and each
//! item names its `location`, kept in `datacenters.region`. A virtual machine's addresses come
//! from its primary network interface and that interface's public IP (Maestro's IP hooks), read
//! before the machine is matched by `ipv4_private`; its cpu and memory from Maestro's flavors
//! by size (the scan's flavor hook).
//!
//! Lifecycle: one [`AzureProvider`] per worker, holding the shared HTTP client and the tokens
//! of the service principals it logged in as ([`TokenCache`]).

use std::time::Duration;

use futures_util::{StreamExt, stream};
use reqwest::Url;
use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};

use crate::discovery::http::{fetch, retried};
use crate::discovery::rules::{copy, key_values, put};
use crate::discovery::tokens::{TokenCache, login_key};
use crate::discovery::{
    Credentials, Kind, Page, PageRequest, Provider, ProviderError, ProviderFuture,
};

/// Azure Resource Manager.
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";
/// Microsoft Entra ID, where a service principal logs in.
pub const DEFAULT_LOGIN_ENDPOINT: &str = "https://login.microsoftonline.com";
/// What the token is asked for: ARM, whichever endpoint stands in for it.
pub const SCOPE: &str = "https://management.azure.com/.default";
/// Network interfaces and public IPs looked up at once for one page of machines.
pub const LOOKUPS_IN_FLIGHT: usize = 8;
/// The API version of the network lookups (a machine's interface and public IP).
const NETWORK_API: &str = "2019-12-01";

/// One ARM list: the resource type under the subscription, its API version (those of the SDKs
/// Maestro pinned, whose answers its rules were written for) and the rules of its items.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// `Microsoft.Compute/virtualMachines`.
    pub resource: &'static str,
    pub api_version: &'static str,
    rules: fn(&Value) -> Map<String, Value>,
}

/// One of Maestro's Azure tasks and its lists, in the contract's order.
#[derive(Debug, Clone, Copy)]
pub struct Task {
    pub task: &'static str,
    pub collection: &'static str,
    pub calls: &'static [Call],
}

const fn call(
    resource: &'static str,
    api_version: &'static str,
    rules: fn(&Value) -> Map<String, Value>,
) -> Call {
    Call {
        resource,
        api_version,
        rules,
    }
}

pub const VIRTUAL_MACHINES: &str = "Microsoft.Compute/virtualMachines";

/// The five tasks (`maestro_contract::providers`).
pub const TASKS: [Task; 5] = [
    Task {
        task: "server-list",
        collection: "servers",
        calls: &[call(VIRTUAL_MACHINES, "2019-12-01", machine)],
    },
    Task {
        task: "volumes-list",
        collection: "volumes",
        calls: &[call("Microsoft.Compute/disks", "2019-11-01", disk)],
    },
    Task {
        task: "snapshot-list",
        collection: "snapshots",
        calls: &[call("Microsoft.Compute/snapshots", "2019-11-01", snapshot)],
    },
    Task {
        task: "images-list",
        collection: "images",
        calls: &[call("Microsoft.Compute/images", "2019-12-01", image)],
    },
    Task {
        task: "network-list",
        collection: "networks",
        calls: &[
            call(
                "Microsoft.Network/networkInterfaces",
                NETWORK_API,
                network_interface,
            ),
            call(
                "Microsoft.Network/publicIPAddresses",
                NETWORK_API,
                public_ip,
            ),
            call("Microsoft.Network/routeTables", NETWORK_API, route_table),
            call(
                "Microsoft.Network/virtualNetworks",
                NETWORK_API,
                virtual_network,
            ),
        ],
    },
];

/// A service principal from the connection's credentials, checked before any of it goes into
/// a URL.
struct Principal<'a> {
    client: &'a str,
    secret: &'a str,
    tenant: &'a str,
    subscription: &'a str,
}

impl<'a> Principal<'a> {
    fn from(creds: &'a Credentials) -> Result<Self, ProviderError> {
        let claim = |names: &[&str], what: &str| {
            creds.string(names).ok_or_else(|| {
                ProviderError::Auth(format!(
                    "the connection's credentials have no Azure {what} (claim {})",
                    names[0]
                ))
            })
        };
        let p = Self {
            client: claim(&["client", "client_id"], "client id")?,
            secret: claim(&["secret", "client_secret"], "client secret")?,
            tenant: claim(&["tenant", "tenant_id"], "tenant id")?,
            subscription: claim(&["sub", "subscription_id"], "subscription id")?,
        };
        // A tenant is a GUID or a domain name; a subscription a GUID.
        let tenant_ok = p.tenant.len() <= 253
            && p.tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !p.tenant.starts_with('.');
        if !tenant_ok {
            return Err(ProviderError::Auth(
                "the connection's Azure tenant id is not a GUID or domain name".into(),
            ));
        }
        if !is_guid(p.subscription) {
            return Err(ProviderError::Auth(
                "the connection's Azure subscription id is not a GUID".into(),
            ));
        }
        Ok(p)
    }
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Azure over its Resource Manager API.
pub struct AzureProvider {
    http: reqwest::Client,
    endpoint: Url,
    login: Url,
    tokens: TokenCache<String>,
}

impl AzureProvider {
    /// A provider using `http` against ARM at `endpoint` and Entra ID at `login` (Azure's own
    /// unless stand-ins are configured).
    pub fn new(http: reqwest::Client, endpoint: Option<Url>, login: Option<Url>) -> Self {
        let or = |u: Option<Url>, default: &str| {
            u.unwrap_or_else(|| Url::parse(default).expect("a constant URL"))
        };
        Self {
            http,
            endpoint: or(endpoint, DEFAULT_ENDPOINT),
            login: or(login, DEFAULT_LOGIN_ENDPOINT),
            tokens: TokenCache::default(),
        }
    }

    fn task(name: &str) -> Result<&'static Task, ProviderError> {
        TASKS
            .iter()
            .find(|t| t.task == name)
            .ok_or_else(|| ProviderError::UnknownTask {
                provider: "azure".into(),
                task: name.into(),
            })
    }

    fn base(&self) -> String {
        self.endpoint.as_str().trim_end_matches('/').to_owned()
    }

    /// A bearer token for `p`: the kept one, else a new login.
    async fn token(&self, p: &Principal<'_>, fresh: bool) -> Result<String, ProviderError> {
        let key = login_key(&[self.login.as_str(), p.tenant, p.client, p.secret]);
        if fresh {
            self.tokens.forget(&key);
        } else if let Some(t) = self.tokens.get(&key) {
            return Ok(t);
        }
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.login.as_str().trim_end_matches('/'),
            p.tenant
        );
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", p.client),
            ("client_secret", p.secret),
            ("scope", SCOPE),
        ];
        let answer = retried(|| async {
            let a = fetch("Azure login", self.http.post(&url).form(&form)).await?;
            if a.status.as_u16() == 429 || a.status.is_server_error() {
                return Err(ProviderError::Transient {
                    message: format!(
                        "Azure login is throttling or unavailable: HTTP {}",
                        a.status
                    ),
                    retry_after: a.retry_after,
                });
            }
            Ok(a)
        })
        .await?;
        let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        if !answer.status.is_success() {
            // {"error": "invalid_client", "error_description": "AADSTS7000215: ..."}
            let error = body.get("error").and_then(Value::as_str).unwrap_or("");
            let description: String = body
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(300)
                .collect();
            return Err(ProviderError::Auth(format!(
                "Azure refused the connection's service principal (HTTP {}): {error}: {description}",
                answer.status.as_u16()
            )));
        }
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ProviderError::Invalid("Azure's token answer has no access_token".into())
            })?
            .to_owned();
        let expires_in = match body.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(300)
        .min(12 * 3600);
        self.tokens
            .put(key, token.clone(), Duration::from_secs(expires_in));
        Ok(token)
    }

    /// GETs `url` with the principal's token: once with the kept token and, if ARM says it is
    /// no longer valid, once more after a new login.
    async fn get(&self, p: &Principal<'_>, url: &str) -> Result<Value, ProviderError> {
        let mut fresh = false;
        loop {
            let token = self.token(p, fresh).await?;
            // Throttling and 5xx are retried; a refused token ends the attempts.
            let answer = retried(|| async {
                match send(self.http.get(url).bearer_auth(&token)).await {
                    Ok(v) => Ok(Ok(v)),
                    Err(Refused::Token(e)) => Ok(Err(e)),
                    Err(Refused::Other(e)) => Err(e),
                }
            })
            .await?;
            match answer {
                Ok(v) => return Ok(v),
                Err(_) if !fresh => fresh = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// The first page's URL, or a `nextLink` checked to stay on ARM within the subscription:
    /// the token goes wherever it points.
    fn page_url(
        &self,
        p: &Principal<'_>,
        call: &Call,
        token: Option<&str>,
    ) -> Result<String, ProviderError> {
        let Some(next) = token else {
            return Ok(format!(
                "{}/subscriptions/{}/providers/{}?api-version={}",
                self.base(),
                p.subscription,
                call.resource,
                call.api_version
            ));
        };
        let url = Url::parse(next)
            .map_err(|e| ProviderError::Invalid(format!("Azure's nextLink is not a URL: {e}")))?;
        let same_origin = url.scheme() == self.endpoint.scheme()
            && url.host_str() == self.endpoint.host_str()
            && url.port_or_known_default() == self.endpoint.port_or_known_default();
        let prefix = format!("/subscriptions/{}/", p.subscription);
        if !same_origin || !url.path().starts_with(&prefix) {
            return Err(ProviderError::Invalid(
                "Azure's nextLink leads away from ARM or the subscription: not followed".into(),
            ));
        }
        Ok(url.into())
    }

    /// One page of `call`.
    async fn list_page(
        &self,
        p: &Principal<'_>,
        task: &Task,
        call: &Call,
        token: Option<&str>,
    ) -> Result<Page, ProviderError> {
        let url = self.page_url(p, call, token)?;
        let answer = self.get(p, &url).await?;
        let items = match answer.get("value") {
            Some(Value::Array(items)) => items.as_slice(),
            Some(Value::Null) | None => &[],
            Some(_) => {
                return Err(ProviderError::Invalid(
                    "Azure answer's value is not a list".into(),
                ));
            }
        };
        let next = answer
            .get("nextLink")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let mut out: Vec<Value> = items.iter().filter_map(|i| item(call, i)).collect();
        if task.task == "server-list" {
            let lookups: Vec<_> = items.iter().map(|raw| self.addresses(p, raw)).collect();
            let found: Vec<_> = stream::iter(lookups)
                .buffered(LOOKUPS_IN_FLIGHT)
                .collect()
                .await;
            // `item` drops the answers it cannot identify: pair the rest by unique_id.
            let mut by_id = std::collections::HashMap::new();
            for (raw, addresses) in items.iter().zip(found) {
                if let Some(id) = raw.get("id").and_then(Value::as_str).and_then(unique_id) {
                    by_id.insert(id, addresses?);
                }
            }
            for doc in &mut out {
                let Some(id) = doc.get("unique_id").and_then(Value::as_str) else {
                    continue;
                };
                if let (Some((private, public)), Value::Object(m)) = (by_id.remove(id), &mut *doc) {
                    put(m, "ipv4_private", private.as_ref());
                    put(m, "ipv4_public", public.as_ref());
                }
            }
        }
        Ok(Page {
            items: out,
            next,
            partial: false,
        })
    }

    /// A machine's private and public address: its primary network interface's primary IP
    /// configuration, and the public IP resource that configuration names. Resources gone
    /// since the list (404) leave the address unset.
    async fn addresses(
        &self,
        p: &Principal<'_>,
        vm: &Value,
    ) -> Result<(Option<Value>, Option<Value>), ProviderError> {
        let nics = vm
            .pointer("/properties/networkProfile/networkInterfaces")
            .and_then(Value::as_array);
        let Some(nic_id) = primary(nics)
            .and_then(|n| n.get("id"))
            .and_then(Value::as_str)
        else {
            return Ok((None, None));
        };
        let Some(nic) = self
            .resource(p, nic_id, "Microsoft.Network/networkInterfaces")
            .await?
        else {
            return Ok((None, None));
        };
        let ip = primary(
            nic.pointer("/properties/ipConfigurations")
                .and_then(Value::as_array),
        );
        let private = ip
            .and_then(|c| c.pointer("/properties/privateIPAddress"))
            .cloned();
        let public = match ip
            .and_then(|c| c.pointer("/properties/publicIPAddress/id"))
            .and_then(Value::as_str)
        {
            Some(id) => self
                .resource(p, id, "Microsoft.Network/publicIPAddresses")
                .await?
                .and_then(|r| r.pointer("/properties/ipAddress").cloned()),
            None => None,
        };
        Ok((private, public))
    }

    /// One resource by the id an answer gave, when it is a `resource` of the subscription
    /// (an id is a path: it is checked before it becomes one); `None` when it is gone.
    async fn resource(
        &self,
        p: &Principal<'_>,
        id: &str,
        resource: &str,
    ) -> Result<Option<Value>, ProviderError> {
        if !resource_id_of(id, p.subscription, resource) {
            return Ok(None);
        }
        let url = format!("{}{id}?api-version={NETWORK_API}", self.base());
        match self.get(p, &url).await {
            Ok(v) => Ok(Some(v)),
            Err(ProviderError::Unsupported(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The element marked `properties.primary`, else the first.
fn primary(list: Option<&Vec<Value>>) -> Option<&Value> {
    let list = list?;
    list.iter()
        .find(|n| n.pointer("/properties/primary") == Some(&Value::Bool(true)))
        .or_else(|| list.first())
}

/// Whether `id` is `/subscriptions/<sub>/resourceGroups/<rg>/providers/<resource>/<name>`
/// with plain segments (nothing that could change the path or the query once in a URL).
fn resource_id_of(id: &str, subscription: &str, resource: &str) -> bool {
    let segments: Vec<&str> = id.split('/').collect();
    let Some((&[empty, subs, sub, groups, _, providers], rest)) = segments.split_first_chunk()
    else {
        return false;
    };
    let kind: Vec<&str> = resource.split('/').collect();
    empty.is_empty()
        && subs.eq_ignore_ascii_case("subscriptions")
        && sub.eq_ignore_ascii_case(subscription)
        && groups.eq_ignore_ascii_case("resourceGroups")
        && providers.eq_ignore_ascii_case("providers")
        && rest.len() == 3
        && rest[0].eq_ignore_ascii_case(kind[0])
        && rest[1].eq_ignore_ascii_case(kind[1])
        && segments.iter().skip(1).all(|s| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.()".contains(&b))
        })
}

impl Provider for AzureProvider {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn kind(&self, task: &str) -> Result<Kind, ProviderError> {
        let t = Self::task(task)?;
        Ok(Kind {
            task: t.task,
            collection: t.collection,
            global: true,
            item_regions: true,
        })
    }

    fn page<'a>(&'a self, req: PageRequest<'a>) -> ProviderFuture<'a, Page> {
        Box::pin(async move {
            let p = Principal::from(req.credentials)?;
            let task = Self::task(req.kind.task)?;
            let call = task.calls.get(req.command).ok_or_else(|| {
                ProviderError::Invalid(format!("{} has no call {}", task.task, req.command))
            })?;
            self.list_page(&p, task, call, req.token)
                .await
                .map_err(|e| e.within(&format!("GET {}", call.resource)))
        })
    }
}

/// Why a GET gave no answer: ARM refused the token (a new login may help), or anything else.
enum Refused {
    Token(ProviderError),
    Other(ProviderError),
}

impl From<ProviderError> for Refused {
    fn from(e: ProviderError) -> Self {
        Refused::Other(e)
    }
}

/// Sends one ARM request: the JSON of a 2xx answer, else the error classified.
async fn send(req: reqwest::RequestBuilder) -> Result<Value, Refused> {
    let answer = fetch("Azure", req).await?;
    let (status, retry_after) = (answer.status, answer.retry_after);
    let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    if status.is_success() {
        return match body {
            Value::Object(_) => Ok(body),
            _ => Err(ProviderError::Invalid("Azure answer is not a JSON object".into()).into()),
        };
    }
    // ARM's errors: {"error": {"code": "AuthorizationFailed", "message": "..."}}.
    let code = body
        .pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("");
    let message: String = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    let what = if code.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("{code} (HTTP {}): {message}", status.as_u16())
    };
    Err(match status.as_u16() {
        401 => Refused::Token(ProviderError::Auth(format!(
            "Azure refused the service principal's token: {what}"
        ))),
        403 => Refused::Other(ProviderError::Auth(format!(
            "Azure refused the service principal: {what}"
        ))),
        404 if code.is_empty() || code == "ResourceNotFound" || code == "NotFound" => {
            Refused::Other(ProviderError::Unsupported(format!(
                "the endpoint does not answer this call: {what}"
            )))
        }
        429 | 500.. => Refused::Other(ProviderError::Transient {
            message: format!("Azure is throttling or unavailable: {what}"),
            retry_after,
        }),
        _ => Refused::Other(ProviderError::Api(format!("Azure answered {what}"))),
    })
}

/// Maestro's `unique_id` of an Azure resource: the SHA-1 (hex) of
/// `<subscription>_<resource group>_<name>` read from its id, so that the id of a disk seen
/// from a machine and from the disk list agree.
pub fn unique_id(id: &str) -> Option<String> {
    // /subscriptions/<sub>/resourceGroups/<group>/providers/<namespace>/<type>/<name...>, the
    // fixed words in any case (ARM's ids vary), the values as given.
    let parts: Vec<&str> = id.split('/').collect();
    let [empty, subs, sub, groups, group, providers, _, _, name @ ..] = parts.as_slice() else {
        return None;
    };
    let ok = empty.is_empty()
        && subs.eq_ignore_ascii_case("subscriptions")
        && groups.eq_ignore_ascii_case("resourceGroups")
        && providers.eq_ignore_ascii_case("providers")
        && !sub.is_empty()
        && !group.is_empty()
        && !name.is_empty()
        && !name[0].is_empty();
    ok.then(|| hex::encode(Sha1::digest(format!("{sub}_{group}_{}", name.join("/")))))
}

/// One answer item as Maestro stores it, or `None` without an id.
fn item(call: &Call, raw: &Value) -> Option<Value> {
    let id = unique_id(raw.get("id")?.as_str()?)?;
    let mut doc = (call.rules)(raw);
    doc.insert("unique_id".into(), Value::String(id));
    put(&mut doc, "name", raw.get("name"));
    put(&mut doc, "environment", raw.pointer("/tags/environment"));
    doc.insert("tags".into(), key_values(raw.get("tags")));
    doc.insert("datacenters".into(), Value::Object(datacenter(raw)));
    doc.entry("active").or_insert(json!(true));
    Some(Value::Object(doc))
}

/// Maestro's datacenter of an Azure item: location, zones, the resource type, and a machine's
/// size, id and licence.
fn datacenter(raw: &Value) -> Map<String, Value> {
    let mut dc = Map::new();
    put(&mut dc, "region", raw.get("location"));
    put(&mut dc, "zones", raw.get("zones"));
    put(
        &mut dc,
        "instance",
        raw.pointer("/properties/hardwareProfile/vmSize"),
    );
    dc.insert("type".into(), json!("Virtual"));
    put(&mut dc, "resource", raw.get("type"));
    put(&mut dc, "instance_id", raw.pointer("/properties/vmId"));
    put(
        &mut dc,
        "license_type",
        raw.pointer("/properties/licenseType"),
    );
    dc
}

/// `properties.<from>` under `to` for each pair.
fn properties(doc: &mut Map<String, Value>, raw: &Value, pairs: &[(&str, &str)]) {
    if let Some(props) = raw.get("properties") {
        copy(doc, props, pairs);
    }
}

/// Maestro's status words: `Active` once provisioned, else `Avaliable` (its spelling, kept
/// so stored items compare as before).
fn status(doc: &mut Map<String, Value>, raw: &Value) {
    let done = raw.pointer("/properties/provisioningState") == Some(&json!("Succeeded"));
    doc.insert(
        "status".into(),
        json!(if done { "Active" } else { "Avaliable" }),
    );
}

fn machine(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    put(&mut d, "role", raw.pointer("/tags/role"));
    put(
        &mut d,
        "network_interface",
        raw.pointer("/properties/networkProfile/networkInterfaces"),
    );
    let profile = raw.pointer("/properties/storageProfile");
    let mut os = Map::new();
    if let Some(sp) = profile {
        put(&mut os, "base", sp.pointer("/osDisk/osType"));
        put(&mut os, "dist", sp.pointer("/imageReference/offer"));
        put(&mut os, "version", sp.pointer("/imageReference/sku"));
    }
    if !os.is_empty() {
        d.insert("os".into(), Value::Object(os));
    }
    let data_disks = profile
        .and_then(|sp| sp.get("dataDisks"))
        .and_then(Value::as_array);
    let storage: Vec<Value> = data_disks
        .into_iter()
        .flatten()
        .chain(profile.and_then(|sp| sp.get("osDisk")))
        .map(storage_disk)
        .collect();
    if !storage.is_empty() {
        d.insert("storage".into(), Value::Array(storage));
    }
    status(&mut d, raw);
    d
}

/// A machine's disk in its `storage`, with the disk's own `unique_id`.
fn storage_disk(disk: &Value) -> Value {
    let mut s = Map::new();
    copy(
        &mut s,
        disk,
        &[
            ("size", "diskSizeGB"),
            ("name", "name"),
            ("write_accelerator_enabled", "writeAcceleratorEnabled"),
            ("vhd", "vhd"),
            ("diff_disk_settings", "diffDiskSettings"),
            ("create_option", "createOption"),
        ],
    );
    put(
        &mut s,
        "storage_account_type",
        disk.pointer("/managedDisk/storageAccountType"),
    );
    if let Some(id) = disk
        .pointer("/managedDisk/id")
        .and_then(Value::as_str)
        .and_then(unique_id)
    {
        s.insert("unique_id".into(), json!(id));
    }
    s.insert("status".into(), json!("Active"));
    Value::Object(s)
}

/// Disks and snapshots share these.
fn disk_like(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    properties(
        &mut d,
        raw,
        &[
            ("created_at", "timeCreated"),
            ("updated_at", "timeCreated"),
            ("size", "diskSizeGB"),
            ("disk_iops_read_write", "diskIOPSReadWrite"),
            ("disk_mbps_read_write", "diskMBpsReadWrite"),
            ("os_type", "osType"),
        ],
    );
    copy(
        &mut d,
        raw,
        &[("type", "type"), ("managed_by", "managedBy")],
    );
    status(&mut d, raw);
    d
}

fn disk(raw: &Value) -> Map<String, Value> {
    disk_like(raw)
}

fn snapshot(raw: &Value) -> Map<String, Value> {
    let mut d = disk_like(raw);
    // The disk it was taken of, by that disk's unique_id.
    if let Some(id) = raw
        .pointer("/properties/creationData/sourceResourceId")
        .and_then(Value::as_str)
        .and_then(unique_id)
    {
        d.insert("volume_id".into(), json!(id));
    }
    d
}

fn image(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(&mut d, raw, &[("type", "type")]);
    status(&mut d, raw);
    d
}

fn network_interface(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    properties(
        &mut d,
        raw,
        &[
            ("ip_configurations", "ipConfigurations"),
            ("mac_address", "macAddress"),
            ("resource_guid", "resourceGuid"),
            ("enable_ip_forwarding", "enableIPForwarding"),
            ("dns_settings", "dnsSettings"),
        ],
    );
    copy(&mut d, raw, &[("type", "type")]);
    d
}

fn public_ip(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    properties(
        &mut d,
        raw,
        &[
            ("ip_configuration", "ipConfiguration"),
            ("ip_address", "ipAddress"),
            ("public_ip_address_version", "publicIPAddressVersion"),
            ("ddos_settings", "ddosSettings"),
            ("dns_settings", "dnsSettings"),
        ],
    );
    copy(&mut d, raw, &[("type", "type")]);
    d
}

fn route_table(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    properties(
        &mut d,
        raw,
        &[
            ("subnets", "subnets"),
            ("routes", "routes"),
            (
                "disable_bgp_route_propagation",
                "disableBgpRoutePropagation",
            ),
        ],
    );
    d
}

fn virtual_network(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    properties(
        &mut d,
        raw,
        &[
            ("subnets", "subnets"),
            ("address_space", "addressSpace"),
            ("virtual_network_peerings", "virtualNetworkPeerings"),
            ("enable_vm_protection", "enableVmProtection"),
            ("enable_ddos_protection", "enableDdosProtection"),
            ("dhcp_options", "dhcpOptions"),
            ("ddos_protection_plan", "ddosProtectionPlan"),
        ],
    );
    copy(&mut d, raw, &[("type", "type")]);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-0000-0000-0000-000000000001";

    fn vm() -> Value {
        json!({
            "id": format!("/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-1"),
            "name": "web-1", "type": "Microsoft.Compute/virtualMachines", "location": "eastus",
            "zones": ["1"], "tags": {"environment": "production", "role": "web"},
            "properties": {
                "vmId": "0f47b100-583c-48e3-a4c0-aefc2c9bbcc1", "provisioningState": "Succeeded",
                "hardwareProfile": {"vmSize": "Standard_B1s"},
                "storageProfile": {
                    "imageReference": {"publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS"},
                    "osDisk": {"osType": "Linux", "name": "web-1-os", "createOption": "FromImage",
                               "diskSizeGB": 30, "managedDisk": {"storageAccountType": "Standard_LRS",
                               "id": format!("/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/disks/web-1-os")}},
                    "dataDisks": []},
                "networkProfile": {"networkInterfaces": [
                    {"id": format!("/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Network/networkInterfaces/web-1-nic"),
                     "properties": {"primary": true}}]}}
        })
    }

    #[test]
    fn a_machine_as_maestro_stored_it() {
        let d = item(&TASKS[0].calls[0], &vm()).expect("item");
        let disk_id = unique_id(&format!(
            "/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/disks/web-1-os"
        ))
        .expect("disk id");
        assert_eq!(
            d["unique_id"],
            hex::encode(Sha1::digest(format!("{SUB}_rg-web_web-1")))
        );
        assert_eq!(d["name"], "web-1");
        assert_eq!(d["environment"], "production");
        assert_eq!(d["role"], "web");
        assert_eq!(d["status"], "Active");
        assert_eq!(d["active"], true);
        assert_eq!(
            d["os"],
            json!({"base": "Linux", "dist": "UbuntuServer", "version": "18.04-LTS"})
        );
        assert_eq!(d["storage"][0]["unique_id"], json!(disk_id));
        assert_eq!(d["storage"][0]["create_option"], "FromImage");
        assert_eq!(
            d["tags"],
            json!([{"key": "environment", "value": "production"}, {"key": "role", "value": "web"}])
        );
        let dc = &d["datacenters"];
        assert_eq!(
            (&dc["region"], &dc["instance"], &dc["type"]),
            (&json!("eastus"), &json!("Standard_B1s"), &json!("Virtual"))
        );
        assert_eq!(dc["resource"], "Microsoft.Compute/virtualMachines");
        assert!(d.get("ipv4_private").is_none(), "set by the lookups");
        let mut creating = vm();
        creating["properties"]["provisioningState"] = json!("Creating");
        assert_eq!(
            item(&TASKS[0].calls[0], &creating).expect("item")["status"],
            "Avaliable"
        );
        assert!(item(&TASKS[0].calls[0], &json!({"name": "no id"})).is_none());
    }

    #[test]
    fn unique_ids_read_the_fixed_words_in_any_case() {
        let exact =
            format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/d1");
        let lower =
            format!("/subscriptions/{SUB}/resourcegroups/rg/providers/microsoft.compute/disks/d1");
        assert_eq!(unique_id(&exact), unique_id(&lower));
        assert_eq!(
            unique_id(&exact),
            Some(hex::encode(Sha1::digest(format!("{SUB}_rg_d1"))))
        );
        assert_eq!(
            unique_id("/subscriptions//resourceGroups/rg/providers/a/b/c"),
            None
        );
        assert_eq!(
            unique_id("/subscriptions/s/resourceGroups/rg/providers/a/b"),
            None
        );
    }

    #[test]
    fn ids_are_checked_before_they_become_paths() {
        let nic = "Microsoft.Network/networkInterfaces";
        let ok = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/{nic}/web-1-nic");
        assert!(resource_id_of(&ok, SUB, nic));
        assert!(
            resource_id_of(&ok.to_uppercase(), SUB, nic),
            "ARM ids vary in case"
        );
        for bad in [
            format!("/subscriptions/{SUB}/resourceGroups/rg/providers/{nic}/../../x"),
            format!("/subscriptions/{SUB}/resourceGroups/rg/providers/{nic}/a?b=c"),
            format!("/subscriptions/other/resourceGroups/rg/providers/{nic}/n"),
            format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/d"),
            format!("//evil.example/subscriptions/{SUB}/resourceGroups/rg/providers/{nic}/n"),
            format!("/subscriptions/{SUB}/resourceGroups/rg/providers/{nic}/n/extra"),
        ] {
            assert!(!resource_id_of(&bad, SUB, nic), "{bad}");
        }
        assert!(is_guid(SUB));
        assert!(!is_guid("../../x") && !is_guid("0000000-0000-0000-0000-000000000001"));
    }

    #[test]
    fn next_links_stay_on_arm_and_in_the_subscription() {
        let provider = AzureProvider::new(
            reqwest::Client::new(),
            Url::parse("http://127.0.0.1:9000").ok(),
            None,
        );
        let creds = Credentials::from_claims(
            json!({"client": "c", "secret": "s", "tenant": "contoso.onmicrosoft.com", "sub": SUB})
                .as_object()
                .cloned()
                .expect("claims"),
        );
        let p = Principal::from(&creds).expect("principal");
        let call = &TASKS[1].calls[0];
        assert_eq!(
            provider.page_url(&p, call, None).expect("first"),
            format!(
                "http://127.0.0.1:9000/subscriptions/{SUB}/providers/Microsoft.Compute/disks?api-version=2019-11-01"
            )
        );
        let next = format!(
            "http://127.0.0.1:9000/subscriptions/{SUB}/providers/Microsoft.Compute/disks?api-version=2019-11-01&$skiptoken=2"
        );
        assert_eq!(
            provider.page_url(&p, call, Some(&next)).expect("next"),
            next
        );
        for away in [
            format!("http://169.254.169.254/subscriptions/{SUB}/x"),
            format!("http://127.0.0.1:9001/subscriptions/{SUB}/x"),
            "http://127.0.0.1:9000/subscriptions/other/x".to_owned(),
            "not a url".to_owned(),
        ] {
            assert!(provider.page_url(&p, call, Some(&away)).is_err(), "{away}");
        }
        let bad_tenant = Credentials::from_claims(
            json!({"client": "c", "secret": "s", "tenant": "a/b", "sub": SUB})
                .as_object()
                .cloned()
                .expect("claims"),
        );
        assert!(matches!(
            Principal::from(&bad_tenant),
            Err(ProviderError::Auth(_))
        ));
    }

    #[test]
    fn the_tasks_are_the_contracts() {
        let p = maestro_contract::providers::provider("Azure").expect("azure");
        for (spec, here) in p.tasks.iter().zip(TASKS.iter()) {
            assert_eq!(spec.name, here.task);
            assert_eq!(spec.commands.len(), here.calls.len(), "{}", here.task);
            assert!(spec.commands.iter().all(|c| c.entity == here.collection));
        }
        assert_eq!(p.tasks.len(), TASKS.len());
    }

    #[test]
    fn snapshots_name_their_disk_and_networks_their_parts() {
        let snap = json!({
            "id": format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/snapshots/s1"),
            "name": "s1", "type": "Microsoft.Compute/snapshots", "location": "westeurope",
            "properties": {"timeCreated": "2020-01-01T00:00:00Z", "diskSizeGB": 30,
                           "provisioningState": "Succeeded",
                           "creationData": {"createOption": "Copy", "sourceResourceId":
                               format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/d1")}}});
        let d = item(&TASKS[2].calls[0], &snap).expect("item");
        assert_eq!(
            d["volume_id"],
            hex::encode(Sha1::digest(format!("{SUB}_rg_d1")))
        );
        assert_eq!(
            (&d["size"], &d["created_at"]),
            (&json!(30), &json!("2020-01-01T00:00:00Z"))
        );
        let vnet = json!({
            "id": format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v"),
            "name": "v", "location": "eastus",
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                           "enableDdosProtection": false, "subnets": []}});
        let d = item(&TASKS[4].calls[3], &vnet).expect("item");
        assert_eq!(
            d["address_space"],
            json!({"addressPrefixes": ["10.0.0.0/16"]})
        );
        assert!(d.get("enable_ddos_protection").is_none() && d.get("subnets").is_none());
    }
}
