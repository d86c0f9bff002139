//! Prometheus metrics, served at `/metrics` in the text exposition format:
//! - `maestro_api_http_requests_total{route,method,status}` requests answered
//! - `maestro_api_http_request_duration_seconds{route}` time to answer
//! - `maestro_api_enqueued_total{queue,outcome}` enqueues (`confirmed` or `failed`)
//! - `maestro_api_publish_duration_seconds` publish until the broker's confirm (or failure)

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnqueueLabels {
    queue: String,
    outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The API's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    enqueued: Family<EnqueueLabels, Counter>,
    publish_duration: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("maestro_api");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let enqueued = Family::<EnqueueLabels, Counter>::default();
        let publish_duration = latency_histogram();
        registry.register(
            "http_requests",
            "HTTP requests answered",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            http_duration.clone(),
        );
        registry.register(
            "enqueued",
            "Task messages published (confirmed) or given up (failed)",
            enqueued.clone(),
        );
        registry.register(
            "publish_duration_seconds",
            "Publishing one task message until the broker's confirm or failure",
            publish_duration.clone(),
        );
        Self {
            registry,
            http_requests,
            http_duration,
            enqueued,
            publish_duration,
        }
    }
}

impl Metrics {
    /// Counts one enqueue.
    pub fn observe_enqueue(&self, queue: &str, confirmed: bool, took: Duration) {
        self.enqueued
            .get_or_create(&EnqueueLabels {
                queue: queue.to_owned(),
                outcome: if confirmed { "confirmed" } else { "failed" },
            })
            .inc();
        self.publish_duration.observe(took.as_secs_f64());
    }

    fn observe_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Middleware: counts and times every request by its route template (never the raw path, so
/// ids in paths do not make new series).
pub(crate) async fn track(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    // The method is a label: any other than the standard ones is OTHER, so made-up methods
    // (unauthenticated, kilobytes long) cannot grow the series without bound.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" | "TRACE"
        | "CONNECT") => m,
        _ => "OTHER",
    }
    .to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    metrics.observe_request(&route, &method, resp.status().as_u16(), started.elapsed());
    resp
}
