//! What a receiver accepts (Celery's `accept_content`) and trusts (the `auth` serializer's
//! certificate store), and how a producer signs (its key and certificate). The types exist in
//! every build; reading signed messages needs maestro-broker's `auth` feature, and a build
//! without it refuses to be configured for them rather than accept unsigned work silently.

use std::path::Path;
use std::sync::Arc;

use super::Serializer;
#[cfg(feature = "auth")]
use super::auth::{CertStore, Signer};

/// Without the `auth` feature nothing can be trusted or signed: these types have no values.
#[cfg(not(feature = "auth"))]
#[derive(Debug)]
enum CertStore {}
#[cfg(not(feature = "auth"))]
#[derive(Debug)]
enum Signer {}

#[cfg(not(feature = "auth"))]
impl CertStore {
    fn load(_: &Path) -> Result<Self, String> {
        Err("this build has no auth serializer (maestro-broker's `auth` feature)".into())
    }
    fn open(&self, _: &[u8]) -> Result<Opened, String> {
        match *self {}
    }
}

#[cfg(not(feature = "auth"))]
impl Signer {
    fn load(_: &Path, _: &Path) -> Result<Self, String> {
        Err("this build has no auth serializer (maestro-broker's `auth` feature)".into())
    }
    fn id(&self) -> &str {
        match *self {}
    }
    fn sign(&self, _: &str, _: &str, _: &[u8]) -> Vec<u8> {
        match *self {}
    }
}

/// The `auth` serializer's content type (Celery's signed messages).
pub const CONTENT_TYPE_AUTH: &str = "application/data";

/// What a receiver reads: which serializers unsigned, and whether signed messages, checked
/// against trusted certificates. The default reads every serializer this build has, unsigned,
/// and no signed message.
#[derive(Debug, Clone)]
pub struct Accept {
    unsigned: Vec<Serializer>,
    trusted: Option<Arc<CertStore>>,
}

impl Default for Accept {
    fn default() -> Self {
        Self {
            unsigned: [Serializer::Json, Serializer::Msgpack, Serializer::Yaml]
                .into_iter()
                .filter(|s| s.is_available())
                .collect(),
            trusted: None,
        }
    }
}

impl Accept {
    /// Celery's `accept_content`: serializer names (`json`, `msgpack`, `yaml`, `auth`) or
    /// their content types. `auth` needs `cert_store` (a directory of PEM certificates or one
    /// file); a cert store without `auth` in the list is an error too, so a setting cannot
    /// be half applied. `None` for the list: every serializer this build reads, and signed
    /// messages when a cert store is given.
    pub fn configure(names: Option<&[String]>, cert_store: Option<&Path>) -> Result<Self, String> {
        let mut unsigned = Vec::new();
        let mut auth = false;
        match names {
            None => {
                unsigned = Self::default().unsigned;
                auth = cert_store.is_some();
            }
            Some(names) => {
                for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
                    if name == "auth" || name == CONTENT_TYPE_AUTH {
                        auth = true;
                        continue;
                    }
                    let s = [Serializer::Json, Serializer::Msgpack, Serializer::Yaml]
                        .into_iter()
                        .find(|s| s.name() == name || s.content_type() == name)
                        .ok_or_else(|| {
                            format!(
                                "{name:?} is not a serializer this worker reads (json, msgpack, yaml, auth; never pickle)"
                            )
                        })?;
                    if !s.is_available() {
                        return Err(format!(
                            "{name:?}: this build has no {} serializer",
                            s.name()
                        ));
                    }
                    if !unsigned.contains(&s) {
                        unsigned.push(s);
                    }
                }
                if unsigned.is_empty() && !auth {
                    return Err("accepts nothing: name at least one serializer".into());
                }
            }
        }
        match (auth, cert_store) {
            (true, None) => Err("auth needs a certificate store (--security-cert-store)".into()),
            (false, Some(_)) => {
                Err("a certificate store is given but auth is not accepted: add auth".into())
            }
            (false, None) => Ok(Self {
                unsigned,
                trusted: None,
            }),
            (true, Some(path)) => Ok(Self {
                unsigned,
                trusted: Some(Arc::new(CertStore::load(path)?)),
            }),
        }
    }

    /// Whether unsigned messages of `s` are read.
    pub fn unsigned(&self, s: Serializer) -> bool {
        self.unsigned.contains(&s)
    }

    /// Whether any serializer is read unsigned.
    pub fn accepts_unsigned(&self) -> bool {
        !self.unsigned.is_empty()
    }

    /// Whether signed messages are read.
    pub fn signed(&self) -> bool {
        self.trusted.is_some()
    }

    /// What is accepted, for error messages: `json, msgpack, auth`.
    pub fn describe(&self) -> String {
        let mut names: Vec<&str> = self.unsigned.iter().map(|s| s.name()).collect();
        if self.signed() {
            names.push("auth");
        }
        names.join(", ")
    }

    /// Opens a signed body: the signer's id, the inner content type and encoding, and the
    /// inner body, once its signature checked out.
    pub(crate) fn open_signed(&self, payload: &[u8]) -> Result<Opened, String> {
        let store = self
            .trusted
            .as_ref()
            .ok_or("signed (auth) messages are not accepted here")?;
        store.open(payload)
    }
}

/// A signed body once its signature checked out.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The signer's certificate id.
    pub signer: String,
    /// The inner body's content type and encoding.
    pub content_type: String,
    pub content_encoding: String,
    /// The inner body, as its serializer wrote it.
    pub body: Vec<u8>,
}

/// A producer's signing key and certificate (Celery's `security_key` and
/// `security_certificate`): a publisher that has one signs every task message it sends.
#[derive(Debug, Clone)]
pub struct Signing {
    signer: Arc<Signer>,
}

impl Signing {
    /// Reads a PEM RSA private key (not encrypted) and the PEM certificate of its public key.
    pub fn load(key: &Path, certificate: &Path) -> Result<Self, String> {
        Ok(Self {
            signer: Arc::new(Signer::load(key, certificate)?),
        })
    }

    /// The signer id messages carry.
    pub fn signer_id(&self) -> &str {
        self.signer.id()
    }

    /// The signed body of an inner body.
    pub(crate) fn sign(&self, content_type: &str, content_encoding: &str, body: &[u8]) -> Vec<u8> {
        self.signer.sign(content_type, content_encoding, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn accept_content_is_read_as_celery_names_it() {
        let a = Accept::configure(Some(&names(&["json", "application/x-msgpack"])), None)
            .expect("valid");
        assert!(a.unsigned(Serializer::Json) && !a.signed());
        assert_eq!(
            a.unsigned(Serializer::Msgpack),
            Serializer::Msgpack.is_available()
        );
        assert!(!a.unsigned(Serializer::Yaml));
        let e = Accept::configure(Some(&names(&["pickle"])), None).expect_err("never pickle");
        assert!(e.contains("never pickle"), "{e}");
        assert!(Accept::configure(Some(&names(&["auth"])), None).is_err());
        assert!(Accept::configure(Some(&names(&[])), None).is_err());
        let store = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/auth/producer.pem");
        assert!(Accept::configure(Some(&names(&["json"])), Some(&store)).is_err());
        #[cfg(feature = "auth")]
        {
            let signed_only = Accept::configure(Some(&names(&["auth"])), Some(&store)).expect("ok");
            assert!(signed_only.signed() && !signed_only.unsigned(Serializer::Json));
            assert_eq!(signed_only.describe(), "auth");
            let default = Accept::configure(None, Some(&store)).expect("ok");
            assert!(default.signed() && default.unsigned(Serializer::Json));
        }
    }
}
