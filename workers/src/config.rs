//! The worker's configuration. This file is long because every flag is declared once, with its
//! environment variable, default and meaning, next to the checks that read it; split, the
//! table of flags would be in pieces.
//!
//! - [`WorkerArgs`]: the runtime's flags, each also read from an environment variable
//!   (Celery's names where they exist), as a clap group an application flattens beside its
//!   own flags; [`WorkerCli`] is that group alone as a whole command line.
//! - [`WorkerConfig`]: the checked configuration the runtime uses. Made from flags
//!   ([`WorkerArgs::into_config`]) or in code ([`WorkerConfig::builder`]); both go through the
//!   same checks, and a bad value is a one-line error naming the flag, its variable and why.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser};
use maestro_broker::config::BrokerArgs;
pub use maestro_broker::config::ConfigError;
use maestro_broker::config::config_error as err;
use maestro_broker::config::host_name;
use maestro_broker::connection::BrokerUrls;
use maestro_broker::delay::DelayTopology;
use maestro_broker::topology::{QueueType, TaskQueue, validate_queue_name};

/// Starts of one redelivered message before it is dead-lettered, by default (RabbitMQ 4's
/// quorum-queue delivery limit).
pub const DEFAULT_MAX_REDELIVERIES: u32 = 20;

/// Largest prefetch AMQP allows per channel (a 16-bit count).
pub const PREFETCH_COUNT_MAX: u32 = u16::MAX as u32;

/// A worker's flags and nothing else: for a worker binary with no flags of its own.
#[derive(Debug, Clone, Parser)]
#[command(version, about = "Runs Celery protocol-v2 tasks from RabbitMQ queues.", long_about = None)]
pub struct WorkerCli {
    #[command(flatten)]
    pub worker: WorkerArgs,

    #[command(flatten)]
    pub log: maestro_telemetry::LogArgs,
}

