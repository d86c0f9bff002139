//! kombu's `yaml` serializer (`yaml.safe_dump` / `yaml.safe_load`, PyYAML), to and from the
//! JSON values this runtime keeps.
//!
//! PyYAML speaks YAML 1.1: a plain `1e3` or `0o17` is a string there (and a number in YAML
//! 1.2), `yes`/`off` are booleans, `0x1F`, `0b101`, `017` (octal), `1_000` and `1:30`
//! (sexagesimal) are integers. So the document is read with a YAML syntax parser
//! (saphyr-parser) and its plain scalars resolved here as PyYAML's `SafeLoader` resolves them:
//! a body reads as the values `safe_load` gives a Python worker. Then, as the JSON Celery would
//! have sent for those values: `!!binary` as kombu's bytes envelope, timestamps as kombu's
//! `datetime`/`date` envelopes (`isoformat()`), `!!set` as the list of its members, integers of
//! any size with every digit. Refused as `safe_load` refuses them: tags of its own
//! (`!!python/...`, `!foo`); refused because JSON cannot carry them: `.inf`, `.nan`, float or
//! container map keys, merge keys (`<<`), `!!omap` and `!!pairs`, more than one document.
//! Anchors and aliases are followed, each alias charged the size of what it repeats.

use std::collections::HashMap;
use std::fmt::Write as _;

use base64::Engine;
use saphyr_parser::{Event, Parser, ScalarStyle, StrInput, Tag};
use serde_json::{Map, Number, Value};

use super::MAX_DEPTH;
use super::value::{
    Budget, bytes_envelope, envelope_bytes, envelope_parts, is_integer_text, key_text, scalar_cost,
    time_envelope,
};
use crate::message::DecodeError;

fn body_error(reason: impl std::fmt::Display) -> DecodeError {
    DecodeError::Body(format!("not a YAML body: {reason}"))
}

