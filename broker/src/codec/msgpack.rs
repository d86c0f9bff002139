//! kombu's `msgpack` serializer (`msgpack.packb(body, use_bin_type=True)`,
//! `unpackb(body, raw=False)`), to and from the JSON values this runtime keeps.
//!
//! Decoding: `str` must be UTF-8 (as `raw=False` requires); `bin` becomes kombu's JSON bytes
//! envelope; map keys that are integers, booleans or nil become their `json.dumps` text; float,
//! `bin` and container keys, extension types (timestamps included), NaN and infinities are
//! refused, since the JSON a task reads cannot carry them. Nothing is allocated for a length a
//! header claims before the bytes are there.

use rmp::Marker;
use serde_json::{Map, Number, Value};

use super::MAX_DEPTH;
use super::value::{
    Budget, bytes_envelope, envelope_bytes, is_integer_text, key_text, scalar_cost,
};
use crate::message::DecodeError;

fn body_error(reason: impl std::fmt::Display) -> DecodeError {
    DecodeError::Body(format!("not a msgpack body: {reason}"))
}

/// A whole msgpack document: one value and nothing after it.
pub(super) fn decode(body: &[u8], budget: &mut Budget) -> Result<Value, DecodeError> {
    let mut r = Reader { data: body, pos: 0 };
    let value = r.value(1, budget)?;
    if r.pos != body.len() {
        return Err(body_error(format!(
            "{} bytes after the value",
            body.len() - r.pos
        )));
    }
    Ok(value)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| {
                body_error(format!(
                    "truncated: {n} bytes wanted at offset {}, {} left",
                    self.pos,
                    self.data.len() - self.pos
                ))
            })?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn float(f: f64) -> Result<Value, DecodeError> {
        Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| body_error(format!("the float {f} cannot be carried in JSON")))
    }

    fn text(&mut self, len: usize) -> Result<String, DecodeError> {
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| body_error(format!("a str is not UTF-8: {e}")))
    }

    fn value(&mut self, depth: usize, budget: &mut Budget) -> Result<Value, DecodeError> {
        let marker = Marker::from_u8(self.u8()?);
        let scalar = match marker {
            Marker::FixPos(n) => Value::from(n),
            Marker::FixNeg(n) => Value::from(n),
            Marker::Null => Value::Null,
            Marker::True => Value::Bool(true),
            Marker::False => Value::Bool(false),
            Marker::U8 => Value::from(self.u8()?),
            Marker::U16 => Value::from(self.u16()?),
            Marker::U32 => Value::from(self.u32()?),
            Marker::U64 => Value::from(self.u64()?),
            Marker::I8 => Value::from(self.u8()? as i8),
            Marker::I16 => Value::from(self.u16()? as i16),
            Marker::I32 => Value::from(self.u32()? as i32),
            Marker::I64 => Value::from(self.u64()? as i64),
            Marker::F32 => Self::float(f64::from(f32::from_bits(self.u32()?)))?,
            Marker::F64 => Self::float(f64::from_bits(self.u64()?))?,
            Marker::FixStr(n) => Value::String(self.text(n.into())?),
            Marker::Str8 => {
                let n = self.u8()?.into();
                Value::String(self.text(n)?)
            }
            Marker::Str16 => {
                let n = self.u16()?.into();
                Value::String(self.text(n)?)
            }
            Marker::Str32 => {
                let n = self.u32()? as usize;
                Value::String(self.text(n)?)
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let n = match marker {
                    Marker::Bin8 => self.u8()?.into(),
                    Marker::Bin16 => self.u16()?.into(),
                    _ => self.u32()? as usize,
                };
                bytes_envelope(self.take(n)?)
            }
            Marker::FixArray(n) => return self.list(n.into(), depth, budget),
            Marker::Array16 => {
                let n = self.u16()?.into();
                return self.list(n, depth, budget);
            }
            Marker::Array32 => {
                let n = self.u32()? as usize;
                return self.list(n, depth, budget);
            }
            Marker::FixMap(n) => return self.map(n.into(), depth, budget),
            Marker::Map16 => {
                let n = self.u16()?.into();
                return self.map(n, depth, budget);
            }
            Marker::Map32 => {
                let n = self.u32()? as usize;
                return self.map(n, depth, budget);
            }
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => {
                return Err(body_error(format!(
                    "extension types ({marker:?}) are not supported"
                )));
            }
            Marker::Reserved => return Err(body_error("the reserved byte 0xc1")),
        };
        budget.charge(scalar_cost(&scalar))?;
        Ok(scalar)
    }

    fn enter(depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(body_error(format!("nested more than {MAX_DEPTH} deep")));
        }
        Ok(())
    }

    fn list(&mut self, n: usize, depth: usize, budget: &mut Budget) -> Result<Value, DecodeError> {
        Self::enter(depth)?;
        budget.charge(2)?;
        // No capacity from the header: each element takes at least one byte of the body.
        let mut items = Vec::with_capacity(n.min(self.data.len() - self.pos));
        for _ in 0..n {
            budget.charge(2)?;
            items.push(self.value(depth + 1, budget)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize, budget: &mut Budget) -> Result<Value, DecodeError> {
        Self::enter(depth)?;
        budget.charge(2)?;
        let mut m = Map::new();
        for _ in 0..n {
            budget.charge(4)?;
            let key = self.value(depth + 1, budget)?;
            let key = key_text(key).map_err(body_error)?;
            let value = self.value(depth + 1, budget)?;
            m.insert(key, value);
        }
        Ok(Value::Object(m))
    }
}

/// `value` as kombu's msgpack serializer writes it: kombu's bytes envelopes as `bin`. An
/// integer beyond 64 bits is an error (msgpack has none).
pub(super) fn encode(value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    write(&mut out, value)?;
    Ok(out)
}

fn len32(n: usize) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("{n} elements are more than msgpack holds"))
}

