//! W3C trace context (`traceparent`, `tracestate`) carried in task message headers, so one
//! trace spans the API, the worker that runs a task, and the tasks it starts.
//!
//! A task run is a span of its own: the worker reads the message's `traceparent`, keeps its
//! trace id, gives the run a new span id, and writes that into every message the run sends
//! (follow-ups, callbacks, retries), so they become its children.

use serde_json::Value;

use crate::message::TaskHeaders;

/// The header names (W3C Trace Context).
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// One span's trace context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// 2 hex digits (`01` sampled).
    pub flags: String,
    pub tracestate: Option<String>,
}

fn hex_of_len(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl TraceContext {
    /// Parses a `traceparent` value; `None` when it is not valid W3C (version `ff`, all-zero
    /// ids and wrong lengths are invalid; newer versions are read by their first four fields).
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if !hex_of_len(version, 2) || version == "ff" || (version == "00" && parts.next().is_some())
        {
            return None;
        }
        if !hex_of_len(trace, 32) || !hex_of_len(span, 16) || !hex_of_len(flags, 2) {
            return None;
        }
        if trace.bytes().all(|b| b == b'0') || span.bytes().all(|b| b == b'0') {
            return None;
        }
        Some(Self {
            trace_id: trace.to_owned(),
            span_id: span.to_owned(),
            flags: flags.to_owned(),
            tracestate: tracestate.map(str::to_owned).filter(|s| !s.is_empty()),
        })
    }

    /// The trace context a message carries, if any (and valid).
    pub fn from_headers(h: &TaskHeaders) -> Option<Self> {
        let tp = h.extra.get(TRACEPARENT)?.as_str()?;
        Self::parse(tp, h.extra.get(TRACESTATE).and_then(Value::as_str))
    }

    /// A child span in the same trace: a new span id.
    pub fn child(&self) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            span_id: id[..16].to_owned(),
            ..self.clone()
        }
    }

    /// The `traceparent` value of this span.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }

    /// Writes this span as the parent into `h` (a message this span sends).
    pub fn write(&self, h: &mut TaskHeaders) {
        h.extra
            .insert(TRACEPARENT.into(), Value::String(self.traceparent()));
        match &self.tracestate {
            Some(ts) => {
                h.extra.insert(TRACESTATE.into(), Value::String(ts.clone()));
            }
            None => {
                h.extra.remove(TRACESTATE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_w3c_and_makes_children() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let t = TraceContext::parse(tp, Some("k=v")).expect("valid");
        assert_eq!(t.traceparent(), tp);
        let c = t.child();
        assert_eq!(c.trace_id, t.trace_id);
        assert_ne!(c.span_id, t.span_id);
        assert!(hex_of_len(&c.span_id, 16));
        let mut h = TaskHeaders::new("t", "id");
        c.write(&mut h);
        assert_eq!(TraceContext::from_headers(&h), Some(c));
    }

    #[test]
    fn rejects_invalid_values() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        ] {
            assert_eq!(TraceContext::parse(bad, None), None, "{bad}");
        }
    }
}
