//! `maestro.discovery.scan(provider, conn_id, task)`: scans one connection's cloud account
//! for one kind of resource and keeps Maestro's inventory in step with it, writing what
//! Maestro's own discovery wrote (`docs/catalogue/discovery.md` has the shapes).
//!
//! Lifecycle of one run: check the request against the provider table (`maestro_contract::
//! providers`), load the connection document (`connections`), verify its credential JWT
//! (HS256 under `MAESTRO_SECRETJWT`), mark `process.<task>` `warning` "In progress", then for
//! each region (the label cut at its first space for the API) ask the provider page by page
//! (checking the soft time limit between pages), translate, add Maestro's common fields, write
//! only the items whose checksum changed or that were inactive, and mark the connection's
//! items of this kind that the region no longer has `active: false`. Finally `process.<task>`
//! says `success` (or `danger` with the reason) and the owner's websocket channel hears
//! "Finish Sync". Throttling and network errors retry the task with backoff; refused
//! credentials fail it. The providers it scans with are worker state ([`Providers`]), as the
//! services are.
//!
//! - `provider`    the `Provider` trait, kinds, pages, provider errors
//! - `credentials` the connection's credential JWT
//! - `flavors`     cpu and memory of servers by instance type (Maestro's hook)
//! - `links`       servers linked to the owner's applications by tag
//! - `http`        a provider's answer read within limits, the backoff of its requests
//! - `connection`  the connection document, region labels
//! - `inventory`   items as Maestro stores them: common fields, checksum, writes, retirement
//! - `rules`       building blocks of the JSON providers' field rules
//! - `tokens`      login tokens kept between pages and scans (OpenStack, Azure)

mod connection;
mod credentials;
mod flavors;
pub mod http;
mod inventory;
mod links;
mod provider;
pub mod rules;
pub mod tokens;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use maestro_contract::ScanRequest;
use maestro_contract::notify::{
    AuditMethod, AuditRecord, Notification, NotifyType, ws_notification,
};
use maestro_contract::providers::{ScanState, progress_update};
use maestro_tasks::{TaskContext, TaskError, TaskResult, task};
use mongodb::Database;
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use serde_json::{Value, json};

pub use connection::api_region;
pub use credentials::{CREDENTIAL_LEEWAY_SECS, Credentials, decode_credentials};
pub use flavors::{FLAVORS_PUBLIC, Flavors};
pub use inventory::{
    Origin, ROLE_WRITE, Written, canonical_json, checksum, deactivate_unseen, ensure_indexes,
    finish_item, store_batch,
};
pub use links::{LINKS_PER_TAG_MAX, Links};
pub use provider::{Kind, Page, PageRequest, Provider, ProviderError, ProviderFuture};

use crate::Services;
use connection::Connection;

/// The task's name, as the API enqueues it on queue `discovery`.
pub const TASK_NAME: &str = maestro_contract::names::TASK_DISCOVERY_SCAN;
/// Collection of the connection documents (in `MAESTRO_MONGO_DATABASE`).
pub const CONNECTIONS: &str = "connections";
/// First retry delay after a transient error; doubled per retry up to [`RETRY_DELAY_MAX`].
pub const RETRY_DELAY_FIRST: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const RETRY_DELAY_MAX: Duration = Duration::from_secs(300);
/// Audit records being sent at once.
pub const AUDITS_IN_FLIGHT_MAX: usize = 32;
/// Retries before a scan that keeps meeting transient errors fails.
pub const SCAN_MAX_RETRIES: u32 = 5;
/// Pages read of one call in one region before the scan gives up on an endpoint that never
/// stops paging (a hostile one can hand out fresh tokens forever).
pub const PAGES_PER_CALL_MAX: u64 = 10_000;

/// Counts of one scan.
#[derive(Debug, Default, Clone)]
struct Tally {
    seen: u64,
    written: u64,
    deactivated: u64,
    /// Calls the endpoint does not answer (`cloudfront.list_streaming_distributions`), with
    /// the first error met.
    unsupported: Vec<(String, String)>,
    /// Calls answered, in any region.
    answered: u64,
    /// Pages read.
    pages: u64,
}

