//! Connecting to RabbitMQ: broker URLs as Celery users write them, connection names the
//! management UI shows, and reconnecting with exponential backoff and jitter.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
/// Longest one connection attempt may take (TCP, TLS, AMQP handshake) before the next URL is
/// tried: a node that is down answers at once, one that is cut off would otherwise hang for
/// the kernel's SYN timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The broker URLs of one RabbitMQ cluster, in order. Celery's `broker_url` may list several
/// nodes separated by `;` (kombu's failover syntax:
/// `amqp://u:p@rabbit-0//;amqp://u:p@rabbit-1//`). [`BrokerUrls::connect`] tries them in
/// turn, round robin: each connection starts at the node after the one the previous connection
/// of this process used, so a process's reconnects (and the API's pooled connections) spread
/// over the nodes, and a node that just failed is tried last.
#[derive(Clone)]
pub struct BrokerUrls {
    uris: Vec<AMQPUri>,
    /// Each URL in lapin's spelling (`amqp://` or `amqps://`), passwords included.
    lapin: Vec<String>,
    next: Arc<AtomicUsize>,
}

/// Shown with passwords hidden ([`BrokerUrls::display`]).
impl std::fmt::Debug for BrokerUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BrokerUrls").field(&self.display()).finish()
    }
}

/// Most URLs in one `broker_url`.
pub const BROKER_URLS_MAX: usize = 32;

/// Parses `;`-separated broker URLs (one URL is the common case); see [`BrokerUrls`]. Empty
/// entries (a trailing `;`) are ignored; an invalid entry is an error naming it (redacted).
pub fn parse_broker_urls(spec: &str) -> Result<BrokerUrls, BrokerError> {
    let parts: Vec<&str> = spec
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(BrokerError::Url {
            url: redact(spec),
            reason: "no URL given".into(),
        });
    }
    if parts.len() > BROKER_URLS_MAX {
        return Err(BrokerError::Url {
            url: format!("{} URLs", parts.len()),
            reason: format!("at most {BROKER_URLS_MAX} URLs may be listed"),
        });
    }
    let mut uris = Vec::with_capacity(parts.len());
    let mut lapin = Vec::with_capacity(parts.len());
    for part in parts {
        uris.push(parse_broker_url(part)?);
        lapin.push(lapin_spelling(part));
    }
    Ok(BrokerUrls {
        uris,
        lapin,
        next: Arc::new(AtomicUsize::new(0)),
    })
}

/// `pyamqp://` and `librabbitmq://` as `amqp://`; other URLs unchanged.
fn lapin_spelling(url: &str) -> String {
    match url.split_once("://") {
        Some(("pyamqp" | "librabbitmq", rest)) => format!("amqp://{rest}"),
        _ => url.to_owned(),
    }
}

impl BrokerUrls {
    /// The parsed URLs, in the order given.
    pub fn uris(&self) -> &[AMQPUri] {
        &self.uris
    }

    /// The first URL (what `celery inspect stats` reports as the broker).
    pub fn primary(&self) -> &AMQPUri {
        &self.uris[0]
    }

    /// The URLs in lapin's spelling, passwords included (for connection pools).
    pub fn lapin_urls(&self) -> &[String] {
        &self.lapin
    }

    /// How many URLs are listed.
    pub fn len(&self) -> usize {
        self.uris.len()
    }

    /// Always false: parsing refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.uris.is_empty()
    }

    /// The URLs with passwords replaced, `;`-separated, for logs.
    pub fn display(&self) -> String {
        self.lapin
            .iter()
            .map(|u| redact(u))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The index the next connection starts at; advances it past the returned one. Shared
    /// by clones.
    pub fn take_start(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.uris.len()
    }

    /// Connects to the first node that answers, trying each once from the round-robin start
    /// (each attempt bounded by [`CONNECT_TIMEOUT`]). Returns the connection and the index of
    /// its URL; when every node fails, the last error (an authentication failure first, since
    /// retrying will not cure it).
    pub async fn connect(&self, connection_name: &str) -> Result<(Connection, usize), BrokerError> {
        let n = self.uris.len();
        let start = self.take_start();
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            let attempt =
                tokio::time::timeout(CONNECT_TIMEOUT, connect(&self.uris[i], connection_name));
            match attempt.await {
                Ok(Ok(conn)) => {
                    // The next connection starts after this node.
                    self.next.store(i + 1, Ordering::Relaxed);
                    return Ok((conn, i));
                }
                Ok(Err(e)) if !e.is_retryable() => return Err(e),
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(BrokerError::ConnectTimeout {
                        url: redact(&self.lapin[i]),
                        secs: CONNECT_TIMEOUT.as_secs(),
                    })
                }
            }
        }
        Err(last.unwrap_or_else(|| BrokerError::Url {
            url: String::new(),
            reason: "no URL given".into(),
        }))
    }
}

