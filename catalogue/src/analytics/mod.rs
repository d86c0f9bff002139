//! `maestro.analytics.graph`: Maestro's business dependency map of an owner's applications,
//! drawn by the workers (Maestro's analytics-maestro did it in a chain of Celery tasks over
//! data-app; this is one task over MongoDB).
//!
//! Lifecycle of one run:
//! 1. The graph document (`graphs`, created by server-app) must be the owner's; otherwise
//!    nothing is written.
//! 2. The entry applications: the selected systems' `entry` (systems chosen by `clients`,
//!    `systems`, or all of the owner's), else for a system without entries its applications of
//!    the most front-facing families (CDN, API gateway, load balancer, ...); or the `apps`
//!    given.
//! 3. Their dependencies (`applications.deps`), level by level up to [`DEPTH_MAX`] and
//!    [`APPS_MAX`] applications, only among the owner's applications (Maestro's `$graphLookup`
//!    followed dependencies into any tenant's).
//! 4. Each application's servers (`servers.applications`), for its count and provider.
//! 5. The layout ([`layout`]) and the SVG ([`svg`]); the histograms and counts written on the
//!    graph document; the SVG sent to analytics-front (`POST /graphs`, Maestro's graph token),
//!    which stores it and marks the graph finished; the owner's websocket told.
//!
//! Bad input never leaves a graph in `process`: no system or entry gives `warning` "Empty
//! entry point", no application `warning` "Empty dependencies", dependencies on applications
//! that do not exist are left out and counted in `msg`, cycles are drawn; analytics-front
//! refusing the map gives `error`. Each of these also reaches the websocket.

pub mod layout;
pub mod svg;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures_util::TryStreamExt;
use maestro_contract::GraphJob;
use maestro_contract::names::{TASK_ANALYTICS_GRAPH, TASK_NOTIFY};
use maestro_contract::notify::{NotifyType, ws_notification};
use maestro_tasks::{TaskContext, TaskError, TaskResult, task};
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use mongodb::{Collection, Database};
use serde_json::{Value, json};

use crate::Services;
use crate::delivery::Class;
use svg::Card;

/// Deepest dependency followed from an entry application (Maestro's `$graphLookup` depth).
pub const DEPTH_MAX: usize = 40;
/// Most applications on one map; a larger graph is cut there and says so.
pub const APPS_MAX: usize = 2000;
/// Most systems a map starts from.
pub const SYSTEMS_MAX: i64 = 1000;
/// Longest name and endpoint kept of an application (the map shows far less).
pub const NAME_CHARS_MAX: usize = 256;
pub const ENDPOINT_CHARS_MAX: usize = 512;
/// Most dependencies read of one application, and entries of one system.
pub const DEPS_PER_APP_MAX: usize = 500;
pub const ENTRIES_PER_SYSTEM_MAX: usize = 200;
/// Largest map sent to analytics-front (its form limit is 50 MB).
pub const SVG_BYTES_MAX: usize = 40 * 1024 * 1024;
/// Retries of a map whose store or analytics-front was away.
pub const GRAPH_MAX_RETRIES: u32 = 5;
/// The graph documents server-app creates.
pub const GRAPHS: &str = "graphs";

/// Families, most front-facing first, in tiers of three: a system without entries starts
/// from its applications of the best tier it has (Maestro's ranking).
const FAMILY_RANKING: [&str; 21] = [
    "CDN",
    "ApiGateway",
    "Loadbalance",
    "NAS",
    "Application",
    "Serverless",
    "ObjectStorage",
    "ServiceDiscovery",
    "VPN",
    "CI/CD",
    "Monitor",
    "Cache",
    "Logs",
    "SMTP",
    "Auth",
    "Broker",
    "Repository",
    "Database",
    "ContainerOrchestration",
    "ServiceMesh",
    "DNS",
];