/// One scan's fixed inputs.
struct Job<'a> {
    provider: &'a dyn Provider,
    kind: &'a Kind,
    /// Region labels in scan order; `None` once for a global kind.
    regions: Vec<Option<String>>,
    creds: &'a Credentials,
    /// The connection's non-secret settings.
    settings: &'a serde_json::Map<String, Value>,
    /// The connection's owners.
    owners: &'a [String],
    /// One origin per API call of the task, in the contract's order.
    origins: Vec<Origin>,
}

/// The providers a worker scans with: worker state, added by [`crate::register`].
pub struct Providers(pub Vec<Arc<dyn Provider>>);

/// `maestro.discovery.scan(provider, conn_id, task)`: see the module documentation.
#[task(name = TASK_NAME, max_retries = SCAN_MAX_RETRIES)]
pub async fn scan(
    ctx: &TaskContext,
    #[state] svc: &Arc<Services>,
    #[state] providers: &Providers,
    #[args] req: ScanRequest,
) -> TaskResult<Value> {
    Scan {
        svc,
        providers: &providers.0,
    }
    .run_scan(ctx, req)
    .await
}

/// One scan, over the worker's shared services and providers.
struct Scan<'a> {
    svc: &'a Services,
    providers: &'a [Arc<dyn Provider>],
}

