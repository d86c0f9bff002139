//! The one error type of the crate.

use std::fmt;

/// A rule, filter spec or query parameter that cannot become a MongoDB query.
///
/// Where the original report-app (or data-app behind it) crashed with a Python exception and
/// answered 500/501 with the exception text, this crate returns a `RuleError` instead. `field`
/// says where the problem is, as a dotted path into the input (`filters[2].subfield`,
/// `filters.servers.enabled`, `query.created_at`, `owner_user`, `ascending`, ...), and `reason`
/// says what is wrong in words meant for the person who wrote the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// Dotted path of the offending input, e.g. `filters[2].subfield`.
    pub field: String,
    /// Human-readable explanation.
    pub reason: String,
}

impl RuleError {
    /// Builds an error for `field` with the given `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Prefixes the path with `base` (`typ` under `filters[2]` becomes `filters[2].typ`).
    pub(crate) fn under(mut self, base: &str) -> Self {
        self.field = if self.field.is_empty() {
            base.to_owned()
        } else {
            format!("{base}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for RuleError {}
