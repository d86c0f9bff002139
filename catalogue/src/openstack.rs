//! The OpenStack discovery provider: Maestro's eight OpenStack tasks over the OpenStack REST
//! APIs. The connection logs in to its Keystone (`url`) with Keystone v3 password
//! authentication, scoped to its `project`, as the user `username` of domain `user_domain_id`;
//! the token's service catalogue gives each region's public endpoints of compute (Nova),
//! block storage (Cinder), network (Neutron) and load balancing (Octavia). Each list is read
//! with `limit`/`marker` paging and translated as Maestro's OpenStack rules wrote it
//! (docs/catalogue/discovery.md has the shapes); the common fields are added by
//! [`crate::discovery`].
//!
//! The Keystone URL and every endpoint of the catalogue come from the connection, which a user
//! typed: they are reached through the worker's guarded client (public addresses and the
//! operator's `MAESTRO_EGRESS_ALLOW` only, [`crate::egress`]), never the one for configured
//! services. A server's cpu and memory come from its flavor, read from Nova when the server
//! names only the flavor's id.
//!
//! Lifecycle: one [`OpenStackProvider`] per worker, holding the guarded HTTP client and the
//! tokens and catalogues of the logins it made ([`TokenCache`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use reqwest::Url;
use serde_json::{Map, Value, json};

use crate::discovery::http::{Answer, fetch, retried};
use crate::discovery::rules::{capitalized, copy, key_values, put, truthy};
use crate::discovery::tokens::{TokenCache, login_key};
use crate::discovery::{Kind, Page, PageRequest, Provider, ProviderError, ProviderFuture};
use crate::egress::EgressPolicy;

/// Largest `limit` asked for (Nova's and Neutron's default maximum).
pub const PAGE_SIZE_MAX: usize = 1000;
/// Flavors looked up at once for one page of servers.
pub const LOOKUPS_IN_FLIGHT: usize = 8;
/// How long a token is kept when Keystone does not say when it expires.
const TOKEN_LIFE_DEFAULT: Duration = Duration::from_secs(3600);
/// Longest a token is kept, whatever Keystone says.
const TOKEN_LIFE_MAX: Duration = Duration::from_secs(12 * 3600);

/// The OpenStack services Maestro's tasks read, by their catalogue types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Compute,
    BlockStorage,
    Network,
    LoadBalancer,
}

impl Service {
    /// The catalogue types that name the service, preferred first.
    fn types(self) -> &'static [&'static str] {
        match self {
            Service::Compute => &["compute"],
            Service::BlockStorage => &["block-storage", "volumev3", "volumev2", "volume"],
            Service::Network => &["network"],
            Service::LoadBalancer => &["load-balancer"],
        }
    }

    /// The API version the path is under when the catalogue's URL does not include it
    /// (Neutron's and Octavia's endpoints are usually unversioned; Nova's and Cinder's are).
    fn version(self) -> Option<&'static [&'static str]> {
        match self {
            Service::Network => Some(&["v2.0"]),
            Service::LoadBalancer => Some(&["v2", "v2.0"]),
            Service::Compute | Service::BlockStorage => None,
        }
    }
}

/// One list call: service, path under its endpoint, the key of the list in the answer, and the
/// rules of its items.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub service: Service,
    pub path: &'static str,
    pub list: &'static str,
    rules: fn(&Value) -> Map<String, Value>,
}

/// One of Maestro's OpenStack tasks and its calls, in the contract's order.
#[derive(Debug, Clone, Copy)]
pub struct Task {
    pub task: &'static str,
    pub collection: &'static str,
    pub calls: &'static [Call],
}

const fn call(
    service: Service,
    path: &'static str,
    list: &'static str,
    rules: fn(&Value) -> Map<String, Value>,
) -> Call {
    Call {
        service,
        path,
        list,
        rules,
    }
}

/// The eight tasks (`maestro_contract::providers`).
pub const TASKS: [Task; 8] = [
    Task {
        task: "server-list",
        collection: "servers",
        calls: &[call(Service::Compute, "servers/detail", "servers", server)],
    },
    Task {
        task: "loadbalance-list",
        collection: "applications",
        calls: &[call(
            Service::LoadBalancer,
            "lbaas/loadbalancers",
            "loadbalancers",
            load_balancer,
        )],
    },
    Task {
        task: "volumes-list",
        collection: "volumes",
        calls: &[call(
            Service::BlockStorage,
            "volumes/detail",
            "volumes",
            volume,
        )],
    },
    Task {
        task: "snapshot-list",
        collection: "snapshots",
        calls: &[call(
            Service::BlockStorage,
            "snapshots/detail",
            "snapshots",
            snapshot,
        )],
    },
    Task {
        task: "images-list",
        collection: "images",
        calls: &[call(Service::Compute, "images/detail", "images", image)],
    },
    Task {
        task: "security-list",
        collection: "networks",
        calls: &[call(
            Service::Network,
            "security-groups",
            "security_groups",
            security_group,
        )],
    },
    Task {
        task: "flavor-list",
        collection: "flavors",
        calls: &[call(Service::Compute, "flavors/detail", "flavors", flavor)],
    },
    Task {
        task: "network-list",
        collection: "networks",
        calls: &[
            call(Service::Network, "networks", "networks", network),
            call(Service::Network, "subnets", "subnets", subnet),
            call(Service::Network, "ports", "ports", port),
            call(Service::Network, "routers", "routers", router),
        ],
    },
];