impl Scan<'_> {
    fn db(&self) -> &Database {
        &self.svc.inventory
    }

    /// Writes `process.<task> = {state, msg}` on the connection (a failure is logged only).
    async fn progress(&self, conn: &Connection, task: &str, state: ScanState, msg: &str) {
        let set = progress_update(task, state, msg);
        let r = self
            .db()
            .collection::<Document>(CONNECTIONS)
            .update_one(doc! {"_id": conn.id.clone()}, doc! {"$set": set})
            .await;
        if let Err(e) = r {
            tracing::warn!(task, error = %e, "discovery_progress_not_recorded");
        }
    }

    /// Tells the connection's owner the scan ended ("Finish Sync - [AWS] server-list"), on
    /// the callers Maestro's UI listens to; a notification that cannot be sent is logged.
    async fn notify(
        &self,
        ctx: &TaskContext,
        conn: &Connection,
        label: &str,
        task: &str,
        kind: NotifyType,
    ) {
        let Some(owner) = conn.owner_id.as_deref() else {
            return;
        };
        let title = conn.dc.as_deref().unwrap_or(label);
        let callers = [
            "connections-update".to_owned(),
            format!("connections-{}", conn.id_text),
        ];
        let callers: Vec<&str> = callers.iter().map(String::as_str).collect();
        let sig = ws_notification(
            owner,
            title,
            &format!("Finish Sync - [{label}] {task}"),
            kind,
            &callers,
        )
        .signature()
        .with_option(
            "queue",
            self.svc
                .queue_for(maestro_contract::names::TASK_NOTIFY)
                .into(),
        );
        if let Err(e) = ctx.send(sig).await {
            tracing::warn!(task, error = %e, "discovery_notification_not_sent");
        }
    }

    /// Maestro's audit record of each written item (`POST` when inserted, `PUT` when
    /// rewritten), sent through `maestro.notify` when this worker has an audit service
    /// (`--audit-uri`), as Maestro's discovery did. A record that cannot be sent fails the
    /// scan for a retry; the item is stored by then, so the retry finds it unchanged and that
    /// one record is not sent again (the inventory loses nothing; the audit trail can miss
    /// that record, which the broker's confirms make rare).
    async fn audit(
        &self,
        ctx: &TaskContext,
        collection: &str,
        written: Vec<Written>,
    ) -> Result<(), TaskError> {
        if self.svc.cfg.audit_uri.is_none() {
            return Ok(());
        }
        let queue = self
            .svc
            .queue_for(maestro_contract::names::TASK_NOTIFY)
            .to_owned();
        let records = written.into_iter().filter_map(|w| {
            let entity_id = match &w.id {
                Bson::ObjectId(o) => o.to_hex(),
                Bson::String(s) => s.clone(),
                _ => return None,
            };
            let mut body = w.item;
            body.remove("checksum");
            Some(
                Notification::Audit(AuditRecord {
                    entity: collection.to_owned(),
                    entity_id,
                    method: if w.inserted {
                        AuditMethod::POST
                    } else {
                        AuditMethod::PUT
                    },
                    user: None,
                    body,
                })
                .signature()
                .with_option("queue", queue.clone().into()),
            )
        });
        let sent: Vec<Result<String, TaskError>> = futures_util::stream::iter(records)
            .map(|sig| ctx.send(sig))
            .buffer_unordered(AUDITS_IN_FLIGHT_MAX)
            .collect()
            .await;
        sent.into_iter().try_for_each(|r| r.map(|_| ()))
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
            settings,
            owners,
            origins,
        } = job;
        let coll = self.db().collection::<Document>(kind.collection);
        // Calls whose items share a family and item provider (ELB's two APIs) are retired
        // together: each call's scope is the first call with the same pair.
        let scopes: Vec<usize> = origins
            .iter()
            .map(|o| {
                origins
                    .iter()
                    .position(|p| p.family == o.family && p.item_provider == o.item_provider)
                    .unwrap_or_default()
            })
            .collect();
        ensure_indexes(&coll, &origins[0].key_comparer).await;
        // Flavors and applications looked up once per scan, for the server hooks.
        let mut hooks = (Flavors::default(), Links::default());
        for label in regions {
            let region = label.as_deref().map(api_region).unwrap_or_default();
            let mut seen: Vec<HashSet<String>> = vec![HashSet::new(); origins.len()];
            // A scope with a call left unanswered retires nothing in this region.
            let mut complete = vec![true; origins.len()];
            'calls: for (command, origin) in origins.iter().enumerate() {
                let request = |token: Option<String>| async move {
                    let page = provider
                        .page(PageRequest {
                            credentials: creds,
                            settings,
                            owners,
                            connection: &origin.conn_id,
                            kind,
                            command,
                            region,
                            token: token.as_deref(),
                        })
                        .await;
                    (token, page)
                };
                // The next page is asked for while this one is translated and stored, so the
                // scan waits for the slower of the cloud and the store, not for both in turn.
                let mut answer = request(None).await;
                let mut pages_of_call: u64 = 0;
                loop {
                    let (token, page) = answer;
                    let mut page = match page {
                        Ok(p) => p,
                        Err(ProviderError::Unsupported(m)) => {
                            complete[scopes[command]] = false;
                            let call = m.split(':').next().unwrap_or_default().to_owned();
                            if !tally.unsupported.iter().any(|(c, _)| *c == call) {
                                tally.unsupported.push((call, m));
                            }
                            continue 'calls;
                        }
                        Err(e) => return Err(provider_error(e, ctx.retries)),
                    };
                    if token.is_none() {
                        tally.answered += 1;
                    }
                    if page.partial {
                        complete[scopes[command]] = false;
                    }
                    tally.pages += 1;
                    pages_of_call += 1;
                    if pages_of_call > PAGES_PER_CALL_MAX {
                        return Err(provider_error(
                            ProviderError::Invalid(format!(
                                "more than {PAGES_PER_CALL_MAX} pages: the endpoint keeps answering with a next page"
                            )),
                            ctx.retries,
                        ));
                    }
                    // A provider repeating its token would loop forever: stop instead.
                    let next = page.next.take().filter(|n| token.as_deref() != Some(n));
                    let store = self.store_page(
                        ctx,
                        &coll,
                        origin,
                        label.as_deref(),
                        &mut hooks,
                        page.items,
                    );
                    let (stored, following) = match next {
                        Some(n) if !ctx.soft_limit_reached() => {
                            let (stored, following) = tokio::join!(store, request(Some(n)));
                            (stored, Some(following))
                        }
                        _ => (store.await, None),
                    };
                    let (ids, written) = stored?;
                    tally.seen += ids.len() as u64;
                    tally.written += written;
                    seen[scopes[command]].extend(ids);
                    if ctx.soft_limit_reached() {
                        return Err(ctx.soft_limit_error());
                    }
                    match following {
                        Some(f) => answer = f,
                        None => break,
                    }
                }
            }
            // Every region the scan read in full retires what it no longer has (Maestro's
            // discovery did so for the last region only).
            for (command, origin) in origins.iter().enumerate() {
                if scopes[command] != command || !complete[command] {
                    continue;
                }
                tally.deactivated +=
                    deactivate_unseen(&coll, origin, label.as_deref(), &seen[command])
                        .await
                        .map_err(|e| mongo_retry(e, ctx.retries))?;
            }
        }
        Ok(())
    }

    /// Translates one page's items into Maestro's documents (with the server hooks: cpu and
    /// memory by flavor, applications by tag), stores them in batches of
    /// `MAESTRO_TRANSLATE_QTD` and audits what was written; the `unique_id`s seen and the
    /// number of items written.
    async fn store_page(
        &self,
        ctx: &TaskContext,
        coll: &mongodb::Collection<Document>,
        origin: &Origin,
        label: Option<&str>,
        hooks: &mut (Flavors, Links),
        mut items: Vec<Value>,
    ) -> Result<(Vec<String>, u64), TaskError> {
        if coll.name() == "servers" {
            hooks
                .0
                .complete(self.db(), &mut items)
                .await
                .map_err(|e| mongo_retry(e, ctx.retries))?;
            hooks
                .1
                .complete(self.db(), origin.owner_id.as_deref(), &mut items)
                .await
                .map_err(|e| mongo_retry(e, ctx.retries))?;
        }
        let items: Vec<_> = items
            .into_iter()
            .filter_map(|i| finish_item(i, origin, label))
            .collect();
        let ids = items
            .iter()
            .filter_map(|m| m.get("unique_id").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        let mut count = 0;
        let batch_size = self.svc.cfg.translate_qtd.max(1);
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let chunk: Vec<_> = items.by_ref().take(batch_size).collect();
            let written = store_batch(coll, origin, chunk)
                .await
                .map_err(|e| store_error(e, ctx.retries))?;
            count += written.len() as u64;
            self.audit(ctx, coll.name(), written).await?;
        }
        Ok((ids, count))
    }

    async fn run_scan(&self, ctx: &TaskContext, req: ScanRequest) -> Result<Value, TaskError> {
        let (spec, task_spec) = req.check()?;
        let ScanRequest { conn_id, task, .. } = req;
        let provider = self
            .providers
            .iter()
            .find(|p| p.name() == spec.key)
            .ok_or_else(|| {
                TaskError::value_error(format!(
                    "provider {} is not scanned by this worker",
                    spec.label
                ))
            })?
            .clone();
        let conn = self.load_connection(&conn_id).await?.ok_or_else(|| {
            TaskError::fail("LookupError", format!("connection {conn_id:?} not found"))
        })?;
        let label = conn
            .provider
            .clone()
            .unwrap_or_else(|| spec.label.to_owned());
        let kind = match provider.kind(&task) {
            Ok(k) => k,
            Err(e) => {
                self.progress(&conn, &task, ScanState::Danger, &e.to_string())
                    .await;
                return Err(provider_error(e, ctx.retries));
            }
        };
        let refuse = async |msg: String, exc: &str| {
            self.progress(&conn, &task, ScanState::Danger, &msg).await;
            self.notify(ctx, &conn, &label, &task, NotifyType::Danger)
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
        let origins = task_spec
            .commands
            .iter()
            .map(|command| Origin {
                provider_label: label.clone(),
                conn_id: conn.id_text.clone(),
                task: task.clone(),
                family: command.family.map(str::to_owned),
                item_provider: command.label.map(str::to_owned),
                roles: conn.roles.clone(),
                owner_id: conn.owner_id.clone(),
                dc: conn.dc.clone(),
                dc_id: conn.dc_id.clone(),
                key_comparer: command.key_comparer.to_owned(),
                item_regions: kind.global && kind.item_regions,
            })
            .collect();
        self.progress(
            &conn,
            &task,
            ScanState::Warning,
            &format!("In progress. {task}"),
        )
        .await;
        let mut tally = Tally::default();
        let job = Job {
            provider: provider.as_ref(),
            kind: &kind,
            regions: if kind.global {
                vec![None]
            } else {
                conn.regions.iter().cloned().map(Some).collect()
            },
            creds: &creds,
            settings: &conn.settings,
            owners: &conn.owners,
            origins,
        };
        let mut outcome = self.scan(ctx, &job, &mut tally).await;
        // Not one call answered anywhere: the task did nothing, which is a failure.
        if outcome.is_ok()
            && tally.answered == 0
            && let Some((_, first)) = tally.unsupported.first()
        {
            outcome = Err(TaskError::fail("NotImplementedError", first.clone()));
        }
        match outcome {
            Ok(()) => {
                let mut msg = if tally.written == 0 && tally.deactivated == 0 {
                    "Success. No changes".to_owned()
                } else {
                    "Success.".to_owned()
                };
                if !tally.unsupported.is_empty() {
                    let calls: Vec<&str> =
                        tally.unsupported.iter().map(|(c, _)| c.as_str()).collect();
                    msg.push_str(&format!(
                        " Not answered by the endpoint: {}.",
                        calls.join(", ")
                    ));
                }
                self.progress(&conn, &task, ScanState::Success, &msg).await;
                self.notify(ctx, &conn, &label, &task, NotifyType::Success)
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
                    "provider": spec.key,
                    "conn_id": conn_id,
                    "task": task,
                    "collection": kind.collection,
                    "regions": if kind.global { Vec::new() } else { conn.regions.clone() },
                    "seen": tally.seen,
                    "written": tally.written,
                    "deactivated": tally.deactivated,
                    "pages": tally.pages,
                    "unsupported": tally.unsupported.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
                }))
            }
            Err(e) => {
                match &e {
                    // The last retry allowed is spent: the task fails, and the connection
                    // says so rather than "Retrying".
                    TaskError::Retry { exc, .. } if ctx.retries >= SCAN_MAX_RETRIES => {
                        let msg =
                            format!("Gave up after {SCAN_MAX_RETRIES} retries: {}", exc.repr());
                        self.progress(&conn, &task, ScanState::Danger, &msg).await;
                        self.notify(ctx, &conn, &label, &task, NotifyType::Danger)
                            .await;
                    }
                    TaskError::Retry { exc, .. } => {
                        let msg = format!("Retrying: {}", exc.repr());
                        self.progress(&conn, &task, ScanState::Warning, &msg).await;
                    }
                    other => {
                        self.progress(&conn, &task, ScanState::Danger, &other.to_string())
                            .await;
                        self.notify(ctx, &conn, &label, &task, NotifyType::Danger)
                            .await;
                    }
                }
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

/// A write of the inventory that failed: retried when the server was away, a failure when it
/// refused the write for good (a document too large, a validation rule), which a retry
/// would meet again.
fn store_error(e: maestro_results::StoreError, retries: u32) -> TaskError {
    if e.is_retryable() {
        TaskError::retry_in(backoff(retries), "OperationalError", e.to_string())
    } else {
        TaskError::fail("OperationFailure", e.to_string())
    }
}

fn provider_error(e: ProviderError, retries: u32) -> TaskError {
    match e {
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
        ProviderError::Unsupported(m) => TaskError::fail("NotImplementedError", m),
        ProviderError::Api(m) | ProviderError::Invalid(m) => TaskError::fail("RuntimeError", m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ProviderError::Unsupported(
                "cloudfront.list_streaming_distributions: the endpoint does not answer this call"
                    .into(),
            ),
            0,
        );
        assert!(e.to_string().contains("NotImplementedError"), "{e}");
        assert!(e.to_string().contains("does not answer this call"), "{e}");
    }
}
