//! Broker URLs (`parse_broker_url`) and their redaction for logs: a parsed password never
//! shows in the redacted text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maestro_broker::connection::{parse_broker_url, redact};

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let shown = redact(url);
    if let Ok(uri) = parse_broker_url(url) {
        let password = &uri.authority.userinfo.password;
        // lapin percent-decodes the password; what the URL holds is its encoded form, so look
        // for the password as written between the first ':' of the userinfo and its end.
        if password.len() >= 4 && !url.contains(&format!("@{password}")) {
            let rest = url.split_once("://").map_or("", |(_, r)| r);
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            if let Some((userinfo, _)) = authority.rsplit_once('@')
                && let Some((_, raw)) = userinfo.split_once(':')
                && raw.len() >= 4
            {
                assert!(
                    !shown.contains(raw),
                    "{url:?} redacted as {shown:?} shows the password"
                );
            }
        }
    }
});
