//! `maestro.discovery.scan(provider, conn_id, task)`: scans one connection's cloud account
//! for one kind of resource and keeps Maestro's inventory in step with it.
//!
//! Lifecycle of one run: load the connection document (`connections`), verify its
//! credential JWT (HS256 under `MAESTRO_SECRETJWT`), mark `process.<task>` running, then for
//! each region ask the provider page by page (loop in the task, checking the soft time limit
//! between pages), translate each page in batches of `MAESTRO_TRANSLATE_QTD`, add the common
//! fields (roles, owner, `active`, `checksum`, `updated_at`), upsert only the items whose
//! checksum changed or that were inactive, and finally mark the connection's items of this
//! task that were not seen `active: false` and record `process.<task>` finished. Throttling
//! and network errors retry the task with backoff; refused credentials fail it.
//!
//! See `docs/catalogue/discovery.md` for the documents' shapes.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mongodb::bson::{Bson, DateTime, Document, doc, oid::ObjectId};
use mongodb::{Collection, Database};
use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};

use maestro_contract::ScanRequest;
use maestro_results::{bson_to_json, json_to_bson};

use crate::Services;
use maestro_tasks::TaskArgs;
use maestro_tasks::TaskContext;
use maestro_tasks::TaskError;
use maestro_tasks::{Task, TaskFuture};

/// The task's name, as the API enqueues it on queue `discovery`.
pub const TASK_NAME: &str = maestro_contract::names::TASK_DISCOVERY_SCAN;
/// Collection of the connection documents (in `MAESTRO_MONGO_DATABASE`).
pub const CONNECTIONS: &str = "connections";
/// Upserts of one batch in flight at once.
pub const UPSERTS_IN_FLIGHT_MAX: usize = 8;
/// Ids per `update_many` when unseen items are marked inactive.
pub const DEACTIVATE_CHUNK_IDS_MAX: usize = 500;
/// First retry delay after a transient error; doubled per retry up to [`RETRY_DELAY_MAX`].
pub const RETRY_DELAY_FIRST: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const RETRY_DELAY_MAX: Duration = Duration::from_secs(300);
/// Retries before a scan that keeps meeting transient errors fails.
pub const SCAN_MAX_RETRIES: u32 = 5;
/// Leeway for a credential token's `exp`/`nbf`, in seconds.
pub const CREDENTIAL_LEEWAY_SECS: u64 = 60;

/// What a provider does with a discovery task: the inventory collection it fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    /// Maestro's task name (`server-list`).
    pub task: &'static str,
    /// Inventory collection (`servers`).
    pub collection: &'static str,
    /// Maestro's `family` of the items, where the collection holds several.
    pub family: Option<&'static str>,
    /// Scanned once per connection rather than once per region (S3 buckets).
    pub global: bool,
}

/// One page of translated items and the token of the next page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Provider-specific translated items (each has `unique_id`).
    pub items: Vec<Value>,
    /// Token for the next page; `None` on the last.
    pub next: Option<String>,
}

/// What a provider needs for one page.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    pub credentials: &'a Credentials,
    pub kind: &'a Kind,
    /// Region to scan; empty for a global kind on a connection without regions.
    pub region: &'a str,
    /// The previous page's `next` token.
    pub token: Option<&'a str>,
}

/// The boxed future of a provider call.
pub type ProviderFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// A cloud provider's discovery: which tasks it answers and one page of one of them.
pub trait Provider: Send + Sync + 'static {
    /// Maestro's provider name (`aws`), as in the task's `provider` argument.
    fn name(&self) -> &'static str;
    /// The kind `task` scans, or why not.
    fn kind(&self, task: &str) -> Result<Kind, ProviderError>;
    /// One page of `req.kind` in `req.region`, translated.
    fn page<'a>(&'a self, req: PageRequest<'a>) -> ProviderFuture<'a, Page>;
}