/// A whole yaml stream of one document (none is null, as `safe_load` reads it).
pub(super) fn decode(body: &[u8], budget: &mut Budget) -> Result<Value, DecodeError> {
    let text =
        std::str::from_utf8(body).map_err(|e| DecodeError::Body(format!("not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut loader = Loader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        budget,
    };
    loader.stream()
}

struct Loader<'input, 'b> {
    parser: Parser<'input, StrInput<'input>>,
    /// Anchored nodes: their value and what they were charged.
    anchors: HashMap<usize, (Value, usize)>,
    budget: &'b mut Budget,
}

impl<'input> Loader<'input, '_> {
    fn next(&mut self) -> Result<Event<'input>, DecodeError> {
        match self.parser.next_event() {
            Some(Ok((event, _))) => Ok(event),
            Some(Err(e)) => Err(body_error(e)),
            None => Err(body_error("the stream ended early")),
        }
    }

    fn stream(&mut self) -> Result<Value, DecodeError> {
        if !matches!(self.next()?, Event::StreamStart) {
            return Err(body_error("no stream start"));
        }
        let value = match self.next()? {
            Event::StreamEnd => return Ok(Value::Null),
            Event::DocumentStart(_) => {
                let first = self.next()?;
                self.node(first, 1)?.0
            }
            other => return Err(body_error(format!("unexpected {other:?}"))),
        };
        if !matches!(self.next()?, Event::DocumentEnd) {
            return Err(body_error("the document does not end"));
        }
        match self.next()? {
            Event::StreamEnd => Ok(value),
            _ => Err(body_error("expected a single document in the stream")),
        }
    }

    /// One node and what it was charged.
    fn node(&mut self, event: Event<'input>, depth: usize) -> Result<(Value, usize), DecodeError> {
        let start = self.budget.used();
        let (value, anchor) = match event {
            Event::Alias(id) => {
                let (value, cost) = self
                    .anchors
                    .get(&id)
                    .ok_or_else(|| body_error("an alias to a node not yet complete"))?;
                let cost = *cost;
                let value = value.clone();
                self.budget.charge(cost)?;
                return Ok((value, cost));
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(&text, style, tag.as_deref())?;
                self.budget.charge(scalar_cost(&value))?;
                (value, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                match tag.as_deref() {
                    None => {}
                    Some(t) if is_core(t, "seq") || is_non_specific(t) => {}
                    Some(t) => return Err(unsupported_tag(t)),
                }
                (self.sequence(depth)?, anchor)
            }
            Event::MappingStart(anchor, tag) => {
                let value = match tag.as_deref() {
                    None => self.mapping(depth)?,
                    Some(t) if is_core(t, "map") || is_non_specific(t) => self.mapping(depth)?,
                    Some(t) if is_core(t, "set") => self.set(depth)?,
                    Some(t) => return Err(unsupported_tag(t)),
                };
                (value, anchor)
            }
            other => return Err(body_error(format!("unexpected {other:?}"))),
        };
        let cost = self.budget.used() - start;
        if anchor > 0 {
            // The copy kept for aliases is charged too.
            self.budget.charge(cost)?;
            self.anchors.insert(anchor, (value.clone(), cost));
        }
        Ok((value, cost))
    }

    fn enter(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(body_error(format!("nested more than {MAX_DEPTH} deep")));
        }
        self.budget.charge(2)
    }

    fn sequence(&mut self, depth: usize) -> Result<Value, DecodeError> {
        self.enter(depth)?;
        let mut items = Vec::new();
        loop {
            let event = self.next()?;
            if matches!(event, Event::SequenceEnd) {
                return Ok(Value::Array(items));
            }
            self.budget.charge(2)?;
            items.push(self.node(event, depth + 1)?.0);
        }
    }

    fn mapping(&mut self, depth: usize) -> Result<Value, DecodeError> {
        self.enter(depth)?;
        let mut m = Map::new();
        loop {
            let event = self.next()?;
            if matches!(event, Event::MappingEnd) {
                return Ok(Value::Object(m));
            }
            if let Event::Scalar(text, ScalarStyle::Plain, _, None) = &event
                && text == "<<"
            {
                return Err(body_error("merge keys (<<) are not supported"));
            }
            self.budget.charge(4)?;
            let key = self.node(event, depth + 1)?.0;
            let key = key_text(key).map_err(body_error)?;
            let event = self.next()?;
            let value = self.node(event, depth + 1)?.0;
            m.insert(key, value);
        }
    }

    /// `!!set {a, b}`: a Python set, as the list of its members.
    fn set(&mut self, depth: usize) -> Result<Value, DecodeError> {
        self.enter(depth)?;
        let mut members = Vec::new();
        loop {
            let event = self.next()?;
            if matches!(event, Event::MappingEnd) {
                return Ok(Value::Array(members));
            }
            self.budget.charge(2)?;
            members.push(self.node(event, depth + 1)?.0);
            let event = self.next()?;
            self.node(event, depth + 1)?;
        }
    }
}

const CORE: &str = "tag:yaml.org,2002:";

fn is_core(tag: &Tag, name: &str) -> bool {
    tag.handle == CORE && tag.suffix == name
}

/// `!` alone: "not resolved", a string for a scalar.
fn is_non_specific(tag: &Tag) -> bool {
    (tag.handle.is_empty() && tag.suffix == "!") || (tag.handle == "!" && tag.suffix.is_empty())
}

fn unsupported_tag(tag: &Tag) -> DecodeError {
    let name = if tag.handle == CORE {
        format!("!!{}", tag.suffix)
    } else {
        tag.to_string()
    };
    body_error(format!(
        "the tag {name} is not supported (safe_load has no constructor for it, or JSON cannot carry it)"
    ))
}

/// A scalar as PyYAML's `SafeLoader` constructs it.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, DecodeError> {
    let Some(tag) = tag else {
        return if style == ScalarStyle::Plain {
            implicit(text)
        } else {
            Ok(Value::String(text.to_owned()))
        };
    };
    if is_non_specific(tag) {
        return Ok(Value::String(text.to_owned()));
    }
    if tag.handle != CORE {
        return Err(unsupported_tag(tag));
    }
    match tag.suffix.as_str() {
        "str" => Ok(Value::String(text.to_owned())),
        "null" => Ok(Value::Null),
        "bool" => match text.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" => Ok(Value::Bool(true)),
            "no" | "false" | "off" => Ok(Value::Bool(false)),
            _ => Err(body_error(format!("{text:?} is not a !!bool"))),
        },
        "int" => int(text),
        "float" => float(text),
        "binary" => binary(text),
        "timestamp" => {
            timestamp(text).ok_or_else(|| body_error(format!("{text:?} is not a !!timestamp")))?
        }
        _ => Err(unsupported_tag(tag)),
    }
}

