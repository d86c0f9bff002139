//! W3C `traceparent` / `tracestate` parsing; a parsed context writes a value that parses back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maestro_broker::trace::TraceContext;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (tp, ts) = match text.split_once('\n') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    if let Some(t) = TraceContext::parse(tp, ts) {
        let again = TraceContext::parse(&t.traceparent(), t.tracestate.as_deref());
        assert_eq!(again.as_ref(), Some(&t));
        let child = t.child();
        assert_eq!(
            TraceContext::parse(&child.traceparent(), None).map(|c| c.trace_id),
            Some(t.trace_id)
        );
    }
});
