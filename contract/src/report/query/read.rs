//! Reading report tables: `GET /reports/<table>?query=...&orderBy=...&ascending=...&limit=...&page=...`
//! (spec §1.6).

use bson::{Document, doc};
use serde_json::Value;

use crate::report::query::RuleError;
use crate::report::query::convert;
use crate::report::query::guard::{self, MAX_KEYS};

/// The largest `limit` or `skip` MongoDB takes (both are int64 there).
const MONGO_MAX: u64 = i64::MAX as u64;

/// The operators a `query` value may use. server-app only ever sends
/// `{"<field>": {"$regex": "<text>", "$options": "i"}}`.
pub const QUERY_OPERATORS: [&str; 10] = [
    "$regex", "$options", "$in", "$ne", "$gte", "$lte", "$gt", "$lt", "$eq", "$exists",
];

/// The filter for the `query` parameter of `GET /reports/<table>`.
///
/// `query_json` must be a JSON object. Each top-level key goes through data-app's rules, as in
/// the original (nested values are not converted): an id key (`(^_id)|(\._id)`) gets ObjectIds,
/// a list becomes `$in`, an `_at` key gets dates from strings (first 19 characters
/// `%Y-%m-%dT%H:%M:%S`). Note that report rows store dates as strings, so an `_at` query never
/// matches them; that is the original's behaviour too.
///
/// # Errors
///
/// A [`RuleError`] (`query`, `query.<key>`) for invalid JSON, a non-object, an invalid id or
/// date, where the original answered 500. Also, deliberately: a top-level key that is an
/// operator (`$where`, `$expr`, `$or`, ...) or has a `$`-segment or NUL, an operator inside a
/// value that is not in [`QUERY_OPERATORS`] (`$function`, `$elemMatch`, ...), more than
/// [`MAX_KEYS`](crate::report::query::MAX_KEYS) keys, a string over [`MAX_STRING_BYTES`](crate::report::query::MAX_STRING_BYTES).
pub fn read_query(query_json: &str) -> Result<Document, RuleError> {
    let query = guard::parse_json(query_json, "query")?;
    let Value::Object(entries) = query else {
        return Err(RuleError::new(
            "query",
            format!("must be a JSON object, found {}", guard::kind(&query)),
        ));
    };
    if entries.len() > MAX_KEYS {
        return Err(RuleError::new(
            "query",
            format!(
                "has {} keys; at most {MAX_KEYS} are accepted",
                entries.len()
            ),
        ));
    }
    for (key, value) in &entries {
        let path = format!("query.{key}");
        guard::check_path(key, &path, false)?;
        check_operators(value, &path)?;
    }
    convert::query_document(&entries, |key| format!("query.{key}"))
}

