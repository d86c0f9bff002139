//! The process's one `tracing` subscriber: logs to stderr (text, or JSON on request) filtered by
//! `--log-level`, and, when [`crate::config`] turns export on, an OpenTelemetry layer whose
//! spans a batch processor sends by OTLP/HTTP.
//!
//! Lifecycle: [`init`] once at start, before the async runtime; keep the returned
//! [`Telemetry`] alive until the process ends. Dropping it (after the runtime has stopped)
//! flushes the spans still queued, for at most [`FLUSH_AT_EXIT_MAX`].

use std::time::Duration;

use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::TelemetryError;
#[cfg(feature = "otlp")]
use export::{SdkTracerProvider, export_config, with_export};
#[cfg(not(feature = "otlp"))]
use no_export::{SdkTracerProvider, export_config, with_export};

/// How long the exit may wait for queued spans to reach the collector: part of the
/// termination grace, so a collector that is away delays the exit by this much at most.
pub const FLUSH_AT_EXIT_MAX: Duration = Duration::from_secs(5);

/// Keeps the trace pipeline alive; flushes and stops it when dropped.
#[must_use = "dropping it stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            #[cfg(feature = "otlp")]
            export::shutdown(provider);
            #[cfg(not(feature = "otlp"))]
            no_export::shutdown(provider);
        }
    }
}

/// Sets up logging as `--log-format` (`text` or `json`) and `--log-level` say, and trace export
/// when the `OTEL_*` environment asks for it. `service` is the default `service.name`.
pub fn init(service: &'static str, format: &str, level: &str) -> Result<Telemetry, TelemetryError> {
    init_with(service, format, level, |k| std::env::var(k).ok())
}

/// [`init`] with the environment read through `get`.
pub fn init_with(
    service: &'static str,
    format: &str,
    level: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Result<Telemetry, TelemetryError> {
    let filter = log_filter(level)?;
    let json = format == "json";
    let Some(cfg) = export_config(&get)? else {
        // Exactly the subscriber the binaries always had: one global filter, one fmt layer.
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt_layer(json))
            .init();
        return Ok(Telemetry { provider: None });
    };
    with_export(service, &cfg, filter, json, &get)
}

/// Trace export (the `otlp` feature).
#[cfg(feature = "otlp")]
mod export {
    use std::sync::atomic::Ordering;

    use opentelemetry::KeyValue;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::Resource;
    pub(super) use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{EnvFilter, FilterFn};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    use crate::TelemetryError;
    use crate::config;
    pub(super) use crate::config::OtlpConfig;

    use super::{FLUSH_AT_EXIT_MAX, Telemetry, exported, fmt_layer};

    /// The instrumentation scope of every span.
    const SCOPE: &str = "maestro";

    pub(super) fn export_config(
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpConfig>, TelemetryError> {
        config::from_env(get)
    }

    pub(super) fn shutdown(provider: SdkTracerProvider) {
        crate::span::EXPORTING.store(false, Ordering::Relaxed);
        if let Err(e) = provider.shutdown_with_timeout(FLUSH_AT_EXIT_MAX) {
            tracing::warn!(event = "otlp_flush_failed", error = %e);
        }
    }

    pub(super) fn with_export(
        service: &'static str,
        cfg: &OtlpConfig,
        filter: EnvFilter,
        json: bool,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Telemetry, TelemetryError> {
        let provider = provider(service, cfg, get)?;
        let otel = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(SCOPE))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_filter(FilterFn::new(exported));
        // The log filter applies to the log layer only: `--log-level warn` must not stop spans.
        tracing_subscriber::registry()
            .with(fmt_layer(json).with_filter(filter))
            .with(otel)
            .init();
        crate::span::EXPORTING.store(true, Ordering::Relaxed);
        tracing::info!(
            event = "otlp_export",
            url = %maestro_broker::connection::redact(&cfg.traces_url),
            protocol = ?cfg.protocol,
            sampler = ?cfg.sampler,
        );
        Ok(Telemetry {
            provider: Some(provider),
        })
    }

    fn provider(
        service: &'static str,
        cfg: &OtlpConfig,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<SdkTracerProvider, TelemetryError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(cfg.traces_url.clone())
            .with_protocol(cfg.protocol)
            .with_timeout(cfg.export_timeout)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(cfg.sampler.clone())
            .with_resource(resource(service, cfg, get))
            .build())
    }

