//! Python-compatible text for JSON values.
//!
//! The original report-app was written in Python, and every output format it produced writes values
//! with Python's `str()`/`repr()` or with `json.dumps`. This module reproduces those conversions for
//! [`serde_json::Value`]s:
//!
//! - [`float_repr`]: `repr(float)` (shortest round-trip digits, `2.0`, `1e+16`, `1e-05`).
//! - [`py_repr`] / [`py_str`]: `repr()` / `str()` of the Python object that `json.loads` would build
//!   (`None`, `True`, `{'k': [1, 2.0]}`, strings quoted and escaped like Python does).
//! - [`to_python_json`]: `json.dumps(value)` with the default separators `", "`/`": "` and
//!   `ensure_ascii=True`, which is what Flask-RESTful wrote for every JSON body.
//!
//! It also holds the crate's internal helpers for Python semantics: truthiness, pydash-style
//! dotted paths (`a.b`, `auth[0].username`) and hashing with Python's `==`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::io;

use serde::Serialize;
use serde_json::{Map, Number, Value};

/// Python's `repr()` of a float (identical to `str()` since Python 3.2).
///
/// Uses the shortest digit string that round-trips, in fixed notation when the decimal exponent
/// is in `-4 < exp <= 16` (always with a fractional part, e.g. `2.0`, `0.0001`,
/// `1000000000000000.0`) and in scientific notation otherwise, with a sign and at least two
/// exponent digits (`1e+16`, `1.5e-05`). Non-finite values give `inf`, `-inf` and `nan`, which a
/// JSON value never holds.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // Rust's `{:e}` without a precision gives the shortest round-trip digits, like Python's repr.
    let scientific = format!("{:e}", x.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` output always has an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` exponent is an integer");
    let mut digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if let Some(even) = half_even_alternative(x.abs(), &digits, exponent) {
        digits = even;
    }
    // Position of the decimal point relative to the start of `digits`.
    let point = exponent + 1;

    let mut out = String::with_capacity(digits.len() + 8);
    if x < 0.0 {
        out.push('-');
    }
    if point <= -4 || point > 16 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exponent.unsigned_abs());
    } else if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        let point = point as usize;
        if point >= digits.len() {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', point - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
    out
}

/// Handles the one case where Rust's and Python's shortest digits differ.
///
/// Both pick the shortest digit string that reads back as `x`, and among those the one nearest to
/// `x`. When `x` lies exactly halfway between two such strings (e.g. `1059438285926254.25`, which
/// is exactly representable, between `...254.2` and `...254.3`), Python's dtoa rounds half to even
/// while Rust may round up. Returns the even candidate when it differs from `digits` and still
/// reads back as `x`.
fn half_even_alternative(x: f64, digits: &str, exponent: i32) -> Option<String> {
    let (exact, exact_exponent) = exact_decimal(x)?;
    if exact.len() != digits.len() + 1 || !exact.ends_with('5') || exact_exponent != exponent {
        return None;
    }
    let mut even = exact.as_bytes()[..digits.len()].to_vec();
    let last = *even.last()?;
    if (last - b'0') % 2 == 1 {
        // Round the odd prefix up, carrying through nines; a carry out of the first digit would
        // change the length, which cannot happen for a shortest representation.
        let mut index = even.len();
        loop {
            index = index.checked_sub(1)?;
            if even[index] == b'9' {
                even[index] = b'0';
            } else {
                even[index] += 1;
                break;
            }
        }
    }
    let even = String::from_utf8(even).ok()?;
    let reads_back = format!("{even}e{}", exponent + 1 - digits.len() as i32)
        .parse::<f64>()
        .is_ok_and(|parsed| parsed == x);
    (even != digits && reads_back).then_some(even)
}

/// The exact decimal value of a positive finite `x` as significant digits (no trailing zeros) and
/// the decimal exponent of the first digit, when it fits in 128-bit arithmetic. Values that do
/// not fit have far more than 17 significant digits, so they are never halfway cases.
fn exact_decimal(x: f64) -> Option<(String, i32)> {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mut mantissa, mut exponent2) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    if mantissa == 0 {
        return None;
    }
    let zeros = mantissa.trailing_zeros();
    mantissa >>= zeros;
    exponent2 += zeros as i32;
    let mantissa = u128::from(mantissa);
    // `x == value / 10^fraction_digits` exactly.
    let (value, fraction_digits) = if exponent2 >= 0 {
        let shift = exponent2.unsigned_abs();
        if shift >= mantissa.leading_zeros() {
            return None;
        }
        (mantissa << shift, 0)
    } else {
        let k = exponent2.unsigned_abs();
        (mantissa.checked_mul(5u128.checked_pow(k)?)?, k as i32)
    };
    let text = value.to_string();
    let first_exponent = text.len() as i32 - 1 - fraction_digits;
    Some((text.trim_end_matches('0').to_owned(), first_exponent))
}

