//! Telemetry for the maestro binaries: logs always, OpenTelemetry traces when configured.
//!
//! - `config`: the `OTEL_*` environment, checked at start-up (errors name the variable).
//! - `subscriber`: [`init`] installs logging (text or JSON) and, when export is on, the
//!   OpenTelemetry layer and its OTLP/HTTP batch exporter; [`Telemetry`] flushes at exit.
//! - `span`: [`start`] links a span to the `traceparent` a message carries or will carry.
//!
//! Only the three binaries depend on this crate, so the OTLP exporter and its HTTP client stay
//! out of `maestro-broker`, `maestro-tasks` and the test support.

pub mod config;
mod span;
mod subscriber;

pub use span::{Propagation, exporting, start};
pub use subscriber::{FLUSH_AT_EXIT_MAX, Telemetry, init, init_with};

/// Why telemetry could not start. The binaries print it and exit 2.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("--log-level (MAESTRO_LOG_LEVEL): {0}")]
    LogLevel(String),
    #[error("{var}: {reason}")]
    Env { var: &'static str, reason: String },
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}
