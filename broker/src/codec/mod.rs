//! The wire formats of kombu 5.x (Celery's messaging library) this runtime reads and writes: a
//! serializer named by the `content_type` property and an optional compression named by the
//! `compression` header.
//!
//! | serializer | content type | content encoding |
//! |---|---|---|
//! | `json` | `application/json` | `utf-8` |
//! | `msgpack` | `application/x-msgpack` | `binary` |
//! | `yaml` | `application/x-yaml` | `utf-8` |
//!
//! `pickle` (`application/x-python-serialize`) is never read: unpickling runs code.
//! Celery's `auth` serializer (`application/data`: one of the above, signed) is read against
//! trusted certificates and written with a signing key ([`security`], [`auth`]).
//!
//! | compression (`compression=`) | `compression` header |
//! |---|---|
//! | `zlib`, `gzip` | `application/x-gzip` (kombu writes a zlib stream under this name) |
//! | `bzip2` | `application/x-bz2` |
//! | `brotli` | `application/x-brotli` |
//! | `lzma`, `xz` | `application/x-lzma` (an xz container) |
//! | `zstd` | `application/zstd` |
//!
//! Arguments stay JSON inside the runtime: a msgpack or yaml body becomes the JSON a Python
//! client using the `json` serializer would have sent for the same values (kombu's JSON
//! encoder): `bytes` become `{"__type__": "bytes", "__value__": text}` when they are UTF-8 and
//! `{"__type__": "base64", "__value__": base64}` otherwise, yaml timestamps become
//! `{"__type__": "datetime" | "date", "__value__": isoformat}`; a Python client reading a
//! result (always JSON) gets `bytes` and `datetime` back. Encoding turns those objects back into
//! msgpack `bin` and yaml `!!binary`/`!!timestamp`.
//!
//! Every decoder here is bounded: a compressed body is inflated to at most the caller's limit
//! (more is a [`DecodeError::TooLarge`], never an allocation), and a msgpack or yaml body is
//! converted within the same budget (yaml aliases can repeat a node without end), nested at
//! most [`MAX_DEPTH`] deep.

use serde_json::Value;

use crate::message::DecodeError;

#[cfg(feature = "auth")]
pub mod auth;
#[cfg(feature = "compression")]
mod compress;
#[cfg(feature = "msgpack")]
mod msgpack;
pub mod security;
#[cfg(any(feature = "msgpack", feature = "yaml"))]
mod value;
#[cfg(feature = "yaml")]
mod yaml;

pub use security::{Accept, CONTENT_TYPE_AUTH, Signing};

/// kombu's `json` serializer.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// kombu's `msgpack` serializer.
pub const CONTENT_TYPE_MSGPACK: &str = "application/x-msgpack";
/// kombu's `yaml` serializer.
pub const CONTENT_TYPE_YAML: &str = "application/x-yaml";
/// kombu's `pickle` serializer: never read.
pub const CONTENT_TYPE_PICKLE: &str = "application/x-python-serialize";

/// Deepest nesting of arrays and objects a msgpack or yaml body may have (the body itself is
/// level 1): serde_json's own recursion limit, so a body accepted here parses as JSON again.
pub const MAX_DEPTH: usize = 128;

/// How a body is serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Serializer {
    #[default]
    Json,
    Msgpack,
    Yaml,
}

