//! The OpenTelemetry environment variables this crate honours, read and checked once at start-up.
//!
//! Export is on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set (and not empty), unless `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. Every
//! value is checked here, strictly: the OTLP crate falls back to defaults on values it cannot
//! read, and a collector that silently receives nothing is worse than a process that refuses
//! to start. Errors name the variable.

use std::time::Duration;

use opentelemetry_otlp::Protocol;
use opentelemetry_sdk::trace::Sampler;

use crate::TelemetryError;

pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
pub const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub const OTEL_EXPORTER_OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
pub const OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
pub const OTEL_EXPORTER_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
pub const OTEL_EXPORTER_OTLP_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
pub const OTEL_EXPORTER_OTLP_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
pub const OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";

/// How long one export (one HTTP request) may take when `OTEL_EXPORTER_OTLP_TIMEOUT` is unset
/// (the specification's default); a slower collector loses that batch, not the process.
pub const EXPORT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// Trace export settings, when export is on.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The full URL spans are POSTed to (`.../v1/traces`).
    pub traces_url: String,
    /// `http/protobuf` (the default) or `http/json`.
    pub protocol: Protocol,
    /// Deadline of one export request.
    pub export_timeout: Duration,
    /// `OTEL_TRACES_SAMPLER` (default parent-based always-on).
    pub sampler: Sampler,
    /// `OTEL_SERVICE_NAME`, when set.
    pub service_name: Option<String>,
}

/// Reads the configuration through `get` (the process environment in production); `None` when
/// export is off.
pub fn from_env(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<OtlpConfig>, TelemetryError> {
    // Empty values count as unset, as the specification asks (compose files write `VAR=`).
    let get = |k: &str| {
        get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let bad = |var: &'static str, reason: String| TelemetryError::Env { var, reason };

    match get(OTEL_SDK_DISABLED)
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("false") => {}
        Some("true") => return Ok(None),
        Some(other) => {
            return Err(bad(
                OTEL_SDK_DISABLED,
                format!("{other:?} is neither true nor false"),
            ));
        }
    }
    match get(OTEL_TRACES_EXPORTER).as_deref() {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => {
            return Err(bad(
                OTEL_TRACES_EXPORTER,
                format!("{other:?} is not supported: otlp (the default) or none"),
            ));
        }
    }
    let traces_url = if let Some(url) = get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
        check_url(&url).map_err(|r| bad(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, r))?;
        url
    } else if let Some(base) = get(OTEL_EXPORTER_OTLP_ENDPOINT) {
        check_url(&base).map_err(|r| bad(OTEL_EXPORTER_OTLP_ENDPOINT, r))?;
        format!("{}/v1/traces", base.trim_end_matches('/'))
    } else {
        return Ok(None);
    };

    let (protocol_var, protocol) = either(
        &get,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
        OTEL_EXPORTER_OTLP_PROTOCOL,
    );
    let protocol = match protocol.as_deref() {
        None | Some("http/protobuf") => Protocol::HttpBinary,
        Some("http/json") => Protocol::HttpJson,
        Some("grpc") => {
            return Err(bad(
                protocol_var,
                "grpc is not built in (OTLP over HTTP only): use http/protobuf or http/json, \
                 usually on port 4318"
                    .into(),
            ));
        }
        Some(other) => {
            return Err(bad(
                protocol_var,
                format!("{other:?}: use http/protobuf or http/json"),
            ));
        }
    };

    let (timeout_var, timeout) = either(
        &get,
        OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
        OTEL_EXPORTER_OTLP_TIMEOUT,
    );
    let export_timeout = match timeout {
        None => EXPORT_TIMEOUT_DEFAULT,
        Some(ms) => match ms.parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                return Err(bad(
                    timeout_var,
                    format!("{ms:?} is not a positive number of milliseconds"),
                ));
            }
        },
    };

    let (headers_var, headers) = either(
        &get,
        OTEL_EXPORTER_OTLP_TRACES_HEADERS,
        OTEL_EXPORTER_OTLP_HEADERS,
    );
    if let Some(h) = headers {
        check_headers(&h).map_err(|r| bad(headers_var, r))?;
    }
    let (compression_var, compression) = either(
        &get,
        OTEL_EXPORTER_OTLP_TRACES_COMPRESSION,
        OTEL_EXPORTER_OTLP_COMPRESSION,
    );
    if let Some(c) = compression {
        return Err(bad(
            compression_var,
            format!("{c:?}: compression is not built in; unset it (spans are sent uncompressed)"),
        ));
    }

    let sampler = sampler(get(OTEL_TRACES_SAMPLER), get(OTEL_TRACES_SAMPLER_ARG))?;

    Ok(Some(OtlpConfig {
        traces_url,
        protocol,
        export_timeout,
        sampler,
        service_name: get(OTEL_SERVICE_NAME),
    }))
}