/// `maestro.analytics.graph(graph_id, owner_id, kind, clients, systems, apps)`: see the module
/// documentation.
#[task(name = TASK_ANALYTICS_GRAPH, max_retries = GRAPH_MAX_RETRIES)]
pub async fn graph(
    ctx: &TaskContext,
    #[state] svc: &Arc<Services>,
    #[args] job: GraphJob,
) -> TaskResult<Value> {
    job.validate()?;
    let map = Map {
        svc,
        ctx,
        job: &job,
    };
    let outcome = map.run().await;
    if let Err(e) = &outcome {
        map.give_up(e).await;
    }
    outcome
}

struct Map<'a> {
    svc: &'a Services,
    ctx: &'a TaskContext,
    job: &'a GraphJob,
}

/// An application on the map.
#[derive(Debug, Clone)]
struct App {
    id: String,
    name: String,
    family: Option<String>,
    provider: Option<String>,
    deps: Vec<(String, Option<String>)>,
    systems: Vec<(String, String)>,
}

fn oid(hex: &str) -> Bson {
    ObjectId::parse_str(hex).map_or_else(|_| Bson::String(hex.to_owned()), Bson::ObjectId)
}

/// Ids as stored: ObjectIds (server-app's) and strings alike.
fn any_of(ids: &[String]) -> Bson {
    let mut v: Vec<Bson> = ids.iter().map(|i| oid(i)).collect();
    v.extend(ids.iter().map(|i| Bson::String(i.clone())));
    Bson::Array(v)
}

fn id_text(b: Option<&Bson>) -> Option<String> {
    match b? {
        Bson::ObjectId(o) => Some(o.to_hex()),
        Bson::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn text(d: &Document, key: &str) -> Option<String> {
    cut_text(d, key, NAME_CHARS_MAX)
}

/// A string field, cut to `max` characters.
fn cut_text(d: &Document, key: &str, max: usize) -> Option<String> {
    d.get_str(key)
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(max).collect())
}

/// A MongoDB error: retried when the server was away, a failure when it refused the request
/// (a query or document too large, say), which a retry would meet again.
fn mongo(e: mongodb::error::Error, retries: u32) -> TaskError {
    use mongodb::error::ErrorKind;
    let away = matches!(
        *e.kind,
        ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. }
    ) || e.contains_label("RetryableWriteError");
    if !away {
        return TaskError::fail("OperationalError", format!("MongoDB refused: {e}"));
    }
    TaskError::retry_in(
        backoff(retries),
        "OperationalError",
        format!("MongoDB: {e}"),
    )
}

/// The wait before retry `retries + 1`: the project's one backoff, with discovery's bounds.
fn backoff(retries: u32) -> std::time::Duration {
    maestro_tasks::retry_delay(
        crate::discovery::RETRY_DELAY_FIRST,
        crate::discovery::RETRY_DELAY_MAX,
        retries,
    )
    .min(crate::discovery::RETRY_DELAY_MAX)
}