impl Serializer {
    /// The serializer a `content_type` property names, if this build reads it.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let s = match content_type {
            CONTENT_TYPE_JSON => Serializer::Json,
            CONTENT_TYPE_MSGPACK => Serializer::Msgpack,
            CONTENT_TYPE_YAML => Serializer::Yaml,
            _ => return None,
        };
        s.is_available().then_some(s)
    }

    /// kombu's name (`task_serializer`).
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::Msgpack => "msgpack",
            Serializer::Yaml => "yaml",
        }
    }

    /// The `content_type` property kombu writes.
    pub fn content_type(self) -> &'static str {
        match self {
            Serializer::Json => CONTENT_TYPE_JSON,
            Serializer::Msgpack => CONTENT_TYPE_MSGPACK,
            Serializer::Yaml => CONTENT_TYPE_YAML,
        }
    }

    /// The `content_encoding` property kombu writes.
    pub fn content_encoding(self) -> &'static str {
        match self {
            Serializer::Json | Serializer::Yaml => "utf-8",
            Serializer::Msgpack => "binary",
        }
    }

    /// Whether a `content_encoding` property is one kombu reads this serializer with: utf-8
    /// text for json and yaml, raw bytes (`binary`) for msgpack; absent is accepted.
    pub fn accepts_encoding(self, encoding: &str) -> bool {
        let is = |e: &str| encoding.eq_ignore_ascii_case(e);
        match self {
            Serializer::Json | Serializer::Yaml => is("utf-8") || is("utf8"),
            Serializer::Msgpack => is("binary") || is("ascii-8bit"),
        }
    }

    /// Whether this build reads and writes it (maestro-broker's `msgpack` and `yaml` features).
    pub fn is_available(self) -> bool {
        match self {
            Serializer::Json => true,
            Serializer::Msgpack => cfg!(feature = "msgpack"),
            Serializer::Yaml => cfg!(feature = "yaml"),
        }
    }
}

/// A compression of kombu's, named by the `compression` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// `application/x-gzip`: kombu writes `zlib.compress` output under this name (a gzip
    /// stream, magic `1f 8b`, is read too).
    Zlib,
    /// `application/x-bz2`.
    Bzip2,
    /// `application/x-brotli`.
    Brotli,
    /// `application/x-lzma`: an xz container (`lzma.compress`).
    Lzma,
    /// `application/zstd` (`application/x-zstd` is read too).
    Zstd,
}

impl Compression {
    /// Every compression, in kombu's order.
    pub const ALL: [Compression; 5] = [
        Compression::Zlib,
        Compression::Bzip2,
        Compression::Brotli,
        Compression::Lzma,
        Compression::Zstd,
    ];

    /// The compression a `compression` header names: kombu's content types and its aliases
    /// (`zlib`, `gzip`, `bzip2`, `bzip`, `brotli`, `lzma`, `xz`, `zstd`, `zstandard`), if this
    /// build reads it.
    pub fn from_header(value: &str) -> Option<Self> {
        let c = match value.trim().to_ascii_lowercase().as_str() {
            "application/x-gzip" | "gzip" | "zlib" => Compression::Zlib,
            "application/x-bz2" | "bzip2" | "bzip" => Compression::Bzip2,
            "application/x-brotli" | "brotli" => Compression::Brotli,
            "application/x-lzma" | "lzma" | "xz" => Compression::Lzma,
            "application/zstd" | "application/x-zstd" | "zstd" | "zstandard" => Compression::Zstd,
            _ => return None,
        };
        c.is_available().then_some(c)
    }

    /// The `compression` header kombu writes.
    pub fn content_type(self) -> &'static str {
        match self {
            Compression::Zlib => "application/x-gzip",
            Compression::Bzip2 => "application/x-bz2",
            Compression::Brotli => "application/x-brotli",
            Compression::Lzma => "application/x-lzma",
            Compression::Zstd => "application/zstd",
        }
    }

    /// Whether this build reads and writes it (maestro-broker's `compression` feature).
    pub fn is_available(self) -> bool {
        cfg!(feature = "compression")
    }
}

/// The serializer and compression of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WireFormat {
    pub serializer: Serializer,
    pub compression: Option<Compression>,
    /// Signed with Celery's `auth` serializer (`serializer` is then the inner one).
    pub signed: bool,
}

