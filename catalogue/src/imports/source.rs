//! Where an import's files come from, as the connection's method says (its `service`:
//! `upload_*`, `ssh_*`, `s3_*`): files the user uploaded to server-app, a directory read over
//! SFTP, or objects under a prefix of an S3 bucket. Each read gives the next few files after a
//! token (the last file read), in name order, so a scan pages through them like any listing.
//!
//! Everything here is the connection's, typed by a user: SSH hosts are reached only at
//! addresses the egress policy allows (checked on the address connected to), uploaded files
//! only in the connection's owners' own folders, S3 only in the bucket named, and every file
//! within [`FILE_BYTES_MAX`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use russh::client::{self, AuthResult, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate, decode_secret_key};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use serde_json::Value;

use crate::Services;
use crate::discovery::{Credentials, ProviderError};
use crate::egress::EgressPolicy;

/// Largest file read (client-app refused uploads from about this size too).
pub const FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Most files read in one page, and the most bytes (at least one file is read).
pub const FILES_PER_PAGE: usize = 16;
pub const PAGE_BYTES_MAX: u64 = 32 * 1024 * 1024;
/// Most files one import lists, and the deepest directory it descends into.
pub const FILES_MAX: usize = 10_000;
pub const DEPTH_MAX: usize = 16;
/// Most directories visited and directory entries read under an SSH path.
pub const DIRS_MAX: usize = 1_000;
pub const ENTRIES_MAX: usize = 100_000;
/// Longest one SSH page may take, login to the last byte: a server that trickles cannot hold
/// a worker.
pub const SSH_PAGE_DEADLINE: Duration = Duration::from_secs(300);

/// One file read: its name (path, key or artifact) and its bytes.
#[derive(Debug)]
pub struct File {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A page of files and the token of the next page.
#[derive(Debug, Default)]
pub struct Files {
    pub files: Vec<File>,
    pub next: Option<String>,
}

/// How the connection's files are reached.
pub enum Method {
    Upload,
    Ssh,
    S3,
}

impl Method {
    /// The method of a connection's `service` (`ssh_terraform`), else the one its credentials
    /// hold the fields of.
    pub fn of(service: Option<&str>, creds: &Credentials) -> Result<Method, ProviderError> {
        let by_service = service.and_then(|s| match s.split('_').next() {
            Some("upload") => Some(Method::Upload),
            Some("ssh") => Some(Method::Ssh),
            Some("s3") => Some(Method::S3),
            _ => None,
        });
        by_service
            .or_else(|| {
                if creds.has("artifacts") {
                    Some(Method::Upload)
                } else if creds.string(&["host"]).is_some() {
                    Some(Method::Ssh)
                } else if creds.string(&["bucket"]).is_some() {
                    Some(Method::S3)
                } else {
                    None
                }
            })
            .ok_or_else(|| {
                ProviderError::Invalid(
                    "the connection names no import method (service upload_*, ssh_* or s3_*)"
                        .into(),
                )
            })
    }
}

/// Which files of a listing an import reads: `.json` (and `.tfstate`) files, or every file
/// that is not hidden (Ansible's `--tree` output is one file per host, named for the host).
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub extensions: &'static [&'static str],
}

impl Wanted {
    pub fn wants(&self, name: &str) -> bool {
        let base = name.rsplit('/').next().unwrap_or(name);
        !base.is_empty()
            && !base.starts_with('.')
            && (self.extensions.is_empty()
                || self
                    .extensions
                    .iter()
                    .any(|e| base.to_ascii_lowercase().ends_with(e)))
    }
}

fn claim<'a>(creds: &'a Credentials, name: &str, what: &str) -> Result<&'a str, ProviderError> {
    creds.string(&[name]).ok_or_else(|| {
        ProviderError::Auth(format!(
            "the connection's credentials have no {what} (claim {name})"
        ))
    })
}