    /// `service.name`: `OTEL_SERVICE_NAME`, else one given in `OTEL_RESOURCE_ATTRIBUTES`, else
    /// the binary's own name. The SDK's detectors read the other resource attributes.
    fn resource(
        service: &'static str,
        cfg: &OtlpConfig,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Resource {
        let in_attributes = get("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| {
            a.split(',').any(|kv| {
                kv.split_once('=')
                    .is_some_and(|(k, _)| k.trim() == "service.name")
            })
        });
        let builder = Resource::builder();
        match &cfg.service_name {
            Some(name) => builder.with_service_name(name.clone()),
            None if in_attributes => builder,
            None => builder.with_service_name(service),
        }
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
    }
}

/// A build without the exporter: logs only, and a start-up error when the environment asks
/// for export (a collector that silently receives nothing is worse than a refusal to start).
#[cfg(not(feature = "otlp"))]
mod no_export {
    use tracing_subscriber::filter::EnvFilter;

    use super::Telemetry;
    use crate::TelemetryError;

    /// There is never a configuration or a provider without the exporter.
    pub(super) enum OtlpConfig {}
    pub(super) enum SdkTracerProvider {}

    pub(super) fn export_config(
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpConfig>, TelemetryError> {
        for var in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ] {
            if get(var).is_some_and(|v| !v.trim().is_empty()) {
                return Err(TelemetryError::Env {
                    var,
                    reason: "this build has no trace exporter (the otlp feature is off)".into(),
                });
            }
        }
        Ok(None)
    }

    pub(super) fn shutdown(provider: SdkTracerProvider) {
        match provider {}
    }

    pub(super) fn with_export(
        _service: &'static str,
        cfg: &OtlpConfig,
        _filter: EnvFilter,
        _json: bool,
        _get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Telemetry, TelemetryError> {
        match *cfg {}
    }
}

/// What the OpenTelemetry layer sees: this project's spans, and its warnings and errors inside
/// them (as span events). Libraries' spans and the exporter's own logs stay out, so exporting
/// can never feed itself.
#[cfg(feature = "otlp")]
fn exported(m: &tracing::Metadata<'_>) -> bool {
    use tracing::Level;
    m.target().starts_with("maestro")
        && if m.is_span() {
            *m.level() <= Level::INFO
        } else {
            *m.level() <= Level::WARN
        }
}

fn log_filter(level: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::try_new(level).map_err(|e| TelemetryError::LogLevel(format!("{level:?}: {e}")))
}

fn fmt_layer<S>(json: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if json {
        layer.json().flatten_event(true).boxed()
    } else {
        layer.with_ansi(false).boxed()
    }
}

#[cfg(all(test, feature = "otlp"))]
mod tests {
    use super::*;

    #[test]
    fn a_bad_configuration_installs_nothing() {
        // Errors come before any global state is touched, so main can print them and exit 2.
        let e = init_with("maestro-test", "text", "info", |k| {
            (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "localhost:4318".to_owned())
        })
        .err()
        .expect("an error");
        assert!(
            e.to_string().starts_with("OTEL_EXPORTER_OTLP_ENDPOINT: "),
            "{e}"
        );
        let e = init_with("maestro-test", "text", "nonsense=level=x", |_| None)
            .err()
            .expect("an error");
        assert!(
            e.to_string()
                .starts_with("--log-level (MAESTRO_LOG_LEVEL): "),
            "{e}"
        );
        assert!(!crate::exporting());
    }

    #[test]
    fn only_this_projects_spans_and_warnings_are_exported() {
        // A bare registry enables everything, so each span has its metadata to filter on.
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            let cases = [
                (
                    tracing::info_span!(target: "maestro_worker::processor", "task"),
                    true,
                ),
                (
                    tracing::debug_span!(target: "maestro_worker::processor", "d"),
                    false,
                ),
                (tracing::info_span!(target: "hyper::client", "h"), false),
            ];
            for (span, want) in cases {
                let m = span.metadata().expect("an enabled span");
                assert_eq!(exported(m), want, "{m:?}");
            }
        });
    }

    #[test]
    fn the_log_shows_no_credentials() {
        assert_eq!(
            maestro_broker::connection::redact("https://u:p@c:4318/v1/traces?key=k"),
            "https://u:***@c:4318/v1/traces"
        );
    }
}
