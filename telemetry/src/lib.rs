//! Telemetry and operations plumbing for the maestro processes: logs always, OpenTelemetry
//! traces when configured, the stop signals and the health and metrics endpoint.
//!
//! - `config`: the `OTEL_*` environment, checked at start-up (errors name the variable).
//! - `subscriber`: [`init`] installs logging (text or JSON) and, when export is on, the
//!   OpenTelemetry layer and its OTLP/HTTP batch exporter; [`Telemetry`] flushes at exit.
//! - `span`: [`start`] links a span to the `traceparent` a message carries or will carry.
//! - `ops`: [`LogArgs`], [`Signals`], and [`serve`] for `/healthz`, `/readyz`, `/metrics`.
//!
//! The worker runtime and the binaries depend on this crate; `maestro-broker` and
//! `maestro-tasks` do not, so the OTLP exporter and its HTTP client stay out of them. The
//! exporter itself is the `otlp` feature (on by default): without it, logs only.

#[cfg(feature = "otlp")]
pub mod config;
pub mod ops;
mod span;
mod subscriber;

pub use ops::{Health, LogArgs, Signals, serve};
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
