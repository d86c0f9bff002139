//! The API's configuration: every flag also read from an environment variable (Maestro's and
//! Celery's names where they exist). Checked once at start-up; a bad value is a one-line error
//! naming the flag, its variable and the reason, and the binary exits with status 2.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
pub use maestro_broker::config::ConfigError;
use maestro_broker::config::config_error as err;
use maestro_broker::connection::{BrokerUrls, redact};
use maestro_broker::topology::QueueType;
use secrecy::{ExposeSecret, SecretString};

use maestro_tasks::RoutingTable;

/// Default listening port (Maestro's services listen on 8888 behind their gateway).
pub const DEFAULT_PORT: u16 = 8888;
/// Largest request body accepted by default, bytes.
pub const DEFAULT_BODY_BYTES_MAX: usize = 256 * 1024;
/// Most AMQP connections the publisher pool may hold.
pub const AMQP_CONNECTIONS_MAX: usize = 64;

/// maestro-api: the authenticated REST API that enqueues Maestro jobs.
#[derive(Debug, Clone, Parser)]
#[command(name = "maestro-api", version, about, long_about = None)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "MAESTRO_HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Port to listen on.
    #[arg(short = 'p', long, env = "MAESTRO_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,

    #[command(flatten)]
    pub broker: maestro_broker::config::BrokerArgs,

    /// Result backend read by `GET /tasks/{id}`: `mongodb://host/db` (Celery's MongoDB layout);
    /// unset answers 503 for task states.
    #[arg(long, env = "CELERY_RESULT_BACKEND", hide_env_values = true, value_parser = secret)]
    pub result_backend: Option<SecretString>,

    /// MongoDB holding Maestro's documents (the `schedulers` collection).
    #[command(flatten)]
    pub mongo: maestro_contract::MongoArgs,

    /// Database the catalogue writes reports to (read back by `/reports/{id}/{kind}`).
    #[command(flatten)]
    pub reports: maestro_contract::ReportsArgs,

    /// Rows per page of `GET /reports/{table}` when the client names no limit.
    #[arg(long, env = "MAESTRO_REPORT_RESULT_QTD", default_value_t = 1500)]
    pub report_result_qtd: u64,

    /// The largest page of `GET /reports/{table}` (report-app had no limit; a page is built in
    /// memory, so one is set).
    #[arg(long, env = "MAESTRO_REPORT_PAGE_MAX", default_value_t = 10_000)]
    pub report_page_max: u64,

    /// Collection of the schedules beat fires.
    #[arg(
        long,
        env = "MAESTRO_SCHEDULES_COLLECTION",
        default_value = "schedulers"
    )]
    pub schedules_collection: String,

    /// Secret of the HS256 tokens other services present (`Authorization: JWT <token>`).
    #[arg(long, env = "MAESTRO_SECRETJWT_PRIVATE", hide_env_values = true, value_parser = secret)]
    pub secret_jwt_private: Option<SecretString>,

    /// Value the token's `noauth` claim must equal.
    #[arg(long, env = "MAESTRO_NOAUTH", hide_env_values = true, value_parser = secret)]
    pub noauth: Option<SecretString>,

    /// Task routes `task=queue,...`, added to (and overriding) the defaults.
    #[arg(long, env = "MAESTRO_ROUTES", default_value = "")]
    pub routes: String,

    /// Refuse tokens without an `exp` claim. Off by default: Maestro's server-app signs its
    /// tokens with no `exp`; turn it on where every caller sets one.
    #[arg(long, env = "MAESTRO_JWT_REQUIRE_EXP", default_value_t = false, action = clap::ArgAction::Set)]
    pub jwt_require_exp: bool,

    /// Let `POST /tasks/{name}` name any valid queue in `queue`; when false only queues of the
    /// routing table are accepted, so clients cannot create queues on the broker at will.
    #[arg(long, env = "MAESTRO_ALLOW_ANY_QUEUE", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_any_queue: bool,

    /// Accept the diagnostic tasks (`maestro.noop`, `echo`, `sleep`, `fail`, `record`) in
    /// `POST /tasks/{name}` and schedules, each only to its routed queue. Off in production.
    #[arg(long, env = "MAESTRO_ENABLE_DIAGNOSTICS", default_value_t = false, action = clap::ArgAction::Set)]
    pub enable_diagnostics: bool,

    /// Announce every enqueued task with Celery's `task-sent` event on `celeryev` (Python's
    /// `task_send_sent_event`), so Flower lists it as SENT before a worker takes it.
    #[arg(long, env = "MAESTRO_TASK_SENT_EVENTS", default_value_t = false, action = clap::ArgAction::Set)]
    pub task_sent_events: bool,

    /// Largest request body, bytes; larger ones get 413.
    #[arg(long, env = "MAESTRO_BODY_BYTES_MAX", default_value_t = DEFAULT_BODY_BYTES_MAX)]
    pub body_bytes_max: usize,

    /// Type of the queues the API declares before publishing: classic or quorum.
    #[arg(long, env = "MAESTRO_QUEUE_TYPE", default_value = "classic")]
    pub queue_type: QueueType,

    /// AMQP connections publishing at once, each with one long-lived confirm channel.
    #[arg(long, env = "MAESTRO_AMQP_CONNECTIONS", default_value_t = 2)]
    pub amqp_connections: usize,

    /// Seconds one enqueue may take (connecting, declaring, publishing, confirm) before it
    /// is answered 503.
    #[arg(long, env = "MAESTRO_PUBLISH_TIMEOUT", default_value = "5", value_parser = parse_secs)]
    pub publish_timeout: Duration,

    /// Seconds a client may take to send a request's headers (slowloris), also the longest an
    /// idle keep-alive connection is held.
    #[arg(long, env = "MAESTRO_HEADER_READ_TIMEOUT", default_value = "10", value_parser = parse_secs)]
    pub header_read_timeout: Duration,

    /// Seconds one request may take before it is answered 503 (keep it above the publish
    /// timeout).
    #[arg(long, env = "MAESTRO_REQUEST_TIMEOUT", default_value = "30", value_parser = parse_secs)]
    pub request_timeout: Duration,

    /// Most open client connections; more wait in the listen backlog.
    #[arg(long, env = "MAESTRO_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Most requests handled at once; more are answered 503 at once (with Retry-After).
    #[arg(long, env = "MAESTRO_MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: usize,

    /// Seconds `/readyz` waits for the broker and MongoDB.
    #[arg(long, env = "MAESTRO_READY_TIMEOUT", default_value = "2", value_parser = parse_secs)]
    pub ready_timeout: Duration,

    #[command(flatten)]
    pub log: maestro_telemetry::LogArgs,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// One broker URL, or several nodes of one cluster (`;`-separated, tried round robin).
    pub broker: BrokerUrls,
    /// Broker URLs with passwords hidden, for logs.
    pub broker_display: String,
    /// Secrets (the URIs may hold passwords) are `SecretString`: `Debug` shows them redacted.
    pub result_backend: Option<SecretString>,
    pub mongo_uri: SecretString,
    pub mongo_database: String,
    pub reports_database: String,
    pub report_result_qtd: u64,
    pub report_page_max: u64,
    pub schedules_collection: String,
    pub jwt_secret: SecretString,
    pub noauth: SecretString,
    pub jwt_require_exp: bool,
    pub routes: RoutingTable,
    pub allow_any_queue: bool,
    pub enable_diagnostics: bool,
    pub task_sent_events: bool,
    pub body_bytes_max: usize,
    pub queue_type: QueueType,
    pub amqp_connections: usize,
    pub publish_timeout: Duration,
    pub ready_timeout: Duration,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_in_flight: usize,
}