/// The runtime's flags (see each field), to flatten into an application's own `clap` command.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Queues to consume, comma separated.
    #[arg(
        short = 'Q',
        long = "queues",
        env = "MAESTRO_WORKER_QUEUES",
        default_value = "celery",
        value_delimiter = ','
    )]
    pub queues: Vec<String>,

    /// Tasks run at once.
    #[arg(short = 'c', long, env = "CELERYD_CONCURRENCY", default_value_t = 64)]
    pub concurrency: u32,

    /// Messages prefetched per running slot: prefetch count = concurrency x multiplier.
    #[arg(long, env = "CELERYD_PREFETCH_MULTIPLIER", default_value_t = 4)]
    pub prefetch_multiplier: u32,

    /// Node name (`%h` host, `%n` host without domain, `%d` domain, `%p` pid) [default:
    /// <app>@%h].
    #[arg(short = 'n', long = "hostname", env = "MAESTRO_WORKER_NAME")]
    pub hostname: Option<String>,

    #[command(flatten)]
    pub broker: BrokerArgs,

    /// Result backend: `mongodb://host/db` (Celery's MongoDB layout), `redis://host/0` (its
    /// Redis layout) or `rpc://` (replies to the caller's `reply_to`); unset stores no results.
    #[arg(long, env = "CELERY_RESULT_BACKEND", hide_env_values = true,
          value_parser = |s: &str| Ok::<_, String>(secrecy::SecretString::from(s.to_owned())))]
    pub result_backend: Option<secrecy::SecretString>,

    /// Queue for follow-up tasks (links, chain steps, chord callbacks) whose signature names
    /// none, as Celery's task_default_queue.
    #[arg(long, env = "CELERY_TASK_DEFAULT_QUEUE", default_value = "celery")]
    pub default_queue: String,

    /// Seconds stored results live (MongoDB TTL index on date_done); 0 keeps them forever.
    #[arg(long, env = "CELERY_RESULT_EXPIRES", default_value = "86400", value_parser = parse_secs)]
    pub result_expires: Duration,

    /// Store STARTED before a task runs (Celery's task_track_started).
    #[arg(long, env = "CELERY_TASK_TRACK_STARTED", default_value_t = false, action = clap::ArgAction::Set)]
    pub track_started: bool,

    /// Hard time limit per task, seconds (a message's own `timelimit` wins).
    #[arg(long, env = "CELERYD_TASK_TIME_LIMIT", value_parser = parse_secs)]
    pub time_limit: Option<Duration>,

    /// Soft time limit per task, seconds: the task is told and may stop cleanly.
    #[arg(long, env = "CELERYD_TASK_SOFT_TIME_LIMIT", value_parser = parse_secs)]
    pub soft_time_limit: Option<Duration>,

    /// Acknowledge after the task ran (true, Celery's acks_late) or before it runs (false).
    #[arg(long, env = "CELERY_ACKS_LATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub acks_late: bool,

    /// Largest message body accepted, bytes; larger ones are dead-lettered.
    #[arg(long, env = "MAESTRO_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Store each task's name, args and kwargs with its result (Celery's `result_extended`);
    /// a task's own reprs (`Task::shown_arguments`: webhook header values are never stored)
    /// are stored in place of the arguments when it has them.
    #[arg(long, env = "CELERY_RESULT_EXTENDED", default_value_t = false, action = clap::ArgAction::Set)]
    pub result_extended: bool,

    /// Runs of one redelivered message (a worker died while running it, or was killed by it)
    /// before it is dead-lettered as `redelivered-too-often` instead of run again, so a poison
    /// message cannot crash-loop a fleet; 0 runs it however often. 20 is RabbitMQ 4's quorum
    /// default. Counted in the result store (MongoDB or Redis; batched), one more write per
    /// redelivered message only, so without a store nothing is counted. A message started just
    /// before its worker dies is counted too, so a low limit dead-letters innocent messages when
    /// workers die again and again (the fault suite's SIGKILL run lost 43 of 20,000 that way
    /// with 5).
    #[arg(long, env = "MAESTRO_MAX_REDELIVERIES", default_value_t = DEFAULT_MAX_REDELIVERIES)]
    pub max_redeliveries: u32,

    /// Which deliveries are first looked up in the result store, to skip an id that already
    /// succeeded: `always` (a duplicate publish, a fenced beat's second fire and a redelivery
    /// after a crash all run once; one batched lookup per task) or `redelivered` (only
    /// messages the broker redelivers; a duplicate publish runs again, as with Python
    /// Celery, and the store does half the work).
    #[arg(long, env = "MAESTRO_DUPLICATE_CHECK", default_value = "always", value_parser = ["always", "redelivered"])]
    pub duplicate_check: String,

    /// Seconds running tasks get to finish after SIGTERM before they are requeued.
    #[arg(long = "shutdown-grace", env = "MAESTRO_SHUTDOWN_GRACE", default_value = "25", value_parser = parse_secs)]
    pub shutdown_grace: Duration,

    /// Type of the queues this worker declares: classic or quorum.
    #[arg(long, env = "MAESTRO_QUEUE_TYPE", default_value = "classic")]
    pub queue_type: QueueType,

    /// Prefix of the delay exchanges and queues (kombu's is celery_delayed).
    #[arg(long, env = "MAESTRO_DELAY_PREFIX", default_value = "celery_delayed")]
    pub delay_prefix: String,

    /// Exchange that takes messages no worker can run [default: <app>.dead].
    #[arg(long, env = "MAESTRO_DEAD_LETTER_EXCHANGE")]
    pub dead_letter_exchange: Option<String>,

    /// Queue bound to the dead-letter exchange that keeps them [default: <app>.dead].
    #[arg(long, env = "MAESTRO_DEAD_LETTER_QUEUE")]
    pub dead_letter_queue: Option<String>,

    /// First retry delay, seconds, when a task asks to retry without a countdown.
    #[arg(long, env = "MAESTRO_RETRY_BACKOFF_MIN", default_value = "1", value_parser = parse_secs)]
    pub retry_backoff_min: Duration,

    /// Longest retry delay, seconds.
    #[arg(long, env = "MAESTRO_RETRY_BACKOFF_MAX", default_value = "600", value_parser = parse_secs)]
    pub retry_backoff_max: Duration,

    /// Threads running tasks' async code. One leaves the other cores to the broker and to the
    /// blocking pool (where CPU-heavy task code belongs); raise it for CPU-heavy async tasks.
    #[arg(long, env = "MAESTRO_WORKER_THREADS", default_value_t = 1)]
    pub threads: usize,

    /// Send task and worker events (celeryev) for Flower and `celery events`.
    #[arg(short = 'E', long = "events", env = "CELERY_WORKER_SEND_TASK_EVENTS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub events: bool,

    /// Send no worker events (worker-online, worker-heartbeat, worker-offline), as Celery's
    /// `--without-heartbeat`; Flower then shows the worker offline.
    #[arg(long = "without-heartbeat", env = "MAESTRO_WITHOUT_HEARTBEAT", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub without_heartbeat: bool,

    /// Do not ask the other workers for their revoked ids at start (Celery's mingle).
    #[arg(long = "without-mingle", env = "MAESTRO_WITHOUT_MINGLE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub without_mingle: bool,

    /// Accepted for Celery's command line; this worker never gossips.
    #[arg(long = "without-gossip", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", hide = true)]
    pub without_gossip: bool,

    /// File keeping this worker's revoked ids across restarts (Celery's `--statedb`); unset:
    /// kept in memory only (and learnt from the other workers at start, unless
    /// `--without-mingle`).
    #[arg(short = 'S', long = "statedb", env = "CELERYD_STATE_DB")]
    pub statedb: Option<std::path::PathBuf>,

    /// Serializers accepted, comma separated (Celery's `accept_content`): `json`, `msgpack`,
    /// `yaml`, `auth` (signed messages). Unset: every one this build reads, and `auth` when
    /// `--security-cert-store` is given. `auth` alone refuses every unsigned task.
    #[arg(long, env = "CELERY_ACCEPT_CONTENT", value_delimiter = ',')]
    pub accept_content: Option<Vec<String>>,

    /// Certificates whose signed (`auth`) messages are trusted: a directory of PEM files, or
    /// one file (Celery's `security_cert_store`).
    #[arg(long, env = "CELERY_SECURITY_CERT_STORE")]
    pub security_cert_store: Option<std::path::PathBuf>,

    /// PEM RSA private key (not encrypted) this worker signs what it sends with (retries,
    /// follow-ups), with `--security-certificate` (Celery's `security_key`).
    #[arg(long, env = "CELERY_SECURITY_KEY")]
    pub security_key: Option<std::path::PathBuf>,

    /// PEM certificate of `--security-key` (Celery's `security_certificate`).
    #[arg(long, env = "CELERY_SECURITY_CERTIFICATE")]
    pub security_certificate: Option<std::path::PathBuf>,

    /// Answer remote control (`celery inspect`, `celery control revoke`) on celery.pidbox.
    #[arg(long, env = "CELERY_WORKER_ENABLE_REMOTE_CONTROL", default_value_t = true, action = clap::ArgAction::Set)]
    pub remote_control: bool,

    /// Address of the `/healthz`, `/readyz` and `/metrics` endpoint; `off` disables it
    /// [default: the application's; maestro-worker's is 0.0.0.0:9809, a library worker's off].
    #[arg(long, env = "MAESTRO_WORKER_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
}