/// A login: its token and the public endpoints of its catalogue.
#[derive(Clone)]
struct Session {
    token: String,
    endpoints: Arc<Vec<Endpoint>>,
}

/// A public endpoint of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    service_type: String,
    region: String,
    url: String,
}

/// What a login needs, from the connection's credentials and settings.
struct Login<'a> {
    /// Keystone's v3 tokens URL.
    tokens_url: Url,
    username: &'a str,
    password: &'a str,
    project: &'a str,
    user_domain: &'a str,
}

/// OpenStack over its REST APIs.
pub struct OpenStackProvider {
    /// The guarded client: the connection's URLs are a user's.
    http: reqwest::Client,
    egress: Arc<EgressPolicy>,
    page_size: usize,
    sessions: TokenCache<Session>,
}

impl OpenStackProvider {
    /// A provider using the guarded client `http` (and the `egress` policy it enforces, to
    /// refuse an address before any request), asking `page_size` items per page.
    pub fn new(http: reqwest::Client, egress: Arc<EgressPolicy>, page_size: usize) -> Self {
        Self {
            http,
            egress,
            page_size: page_size.clamp(1, PAGE_SIZE_MAX),
            sessions: TokenCache::default(),
        }
    }

    fn task(name: &str) -> Result<&'static Task, ProviderError> {
        TASKS
            .iter()
            .find(|t| t.task == name)
            .ok_or_else(|| ProviderError::UnknownTask {
                provider: "openstack".into(),
                task: name.into(),
            })
    }

    /// `url` if the egress policy lets a request go there.
    fn allowed(&self, url: Url, what: &str) -> Result<Url, ProviderError> {
        self.egress
            .check_url(&url)
            .map_err(|e| ProviderError::Auth(format!("{what}: {e}")))?;
        Ok(url)
    }

    fn login<'a>(&self, req: &PageRequest<'a>) -> Result<Login<'a>, ProviderError> {
        let setting = |k: &str| req.settings.get(k).and_then(Value::as_str);
        let url = setting("url").ok_or_else(|| {
            ProviderError::Auth("the connection has no Keystone URL (field url)".into())
        })?;
        let mut tokens_url = Url::parse(url).map_err(|e| {
            ProviderError::Auth(format!(
                "the connection's Keystone URL (url) is not a URL: {e}"
            ))
        })?;
        if !matches!(tokens_url.scheme(), "http" | "https") || tokens_url.host_str().is_none() {
            return Err(ProviderError::Auth(
                "the connection's Keystone URL (url) is not an http(s) URL with a host".into(),
            ));
        }
        // Keystone v3 only (v2.0 left OpenStack in 2018): `.../v2.0` and `.../v3` name the same
        // Keystone.
        let base = tokens_url.path().trim_end_matches('/');
        let base = base
            .strip_suffix("/v2.0")
            .or_else(|| base.strip_suffix("/v3"))
            .unwrap_or(base)
            .to_owned();
        tokens_url.set_path(&format!("{base}/v3/auth/tokens"));
        tokens_url.set_query(None);
        tokens_url.set_fragment(None);
        let claim = |names: &[&str], what: &str| {
            req.credentials.string(names).ok_or_else(|| {
                ProviderError::Auth(format!(
                    "the connection's credentials have no OpenStack {what} (claim {})",
                    names[0]
                ))
            })
        };
        Ok(Login {
            tokens_url: self.allowed(tokens_url, "the connection's Keystone URL")?,
            username: claim(&["username", "user"], "user name")?,
            password: claim(&["password"], "password")?,
            project: setting("project").ok_or_else(|| {
                ProviderError::Auth(
                    "the connection has no OpenStack project id (field project)".into(),
                )
            })?,
            user_domain: setting("user_domain_id").unwrap_or("default"),
        })
    }

    /// A session of `login`: the kept one, else a new Keystone login.
    async fn session(&self, login: &Login<'_>, fresh: bool) -> Result<Session, ProviderError> {
        let key = login_key(&[
            login.tokens_url.as_str(),
            login.username,
            login.user_domain,
            login.project,
            login.password,
        ]);
        if fresh {
            self.sessions.forget(&key);
        } else if let Some(s) = self.sessions.get(&key) {
            return Ok(s);
        }
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": login.username, "domain": {"id": login.user_domain},
                "password": login.password}}},
            "scope": {"project": {"id": login.project}}}});
        let answer = retried(|| async {
            let a = fetch(
                "Keystone",
                self.http.post(login.tokens_url.clone()).json(&body),
            )
            .await?;
            classify("Keystone", &a).map(|()| a)
        })
        .await
        .map_err(|e| match e {
            ProviderError::Auth(m) => ProviderError::Auth(format!(
                "Keystone refused the connection's credentials: {m}"
            )),
            other => other.within("POST /v3/auth/tokens"),
        })?;
        let token = answer
            .headers
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ProviderError::Invalid("Keystone's answer has no X-Subject-Token".into())
            })?
            .to_owned();
        let doc: Value = serde_json::from_str(&answer.body)
            .map_err(|e| ProviderError::Invalid(format!("Keystone's answer is not JSON: {e}")))?;
        let life = doc
            .pointer("/token/expires_at")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .and_then(|t| {
                (t.with_timezone(&chrono::Utc) - chrono::Utc::now())
                    .to_std()
                    .ok()
            })
            .unwrap_or(TOKEN_LIFE_DEFAULT)
            .min(TOKEN_LIFE_MAX);
        let session = Session {
            token,
            endpoints: Arc::new(catalogue(&doc)),
        };
        self.sessions.put(key, session.clone(), life);
        Ok(session)
    }

    /// The public endpoint of `service` in `region`, checked against the egress policy, or
    /// why there is none (the call is then skipped: the cloud does not run that service).
    fn endpoint(
        &self,
        session: &Session,
        service: Service,
        region: &str,
    ) -> Result<Url, ProviderError> {
        let found = service.types().iter().find_map(|t| {
            session
                .endpoints
                .iter()
                .find(|e| e.service_type == *t && e.region == region)
        });
        let Some(e) = found else {
            return Err(ProviderError::Unsupported(format!(
                "the catalogue has no public {} endpoint in region {region:?}",
                service.types()[0]
            )));
        };
        let mut url = Url::parse(&e.url).map_err(|err| {
            ProviderError::Invalid(format!("the catalogue's {} URL: {err}", e.service_type))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ProviderError::Invalid(format!(
                "the catalogue's {} URL is not an http(s) URL with a host",
                e.service_type
            )));
        }
        if let Some(versions) = service.version() {
            let last = url
                .path_segments()
                .and_then(|mut s| s.rfind(|s| !s.is_empty()))
                .unwrap_or("")
                .to_owned();
            if !versions.contains(&last.as_str()) {
                let path = format!("{}/{}", url.path().trim_end_matches('/'), versions[0]);
                url.set_path(&path);
            }
        }
        self.allowed(url, "the catalogue's endpoint")
    }

    /// GETs `url` with the session's token; a token Keystone no longer honours is replaced
    /// once by a new login.
    async fn get(
        &self,
        login: &Login<'_>,
        service: Service,
        region: &str,
        build: impl Fn(Url) -> Url,
    ) -> Result<Value, ProviderError> {
        let mut fresh = false;
        loop {
            let session = self.session(login, fresh).await?;
            let url = build(self.endpoint(&session, service, region)?);
            let answer = retried(|| async {
                let a = fetch(
                    "OpenStack",
                    self.http
                        .get(url.clone())
                        .header("X-Auth-Token", &session.token),
                )
                .await?;
                match classify("OpenStack", &a) {
                    Ok(()) => Ok(Ok(a)),
                    Err(e @ ProviderError::Auth(_)) if a.status.as_u16() == 401 => Ok(Err(e)),
                    Err(e) => Err(e),
                }
            })
            .await?;
            match answer {
                Ok(a) => {
                    return serde_json::from_str(&a.body).map_err(|e| {
                        ProviderError::Invalid(format!("OpenStack answer is not JSON: {e}"))
                    });
                }
                Err(_) if !fresh => fresh = true,
                Err(e) => return Err(e),
            }
        }
    }

    async fn list_page(
        &self,
        req: &PageRequest<'_>,
        task: &Task,
        call: &Call,
    ) -> Result<Page, ProviderError> {
        let login = self.login(req)?;
        let limit = self.page_size.to_string();
        let answer = self
            .get(&login, call.service, req.region, |mut url| {
                let path = format!("{}/{}", url.path().trim_end_matches('/'), call.path);
                url.set_path(&path);
                url.set_query(None);
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("limit", &limit);
                    if let Some(marker) = req.token {
                        q.append_pair("marker", marker);
                    }
                }
                url
            })
            .await?;
        let items = match answer.get(call.list) {
            Some(Value::Array(items)) => items.as_slice(),
            Some(Value::Null) | None => &[],
            Some(_) => {
                return Err(ProviderError::Invalid(format!(
                    "OpenStack answer's {:?} is not a list",
                    call.list
                )));
            }
        };
        // Nova, Cinder, Neutron and Octavia link the next page as `<list>_links` rel=next; an
        // answer without links is followed while pages come back full.
        let links = answer.get(format!("{}_links", call.list).as_str());
        let linked_next = links.and_then(Value::as_array).is_some_and(|l| {
            l.iter()
                .any(|link| link.get("rel").and_then(Value::as_str) == Some("next"))
        });
        let full = items.len() >= self.page_size;
        let next = (linked_next || (links.is_none() && full))
            .then(|| items.last().and_then(id_of))
            .flatten();
        let mut out: Vec<Value> = items.iter().filter_map(|i| item(call, i)).collect();
        if task.task == "server-list" {
            self.complete_flavors(&login, req.region, items, &mut out)
                .await?;
        }
        Ok(Page {
            items: out,
            next,
            partial: false,
        })
    }

    /// cpu and memory of the servers whose answer names only their flavor's id, from Nova's
    /// flavors (each looked up once per page; one gone since is left out).
    async fn complete_flavors(
        &self,
        login: &Login<'_>,
        region: &str,
        raw: &[Value],
        out: &mut [Value],
    ) -> Result<(), ProviderError> {
        let mut wanted: Vec<String> = raw
            .iter()
            .filter(|s| s.pointer("/flavor/vcpus").is_none())
            .filter_map(|s| s.pointer("/flavor/id").and_then(id_text))
            .collect();
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(());
        }
        let lookups: Vec<_> = wanted
            .iter()
            .map(|id| async move {
                let found = self
                    .get(login, Service::Compute, region, |mut url| {
                        if let Ok(mut segments) = url.path_segments_mut() {
                            segments.pop_if_empty().extend(["flavors", id.as_str()]);
                        }
                        url.set_query(None);
                        url
                    })
                    .await;
                match found {
                    Ok(v) => Ok(Some((
                        id.clone(),
                        v.get("flavor").cloned().unwrap_or_default(),
                    ))),
                    Err(ProviderError::Unsupported(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .collect();
        let found: Vec<_> = stream::iter(lookups)
            .buffered(LOOKUPS_IN_FLIGHT)
            .collect()
            .await;
        let mut flavors = HashMap::new();
        for f in found {
            if let Some((id, flavor)) = f? {
                flavors.insert(id, flavor);
            }
        }
        for (doc, raw) in out
            .iter_mut()
            .zip(raw.iter().filter(|r| id_of(r).is_some()))
        {
            let Some(flavor) = raw
                .pointer("/flavor/id")
                .and_then(id_text)
                .and_then(|id| flavors.get(&id))
            else {
                continue;
            };
            if let Value::Object(m) = doc {
                size(m, flavor);
            }
        }
        Ok(())
    }
}

impl Provider for OpenStackProvider {
    fn name(&self) -> &'static str {
        "openstack"
    }

    fn kind(&self, task: &str) -> Result<Kind, ProviderError> {
        let t = Self::task(task)?;
        Ok(Kind {
            task: t.task,
            collection: t.collection,
            global: false,
            item_regions: false,
        })
    }

    fn page<'a>(&'a self, req: PageRequest<'a>) -> ProviderFuture<'a, Page> {
        Box::pin(async move {
            let task = Self::task(req.kind.task)?;
            let call = task.calls.get(req.command).ok_or_else(|| {
                ProviderError::Invalid(format!("{} has no call {}", task.task, req.command))
            })?;
            self.list_page(&req, task, call)
                .await
                .map_err(|e| e.within(&format!("GET {}", call.path)))
        })
    }
}

/// The error of a non-2xx answer of `who` (OpenStack's errors carry `message` in an object
/// named for the error, `{"itemNotFound": {"message": ...}}`, or under `error`/`NeutronError`).
fn classify(who: &str, a: &Answer) -> Result<(), ProviderError> {
    if a.status.is_success() {
        return Ok(());
    }
    let body: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
    let message: String = body
        .as_object()
        .and_then(|o| o.values().find_map(|v| v.get("message")))
        .or_else(|| body.get("message"))
        .or_else(|| body.get("faultstring"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    let what = if message.is_empty() {
        format!("HTTP {}", a.status.as_u16())
    } else {
        format!("HTTP {}: {message}", a.status.as_u16())
    };
    Err(match a.status.as_u16() {
        401 | 403 => ProviderError::Auth(what),
        404 => {
            ProviderError::Unsupported(format!("the endpoint does not answer this call: {what}"))
        }
        429 | 500.. => ProviderError::Transient {
            message: format!("{who} is throttling or unavailable: {what}"),
            retry_after: a.retry_after,
        },
        _ => ProviderError::Api(format!("{who} answered {what}")),
    })
}

/// Most catalogue endpoints kept of one login, and the longest URL kept: a Keystone's
/// catalogue is the connection's, so what is kept of it is bounded.
pub const ENDPOINTS_MAX: usize = 256;
pub const ENDPOINT_URL_MAX: usize = 2048;

/// The public endpoints of a Keystone v3 token's catalogue, of the services the tasks read.
fn catalogue(doc: &Value) -> Vec<Endpoint> {
    let used = [
        Service::Compute,
        Service::BlockStorage,
        Service::Network,
        Service::LoadBalancer,
    ];
    let services = doc.pointer("/token/catalog").and_then(Value::as_array);
    let mut out = Vec::new();
    for s in services.into_iter().flatten() {
        let Some(service_type) = s
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| used.iter().any(|u| u.types().contains(t)))
        else {
            continue;
        };
        for e in s
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if e.get("interface").and_then(Value::as_str) != Some("public") {
                continue;
            }
            let region = e
                .get("region_id")
                .or_else(|| e.get("region"))
                .and_then(Value::as_str);
            let url = e
                .get("url")
                .and_then(Value::as_str)
                .filter(|u| u.len() <= ENDPOINT_URL_MAX);
            if out.len() >= ENDPOINTS_MAX {
                return out;
            }
            if let (Some(region), Some(url)) = (region.filter(|r| r.len() <= 255), url) {
                out.push(Endpoint {
                    service_type: service_type.to_owned(),
                    region: region.to_owned(),
                    url: url.to_owned(),
                });
            }
        }
    }
    out
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn id_of(raw: &Value) -> Option<String> {
    raw.get("id").and_then(id_text)
}

/// One answer item as Maestro stores it, or `None` without an id.
fn item(call: &Call, raw: &Value) -> Option<Value> {
    let id = id_of(raw)?;
    let mut doc = (call.rules)(raw);
    doc.insert("unique_id".into(), Value::String(id));
    doc.entry("datacenters")
        .or_insert_with(|| Value::Object(datacenter(raw)));
    doc.entry("active").or_insert(json!(true));
    Some(Value::Object(doc))
}

/// Maestro's datacenter of an OpenStack item other than a server: its zones, if any.
fn datacenter(raw: &Value) -> Map<String, Value> {
    let mut dc = Map::new();
    put(&mut dc, "zone", raw.get("availability_zones"));
    dc
}

/// The owner project: `project_id`, or the older `tenant_id`.
fn project(doc: &mut Map<String, Value>, raw: &Value, key: &str) {
    put(
        doc,
        "project_id",
        raw.get(key).or_else(|| raw.get("tenant_id")),
    );
}

/// `status` capitalised, when the item has one.
fn status_capitalised(doc: &mut Map<String, Value>, raw: &Value) {
    if let Some(s) = raw
        .get("status")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        doc.insert("status".into(), json!(capitalized(s)));
    }
}

/// A server's cpu and memory from its flavor (`vcpus`, `ram` in MB stored divided by a
/// thousand, as Maestro stored flavors).
fn size(doc: &mut Map<String, Value>, flavor: &Value) {
    if doc.contains_key("cpu") {
        return;
    }
    let cpu = flavor
        .get("vcpus")
        .and_then(Value::as_i64)
        .filter(|n| *n > 0);
    let ram = flavor
        .get("ram")
        .and_then(Value::as_f64)
        .filter(|n| *n > 0.0);
    if let (Some(cpu), Some(ram)) = (cpu, ram) {
        doc.insert("cpu".into(), json!(cpu));
        doc.insert("memory".into(), json!(ram / 1000.0));
    }
}

/// The first address of a server's networks whose type is `kind` (`fixed`, `floating`).
fn address_of_type<'a>(addresses: &'a Map<String, Value>, kind: &str) -> Option<&'a Value> {
    addresses
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .find(|a| a.get("OS-EXT-IPS:type").and_then(Value::as_str) == Some(kind))
        .and_then(|a| a.get("addr"))
}