/// Files the connection's owners uploaded to server-app: `artifacts`, each
/// `users|teams/<owner id>/<name>`, read with `GET <server>/users/upload/file?filename=` and
/// the private token, one per page (token: the next artifact's index).
pub async fn upload(
    svc: &Services,
    creds: &Credentials,
    owners: &[String],
    token: Option<&str>,
) -> Result<Files, ProviderError> {
    let artifacts = creds.strings("artifacts");
    if artifacts.is_empty() {
        return Err(ProviderError::Invalid(
            "the connection's credentials list no uploaded file (claim artifacts)".into(),
        ));
    }
    let index = match token {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| ProviderError::Invalid(format!("page token {t:?}")))?,
    };
    let Some(artifact) = artifacts.get(index) else {
        return Ok(Files::default());
    };
    check_artifact(artifact, owners)?;
    let server = svc.server_uri.as_ref().ok_or_else(|| {
        ProviderError::Invalid(
            "MAESTRO_SERVER_URI (--server-uri) is not set: uploaded files cannot be read".into(),
        )
    })?;
    let private = svc
        .private_token()
        .map_err(|e| ProviderError::Invalid(e.to_string()))?;
    let mut url = server.clone();
    url.set_path(&format!(
        "{}/users/upload/file",
        server.path().trim_end_matches('/')
    ));
    url.query_pairs_mut().append_pair("filename", artifact);
    // One request, no retry within it: a missing or unreadable file makes server-app's local
    // store fail without an answer (it stops), so asking again at once would only stop it
    // again. Refused connections are retried by the scan, after its backoff.
    let request = svc
        .http
        .get(url.clone())
        .header("Authorization", format!("JWT {private}"));
    let answer = match request.send().await {
        Err(e) if e.is_connect() || e.is_timeout() => {
            return Err(transient(format!(
                "server-app cannot be reached: {}",
                if e.is_timeout() {
                    "timed out"
                } else {
                    "connection failed"
                }
            )));
        }
        Err(_) => {
            return Err(ProviderError::Api(format!(
                "server-app closed the connection while reading uploaded file {artifact:?}: it is missing or not valid JSON (server-app's local store fails on such files)"
            )));
        }
        Ok(resp) => read_upload(resp, artifact).await?,
    };
    Ok(Files {
        files: vec![File {
            name: artifact.clone(),
            bytes: answer,
        }],
        next: (index + 1 < artifacts.len()).then(|| (index + 1).to_string()),
    })
}

/// server-app's answer for an uploaded file: its body (at most [`FILE_BYTES_MAX`]), or why not.
async fn read_upload(
    mut resp: reqwest::Response,
    artifact: &str,
) -> Result<Vec<u8>, ProviderError> {
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|_| transient(format!("server-app's answer for {artifact:?} was cut")))?
    {
        if (body.len() + chunk.len()) as u64 > FILE_BYTES_MAX {
            return Err(too_large(artifact));
        }
        body.extend_from_slice(&chunk);
    }
    match status {
        200..=299 => Ok(body),
        // server-app answers a token whose `noauth` is wrong with 400 PermissionError.
        401 | 403 => Err(ProviderError::Auth(format!(
            "server-app refused the private token (HTTP {status}): check MAESTRO_SECRETJWT_PRIVATE and MAESTRO_NOAUTH"
        ))),
        400 if String::from_utf8_lossy(&body).contains("PermissionError") => {
            Err(ProviderError::Auth(
                "server-app refused the private token (HTTP 400 PermissionError): check MAESTRO_NOAUTH"
                    .into(),
            ))
        }
        429 | 502..=504 => Err(transient(format!("server-app answered HTTP {status}"))),
        s => Err(ProviderError::Api(format!(
            "server-app answered HTTP {s} for uploaded file {artifact:?}"
        ))),
    }
}

/// An artifact must be a file of one of the connection's owners, as server-app names them
/// (`users/<id>/<name>.json`): anything else (another user's folder, `..`, an absolute path)
/// is refused.
pub fn check_artifact(artifact: &str, owners: &[String]) -> Result<(), ProviderError> {
    let parts: Vec<&str> = artifact.split('/').collect();
    let plain = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let ok = matches!(parts.as_slice(), [refs, owner, name]
        if matches!(*refs, "users" | "teams")
            && owners.iter().any(|o| o == owner)
            && plain(name));
    if ok {
        Ok(())
    } else {
        Err(ProviderError::Auth(format!(
            "uploaded file {artifact:?} is not one of the connection's owners' files"
        )))
    }
}

fn too_large(name: &str) -> ProviderError {
    ProviderError::Invalid(format!(
        "file {name:?} is larger than {FILE_BYTES_MAX} bytes"
    ))
}

