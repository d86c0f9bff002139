//! kombu's compressions: bodies inflated to at most a limit (a decompression bomb is refused
//! when it passes the limit, never allocated), and compressed again for a retry.

use std::io::{Read, Write};

use ruzstd::decoding::StreamingDecoder;
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};

use super::Compression;
use crate::message::DecodeError;

/// Smallest window a zstd frame may always ask for (a frame's window is allocated when it
/// starts): zstd's one-shot compression of a body up to this size never asks for more.
const ZSTD_MIN_WINDOW: u64 = 8 << 20;
/// Largest xz dictionary accepted: that of xz's strongest preset (9, 64 MiB). Python's
/// `lzma.compress` (preset 6) uses 8 MiB whatever the size of its input. Memory grows with the
/// decoded bytes, not with the dictionary, so the body limit still bounds what is used.
const XZ_MAX_DICT: u32 = 64 << 20;
/// Brotli quality of compressed retries: Python's default (11) takes seconds on megabytes.
const BROTLI_QUALITY: u32 = 5;
/// Largest xz dictionary of compressed retries (the encoder needs several times it).
const XZ_ENCODE_DICT_MAX: u32 = 1 << 20;
/// Output is grown by at most this much per step of the zlib decoder.
const ZLIB_STEP: usize = 64 * 1024;

fn too_large(c: Compression, limit: usize) -> DecodeError {
    DecodeError::TooLarge {
        what: format!("the body decompressed ({})", c.content_type()),
        limit,
    }
}

fn invalid(c: Compression, reason: impl ToString) -> DecodeError {
    DecodeError::Decompress {
        compression: c.content_type(),
        reason: reason.to_string(),
    }
}

/// `body` decompressed; more than `limit` bytes is [`DecodeError::TooLarge`], a corrupt or
/// truncated body [`DecodeError::Decompress`].
pub(super) fn decompress(
    c: Compression,
    body: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecodeError> {
    match c {
        Compression::Zlib if body.starts_with(&[0x1f, 0x8b]) => {
            bounded(c, flate2::read::MultiGzDecoder::new(body), limit)
        }
        Compression::Zlib => zlib(body, limit),
        Compression::Bzip2 => bounded(c, bzip2::read::MultiBzDecoder::new(body), limit),
        Compression::Brotli => bounded(c, brotli::Decompressor::new(body, 4096), limit),
        Compression::Lzma => {
            let mem_kb = lzma_rust2::lzma2_get_memory_usage(XZ_MAX_DICT);
            bounded(
                c,
                lzma_rust2::XzReader::new_mem_limit(body, true, mem_kb),
                limit,
            )
        }
        Compression::Zstd => zstd(body, limit),
    }
}

/// Everything `reader` gives, at most `limit` bytes.
fn bounded(c: Compression, reader: impl Read, limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| invalid(c, e))?;
    if out.len() > limit {
        return Err(too_large(c, limit));
    }
    Ok(out)
}

/// A zlib stream (what kombu's `zlib.compress` writes), which must end: flate2's reader takes
/// a truncated stream for a short one.
fn zlib(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let c = Compression::Zlib;
    let mut d = flate2::Decompress::new(true);
    let mut out: Vec<u8> = Vec::new();
    loop {
        let room = (limit + 1 - out.len()).min(ZLIB_STEP);
        out.reserve_exact(room);
        let consumed = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
        let input = body.get(consumed..).unwrap_or_default();
        let before = (d.total_in(), d.total_out());
        let status = d
            .decompress_vec(input, &mut out, flate2::FlushDecompress::None)
            .map_err(|e| invalid(c, e))?;
        if out.len() > limit {
            return Err(too_large(c, limit));
        }
        match status {
            flate2::Status::StreamEnd => return Ok(out),
            _ if (d.total_in(), d.total_out()) == before && out.len() < out.capacity() => {
                return Err(invalid(c, "the stream is truncated"));
            }
            _ => {}
        }
    }
}

/// One or more zstd frames (skippable frames are skipped, as Python's `zstd.decompress` does).
fn zstd(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let c = Compression::Zstd;
    let max_window = (limit as u64).max(ZSTD_MIN_WINDOW);
    let mut input = body;
    let mut out = Vec::new();
    if input.is_empty() {
        return Err(invalid(c, "the body is empty"));
    }
    while !input.is_empty() {
        let decoder = match StreamingDecoder::new_with_max_window_size(&mut input, max_window) {
            Ok(d) => d,
            Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                length,
                ..
            })) => {
                input = input
                    .get(length as usize..)
                    .ok_or_else(|| invalid(c, "a skippable frame is truncated"))?;
                continue;
            }
            Err(FrameDecoderError::WindowSizeTooBig { requested, .. }) => {
                return Err(DecodeError::TooLarge {
                    what: format!("the zstd window asked for ({requested} bytes)"),
                    limit: max_window as usize,
                });
            }
            Err(e) => return Err(invalid(c, e)),
        };
        let room = limit + 1 - out.len();
        let mut decoder = decoder.take(room as u64);
        decoder.read_to_end(&mut out).map_err(|e| invalid(c, e))?;
        if out.len() > limit {
            return Err(too_large(c, limit));
        }
        if !decoder.into_inner().decoder.is_finished() {
            return Err(invalid(c, "the frame is truncated"));
        }
    }
    Ok(out)
}

