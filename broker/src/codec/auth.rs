//! Celery's `auth` serializer (`celery.security`, `app.setup_security()`): a task message
//! signed with the producer's RSA key, checked against the X.509 certificates the receiver
//! trusts. With it an operator can refuse every task that was not signed by a known producer.
//!
//! On the wire (Celery 5.7, `security/serialization.py`): content type `application/data`,
//! encoding `utf-8`, and a body that is the base64 of five fields joined by `\x00\x01`:
//! base64 of the signer's id, base64 of the signature, the inner content type, the inner
//! content encoding, and the inner body (the message as the inner serializer, usually JSON,
//! wrote it). The signature is RSA-PSS over the inner body with SHA-256, MGF1(SHA-256) and
//! the longest salt the key allows (`PSS.MAX_LENGTH`). The signer's id is the certificate's
//! issuer attribute values joined by spaces, a space, and its serial number in decimal.
//! A `compression` header compresses the whole signed body, as kombu does.
//!
//! Not read: keys and certificates other than RSA (Celery refuses them too), and encrypted
//! private keys (decrypt them first: `openssl pkcs8 -topk8 -nocrypt`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::pss::{BlindedSigningKey, Signature, VerifyingKey};
use rsa::sha2::Sha256;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use x509_cert::der::{DecodePem, Encode};

pub use super::security::Opened;

/// Celery's field separator (`DEFAULT_SEPARATOR`).
const SEPARATOR: &[u8] = b"\x00\x01";
/// SHA-256's output, bytes.
const DIGEST_LEN: usize = 32;

/// A trusted certificate: who signs, with which public key, until when.
#[derive(Clone)]
pub struct Certificate {
    id: String,
    key: RsaPublicKey,
    not_after: SystemTime,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate").field("id", &self.id).finish()
    }
}

impl Certificate {
    /// Reads a PEM certificate with an RSA key.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let cert = x509_cert::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| format!("not a PEM X.509 certificate: {e}"))?;
        let tbs = &cert.tbs_certificate;
        let spki = tbs
            .subject_public_key_info
            .to_der()
            .map_err(|e| format!("its public key: {e}"))?;
        let key = RsaPublicKey::from_public_key_der(&spki)
            .map_err(|_| "not an RSA certificate (Celery's auth serializer signs with RSA)")?;
        // Celery: `' '.join(x.value for x in cert.issuer)` and the serial as a Python int.
        let issuer: Vec<String> = tbs
            .issuer
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .map(|atv| String::from_utf8_lossy(atv.value.value()).into_owned())
            .collect();
        let serial = BigUint::from_bytes_be(tbs.serial_number.as_bytes());
        Ok(Self {
            id: format!("{} {serial}", issuer.join(" ")),
            key,
            not_after: tbs.validity.not_after.to_system_time(),
        })
    }

    /// The signer id Celery writes into messages signed with this certificate's key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the certificate has expired (Celery refuses expired ones).
    pub fn has_expired(&self) -> bool {
        SystemTime::now() >= self.not_after
    }

    /// Checks `signature` of `data`.
    fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), String> {
        if self.has_expired() {
            return Err(format!("Expired certificate: '{}'", self.id));
        }
        let signature =
            Signature::try_from(signature).map_err(|e| format!("Bad signature: {e}"))?;
        VerifyingKey::<Sha256>::new_with_salt_len(self.key.clone(), max_salt_len(&self.key))
            .verify(data, &signature)
            .map_err(|_| format!("Bad signature: from '{}'", self.id))
    }
}

/// `PSS.MAX_LENGTH` for `key` and SHA-256: the encoded message's length less the digest and
/// two bytes.
fn max_salt_len(key: &RsaPublicKey) -> usize {
    let em_len = (key.n().bits() - 1).div_ceil(8);
    em_len.saturating_sub(DIGEST_LEN + 2)
}

/// The certificates a receiver trusts (Celery's `security_cert_store`).
#[derive(Debug, Clone, Default)]
pub struct CertStore {
    certs: HashMap<String, Arc<Certificate>>,
}