/// The defaults that belong to an application rather than to the runtime: its node name, its
/// dead-letter names and whether it serves metrics, so two applications on one host or one
/// broker do not collide. Flags and environment variables override them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDefaults {
    /// Node name pattern (`myapp@%h`).
    pub hostname: String,
    /// Dead-letter exchange and queue (`myapp.dead`).
    pub dead_letter: String,
    /// Metrics address (`0.0.0.0:9809`); `None` serves none.
    pub metrics_addr: Option<String>,
}

impl AppDefaults {
    /// The defaults of application `app`: node `app@%h`, dead letters in `app.dead`, no
    /// metrics endpoint unless asked for.
    pub fn named(app: &str) -> Self {
        Self {
            hostname: format!("{app}@%h"),
            dead_letter: format!("{app}.dead"),
            metrics_addr: None,
        }
    }

    /// maestro-worker's: `maestro@%h`, `maestro.dead`, metrics on `0.0.0.0:9809`.
    pub fn maestro() -> Self {
        Self {
            metrics_addr: Some("0.0.0.0:9809".into()),
            ..Self::named("maestro")
        }
    }
}

impl Default for AppDefaults {
    /// Celery's node name (`celery@%h`), `celery.dead`, no metrics endpoint.
    fn default() -> Self {
        Self::named("celery")
    }
}