/// The SSH server's key check: the pinned SHA-256 fingerprint when the connection gives one
/// (`host_key`, as `ssh-keygen -lf` prints it), else any key, as Maestro's importer accepted.
struct HostKey {
    pinned: Option<String>,
}

impl client::Handler for HostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let Some(pinned) = &self.pinned else {
            return Ok(true);
        };
        let seen = key.public_key().fingerprint(HashAlg::Sha256).to_string();
        Ok(seen.trim_end_matches('=') == pinned.trim().trim_end_matches('='))
    }
}

/// Files under the connection's `path` on `host`, read over SFTP as `user` with the private
/// `key` (any type OpenSSH writes; `passphrase` for an encrypted one): those after `token` in
/// name order.
pub async fn ssh(
    svc: &Services,
    creds: &Credentials,
    wanted: Wanted,
    token: Option<&str>,
) -> Result<Files, ProviderError> {
    tokio::time::timeout(SSH_PAGE_DEADLINE, ssh_page(svc, creds, wanted, token))
        .await
        .map_err(|_| {
            transient(format!(
                "the SSH server did not give a page of files within {} s",
                SSH_PAGE_DEADLINE.as_secs()
            ))
        })?
}

async fn ssh_page(
    svc: &Services,
    creds: &Credentials,
    wanted: Wanted,
    token: Option<&str>,
) -> Result<Files, ProviderError> {
    let host = claim(creds, "host", "SSH host")?;
    let user = claim(creds, "user", "SSH user")?;
    let path = claim(creds, "path", "directory (path)")?;
    let key = claim(creds, "key", "SSH private key")?;
    let port = match creds.value("port") {
        None => 22,
        Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
        Some(Value::String(s)) if s.trim().is_empty() => 22,
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        Some(_) => 0,
    };
    if port == 0 {
        return Err(ProviderError::Invalid(
            "the connection's SSH port is not a port number".into(),
        ));
    }
    let key = decode_secret_key(key, creds.string(&["passphrase"])).map_err(|e| {
        ProviderError::Auth(format!("the connection's SSH key cannot be read: {e}"))
    })?;
    let timeout = Duration::from_secs(svc.cfg.http_timeout_secs.max(1));
    let addr = allowed_address(&svc.egress, host, port).await?;
    let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| transient(format!("SSH connection to {host}:{port} timed out")))?
        .map_err(|e| transient(format!("SSH connection to {host}:{port} failed: {e}")))?;
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(timeout * 3),
        ..client::Config::default()
    });
    let handler = HostKey {
        pinned: creds.string(&["host_key"]).map(str::to_owned),
    };
    let mut session: Handle<HostKey> =
        tokio::time::timeout(timeout, client::connect_stream(config, stream, handler))
            .await
            .map_err(|_| transient(format!("SSH handshake with {host}:{port} timed out")))?
            .map_err(|e| match e {
                russh::Error::UnknownKey => ProviderError::Auth(format!(
                    "the SSH server {host}:{port} did not present the pinned host key (host_key)"
                )),
                e => transient(format!("SSH handshake with {host}:{port}: {e}")),
            })?;
    let hash = session
        .best_supported_rsa_hash()
        .await
        .map_err(|e| transient(format!("SSH: {e}")))?
        .flatten();
    let auth = session
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
        .await
        .map_err(|e| transient(format!("SSH authentication: {e}")))?;
    if !matches!(auth, AuthResult::Success) {
        return Err(ProviderError::Auth(format!(
            "the SSH server {host}:{port} refused the key for user {user:?}"
        )));
    }
    let files = read_over_sftp(&session, path, wanted, token, timeout).await;
    let _ = session
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    files
}

/// An SFTP failure: a file or directory the server refuses (missing, not permitted) is the
/// connection's to mend; anything else (a dropped connection, a timeout) is worth a retry.
fn sftp_error(what: &str, e: SftpError) -> ProviderError {
    match &e {
        SftpError::Status(s)
            if matches!(
                s.status_code,
                StatusCode::NoSuchFile | StatusCode::PermissionDenied | StatusCode::OpUnsupported
            ) =>
        {
            ProviderError::Api(format!("{what}: {e}"))
        }
        _ => transient(format!("SFTP, {what}: {e}")),
    }
}

