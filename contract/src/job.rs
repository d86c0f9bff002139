//! `maestro.scheduler.run`: one run of one of Maestro's scheduled HTTP jobs, the schedules
//! server-app writes itself (`task: connections | reports | webhook` with an `endpoint`),
//! which Maestro's scheduler-app ran as HTTP calls. Beat fires them, fenced and exactly once
//! per due time, as this task; a worker makes the call.
//!
//! - `connections`: the connection named in the endpoint must be enabled, active, and its
//!   last run of the task not `danger`; then `PUT <MAESTRO_DISCOVERY_URI>/<endpoint>`.
//! - `reports`: the report named in `args` must exist for its owner; its filters and
//!   component join the body; then `<method> <MAESTRO_REPORT_URI>/<endpoint>`.
//! - `webhook`: `<method> <endpoint>`, absolute, or under the service named by `source`.
//!
//! After a successful call the `chain` runs, each link after its countdown; every run leaves
//! an `events` record; a failed precheck disables the schedule with a `msg`.

use maestro_tasks::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::check::{check_id, null_as_default};

/// Longest endpoint accepted, bytes.
pub const ENDPOINT_BYTES_MAX: usize = 2048;
/// Most `args` entries.
pub const ARGS_MAX: usize = 64;
/// Most chained schedules.
pub const CHAIN_MAX: usize = 16;
/// Longest countdown of a chained schedule, seconds (a day).
pub const COUNTDOWN_SECS_MAX: f64 = 86_400.0;

/// What kind of job a schedule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Connections,
    Reports,
    Webhook,
}

impl JobKind {
    /// The kind `task` names (`None` for anything else, `jobs` included: scheduler-app had
    /// none).
    pub fn parse(task: &str) -> Option<Self> {
        match task {
            "connections" => Some(Self::Connections),
            "reports" => Some(Self::Reports),
            "webhook" => Some(Self::Webhook),
            _ => None,
        }
    }

    /// The service a relative endpoint is under when the schedule names none.
    pub fn default_source(self) -> Option<Source> {
        match self {
            Self::Connections => Some(Source::Discovery),
            Self::Reports => Some(Source::Report),
            Self::Webhook => None,
        }
    }
}

/// The service a relative endpoint is under (`MAESTRO_<SOURCE>_URI`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Discovery,
    Report,
    /// `analytic` in server-app's documents.
    #[serde(alias = "analytic")]
    Analytics,
}

/// HTTP method of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpMethod {
    #[default]
    GET,
    POST,
    PUT,
    PATCH,
    DELETE,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GET => "GET",
            Self::POST => "POST",
            Self::PUT => "PUT",
            Self::PATCH => "PATCH",
            Self::DELETE => "DELETE",
        }
    }
}

/// One `{key, value}` of a job's `args`: the request body's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(default)]
    pub value: Value,
}

/// A schedule run after this one succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainLink {
    #[serde(rename = "_id")]
    pub id: String,
    /// Seconds after this job.
    #[serde(default, deserialize_with = "null_as_default")]
    pub countdown: f64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
}

/// The request of `maestro.scheduler.run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// The schedule's id (hex): its events are filed under it, a failed precheck disables it.
    pub schedule_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    pub job: JobKind,
    pub endpoint: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub method: HttpMethod,
    #[serde(default)]
    pub source: Option<Source>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Vec<KeyValue>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub chain: Vec<ChainLink>,
}

/// The task's call binds to the request: `#[args] req: JobRequest` in a `#[task]`.
impl maestro_tasks::CallArgs for JobRequest {
    const PARAMETERS: &'static [&'static str] = &JobRequest::PARAMS;
}

impl JobRequest {
    /// The task's parameters, in order.
    pub const PARAMS: [&'static str; 8] = [
        "schedule_id",
        "name",
        "job",
        "endpoint",
        "method",
        "source",
        "args",
        "chain",
    ];

