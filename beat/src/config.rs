//! `maestro-beat` flags, each also read from an environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use maestro_broker::QueueType;
pub use maestro_broker::config::ConfigError;
use maestro_broker::config::config_error as err;
use maestro_broker::config::host_name;

use crate::fire::FireConfig;
use crate::lease::LeaseConfig;

/// maestro-beat: fires periodic tasks from MongoDB schedules; run two or more for failover.
#[derive(Debug, Parser)]
#[command(name = "maestro-beat", version)]
pub struct Cli {
    #[command(flatten)]
    pub broker: maestro_broker::config::BrokerArgs,

    /// MongoDB holding the schedules and the lease.
    #[command(flatten)]
    pub mongo: maestro_contract::MongoArgs,

    /// Collection of schedules (Maestro's `schedulers` shape).
    #[arg(long, env = "MAESTRO_BEAT_SCHEDULES", default_value = maestro_contract::schedule::DEFAULT_COLLECTION)]
    pub schedules_collection: String,

    /// Collection of the lease document.
    #[arg(
        long,
        env = "MAESTRO_BEAT_LEASE_COLLECTION",
        default_value = "maestro_beat_lease"
    )]
    pub lease_collection: String,

    /// The lease's `_id`: beats sharing it elect one leader.
    #[arg(long, env = "MAESTRO_BEAT_LEASE_NAME", default_value = "maestro-beat")]
    pub lease_name: String,

    /// Seconds a lease lasts after each renewal.
    #[arg(long, env = "MAESTRO_BEAT_LEASE_TTL", default_value = "10", value_parser = parse_secs)]
    pub lease_ttl: Duration,

    /// Seconds after its last successful renewal a leader keeps firing (shorter than the TTL;
    /// TTL minus this is the clock skew the lease tolerates between beats).
    #[arg(long, env = "MAESTRO_BEAT_RENEW_DEADLINE", default_value = "6", value_parser = parse_secs)]
    pub renew_deadline: Duration,

    /// Seconds between passes (lease renewal or check, and schedule evaluation).
    #[arg(long, env = "MAESTRO_BEAT_TICK", default_value = "1", value_parser = parse_secs)]
    pub tick: Duration,

    /// Catch-up: a slot up to this many seconds late fires on its own; a schedule further
    /// behind runs once, for its latest due slot.
    #[arg(long, env = "MAESTRO_BEAT_CATCH_UP_GRACE", default_value = "5", value_parser = parse_secs)]
    pub catch_up_grace: Duration,

    /// Task routes `task=queue,...`, added to (and overriding) Maestro's defaults: where a
    /// schedule that names no queue sends its task (`maestro.scheduler.run` to `scheduler`).
    #[arg(long, env = "MAESTRO_ROUTES", default_value = "")]
    pub routes: String,

    /// Queue for schedules that name none and whose task has no route.
    #[arg(long, env = "CELERY_TASK_DEFAULT_QUEUE", default_value = "celery")]
    pub default_queue: String,

    /// Let a schedule name any valid queue; when false only the default queue and the queues of
    /// the routing table are fired to (as the API's `MAESTRO_ALLOW_ANY_QUEUE`).
    #[arg(long, env = "MAESTRO_ALLOW_ANY_QUEUE", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_any_queue: bool,

    /// Fire schedules of the diagnostic tasks (`maestro.noop`, `echo`, `sleep`, `fail`,
    /// `record`); off in production (as the API's and the worker's `MAESTRO_ENABLE_DIAGNOSTICS`).
    #[arg(long, env = "MAESTRO_ENABLE_DIAGNOSTICS", default_value_t = false, action = clap::ArgAction::Set)]
    pub enable_diagnostics: bool,

    /// Queue type used when beat declares a target queue: classic or quorum.
    #[arg(long, env = "MAESTRO_QUEUE_TYPE", default_value = "classic")]
    pub queue_type: QueueType,

    /// This beat's name in the lease; default `beat@<host>:<pid>`.
    #[arg(short = 'n', long = "name", env = "MAESTRO_BEAT_NAME")]
    pub name: Option<String>,

    /// Address of the `/metrics` and `/healthz` endpoint; `off` disables it.
    #[arg(
        long,
        env = "MAESTRO_BEAT_METRICS_ADDR",
        default_value = "0.0.0.0:9808"
    )]
    pub metrics_addr: String,

    #[command(flatten)]
    pub log: maestro_telemetry::LogArgs,
}

/// Everything a beat needs, checked.
#[derive(Debug, Clone)]
pub struct BeatConfig {
    /// It may hold a password: `Debug` shows it redacted.
    pub mongo_uri: secrecy::SecretString,
    pub mongo_database: String,
    pub schedules_collection: String,
    pub lease_collection: String,
    pub lease_name: String,
    pub lease: LeaseConfig,
    pub fire: FireConfig,
    pub metrics_addr: Option<SocketAddr>,
}

/// Seconds (integer or fraction) as a Duration; rejects negatives, NaN and more than a day.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    maestro_broker::config::parse_secs_up_to(s, true, 86_400.0, "a day")
}