fn server(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(&mut d, raw, &[("name", "name"), ("created_at", "created")]);
    put(
        &mut d,
        "updated_at",
        raw.get("updated").or_else(|| raw.get("created")),
    );
    if let Some(addresses) = raw.get("addresses").and_then(Value::as_object) {
        // The fixed address, else (an answer without address types) the first network's
        // first; the floating address, else the first of a network named public or internet.
        let first = |nets: &mut dyn Iterator<Item = (&String, &Value)>| {
            nets.filter_map(|(_, v)| v.as_array()?.first()?.get("addr"))
                .next()
                .cloned()
        };
        let private = address_of_type(addresses, "fixed")
            .cloned()
            .or_else(|| first(&mut addresses.iter()));
        let public = address_of_type(addresses, "floating").cloned().or_else(|| {
            first(&mut addresses.iter().filter(|(name, _)| {
                let n = name.to_lowercase();
                n.contains("public") || n.contains("internet")
            }))
        });
        put(&mut d, "ipv4_private", private.as_ref());
        put(&mut d, "ipv4_public", public.as_ref());
    }
    put(&mut d, "environment", raw.pointer("/metadata/environment"));
    put(&mut d, "role", raw.pointer("/metadata/role"));
    if let Some(key) = raw.get("key_name").filter(|k| truthy(k)) {
        d.insert("auth".into(), json!([{"name": key, "type": "PKI"}]));
    }
    let storage: Vec<Value> = raw
        .get("os-extended-volumes:volumes_attached")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("id").and_then(Value::as_str))
        .map(|id| {
            let short: String = id.chars().take(3).collect();
            json!({"name": format!("vol-{short}"), "unique_id": id})
        })
        .collect();
    if !storage.is_empty() {
        d.insert("storage".into(), Value::Array(storage));
    }
    d.insert("tags".into(), key_values(raw.get("metadata")));
    let mut metas = Map::new();
    copy(
        &mut metas,
        raw,
        &[
            ("addresses", "addresses"),
            ("has_config_drive", "config_drive"),
        ],
    );
    if !metas.is_empty() {
        d.insert("metas".into(), Value::Object(metas));
    }
    // A flavor given whole (Nova's microversions from 2.47) sizes the server here.
    if let Some(flavor) = raw.get("flavor") {
        size(&mut d, flavor);
    }
    let status = raw.get("status").and_then(Value::as_str).unwrap_or("");
    let word = match status {
        "STOPPED" | "SHUTOFF" | "SUSPENDED" | "PAUSED" => "Stopped",
        "REBOOT" => "Avaliable",
        _ => "Active",
    };
    d.insert("status".into(), json!(word));
    d.insert(
        "active".into(),
        json!(!matches!(
            status,
            "DELETED" | "ERROR" | "SOFT_DELETED" | "UNKNOWN"
        )),
    );
    let mut dc = Map::new();
    put(&mut dc, "zone", raw.get("OS-EXT-AZ:availability_zone"));
    dc.insert("type".into(), json!("Virtual"));
    put(
        &mut dc,
        "instance",
        raw.pointer("/flavor/id")
            .or_else(|| raw.pointer("/flavor/original_name")),
    );
    put(&mut dc, "instance_id", raw.get("id"));
    copy(
        &mut dc,
        raw,
        &[
            ("host_id", "hostId"),
            ("hypervisor_hostname", "OS-EXT-SRV-ATTR:hypervisor_hostname"),
            ("user_id", "user_id"),
            ("vm_state", "OS-EXT-STS:vm_state"),
            ("security_groups", "security_groups"),
            ("terminated_at", "OS-SRV-USG:terminated_at"),
        ],
    );
    put(&mut dc, "image_id", raw.pointer("/image/id"));
    project(&mut dc, raw, "tenant_id");
    d.insert("datacenters".into(), Value::Object(dc));
    d
}