/// A URL as logs and error messages may show it, whatever it points at (broker, result store,
/// webhook receiver, OTLP collector): the password becomes `***`, a user name alone (often a
/// token) becomes `***`, and the query and fragment (which may carry tokens) are dropped.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The userinfo ends at the last '@' before the path, query or fragment (RFC 3986), so a
    // password holding '@' is hidden whole; with no '@' there (a URL that does not parse, its
    // password holding '/'), at the last '@' anywhere, hiding too much rather than too little.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, after) = match rest[..end].rfind('@').or_else(|| rest.rfind('@')) {
        Some(at) => {
            let shown = match rest[..at].split_once(':') {
                Some((user, _)) => format!("{user}:***@"),
                None => "***@".to_owned(),
            };
            (shown, &rest[at + 1..])
        }
        None => (String::new(), rest),
    };
    let after = after.find(['?', '#']).map_or(after, |i| &after[..i]);
    format!("{scheme}://{userinfo}{after}")
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
    fn failover_lists_parse_in_order() {
        let urls = parse_broker_urls("amqp://u:p@a:5672//; pyamqp://u:q@b:5673/v ;").expect("ok");
        assert_eq!(urls.len(), 2);
        assert_eq!(urls.uris()[0].authority.host, "a");
        assert_eq!(urls.uris()[1].authority.port, 5673);
        assert_eq!(urls.lapin_urls()[1], "amqp://u:q@b:5673/v");
        assert_eq!(
            urls.display(),
            "amqp://u:***@a:5672//;amqp://u:***@b:5673/v"
        );
        assert_eq!(parse_broker_urls("amqp://a//").expect("ok").len(), 1);
        for bad in ["", " ; ", "amqp://a//;redis://b", "amqp://a//;not a url"] {
            assert!(parse_broker_urls(bad).is_err(), "{bad:?}");
        }
        let e = parse_broker_urls("amqp://u:secret@a//;redis://u:secret@b/0").expect_err("bad");
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn connections_start_round_robin() {
        let urls = parse_broker_urls("amqp://a//;amqp://b//;amqp://c//").expect("ok");
        let clone = urls.clone();
        assert_eq!(urls.take_start(), 0);
        assert_eq!(clone.take_start(), 1);
        assert_eq!(urls.take_start(), 2);
        assert_eq!(urls.take_start(), 0);
    }

    #[tokio::test]
    async fn connect_skips_nodes_that_are_down() {
        // Two closed ports, then nothing: every node fails, the error is the last one.
        let closed = |_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let ports: Vec<u16> = (0..2).map(closed).collect();
        let spec = ports
            .iter()
            .map(|p| format!("amqp://guest:guest@127.0.0.1:{p}//"))
            .collect::<Vec<_>>()
            .join(";");
        let urls = parse_broker_urls(&spec).expect("ok");
        let e = urls.connect("test").await.expect_err("both down");
        assert!(e.is_retryable(), "{e}");
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
        // Webhook receivers and collectors: a lone user name may be a token; queries and
        // fragments may carry tokens.
        assert_eq!(
            redact("https://user:pw@h.example:8443/a/b?token=s3cret#f"),
            "https://user:***@h.example:8443/a/b"
        );
        assert_eq!(redact("https://ghp_token@h/x"), "https://***@h/x");
        assert_eq!(
            redact("http://h:4318/v1/traces?k=v"),
            "http://h:4318/v1/traces"
        );
    }
}