async fn read_over_sftp(
    session: &Handle<HostKey>,
    path: &str,
    wanted: Wanted,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Files, ProviderError> {
    let channel = session
        .channel_open_session()
        .await
        .map_err(|e| transient(format!("SSH session: {e}")))?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| transient(format!("SFTP subsystem: {e}")))?;
    // The raw session: every directory read and file read is bounded here (packets are at
    // most 256 KiB; the convenience calls would hold a whole listing or file first).
    let sftp = RawSftpSession::new(channel.into_stream());
    sftp.set_timeout(timeout.as_secs().max(1));
    sftp.init().await.map_err(|e| sftp_error("start", e))?;
    let root = sftp
        .realpath(path)
        .await
        .map_err(|e| sftp_error(&format!("directory {path:?}"), e))?
        .files
        .into_iter()
        .next()
        .map(|f| f.filename)
        .unwrap_or_else(|| path.to_owned());
    // Every wanted file under the directory, in name order.
    let mut found: Vec<(String, u64)> = Vec::new();
    let mut dirs = vec![(root, 0usize)];
    let (mut visited, mut entries) = (0usize, 0usize);
    while let Some((dir, depth)) = dirs.pop() {
        visited += 1;
        if visited > DIRS_MAX {
            return Err(ProviderError::Invalid(format!(
                "more than {DIRS_MAX} directories under {path:?}"
            )));
        }
        let what = format!("directory {dir:?}");
        let handle = sftp
            .opendir(dir.as_str())
            .await
            .map_err(|e| sftp_error(&what, e))?
            .handle;
        loop {
            let batch = match sftp.readdir(handle.as_str()).await {
                Ok(name) => name.files,
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break,
                Err(e) => return Err(sftp_error(&what, e)),
            };
            for f in batch {
                entries += 1;
                if entries > ENTRIES_MAX {
                    return Err(ProviderError::Invalid(format!(
                        "more than {ENTRIES_MAX} entries under {path:?}"
                    )));
                }
                let name = f.filename;
                if name.is_empty() || name.starts_with('.') || name.contains('/') {
                    continue;
                }
                let full = format!("{}/{name}", dir.trim_end_matches('/'));
                let kind = f.attrs.file_type();
                if kind.is_dir() && depth + 1 < DEPTH_MAX {
                    dirs.push((full, depth + 1));
                } else if kind.is_file() && wanted.wants(&full) {
                    found.push((full, f.attrs.len()));
                    if found.len() > FILES_MAX {
                        return Err(ProviderError::Invalid(format!(
                            "more than {FILES_MAX} files under {path:?}"
                        )));
                    }
                }
            }
        }
        let _ = sftp.close(handle.as_str()).await;
    }
    if found.is_empty() {
        return Err(ProviderError::Api(format!(
            "no file to import under {path:?} on the SSH server"
        )));
    }
    found.sort();
    let (page, next) = page_after(&found, token);
    let mut files = Vec::with_capacity(page.len());
    for (name, size) in page {
        if *size > FILE_BYTES_MAX {
            return Err(too_large(name));
        }
        files.push(File {
            name: name.clone(),
            bytes: read_file(&sftp, name).await?,
        });
    }
    let _ = sftp.close_session();
    Ok(Files { files, next })
}

/// A file read in 32 KiB pieces, refused past [`FILE_BYTES_MAX`] whatever size the listing
/// claimed.
async fn read_file(sftp: &RawSftpSession, name: &str) -> Result<Vec<u8>, ProviderError> {
    let what = format!("file {name:?}");
    let handle = sftp
        .open(name, OpenFlags::READ, FileAttributes::empty())
        .await
        .map_err(|e| sftp_error(&what, e))?
        .handle;
    let mut bytes = Vec::new();
    loop {
        match sftp
            .read(handle.as_str(), bytes.len() as u64, 32 * 1024)
            .await
        {
            Ok(data) if data.data.is_empty() => break,
            Ok(data) => {
                if (bytes.len() + data.data.len()) as u64 > FILE_BYTES_MAX {
                    let _ = sftp.close(handle.as_str()).await;
                    return Err(too_large(name));
                }
                bytes.extend_from_slice(&data.data);
            }
            Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break,
            Err(e) => {
                let _ = sftp.close(handle.as_str()).await;
                return Err(sftp_error(&what, e));
            }
        }
    }
    let _ = sftp.close(handle.as_str()).await;
    Ok(bytes)
}