fn write(out: &mut Vec<u8>, value: &Value) -> Result<(), String> {
    let e = |e: rmp::encode::ValueWriteError| e.to_string();
    match value {
        Value::Null => rmp::encode::write_nil(out).map_err(|e| e.to_string())?,
        Value::Bool(b) => rmp::encode::write_bool(out, *b).map_err(|e| e.to_string())?,
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                rmp::encode::write_uint(out, u).map_err(e)?;
            } else if let Some(i) = n.as_i64() {
                rmp::encode::write_sint(out, i).map_err(e)?;
            } else if is_integer_text(&n.to_string()) {
                return Err(format!("the integer {n} does not fit in 64 bits"));
            } else {
                let f = n
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| format!("the number {n} is not a float"))?;
                rmp::encode::write_f64(out, f).map_err(e)?;
            }
        }
        Value::String(s) => {
            rmp::encode::write_str_len(out, len32(s.len())?).map_err(e)?;
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            rmp::encode::write_array_len(out, len32(items.len())?).map_err(e)?;
            for item in items {
                write(out, item)?;
            }
        }
        Value::Object(m) => {
            if let Some(bytes) = envelope_bytes(m) {
                rmp::encode::write_bin_len(out, len32(bytes.len())?).map_err(e)?;
                out.extend_from_slice(&bytes);
                return Ok(());
            }
            rmp::encode::write_map_len(out, len32(m.len())?).map_err(e)?;
            for (k, v) in m {
                rmp::encode::write_str_len(out, len32(k.len())?).map_err(e)?;
                out.extend_from_slice(k.as_bytes());
                write(out, v)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Serializer;
    use serde_json::json;

    fn decode_all(body: &[u8]) -> Result<Value, DecodeError> {
        decode(body, &mut Budget::new(1 << 20, Serializer::Msgpack))
    }

    #[test]
    fn every_msgpack_type_becomes_json() {
        // [1, -1, 255, -129, 4294967296, -9223372036854775808, 18446744073709551615,
        //  0.5 (f32), 0.1 (f64), nil, true, false, "ü", b"abc", b"\xff\x00", {1: "a", true: nil}]
        let mut body = vec![0xdc, 0x00, 0x10, 0x01, 0xff, 0xcc, 0xff, 0xd1, 0xff, 0x7f];
        body.extend([0xcf, 0, 0, 0, 1, 0, 0, 0, 0]);
        body.extend([0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        body.extend([0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        body.extend([0xca, 0x3f, 0x00, 0x00, 0x00]);
        body.extend([0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a]);
        body.extend([0xc0, 0xc3, 0xc2, 0xa2, 0xc3, 0xbc]);
        body.extend([0xc4, 0x03, b'a', b'b', b'c', 0xc4, 0x02, 0xff, 0x00]);
        body.extend([0x82, 0x01, 0xa1, b'a', 0xc3, 0xc0]);
        let v = decode_all(&body).expect("decodes");
        assert_eq!(
            v.to_string(),
            json!([1, -1, 255, -129, 4294967296u64, i64::MIN, u64::MAX, 0.5, 0.1, null,
                true, false, "ü", {"__type__": "bytes", "__value__": "abc"},
                {"__type__": "base64", "__value__": "/wA="}, {"1": "a", "true": null}])
            .to_string()
        );
        let again = encode(&v).expect("encodes");
        let back = decode_all(&again).expect("decodes again");
        assert_eq!(back.to_string(), v.to_string());
    }

    #[test]
    fn what_json_cannot_carry_is_refused() {
        let cases: Vec<(&[u8], &str)> = vec![
            (&[0xd4, 0x01, 0x00], "extension types"),
            (&[0xd6, 0xff, 0, 0, 0, 0], "extension types"),
            (&[0xc1], "reserved"),
            (&[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0], "cannot be carried"),
            (&[0xa2, 0xff, 0xfe], "not UTF-8"),
            (&[0x81, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xc0], "float"),
            (&[0x81, 0xc4, 0x01, 0x61, 0xc0], "bytes"),
            (&[0x81, 0x90, 0xc0], "list"),
            (&[0xdd, 0xff, 0xff, 0xff, 0xff], "truncated"),
            (&[0xdb, 0xff, 0xff, 0xff, 0xff, 0x61], "truncated"),
            (&[0x90, 0x90], "after the value"),
            (&[], "truncated"),
        ];
        for (body, want) in cases {
            let err = decode_all(body).expect_err("refused").to_string();
            assert!(err.contains(want), "{body:x?}: {err}");
        }
        let mut deep = vec![0x91u8; MAX_DEPTH + 1];
        deep.push(0xc0);
        let err = decode_all(&deep).expect_err("too deep").to_string();
        assert!(err.contains("nested more than 128 deep"), "{err}");
        deep.drain(..2);
        decode_all(&deep).expect("128 deep is fine");
    }

    #[test]
    fn the_budget_bounds_the_decoded_size() {
        // 60,000 nils: 60 KB of msgpack, about 360 KB of JSON.
        let mut body = vec![0xdc, 0xea, 0x60];
        body.extend(std::iter::repeat_n(0xc0, 60_000));
        let err = decode(&body, &mut Budget::new(100_000, Serializer::Msgpack))
            .expect_err("too large")
            .to_string();
        assert_eq!(
            err,
            "the body decoded from application/x-msgpack is more than the limit of 100000 bytes"
        );
    }

    #[test]
    fn integers_beyond_64_bits_cannot_be_encoded() {
        let v: Value = serde_json::from_str("[123456789012345678901234567890]").expect("json");
        assert!(encode(&v).expect_err("too big").contains("64 bits"));
    }
}