/// Why a provider call did not give a page. Messages never carry credentials.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// A task Maestro knew for this provider that is not scanned here yet.
    #[error("task {task:?} is not implemented for {provider} yet")]
    NotImplemented { provider: String, task: String },
    /// A task this provider does not have.
    #[error("provider {provider} has no task {task:?}")]
    UnknownTask { provider: String, task: String },
    /// The credentials were missing or refused: retrying cannot help.
    #[error("{0}")]
    Auth(String),
    /// Throttling, 5xx, network: worth retrying, after `retry_after` when the provider said.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Any other refusal by the provider's API.
    #[error("{0}")]
    Api(String),
    /// An answer that could not be read, or a request that could not be made.
    #[error("{0}")]
    Invalid(String),
}

/// A connection's decoded credential claims. Debug shows the claim names only.
#[derive(Clone)]
pub struct Credentials(Map<String, Value>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("claims", &self.0.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials from already verified claims.
    pub fn from_claims(claims: Map<String, Value>) -> Self {
        Self(claims)
    }

    /// The first non-empty string claim among `names`.
    pub fn string(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .find_map(|n| self.0.get(*n).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
    }
}

/// Verifies a connection's credential token: HS256 only (any other `alg`, `none` included, is
/// refused), signed with `secret`; `exp`/`nbf` honoured when present (Maestro issued none).
pub fn decode_credentials(token: &str, secret: &str) -> Result<Credentials, ProviderError> {
    let mut v = Validation::new(Algorithm::HS256);
    v.algorithms = vec![Algorithm::HS256];
    v.required_spec_claims = HashSet::new();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = false;
    v.leeway = CREDENTIAL_LEEWAY_SECS;
    let key = DecodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::decode::<Map<String, Value>>(token.trim(), &key, &v)
        .map(|data| Credentials(data.claims))
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::InvalidSignature => {
                    "its signature does not verify with MAESTRO_SECRETJWT"
                }
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    "its algorithm is not HS256"
                }
                ErrorKind::ExpiredSignature => "it has expired",
                ErrorKind::ImmatureSignature => "it is not valid yet (nbf)",
                _ => "it is not a well-formed HS256 JWT",
            };
            ProviderError::Auth(format!(
                "the connection's credential token is refused: {why}"
            ))
        })
}

/// The connection document's parts a scan uses (secrets only in `token`, never printed).
struct Connection {
    id: Bson,
    regions: Vec<String>,
    roles: Value,
    owner: Option<Value>,
    dc_id: Option<Value>,
    dc: Option<Value>,
    token: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("regions", &self.regions)
            .finish_non_exhaustive()
    }
}

impl Connection {
    fn from_document(d: &Document) -> Self {
        let regions = match d.get("regions") {
            Some(Bson::Array(a)) => a
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .filter(|r| !r.is_empty())
                .collect(),
            Some(Bson::String(s)) if !s.is_empty() => vec![s.clone()],
            _ => Vec::new(),
        };
        let roles = match (d.get("roles"), d.get("owner")) {
            (Some(r @ Bson::Array(_)), _) => bson_to_json(r),
            (_, Some(o @ Bson::Document(_))) => Value::Array(vec![bson_to_json(o)]),
            _ => Value::Array(Vec::new()),
        };
        let token = ["conn", "token"]
            .iter()
            .find_map(|k| d.get_str(k).ok())
            .map(str::to_owned);
        Self {
            id: d.get("_id").cloned().unwrap_or(Bson::Null),
            regions,
            roles,
            owner: d.get("owner_user").map(bson_to_json),
            dc_id: d.get("dc_id").map(bson_to_json),
            dc: d.get("dc").map(bson_to_json),
            token,
        }
    }
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

/// What a translated item gets from its connection and scan: Maestro's common fields.
#[derive(Debug, Clone)]
pub struct Origin {
    pub provider: String,
    pub conn_id: String,
    pub task: String,
    pub family: Option<String>,
    pub roles: Value,
    pub owner: Option<Value>,
    pub dc_id: Option<Value>,
    pub dc: Option<Value>,
}

/// Completes a provider's translated item: roles, owner, `discovery` (connection and task,
/// which scope the inactive marking), family, datacenter id/name, `active` (true unless the
/// provider said otherwise) and `checksum`. `updated_at` is set when written.
pub fn finish_item(item: Value, origin: &Origin) -> Option<Map<String, Value>> {
    let Value::Object(mut m) = item else {
        return None;
    };
    if !m.get("unique_id").is_some_and(Value::is_string) {
        return None;
    }
    m.insert("roles".into(), origin.roles.clone());
    if let Some(o) = &origin.owner {
        m.insert("owner".into(), o.clone());
    }
    if let Some(f) = &origin.family {
        m.entry("family")
            .or_insert_with(|| Value::String(f.clone()));
    }
    m.insert(
        "discovery".into(),
        json!({"provider": origin.provider, "conn_id": origin.conn_id, "task": origin.task}),
    );
    if let Some(Value::Object(dc)) = m.get_mut("datacenters") {
        if let Some(id) = &origin.dc_id {
            dc.insert("_id".into(), id.clone());
        }
        if let Some(name) = &origin.dc {
            dc.insert("name".into(), name.clone());
        }
    }
    m.entry("active").or_insert(Value::Bool(true));
    m.remove("updated_at");
    let sum = checksum(&m);
    m.insert("checksum".into(), Value::String(sum));
    Some(m)
}

/// Counts of one scan.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    seen: u64,
    written: u64,
    deactivated: u64,
}

