//! Where requests whose URL comes from a caller or a stored document may go: webhooks, the
//! scheduled webhook jobs, and OpenStack connections (their Keystone and its catalogue). The
//! services an operator configured (`MAESTRO_*_URI`, Centrifugo, audit, the AWS, DigitalOcean
//! and Azure endpoints) are not checked: they use the other client.
//!
//! By default only public (globally routable) addresses are reached: loopback, private ranges,
//! link-local (169.254.169.254, the cloud metadata service), carrier-grade NAT, unique local,
//! documentation, multicast and reserved ranges are refused, IPv4 embedded in IPv6
//! (`::ffff:127.0.0.1`, NAT64, 6to4) is judged as the IPv4 address it carries, and the URL parser
//! reads decimal and octal forms (`http://2852039166/`) as the address they are. The check is
//! made on the addresses the connection actually uses: the guarded client's resolver drops the
//! refused ones, so a name that resolves to a public address for a check and to a private one
//! for the connection (DNS rebinding) gets nowhere. Redirects are not followed, and no proxy
//! from the environment is used.
//!
//! `MAESTRO_EGRESS_ALLOW` lets an operator allow named hosts (`hooks.internal`, or
//! `*.corp.example` for a domain and its subdomains) and networks (`10.20.0.0/16`, `127.0.0.1`)
//! explicitly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A destination the policy refuses, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("destination refused: {0} (an operator may allow it in MAESTRO_EGRESS_ALLOW)")]
pub struct EgressRefused(pub String);

/// The operator's allowlist over the default of public addresses only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    hosts: Vec<String>,
    suffixes: Vec<String>,
    nets: Vec<IpNet>,
}

impl EgressPolicy {
    /// Reads `MAESTRO_EGRESS_ALLOW`: comma-separated host names, `*.domain` wildcards, IP
    /// addresses and CIDR networks.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut policy = Self::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Ok(net) = item.parse::<IpNet>() {
                policy.nets.push(net);
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                policy.nets.push(IpNet::from(ip));
            } else if let Some(domain) = item.strip_prefix("*.") {
                check_host_name(domain)?;
                policy.suffixes.push(domain.to_ascii_lowercase());
            } else {
                check_host_name(item)?;
                policy.hosts.push(item.to_ascii_lowercase());
            }
        }
        Ok(policy)
    }

    /// Whether the operator allowed `host` by name.
    pub fn allows_name(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.contains(&host)
            || self.suffixes.iter().any(|d| {
                host == *d
                    || host
                        .strip_suffix(d.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            })
    }

    /// Whether a connection to `ip` is allowed: a public address, or one in an allowed network.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), EgressRefused> {
        if self.nets.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        match non_public(ip) {
            None => Ok(()),
            Some(kind) => Err(EgressRefused(format!("{ip} is {kind}"))),
        }
    }

    /// The checks that can be made before connecting: an http(s) URL whose host, when it is
    /// an IP address (in any form the URL parser reads), is allowed. A host name is checked
    /// when the guarded client resolves it.
    pub fn check_url(&self, url: &Url) -> Result<(), EgressRefused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressRefused(format!(
                "scheme {:?} is not http or https",
                url.scheme()
            )));
        }
        // The parser has already read every IPv4 spelling into its dotted form, and IPv6 in
        // brackets.
        let host = url
            .host_str()
            .ok_or_else(|| EgressRefused("the URL has no host".into()))?;
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<IpAddr>() {
            Ok(ip) => self.check_ip(ip),
            Err(_) => Ok(()),
        }
    }
}

fn check_host_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a host name, `*.domain`, IP address or CIDR network"
        ))
    }
}

/// What kind of non-public address `ip` is, or `None` for a public one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: [(u32, u8, &str); 15] = [
        (0x0000_0000, 8, "in 0.0.0.0/8 (this network)"),
        (0x0a00_0000, 8, "private (10.0.0.0/8)"),
        (0x6440_0000, 10, "carrier-grade NAT (100.64.0.0/10)"),
        (0x7f00_0000, 8, "loopback"),
        (
            0xa9fe_0000,
            16,
            "link-local (169.254.0.0/16, the metadata service's)",
        ),
        (0xac10_0000, 12, "private (172.16.0.0/12)"),
        (0xc000_0000, 24, "IETF protocol assignments (192.0.0.0/24)"),
        (0xc000_0200, 24, "documentation (192.0.2.0/24)"),
        (0xc058_6300, 24, "6to4 relay anycast (192.88.99.0/24)"),
        (0xc0a8_0000, 16, "private (192.168.0.0/16)"),
        (0xc612_0000, 15, "benchmarking (198.18.0.0/15)"),
        (0xc633_6400, 24, "documentation (198.51.100.0/24)"),
        (0xcb00_7100, 24, "documentation (203.0.113.0/24)"),
        (0xe000_0000, 4, "multicast"),
        (0xf000_0000, 4, "reserved (240.0.0.0/4, broadcast included)"),
    ];
    let n = u32::from(ip);
    RANGES
        .iter()
        .find(|(base, len, _)| n >> (32 - len) == base >> (32 - len))
        .map(|(_, _, kind)| *kind)
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => Some("unspecified"),
        [0, 0, 0, 0, 0, 0, 0, 1] => Some("loopback"),
        // IPv4-compatible (deprecated) addresses.
        [0, 0, 0, 0, 0, 0, _, _] => Some("IPv4-compatible (::/96)"),
        // NAT64: the IPv4 address it reaches decides.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => non_public_v4(embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => Some("local-use NAT64 (64:ff9b:1::/48)"),
        [0x100, 0, 0, 0, ..] => Some("discard-only (100::/64)"),
        [0x2001, 0xdb8, ..] => Some("documentation (2001:db8::/32)"),
        [0x2001, b, ..] if b < 0x200 => Some("IETF protocol assignments (2001::/23, Teredo)"),
        // 6to4: the IPv4 address it carries decides.
        [0x2002, hi, lo, ..] => non_public_v4(embedded(hi, lo)),
        [a, ..] if a & 0xfe00 == 0xfc00 => Some("unique local (fc00::/7)"),
        [a, ..] if a & 0xffc0 == 0xfe80 => Some("link-local (fe80::/10)"),
        [a, ..] if a & 0xffc0 == 0xfec0 => Some("site-local (fec0::/10)"),
        [a, ..] if a & 0xff00 == 0xff00 => Some("multicast"),
        _ => None,
    }
}