/// A plain scalar without a tag, resolved by PyYAML's implicit resolvers (YAML 1.1), in their
/// order: bool, float, int, merge, null, timestamp, value, else a string.
fn implicit(text: &str) -> Result<Value, DecodeError> {
    if let Some(b) = implicit_bool(text) {
        return Ok(Value::Bool(b));
    }
    if is_float(text) {
        return float(text);
    }
    if is_int(text) {
        return int(text);
    }
    if text == "<<" {
        return Err(body_error("a merge key (<<) outside a mapping key"));
    }
    if matches!(text, "~" | "null" | "Null" | "NULL" | "") {
        return Ok(Value::Null);
    }
    if let Some(ts) = Timestamp::parse(text)
        && ts.implicit
    {
        return ts.to_json();
    }
    if text == "=" {
        return Err(body_error("the value key (=) is not supported"));
    }
    Ok(Value::String(text.to_owned()))
}

fn implicit_bool(text: &str) -> Option<bool> {
    match text {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// A cursor over ASCII text, for the resolvers' regular expressions.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            s: s.as_bytes(),
            i: 0,
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn eat_any(&mut self, set: &[u8]) -> bool {
        match self.peek() {
            Some(c) if set.contains(&c) => {
                self.i += 1;
                true
            }
            _ => false,
        }
    }
    /// Bytes while `f` holds; how many.
    fn many(&mut self, f: impl Fn(u8) -> bool) -> usize {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        self.i - start
    }
    /// Between `min` and `max` ASCII digits, as text.
    fn digits(&mut self, min: usize, max: usize) -> Option<&'a str> {
        let start = self.i;
        while self.i - start < max && self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        (self.i - start >= min).then(|| std::str::from_utf8(&self.s[start..self.i]).ok())?
    }
    fn done(&self) -> bool {
        self.i == self.s.len()
    }
}

fn digit_or_underscore(c: u8) -> bool {
    c.is_ascii_digit() || c == b'_'
}

/// `[eE][-+][0-9]+`, optional.
fn exponent(c: &mut Cursor<'_>) -> bool {
    if c.eat_any(b"eE") {
        return c.eat_any(b"-+") && c.many(|b| b.is_ascii_digit()) > 0;
    }
    true
}

/// `:[0-5]?[0-9]` one or more times.
fn sexagesimal_tail(c: &mut Cursor<'_>) -> bool {
    let mut parts = 0;
    while c.eat(b':') {
        match (c.peek(), c.s.get(c.i + 1).copied()) {
            (Some(a @ b'0'..=b'5'), Some(b)) if b.is_ascii_digit() => {
                let _ = a;
                c.i += 2;
            }
            (Some(a), _) if a.is_ascii_digit() => c.i += 1,
            _ => return false,
        }
        parts += 1;
    }
    parts > 0
}

/// PyYAML's float resolver:
/// `[-+]?([0-9][0-9_]*)\.[0-9_]*([eE][-+][0-9]+)? | \.[0-9][0-9_]*([eE][-+][0-9]+)?
///  | [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* | [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN)`.
fn is_float(text: &str) -> bool {
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    // `.5`: no sign allowed in PyYAML's pattern.
    if let Some(rest) = text.strip_prefix('.') {
        let mut c = Cursor::new(rest);
        return c.peek().is_some_and(|b| b.is_ascii_digit())
            && {
                c.many(digit_or_underscore);
                exponent(&mut c)
            }
            && c.done();
    }
    let mut c = Cursor::new(unsigned);
    if !c.peek().is_some_and(|b| b.is_ascii_digit()) {
        return false;
    }
    c.many(digit_or_underscore);
    let at = c.i;
    if c.eat(b'.') {
        c.many(digit_or_underscore);
        if exponent(&mut c) && c.done() {
            return true;
        }
    }
    // Sexagesimal: `190:20:30.15`.
    c.i = at;
    sexagesimal_tail(&mut c) && c.eat(b'.') && {
        c.many(digit_or_underscore);
        c.done()
    }
}