/// Upserts the batch's items whose checksum changed or whose stored `active` differs;
/// returns how many were written.
async fn store_batch(
    coll: &Collection<Document>,
    batch: Vec<Map<String, Value>>,
) -> Result<u64, mongodb::error::Error> {
    let ids: Vec<Bson> = batch
        .iter()
        .filter_map(|m| m.get("unique_id").and_then(Value::as_str))
        .map(|s| Bson::String(s.to_owned()))
        .collect();
    let mut existing = std::collections::HashMap::new();
    let mut cursor = coll
        .find(doc! {"unique_id": {"$in": ids}})
        .projection(doc! {"unique_id": 1, "checksum": 1, "active": 1})
        .await?;
    while let Some(d) = cursor.try_next().await? {
        let id = d.get_str("unique_id").unwrap_or_default().to_owned();
        let sum = d.get_str("checksum").unwrap_or_default().to_owned();
        let active = d.get_bool("active").ok();
        existing.insert(id, (sum, active));
    }
    let now = DateTime::now();
    let changed: Vec<Document> = batch
        .into_iter()
        .filter(|m| {
            let id = m
                .get("unique_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let sum = m
                .get("checksum")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let active = m.get("active").and_then(Value::as_bool);
            existing
                .get(id)
                .is_none_or(|(old, old_active)| old != sum || *old_active != active)
        })
        .filter_map(|m| match json_to_bson(&Value::Object(m)) {
            Bson::Document(mut d) => {
                d.insert("updated_at", now);
                Some(d)
            }
            _ => None,
        })
        .collect();
    let written = changed.len() as u64;
    let results: Vec<Result<(), mongodb::error::Error>> = futures_util::stream::iter(changed)
        .map(|d| async move {
            let id = d.get("unique_id").cloned().unwrap_or(Bson::Null);
            coll.update_one(doc! {"unique_id": id}, doc! {"$set": d})
                .upsert(true)
                .await
                .map(|_| ())
        })
        .buffer_unordered(UPSERTS_IN_FLIGHT_MAX)
        .collect()
        .await;
    // Unordered, like Maestro's bulk: every upsert is tried, the first error is reported.
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(written)
}

/// Marks the connection's active items of this task that the scan did not see inactive.
async fn deactivate_unseen(
    coll: &Collection<Document>,
    origin: &Origin,
    seen: &HashSet<String>,
) -> Result<u64, mongodb::error::Error> {
    let scope = doc! {
        "discovery.conn_id": &origin.conn_id,
        "discovery.task": &origin.task,
        "active": true,
    };
    let mut cursor = coll
        .find(scope.clone())
        .projection(doc! {"unique_id": 1})
        .await?;
    let mut gone = Vec::new();
    while let Some(d) = cursor.try_next().await? {
        if let Ok(id) = d.get_str("unique_id")
            && !seen.contains(id)
        {
            gone.push(Bson::String(id.to_owned()));
        }
    }
    let mut count = 0;
    for chunk in gone.chunks(DEACTIVATE_CHUNK_IDS_MAX) {
        let mut filter = scope.clone();
        filter.insert("unique_id", doc! {"$in": chunk.to_vec()});
        let r = coll
            .update_many(
                filter,
                doc! {"$set": {"active": false, "updated_at": DateTime::now()}},
            )
            .await?;
        count += r.modified_count;
    }
    Ok(count)
}

/// One scan's fixed inputs.
struct Job<'a> {
    provider: &'a dyn Provider,
    kind: &'a Kind,
    /// Regions in scan order (one, possibly empty, for a global kind).
    regions: Vec<String>,
    creds: &'a Credentials,
    origin: &'a Origin,
}