impl Cli {
    /// Checks every value.
    pub fn into_config(self) -> Result<BeatConfig, ConfigError> {
        let broker = self.broker.urls()?;
        if !self.mongo.mongo_uri.starts_with("mongodb://")
            && !self.mongo.mongo_uri.starts_with("mongodb+srv://")
        {
            return Err(err(
                "--mongo-uri",
                "MAESTRO_MONGO_URI",
                "must start with mongodb:// or mongodb+srv://",
            ));
        }
        let name_ok = |s: &str| !s.is_empty() && !s.contains(['$', '\0', '/', '\\', ' ', '.', '"']);
        if !name_ok(&self.mongo.mongo_database) {
            return Err(err(
                "--mongo-database",
                "MAESTRO_MONGO_DATABASE",
                "must be a non-empty MongoDB database name (no $ . / \\ \" space)",
            ));
        }
        for (flag, env, v) in [
            (
                "--schedules-collection",
                "MAESTRO_BEAT_SCHEDULES",
                &self.schedules_collection,
            ),
            (
                "--lease-collection",
                "MAESTRO_BEAT_LEASE_COLLECTION",
                &self.lease_collection,
            ),
        ] {
            if v.is_empty() || v.starts_with("system.") || v.contains(['$', '\0']) {
                return Err(err(
                    flag,
                    env,
                    "must be a non-empty collection name without $",
                ));
            }
        }
        if self.lease_name.is_empty() {
            return Err(err(
                "--lease-name",
                "MAESTRO_BEAT_LEASE_NAME",
                "must not be empty",
            ));
        }
        maestro_broker::topology::validate_queue_name(&self.default_queue)
            .map_err(|e| err("--default-queue", "CELERY_TASK_DEFAULT_QUEUE", e))?;
        let routes = maestro_contract::routes::maestro_with(&self.routes)
            .map_err(|r| err("--routes", "MAESTRO_ROUTES", r))?;
        if self.tick < Duration::from_millis(100) {
            return Err(err(
                "--tick",
                "MAESTRO_BEAT_TICK",
                "must be at least 0.1 seconds",
            ));
        }
        let holder = match self.name {
            Some(n) if n.trim().is_empty() => {
                return Err(err("--name", "MAESTRO_BEAT_NAME", "must not be empty"));
            }
            Some(n) => n,
            None => format!("beat@{}:{}", host_name(), std::process::id()),
        };
        let lease = LeaseConfig {
            holder: holder.clone(),
            ttl: self.lease_ttl,
            renew_deadline: self.renew_deadline,
            tick: self.tick,
        };
        lease.validate().map_err(|e| {
            err(
                "--lease-ttl/--renew-deadline/--tick",
                "MAESTRO_BEAT_LEASE_TTL/MAESTRO_BEAT_RENEW_DEADLINE/MAESTRO_BEAT_TICK",
                e,
            )
        })?;
        let metrics_addr = match self.metrics_addr.trim() {
            "off" | "" => None,
            a => Some(a.parse::<SocketAddr>().map_err(|e| {
                err(
                    "--metrics-addr",
                    "MAESTRO_BEAT_METRICS_ADDR",
                    format!("{a:?} is not host:port ({e}); use off to disable"),
                )
            })?),
        };
        Ok(BeatConfig {
            mongo_uri: self.mongo.mongo_uri.into(),
            mongo_database: self.mongo.mongo_database,
            schedules_collection: self.schedules_collection,
            lease_collection: self.lease_collection,
            lease_name: self.lease_name,
            lease,
            fire: FireConfig {
                broker,
                routes,
                default_queue: self.default_queue,
                allow_any_queue: self.allow_any_queue,
                enable_diagnostics: self.enable_diagnostics,
                queue_type: self.queue_type,
                grace: self.catch_up_grace,
                origin: holder,
            },
            metrics_addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<BeatConfig, String> {
        let mut argv = vec!["maestro-beat"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .into_config()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let c = parse(&[
            "--mongo-uri",
            "mongodb://u:mongo-pw@h/",
            "-b",
            "amqp://u:amqp-pw@h//",
        ])
        .expect("valid");
        let shown = format!("{c:?}");
        for secret in ["mongo-pw", "amqp-pw"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = parse(&[]).expect("defaults");
        assert_eq!(c.lease.ttl, Duration::from_secs(10));
        assert_eq!(c.lease.renew_deadline, Duration::from_secs(6));
        assert_eq!(c.lease.tick, Duration::from_secs(1));
        assert_eq!(c.fire.grace, Duration::from_secs(5));
        assert_eq!(c.schedules_collection, "schedulers");
        assert_eq!(c.mongo_database, "maestro-client");
        assert!(c.lease.holder.starts_with("beat@"));
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, flag) in [
            (
                vec!["--lease-ttl", "5", "--renew-deadline", "6"],
                "--lease-ttl",
            ),
            (vec!["--tick", "6"], "--lease-ttl/--renew-deadline/--tick"),
            (vec!["--tick", "0.01"], "--tick"),
            (vec!["--mongo-uri", "http://x"], "--mongo-uri"),
            (vec!["--mongo-database", "a.b"], "--mongo-database"),
            (vec!["--metrics-addr", "nowhere"], "--metrics-addr"),
            (vec!["-b", "http://x"], "--broker"),
            (vec!["--name", " "], "--name"),
        ] {
            let e = parse(&args).expect_err(&format!("{args:?}"));
            assert!(e.starts_with(flag), "{args:?}: {e}");
        }
        let e = parse(&["--lease-ttl=-1"]).expect_err("negative");
        assert!(e.contains("--lease-ttl"), "{e}");
    }
}