/// PyYAML's int resolver: `[-+]?0b[0-1_]+ | [-+]?0[0-7_]+ | [-+]?(0|[1-9][0-9_]*)
///  | [-+]?0x[0-9a-fA-F_]+ | [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+`.
fn is_int(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    let all = |s: &str, f: fn(u8) -> bool| !s.is_empty() && s.bytes().all(f);
    if t == "0" {
        return true;
    }
    if let Some(b) = t.strip_prefix("0b") {
        return all(b, |c| matches!(c, b'0' | b'1' | b'_'));
    }
    if let Some(x) = t.strip_prefix("0x") {
        return all(x, |c| c.is_ascii_hexdigit() || c == b'_');
    }
    if let Some(o) = t.strip_prefix('0') {
        return all(o, |c| matches!(c, b'0'..=b'7' | b'_'));
    }
    let mut c = Cursor::new(t);
    if !c.peek().is_some_and(|b| (b'1'..=b'9').contains(&b)) {
        return false;
    }
    c.many(digit_or_underscore);
    if c.done() {
        return true;
    }
    sexagesimal_tail(&mut c) && c.done()
}

fn too_big(text: &str) -> DecodeError {
    body_error(format!("the integer {text:?} is too large"))
}

/// PyYAML's `construct_yaml_int`; decimal integers keep every digit.
fn int(text: &str) -> Result<Value, DecodeError> {
    let bad = || body_error(format!("{text:?} is not an integer"));
    let v = text.replace('_', "");
    let (negative, t) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v.as_str()),
    };
    let radix = |digits: &str, radix: u32| -> Result<u128, DecodeError> {
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(bad());
        }
        u128::from_str_radix(digits, radix).map_err(|_| too_big(text))
    };
    let magnitude: u128 = if t == "0" {
        0
    } else if let Some(b) = t.strip_prefix("0b") {
        radix(b, 2)?
    } else if let Some(x) = t.strip_prefix("0x") {
        radix(x, 16)?
    } else if t.starts_with('0') {
        radix(t, 8)?
    } else if t.contains(':') {
        let mut total: u128 = 0;
        for part in t.split(':') {
            let digit = radix(part, 10)?;
            total = total
                .checked_mul(60)
                .and_then(|x| x.checked_add(digit))
                .ok_or_else(|| too_big(text))?;
        }
        total
    } else {
        // Decimal: any number of digits, kept as written.
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let digits = if negative {
            format!("-{t}")
        } else {
            t.to_owned()
        };
        return serde_json::from_str::<Number>(&digits)
            .map(Value::Number)
            .map_err(|_| bad());
    };
    let text_value = if negative && magnitude != 0 {
        format!("-{magnitude}")
    } else {
        magnitude.to_string()
    };
    serde_json::from_str::<Number>(&text_value)
        .map(Value::Number)
        .map_err(|_| bad())
}

/// PyYAML's `construct_yaml_float`: `.inf` and `.nan` cannot be carried in JSON.
fn float(text: &str) -> Result<Value, DecodeError> {
    let bad = || body_error(format!("{text:?} is not a float JSON can carry"));
    let v = text.replace('_', "").to_ascii_lowercase();
    let (sign, t) = match v.as_bytes().first() {
        Some(b'-') => (-1.0, &v[1..]),
        Some(b'+') => (1.0, &v[1..]),
        _ => (1.0, v.as_str()),
    };
    let parse = |s: &str| -> Result<f64, DecodeError> {
        let ok = !s.is_empty()
            && s.bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'-' | b'+'));
        if !ok {
            return Err(bad());
        }
        s.parse::<f64>().map_err(|_| bad())
    };
    let magnitude = if t.contains(':') {
        let mut total = 0.0;
        for part in t.split(':') {
            total = total * 60.0 + parse(part)?;
        }
        total
    } else {
        parse(t)?
    };
    Number::from_f64(sign * magnitude)
        .map(Value::Number)
        .ok_or_else(bad)
}

/// `!!binary`: base64 (whitespace and line breaks ignored), as kombu's bytes envelope.
fn binary(text: &str) -> Result<Value, DecodeError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine
        .decode(compact)
        .map_err(|e| body_error(format!("!!binary is not base64: {e}")))?;
    Ok(bytes_envelope(&bytes))
}

fn timestamp(text: &str) -> Option<Result<Value, DecodeError>> {
    Timestamp::parse(text).map(|ts| ts.to_json())
}