/// The content types this build reads, for error messages.
pub fn supported_content_types() -> String {
    [Serializer::Json, Serializer::Msgpack, Serializer::Yaml]
        .into_iter()
        .filter(|s| s.is_available())
        .map(Serializer::content_type)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The compressions this build reads, for error messages.
pub fn supported_compressions() -> String {
    let names: Vec<&str> = Compression::ALL
        .into_iter()
        .filter(|c| c.is_available())
        .map(Compression::content_type)
        .collect();
    if names.is_empty() {
        "none in this build".into()
    } else {
        names.join(", ")
    }
}

/// `body` decompressed, at most `limit` bytes of it.
pub(crate) fn decompress(
    compression: Compression,
    body: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecodeError> {
    #[cfg(feature = "compression")]
    {
        compress::decompress(compression, body, limit)
    }
    #[cfg(not(feature = "compression"))]
    {
        let _ = (body, limit);
        Err(DecodeError::Compression(compression.content_type().into()))
    }
}

/// `body` compressed.
pub(crate) fn compress(compression: Compression, body: &[u8]) -> Result<Vec<u8>, String> {
    #[cfg(feature = "compression")]
    {
        compress::compress(compression, body)
    }
    #[cfg(not(feature = "compression"))]
    {
        let _ = body;
        Err(format!(
            "{} is not available in this build",
            compression.content_type()
        ))
    }
}

/// A msgpack or yaml body as the JSON value it stands for, converted within `limit` bytes.
pub(crate) fn decode_value(
    serializer: Serializer,
    body: &[u8],
    limit: usize,
) -> Result<Value, DecodeError> {
    match serializer {
        #[cfg(feature = "msgpack")]
        Serializer::Msgpack => msgpack::decode(body, &mut value::Budget::new(limit, serializer)),
        #[cfg(feature = "yaml")]
        Serializer::Yaml => yaml::decode(body, &mut value::Budget::new(limit, serializer)),
        other => {
            let _ = (body, limit);
            Err(DecodeError::ContentType(other.content_type().into()))
        }
    }
}

/// `value` in `serializer` (msgpack or yaml); an error when it cannot say it (an integer
/// beyond 64 bits in msgpack).
pub(crate) fn encode_value(serializer: Serializer, value: &Value) -> Result<Vec<u8>, String> {
    match serializer {
        Serializer::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        #[cfg(feature = "msgpack")]
        Serializer::Msgpack => msgpack::encode(value),
        #[cfg(feature = "yaml")]
        Serializer::Yaml => Ok(yaml::encode(value).into_bytes()),
        #[allow(unreachable_patterns)]
        other => {
            let _ = value;
            Err(format!("{} is not available in this build", other.name()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_and_compression_headers_are_kombus() {
        assert_eq!(
            Serializer::from_content_type("application/json"),
            Some(Serializer::Json)
        );
        assert_eq!(Serializer::from_content_type(CONTENT_TYPE_PICKLE), None);
        assert_eq!(Serializer::from_content_type("application/JSON"), None);
        for c in Compression::ALL {
            assert_eq!(
                Compression::from_header(c.content_type()).map(|c| c.is_available()),
                c.is_available().then_some(true)
            );
        }
        assert_eq!(Compression::from_header("application/x-foo"), None);
    }

    #[cfg(feature = "codecs")]
    #[test]
    fn every_codec_is_available_with_the_codecs_feature() {
        for name in [
            "zlib",
            "gzip",
            "bzip2",
            "bzip",
            "brotli",
            "lzma",
            "xz",
            "zstd",
            "zstandard",
            "application/x-zstd",
        ] {
            assert!(Compression::from_header(name).is_some(), "{name}");
        }
        assert_eq!(
            Serializer::from_content_type(CONTENT_TYPE_MSGPACK),
            Some(Serializer::Msgpack)
        );
        assert_eq!(
            Serializer::from_content_type(CONTENT_TYPE_YAML),
            Some(Serializer::Yaml)
        );
        assert_eq!(
            supported_content_types(),
            "application/json, application/x-msgpack, application/x-yaml"
        );
    }
}