/// Where results go.
#[derive(Clone, PartialEq, Eq)]
pub enum ResultBackend {
    /// Results are not stored.
    None,
    /// Replies to `reply_to` with `correlation_id`, as Celery's RPC backend.
    Rpc,
    /// A result store at this URL: Celery's MongoDB layout (`mongodb://`, the `mongodb`
    /// feature) or its Redis layout (`redis://`, the `redis` feature).
    Store { url: String },
}

/// The URL may hold a password: shown redacted.
impl std::fmt::Debug for ResultBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResultBackend::None => f.write_str("None"),
            ResultBackend::Rpc => f.write_str("Rpc"),
            ResultBackend::Store { url } => f
                .debug_struct("Store")
                .field("url", &maestro_broker::connection::redact(url))
                .finish(),
        }
    }
}

/// The checked configuration the runtime uses.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub queues: Vec<TaskQueue>,
    pub concurrency: usize,
    pub prefetch_count: u16,
    pub hostname: String,
    /// One URL, or several nodes of one cluster (`;`-separated, tried round robin).
    pub broker: BrokerUrls,
    pub broker_display: String,
    pub result_backend: ResultBackend,
    pub result_expires: Option<Duration>,
    pub track_started: bool,
    pub default_queue: String,
    pub events: bool,
    /// Worker events (not `--without-heartbeat`).
    pub heartbeat: bool,
    /// Ask the other workers for revoked ids at start (not `--without-mingle`).
    pub mingle: bool,
    pub statedb: Option<std::path::PathBuf>,
    pub remote_control: bool,
    /// What deliveries are read (`--accept-content`, `--security-cert-store`).
    pub accept: maestro_broker::Accept,
    /// Signs every task message the worker sends (`--security-key`), when set.
    pub signing: Option<maestro_broker::Signing>,
    pub time_limit: Option<Duration>,
    pub soft_time_limit: Option<Duration>,
    pub acks_late: bool,
    pub max_body_bytes: usize,
    pub max_redeliveries: u32,
    /// Look every delivery up before running it (`--duplicate-check always`), else only
    /// redelivered ones.
    pub check_every_delivery: bool,
    pub result_extended: bool,
    pub shutdown_grace: Duration,
    pub delay: DelayTopology,
    pub queue_type: QueueType,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub retry_backoff_min: Duration,
    pub retry_backoff_max: Duration,
    /// Where `/healthz`, `/readyz` and `/metrics` are served; `None`: not served.
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for WorkerArgs {
    /// The flags' own defaults, whatever the environment holds: a worker configured in code
    /// takes its settings from code.
    fn default() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let cmd = WorkerCli::command().mut_args(|a| a.env(None::<&str>));
        let matches = cmd
            .try_get_matches_from(["worker"])
            .expect("the flags' defaults parse");
        WorkerArgs::from_arg_matches(&matches).expect("the flags' defaults are valid")
    }
}

/// Seconds (integer or fraction) as a Duration; rejects negatives, NaN and more than a year.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    maestro_broker::config::parse_secs_up_to(s, true, 366.0 * 86_400.0, "a year")
}

impl WorkerArgs {
    /// Checks every value and computes what derives from them, with Celery's node name and no
    /// metrics endpoint where the flags say nothing (see [`into_config_for`](Self::into_config_for)).
    pub fn into_config(self) -> Result<WorkerConfig, ConfigError> {
        self.into_config_for(&AppDefaults::default())
    }