impl Map<'_> {
    fn db(&self) -> &Database {
        &self.svc.inventory
    }

    /// The owner's live documents.
    fn scoped(&self, mut filter: Document) -> Document {
        filter.insert(
            "roles._id",
            doc! {"$in": any_of(std::slice::from_ref(&self.job.owner_id))},
        );
        filter.insert("active", doc! {"$ne": false});
        filter
    }

    fn graphs(&self) -> Collection<Document> {
        self.db().collection(GRAPHS)
    }

    /// The graph, when the owner may write it (role 3 or more, as analytics-front asks).
    fn graph_filter(&self) -> Document {
        doc! {"_id": oid(&self.job.graph_id),
        "roles": {"$elemMatch": {
            "_id": {"$in": any_of(std::slice::from_ref(&self.job.owner_id))},
            "role": {"$gte": crate::discovery::ROLE_WRITE}}}}
    }

    /// After a failure: the graph says so and the websocket hears it, unless the task will be
    /// retried or the graph is not the owner's (then nothing of it may be written).
    async fn give_up(&self, e: &TaskError) {
        let last = match e {
            TaskError::Retry { .. } => self.ctx.retries >= GRAPH_MAX_RETRIES,
            other => !other.to_string().starts_with("LookupError"),
        };
        if !last {
            return;
        }
        let msg: String = e.to_string().chars().take(500).collect();
        if self
            .graphs()
            .update_one(
                self.graph_filter(),
                doc! {"$set": {"status": "error", "msg": msg,
                "updated_at": mongodb::bson::DateTime::now()}},
            )
            .await
            .is_ok()
        {
            self.notify(NotifyType::Danger).await;
        }
    }

    async fn set(&self, fields: Document) -> Result<(), TaskError> {
        let mut set = fields;
        set.insert("updated_at", mongodb::bson::DateTime::now());
        self.graphs()
            .update_one(self.graph_filter(), doc! {"$set": set})
            .await
            .map_err(|e| mongo(e, self.ctx.retries))?;
        Ok(())
    }

    async fn notify(&self, kind: NotifyType) {
        let callers = [
            "analytics-update".to_owned(),
            format!("analytics-{}", self.job.graph_id),
        ];
        let callers: Vec<&str> = callers.iter().map(String::as_str).collect();
        let sig = ws_notification(
            &self.job.owner_id,
            "Finish Graph",
            &format!("({})", self.job.graph_id),
            kind,
            &callers,
        )
        .signature()
        .with_option("queue", self.svc.queue_for(TASK_NOTIFY).into());
        if let Err(e) = self.ctx.send(sig).await {
            tracing::warn!(graph_id = %self.job.graph_id, error = %e, "analytics_notification_not_sent");
        }
    }

    /// Ends the run with `status` and `msg` on the graph and on the websocket.
    async fn finish(&self, status: &str, msg: &str, kind: NotifyType) -> Result<(), TaskError> {
        self.set(doc! {"status": status, "msg": msg}).await?;
        self.notify(kind).await;
        Ok(())
    }

    async fn run(&self) -> TaskResult<Value> {
        let exists = self
            .graphs()
            .find_one(self.graph_filter())
            .projection(doc! {"_id": 1})
            .await
            .map_err(|e| mongo(e, self.ctx.retries))?;
        if exists.is_none() {
            return Err(TaskError::fail(
                "LookupError",
                format!(
                    "graph {} is not a graph of owner {}",
                    self.job.graph_id, self.job.owner_id
                ),
            ));
        }
        if !maestro_contract::graph::KINDS.contains(&self.job.kind.as_str()) {
            self.finish(
                "warning",
                "Only business maps are drawn (type bussiness); infrastructure maps are not",
                NotifyType::Warning,
            )
            .await?;
            return Ok(json!({"graph_id": self.job.graph_id, "status": "warning", "apps": 0}));
        }
        let (systems, roots) = self.entries().await?;
        tracing::info!(graph_id = %self.job.graph_id, systems = systems.len(), entries = roots.len(), "analytics_graph_entries");
        if roots.is_empty() {
            self.finish("warning", "Empty entry point", NotifyType::Warning)
                .await?;
            return Ok(json!({"graph_id": self.job.graph_id, "status": "warning", "apps": 0}));
        }
        let (apps, missing, cut) = self.walk(&roots).await?;
        tracing::info!(graph_id = %self.job.graph_id, apps = apps.len(), missing, cut, "analytics_graph_walked");
        if apps.is_empty() {
            self.finish("warning", "Empty dependencies", NotifyType::Warning)
                .await?;
            return Ok(json!({"graph_id": self.job.graph_id, "status": "warning", "apps": 0}));
        }
        let servers = self.servers(&apps).await?;
        // The layout and the drawing are CPU work: off the runtime's threads.
        let by_app = servers.by_app.clone();
        let roots_owned = roots.clone();
        let drawn = tokio::task::spawn_blocking(move || {
            Drawn::new(apps, &roots_owned, &by_app).map(|d| {
                let svg = d.svg();
                (d, svg)
            })
        })
        .await
        .map_err(|e| TaskError::fail("RuntimeError", format!("the map's drawing stopped: {e}")))?;
        let (drawn, svg) = match drawn {
            Ok(d) => d,
            Err(too_large) => {
                self.finish("warning", &too_large.to_string(), NotifyType::Warning)
                    .await?;
                return Ok(json!({"graph_id": self.job.graph_id, "status": "warning", "apps": 0}));
            }
        };
        if svg.len() > SVG_BYTES_MAX {
            return Err(TaskError::fail(
                "ValueError",
                format!(
                    "the map's SVG is {} bytes, more than analytics-front takes ({SVG_BYTES_MAX})",
                    svg.len()
                ),
            ));
        }
        let clients = self.clients(&systems).await?;
        let mut stats = drawn.stats(servers.distinct);
        stats.insert("iclients", clients);
        let mut notes = Vec::new();
        if missing > 0 {
            notes.push(format!(
                "{missing} dependencies name applications that do not exist (left out)"
            ));
        }
        if cut {
            notes.push(format!("the map stops at {APPS_MAX} applications"));
        }
        if !notes.is_empty() {
            stats.insert("msg", notes.join("; "));
        }
        self.set(stats).await?;
        match self.send(&svg, drawn.cards.len()).await {
            Ok(()) => {
                self.set(doc! {"status": "finished", "msg": if notes.is_empty() { "Finish".to_owned() } else { format!("Finish: {}", notes.join("; ")) }})
                    .await?;
                self.notify(NotifyType::Success).await;
            }
            // give_up marks the graph when this was the last try.
            Err(e) => return Err(e),
        }
        Ok(json!({
            "graph_id": self.job.graph_id,
            "status": "finished",
            "apps": drawn.cards.len(),
            "edges": drawn.layout.edges.len(),
            "missing": missing,
            "width": drawn.layout.width,
            "height": drawn.layout.height,
            "svg_bytes": svg.len(),
        }))
    }

    /// The selected systems (`{_id, name, clients}`) and the entry applications' ids.
    async fn entries(&self) -> Result<(Vec<Document>, Vec<String>), TaskError> {
        let job = self.job;
        if !job.apps.is_empty() && job.clients.is_empty() && job.systems.is_empty() {
            return Ok((Vec::new(), job.apps.clone()));
        }
        let filter = if !job.clients.is_empty() {
            doc! {"clients._id": {"$in": any_of(&job.clients)}}
        } else if !job.systems.is_empty() {
            doc! {"_id": {"$in": any_of(&job.systems)}}
        } else {
            doc! {}
        };
        let filter = self.scoped(filter);
        let systems: Vec<Document> = self
            .db()
            .collection::<Document>("systems")
            .find(filter)
            .projection(doc! {"_id": 1, "name": 1, "entry": 1, "clients": 1})
            .sort(doc! {"_id": 1})
            .limit(SYSTEMS_MAX)
            .await
            .map_err(|e| mongo(e, self.ctx.retries))?
            .try_collect()
            .await
            .map_err(|e| mongo(e, self.ctx.retries))?;
        let mut roots: Vec<String> = Vec::new();
        let mut fallen: Vec<String> = Vec::new();
        for s in &systems {
            let entries: Vec<String> = s
                .get_array("entry")
                .map(|a| {
                    a.iter()
                        .take(ENTRIES_PER_SYSTEM_MAX)
                        .filter_map(|e| id_text(e.as_document()?.get("_id")))
                        .collect()
                })
                .unwrap_or_default();
            if entries.is_empty() {
                fallen.extend(id_text(s.get("_id")));
            } else {
                roots.extend(entries);
            }
        }
        if !fallen.is_empty() {
            roots.extend(self.guessed_entries(&fallen).await?);
        }
        let mut seen = HashSet::new();
        roots.retain(|r| seen.insert(r.clone()));
        roots.truncate(APPS_MAX);
        Ok((systems, roots))
    }

    /// For each system without entries, its applications of the best family tier it has.
    async fn guessed_entries(&self, systems: &[String]) -> Result<Vec<String>, TaskError> {
        let apps: Vec<Document> = self
            .db()
            .collection::<Document>("applications")
            .find(self.scoped(doc! {"system._id": {"$in": any_of(systems)}}))
            .projection(doc! {"_id": 1, "family": 1, "system": 1})
            .sort(doc! {"_id": 1})
            .limit(APPS_MAX as i64)
            .await
            .map_err(|e| mongo(e, self.ctx.retries))?
            .try_collect()
            .await
            .map_err(|e| mongo(e, self.ctx.retries))?;
        let tier = |d: &Document| {
            text(d, "family")
                .and_then(|f| {
                    FAMILY_RANKING
                        .iter()
                        .position(|r| r.eq_ignore_ascii_case(&f))
                })
                .map_or(usize::MAX, |p| p / 3)
        };
        let mut out = Vec::new();
        for s in systems {
            let mine: Vec<&Document> = apps
                .iter()
                .filter(|a| {
                    a.get_array("system").is_ok_and(|list| {
                        list.iter().any(|x| {
                            id_text(x.as_document().and_then(|d| d.get("_id"))).as_deref()
                                == Some(s.as_str())
                        })
                    })
                })
                .collect();
            let best = mine.iter().map(|a| tier(a)).min();
            out.extend(
                mine.iter()
                    .filter(|a| Some(tier(a)) == best)
                    .filter_map(|a| id_text(a.get("_id"))),
            );
        }
        Ok(out)
    }

    /// The applications reachable from `roots` through `deps`, the number of dependencies on
    /// applications that are not there, and whether [`APPS_MAX`] cut the walk.
    async fn walk(&self, roots: &[String]) -> Result<(Vec<App>, usize, bool), TaskError> {
        let coll = self.db().collection::<Document>("applications");
        let mut found: Vec<App> = Vec::new();
        // Every id asked for, found or not: a dependency named here and not found is missing.
        let mut asked: HashSet<String> = roots.iter().cloned().collect();
        let mut frontier: Vec<String> = roots.to_vec();
        let mut cut = false;
        for _depth in 0..=DEPTH_MAX {
            if frontier.is_empty() {
                break;
            }
            let docs: Vec<Document> = coll
                .find(self.scoped(doc! {"_id": {"$in": any_of(&frontier)}}))
                .projection(
                    doc! {"_id": 1, "name": 1, "family": 1, "deps": 1, "system": 1,
                    "datacenters.provider": 1},
                )
                .await
                .map_err(|e| mongo(e, self.ctx.retries))?
                .try_collect()
                .await
                .map_err(|e| mongo(e, self.ctx.retries))?;
            let mut next = Vec::new();
            let level_start = found.len();
            for d in docs {
                let Some(id) = id_text(d.get("_id")) else {
                    continue;
                };
                let deps: Vec<(String, Option<String>)> = d
                    .get_array("deps")
                    .map(|a| {
                        a.iter()
                            .take(DEPS_PER_APP_MAX)
                            .filter_map(|x| {
                                let x = x.as_document()?;
                                Some((
                                    id_text(x.get("_id"))?,
                                    cut_text(x, "endpoint", ENDPOINT_CHARS_MAX),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let systems = d
                    .get_array("system")
                    .map(|a| {
                        a.iter()
                            .take(ENTRIES_PER_SYSTEM_MAX)
                            .filter_map(|x| {
                                let x = x.as_document()?;
                                Some((id_text(x.get("_id"))?, text(x, "name").unwrap_or_default()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                found.push(App {
                    name: text(&d, "name").unwrap_or_else(|| id.clone()),
                    family: text(&d, "family"),
                    provider: d
                        .get_document("datacenters")
                        .ok()
                        .and_then(|dc| text(dc, "provider")),
                    id,
                    deps,
                    systems,
                });
            }
            // The next level: what the applications found depend on and was not asked for,
            // as long as the map has room (the applications found and those still to read).
            for app in &found[level_start..] {
                for (dep, _) in &app.deps {
                    if asked.contains(dep) {
                        continue;
                    }
                    if found.len() + next.len() >= APPS_MAX {
                        cut = true;
                        break;
                    }
                    asked.insert(dep.clone());
                    next.push(dep.clone());
                }
            }
            frontier = next;
        }
        // A dependency asked for and not found does not exist (or is another owner's); one
        // not asked for (past the depth or size limit) is only not drawn.
        let present: HashSet<&str> = found.iter().map(|a| a.id.as_str()).collect();
        let pending: HashSet<&str> = frontier.iter().map(String::as_str).collect();
        let dangling = found
            .iter()
            .flat_map(|a| a.deps.iter())
            .filter(|(d, _)| {
                asked.contains(d) && !present.contains(d.as_str()) && !pending.contains(d.as_str())
            })
            .count();
        Ok((found, dangling, cut))
    }

    /// Per application id: its servers' count and first provider.
    async fn servers(&self, apps: &[App]) -> Result<Servers, TaskError> {
        let ids: Vec<String> = apps.iter().map(|a| a.id.clone()).collect();
        let mut out: HashMap<String, (usize, Option<String>)> = HashMap::new();
        let mut distinct = 0usize;
        let mut cursor = self
            .db()
            .collection::<Document>("servers")
            .find(self.scoped(doc! {"applications._id": {"$in": any_of(&ids)}}))
            .projection(doc! {"applications._id": 1, "datacenters.provider": 1})
            .await
            .map_err(|e| mongo(e, self.ctx.retries))?;
        let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
        while let Some(s) = cursor
            .try_next()
            .await
            .map_err(|e| mongo(e, self.ctx.retries))?
        {
            let provider = s
                .get_document("datacenters")
                .ok()
                .and_then(|dc| text(dc, "provider"));
            let linked: HashSet<String> = s
                .get_array("applications")
                .map(|a| {
                    a.iter()
                        .filter_map(|x| id_text(x.as_document()?.get("_id")))
                        .collect()
                })
                .unwrap_or_default();
            if linked.iter().any(|a| wanted.contains(a.as_str())) {
                distinct += 1;
            }
            for app in linked.iter().filter(|a| wanted.contains(a.as_str())) {
                let e = out.entry(app.clone()).or_insert((0, None));
                e.0 += 1;
                if e.1.is_none() {
                    e.1 = provider.clone();
                }
            }
        }
        Ok(Servers {
            by_app: out,
            distinct,
        })
    }

    /// The clients of the systems mapped, once each: `{items: [{_id, name}], total}`.
    async fn clients(&self, systems: &[Document]) -> Result<Bson, TaskError> {
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        for s in systems {
            for c in s
                .get_array("clients")
                .map(|a| a.iter())
                .into_iter()
                .flatten()
            {
                let Some(c) = c.as_document() else { continue };
                if let Some(id) = id_text(c.get("_id"))
                    && seen.insert(id.clone())
                {
                    items.push(doc! {"_id": oid(&id), "name": text(c, "name").unwrap_or_default()});
                }
            }
        }
        let total = items.len() as i64;
        Ok(Bson::Document(doc! {"items": items, "total": total}))
    }

    /// Sends the SVG to analytics-front with Maestro's graph token.
    async fn send(&self, svg: &str, total: usize) -> Result<(), TaskError> {
        let front = self.svc.analytics_front_uri.as_ref().ok_or_else(|| {
            TaskError::fail(
                "ConfigurationError",
                "MAESTRO_ANALYTICS_FRONT_URI (--analytics-front-uri) is not set: the map cannot be delivered",
            )
        })?;
        let token = self
            .svc
            .graph_token(&self.job.graph_id, &self.job.owner_id)?;
        let mut url = front.clone();
        url.set_path(&format!("{}/graphs", front.path().trim_end_matches('/')));
        let total = total.to_string();
        let answer = self
            .svc
            .http
            .post(url)
            .header("Authorization", format!("JWT {token}"))
            .form(&[("payload", svg), ("total", total.as_str())])
            .send()
            .await;
        let wait = backoff(self.ctx.retries);
        let r = answer.map_err(|e| {
            TaskError::retry_in(
                wait,
                "ConnectionError",
                format!("analytics-front: {}", e.without_url()),
            )
        })?;
        // Delivered, worth another try (5xx, 429), or refused: as every delivery of the
        // catalogue classifies answers.
        match crate::delivery::classify(r.status()) {
            Class::Delivered => Ok(()),
            Class::Retryable => Err(TaskError::retry_in(
                wait,
                "HTTPError",
                format!("analytics-front answered HTTP {}", r.status()),
            )),
            Class::Permanent => Err(TaskError::fail(
                "HTTPError",
                format!("analytics-front refused the map: HTTP {}", r.status()),
            )),
        }
    }
}

/// The servers of the map's applications: per application, their count and first provider;
/// and how many servers in all (one linked to two applications counts once).
struct Servers {
    by_app: HashMap<String, (usize, Option<String>)>,
    distinct: usize,
}

/// The map: its applications as cards, laid out.
struct Drawn {
    cards: Vec<Card>,
    apps: Vec<App>,
    edges: Vec<(usize, usize)>,
    endpoints: Vec<Option<String>>,
    layout: layout::Layout,
}

impl Drawn {
    fn new(
        mut apps: Vec<App>,
        roots: &[String],
        servers: &HashMap<String, (usize, Option<String>)>,
    ) -> Result<Self, layout::TooLarge> {
        // Stable: by name, then id.
        apps.sort_by(|a, b| {
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then_with(|| a.id.cmp(&b.id))
        });
        let index: HashMap<&str, usize> = apps
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.as_str(), i))
            .collect();
        let mut edges = Vec::new();
        let mut endpoints = Vec::new();
        let mut seen = HashSet::new();
        for (i, a) in apps.iter().enumerate() {
            for (dep, endpoint) in &a.deps {
                if let Some(&j) = index.get(dep.as_str())
                    && seen.insert((i, j))
                {
                    edges.push((i, j));
                    endpoints.push(endpoint.clone());
                }
            }
        }
        let root_ix: Vec<usize> = roots
            .iter()
            .filter_map(|r| index.get(r.as_str()).copied())
            .collect();
        let order: Vec<usize> = (0..apps.len()).collect();
        let layout = layout::layout(apps.len(), &edges, &root_ix, &order)?;
        // The layout draws edges in its own order: match each to its endpoint.
        let by_pair: HashMap<(usize, usize), Option<String>> = edges
            .iter()
            .copied()
            .zip(endpoints.iter().cloned())
            .collect();
        let endpoints = layout
            .edges
            .iter()
            .map(|e| by_pair.get(&(e.from, e.to)).cloned().flatten())
            .collect();
        let roots: HashSet<usize> = root_ix.into_iter().collect();
        let cards = apps
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let (count, provider) = servers.get(&a.id).cloned().unwrap_or((0, None));
                Card {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    family: a.family.clone(),
                    provider: provider.or_else(|| a.provider.clone()),
                    servers: count,
                    root: roots.contains(&i),
                }
            })
            .collect();
        Ok(Self {
            cards,
            apps,
            edges,
            endpoints,
            layout,
        })
    }

    fn svg(&self) -> String {
        svg::draw(
            &self.layout,
            &self.cards,
            &self.endpoints,
            "Maestro business map",
        )
    }

    /// What the graph document shows beside the map (Maestro's fields): `info {histograms,
    /// density, conections}`, `ifamilies`, `isystems`, `iservers`.
    fn stats(&self, servers: usize) -> Document {
        let n = self.apps.len();
        let m = self.edges.len();
        let mut histograms = Document::new();
        for (col, count) in self.layout.columns.iter().enumerate() {
            histograms.insert(col.to_string(), *count as i64);
        }
        let density = if n > 1 {
            m as f64 / (n as f64 * (n as f64 - 1.0))
        } else {
            0.0
        };
        let mut families: BTreeMap<String, i64> = BTreeMap::new();
        for a in &self.apps {
            *families
                .entry(a.family.clone().unwrap_or_else(|| "Unknown".into()))
                .or_default() += 1;
        }
        let mut systems = Vec::new();
        let mut seen = HashSet::new();
        for a in &self.apps {
            for (id, name) in &a.systems {
                if seen.insert(id.clone()) {
                    systems.push(doc! {"_id": oid(id), "name": name});
                }
            }
        }
        let families_doc: Document = families
            .into_iter()
            .map(|(k, v)| (k, Bson::Int64(v)))
            .collect();
        doc! {
            "info": {"histograms": histograms, "density": format!("{density:.2}"), "conections": m as i64},
            "ifamilies": {"items": families_doc, "total": n as i64},
            "isystems": {"total": systems.len() as i64, "items": systems},
            "iservers": {"total": servers as i64},
        }
    }
}