/// Seconds (integer or fraction) as a Duration; rejects negatives, NaN and more than an hour.
/// A flag's value as a secret (never shown by `Debug`).
fn secret(s: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(s.to_owned()))
}

pub fn parse_secs(s: &str) -> Result<Duration, String> {
    maestro_broker::config::parse_secs_up_to(s, false, 3600.0, "an hour")
}

impl Cli {
    /// Checks every value.
    pub fn into_config(self) -> Result<ApiConfig, ConfigError> {
        let ip: IpAddr = self.host.trim().parse().map_err(|_| {
            err(
                "--host",
                "MAESTRO_HOST",
                format!("{:?} is not an IP address", self.host),
            )
        })?;
        let broker = self.broker.urls()?;
        let result_backend = match self
            .result_backend
            .as_ref()
            .map(|s| s.expose_secret().trim())
        {
            None | Some("") | Some("disabled") => None,
            Some(url) if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") => {
                Some(SecretString::from(url.to_owned()))
            }
            Some(other) => {
                return Err(err(
                    "--result-backend",
                    "CELERY_RESULT_BACKEND",
                    format!(
                        "{:?} is not a MongoDB URL (the API reads states from mongodb:// only)",
                        redact(other)
                    ),
                ));
            }
        };
        if !(self.mongo.mongo_uri.starts_with("mongodb://")
            || self.mongo.mongo_uri.starts_with("mongodb+srv://"))
        {
            return Err(err(
                "--mongo-uri",
                "MAESTRO_MONGO_URI",
                "must start with mongodb:// or mongodb+srv://",
            ));
        }
        check_mongo_name(&self.mongo.mongo_database)
            .map_err(|r| err("--mongo-database", "MAESTRO_MONGO_DATABASE", r))?;
        check_mongo_name(&self.reports.reports_database)
            .map_err(|r| err("--reports-database", "MAESTRO_REPORTS_DATABASE", r))?;
        if self.report_result_qtd == 0 || self.report_result_qtd > 100_000 {
            return Err(err(
                "--report-result-qtd",
                "MAESTRO_REPORT_RESULT_QTD",
                "must be 1 to 100000 rows",
            ));
        }
        if self.report_page_max < self.report_result_qtd || self.report_page_max > 100_000 {
            return Err(err(
                "--report-page-max",
                "MAESTRO_REPORT_PAGE_MAX",
                "must be MAESTRO_REPORT_RESULT_QTD to 100000 rows",
            ));
        }
        check_mongo_name(&self.schedules_collection)
            .map_err(|r| err("--schedules-collection", "MAESTRO_SCHEDULES_COLLECTION", r))?;
        let jwt_secret = self
            .secret_jwt_private
            .filter(|s| !s.expose_secret().is_empty())
            .ok_or_else(|| {
                err(
                    "--secret-jwt-private",
                    "MAESTRO_SECRETJWT_PRIVATE",
                    "is required (the HS256 secret of service tokens)",
                )
            })?;
        let noauth = self
            .noauth
            .filter(|s| !s.expose_secret().is_empty())
            .ok_or_else(|| {
                err(
                    "--noauth",
                    "MAESTRO_NOAUTH",
                    "is required (the value of the tokens' noauth claim)",
                )
            })?;
        let routes = maestro_contract::routes::maestro_with(&self.routes)
            .map_err(|r| err("--routes", "MAESTRO_ROUTES", r))?;
        if self.body_bytes_max < 1024 || self.body_bytes_max > 64 * 1024 * 1024 {
            return Err(err(
                "--body-bytes-max",
                "MAESTRO_BODY_BYTES_MAX",
                format!("{} is not between 1024 and 67108864", self.body_bytes_max),
            ));
        }
        if self.amqp_connections == 0 || self.amqp_connections > AMQP_CONNECTIONS_MAX {
            return Err(err(
                "--amqp-connections",
                "MAESTRO_AMQP_CONNECTIONS",
                format!(
                    "{} is not between 1 and {AMQP_CONNECTIONS_MAX}",
                    self.amqp_connections
                ),
            ));
        }
        Ok(ApiConfig {
            listen: SocketAddr::new(ip, self.port),
            broker_display: broker.display(),
            broker,
            result_backend,
            mongo_uri: SecretString::from(self.mongo.mongo_uri),
            mongo_database: self.mongo.mongo_database,
            reports_database: self.reports.reports_database,
            report_result_qtd: self.report_result_qtd,
            report_page_max: self.report_page_max,
            schedules_collection: self.schedules_collection,
            jwt_secret,
            noauth,
            jwt_require_exp: self.jwt_require_exp,
            routes,
            allow_any_queue: self.allow_any_queue,
            enable_diagnostics: self.enable_diagnostics,
            task_sent_events: self.task_sent_events,
            body_bytes_max: self.body_bytes_max,
            queue_type: self.queue_type,
            amqp_connections: self.amqp_connections,
            publish_timeout: self.publish_timeout,
            ready_timeout: self.ready_timeout,
            header_read_timeout: self.header_read_timeout,
            request_timeout: self.request_timeout,
            max_connections: self.max_connections.max(1),
            max_in_flight: self.max_in_flight.max(1),
        })
    }
}