/// `body` compressed as kombu's `compress` would, for a retry.
pub(super) fn compress(c: Compression, body: &[u8]) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("{}: {e}", c.content_type());
    match c {
        Compression::Zlib => {
            let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(body).map_err(io)?;
            w.finish().map_err(io)
        }
        Compression::Bzip2 => {
            let mut w = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
            w.write_all(body).map_err(io)?;
            w.finish().map_err(io)
        }
        Compression::Brotli => {
            let mut w = brotli::CompressorWriter::new(Vec::new(), 4096, BROTLI_QUALITY, 22);
            w.write_all(body).map_err(io)?;
            w.flush().map_err(io)?;
            Ok(w.into_inner())
        }
        Compression::Lzma => {
            let mut options = lzma_rust2::XzOptions::with_preset(6);
            options.lzma_options.dict_size = u32::try_from(body.len())
                .unwrap_or(u32::MAX)
                .checked_next_power_of_two()
                .unwrap_or(XZ_ENCODE_DICT_MAX)
                .clamp(1 << 12, XZ_ENCODE_DICT_MAX);
            let mut w = lzma_rust2::XzWriter::new(Vec::new(), options).map_err(io)?;
            w.write_all(body).map_err(io)?;
            w.finish().map_err(io)
        }
        Compression::Zstd => Ok(ruzstd::encoding::compress_to_vec(
            body,
            ruzstd::encoding::CompressionLevel::Fastest,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut s = r#"[["ünï", 1, 2.5, null], {"k": [true]}, {"callbacks": null}]"#
            .as_bytes()
            .to_vec();
        s.extend(std::iter::repeat_n(b' ', 3000));
        s
    }

    #[test]
    fn every_compression_round_trips() {
        for c in Compression::ALL {
            let body = sample();
            let packed = compress(c, &body).expect("compresses");
            assert!(packed.len() < body.len(), "{c:?} compresses");
            assert_eq!(decompress(c, &packed, body.len()).expect("inflates"), body);
            let err = decompress(c, &packed, body.len() - 1).expect_err("over the limit");
            assert!(matches!(err, DecodeError::TooLarge { .. }), "{c:?}: {err}");
        }
    }

    #[test]
    fn truncated_and_corrupt_bodies_are_invalid() {
        for c in Compression::ALL {
            let packed = compress(c, &sample()).expect("compresses");
            for cut in [packed.len() - 1, packed.len() / 2, 3] {
                let err = decompress(c, &packed[..cut], 1 << 20).expect_err("truncated");
                assert!(
                    matches!(err, DecodeError::Decompress { .. }),
                    "{c:?} cut at {cut}: {err}"
                );
            }
            let err = decompress(c, b"definitely not compressed", 1 << 20).expect_err("garbage");
            assert!(
                matches!(err, DecodeError::Decompress { .. }),
                "{c:?}: {err}"
            );
        }
    }

    /// A few kilobytes that inflate to far more than the limit: refused at the limit, with the
    /// memory of the limit, not of the bomb.
    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 32 << 20];
        for c in Compression::ALL {
            let bomb = compress(c, &zeros).expect("compresses");
            assert!(bomb.len() < 2 << 20, "{c:?}: {} bytes", bomb.len());
            let err = decompress(c, &bomb, 64 * 1024).expect_err("a bomb");
            assert_eq!(
                err.to_string(),
                format!(
                    "the body decompressed ({}) is more than the limit of 65536 bytes",
                    c.content_type()
                )
            );
        }
    }

    #[test]
    fn gzip_streams_are_read_under_the_zlib_name() {
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        w.write_all(b"[[], {}, {}]").expect("write");
        let gz = w.finish().expect("gzip");
        assert_eq!(
            decompress(Compression::Zlib, &gz, 100).expect("inflates"),
            b"[[], {}, {}]"
        );
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_too_large() {
        // Magic, descriptor (no single segment, no checksum), window descriptor 2^40 bytes.
        let header = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf0];
        let err = decompress(Compression::Zstd, &header, 1 << 20).expect_err("refused");
        assert!(matches!(err, DecodeError::TooLarge { .. }), "{err}");
    }
}
