//! `maestro.scheduler.run` (queue `scheduler`): one run of one of the HTTP jobs server-app
//! schedules (`connections`, `reports`, `webhook`), as Maestro's scheduler-app ran them.
//! maestro-beat fires it, once per due time; this task does the rest:
//!
//! 1. **Precheck.** A `connections` job needs its connection enabled, active, and its last run
//!    of the task not `danger`; a `reports` job needs its report, of its owner, active, whose
//!    stored `filters` and `component` join the body. A connection that fails the precheck,
//!    or an endpoint naming none, *depletes* the schedule: `enabled: false` with a `msg`, as
//!    scheduler-app did. A report that is gone is skipped.
//! 2. **Call.** `<method> <MAESTRO_<SOURCE>_URI>/<endpoint>` with the `args` as the JSON body
//!    (`{"query": args}` for a GET) and Maestro's private token, or a `webhook` job's own
//!    absolute URL, which gets **no** token (scheduler-app sent it to any URL).
//! 3. **Record.** Each run leaves one `events` document (`success` with the answer, or `danger`
//!    with the cause) filed under the schedule, where server-app's `GET /scheduler/:id/events`
//!    reads them. A redelivered run rewrites its own record instead of adding one.
//! 4. **Chain.** After a success each `chain` link's schedule, if enabled and active, is sent
//!    after its countdown.
//!
//! Answers 5xx and 429 and unreachable services are retried through the broker's delay queues
//! (the policy of `delivery`); any other failure ends the run.

use std::sync::Arc;

use chrono::Utc;
use maestro_broker::Signature;
use maestro_contract::job::{HttpMethod, JobKind, JobRequest, Source};
use maestro_contract::names::TASK_SCHEDULER_RUN;
use maestro_contract::schedule::Schedule;
use maestro_contract::stored::{from_stored, to_stored};
use maestro_tasks::{FieldError, TaskContext, TaskError, TaskResult, task};
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use crate::Services;
use crate::delivery::{self, Class, DELIVERY_MAX_RETRIES};
use crate::mongo::mongo_error;

/// Where Maestro keeps run records.
pub const EVENTS_COLLECTION: &str = "events";
/// The `context` of this task's run records, as server-app files them.
pub const EVENT_CONTEXT: &str = "scheduler";
/// Where server-app keeps connections and reports.
const CONNECTIONS: &str = "connections";
const REPORTS: &str = "reports";

/// `maestro.scheduler.run(schedule_id, name, job, endpoint, method, source, args, chain)`: one
/// run of a scheduled job; see the module documentation.
#[task(name = TASK_SCHEDULER_RUN)]
pub async fn scheduler_run(
    ctx: &TaskContext,
    #[state] svc: &Arc<Services>,
    #[args] job: JobRequest,
) -> TaskResult<Value> {
    job.validate()?;
    SchedulerRun { svc }.run(ctx, job).await
}

/// One run of `maestro.scheduler.run`, over the worker's shared services.
struct SchedulerRun<'a> {
    svc: &'a Services,
}

/// How a run ended before or instead of its call.
enum Precheck {
    /// Call with this body.
    Call(Map<String, Value>),
    /// Disable the schedule, with this message.
    Deplete(String),
    /// Nothing to do (a report that is gone).
    Skip(String),
}