fn flavor(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(
        &mut d,
        raw,
        &[
            ("name", "name"),
            ("api_name", "name"),
            ("disk", "disk"),
            ("vcpus", "vcpus"),
            ("is_public", "os-flavor-access:is_public"),
            ("ephemeral", "OS-FLV-EXT-DATA:ephemeral"),
        ],
    );
    if let Some(ram) = raw.get("ram").and_then(Value::as_f64).filter(|r| *r > 0.0) {
        d.insert("memory".into(), json!(ram / 1000.0));
    }
    d.insert("provider".into(), json!("OpenStack"));
    d
}

fn image(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(
        &mut d,
        raw,
        &[
            ("name", "name"),
            ("size", "OS-EXT-IMG-SIZE:size"),
            ("progress", "progress"),
            ("min_disk", "minDisk"),
        ],
    );
    status_capitalised(&mut d, raw);
    d.insert("own".into(), json!(1));
    d
}

fn load_balancer(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(
        &mut d,
        raw,
        &[
            ("name", "name"),
            ("created_at", "created_at"),
            ("updated_at", "updated_at"),
        ],
    );
    d.insert("own".into(), json!(1));
    d
}

fn volume(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    put(
        &mut d,
        "name",
        raw.get("name")
            .filter(|n| truthy(n))
            .or_else(|| raw.get("id")),
    );
    copy(
        &mut d,
        raw,
        &[
            ("source_volume_id", "source_volid"),
            ("migration_id", "os-vol-mig-status-attr:name_id"),
            ("encrypted", "encrypted"),
            ("description", "description"),
            ("volume_type", "volume_type"),
            ("snapshot_id", "snapshot_id"),
            ("size", "size"),
            ("created_at", "created_at"),
            ("updated_at", "updated_at"),
        ],
    );
    project(&mut d, raw, "os-vol-tenant-attr:tenant_id");
    let status = match raw.get("status").and_then(Value::as_str) {
        Some("creating" | "in-use") => Some("Active"),
        Some("available") => Some("Available"),
        Some("deleting" | "deleted") => Some("Deleted"),
        Some("error") => Some("Error"),
        _ => None,
    };
    if let Some(s) = status {
        d.insert("status".into(), json!(s));
    }
    d.insert("own".into(), json!(1));
    d
}

