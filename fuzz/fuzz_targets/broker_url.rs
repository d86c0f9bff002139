//! Broker URLs (`parse_broker_url`) and their redaction for logs: a URL that parses with a
//! password is shown as `scheme://user:***@` and then exactly what follows its userinfo, so
//! no part of the password shows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maestro_broker::connection::{parse_broker_url, redact};

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let shown = redact(url);
    let Ok(uri) = parse_broker_url(url) else {
        return;
    };
    if uri.authority.userinfo.password.is_empty() {
        return;
    }
    // The userinfo ends at the last '@' before the path, query or fragment (RFC 3986).
    let (scheme, rest) = url.split_once("://").expect("a parsed URL has a scheme");
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..end].rfind('@') else {
        return;
    };
    let user = rest[..at].split(':').next().unwrap_or("");
    let want = format!("{scheme}://{user}:***@{}", &rest[at + 1..]);
    assert_eq!(shown, want, "{url:?}");
});