/// The signal-specific variable wins over the general one; returns the one that was used (the
/// general one when neither is set, for messages).
fn either(
    get: &impl Fn(&str) -> Option<String>,
    specific: &'static str,
    general: &'static str,
) -> (&'static str, Option<String>) {
    match get(specific) {
        Some(v) => (specific, Some(v)),
        None => (general, get(general)),
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{url:?}: the scheme must be http or https (OTLP over HTTP, usually port 4318)"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

/// `key=value` pairs separated by commas (values URL-encoded), as the specification writes them.
fn check_headers(h: &str) -> Result<(), String> {
    for pair in h.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((k, _)) if !k.trim().is_empty() => {}
            _ => {
                return Err(format!(
                    "{pair:?} is not key=value (pairs separated by commas)"
                ));
            }
        }
    }
    Ok(())
}

fn sampler(name: Option<String>, arg: Option<String>) -> Result<Sampler, TelemetryError> {
    let ratio = || -> Result<f64, TelemetryError> {
        match &arg {
            None => Ok(1.0),
            Some(a) => match a.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(TelemetryError::Env {
                    var: OTEL_TRACES_SAMPLER_ARG,
                    reason: format!("{a:?} is not a ratio between 0 and 1"),
                }),
            },
        }
    };
    let parent_based = |s: Sampler| Sampler::ParentBased(Box::new(s));
    Ok(match name.as_deref() {
        None | Some("parentbased_always_on") => parent_based(Sampler::AlwaysOn),
        Some("parentbased_always_off") => parent_based(Sampler::AlwaysOff),
        Some("parentbased_traceidratio") => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => Sampler::TraceIdRatioBased(ratio()?),
        Some(other) => {
            return Err(TelemetryError::Env {
                var: OTEL_TRACES_SAMPLER,
                reason: format!(
                    "{other:?} is not supported: always_on, always_off, traceidratio, \
                     parentbased_always_on (the default), parentbased_always_off, \
                     parentbased_traceidratio"
                ),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<Option<OtlpConfig>, TelemetryError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_env(|k| map.get(k).cloned())
    }

    fn error_of(vars: &[(&str, &str)]) -> String {
        read(vars).expect_err("a configuration error").to_string()
    }

    #[test]
    fn off_unless_an_endpoint_is_set_and_not_disabled() {
        assert!(read(&[]).expect("ok").is_none());
        assert!(
            read(&[(OTEL_EXPORTER_OTLP_ENDPOINT, "")])
                .expect("ok")
                .is_none()
        );
        let ep = (OTEL_EXPORTER_OTLP_ENDPOINT, "http://collector:4318");
        assert!(
            read(&[ep, (OTEL_SDK_DISABLED, "TRUE")])
                .expect("ok")
                .is_none()
        );
        assert!(
            read(&[ep, (OTEL_TRACES_EXPORTER, "none")])
                .expect("ok")
                .is_none()
        );
        let c = read(&[ep, (OTEL_SDK_DISABLED, "false")])
            .expect("ok")
            .expect("on");
        assert_eq!(c.traces_url, "http://collector:4318/v1/traces");
        assert_eq!(c.protocol, Protocol::HttpBinary);
        assert_eq!(c.export_timeout, EXPORT_TIMEOUT_DEFAULT);
        assert_eq!(
            format!("{:?}", c.sampler),
            format!("{:?}", Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        );
        assert_eq!(c.service_name, None);
    }

    #[test]
    fn the_traces_endpoint_is_used_as_is_and_wins() {
        let c = read(&[
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://a:4318/"),
            (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "https://b/custom/path"),
            (OTEL_EXPORTER_OTLP_PROTOCOL, "http/protobuf"),
            (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "http/json"),
            (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, "2500"),
            (
                OTEL_EXPORTER_OTLP_HEADERS,
                "authorization=Bearer%20x, x-tenant=a",
            ),
            (OTEL_TRACES_SAMPLER, "parentbased_traceidratio"),
            (OTEL_TRACES_SAMPLER_ARG, "0.25"),
            (OTEL_SERVICE_NAME, "billing-worker"),
        ])
        .expect("ok")
        .expect("on");
        assert_eq!(c.traces_url, "https://b/custom/path");
        assert_eq!(c.protocol, Protocol::HttpJson);
        assert_eq!(c.export_timeout, Duration::from_millis(2500));
        assert!(
            format!("{:?}", c.sampler).contains("0.25"),
            "{:?}",
            c.sampler
        );
        assert_eq!(c.service_name.as_deref(), Some("billing-worker"));
        let c = read(&[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://a:4318/")])
            .expect("ok")
            .expect("on");
        assert_eq!(c.traces_url, "http://a:4318/v1/traces");
    }

    #[test]
    fn bad_values_are_errors_naming_the_variable() {
        let ep = (OTEL_EXPORTER_OTLP_ENDPOINT, "http://collector:4318");
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (
                vec![(OTEL_EXPORTER_OTLP_ENDPOINT, "collector:4318")],
                OTEL_EXPORTER_OTLP_ENDPOINT,
            ),
            (
                vec![(OTEL_EXPORTER_OTLP_ENDPOINT, "not a url")],
                OTEL_EXPORTER_OTLP_ENDPOINT,
            ),
            (
                vec![(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "grpc://c:4317")],
                OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
            ),
            (
                vec![ep, (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc")],
                OTEL_EXPORTER_OTLP_PROTOCOL,
            ),
            (
                vec![ep, (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "thrift")],
                OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
            ),
            (
                vec![ep, (OTEL_EXPORTER_OTLP_TIMEOUT, "10s")],
                OTEL_EXPORTER_OTLP_TIMEOUT,
            ),
            (
                vec![ep, (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, "0")],
                OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
            ),
            (
                vec![ep, (OTEL_EXPORTER_OTLP_HEADERS, "a=1,oops")],
                OTEL_EXPORTER_OTLP_HEADERS,
            ),
            (
                vec![ep, (OTEL_EXPORTER_OTLP_COMPRESSION, "gzip")],
                OTEL_EXPORTER_OTLP_COMPRESSION,
            ),
            (
                vec![ep, (OTEL_TRACES_SAMPLER, "sometimes")],
                OTEL_TRACES_SAMPLER,
            ),
            (
                vec![
                    ep,
                    (OTEL_TRACES_SAMPLER, "traceidratio"),
                    (OTEL_TRACES_SAMPLER_ARG, "2"),
                ],
                OTEL_TRACES_SAMPLER_ARG,
            ),
            (vec![ep, (OTEL_SDK_DISABLED, "yes")], OTEL_SDK_DISABLED),
            (
                vec![ep, (OTEL_TRACES_EXPORTER, "jaeger")],
                OTEL_TRACES_EXPORTER,
            ),
        ];
        for (vars, var) in cases {
            let e = error_of(&vars);
            assert!(e.starts_with(&format!("{var}: ")), "{vars:?} -> {e}");
        }
        // grpc says what to use instead.
        assert!(error_of(&[ep, (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc")]).contains("http/protobuf"));
    }
}
