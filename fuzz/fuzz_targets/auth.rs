//! The API's `Authorization` header check (HS256 JWT with a `noauth` claim).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use maestro_api::Authenticator;

static AUTH: LazyLock<Authenticator> = LazyLock::new(|| Authenticator::new("s3cret", "na"));

fuzz_target!(|data: &[u8]| {
    let header = std::str::from_utf8(data).ok();
    let _ = AUTH.check(header);
});