    pub fn validate(&self) -> Result<(), FieldError> {
        check_id("schedule_id", &self.schedule_id)?;
        if self.endpoint.trim().is_empty() || self.endpoint.len() > ENDPOINT_BYTES_MAX {
            return Err(FieldError::value(
                "endpoint",
                format!("must be 1 to {ENDPOINT_BYTES_MAX} bytes"),
            ));
        }
        if self.endpoint.chars().any(char::is_control) {
            return Err(FieldError::value("endpoint", "holds a control character"));
        }
        if self.args.len() > ARGS_MAX {
            return Err(FieldError::value(
                "args",
                format!("holds more than {ARGS_MAX} entries"),
            ));
        }
        if self.chain.len() > CHAIN_MAX {
            return Err(FieldError::value(
                "chain",
                format!("holds more than {CHAIN_MAX} links"),
            ));
        }
        for (i, link) in self.chain.iter().enumerate() {
            check_id(&format!("chain[{i}]._id"), &link.id)?;
            if !(0.0..=COUNTDOWN_SECS_MAX).contains(&link.countdown) {
                return Err(FieldError::value(
                    format!("chain[{i}].countdown"),
                    format!("must be 0 to {COUNTDOWN_SECS_MAX} seconds"),
                ));
            }
        }
        Ok(())
    }

    /// The `args` as one object, the request body (later keys win).
    pub fn body(&self) -> Map<String, Value> {
        self.args
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect()
    }

    /// The service the endpoint is under: the schedule's `source`, else the kind's.
    pub fn service(&self) -> Option<Source> {
        self.source.or_else(|| self.job.default_source())
    }

    /// For a `connections` job, the connection id and task at the end of its endpoint
    /// (`crawler/<provider>/<24 hex>/<task>`).
    pub fn crawl_target(&self) -> Option<(&str, &str)> {
        let mut parts = self.endpoint.trim_end_matches('/').rsplit('/');
        let task = parts.next()?;
        let conn = parts.next()?;
        let ok_task = !task.is_empty() && task.chars().all(|c| c.is_ascii_lowercase() || c == '-');
        let ok_conn = conn.len() == 24 && conn.chars().all(|c| c.is_ascii_alphanumeric());
        (ok_task && ok_conn).then_some((conn, task))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_connection_job_names_its_connection_and_task() {
        let j: JobRequest = serde_json::from_value(json!({
            "schedule_id": "5f1b00000000000000000011", "name": "connections - server-list",
            "job": "connections", "endpoint": "crawler/AWS/5f1b00000000000000000010/server-list",
            "method": "PUT", "source": null, "args": null, "chain": []}))
        .expect("valid");
        j.validate().expect("valid");
        assert_eq!(
            j.crawl_target(),
            Some(("5f1b00000000000000000010", "server-list"))
        );
        assert_eq!(j.service(), Some(Source::Discovery));
        let bad = JobRequest {
            endpoint: "crawler/AWS/x/server-list".into(),
            ..j.clone()
        };
        assert_eq!(bad.crawl_target(), None);
    }

    #[test]
    fn args_become_the_body_and_analytic_is_analytics() {
        let j: JobRequest = serde_json::from_value(json!({
            "schedule_id": "s1", "job": "webhook", "endpoint": "graphs", "method": "POST",
            "source": "analytic", "args": [{"key": "a", "value": 1}, {"key": "b", "value": "x"}],
            "chain": [{"_id": "5f1b00000000000000000012", "countdown": 30, "name": "next"}]}))
        .expect("valid");
        j.validate().expect("valid");
        assert_eq!(j.service(), Some(Source::Analytics));
        assert_eq!(Value::Object(j.body()), json!({"a": 1, "b": "x"}));
        let long = JobRequest {
            chain: vec![
                ChainLink {
                    id: "c".into(),
                    countdown: -1.0,
                    name: String::new()
                };
                1
            ],
            ..j
        };
        assert_eq!(
            long.validate().expect_err("countdown").field,
            "chain[0].countdown"
        );
    }
}