impl CertStore {
    /// Every certificate in `path`: each file of a directory, or one file. An unreadable or
    /// expired certificate, or two with the same id, is an error naming the file, as Celery's
    /// `FSCertStore` refuses them.
    pub fn load(path: &Path) -> Result<Self, String> {
        let files: Vec<std::path::PathBuf> = if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            files
        } else {
            vec![path.to_owned()]
        };
        let mut store = Self::default();
        for file in files {
            let pem =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let cert =
                Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", file.display()))?;
            if cert.has_expired() {
                return Err(format!(
                    "{}: Expired certificate: '{}'",
                    file.display(),
                    cert.id
                ));
            }
            store
                .add(cert)
                .map_err(|e| format!("{}: {e}", file.display()))?;
        }
        if store.certs.is_empty() {
            return Err(format!("{}: no certificate", path.display()));
        }
        Ok(store)
    }

    /// Trusts `cert`.
    pub fn add(&mut self, cert: Certificate) -> Result<(), String> {
        if self.certs.contains_key(&cert.id) {
            return Err(format!("Duplicate certificate: '{}'", cert.id));
        }
        self.certs.insert(cert.id.clone(), Arc::new(cert));
        Ok(())
    }

    /// How many certificates it holds.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Unpacks a signed body and checks its signature against the signer's certificate.
    pub fn open(&self, payload: &[u8]) -> Result<Opened, String> {
        let (signed, signature) = unpack(payload)?;
        let cert = self
            .certs
            .get(&signed.signer)
            .ok_or_else(|| format!("Unknown certificate: '{}'", signed.signer))?;
        cert.verify(&signed.body, &signature)?;
        Ok(signed)
    }
}

/// A signed body's fields, and its signature.
fn unpack(payload: &[u8]) -> Result<(Opened, Vec<u8>), String> {
    let raw = STANDARD
        .decode(payload.trim_ascii())
        .map_err(|e| format!("a signed body is base64: {e}"))?;
    let mut fields = Vec::with_capacity(5);
    let mut rest = &raw[..];
    while fields.len() < 4 {
        let at = rest
            .windows(SEPARATOR.len())
            .position(|w| w == SEPARATOR)
            .ok_or("a signed body has five fields")?;
        fields.push(&rest[..at]);
        rest = &rest[at + SEPARATOR.len()..];
    }
    let b64 = |field: &[u8], what: &str| {
        STANDARD
            .decode(field)
            .map_err(|e| format!("the signed body's {what} is base64: {e}"))
    };
    let text = |field: &[u8], what: &str| {
        String::from_utf8(field.to_vec()).map_err(|_| format!("the signed body's {what} is text"))
    };
    let opened = Opened {
        signer: text(&b64(fields[0], "signer")?, "signer")?,
        content_type: text(fields[2], "content type")?,
        content_encoding: text(fields[3], "content encoding")?,
        body: rest.to_vec(),
    };
    Ok((opened, b64(fields[1], "signature")?))
}

