//! A connection's credentials: Maestro's server-app signs what the user typed (`{access,
//! secret}` for AWS) into an HS256 JWT under `MAESTRO_SECRETJWT` and stores it in the
//! connection's `conn`; discovery verifies and reads it here. The claims never reach a log.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::provider::ProviderError;

/// Leeway for a credential token's `exp`/`nbf`, in seconds.
pub const CREDENTIAL_LEEWAY_SECS: u64 = 60;

/// A connection's decoded credential claims. Debug shows the claim names only.
#[derive(Clone)]
pub struct Credentials(Map<String, Value>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("claims", &self.0.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials from already verified claims.
    pub fn from_claims(claims: Map<String, Value>) -> Self {
        Self(claims)
    }

    /// The claim `name`, whatever its type.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// Whether the claim `name` is there and not null.
    pub fn has(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| !v.is_null())
    }

    /// The non-empty strings of the list claim `name` (a single string counts as one).
    pub fn strings(&self, name: &str) -> Vec<String> {
        match self.0.get(name) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    /// The first non-empty string claim among `names`.
    pub fn string(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .find_map(|n| self.0.get(*n).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
    }
}

/// Verifies a connection's credential token: HS256 only (any other `alg`, `none` included, is
/// refused), signed with `secret`; `exp`/`nbf` honoured when present (Maestro issued none).
pub fn decode_credentials(token: &str, secret: &str) -> Result<Credentials, ProviderError> {
    let mut v = Validation::new(Algorithm::HS256);
    v.algorithms = vec![Algorithm::HS256];
    v.required_spec_claims = HashSet::new();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = false;
    v.leeway = CREDENTIAL_LEEWAY_SECS;
    let key = DecodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::decode::<Map<String, Value>>(token.trim(), &key, &v)
        .map(|data| Credentials(data.claims))
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::InvalidSignature => {
                    "its signature does not verify with MAESTRO_SECRETJWT"
                }
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    "its algorithm is not HS256"
                }
                ErrorKind::ExpiredSignature => "it has expired",
                ErrorKind::ImmatureSignature => "it is not valid yet (nbf)",
                _ => "it is not a well-formed HS256 JWT",
            };
            ProviderError::Auth(format!(
                "the connection's credential token is refused: {why}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    fn token(alg: Algorithm, key: &str, claims: &Value) -> String {
        encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .expect("encoded")
    }

    #[test]
    fn credential_tokens_are_verified_hs256_only() {
        let claims = json!({"access": "AKIA1", "secret": "shh"});
        let ok = decode_credentials(&token(Algorithm::HS256, "k", &claims), "k").expect("valid");
        assert_eq!(ok.string(&["access"]), Some("AKIA1"));
        assert!(!format!("{ok:?}").contains("shh"));
        let alt = json!({"access_key": "AKIA2", "secret_key": "x"});
        let ok = decode_credentials(&token(Algorithm::HS256, "k", &alt), "k").expect("valid");
        assert_eq!(ok.string(&["access", "access_key"]), Some("AKIA2"));

        let wrong = decode_credentials(&token(Algorithm::HS256, "other", &claims), "k")
            .expect_err("wrong key");
        assert!(wrong.to_string().contains("signature"), "{wrong}");
        assert!(!wrong.to_string().contains("shh"));

        let hs512 =
            decode_credentials(&token(Algorithm::HS512, "k", &claims), "k").expect_err("other alg");
        assert!(matches!(hs512, ProviderError::Auth(_)));

        // alg none: header {"alg":"none"}, claims, empty signature.
        let unsigned = format!(
            "{}.{}.",
            base64_url(br#"{"alg":"none","typ":"JWT"}"#),
            base64_url(claims.to_string().as_bytes())
        );
        assert!(matches!(
            decode_credentials(&unsigned, "k"),
            Err(ProviderError::Auth(_))
        ));
        let expired = json!({"access": "a", "secret": "b", "exp": 1_000_000});
        let e =
            decode_credentials(&token(Algorithm::HS256, "k", &expired), "k").expect_err("expired");
        assert!(e.to_string().contains("expired"), "{e}");
    }

    /// Unpadded base64url, enough for a hand-made token.
    fn base64_url(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            let chars = c.len() + 1;
            for i in 0..chars {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
