//! Connecting to RabbitMQ: broker URLs as Celery users write them, connection names the
//! management UI shows, and reconnecting with exponential backoff and jitter.

use std::time::Duration;

use backon::ExponentialBuilder;
use lapin::types::LongString;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};

use crate::error::BrokerError;

/// Default broker URL, Celery's default.
pub const DEFAULT_BROKER_URL: &str = "amqp://guest:guest@127.0.0.1:5672//";
/// First reconnect delay; doubles (with jitter) up to `RECONNECT_DELAY_MAX`.
pub const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(200);
/// Longest wait between two connection attempts.
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(10);

/// A broker URL checked and rewritten into what lapin parses. Accepts Celery's spellings:
/// `amqp://`, `amqps://`, and kombu's `pyamqp://` and `librabbitmq://` transport aliases. The
/// vhost is the path after the host, as kombu reads it (`//` is the vhost `/`).
pub fn parse_broker_url(url: &str) -> Result<AMQPUri, BrokerError> {
    let err = |reason: &str| BrokerError::Url {
        url: redact(url),
        reason: reason.into(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| err("expected scheme://host"))?;
    let scheme = match scheme {
        "amqp" | "pyamqp" | "librabbitmq" => "amqp",
        "amqps" => "amqps",
        other => return Err(err(&format!("scheme {other:?} is not amqp or amqps"))),
    };
    let normalized = format!("{scheme}://{rest}");
    normalized.parse::<AMQPUri>().map_err(|e| err(&e))
}

/// The URL with its password replaced, for logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The userinfo ends at the last '@' before the path, query or fragment (RFC 3986), so a
    // password holding '@' is hidden whole; with no '@' there (a URL that does not parse, its
    // password holding '/'), at the last '@' anywhere, hiding too much rather than too little.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@').or_else(|| rest.rfind('@')) {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

/// Opens one connection, named `connection_name` in the broker's connection list.
pub async fn connect(uri: &AMQPUri, connection_name: &str) -> Result<Connection, BrokerError> {
    let props = ConnectionProperties::default()
        .with_connection_name(LongString::from(connection_name))
        .with_client_property("product".into(), LongString::from("maestro-workers"))
        .with_client_property(
            "version".into(),
            LongString::from(env!("CARGO_PKG_VERSION")),
        );
    Ok(Connection::connect_uri(uri.clone(), props).await?)
}

/// The backoff between connection attempts: 200 ms doubling to 10 s, with jitter so a fleet
/// that lost its broker does not come back in one wave, and no limit on attempts.
pub fn reconnect_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(RECONNECT_DELAY_MIN)
        .with_max_delay(RECONNECT_DELAY_MAX)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn celery_urls_parse() {
        let u = parse_broker_url("amqp://guest:guest@127.0.0.1:5672//").expect("parses");
        assert_eq!(u.vhost, "/");
        assert_eq!(u.authority.port, 5672);
        let u = parse_broker_url("pyamqp://u:p@rabbit:5673/prod").expect("parses");
        assert_eq!(u.vhost, "prod");
        assert_eq!(u.authority.userinfo.username, "u");
        assert!(parse_broker_url("redis://localhost:6379/0").is_err());
        assert!(parse_broker_url("not a url").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("amqp://guest:secret@host:5672//"),
            "amqp://guest:***@host:5672//"
        );
        assert_eq!(redact("amqp://host//"), "amqp://host//");
        // Found by fuzzing (broker_url): a password holding '@' showed its end as the host.
        let url = "amqp://user:pa@ss@host:5672//";
        assert_eq!(
            parse_broker_url(url).expect("parses").authority.host,
            "host"
        );
        assert_eq!(redact(url), "amqp://user:***@host:5672//");
        assert_eq!(redact("amqp://u:pa/ss@host//"), "amqp://u:***@host//");
        assert_eq!(redact("amqp://u:p@host/v@x"), "amqp://u:***@host/v@x");
    }
}