/// State words of `process.<task>` on the connection document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanState {
    Running,
    Finished,
    Error,
}

impl ScanState {
    /// The word stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanState::Running => "running",
            ScanState::Finished => "finished",
            ScanState::Error => "error",
        }
    }
}

/// `maestro.discovery.scan`.
pub struct Scan {
    svc: Arc<Services>,
    providers: Vec<Arc<dyn Provider>>,
}

impl Scan {
    /// The scan task over `providers`.
    pub fn new(svc: &Arc<Services>, providers: Vec<Arc<dyn Provider>>) -> Self {
        Self {
            svc: svc.clone(),
            providers,
        }
    }

    fn db(&self) -> &Database {
        &self.svc.inventory
    }

    async fn progress(&self, conn_id: &Bson, task: &str, state: ScanState, msg: &str, count: u64) {
        let field = format!("process.{task}");
        let set = doc! {
            field: {
                "state": state.as_str(),
                "msg": msg,
                "at": DateTime::now(),
                "count": count as i64,
            }
        };
        let r = self
            .db()
            .collection::<Document>(CONNECTIONS)
            .update_one(doc! {"_id": conn_id.clone()}, doc! {"$set": set})
            .await;
        if let Err(e) = r {
            tracing::warn!(task, error = %e, "discovery_progress_not_recorded");
        }
    }

    async fn load_connection(&self, conn_id: &str) -> Result<Option<Connection>, TaskError> {
        let mut ids = vec![Bson::String(conn_id.to_owned())];
        if let Ok(oid) = ObjectId::parse_str(conn_id) {
            ids.insert(0, Bson::ObjectId(oid));
        }
        let found = self
            .db()
            .collection::<Document>(CONNECTIONS)
            .find_one(doc! {"_id": {"$in": ids}})
            .await
            .map_err(|e| mongo_retry(e, 0))?;
        Ok(found.as_ref().map(Connection::from_document))
    }

    async fn scan(
        &self,
        ctx: &TaskContext,
        job: &Job<'_>,
        tally: &mut Tally,
    ) -> Result<(), TaskError> {
        let Job {
            provider,
            kind,
            regions,
            creds,
            origin,
        } = job;
        let coll = self.db().collection::<Document>(kind.collection);
        let batch_size = self.svc.cfg.translate_qtd.max(1);
        let mut seen: HashSet<String> = HashSet::new();
        for region in regions.iter() {
            let mut token: Option<String> = None;
            loop {
                if ctx.soft_limit_reached() {
                    return Err(ctx.soft_limit_error());
                }
                let page = provider
                    .page(PageRequest {
                        credentials: creds,
                        kind,
                        region,
                        token: token.as_deref(),
                    })
                    .await
                    .map_err(|e| provider_error(e, ctx.retries))?;
                let items: Vec<Map<String, Value>> = page
                    .items
                    .into_iter()
                    .filter_map(|i| finish_item(i, origin))
                    .collect();
                for chunk in items.chunks(batch_size) {
                    for m in chunk {
                        if let Some(id) = m.get("unique_id").and_then(Value::as_str) {
                            seen.insert(id.to_owned());
                        }
                    }
                    tally.written += store_batch(&coll, chunk.to_vec())
                        .await
                        .map_err(|e| mongo_retry(e, ctx.retries))?;
                }
                tally.seen += items.len() as u64;
                match page.next {
                    // A provider repeating its token would loop forever: stop instead.
                    Some(next) if token.as_deref() != Some(next.as_str()) => token = Some(next),
                    _ => break,
                }
            }
        }
        tally.deactivated = deactivate_unseen(&coll, origin, &seen)
            .await
            .map_err(|e| mongo_retry(e, ctx.retries))?;
        Ok(())
    }

