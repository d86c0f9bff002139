//! What every binary runs besides its work: the log flags, the stop signals, and the health
//! and metrics endpoint.
//!
//! - [`LogArgs`]: `--log-format` and `--log-level`, flattened into each binary's flags.
//! - [`Signals`]: SIGTERM and SIGINT as one stream; what a signal means is the binary's own
//!   (the worker drains on the first and aborts on the second, beat and the API stop).
//! - [`serve`]: `/healthz` (200 while the process runs), `/readyz` (the component's own
//!   readiness) and `/metrics` (Prometheus text) on one address, until a token is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Args;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// The content type of Prometheus metrics in the OpenMetrics text format.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Log flags, the same in every binary.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format: text or json.
    #[arg(long, env = "MAESTRO_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Log filter (tracing EnvFilter syntax, e.g. info or maestro_worker=debug).
    #[arg(long, env = "MAESTRO_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

impl Default for LogArgs {
    fn default() -> Self {
        Self {
            log_format: "text".into(),
            log_level: "info".into(),
        }
    }
}

impl LogArgs {
    /// Installs logging (and trace export when `OTEL_*` asks for it) for `service`; see
    /// [`crate::init`].
    pub fn init(&self, service: &'static str) -> Result<crate::Telemetry, crate::TelemetryError> {
        crate::init(service, &self.log_format, &self.log_level)
    }
}

/// SIGTERM and SIGINT, as one stream of stop requests.
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Starts listening; must be called inside the runtime.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next signal's name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// What the health endpoint asks of a component.
pub trait Health: Send + Sync + 'static {
    /// The metrics in the Prometheus text format.
    fn render_metrics(&self) -> String;

    /// Whether the component can do its work now (`/readyz`); ready unless it says otherwise.
    fn is_ready(&self) -> bool {
        true
    }
}

async fn metrics<H: Health>(State(h): State<Arc<H>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        h.render_metrics(),
    )
}

async fn readyz<H: Health>(State(h): State<Arc<H>>) -> StatusCode {
    if h.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// The endpoint's routes.
pub fn router<H: Health>(h: Arc<H>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<H>))
        .route("/readyz", get(readyz::<H>))
        .route("/healthz", get(|| async { StatusCode::OK }))
        .with_state(h)
}

/// Binds `addr` and serves [`router`] until `stop` is cancelled; returns the bound address
/// (port 0 picks a free one).
pub async fn serve<H: Health>(
    addr: SocketAddr,
    h: Arc<H>,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, router(h))
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(event = "metrics_server_failed", error = %e);
        }
    });
    Ok(bound)
}
