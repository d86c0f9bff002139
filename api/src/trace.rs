//! W3C trace context for enqueued tasks. A request's `traceparent` (and `tracestate`) is read
//! with OpenTelemetry's `TraceContextPropagator`; the API's enqueue is a span of its own in that
//! trace (a new span id, same trace id and flags), or the first span of a new sampled trace
//! when the request carries none or an invalid one. Its `traceparent` (and `tracestate`) go
//! into the Celery message headers, so the worker's span is a child of the API's and one trace
//! spans API -> worker -> follow-up tasks.
//!
//! When spans are exported (OTLP configured), the enqueue is an exported span of its own
//! ([`enqueue_span`]) and the message's `traceparent` names exactly that span, so the worker's
//! exported run span is its child. Otherwise no span is made and [`child_of`] picks the ids.

use std::collections::HashMap;

use axum::http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

/// Header names of the W3C trace context.
pub(crate) const TRACEPARENT: &str = "traceparent";
pub(crate) const TRACESTATE: &str = "tracestate";

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The trace context one enqueue carries on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeaders {
    /// `traceparent` of the API's span.
    pub traceparent: String,
    /// `tracestate`, when the caller sent one.
    pub tracestate: Option<String>,
    /// The trace id (32 hex digits), for logs.
    pub trace_id: String,
}

/// The enqueue of `task` to `queue`: its span (exported; `Span::none()` when nothing is
/// exported) and the trace context its message carries.
pub(crate) fn enqueue_span(
    headers: &HeaderMap,
    task: &str,
    queue: &str,
) -> (tracing::Span, TraceHeaders) {
    if maestro_telemetry::exporting() {
        let span = tracing::info_span!(
            "enqueue",
            otel.name = %format_args!("apply_async/{task}"),
            otel.kind = "producer",
            otel.status_code = tracing::field::Empty,
            task = %task,
            queue = %queue,
            task_id = tracing::field::Empty,
        );
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(p) = maestro_telemetry::start(&span, header(TRACEPARENT), header(TRACESTATE)) {
            let trace = TraceHeaders {
                traceparent: p.traceparent,
                tracestate: p.tracestate,
                trace_id: p.trace_id,
            };
            return (span, trace);
        }
    }
    (tracing::Span::none(), child_of(headers))
}

/// The API's span in the caller's trace, or in a new one.
pub(crate) fn child_of(headers: &HeaderMap) -> TraceHeaders {
    let propagator = TraceContextPropagator::new();
    let parent = propagator.extract(&HeaderExtractor(headers));
    let parent_span = parent.span();
    let parent_sc = parent_span.span_context();
    let ids = RandomIdGenerator::default();
    let sc = if parent_sc.is_valid() {
        SpanContext::new(
            parent_sc.trace_id(),
            ids.new_span_id(),
            parent_sc.trace_flags(),
            true,
            parent_sc.trace_state().clone(),
        )
    } else {
        SpanContext::new(
            ids.new_trace_id(),
            ids.new_span_id(),
            TraceFlags::SAMPLED,
            true,
            Default::default(),
        )
    };
    let trace_id = sc.trace_id().to_string();
    let mut out: HashMap<String, String> = HashMap::new();
    propagator.inject_context(&Context::new().with_remote_span_context(sc), &mut out);
    TraceHeaders {
        traceparent: out.remove(TRACEPARENT).unwrap_or_default(),
        tracestate: out.remove(TRACESTATE).filter(|s| !s.is_empty()),
        trace_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn continues_the_callers_trace() {
        let mut h = HeaderMap::new();
        h.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        h.insert(TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        let t = child_of(&h);
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        let parts: Vec<&str> = t.traceparent.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(parts[2], "00f067aa0ba902b7", "a span of its own");
        assert_eq!(parts[3], "01");
        assert_eq!(t.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
    }

    #[test]
    fn starts_a_trace_without_or_with_a_bad_one() {
        let t = child_of(&HeaderMap::new());
        assert_eq!(t.traceparent.len(), 55, "{}", t.traceparent);
        assert!(t.traceparent.starts_with("00-"));
        assert!(t.traceparent.ends_with("-01"));
        assert_eq!(t.tracestate, None);
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_static("00-zz-yy-01"));
        let u = child_of(&h);
        assert_ne!(u.trace_id, t.trace_id);
        assert_eq!(u.traceparent.len(), 55);
    }
}