/// The files after `token` (the last one read) that fit in a page, and the next token.
fn page_after<'a>(
    found: &'a [(String, u64)],
    token: Option<&str>,
) -> (&'a [(String, u64)], Option<String>) {
    let start = match token {
        Some(t) => found.partition_point(|(n, _)| n.as_str() <= t),
        None => 0,
    };
    let rest = &found[start..];
    let mut bytes = 0;
    let mut take = 0;
    for (_, size) in rest.iter().take(FILES_PER_PAGE) {
        if take > 0 && bytes + size > PAGE_BYTES_MAX {
            break;
        }
        bytes += size;
        take += 1;
    }
    let page = &rest[..take];
    let next = (take < rest.len())
        .then(|| page.last().map(|(n, _)| n.clone()))
        .flatten();
    (page, next)
}

/// The address of `host:port` to connect to: the first one the egress policy allows among
/// those the name resolves to (a refused address fails before any connection).
async fn allowed_address(
    egress: &EgressPolicy,
    host: &str,
    port: u16,
) -> Result<SocketAddr, ProviderError> {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| transient(format!("SSH host {host:?} does not resolve: {e}")))?
        .collect();
    // A host the operator allowed by name is reached wherever it resolves.
    if egress.allows_name(host)
        && let Some(a) = addrs.first()
    {
        return Ok(*a);
    }
    addrs
        .iter()
        .find(|a| egress.check_ip(a.ip()).is_ok())
        .copied()
        .ok_or_else(|| {
            // The address itself is not named: a tenant learns nothing of the network.
            ProviderError::Auth(format!(
                "SSH host {host:?}: destination refused: it is not a public address (an operator may allow it in MAESTRO_EGRESS_ALLOW)"
            ))
        })
}

fn transient(message: String) -> ProviderError {
    ProviderError::Transient {
        message,
        retry_after: None,
    }
}