impl SchedulerRun<'_> {
    /// Precheck, then the call, or the schedule's depletion, or nothing.
    async fn run(&self, ctx: &TaskContext, job: JobRequest) -> Result<Value, TaskError> {
        match self.precheck(&job).await? {
            Precheck::Call(body) => self.call(ctx, &job, body).await,
            Precheck::Deplete(msg) => {
                self.deplete(&job, &msg).await?;
                self.record(ctx, &job, "danger", &msg, Value::String(msg.clone()))
                    .await;
                info!(event = "schedule_depleted", schedule = %job.schedule_id, msg = %msg);
                Ok(json!({"schedule_id": job.schedule_id, "depleted": msg}))
            }
            Precheck::Skip(why) => {
                info!(event = "schedule_run_skipped", schedule = %job.schedule_id, why = %why);
                Ok(json!({"schedule_id": job.schedule_id, "skipped": why}))
            }
        }
    }

    async fn precheck(&self, job: &JobRequest) -> Result<Precheck, TaskError> {
        let mut body = job.body();
        match job.job {
            JobKind::Webhook => Ok(Precheck::Call(body)),
            JobKind::Connections => {
                let Some((conn, task)) = job.crawl_target() else {
                    return Ok(Precheck::Deplete(format!(
                        "The endpoint {:?} names no connection and task (crawler/<provider>/<connection id>/<task>)",
                        job.endpoint
                    )));
                };
                let Ok(oid) = ObjectId::parse_str(conn) else {
                    return Ok(Precheck::Deplete(format!("Connection issue - {conn}")));
                };
                let filter = doc! {
                    "_id": oid, "status": "enabled", "active": true,
                    format!("process.{task}.state"): {"$ne": "danger"},
                };
                let found = self
                    .svc
                    .inventory
                    .collection::<Document>(CONNECTIONS)
                    .count_documents(filter)
                    .await
                    .map_err(|e| mongo_error("checking the connection", &e))?;
                Ok(if found == 1 {
                    Precheck::Call(body)
                } else {
                    Precheck::Deplete(format!("Connection issue - {conn}"))
                })
            }
            JobKind::Reports => {
                let id = |key: &str| {
                    body.get(key)
                        .and_then(Value::as_str)
                        .and_then(|s| ObjectId::parse_str(s).ok())
                        .ok_or_else(|| {
                            TaskError::from(FieldError::value(
                                format!("args.{key}"),
                                "must be the 24-hex id of server-app's document",
                            ))
                        })
                };
                let (report, owner) = (id("report_id")?, id("owner_user")?);
                let filter = doc! {"_id": report, "owner._id": owner, "active": true};
                let found = self
                    .svc
                    .inventory
                    .collection::<Document>(REPORTS)
                    .find_one(filter)
                    .await
                    .map_err(|e| mongo_error("reading the report", &e))?;
                let Some(doc) = found else {
                    return Ok(Precheck::Skip(format!(
                        "report {report} of {owner} is not there or not active"
                    )));
                };
                // As scheduler-app did: the stored filters as JSON text, the component as is.
                let filters = match doc.get("filters") {
                    Some(Bson::String(s)) => s.clone(),
                    Some(other) => from_stored(other).to_string(),
                    None => "[]".to_owned(),
                };
                body.insert("filters".into(), Value::String(filters));
                if let Some(Bson::String(c)) = doc.get("component") {
                    body.insert("component".into(), Value::String(c.clone()));
                }
                Ok(Precheck::Call(body))
            }
        }
    }

    /// The URL of the job, and whether it is one of Maestro's services (so gets the token).
    fn target(&self, job: &JobRequest) -> Result<(Url, bool), TaskError> {
        let endpoint = job.endpoint.trim();
        match job.service() {
            Some(source) => {
                let (var, base) = self.svc.service_uri(source);
                let base = base.ok_or_else(|| {
                    TaskError::fail(
                        "ConfigurationError",
                        format!("{var} is not set: the worker cannot call the {source:?} service"),
                    )
                })?;
                let url = format!(
                    "{}/{}",
                    base.as_str().trim_end_matches('/'),
                    endpoint.trim_start_matches('/')
                );
                let url = Url::parse(&url).map_err(|e| {
                    TaskError::from(FieldError::value("endpoint", format!("is not a path: {e}")))
                })?;
                if url.origin() != base.origin() {
                    return Err(
                        FieldError::value("endpoint", "leaves the service's address").into(),
                    );
                }
                Ok((url, true))
            }
            None => {
                let url = maestro_contract::WebhookRequest {
                    url: endpoint.to_owned(),
                    method: maestro_contract::webhook::WebhookMethod::POST,
                    payload: Value::Null,
                    headers: Default::default(),
                }
                .parsed_url()
                .map_err(|e| FieldError::value("endpoint", e.reason))?;
                Ok((url, false))
            }
        }
    }

    async fn call(
        &self,
        ctx: &TaskContext,
        job: &JobRequest,
        body: Map<String, Value>,
    ) -> Result<Value, TaskError> {
        let (url, maestro) = self.target(job)?;
        // A Maestro service the operator configured, or a URL from the schedule document,
        // which goes only where the egress policy allows.
        let client = if maestro {
            &self.svc.http
        } else {
            self.svc
                .egress
                .check_url(&url)
                .map_err(|e| delivery::refused_error(&e))?;
            &self.svc.outbound
        };
        let method = match job.method {
            HttpMethod::GET => Method::GET,
            HttpMethod::POST => Method::POST,
            HttpMethod::PUT => Method::PUT,
            HttpMethod::PATCH => Method::PATCH,
            HttpMethod::DELETE => Method::DELETE,
        };
        let payload = match job.method {
            HttpMethod::GET => json!({"query": body}),
            _ => Value::Object(body),
        };
        let mut request = client
            .request(method.clone(), url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(serde_json::to_vec(&payload).unwrap_or_default());
        if maestro {
            let token = self.svc.private_token()?;
            let value = HeaderValue::from_str(&format!("JWT {token}")).map_err(|_| {
                TaskError::fail(
                    "ConfigurationError",
                    "the private token is not a header value",
                )
            })?;
            request = request.header(AUTHORIZATION, value);
        }
        let shown = delivery::redacted(&url);
        let what = format!("{} {shown}", job.method.as_str());
        let answer = delivery::send(ctx, request).await?;
        match answer.class() {
            Class::Delivered => {
                let text = answer
                    .outcome
                    .as_ref()
                    .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                let description =
                    serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
                let msg = format!("Scheduler run - {}", job.name);
                self.record(ctx, job, "success", &msg, description).await;
                let chained = self.chain(ctx, job).await?;
                info!(event = "schedule_run", schedule = %job.schedule_id, url = %shown,
                    status = answer.status(), chained);
                Ok(
                    json!({"schedule_id": job.schedule_id, "status": answer.status(),
                          "chained": chained}),
                )
            }
            Class::Permanent if job.job == JobKind::Connections && answer.status() == Some(422) => {
                // Discovery refused the scan (a task this project does not run, a provider it
                // does not know): it will refuse it every time, so the schedule stops, as one
                // whose connection went away does.
                let msg = format!("Refused by discovery: {}", answer_text(&answer));
                self.deplete(job, &msg).await?;
                self.record(ctx, job, "danger", &msg, Value::String(msg.clone()))
                    .await;
                warn!(event = "schedule_depleted", schedule = %job.schedule_id, url = %shown, msg = %msg);
                Ok(json!({"schedule_id": job.schedule_id, "depleted": msg}))
            }
            class => {
                let err = delivery::not_delivered(ctx, &what, &answer);
                let last = class == Class::Permanent || ctx.retries >= DELIVERY_MAX_RETRIES;
                warn!(event = "schedule_run_failed", schedule = %job.schedule_id, url = %shown,
                    cause = %answer.describe(), retry = !last);
                if last {
                    let msg = err.to_string();
                    self.record(ctx, job, "danger", &msg, Value::String(msg.clone()))
                        .await;
                }
                Err(err)
            }
        }
    }

    /// Disables the schedule with `msg`, as scheduler-app's deplete did.
    async fn deplete(&self, job: &JobRequest, msg: &str) -> Result<(), TaskError> {
        self.svc
            .schedules()
            .update_one(
                doc! {"_id": schedule_key(&job.schedule_id)},
                doc! {"$set": {"enabled": false, "msg": msg, "crawling": true,
                "updated_at": mongodb::bson::DateTime::now()}},
            )
            .await
            .map_err(|e| mongo_error("disabling the schedule", &e))?;
        Ok(())
    }

    /// The run's record in `events`, one per task id; a record that cannot be written is
    /// logged and does not change the run's outcome.
    async fn record(
        &self,
        ctx: &TaskContext,
        job: &JobRequest,
        status: &str,
        msg: &str,
        description: Value,
    ) {
        let now = mongodb::bson::DateTime::now();
        let mut event = doc! {
            "msg": msg, "context": EVENT_CONTEXT, "description": to_stored(&description),
            "roles": [{"_id": schedule_key(&job.schedule_id), "refs": "scheduler", "role": 5}],
            "status": status, "active": true, "task_id": ctx.id.as_str(), "updated_at": now,
        };
        event.insert("schedule", job.schedule_id.as_str());
        let written = self
            .svc
            .inventory
            .collection::<Document>(EVENTS_COLLECTION)
            .update_one(
                doc! {"task_id": ctx.id.as_str()},
                doc! {"$set": event, "$setOnInsert": {"created_at": now}},
            )
            .upsert(true)
            .await;
        if let Err(e) = written {
            warn!(event = "schedule_event_not_recorded", schedule = %job.schedule_id, error = %e);
        }
    }

    /// Sends each chained schedule that is enabled and active, after its countdown; the
    /// number sent. A link's task id comes from this run's id, so a redelivered run sends the
    /// same messages again rather than new ones.
    async fn chain(&self, ctx: &TaskContext, job: &JobRequest) -> Result<usize, TaskError> {
        let mut sent = 0;
        for (i, link) in job.chain.iter().enumerate() {
            let filter = doc! {"_id": schedule_key(&link.id), "enabled": true, "active": true};
            let found = self
                .svc
                .schedules()
                .find_one(filter)
                .await
                .map_err(|e| mongo_error("reading a chained schedule", &e))?;
            let Some(doc) = found else {
                info!(event = "chain_link_skipped", schedule = %job.schedule_id, link = %link.id);
                continue;
            };
            let target = match Schedule::from_document(&doc) {
                Ok(s) => s.target,
                Err(e) => {
                    warn!(event = "chain_link_invalid", schedule = %job.schedule_id,
                        link = %link.id, field = %e.field, reason = %e.reason);
                    continue;
                }
            };
            let id = uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                format!("{}/{i}", ctx.id).as_bytes(),
            );
            let queue = target
                .queue
                .clone()
                .unwrap_or_else(|| self.svc.queue_for(&target.task).to_owned());
            let sig = Signature::new(target.task, Vec::new())
                .with_kwargs(target.kwargs)
                .with_option("queue", queue.into())
                .with_option("task_id", id.to_string().into())
                .with_option("countdown", json!(link.countdown));
            let sig = match target.args {
                Value::Array(a) => Signature {
                    args: Value::Array(a),
                    ..sig
                },
                _ => sig,
            };
            ctx.send(sig).await?;
            sent += 1;
        }
        Ok(sent)
    }
}

