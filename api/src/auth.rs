//! Maestro's private service auth: `Authorization: JWT <token>` (or `Bearer <token>`), an HS256
//! token under `MAESTRO_SECRETJWT_PRIVATE` whose claim `noauth` equals `MAESTRO_NOAUTH`.
//! The algorithm is pinned to HS256 (a token saying `none`, RS256 or anything else is refused
//! before its signature is looked at); `exp` is enforced when the token has one (Maestro's own
//! tokens had none); `nbf` likewise.

use std::collections::HashSet;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::error::ApiError;

/// Clock skew tolerated on `exp` and `nbf`, seconds.
pub(crate) const LEEWAY_SECS: u64 = 30;
/// Longest `Authorization` header looked at, bytes.
pub(crate) const AUTHORIZATION_BYTES_MAX: usize = 8 * 1024;

/// Checks service tokens.
#[derive(Clone)]
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
    noauth: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    noauth: Option<serde_json::Value>,
}

impl Authenticator {
    /// Tokens signed with `secret` whose `noauth` claim is `noauth`.
    pub fn new(secret: &str, noauth: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = LEEWAY_SECS;
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            noauth: noauth.to_owned(),
        }
    }

    /// Also refuses tokens without an `exp` claim (`MAESTRO_JWT_REQUIRE_EXP`). Off by default:
    /// Maestro's server-app signs `{app, version, noauth}` with no `exp`.
    pub fn requiring_exp(mut self) -> Self {
        self.validation.required_spec_claims = HashSet::from(["exp".to_owned()]);
        self
    }

    /// Checks an `Authorization` header value; the reason when it is refused.
    pub fn check(&self, header: Option<&str>) -> Result<(), String> {
        let header = header.ok_or("missing Authorization header (expected: JWT <token>)")?;
        if header.len() > AUTHORIZATION_BYTES_MAX {
            return Err("Authorization header is too long".into());
        }
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or("Authorization header is not '<scheme> <token>'")?;
        if !scheme.eq_ignore_ascii_case("jwt") && !scheme.eq_ignore_ascii_case("bearer") {
            return Err(format!("scheme {scheme:?} is not JWT or Bearer"));
        }
        let token = token.trim();
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| format!("invalid token: {}", describe(&e)))?;
        match data.claims.noauth {
            Some(serde_json::Value::String(v)) if v == self.noauth => Ok(()),
            Some(_) => Err("invalid token: claim noauth does not match".into()),
            None => Err("invalid token: claim noauth is missing".into()),
        }
    }
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "algorithm is not HS256".into()
        }
        ErrorKind::InvalidSignature => "signature does not verify".into(),
        ErrorKind::ExpiredSignature => "token has expired".into(),
        ErrorKind::ImmatureSignature => "token is not valid yet (nbf)".into(),
        ErrorKind::InvalidToken => "not a JWT".into(),
        // An `alg` jsonwebtoken does not know (`none` among them) fails header parsing here.
        ErrorKind::Json(_) | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            "token is not well formed (only HS256 JWTs are accepted)".into()
        }
        _ => e.to_string(),
    }
}

/// Middleware: lets a request through only with a valid token; 401 with the reason otherwise.
pub(crate) async fn require_token(
    State(auth): State<Arc<Authenticator>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| "Authorization header is not ASCII"))
        .transpose()
        .map_err(|r| ApiError::Unauthorized(r.into()))?;
    auth.check(header).map_err(ApiError::Unauthorized)?;
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    fn token(alg: Algorithm, secret: &str, claims: serde_json::Value) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encodes")
    }

    #[test]
    fn accepts_maestro_tokens() {
        let a = Authenticator::new("s", "na");
        let t = token(Algorithm::HS256, "s", json!({"noauth": "na"}));
        assert_eq!(a.check(Some(&format!("JWT {t}"))), Ok(()));
        assert_eq!(a.check(Some(&format!("Bearer {t}"))), Ok(()));
        let exp = chrono::Utc::now().timestamp() + 600;
        let t = token(Algorithm::HS256, "s", json!({"noauth": "na", "exp": exp}));
        assert_eq!(a.check(Some(&format!("jwt {t}"))), Ok(()));
    }

    #[test]
    fn exp_is_required_only_when_asked() {
        let no_exp = token(Algorithm::HS256, "s", json!({"noauth": "na"}));
        let exp = chrono::Utc::now().timestamp() + 600;
        let with_exp = token(Algorithm::HS256, "s", json!({"noauth": "na", "exp": exp}));
        let strict = Authenticator::new("s", "na").requiring_exp();
        let e = strict
            .check(Some(&format!("JWT {no_exp}")))
            .expect_err("no exp");
        assert!(e.contains("exp"), "{e}");
        assert_eq!(strict.check(Some(&format!("JWT {with_exp}"))), Ok(()));
        assert_eq!(
            Authenticator::new("s", "na").check(Some(&format!("JWT {no_exp}"))),
            Ok(())
        );
    }

    #[test]
    fn refuses_forgeries() {
        let a = Authenticator::new("s", "na");
        let wrong_key = token(Algorithm::HS256, "other", json!({"noauth": "na"}));
        let hs512 = token(Algorithm::HS512, "s", json!({"noauth": "na"}));
        let expired = token(
            Algorithm::HS256,
            "s",
            json!({"noauth": "na", "exp": chrono::Utc::now().timestamp() - 3600}),
        );
        let wrong_noauth = token(Algorithm::HS256, "s", json!({"noauth": "nope"}));
        let no_noauth = token(Algorithm::HS256, "s", json!({"sub": "x"}));
        let numeric_noauth = token(Algorithm::HS256, "s", json!({"noauth": 1}));
        for (t, why) in [
            (wrong_key, "signature"),
            (hs512, "HS256"),
            (expired, "expired"),
            (wrong_noauth, "noauth"),
            (no_noauth, "noauth"),
            (numeric_noauth, "noauth"),
            (
                crate::testing::none_token(&json!({"noauth": "na"})),
                "HS256",
            ),
            ("abc.def".into(), "JWT"),
        ] {
            let r = a.check(Some(&format!("JWT {t}"))).expect_err(why);
            assert!(r.contains(why), "{why}: {r}");
        }
        assert!(a.check(None).is_err());
        assert!(a.check(Some("JWT")).is_err());
        let good = token(Algorithm::HS256, "s", json!({"noauth": "na"}));
        assert!(a.check(Some(&format!("Basic {good}"))).is_err());
    }
}