    async fn run_scan(&self, ctx: &TaskContext, args: &TaskArgs) -> Result<Value, TaskError> {
        let req: ScanRequest = args.parse(&ScanRequest::PARAMS)?;
        req.validate()?;
        let ScanRequest {
            provider: provider_name,
            conn_id,
            task,
        } = req;
        let provider = self
            .providers
            .iter()
            .find(|p| p.name() == provider_name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.providers.iter().map(|p| p.name()).collect();
                TaskError::value_error(format!(
                    "provider {provider_name:?} is not one of {}",
                    known.join(", ")
                ))
            })?
            .clone();
        let conn = self.load_connection(&conn_id).await?.ok_or_else(|| {
            TaskError::fail("LookupError", format!("connection {conn_id:?} not found"))
        })?;
        let kind = match provider.kind(&task) {
            Ok(k) => k,
            Err(e) => {
                self.progress(&conn.id, &task, ScanState::Error, &e.to_string(), 0)
                    .await;
                return Err(provider_error(e, ctx.retries));
            }
        };
        let refuse = async |msg: String, exc: &str| {
            self.progress(&conn.id, &task, ScanState::Error, &msg, 0)
                .await;
            TaskError::fail(exc, msg)
        };
        let Some(secret) = self.svc.cfg.secretjwt.as_deref() else {
            return Err(refuse(
                "MAESTRO_SECRETJWT (--secretjwt) is not set: connection credentials cannot be read"
                    .into(),
                "RuntimeError",
            )
            .await);
        };
        let Some(token) = conn.token.as_deref() else {
            return Err(refuse(
                "the connection has no credential token (field conn)".into(),
                "PermissionError",
            )
            .await);
        };
        let creds = match decode_credentials(token, secret) {
            Ok(c) => c,
            Err(e) => return Err(refuse(e.to_string(), "PermissionError").await),
        };
        if conn.regions.is_empty() && !kind.global {
            return Err(refuse("the connection has no regions".into(), "ValueError").await);
        }
        let origin = Origin {
            provider: provider.name().to_owned(),
            conn_id: conn_id.clone(),
            task: task.clone(),
            family: kind.family.map(str::to_owned),
            roles: conn.roles.clone(),
            owner: conn.owner.clone(),
            dc_id: conn.dc_id.clone(),
            dc: conn.dc.clone(),
        };
        self.progress(&conn.id, &task, ScanState::Running, "In progress", 0)
            .await;
        let mut tally = Tally::default();
        let job = Job {
            provider: provider.as_ref(),
            kind: &kind,
            regions: if kind.global {
                vec![conn.regions.first().cloned().unwrap_or_default()]
            } else {
                conn.regions.clone()
            },
            creds: &creds,
            origin: &origin,
        };
        let outcome = self.scan(ctx, &job, &mut tally).await;
        match outcome {
            Ok(()) => {
                let msg = format!(
                    "{} items found, {} written, {} no longer present",
                    tally.seen, tally.written, tally.deactivated
                );
                self.progress(&conn.id, &task, ScanState::Finished, &msg, tally.seen)
                    .await;
                tracing::info!(
                    conn_id,
                    task,
                    seen = tally.seen,
                    written = tally.written,
                    deactivated = tally.deactivated,
                    "discovery_scan_finished"
                );
                Ok(json!({
                    "provider": provider.name(),
                    "conn_id": conn_id,
                    "task": task,
                    "collection": kind.collection,
                    "regions": if kind.global { Vec::new() } else { conn.regions.clone() },
                    "seen": tally.seen,
                    "written": tally.written,
                    "deactivated": tally.deactivated,
                }))
            }
            Err(e) => {
                let (state, msg) = match &e {
                    TaskError::Retry { exc, .. } => {
                        (ScanState::Running, format!("retrying: {}", exc.repr()))
                    }
                    other => (ScanState::Error, other.to_string()),
                };
                self.progress(&conn.id, &task, state, &msg, tally.seen)
                    .await;
                tracing::warn!(conn_id, task, seen = tally.seen, error = %e, "discovery_scan_stopped");
                Err(e)
            }
        }
    }
}