/// What an error answer says, read as server-app reads it: the values of `message`
/// (maestro-api's and report-app's errors), or `message`, `errors`, `error` as text; else
/// the status.
fn answer_text(answer: &delivery::Answer) -> String {
    let Ok((status, body)) = &answer.outcome else {
        return answer.describe();
    };
    let said = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        ["message", "errors", "error"]
            .iter()
            .find_map(|k| match v.get(*k)? {
                Value::String(s) => Some(s.clone()),
                Value::Object(m) => Some(
                    m.values()
                        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                _ => None,
            })
    });
    said.unwrap_or_else(|| format!("HTTP {status}"))
}

/// A schedule's `_id` as stored: an ObjectId when it reads as one (server-app's), else text.
fn schedule_key(id: &str) -> Bson {
    ObjectId::parse_str(id).map_or_else(|_| Bson::String(id.to_owned()), Bson::ObjectId)
}

impl Services {
    /// The base URL of `source` and the variable that sets it.
    pub(crate) fn service_uri(&self, source: Source) -> (&'static str, Option<&Url>) {
        match source {
            Source::Discovery => ("MAESTRO_DISCOVERY_URI", self.discovery_uri.as_ref()),
            Source::Report => ("MAESTRO_REPORT_URI", self.report_uri.as_ref()),
            Source::Analytics => ("MAESTRO_ANALYTICS_URI", self.analytics_uri.as_ref()),
        }
    }

