//! Helpers for the crate's unit tests.

use base64_url::encode;

/// An unsigned token with `"alg": "none"`, as a forger would send it.
pub(crate) fn none_token(claims: &serde_json::Value) -> String {
    let header = encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = encode(claims.to_string().as_bytes());
    format!("{header}.{body}.")
}

mod base64_url {
    /// Base64url without padding (RFC 7515), small enough to write here for tests.
    pub(crate) fn encode(input: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