/// Python's `str()` of a JSON number: integers in decimal, floats with [`float_repr`].
pub(crate) fn number_text(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        float_repr(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Python's `str()` of the value `json.loads` would build: strings are returned as they are,
/// everything else as [`py_repr`] (`None`, `True`, `2`, `1.5`, `{'name': 'dc1'}`).
pub fn py_str(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(py_repr(other)),
    }
}

/// Python's `repr()` of the value `json.loads` would build.
///
/// `null`/`true`/`false` become `None`/`True`/`False`, integers are written in decimal and floats
/// with [`float_repr`], lists as `[a, b]`, objects as `{'key': value}` in key order, and strings
/// as Python string literals: single-quoted unless the string contains `'` and no `"`;
/// backslash, the chosen quote, `\n`, `\r` and `\t` escaped; other non-printable characters as
/// `\xhh`, `\uhhhh` or `\Uhhhhhhhh`. Printable non-ASCII text is kept as it is.
pub fn py_repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, value);
    out
}

fn write_repr(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => out.push_str(&number_text(n)),
        Value::String(s) => write_string_repr(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string_repr(out, key);
                out.push_str(": ");
                write_repr(out, item);
            }
            out.push('}');
        }
    }
}

fn write_string_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c => {
                let n = u32::from(c);
                let _ = if n < 0x100 {
                    write!(out, "\\x{n:02x}")
                } else if n < 0x1_0000 {
                    write!(out, "\\u{n:04x}")
                } else {
                    write!(out, "\\U{n:08x}")
                };
            }
        }
    }
    out.push(quote);
}

/// Code points that Python's `str.isprintable()` rejects, apart from unassigned ones: controls
/// (Cc), format characters (Cf), separators other than the ASCII space (Zs, Zl, Zp) and private
/// use (Co). Noncharacters are checked separately in [`is_printable`].
const NON_PRINTABLE: &[(u32, u32)] = &[
    (0x0000, 0x001f),
    (0x007f, 0x00a0),
    (0x00ad, 0x00ad),
    (0x0600, 0x0605),
    (0x061c, 0x061c),
    (0x06dd, 0x06dd),
    (0x070f, 0x070f),
    (0x0890, 0x0891),
    (0x08e2, 0x08e2),
    (0x1680, 0x1680),
    (0x180e, 0x180e),
    (0x2000, 0x200f),
    (0x2028, 0x202f),
    (0x205f, 0x206f),
    (0x3000, 0x3000),
    (0xe000, 0xf8ff),
    (0xfeff, 0xfeff),
    (0xfff9, 0xfffb),
    (0x110bd, 0x110bd),
    (0x110cd, 0x110cd),
    (0x13430, 0x13438),
    (0x1bca0, 0x1bca3),
    (0x1d173, 0x1d17a),
    (0xe0001, 0xe0001),
    (0xe0020, 0xe007f),
    (0xf0000, 0x10ffff),
];

/// Approximates `str.isprintable()` for one character. Unassigned code points (Unicode category
/// Cn) are treated as printable, except the noncharacters; a full Unicode table is not worth a
/// dependency for report cells.
fn is_printable(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_control();
    }
    let n = u32::from(c);
    let noncharacter = (0xfdd0..=0xfdef).contains(&n) || n & 0xfffe == 0xfffe;
    !noncharacter
        && !NON_PRINTABLE
            .iter()
            .any(|&(start, end)| (start..=end).contains(&n))
}

/// Serialises `value` like Python's `json.dumps(value)` with default options, as Flask-RESTful
/// wrote every JSON body: separators `", "` and `": "`, keys in insertion order, floats with
/// [`float_repr`] (`1e+16`), and `ensure_ascii=True` (every non-ASCII character and DEL as a
/// lowercase `\uXXXX` escape, astral characters as surrogate pairs). No trailing newline.
pub fn to_python_json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut buffer = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut buffer, PythonFormatter);
    value
        .serialize(&mut serializer)
        .expect("serialising a JSON value into memory cannot fail");
    String::from_utf8(buffer).expect("the Python-style formatter writes ASCII only")
}

/// A [`serde_json::ser::Formatter`] that writes what Python's `json.dumps` writes.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(float_repr(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json has already escaped quotes, backslashes and C0 controls; everything else
        // that Python's `ensure_ascii` escapes is non-ASCII or DEL.
        let mut plain_start = 0;
        for (index, c) in fragment.char_indices() {
            if c.is_ascii() && c != '\x7f' {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[plain_start..index])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            plain_start = index + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[plain_start..])
    }
}

/// Python truthiness of the value `json.loads` would build: `None`, `False`, zero, `""`, `[]` and
/// `{}` are false.
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// One step of a dotted path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step<'p> {
    Key(&'p str),
    Index(usize),
}