/// A producer's key and certificate (Celery's `security_key` and `security_certificate`):
/// signs what this process sends.
pub struct Signer {
    key: BlindedSigningKey<Sha256>,
    cert: Certificate,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("certificate", &self.cert.id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer from a PEM private key (PKCS#8 or PKCS#1, not encrypted) and the PEM
    /// certificate of its public key.
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Self, String> {
        if key_pem.contains("ENCRYPTED") {
            return Err("an encrypted private key is not read; decrypt it first \
                        (openssl pkcs8 -topk8 -nocrypt)"
                .into());
        }
        let key = RsaPrivateKey::from_pkcs8_pem(key_pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(key_pem))
            .map_err(|_| "not a PEM RSA private key (PKCS#8 or PKCS#1)")?;
        let cert = Certificate::from_pem(cert_pem)?;
        if RsaPublicKey::from(&key) != cert.key {
            return Err(format!(
                "the key is not the one of certificate '{}'",
                cert.id
            ));
        }
        let salt = max_salt_len(&cert.key);
        Ok(Self {
            key: BlindedSigningKey::new_with_salt_len(key, salt),
            cert,
        })
    }

    /// Reads the key and certificate files.
    pub fn load(key: &Path, cert: &Path) -> Result<Self, String> {
        let read =
            |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        Self::from_pem(&read(key)?, &read(cert)?)
    }

    /// The certificate it signs as.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The signer id its messages carry.
    pub fn id(&self) -> &str {
        self.cert.id()
    }

    /// The signed body for an inner body of `content_type` / `content_encoding`.
    pub fn sign(&self, content_type: &str, content_encoding: &str, body: &[u8]) -> Vec<u8> {
        let signature = self.key.sign_with_rng(&mut rsa::rand_core::OsRng, body);
        let mut fields = Vec::with_capacity(body.len() + 1024);
        fields.extend_from_slice(STANDARD.encode(self.cert.id.as_bytes()).as_bytes());
        fields.extend_from_slice(SEPARATOR);
        fields.extend_from_slice(STANDARD.encode(signature.to_bytes()).as_bytes());
        fields.extend_from_slice(SEPARATOR);
        fields.extend_from_slice(content_type.as_bytes());
        fields.extend_from_slice(SEPARATOR);
        fields.extend_from_slice(content_encoding.as_bytes());
        fields.extend_from_slice(SEPARATOR);
        fields.extend_from_slice(body);
        STANDARD.encode(fields).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A self-signed RSA-2048 certificate and its key, made for these tests with
    // `openssl req -x509 -newkey rsa:2048 -nodes -subj "/C=BR/O=Maestro Tests/CN=producer"
    // -days 36500 -set_serial 4242`.
    const CERT: &str = include_str!("../../tests/fixtures/auth/producer.pem");
    const KEY: &str = include_str!("../../tests/fixtures/auth/producer.key");
    const OTHER_CERT: &str = include_str!("../../tests/fixtures/auth/other.pem");

    #[test]
    fn the_signer_id_is_celerys() {
        let cert = Certificate::from_pem(CERT).expect("certificate");
        assert_eq!(cert.id(), "BR Maestro Tests producer 4242");
        assert!(!cert.has_expired());
    }

    #[test]
    fn a_signed_body_opens_with_the_signers_certificate_only() {
        let signer = Signer::from_pem(KEY, CERT).expect("signer");
        let body = br#"[[1, 2], {}, {}]"#;
        let signed = signer.sign("application/json", "utf-8", body);
        let mut store = CertStore::default();
        store
            .add(Certificate::from_pem(OTHER_CERT).expect("other"))
            .expect("added");
        assert!(
            store
                .open(&signed)
                .expect_err("unknown signer")
                .contains("Unknown certificate")
        );
        store
            .add(Certificate::from_pem(CERT).expect("cert"))
            .expect("added");
        let opened = store.open(&signed).expect("verified");
        assert_eq!(opened.body, body);
        assert_eq!(opened.content_type, "application/json");
        assert_eq!(opened.signer, "BR Maestro Tests producer 4242");
        // One byte changed in the body: refused.
        let mut raw = STANDARD.decode(&signed).expect("base64");
        let last = raw.len() - 3;
        raw[last] ^= 1;
        let forged = STANDARD.encode(raw).into_bytes();
        assert!(
            store
                .open(&forged)
                .expect_err("forged")
                .contains("Bad signature")
        );
        assert!(store.open(b"not base64!").is_err());
        assert!(
            store
                .open(&STANDARD.encode(b"a\x00\x01b").into_bytes())
                .is_err()
        );
    }

    #[test]
    fn a_key_must_match_its_certificate() {
        let e = Signer::from_pem(KEY, OTHER_CERT).expect_err("mismatch");
        assert!(e.contains("is not the one of certificate"), "{e}");
        assert!(Signer::from_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----", CERT).is_err());
    }
}