/// Objects under the connection's `path` in its `bucket` (S3's ListObjectsV2 with `start-after`
/// the last key read), signed with its `access` and `secret` for its `region` (default
/// us-east-1), at the AWS endpoint the worker is configured with, else S3's.
pub async fn s3(
    svc: &Services,
    creds: &Credentials,
    wanted: Wanted,
    token: Option<&str>,
) -> Result<Files, ProviderError> {
    let bucket = claim(creds, "bucket", "S3 bucket")?;
    if !is_bucket_name(bucket) {
        return Err(ProviderError::Invalid(format!(
            "{bucket:?} is not an S3 bucket name"
        )));
    }
    let prefix = creds
        .string(&["path"])
        .unwrap_or("")
        .trim_matches('/')
        .to_owned();
    let region = creds.string(&["region"]).unwrap_or("us-east-1");
    if !crate::aws::is_region(region) {
        return Err(ProviderError::Invalid(format!(
            "{region:?} is not an AWS region"
        )));
    }
    let base = match &svc.cfg.aws_endpoint {
        Some(e) => e.trim_end_matches('/').to_owned(),
        None => format!("https://s3.{region}.amazonaws.com"),
    };
    let mut listed: Vec<(String, u64)> = Vec::new();
    let mut after = token.map(str::to_owned);
    let mut truncated = true;
    // Keys that are not wanted (folders, READMEs) are passed over until a page has some.
    while truncated && listed.is_empty() {
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("list-type", "2");
            q.append_pair("max-keys", &FILES_PER_PAGE.to_string());
            q.append_pair("prefix", &prefix);
            if let Some(a) = &after {
                q.append_pair("start-after", a);
            }
            // AWS's signature wants `%20`, not `+`, for spaces.
            q.finish().replace('+', "%20")
        };
        let url = format!("{base}/{bucket}?{query}");
        let body = crate::aws::s3_get(&svc.http, "S3", &url, creds, region).await?;
        let (keys, more) = parse_listing(&body)?;
        truncated = more;
        after = keys.last().map(|(k, _)| k.clone()).or(after);
        listed.extend(keys.into_iter().filter(|(k, _)| wanted.wants(k)));
        if !more && listed.is_empty() && token.is_none() {
            return Err(ProviderError::Api(format!(
                "no file to import under {prefix:?} in bucket {bucket:?}"
            )));
        }
    }
    let mut files = Vec::with_capacity(listed.len());
    for (key, size) in &listed {
        if *size > FILE_BYTES_MAX {
            return Err(too_large(key));
        }
        let mut url = Url::parse(&format!("{base}/"))
            .map_err(|e| ProviderError::Invalid(format!("S3 endpoint: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| ProviderError::Invalid("S3 endpoint cannot have a path".into()))?
            .pop_if_empty()
            .push(bucket)
            .extend(key.split('/'));
        let body = crate::aws::s3_get(&svc.http, "S3", url.as_str(), creds, region).await?;
        files.push(File {
            name: key.clone(),
            bytes: body.into_bytes(),
        });
    }
    Ok(Files {
        files,
        next: if truncated { after } else { None },
    })
}

/// S3's bucket naming rules: 3 to 63 lower-case letters, digits, dots and hyphens.
fn is_bucket_name(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && !b.starts_with(['.', '-'])
        && !b.contains("..")
}

/// The keys and sizes of a ListObjectsV2 answer, and whether more follow.
fn parse_listing(xml: &str) -> Result<(Vec<(String, u64)>, bool), ProviderError> {
    let doc = roxmltree::Document::parse(xml)
        .map_err(|e| ProviderError::Invalid(format!("S3 listing is not XML: {e}")))?;
    let root = doc.root_element();
    let text = |n: roxmltree::Node<'_, '_>, name: &str| {
        n.children()
            .find(|c| c.has_tag_name(name))
            .and_then(|c| c.text())
            .map(str::to_owned)
    };
    let keys = root
        .children()
        .filter(|c| c.has_tag_name("Contents"))
        .filter_map(|c| {
            let key = text(c, "Key")?;
            let size = text(c, "Size").and_then(|s| s.parse().ok()).unwrap_or(0);
            // Folder markers, and keys whose `.` or `..` segments a URL would resolve away.
            let plain = key
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
            plain.then_some((key, size))
        })
        .collect();
    let more = text(root, "IsTruncated").as_deref() == Some("true");
    Ok((keys, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_the_owners_own_files() {
        let owners = vec!["5f0000000000000000000001".to_owned()];
        assert!(check_artifact("users/5f0000000000000000000001/my-host.json", &owners).is_ok());
        assert!(check_artifact("teams/5f0000000000000000000001/inv.json", &owners).is_ok());
        for bad in [
            "users/5f0000000000000000000002/my-host.json",
            "users/5f0000000000000000000001/../x.json",
            "/etc/passwd",
            "users/5f0000000000000000000001/a/b.json",
            "users/5f0000000000000000000001/.hidden",
            "other/5f0000000000000000000001/x.json",
            "users/5f0000000000000000000001/x.json?y=1",
        ] {
            assert!(check_artifact(bad, &owners).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_of_files_follow_the_last_name_read() {
        let found: Vec<(String, u64)> = (0..20).map(|i| (format!("/d/f{i:02}.json"), 10)).collect();
        let (page, next) = page_after(&found, None);
        assert_eq!(page.len(), FILES_PER_PAGE);
        assert_eq!(next.as_deref(), Some("/d/f15.json"));
        let (page, next) = page_after(&found, next.as_deref());
        assert_eq!((page.len(), next), (4, None));
        let big = vec![("/a".to_owned(), PAGE_BYTES_MAX), ("/b".to_owned(), 1)];
        let (page, next) = page_after(&big, None);
        assert_eq!((page.len(), next.as_deref()), (1, Some("/a")));
    }

    #[test]
    fn wanted_files_and_bucket_names() {
        let json = Wanted {
            extensions: &[".json"],
        };
        assert!(json.wants("/srv/inv/hosts.JSON") && !json.wants("/srv/inv/README"));
        assert!(!json.wants("/srv/inv/.cache.json"));
        let any = Wanted { extensions: &[] };
        assert!(any.wants("web-1.example.com") && !any.wants(".ansible_cache"));
        assert!(is_bucket_name("tf-states.prod") && !is_bucket_name("Bad_Bucket"));
        assert!(!is_bucket_name("a") && !is_bucket_name("x..y") && !is_bucket_name("../etc"));
        let (keys, more) = parse_listing(
            "<ListBucketResult><IsTruncated>true</IsTruncated>\
             <Contents><Key>tf/a.tfstate</Key><Size>12</Size></Contents>\
             <Contents><Key>tf/</Key><Size>0</Size></Contents></ListBucketResult>",
        )
        .expect("listing");
        assert_eq!((keys, more), (vec![("tf/a.tfstate".to_owned(), 12)], true));
    }
}