/// A YAML 1.1 timestamp as PyYAML's constructor reads it.
struct Timestamp<'a> {
    year: &'a str,
    month: &'a str,
    day: &'a str,
    /// hour, minute, second, fraction digits.
    time: Option<(&'a str, &'a str, &'a str, &'a str)>,
    /// `Z`: UTC; `(sign, hours, minutes)`.
    tz: Option<Option<(u8, &'a str, &'a str)>>,
    /// Whether the implicit resolver takes it (a date alone needs two-digit month and day).
    implicit: bool,
}

impl<'a> Timestamp<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let mut c = Cursor::new(text);
        let year = c.digits(4, 4)?;
        c.eat(b'-').then_some(())?;
        let month = c.digits(1, 2)?;
        c.eat(b'-').then_some(())?;
        let day = c.digits(1, 2)?;
        if c.done() {
            return Some(Self {
                year,
                month,
                day,
                time: None,
                tz: None,
                implicit: month.len() == 2 && day.len() == 2,
            });
        }
        if !c.eat_any(b"Tt") && c.many(|b| b == b' ' || b == b'\t') == 0 {
            return None;
        }
        let hour = c.digits(1, 2)?;
        c.eat(b':').then_some(())?;
        let minute = c.digits(2, 2)?;
        c.eat(b':').then_some(())?;
        let second = c.digits(2, 2)?;
        let mut fraction = "";
        if c.eat(b'.') {
            fraction = c.digits(0, usize::MAX)?;
        }
        let mut tz = None;
        if !c.done() {
            c.many(|b| b == b' ' || b == b'\t');
            if c.eat(b'Z') {
                tz = Some(None);
            } else {
                let sign = c.peek().filter(|b| matches!(b, b'-' | b'+'))?;
                c.i += 1;
                let hours = c.digits(1, 2)?;
                let mut minutes = "";
                if c.eat(b':') {
                    minutes = c.digits(2, 2)?;
                }
                tz = Some(Some((sign, hours, minutes)));
            }
        }
        c.done().then_some(Self {
            year,
            month,
            day,
            time: Some((hour, minute, second, fraction)),
            tz,
            implicit: true,
        })
    }

    /// kombu's envelope of the Python `date` or `datetime`, with `isoformat()`.
    fn to_json(&self) -> Result<Value, DecodeError> {
        let n = |s: &str| s.parse::<u32>().unwrap_or(u32::MAX);
        let bad = || body_error("a timestamp is not a valid date or time");
        let (year, month, day) = (n(self.year), n(self.month), n(self.day));
        let date = chrono::NaiveDate::from_ymd_opt(year as i32, month, day)
            .filter(|_| year >= 1)
            .ok_or_else(bad)?;
        let Some((hour, minute, second, fraction)) = self.time else {
            return Ok(time_envelope("date", date.format("%Y-%m-%d").to_string()));
        };
        let (hour, minute, second) = (n(hour), n(minute), n(second));
        if hour > 23 || minute > 59 || second > 59 {
            return Err(bad());
        }
        let mut micros = fraction.chars().take(6).collect::<String>();
        while micros.len() < 6 {
            micros.push('0');
        }
        let micros = n(&micros);
        let mut iso = format!(
            "{}T{hour:02}:{minute:02}:{second:02}",
            date.format("%Y-%m-%d")
        );
        if micros != 0 {
            let _ = write!(iso, ".{micros:06}");
        }
        match self.tz {
            None => {}
            Some(None) => iso.push_str("+00:00"),
            Some(Some((sign, hours, minutes))) => {
                let total = n(hours) * 60 + if minutes.is_empty() { 0 } else { n(minutes) };
                if total >= 24 * 60 {
                    return Err(bad());
                }
                let sign = if sign == b'-' && total != 0 { '-' } else { '+' };
                let _ = write!(iso, "{sign}{:02}:{:02}", total / 60, total % 60);
            }
        }
        Ok(time_envelope("datetime", iso))
    }
}

