//! Output formats and `Accept` negotiation.

use std::fmt;

/// An output format of `GET /reports/<table>`, picked by the request's `Accept` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `application/json`: the page envelope as JSON.
    Json,
    /// `text/csv`: the items flattened like pandas `json_normalize(...).to_csv(...)`.
    Csv,
    /// `application/xml`: the envelope as XML, like python-simplexml.
    Xml,
    /// `text/plain`: one ` - key: value` line per item.
    Text,
    /// `text/inventory`: an Ansible INI inventory of the items.
    Inventory,
}

impl Format {
    /// Every format, in the order the original registered them. Negotiation ties go to the
    /// earlier one.
    pub const REGISTERED: [Format; 5] = [
        Format::Json,
        Format::Csv,
        Format::Xml,
        Format::Inventory,
        Format::Text,
    ];

    /// The media type, used as the response's `Content-Type` exactly (the original sends no
    /// `charset` parameter; bodies are UTF-8).
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv",
            Format::Xml => "application/xml",
            Format::Text => "text/plain",
            Format::Inventory => "text/inventory",
        }
    }

    /// Picks the format for an `Accept` header value, like Werkzeug's `best_match` over the
    /// registered types ([`Format::REGISTERED`]).
    ///
    /// Every media range with `q > 0` that matches a registered type (`*/*`, `type/*` or the exact
    /// type, case-insensitively) is a candidate. The highest q-value wins, then the more specific
    /// range (exact beats `type/*` beats `*/*`), then the earlier registered type. A missing
    /// header, or one that matches nothing (`text/html`), gives [`Format::Json`]; so do `*/*` and
    /// `application/json, text/plain, */*`, while `text/*` gives [`Format::Csv`].
    ///
    /// Parameters other than `q` are ignored, so `text/csv; charset=utf-8` gives CSV (the
    /// Werkzeug of the original most likely compared them as part of the type and fell back to
    /// JSON). A bare `*` counts as `*/*`, and a q-value that does not parse counts as `1`.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Json;
        };
        let ranges: Vec<MediaRange> = accept.split(',').filter_map(MediaRange::parse).collect();
        let mut best: Option<(Format, f64, u8)> = None;
        for format in Format::REGISTERED {
            let (kind, subtype) = format
                .content_type()
                .split_once('/')
                .expect("registered media types have a slash");
            for range in &ranges {
                if range.quality <= 0.0 || !range.matches(kind, subtype) {
                    continue;
                }
                let specificity = range.specificity();
                let better = best.is_none_or(|(_, quality, best_specificity)| {
                    range.quality > quality
                        || (range.quality == quality && specificity > best_specificity)
                });
                if better {
                    best = Some((format, range.quality, specificity));
                }
            }
        }
        best.map_or(Format::Json, |(format, _, _)| format)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.content_type())
    }
}

/// One entry of an `Accept` header.
#[derive(Debug)]
struct MediaRange {
    kind: String,
    subtype: String,
    quality: f64,
}

impl MediaRange {
    /// Parses `type/subtype;param=value;q=0.5`; `None` for entries that are not media ranges.
    fn parse(entry: &str) -> Option<MediaRange> {
        let mut parts = entry.split(';');
        let range = parts.next()?.trim().to_ascii_lowercase();
        let (kind, subtype) = if range == "*" {
            ("*", "*")
        } else {
            range.split_once('/')?
        };
        let (kind, subtype) = (kind.trim(), subtype.trim());
        if kind.is_empty() || subtype.is_empty() || (kind == "*" && subtype != "*") {
            return None;
        }
        let quality = parts
            .filter_map(|param| param.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, value)| {
                value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|q| q.is_finite())
                    .map_or(1.0, |q| q.clamp(0.0, 1.0))
            });
        Some(MediaRange {
            kind: kind.to_owned(),
            subtype: subtype.to_owned(),
            quality,
        })
    }

    fn matches(&self, kind: &str, subtype: &str) -> bool {
        (self.kind == "*" && self.subtype == "*")
            || (self.kind == kind && (self.subtype == "*" || self.subtype == subtype))
    }

    fn specificity(&self) -> u8 {
        u8::from(self.kind != "*") + u8::from(self.subtype != "*")
    }
}

#[cfg(test)]
mod tests {
    use super::Format::{self, *};

    fn pick(accept: &str) -> Format {
        Format::negotiate(Some(accept))
    }

    #[test]
    fn defaults_to_json() {
        assert_eq!(Format::negotiate(None), Json);
        assert_eq!(pick(""), Json);
        assert_eq!(pick("*/*"), Json);
        assert_eq!(pick("*"), Json);
        assert_eq!(pick("text/html"), Json);
        assert_eq!(pick("application/json, text/plain, */*"), Json);
        assert_eq!(pick("garbage, ;;, /x"), Json);
    }

    #[test]
    fn exact_types() {
        assert_eq!(pick("application/json"), Json);
        assert_eq!(pick("text/csv"), Csv);
        assert_eq!(pick("application/xml"), Xml);
        assert_eq!(pick("text/plain"), Text);
        assert_eq!(pick("text/inventory"), Inventory);
        assert_eq!(pick("TEXT/CSV"), Csv);
        assert_eq!(pick("text/csv; charset=utf-8"), Csv);
    }

    #[test]
    fn quality_and_specificity() {
        assert_eq!(pick("text/plain;q=0.9, text/csv;q=0.5"), Text);
        assert_eq!(pick("text/csv;q=0.5, text/plain"), Text);
        assert_eq!(pick("text/csv;q=0"), Json);
        assert_eq!(pick("*/*, text/csv"), Csv);
        assert_eq!(pick("*/*;q=0.1, text/inventory;q=0.2"), Inventory);
        assert_eq!(pick("text/*"), Csv);
        assert_eq!(pick("text/*;q=0.5, text/plain;q=0.5"), Text);
        assert_eq!(pick("text/plain, application/xml"), Xml);
        assert_eq!(pick("text/csv;q=oops"), Csv);
    }

    #[test]
    fn content_types() {
        let types: Vec<_> = Format::REGISTERED
            .iter()
            .map(|f| f.content_type())
            .collect();
        assert_eq!(
            types,
            [
                "application/json",
                "text/csv",
                "application/xml",
                "text/inventory",
                "text/plain"
            ]
        );
        assert_eq!(Csv.to_string(), "text/csv");
    }
}