    /// Checks every value and computes what derives from them; what the flags leave unset
    /// comes from the application's `defaults`.
    pub fn into_config_for(self, defaults: &AppDefaults) -> Result<WorkerConfig, ConfigError> {
        let dead_letter_exchange = self
            .dead_letter_exchange
            .unwrap_or_else(|| defaults.dead_letter.clone());
        let dead_letter_queue = self
            .dead_letter_queue
            .unwrap_or_else(|| defaults.dead_letter.clone());
        let metrics_text = self
            .metrics_addr
            .or_else(|| defaults.metrics_addr.clone())
            .unwrap_or_else(|| "off".into());
        let hostname_pattern = self.hostname.unwrap_or_else(|| defaults.hostname.clone());
        let mut names: Vec<String> = Vec::new();
        for q in &self.queues {
            let q = q.trim();
            if q.is_empty() {
                continue;
            }
            validate_queue_name(q).map_err(|r| err("--queues", "MAESTRO_WORKER_QUEUES", r))?;
            if !names.iter().any(|n| n == q) {
                names.push(q.to_owned());
            }
        }
        if names.is_empty() {
            return Err(err("--queues", "MAESTRO_WORKER_QUEUES", "no queue given"));
        }
        if self.concurrency == 0 || self.concurrency > 10_000 {
            return Err(err(
                "--concurrency",
                "CELERYD_CONCURRENCY",
                format!("{} is not between 1 and 10000", self.concurrency),
            ));
        }
        if self.prefetch_multiplier == 0 {
            return Err(err(
                "--prefetch-multiplier",
                "CELERYD_PREFETCH_MULTIPLIER",
                "must be at least 1",
            ));
        }
        let prefetch = self.concurrency.saturating_mul(self.prefetch_multiplier);
        if prefetch > PREFETCH_COUNT_MAX {
            return Err(err(
                "--prefetch-multiplier",
                "CELERYD_PREFETCH_MULTIPLIER",
                format!(
                    "concurrency x multiplier = {prefetch} exceeds AMQP's prefetch limit of {PREFETCH_COUNT_MAX}"
                ),
            ));
        }
        let broker = self.broker.urls()?;
        let result_backend = match self
            .result_backend
            .as_ref()
            .map(|s| secrecy::ExposeSecret::expose_secret(s).trim())
        {
            None | Some("") | Some("disabled") => ResultBackend::None,
            Some(url) if url.starts_with("rpc://") => ResultBackend::Rpc,
            Some(url) if maestro_results::is_store_url(url) => ResultBackend::Store {
                url: url.to_owned(),
            },
            Some(other) => {
                return Err(err(
                    "--result-backend",
                    "CELERY_RESULT_BACKEND",
                    format!(
                        "{:?} is not a backend of this build ({}, rpc://)",
                        maestro_broker::connection::redact(other),
                        maestro_results::SCHEMES
                    ),
                ));
            }
        };
        if let (Some(soft), Some(hard)) = (self.soft_time_limit, self.time_limit)
            && soft > hard
        {
            return Err(err(
                "--soft-time-limit",
                "CELERYD_TASK_SOFT_TIME_LIMIT",
                "is longer than the hard --time-limit",
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(err(
                "--max-body-bytes",
                "MAESTRO_MAX_BODY_BYTES",
                "must be at least 1",
            ));
        }
        if self.retry_backoff_min.is_zero() || self.retry_backoff_min > self.retry_backoff_max {
            return Err(err(
                "--retry-backoff-min",
                "MAESTRO_RETRY_BACKOFF_MIN",
                "must be more than zero and no more than --retry-backoff-max",
            ));
        }
        validate_queue_name(&self.default_queue)
            .map_err(|r| err("--default-queue", "CELERY_TASK_DEFAULT_QUEUE", r))?;
        validate_queue_name(&self.delay_prefix)
            .map_err(|r| err("--delay-prefix", "MAESTRO_DELAY_PREFIX", r))?;
        validate_queue_name(&dead_letter_exchange)
            .map_err(|r| err("--dead-letter-exchange", "MAESTRO_DEAD_LETTER_EXCHANGE", r))?;
        validate_queue_name(&dead_letter_queue)
            .map_err(|r| err("--dead-letter-queue", "MAESTRO_DEAD_LETTER_QUEUE", r))?;
        if names.iter().any(|n| n == &dead_letter_queue) {
            return Err(err(
                "--queues",
                "MAESTRO_WORKER_QUEUES",
                "the dead-letter queue cannot be consumed as a task queue",
            ));
        }
        let metrics_addr = match metrics_text.trim() {
            "off" | "" => None,
            a => Some(a.parse::<SocketAddr>().map_err(|e| {
                err(
                    "--metrics-addr",
                    "MAESTRO_WORKER_METRICS_ADDR",
                    format!("{a:?} is not host:port ({e}); use off to disable"),
                )
            })?),
        };
        let accept = maestro_broker::Accept::configure(
            self.accept_content.as_deref(),
            self.security_cert_store.as_deref(),
        )
        .map_err(|r| {
            let (flag, var) = if r.contains("certificate store") || r.contains("Certificate") {
                ("--security-cert-store", "CELERY_SECURITY_CERT_STORE")
            } else {
                ("--accept-content", "CELERY_ACCEPT_CONTENT")
            };
            err(flag, var, r)
        })?;
        let signing = match (&self.security_key, &self.security_certificate) {
            (None, None) => None,
            (Some(key), Some(cert)) => Some(
                maestro_broker::Signing::load(key, cert)
                    .map_err(|r| err("--security-key", "CELERY_SECURITY_KEY", r))?,
            ),
            (Some(_), None) => {
                return Err(err(
                    "--security-certificate",
                    "CELERY_SECURITY_CERTIFICATE",
                    "is needed with --security-key",
                ));
            }
            (None, Some(_)) => {
                return Err(err(
                    "--security-key",
                    "CELERY_SECURITY_KEY",
                    "is needed with --security-certificate",
                ));
            }
        };
        if signing.is_none() && accept.signed() && !accept.accepts_unsigned() {
            return Err(err(
                "--accept-content",
                "CELERY_ACCEPT_CONTENT",
                "auth alone needs --security-key and --security-certificate: the worker's own \
                 retries and follow-ups must be signed to be read again",
            ));
        }
        let hostname = expand_hostname(&hostname_pattern, &host_name(), std::process::id());
        if hostname.is_empty() || hostname.len() > 200 {
            return Err(err(
                "--hostname",
                "MAESTRO_WORKER_NAME",
                "must be 1 to 200 bytes",
            ));
        }
        Ok(WorkerConfig {
            queues: names
                .iter()
                .map(|n| TaskQueue::named(n, self.queue_type))
                .collect(),
            concurrency: self.concurrency as usize,
            prefetch_count: prefetch as u16,
            hostname,
            broker_display: broker.display(),
            broker,
            result_backend,
            result_expires: Some(self.result_expires).filter(|d| !d.is_zero()),
            track_started: self.track_started,
            default_queue: self.default_queue,
            events: self.events,
            heartbeat: !self.without_heartbeat,
            mingle: !self.without_mingle,
            statedb: self.statedb,
            remote_control: self.remote_control,
            accept,
            signing,
            time_limit: self.time_limit,
            soft_time_limit: self.soft_time_limit,
            acks_late: self.acks_late,
            max_body_bytes: self.max_body_bytes,
            max_redeliveries: self.max_redeliveries,
            check_every_delivery: self.duplicate_check == "always",
            result_extended: self.result_extended,
            shutdown_grace: self.shutdown_grace,
            delay: DelayTopology::with_prefix(self.delay_prefix),
            queue_type: self.queue_type,
            dead_letter_exchange,
            dead_letter_queue,
            retry_backoff_min: self.retry_backoff_min,
            retry_backoff_max: self.retry_backoff_max,
            metrics_addr,
        })
    }
}

/// Celery's node-name expansion: `%h` full host, `%n` host without domain, `%d` domain,
/// `%p` pid, `%%` a percent sign.
pub fn expand_hostname(pattern: &str, host: &str, pid: u32) -> String {
    let (short, domain) = host.split_once('.').unwrap_or((host, ""));
    let mut out = String::with_capacity(pattern.len() + host.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(host),
            Some('n') => out.push_str(short),
            Some('d') => out.push_str(domain),
            Some('p') => out.push_str(&pid.to_string()),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<WorkerConfig, String> {
        let mut argv = vec!["maestro-worker"];
        argv.extend_from_slice(args);
        WorkerCli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .worker
            .into_config_for(&AppDefaults::maestro())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let argv = [
            "maestro-worker",
            "--result-backend",
            "mongodb://u:results-pw@h/db",
            "-b",
            "amqp://u:amqp-pw@h//",
        ];
        let cli = WorkerCli::try_parse_from(argv).expect("flags");
        let shown = format!("{cli:?}");
        let cfg = cli.worker.into_config().expect("valid");
        let shown = format!("{shown} {cfg:?}");
        for secret in ["results-pw", "amqp-pw"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn defaults_are_sane() {
        let c = parse(&[]).expect("defaults parse");
        assert_eq!(c.queues.len(), 1);
        assert_eq!(c.queues[0].name, "celery");
        assert_eq!(c.prefetch_count, 256);
        assert!(c.acks_late);
        assert_eq!(c.result_backend, ResultBackend::None);
        assert_eq!(c.metrics_addr, Some(SocketAddr::from(([0, 0, 0, 0], 9809))));
        let off = parse(&["--metrics-addr", "off"]).expect("off parses");
        assert_eq!(off.metrics_addr, None);
        assert!(c.hostname.starts_with("maestro@"), "{}", c.hostname);
        assert_eq!(c.dead_letter_queue, "maestro.dead");
    }

    #[test]
    fn an_application_has_its_own_defaults() {
        let args = || WorkerCli::try_parse_from(["app"]).expect("flags").worker;
        let mine = args()
            .into_config_for(&AppDefaults::named("myapp"))
            .expect("valid");
        assert!(mine.hostname.starts_with("myapp@"), "{}", mine.hostname);
        assert_eq!(mine.dead_letter_exchange, "myapp.dead");
        assert_eq!(mine.dead_letter_queue, "myapp.dead");
        assert_eq!(mine.metrics_addr, None, "no port taken unless asked");
        let celery = args().into_config().expect("valid");
        assert!(
            celery.hostname.starts_with("celery@"),
            "{}",
            celery.hostname
        );
        let flags = WorkerCli::try_parse_from(["app", "-n", "w1@%h", "--dead-letter-queue", "dq"])
            .expect("flags")
            .worker
            .into_config_for(&AppDefaults::named("myapp"))
            .expect("valid");
        assert!(flags.hostname.starts_with("w1@"));
        assert_eq!(flags.dead_letter_queue, "dq");
        assert_eq!(flags.dead_letter_exchange, "myapp.dead");
    }

    #[test]
    fn queues_split_and_dedupe() {
        let c = parse(&[
            "-Q",
            "report,discovery,report",
            "-c",
            "2",
            "--prefetch-multiplier",
            "8",
        ])
        .expect("parses");
        let names: Vec<_> = c.queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["report", "discovery"]);
        assert_eq!(c.prefetch_count, 16);
    }

    #[test]
    fn bad_values_name_the_flag_and_variable() {
        let cases: &[(&[&str], &str)] = &[
            (&["-c", "0"], "CELERYD_CONCURRENCY"),
            (
                &["-c", "5000", "--prefetch-multiplier", "100"],
                "prefetch limit",
            ),
            (&["-b", "redis://x"], "CELERY_BROKER_URL"),
            (&["-Q", "amq.x"], "reserved prefix"),
            (&["-Q", ","], "no queue given"),
            (&["--result-expires", "soon"], "--result-expires"),
            (
                &["--result-backend", "couchdb://h"],
                "not a backend of this build",
            ),
            (
                &["--time-limit", "1", "--soft-time-limit", "2"],
                "longer than the hard",
            ),
            (&["--time-limit=-1"], "zero or more seconds"),
            (&["--time-limit", "abc"], "not a number of seconds"),
            (&["--queue-type", "stream"], "not classic or quorum"),
            (&["-Q", "maestro.dead"], "dead-letter queue"),
            (
                &["--metrics-addr", "nowhere"],
                "MAESTRO_WORKER_METRICS_ADDR",
            ),
        ];
        for (args, want) in cases {
            let e = parse(args).expect_err("must be refused");
            assert!(e.contains(want), "{args:?}: {e:?} should mention {want:?}");
        }
    }

    #[test]
    fn code_and_flags_make_the_same_configuration() {
        let from_flags = parse(&["-Q", "a,b", "-c", "3", "--metrics-addr", "off"]).expect("flags");
        let from_code = WorkerConfig::builder()
            .queues(["a", "b"])
            .concurrency(3)
            .metrics_addr(None)
            .build()
            .expect("code");
        let names = |c: &WorkerConfig| c.queues.iter().map(|q| q.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&from_flags), names(&from_code));
        assert_eq!(from_flags.prefetch_count, from_code.prefetch_count);
        assert_eq!(from_flags.metrics_addr, from_code.metrics_addr);
        let bad = WorkerConfig::builder()
            .concurrency(0)
            .build()
            .expect_err("checked");
        assert!(bad.to_string().contains("--concurrency"), "{bad}");
        assert_eq!(WorkerConfig::default().queues[0].name, "celery");
    }

    #[test]
    fn node_names_expand_like_celery() {
        assert_eq!(
            expand_hostname("w1@%h", "box.example.com", 7),
            "w1@box.example.com"
        );
        assert_eq!(
            expand_hostname("%n-%d-%p%%", "box.example.com", 7),
            "box-example.com-7%"
        );
        assert_eq!(expand_hostname("x@%n", "box", 7), "x@box");
    }
}