/// `value` as yaml PyYAML's `safe_load` reads back to the same values: flow style, every
/// string double-quoted with non-ASCII escaped (as `safe_dump` does), floats in YAML 1.1 form
/// (`1.0e+20`), kombu's envelopes as `!!binary` and `!!timestamp`.
pub(super) fn encode(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out.push('\n');
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let text = n.to_string();
            if is_integer_text(&text) {
                out.push_str(&text);
            } else {
                out.push_str(&float_text(n.as_f64().unwrap_or(f64::NAN)));
            }
        }
        Value::String(s) => quote(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(m) => {
            if let Some(bytes) = envelope_bytes(m) {
                out.push_str("!!binary ");
                quote(
                    out,
                    &base64::engine::general_purpose::STANDARD.encode(bytes),
                );
                return;
            }
            if let Some((kind @ ("datetime" | "date"), iso)) = envelope_parts(m)
                && Timestamp::parse(iso)
                    .is_some_and(|ts| (kind == "date") == ts.time.is_none() && ts.to_json().is_ok())
            {
                out.push_str("!!timestamp ");
                quote(out, iso);
                return;
            }
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                quote(out, k);
                out.push_str(": ");
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

/// A float as PyYAML writes one: always a `.`, a signed exponent.
fn float_text(f: f64) -> String {
    if !f.is_finite() {
        // JSON holds none; kept as the string PyYAML would read as the float.
        return if f.is_nan() {
            ".nan".into()
        } else if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    let s = format!("{f:?}");
    let (mantissa, exp) = match s.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (s.as_str(), None),
    };
    let mut out = mantissa.to_owned();
    if !out.contains('.') {
        out.push_str(".0");
    }
    if let Some(e) = exp {
        out.push('e');
        if !e.starts_with('-') {
            out.push('+');
        }
        out.push_str(e);
    }
    out
}

/// A double-quoted scalar, ASCII only.
fn quote(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(ch),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Serializer;
    use serde_json::json;

    fn load(text: &str) -> Result<Value, DecodeError> {
        decode(text.as_bytes(), &mut Budget::new(1 << 20, Serializer::Yaml))
    }

    fn loads(text: &str) -> String {
        load(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .to_string()
    }

    #[test]
    fn plain_scalars_resolve_as_in_pyyaml() {
        let cases = [
            ("1", "1"),
            ("-17", "-17"),
            ("+5", "5"),
            ("1_000", "1000"),
            ("017", "15"),
            ("0b101", "5"),
            ("-0x1F", "-31"),
            ("190:20:30", "685230"),
            ("-0", "0"),
            (
                "1267650600228229401496703205376",
                "1267650600228229401496703205376",
            ),
            ("0.1", "0.1"),
            ("1.0e+20", "1e+20"),
            ("1.", "1.0"),
            (".5", "0.5"),
            ("-1_000.5", "-1000.5"),
            ("190:20:30.15", "685230.15"),
            ("yes", "true"),
            ("Off", "false"),
            ("TRUE", "true"),
            ("~", "null"),
            ("Null", "null"),
            // YAML 1.2 numbers that PyYAML reads as strings.
            ("1e3", "\"1e3\""),
            ("0o17", "\"0o17\""),
            ("-.5", "\"-.5\""),
            ("y", "\"y\""),
            ("0x", "\"0x\""),
            ("1:60", "\"1:60\""),
            (
                "2001-12-14",
                r#"{"__type__":"date","__value__":"2001-12-14"}"#,
            ),
            ("2001-1-14", "\"2001-1-14\""),
            (
                "2001-12-14t21:59:43.10-05:00",
                r#"{"__type__":"datetime","__value__":"2001-12-14T21:59:43.100000-05:00"}"#,
            ),
            (
                "2001-12-14 21:59:43.123456789 Z",
                r#"{"__type__":"datetime","__value__":"2001-12-14T21:59:43.123456+00:00"}"#,
            ),
            (
                "2002-12-14 1:02:03",
                r#"{"__type__":"datetime","__value__":"2002-12-14T01:02:03"}"#,
            ),
            (
                "2024-01-02 03:04:05.123456+00:00",
                r#"{"__type__":"datetime","__value__":"2024-01-02T03:04:05.123456+00:00"}"#,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(loads(&format!("[{text}]")), format!("[{want}]"), "{text}");
        }
        // Quoted, they are strings.
        assert_eq!(loads("['1', \"yes\", '~', ''] "), r#"["1","yes","~",""]"#);
        assert_eq!(loads(""), "null");
        assert_eq!(loads("key:"), r#"{"key":null}"#);
    }

    #[test]
    fn tags_construct_as_in_safe_load() {
        assert_eq!(
            loads(
                "[!!binary YWJj, !!binary '/wA=', !!str 12, !!int '0x10', !!float '1e3', !!bool 'ON', !!null x, ! 12]"
            ),
            r#"[{"__type__":"bytes","__value__":"abc"},{"__type__":"base64","__value__":"/wA="},"12",16,1000.0,true,null,"12"]"#
        );
        assert_eq!(loads("!!set {b: null, 1: null}"), r#"["b",1]"#);
        assert_eq!(
            loads("- &a [1, 2]\n- *a\n- {1: x, true: y, ~: z}\n"),
            r#"[[1,2],[1,2],{"1":"x","true":"y","null":"z"}]"#
        );
        for (text, want) in [
            (
                "!!python/object/apply:os.system ['true']",
                "!!python/object/apply:os.system",
            ),
            ("!!python/name:os.system ''", "!!python/name:os.system"),
            ("!foo 1", "!foo"),
            ("!!omap [a: 1]", "!!omap"),
            ("[.inf]", "not a float JSON can carry"),
            ("[-.inf]", "not a float JSON can carry"),
            ("[.nan]", "not a float JSON can carry"),
            ("{1.5: x}", "float"),
            ("{[1]: x}", "list"),
            ("{<<: {a: 1}}", "merge keys"),
            ("a: 1\n---\nb: 2\n", "single document"),
            ("[2001-02-30]", "not a valid date"),
            ("[!!int 'x']", "not an integer"),
            (
                "[!!int '0xffffffffffffffffffffffffffffffffff']",
                "too large",
            ),
            ("[[", "not a YAML body"),
            ("*x", "not a YAML body"),
        ] {
            let err = load(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn aliases_are_charged_what_they_repeat() {
        // The billion laughs: each level repeats the one before ten times.
        let mut doc = String::from("a0: &a0 [\"lol\"]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let _ = writeln!(doc, "a{i}: &a{i} [{}]", vec![prev; 10].join(", "));
        }
        let err = decode(doc.as_bytes(), &mut Budget::new(1 << 20, Serializer::Yaml))
            .expect_err("too large")
            .to_string();
        assert!(
            err.contains("more than the limit of 1048576 bytes"),
            "{err}"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(
            load(&deep)
                .expect_err("too deep")
                .to_string()
                .contains("nested more than 128")
        );
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        load(&ok).expect("128 deep is fine");
        let block = (0..MAX_DEPTH + 1).fold(String::new(), |mut s, i| {
            let _ = writeln!(s, "{}- ", "  ".repeat(i));
            s
        });
        assert!(load(&block).is_err());
    }

    #[test]
    fn encoded_yaml_reads_back_the_same() {
        let v = json!([
            [1, -2, 123456789012345678901234567890u128.to_string(), 0.1, 1e20, -0.0, 1e-7,
             "ü 𝄞 \u{7f}\u{85}\u{2028}\u{feff}\"\\\n\t", "yes", "1e3", "", null, true,
             {"__type__": "bytes", "__value__": "abc"},
             {"__type__": "base64", "__value__": "/wA="},
             {"__type__": "datetime", "__value__": "2024-01-02T03:04:05.123456+00:00"},
             {"__type__": "date", "__value__": "2024-01-02"},
             {"__type__": "datetime", "__value__": "not a time"}],
            {"k": {"": [{}]}, "ключ": []},
            {"callbacks": null}
        ]);
        let mut v = v;
        v[0][2] = serde_json::from_str("123456789012345678901234567890").expect("big");
        let text = encode(&v);
        assert!(text.is_ascii(), "{text}");
        let back = load(&text).expect("reads back");
        assert_eq!(back, v, "{text}");
    }

    #[test]
    fn floats_are_written_as_yaml_1_1_floats() {
        for (f, want) in [
            (1e20, "1.0e+20"),
            (0.1, "0.1"),
            (1.0, "1.0"),
            (1e-7, "1.0e-7"),
            (-0.0, "-0.0"),
        ] {
            let text = float_text(f);
            assert_eq!(text, want);
            assert!(is_float(&text), "{text}");
        }
    }
}