/// MongoDB database and collection names: non-empty, at most 63 bytes, none of `/\. "$` or NUL.
fn check_mongo_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!("{name:?} must be 1 to 63 bytes"));
    }
    if name
        .chars()
        .any(|c| matches!(c, '/' | '\\' | '.' | ' ' | '"' | '$' | '\0'))
    {
        return Err(format!("{name:?} holds one of / \\ . space \" $ or NUL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ApiConfig, String> {
        let mut argv = vec![
            "maestro-api",
            "--secret-jwt-private",
            "s3cret",
            "--noauth",
            "na",
        ];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .into_config()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let argv = [
            "maestro-api",
            "--secret-jwt-private",
            "jwt-s3cret-value",
            "--noauth",
            "noauth-value",
            "--mongo-uri",
            "mongodb://u:mongo-pw@h/",
            "--result-backend",
            "mongodb://u:results-pw@h/db",
            "-b",
            "amqp://u:amqp-pw@h//",
        ];
        let cli = Cli::try_parse_from(argv).expect("flags");
        let shown = format!("{cli:?}");
        let cfg = cli.into_config().expect("valid");
        let shown = format!(
            "{shown} {cfg:?} {:?}",
            crate::auth::Authenticator::new("jwt-s3cret-value", "noauth-value")
        );
        for secret in [
            "jwt-s3cret-value",
            "noauth-value",
            "mongo-pw",
            "results-pw",
            "amqp-pw",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).expect("defaults are valid");
        assert_eq!(c.listen.port(), 8888);
        assert_eq!(c.mongo_database, "maestro-client");
        assert_eq!(c.schedules_collection, "schedulers");
        assert_eq!(c.routes.queue_for("maestro.report.pivot"), Some("report"));
        assert!(!c.allow_any_queue);
        assert_eq!(c.broker_display, "amqp://guest:***@127.0.0.1:5672//");
    }

    #[test]
    fn bad_values_name_flag_and_variable() {
        let e = parse(&["--host", "nohost"]).expect_err("bad host");
        assert!(e.starts_with("--host (MAESTRO_HOST)"), "{e}");
        let e = parse(&["--broker", "redis://x"]).expect_err("bad broker");
        assert!(e.starts_with("--broker (CELERY_BROKER_URL)"), "{e}");
        let e = parse(&["--result-backend", "rpc://"]).expect_err("rpc");
        assert!(
            e.starts_with("--result-backend (CELERY_RESULT_BACKEND)"),
            "{e}"
        );
        let e = parse(&["--routes", "a.b=amq.x"]).expect_err("reserved queue");
        assert!(e.starts_with("--routes (MAESTRO_ROUTES)"), "{e}");
        let e = parse(&["--body-bytes-max", "10"]).expect_err("tiny body");
        assert!(
            e.starts_with("--body-bytes-max (MAESTRO_BODY_BYTES_MAX)"),
            "{e}"
        );
        let e = parse(&["--amqp-connections", "0"]).expect_err("no connections");
        assert!(e.contains("MAESTRO_AMQP_CONNECTIONS"), "{e}");
        let e = parse(&["--mongo-database", "a.b"]).expect_err("dotted db");
        assert!(e.contains("MAESTRO_MONGO_DATABASE"), "{e}");
    }

    #[test]
    fn secret_and_noauth_are_required() {
        let e = Cli::try_parse_from(["maestro-api", "--noauth", "x"])
            .expect("parses")
            .into_config()
            .expect_err("no secret")
            .to_string();
        assert!(
            e.starts_with("--secret-jwt-private (MAESTRO_SECRETJWT_PRIVATE)"),
            "{e}"
        );
        let e = Cli::try_parse_from(["maestro-api", "--secret-jwt-private", "x"])
            .expect("parses")
            .into_config()
            .expect_err("no noauth")
            .to_string();
        assert!(e.starts_with("--noauth (MAESTRO_NOAUTH)"), "{e}");
    }

    #[test]
    fn kombu_aliases_become_amqp() {
        let c = parse(&["--broker", "pyamqp://u:p@h:5672//"]).expect("valid");
        assert_eq!(c.broker.lapin_urls(), ["amqp://u:p@h:5672//"]);
        let c = parse(&["--broker", "amqp://u:p@a//;pyamqp://u:p@b//"]).expect("valid");
        assert_eq!(c.broker.lapin_urls(), ["amqp://u:p@a//", "amqp://u:p@b//"]);
        assert_eq!(c.broker_display, "amqp://u:***@a//;amqp://u:***@b//");
    }
}