/// Parses a pydash-style path: `a.b.c`, `auth[0].username`. A segment that is not a well-formed
/// `name[index]...` is used as a plain key, so `datacenters,provider` is one key.
fn parse_path(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for segment in path.split('.') {
        match parse_indexed(segment) {
            Some((name, indexes)) => {
                if !name.is_empty() {
                    steps.push(Step::Key(name));
                }
                steps.extend(indexes.into_iter().map(Step::Index));
            }
            None => steps.push(Step::Key(segment)),
        }
    }
    steps
}

/// Splits `name[1][2]` into `("name", [1, 2])`; `None` when the segment has no well-formed index.
fn parse_indexed(segment: &str) -> Option<(&str, Vec<usize>)> {
    let open = segment.find('[')?;
    let (name, mut rest) = segment.split_at(open);
    let mut indexes = Vec::new();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        indexes.push(inner[..close].parse().ok()?);
        rest = &inner[close + 1..];
    }
    Some((name, indexes))
}

fn walk<'a>(mut current: &'a Value, steps: &[Step<'_>]) -> Option<&'a Value> {
    for step in steps {
        current = match (step, current) {
            (Step::Key(key), Value::Object(map)) => map.get(*key)?,
            (Step::Key(key), Value::Array(items)) => items.get(key.parse::<usize>().ok()?)?,
            (Step::Index(index), Value::Array(items)) => items.get(*index)?,
            _ => return None,
        };
    }
    Some(current)
}

/// The value at a dotted `path` inside `value`, like pydash's `get(value, path)`; `None` when any
/// step is missing. List elements are reached with `[n]` or a numeric segment.
pub(crate) fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    walk(value, &parse_path(path))
}

/// Like [`get_path`], starting from a row.
pub(crate) fn get_in_row<'a>(row: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let steps = parse_path(path);
    match steps.split_first() {
        Some((Step::Key(first), rest)) => walk(row.get(*first)?, rest),
        _ => None,
    }
}

/// A JSON value as a hashable key with Python's `==`: `1`, `1.0` and `true` are equal, `"1"` is
/// not; objects compare without regard to key order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// `None`.
    Null,
    /// Any number or boolean with an integral value.
    Int(i128),
    /// The bits of a finite float with a fractional part.
    Float(u64),
    /// A string.
    Str(String),
    /// A list (unhashable in Python).
    List(Vec<Key>),
    /// An object, its entries sorted by key (unhashable in Python).
    Dict(Vec<(String, Key)>),
}

impl Key {
    /// The key of `value`.
    pub(crate) fn of(value: &Value) -> Key {
        match value {
            Value::Null => Key::Null,
            Value::Bool(b) => Key::Int(i128::from(*b)),
            Value::Number(n) => number_key(n),
            Value::String(s) => Key::Str(s.clone()),
            Value::Array(items) => Key::List(items.iter().map(Key::of).collect()),
            Value::Object(map) => {
                let mut entries: Vec<_> =
                    map.iter().map(|(k, v)| (k.clone(), Key::of(v))).collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Key::Dict(entries)
            }
        }
    }

    /// A total order for sorting chart labels: numbers by value, then strings by code point, then
    /// anything else. It extends Python's `<`, which refuses to compare numbers with strings,
    /// the way pandas sorts mixed groups (numbers first).
    pub(crate) fn sort_cmp(&self, other: &Key) -> Ordering {
        fn rank(key: &Key) -> u8 {
            match key {
                Key::Null => 0,
                Key::Int(_) | Key::Float(_) => 1,
                Key::Str(_) => 2,
                Key::List(_) | Key::Dict(_) => 3,
            }
        }
        match (self, other) {
            (Key::Int(a), Key::Int(b)) => a.cmp(b),
            (Key::Float(a), Key::Float(b)) => f64::from_bits(*a).total_cmp(&f64::from_bits(*b)),
            // A `Float` is never integral, so converting the integer (monotonically) to f64
            // cannot make the two compare equal or flip their order.
            (Key::Int(a), Key::Float(b)) => (*a as f64).total_cmp(&f64::from_bits(*b)),
            (Key::Float(a), Key::Int(b)) => f64::from_bits(*a).total_cmp(&(*b as f64)),
            (Key::Str(a), Key::Str(b)) => a.cmp(b),
            _ => rank(self).cmp(&rank(other)),
        }
    }
}