fn snapshot(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(
        &mut d,
        raw,
        &[
            ("name", "name"),
            ("volume_id", "volume_id"),
            ("progress", "os-extended-snapshot-attributes:progress"),
            ("volume_size", "size"),
            ("created_at", "created_at"),
            ("updated_at", "updated_at"),
        ],
    );
    project(&mut d, raw, "os-extended-snapshot-attributes:project_id");
    status_capitalised(&mut d, raw);
    d.insert("own".into(), json!(1));
    d
}

fn security_group(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(
        &mut d,
        raw,
        &[("name", "name"), ("ip_permissions", "security_group_rules")],
    );
    project(&mut d, raw, "project_id");
    d.insert("own".into(), json!(1));
    let mut dc = Map::new();
    dc.insert("type".into(), json!("Virtual"));
    put(&mut dc, "instance_id", raw.get("id"));
    project(&mut dc, raw, "project_id");
    d.insert("datacenters".into(), Value::Object(dc));
    d
}

fn network(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(
        &mut d,
        raw,
        &[
            ("name", "name"),
            ("description", "description"),
            ("subnet_ids", "subnets"),
            ("mtu", "mtu"),
            ("ipv4_address_scope_id", "ipv4_address_scope"),
            ("ipv6_address_scope_id", "ipv6_address_scope"),
            ("is_port_security_enabled", "port_security_enabled"),
            ("is_vlan_transparent", "vlan_transparent"),
        ],
    );
    project(&mut d, raw, "project_id");
    status_capitalised(&mut d, raw);
    d.insert("own".into(), json!(1));
    d
}