/// reqwest's resolver for the guarded client: the system's answer for a name, less the
/// addresses the policy refuses; a name the operator allowed keeps all of them.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<EgressPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<EgressPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if policy.allows_name(&host) {
                return Ok(Box::new(all.into_iter()) as Addrs);
            }
            let mut refused = None;
            let kept: Vec<SocketAddr> = all
                .into_iter()
                .filter(|a| match policy.check_ip(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused.get_or_insert(e);
                        false
                    }
                })
                .collect();
            match refused {
                Some(EgressRefused(why)) if kept.is_empty() => {
                    Err(Box::new(EgressRefused(format!("{host} resolves to {why}")))
                        as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(kept.into_iter()) as Addrs),
            }
        })
    }
}

/// The refusal somewhere in `e`'s causes, if the guarded resolver refused the destination.
pub fn refusal_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a EgressRefused> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<EgressRefused>() {
            return Some(r);
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str) -> Url {
        Url::parse(u).expect("url")
    }

    #[test]
    fn non_public_destinations_are_refused_in_every_spelling() {
        let p = EgressPolicy::default();
        for bad in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",
            "http://10.1.2.3/",
            "http://172.17.0.1:2375/containers/create",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
        ] {
            let e = p.check_url(&url(bad)).expect_err(bad);
            assert!(e.to_string().contains("MAESTRO_EGRESS_ALLOW"), "{bad}: {e}");
        }
        for good in [
            "https://hooks.example.com/x",
            "http://93.184.216.34/",
            "http://[2606:4700::1111]/",
            "http://[::ffff:93.184.216.34]/",
        ] {
            assert_eq!(p.check_url(&url(good)), Ok(()), "{good}");
        }
        assert!(p.check_url(&url("ftp://93.184.216.34/")).is_err());
    }

    #[test]
    fn the_operator_allows_names_and_networks() {
        let p = EgressPolicy::parse("127.0.0.1, 10.20.0.0/16,hooks.internal,*.corp.example,::1")
            .expect("valid");
        assert_eq!(p.check_url(&url("http://127.0.0.1:9000/")), Ok(()));
        assert_eq!(p.check_url(&url("http://10.20.3.4/")), Ok(()));
        assert!(p.check_url(&url("http://10.21.0.1/")).is_err());
        assert!(p.check_url(&url("http://127.0.0.2/")).is_err());
        assert_eq!(p.check_url(&url("http://[::1]/")), Ok(()));
        assert!(p.allows_name("hooks.internal"));
        assert!(p.allows_name("HOOKS.internal."));
        assert!(p.allows_name("a.b.corp.example"));
        assert!(p.allows_name("corp.example"));
        assert!(!p.allows_name("evilcorp.example"));
        assert!(!p.allows_name("hooks.internal.evil"));
        for bad in ["http://x", "a b", "*.", "10.0.0.0/33"] {
            assert!(EgressPolicy::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            EgressPolicy::parse(" , ").expect("empty"),
            EgressPolicy::default()
        );
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses_and_says_why() {
        let r = GuardedResolver::new(Arc::new(EgressPolicy::default()));
        let name: Name = "localhost".parse().expect("name");
        let err = match r.resolve(name).await {
            Ok(addrs) => panic!("localhost resolved: {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        let refused = refusal_in(err.as_ref()).expect("a refusal");
        assert!(refused.0.starts_with("localhost resolves to "), "{refused}");
        let allowed =
            GuardedResolver::new(Arc::new(EgressPolicy::parse("localhost").expect("valid")));
        let name: Name = "localhost".parse().expect("name");
        assert!(
            allowed
                .resolve(name)
                .await
                .expect("allowed")
                .next()
                .is_some()
        );
    }
}