    /// Maestro's graph token for analytics-front: HS256 under MAESTRO_SECRETJWT_PRIVATE over
    /// `{token: noauth, graph_id, owner_id}` (the front takes the graph and owner from it).
    pub(crate) fn graph_token(&self, graph_id: &str, owner_id: &str) -> Result<String, TaskError> {
        let (secret, noauth) = self.private_secrets()?;
        let claims = json!({"token": noauth, "graph_id": graph_id, "owner_id": owner_id,
            "iat": Utc::now().timestamp()});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .map_err(|e| TaskError::fail("ConfigurationError", format!("the graph token: {e}")))
    }

    /// MAESTRO_SECRETJWT_PRIVATE and MAESTRO_NOAUTH, or which is missing.
    fn private_secrets(&self) -> Result<(&str, &str), TaskError> {
        let missing = |var: &str| {
            TaskError::fail(
                "ConfigurationError",
                format!("{var} is not set: the worker cannot call Maestro's services"),
            )
        };
        let secret = self
            .cfg
            .secret_jwt_private
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("MAESTRO_SECRETJWT_PRIVATE"))?;
        let noauth = self
            .cfg
            .noauth
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("MAESTRO_NOAUTH"))?;
        Ok((secret, noauth))
    }

    /// Maestro's private token, as its Python services made theirs: HS256 under
    /// MAESTRO_SECRETJWT_PRIVATE over the service's card and `noauth`.
    pub(crate) fn private_token(&self) -> Result<String, TaskError> {
        let (secret, noauth) = self.private_secrets()?;
        let claims = json!({
            "name": "maestro-worker",
            "description": "Maestro workers: scheduled jobs",
            "version": env!("CARGO_PKG_VERSION"),
            "license": env!("CARGO_PKG_LICENSE"),
            "noauth": noauth,
            "iat": Utc::now().timestamp(),
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .map_err(|e| TaskError::fail("ConfigurationError", format!("the private token: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_ids_are_stored_as_server_app_stores_them() {
        assert!(matches!(
            schedule_key("5f1b00000000000000000011"),
            Bson::ObjectId(_)
        ));
        assert_eq!(schedule_key("nightly"), Bson::String("nightly".into()));
    }
}