fn subnet(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(
        &mut d,
        raw,
        &[
            ("name", "name"),
            ("description", "description"),
            ("gateway_ip", "gateway_ip"),
            ("allocation_pools", "allocation_pools"),
            ("ipv6_address_mode", "ipv6_address_mode"),
            ("is_dhcp_enabled", "enable_dhcp"),
            ("network_id", "network_id"),
            ("cidr_block", "cidr"),
        ],
    );
    project(&mut d, raw, "project_id");
    d.insert("own".into(), json!(1));
    d
}

fn port(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(
        &mut d,
        raw,
        &[
            ("name", "name"),
            ("description", "description"),
            ("network_id", "network_id"),
            ("mac_address", "mac_address"),
            ("fixed_ips", "fixed_ips"),
            ("device_id", "device_id"),
            ("security_group_ids", "security_groups"),
        ],
    );
    project(&mut d, raw, "project_id");
    status_capitalised(&mut d, raw);
    d.insert("own".into(), json!(1));
    d
}

fn router(raw: &Value) -> Map<String, Value> {
    let mut d = Map::new();
    copy(
        &mut d,
        raw,
        &[
            ("name", "name"),
            ("description", "description"),
            ("routes", "routes"),
            ("flavor_id", "flavor_id"),
            ("external_gateway_info", "external_gateway_info"),
            ("availability_zone_hints", "availability_zone_hints"),
        ],
    );
    project(&mut d, raw, "project_id");
    status_capitalised(&mut d, raw);
    d.insert("own".into(), json!(1));
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::{Credentials, Kind};

    fn provider(allow: &str) -> OpenStackProvider {
        OpenStackProvider::new(
            reqwest::Client::new(),
            Arc::new(EgressPolicy::parse(allow).expect("policy")),
            5000,
        )
    }

    fn login_url(p: &OpenStackProvider, url: &str) -> Result<String, ProviderError> {
        let creds = Credentials::from_claims(
            json!({"username": "demo", "password": "pw"})
                .as_object()
                .cloned()
                .expect("claims"),
        );
        let settings = json!({"url": url, "project": "p1"})
            .as_object()
            .cloned()
            .expect("settings");
        let kind = Kind {
            task: "server-list",
            collection: "servers",
            global: false,
            item_regions: false,
        };
        let req = PageRequest {
            credentials: &creds,
            settings: &settings,
            connection: "c1",
            owners: &[],
            kind: &kind,
            command: 0,
            region: "RegionOne",
            token: None,
        };
        p.login(&req).map(|l| l.tokens_url.to_string())
    }

    #[test]
    fn keystone_urls_become_v3_token_urls_within_the_egress_policy() {
        let p = provider("");
        assert_eq!(p.page_size, PAGE_SIZE_MAX);
        for (given, want) in [
            (
                "https://keystone.example.com:5000/v3",
                "https://keystone.example.com:5000/v3/auth/tokens",
            ),
            (
                "https://keystone.example.com:5000/v2.0/",
                "https://keystone.example.com:5000/v3/auth/tokens",
            ),
            (
                "https://cloud.example.com/identity",
                "https://cloud.example.com/identity/v3/auth/tokens",
            ),
            (
                "https://cloud.example.com/identity/v3?x=1#f",
                "https://cloud.example.com/identity/v3/auth/tokens",
            ),
        ] {
            assert_eq!(login_url(&p, given).expect(given), want);
        }
        for refused in [
            "http://169.254.169.254/v3",
            "http://10.0.0.5:5000/v3",
            "file:///etc/passwd",
            "keystone",
        ] {
            assert!(
                matches!(login_url(&p, refused), Err(ProviderError::Auth(_))),
                "{refused}"
            );
        }
        assert!(login_url(&provider("10.0.0.0/8"), "http://10.0.0.5:5000/v3").is_ok());
    }

    #[test]
    fn the_catalogue_gives_public_endpoints_per_region() {
        let doc = json!({"token": {"catalog": [
            {"type": "compute", "endpoints": [
                {"interface": "internal", "region_id": "RegionOne", "url": "http://10.0.0.1/compute/v2.1"},
                {"interface": "public", "region_id": "RegionOne", "url": "https://nova.example.com/v2.1"},
                {"interface": "public", "region": "RegionTwo", "url": "https://nova2.example.com/v2.1"}]},
            {"type": "network", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "https://neutron.example.com/"}]},
            {"type": "volumev3", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "https://cinder.example.com/v3/p1"}]},
            {"type": "load-balancer", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "https://octavia.example.com/v2.0"}]}
        ]}});
        let session = Session {
            token: "t".into(),
            endpoints: Arc::new(catalogue(&doc)),
        };
        assert_eq!(session.endpoints.len(), 5);
        let p = provider("");
        let url = |s, r| p.endpoint(&session, s, r).map(|u| u.to_string());
        assert_eq!(
            url(Service::Compute, "RegionOne").expect("nova"),
            "https://nova.example.com/v2.1"
        );
        assert_eq!(
            url(Service::Compute, "RegionTwo").expect("nova"),
            "https://nova2.example.com/v2.1"
        );
        assert_eq!(
            url(Service::Network, "RegionOne").expect("neutron"),
            "https://neutron.example.com/v2.0"
        );
        assert_eq!(
            url(Service::BlockStorage, "RegionOne").expect("cinder"),
            "https://cinder.example.com/v3/p1"
        );
        assert_eq!(
            url(Service::LoadBalancer, "RegionOne").expect("octavia"),
            "https://octavia.example.com/v2.0"
        );
        assert!(matches!(
            url(Service::Network, "RegionTwo"),
            Err(ProviderError::Unsupported(_))
        ));
        let internal = Session {
            token: "t".into(),
            endpoints: Arc::new(vec![Endpoint {
                service_type: "compute".into(),
                region: "R".into(),
                url: "http://169.254.169.254/latest".into(),
            }]),
        };
        assert!(matches!(
            p.endpoint(&internal, Service::Compute, "R"),
            Err(ProviderError::Auth(m)) if m.contains("destination refused")
        ));
    }

    fn server_answer() -> Value {
        json!({
            "id": "9168b536-cd40-4630-b43f-b259807c6e87", "name": "new-server-test",
            "status": "SHUTOFF", "created": "2017-02-14T19:23:58Z", "updated": "2017-02-14T19:24:00Z",
            "tenant_id": "6f70656e737461636b20342065766572", "user_id": "fake", "hostId": "2091634baaccdc4c5a1d57069c833e402921df696b7f970791b12ec6",
            "key_name": "keypair-1", "metadata": {"environment": "prod", "role": "api"},
            "addresses": {
                "private": [{"addr": "192.168.1.30", "version": 4, "OS-EXT-IPS:type": "fixed"},
                            {"addr": "172.24.4.10", "version": 4, "OS-EXT-IPS:type": "floating"}]},
            "flavor": {"id": "1", "links": []},
            "image": {"id": "70a599e0-31e7-49b7-b260-868f441e862b", "links": []},
            "OS-EXT-AZ:availability_zone": "nova", "OS-EXT-STS:vm_state": "stopped",
            "os-extended-volumes:volumes_attached": [{"id": "abc123"}],
            "security_groups": [{"name": "default"}], "config_drive": ""
        })
    }

    #[test]
    fn a_server_as_maestro_stored_it() {
        let d = item(&TASKS[0].calls[0], &server_answer()).expect("item");
        assert_eq!(d["unique_id"], "9168b536-cd40-4630-b43f-b259807c6e87");
        assert_eq!(d["ipv4_private"], "192.168.1.30");
        assert_eq!(d["ipv4_public"], "172.24.4.10");
        assert_eq!(
            (&d["status"], &d["active"]),
            (&json!("Stopped"), &json!(true))
        );
        assert_eq!(d["auth"], json!([{"name": "keypair-1", "type": "PKI"}]));
        assert_eq!(
            d["storage"],
            json!([{"name": "vol-abc", "unique_id": "abc123"}])
        );
        assert_eq!(
            (&d["environment"], &d["role"]),
            (&json!("prod"), &json!("api"))
        );
        assert_eq!(d["updated_at"], "2017-02-14T19:24:00Z");
        assert!(d.get("cpu").is_none(), "the flavor is looked up by id");
        let dc = &d["datacenters"];
        assert_eq!(
            (&dc["instance"], &dc["zone"]),
            (&json!("1"), &json!("nova"))
        );
        assert_eq!(dc["project_id"], "6f70656e737461636b20342065766572");
        assert_eq!(dc["image_id"], "70a599e0-31e7-49b7-b260-868f441e862b");

        // Untyped addresses: the first network's first is private, a network named public
        // gives the public one. A flavor given whole sizes the server.
        let mut s = server_answer();
        s["status"] = json!("ERROR");
        s["addresses"] =
            json!({"net1": [{"addr": "10.0.0.3"}], "public": [{"addr": "203.0.113.9"}]});
        s["flavor"] = json!({"original_name": "m1.small", "vcpus": 1, "ram": 2048, "disk": 20});
        let d = item(&TASKS[0].calls[0], &s).expect("item");
        assert_eq!(
            (&d["ipv4_private"], &d["ipv4_public"]),
            (&json!("10.0.0.3"), &json!("203.0.113.9"))
        );
        assert_eq!((&d["cpu"], &d["memory"]), (&json!(1), &json!(2.048)));
        assert_eq!(d["active"], false);
        assert_eq!(d["datacenters"]["instance"], "m1.small");
    }

    #[test]
    fn volumes_flavors_and_networks() {
        let v = item(
            &TASKS[2].calls[0],
            &json!({"id": "6edbc2f4", "name": "", "status": "in-use", "size": 10,
                    "os-vol-tenant-attr:tenant_id": "p1", "encrypted": false}),
        )
        .expect("item");
        assert_eq!(
            (&v["name"], &v["status"], &v["project_id"]),
            (&json!("6edbc2f4"), &json!("Active"), &json!("p1"))
        );
        assert!(v.get("encrypted").is_none() && v["own"] == 1);
        let f = item(
            &TASKS[6].calls[0],
            &json!({"id": "1", "name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1,
                    "os-flavor-access:is_public": true}),
        )
        .expect("item");
        assert_eq!(
            (&f["memory"], &f["api_name"], &f["provider"]),
            (&json!(0.512), &json!("m1.tiny"), &json!("OpenStack"))
        );
        let n = item(
            &TASKS[7].calls[1],
            &json!({"id": "s1", "name": "sub", "cidr": "10.0.0.0/24", "enable_dhcp": true,
                    "tenant_id": "p1"}),
        )
        .expect("item");
        assert_eq!(
            (&n["cidr_block"], &n["is_dhcp_enabled"], &n["project_id"]),
            (&json!("10.0.0.0/24"), &json!(true), &json!("p1"))
        );
        let r = item(
            &TASKS[7].calls[3],
            &json!({"id": "r1", "status": "ACTIVE", "availability_zones": ["nova"]}),
        )
        .expect("item");
        assert_eq!(
            (&r["status"], &r["datacenters"]["zone"]),
            (&json!("Active"), &json!(["nova"]))
        );
    }

    #[test]
    fn the_tasks_are_the_contracts() {
        let p = maestro_contract::providers::provider("OpenStack").expect("openstack");
        for (spec, here) in p.tasks.iter().zip(TASKS.iter()) {
            assert_eq!(spec.name, here.task);
            assert_eq!(spec.commands.len(), here.calls.len(), "{}", here.task);
            assert!(spec.commands.iter().all(|c| c.entity == here.collection));
        }
        assert_eq!(p.tasks.len(), TASKS.len());
    }
}
