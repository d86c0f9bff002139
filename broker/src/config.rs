//! What every configuration shares: the error that names a flag, its environment variable
//! and the problem; seconds as a flag value; this machine's host name; and the broker flag.
//! They live in the crate every component depends on, so each is written once.

use clap::Args;

use crate::connection::{BrokerUrls, DEFAULT_BROKER_URL, parse_broker_urls};

/// The broker flag, the same in every binary.
#[derive(Clone, Args)]
pub struct BrokerArgs {
    /// Broker URL (amqp://, amqps://, pyamqp://), or several nodes of one cluster separated
    /// by `;`.
    #[arg(short = 'b', long = "broker", env = "CELERY_BROKER_URL", default_value = DEFAULT_BROKER_URL, hide_env_values = true)]
    pub broker: String,
}

/// The URL may hold a password: it is shown redacted.
impl std::fmt::Debug for BrokerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerArgs")
            .field("broker", &crate::connection::redact(&self.broker))
            .finish()
    }
}

impl Default for BrokerArgs {
    fn default() -> Self {
        Self {
            broker: DEFAULT_BROKER_URL.to_owned(),
        }
    }
}

impl BrokerArgs {
    /// The checked URLs.
    pub fn urls(&self) -> Result<BrokerUrls, ConfigError> {
        parse_broker_urls(&self.broker)
            .map_err(|e| config_error("--broker", "CELERY_BROKER_URL", e.to_string()))
    }
}

/// A configuration error: which flag (and variable), and why.
#[derive(Debug, thiserror::Error)]
#[error("{flag} ({env}): {reason}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub env: &'static str,
    pub reason: String,
}

/// A [`ConfigError`] for `flag` (set by `env`).
pub fn config_error(
    flag: &'static str,
    env: &'static str,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError {
        flag,
        env,
        reason: reason.into(),
    }
}

/// Seconds (an integer or a fraction) as a Duration, up to `max_secs` (named `max_words` in
/// the error); zero only when `zero_ok`. NaN, infinities and negatives are refused.
pub fn parse_secs_up_to(
    s: &str,
    zero_ok: bool,
    max_secs: f64,
    max_words: &str,
) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 || (secs == 0.0 && !zero_ok) {
        return Err(if zero_ok {
            format!("{s:?} must be zero or more seconds")
        } else {
            format!("{s:?} must be more than zero seconds")
        });
    }
    if secs > max_secs {
        return Err(format!("{s:?} is more than {max_words}"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// This machine's host name: `HOSTNAME`, else the kernel's, else `localhost`.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_flag_and_variable() {
        let e = config_error("--tick", "MAESTRO_BEAT_TICK", "must be positive");
        assert_eq!(
            e.to_string(),
            "--tick (MAESTRO_BEAT_TICK): must be positive"
        );
        assert!(!host_name().is_empty());
    }

    #[test]
    fn seconds_are_checked() {
        use std::time::Duration;
        assert_eq!(
            parse_secs_up_to(" 1.5 ", false, 10.0, "ten"),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(parse_secs_up_to("0", true, 10.0, "ten"), Ok(Duration::ZERO));
        for bad in ["0", "-1", "NaN", "inf", "x", "11"] {
            assert!(parse_secs_up_to(bad, false, 10.0, "ten").is_err(), "{bad}");
        }
        assert!(
            parse_secs_up_to("11", true, 10.0, "ten")
                .expect_err("too long")
                .contains("ten")
        );
    }
}