/// Refuses every `$`-key inside `value` that is not in [`QUERY_OPERATORS`].
fn check_operators(value: &Value, path: &str) -> Result<(), RuleError> {
    match value {
        Value::Object(map) => map.iter().try_for_each(|(key, inner)| {
            if key.starts_with('$') && !QUERY_OPERATORS.contains(&key.as_str()) {
                return Err(RuleError::new(
                    path,
                    format!(
                        "the operator `{key}` is not accepted; use one of {}",
                        QUERY_OPERATORS.join(", ")
                    ),
                ));
            }
            if key.contains('\0') {
                return Err(RuleError::new(path, "an object key contains a NUL byte"));
            }
            check_operators(inner, &format!("{path}.{key}"))
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_operators(item, &format!("{path}[{i}]"))),
        _ => Ok(()),
    }
}

/// The sort of `GET /reports/<table>`: `{<orderBy or "updated_at">: direction}`.
///
/// The direction keeps the original's odd rule: **1 (ascending) unless `ascending` is an
/// integer equal to 0**, which gives -1. So the default (`-1`), `1`, `-1` and `5` all sort
/// ascending. Integers are read like Python's `int()` for the forms a browser sends: optional
/// surrounding whitespace, an optional sign, decimal digits, of any size.
///
/// # Errors
///
/// `ascending` that is not an integer (`true`), where the original answered 500; an `orderBy`
/// that is empty, an operator or has an empty, `$` or NUL segment (MongoDB would reject it).
pub fn sort_of(order_by: Option<&str>, ascending: Option<&str>) -> Result<Document, RuleError> {
    let field = order_by.unwrap_or("updated_at");
    guard::check_path(field, "orderBy", false)?;
    let direction = match ascending {
        None => 1,
        Some(text) => {
            let (_, digits) = integer(text, "ascending")?;
            if digits.bytes().all(|d| d == b'0') {
                -1
            } else {
                1
            }
        }
    };
    Ok(doc! { field: direction })
}

/// Splits an integer as Python's `int()` reads it (trimmed, optional sign, ASCII digits) into
/// whether it is negative and its digits.
fn integer<'a>(text: &'a str, field: &str) -> Result<(bool, &'a str), RuleError> {
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    if digits.is_empty() || !digits.bytes().all(|d| d.is_ascii_digit()) {
        return Err(RuleError::new(field, format!("{text:?} is not an integer")));
    }
    Ok((negative, digits))
}

/// Paging of `GET /reports/<table>`: `limit` rows from row `skip() = (page - 1) * limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Rows per page, at least 1.
    pub limit: u64,
    /// Page number, from 1.
    pub page: u64,
}

impl Paging {
    /// Reads the `limit` and `page` parameters; `default_limit` is used when `limit` is absent
    /// (the original's `MAESTRO_REPORT_RESULT_QTD`, else 1500) and `page` defaults to 1.
    ///
    /// There is no maximum `limit`, as in the original; a caller that wants one applies it.
    ///
    /// # Errors
    ///
    /// A non-integer, `limit` < 1 or `page` < 1 (the original answered 500 for `limit=0` and
    /// `page=0`, and for non-integers), or numbers so large that MongoDB's int64 `limit`/`skip`
    /// cannot hold them.
    pub fn parse(
        limit: Option<&str>,
        page: Option<&str>,
        default_limit: u64,
    ) -> Result<Self, RuleError> {
        let limit = match limit {
            Some(text) => positive(text, "limit")?,
            None if (1..=MONGO_MAX).contains(&default_limit) => default_limit,
            None => {
                return Err(RuleError::new(
                    "limit",
                    format!("the default limit {default_limit} is not between 1 and 2^63-1"),
                ));
            }
        };
        let page = page.map_or(Ok(1), |text| positive(text, "page"))?;
        let paging = Self { limit, page };
        let fits = (page - 1)
            .checked_mul(limit)
            .is_some_and(|skip| skip <= MONGO_MAX);
        if !fits {
            return Err(RuleError::new(
                "page",
                format!("page {page} with limit {limit} skips more rows than MongoDB can"),
            ));
        }
        Ok(paging)
    }

    /// Rows to skip: `(page - 1) * limit` (checked to fit an int64 by [`Paging::parse`]).
    #[must_use]
    pub fn skip(&self) -> u64 {
        (self.page - 1).saturating_mul(self.limit)
    }

    /// `ceil(found / limit)`, 0 when nothing was found (no `+1`, unlike data-app).
    #[must_use]
    pub fn total_pages(&self, found: u64) -> u64 {
        found.div_ceil(self.limit)
    }
}

fn positive(text: &str, field: &str) -> Result<u64, RuleError> {
    let (negative, digits) = integer(text, field)?;
    if negative || digits.bytes().all(|d| d == b'0') {
        return Err(RuleError::new(
            field,
            format!("{text:?} must be at least 1"),
        ));
    }
    digits
        .parse::<u64>()
        .ok()
        .filter(|v| *v <= MONGO_MAX)
        .ok_or_else(|| RuleError::new(field, format!("{text:?} is too large")))
}