/// The retry delay after `retries` earlier retries: the project's one backoff, from
/// [`RETRY_DELAY_FIRST`] up to [`RETRY_DELAY_MAX`].
fn backoff(retries: u32) -> Duration {
    maestro_tasks::retry_delay(RETRY_DELAY_FIRST, RETRY_DELAY_MAX, retries).min(RETRY_DELAY_MAX)
}

fn mongo_retry(e: mongodb::error::Error, retries: u32) -> TaskError {
    TaskError::retry_in(
        backoff(retries),
        "OperationalError",
        format!("MongoDB: {e}"),
    )
}

fn provider_error(e: ProviderError, retries: u32) -> TaskError {
    match e {
        ProviderError::NotImplemented { .. } => {
            TaskError::fail("NotImplementedError", e.to_string())
        }
        ProviderError::UnknownTask { .. } => TaskError::value_error(e.to_string()),
        ProviderError::Auth(m) => TaskError::fail("PermissionError", m),
        ProviderError::Transient {
            message,
            retry_after,
        } => TaskError::retry_in(
            retry_after.unwrap_or_else(|| backoff(retries)),
            "ConnectionError",
            message,
        ),
        ProviderError::Api(m) | ProviderError::Invalid(m) => TaskError::fail("RuntimeError", m),
    }
}

impl Task for Scan {
    fn name(&self) -> &str {
        TASK_NAME
    }

