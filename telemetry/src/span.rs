//! Linking a `tracing` span to the W3C trace context that messages carry.
//!
//! The API, beat and the worker write a `traceparent` into each task message. When spans are
//! exported, that value must name the exported span itself, so [`start`] makes the span's
//! OpenTelemetry span (a child of the incoming context, or a new root) and returns its
//! context for the message. When nothing is exported, callers skip all of this:
//! [`exporting`] is one relaxed atomic load.

use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (set once by [`crate::init`]).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The W3C trace context of a started span, to write into the messages it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagation {
    /// `00-<trace id>-<span id>-<flags>`.
    pub traceparent: String,
    /// `tracestate`, when the trace has one.
    pub tracestate: Option<String>,
    /// The trace id (32 hex digits).
    pub trace_id: String,
    /// This span's id (16 hex digits).
    pub span_id: String,
}

/// Starts `span`'s OpenTelemetry span as a child of `traceparent` (with `tracestate`), or as the
/// root of a new trace when there is none or it is invalid, and returns its context. `None`
/// when `span` is not exported (no OpenTelemetry layer, or the span is disabled). Call it
/// before the span is first entered: a started span's parent cannot change.
#[cfg(not(feature = "otlp"))]
pub fn start(
    _span: &tracing::Span,
    _traceparent: Option<&str>,
    _tracestate: Option<&str>,
) -> Option<Propagation> {
    None
}

#[cfg(feature = "otlp")]
pub use otlp::start;

#[cfg(feature = "otlp")]
mod otlp {
    use std::collections::HashMap;

    use opentelemetry::Context;
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::Propagation;

    const TRACEPARENT: &str = "traceparent";
    const TRACESTATE: &str = "tracestate";

    /// See the function of the same name above.
    pub fn start(
        span: &tracing::Span,
        traceparent: Option<&str>,
        tracestate: Option<&str>,
    ) -> Option<Propagation> {
        if span.is_disabled() {
            return None;
        }
        let propagator = TraceContextPropagator::new();
        let parent = match traceparent {
            Some(tp) => {
                let mut carrier = HashMap::with_capacity(2);
                carrier.insert(TRACEPARENT.to_owned(), tp.to_owned());
                if let Some(ts) = tracestate {
                    carrier.insert(TRACESTATE.to_owned(), ts.to_owned());
                }
                propagator.extract(&carrier)
            }
            // An explicit empty parent: a root, whatever span the thread happens to be in.
            None => Context::new(),
        };
        span.set_parent(parent).ok()?;
        let cx = span.context();
        let (trace_id, span_id) = {
            let s = cx.span();
            let sc = s.span_context();
            if !sc.is_valid() {
                return None;
            }
            (sc.trace_id().to_string(), sc.span_id().to_string())
        };
        let mut out: HashMap<String, String> = HashMap::with_capacity(2);
        propagator.inject_context(&cx, &mut out);
        Some(Propagation {
            traceparent: out.remove(TRACEPARENT)?,
            tracestate: out.remove(TRACESTATE).filter(|s| !s.is_empty()),
            trace_id,
            span_id,
        })
    }
}

#[cfg(all(test, feature = "otlp"))]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt;

    fn with_exporter(f: impl FnOnce()) -> Vec<opentelemetry_sdk::trace::SpanData> {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f);
        provider.force_flush().expect("flush");
        exporter.get_finished_spans().expect("spans")
    }

    #[test]
    fn the_returned_context_is_the_exported_spans_own() {
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut got = Vec::new();
        let spans = with_exporter(|| {
            let child = tracing::info_span!("child");
            got.push(start(&child, Some(caller), Some("congo=t61rcWkgMzE")).expect("started"));
            // A follow-up of the child: its parent is what the child wrote into the message.
            let next = tracing::info_span!("next");
            let tp = got[0].traceparent.clone();
            got.push(start(&next, Some(&tp), None).expect("started"));
            let root = tracing::info_span!("root");
            got.push(start(&root, None, None).expect("started"));
        });
        assert_eq!(spans.len(), 3);
        let by_name = |n: &str| spans.iter().find(|s| s.name == n).expect(n);
        let (child, next, root) = (by_name("child"), by_name("next"), by_name("root"));
        assert_eq!(got[0].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(child.span_context.trace_id().to_string(), got[0].trace_id);
        assert_eq!(child.span_context.span_id().to_string(), got[0].span_id);
        assert_eq!(child.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(
            got[0].traceparent,
            format!("00-{}-{}-01", got[0].trace_id, got[0].span_id)
        );
        assert_eq!(got[0].tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        assert_eq!(next.parent_span_id, child.span_context.span_id());
        assert_eq!(next.span_context.trace_id(), child.span_context.trace_id());
        assert_eq!(root.parent_span_id, SpanId::INVALID);
        assert_ne!(got[2].trace_id, got[0].trace_id);
    }

    #[test]
    fn nothing_without_the_layer() {
        let span = tracing::info_span!("plain");
        assert_eq!(start(&span, None, None), None);
        assert!(!exporting());
    }
}