fn number_key(n: &Number) -> Key {
    if let Some(i) = n.as_i64() {
        return Key::Int(i128::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Key::Int(i128::from(u));
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    // 2^127: every integral float below it converts to i128 exactly.
    if f.fract() == 0.0 && f.abs() < 1.7014118346046923e38 {
        Key::Int(f as i128)
    } else {
        Key::Float(f.to_bits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (2.0, "2.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (2222.0, "2222.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.30000000000000004, "0.30000000000000004"),
            (1234.5678, "1234.5678"),
            (9007199254740993.0, "9007199254740992.0"),
            // Exactly halfway between two shortest candidates: Python rounds half to even.
            (4237753143705017.0 / 4.0, "1059438285926254.2"),
            (4237753143705019.0 / 4.0, "1059438285926254.8"),
        ];
        for (value, expected) in cases {
            assert_eq!(float_repr(value), expected, "repr({value:?})");
        }
        assert_eq!(float_repr(f64::INFINITY), "inf");
        assert_eq!(float_repr(f64::NAN), "nan");
    }

    #[test]
    fn repr_of_nested_values() {
        let value =
            json!({"k": null, "l": [1, 2.0, true, false], "s": "it's", "d": "say \"hi\"", "e": {}});
        assert_eq!(
            py_repr(&value),
            r#"{'k': None, 'l': [1, 2.0, True, False], 's': "it's", 'd': 'say "hi"', 'e': {}}"#
        );
        assert_eq!(py_repr(&json!([])), "[]");
    }

    #[test]
    fn string_repr_escapes_like_python() {
        let cases = [
            ("plain", "'plain'"),
            ("a\nb\r\tc", r"'a\nb\r\tc'"),
            ("back\\slash", r"'back\\slash'"),
            ("both ' and \"", r#"'both \' and "'"#),
            ("only '", r#""only '""#),
            ("\u{0}\u{7f}\u{a0}", r"'\x00\x7f\xa0'"),
            ("é ü 中 😀", "'é ü 中 😀'"),
            ("\u{200b}\u{2028}\u{feff}", r"'\u200b\u2028\ufeff'"),
            ("\u{e000}\u{10ffff}", r"'\ue000\U0010ffff'"),
        ];
        for (input, expected) in cases {
            assert_eq!(py_repr(&json!(input)), expected, "repr({input:?})");
        }
    }

    #[test]
    fn str_keeps_strings_raw() {
        assert_eq!(py_str(&json!("a\nb")), "a\nb");
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!(2222)), "2222");
        assert_eq!(py_str(&json!({"name": "dc1"})), "{'name': 'dc1'}");
    }

    #[test]
    fn python_json_spacing_and_ascii() {
        let value = json!({"a": [1, 2.0, 1e16], "b": {"é": "x\u{7f}😀\n"}, "c": null, "d": []});
        assert_eq!(
            to_python_json(&value),
            r#"{"a": [1, 2.0, 1e+16], "b": {"\u00e9": "x\u007f\ud83d\ude00\n"}, "c": null, "d": []}"#
        );
    }

    #[test]
    fn truthiness() {
        for falsy in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(!truthy(&falsy), "{falsy}");
        }
        for true_value in [
            json!(true),
            json!(-1),
            json!(0.5),
            json!(" "),
            json!([0]),
            json!({"a": null}),
        ] {
            assert!(truthy(&true_value), "{true_value}");
        }
    }

    #[test]
    fn dotted_paths() {
        let row = json!({"auth": [{"username": "root"}], "a": {"b": {"c": 1}}, "x,y": 2});
        let row = row.as_object().expect("valid");
        assert_eq!(get_in_row(row, "auth[0].username"), Some(&json!("root")));
        assert_eq!(get_in_row(row, "auth.0.username"), Some(&json!("root")));
        assert_eq!(get_in_row(row, "auth[1].username"), None);
        assert_eq!(get_in_row(row, "a.b.c"), Some(&json!(1)));
        assert_eq!(get_in_row(row, "a.b.c.d"), None);
        assert_eq!(get_in_row(row, "x,y"), Some(&json!(2)));
        assert_eq!(get_path(&json!({"a": [5]}), "a"), Some(&json!([5])));
    }

    #[test]
    fn keys_follow_python_equality() {
        assert_eq!(Key::of(&json!(10)), Key::of(&json!(10.0)));
        assert_eq!(Key::of(&json!(true)), Key::of(&json!(1)));
        assert_ne!(Key::of(&json!(10)), Key::of(&json!("10")));
        assert_ne!(Key::of(&json!(0.5)), Key::of(&json!(0)));
        assert_eq!(
            Key::of(&json!({"a": 1, "b": 2})),
            Key::of(&json!({"b": 2.0, "a": 1}))
        );
        assert_eq!(Key::of(&json!(-0.0)), Key::of(&json!(0)));
        let order = |a: Value, b: Value| Key::of(&a).sort_cmp(&Key::of(&b));
        assert_eq!(order(json!(1), json!(1.5)), Ordering::Less);
        assert_eq!(order(json!(2.5), json!(2)), Ordering::Greater);
        assert_eq!(order(json!(100), json!("1")), Ordering::Less);
        assert_eq!(order(json!("b"), json!("a")), Ordering::Greater);
    }
}