    fn max_retries(&self) -> Option<u32> {
        Some(SCAN_MAX_RETRIES)
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext, args: &'a TaskArgs) -> TaskFuture<'a> {
        Box::pin(self.run_scan(ctx, args))
    }
}

/// The discovery tasks over `providers`, for [`crate::register`].
pub fn all(svc: &Arc<Services>, providers: Vec<Arc<dyn Provider>>) -> Vec<Arc<dyn Task>> {
    vec![Arc::new(Scan::new(svc, providers))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};

    fn token(alg: Algorithm, key: &str, claims: &Value) -> String {
        encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .expect("encoded")
    }

    #[test]
    fn credential_tokens_are_verified_hs256_only() {
        let claims = json!({"access": "AKIA1", "secret": "shh"});
        let ok = decode_credentials(&token(Algorithm::HS256, "k", &claims), "k").expect("valid");
        assert_eq!(ok.string(&["access"]), Some("AKIA1"));
        assert!(!format!("{ok:?}").contains("shh"));
        let alt = json!({"access_key": "AKIA2", "secret_key": "x"});
        let ok = decode_credentials(&token(Algorithm::HS256, "k", &alt), "k").expect("valid");
        assert_eq!(ok.string(&["access", "access_key"]), Some("AKIA2"));

        let wrong = decode_credentials(&token(Algorithm::HS256, "other", &claims), "k")
            .expect_err("wrong key");
        assert!(wrong.to_string().contains("signature"), "{wrong}");
        assert!(!wrong.to_string().contains("shh"));

        let hs512 =
            decode_credentials(&token(Algorithm::HS512, "k", &claims), "k").expect_err("other alg");
        assert!(matches!(hs512, ProviderError::Auth(_)));

        // alg none: header {"alg":"none"}, claims, empty signature.
        let unsigned = format!(
            "{}.{}.",
            base64_url(br#"{"alg":"none","typ":"JWT"}"#),
            base64_url(claims.to_string().as_bytes())
        );
        assert!(matches!(
            decode_credentials(&unsigned, "k"),
            Err(ProviderError::Auth(_))
        ));
        let expired = json!({"access": "a", "secret": "b", "exp": 1_000_000});
        let e =
            decode_credentials(&token(Algorithm::HS256, "k", &expired), "k").expect_err("expired");
        assert!(e.to_string().contains("expired"), "{e}");
    }

    /// Unpadded base64url, enough for a hand-made token.
    fn base64_url(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            let chars = c.len() + 1;
            for i in 0..chars {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    fn origin() -> Origin {
        Origin {
            provider: "aws".into(),
            conn_id: "c1".into(),
            task: "server-list".into(),
            family: None,
            roles: json!([{"_id": "u1", "refs": "users", "role": 7}]),
            owner: None,
            dc_id: Some(json!("dc1")),
            dc: None,
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
                          "datacenters": {"provider": "AWS", "region": "us-east-1"}});
        let m = finish_item(item.clone(), &origin()).expect("item");
        assert_eq!(m["roles"][0]["_id"], "u1");
        assert_eq!(m["active"], true);
        assert_eq!(m["datacenters"]["_id"], "dc1");
        assert_eq!(m["discovery"]["conn_id"], "c1");
        assert_eq!(m["checksum"].as_str().map(str::len), Some(40));
        let again = finish_item(item, &origin()).expect("item");
        assert_eq!(m["checksum"], again["checksum"], "stable");
        let mut other = origin();
        other.roles = json!([]);
        let moved = finish_item(json!({"unique_id": "i-1"}), &other).expect("item");
        assert_ne!(m["checksum"], moved["checksum"]);
        assert!(finish_item(json!({"name": "no id"}), &origin()).is_none());
    }

    #[test]
    fn connection_roles_come_from_roles_or_owner_and_ids_are_strings() {
        let oid = ObjectId::new();
        let d = doc! {"_id": oid, "regions": ["us-east-1", "eu-west-1"],
        "roles": [{"_id": oid, "refs": "users", "role": 7}],
        "conn": "x.y.z", "dc_id": "dc"};
        let c = Connection::from_document(&d);
        assert_eq!(c.regions, ["us-east-1", "eu-west-1"]);
        assert_eq!(c.roles[0]["_id"], oid.to_hex());
        assert_eq!(c.roles[0]["role"], 7);
        assert!(!format!("{c:?}").contains("x.y.z"));
        let d = doc! {"_id": "c2", "owner": {"_id": "u", "refs": "teams", "role": 3}, "token": "t"};
        let c = Connection::from_document(&d);
        assert_eq!(c.roles, json!([{"_id": "u", "refs": "teams", "role": 3}]));
        assert_eq!(c.token.as_deref(), Some("t"));
    }

    #[test]
    fn errors_state_intent() {
        assert!(matches!(
            provider_error(ProviderError::Auth("no".into()), 0),
            TaskError::Fail { .. }
        ));
        let t = provider_error(
            ProviderError::Transient {
                message: "slow".into(),
                retry_after: None,
            },
            2,
        );
        // 5 s doubled twice, plus up to as much again as jitter.
        assert!(matches!(t, TaskError::Retry { countdown: Some(d), .. }
            if d >= Duration::from_secs(20) && d <= Duration::from_secs(40)));
        assert_eq!(backoff(30), RETRY_DELAY_MAX);
        let e = provider_error(
            ProviderError::NotImplemented {
                provider: "aws".into(),
                task: "dbs-list".into(),
            },
            0,
        );
        assert!(e.to_string().contains("NotImplementedError"), "{e}");
        assert!(e.to_string().contains("not implemented for aws yet"), "{e}");
    }
}
