//! Query building for Maestro's report-app, for workers that query MongoDB directly instead of
//! through Maestro's data-app.
//!
//! The original report-app turned a report's rule list into a condition and sent it to data-app
//! as a JSON string; data-app then converted ids to ObjectIds and date strings to dates before
//! querying MongoDB. This crate does both steps and returns BSON ready for the driver:
//!
//! - [`general_filter`]: the owner-scoped `find` filter of a general report, from its rule list
//!   (the rule DSL of [`Rule`]), and [`collection_of`] for the collection to read;
//! - [`pivot_pipeline`]: the start collection and `aggregate` pipeline of a pivot report;
//! - [`read_query`], [`sort_of`] and [`Paging`]: the parameters of `GET /reports/<table>`.
//!
//! Every function refuses bad input with a [`RuleError`] naming the offending part, where the
//! original answered 500 or 501 with a Python exception text, and refuses input that would let
//! a tenant inject MongoDB operators or leave its owner scope (see the README for every
//! deliberate difference from the original).
//!
//! ```
//! use bson::{doc, oid::ObjectId};
//!
//! let rules = r#"[{"field": "active", "filter": "true", "comparer": "equal", "typ": "boolean"}]"#;
//! let filter = maestro_contract::report::query::general_filter(rules, "5e5f1a2b3c4d5e6f7a8b9c0d")?;
//! let owner = ObjectId::parse_str("5e5f1a2b3c4d5e6f7a8b9c0d").expect("valid");
//! assert_eq!(filter, doc! {"roles._id": owner, "active": true});
//! assert_eq!(maestro_contract::report::query::collection_of("Servers")?, "servers");
//! # Ok::<(), maestro_contract::report::query::RuleError>(())
//! ```

mod convert;
mod error;
mod general;
mod guard;
mod pivot;
mod read;
mod rule;

pub use error::RuleError;
pub use general::{REPORT_COLLECTIONS, collection_of, general_filter};
pub use guard::{MAX_KEYS, MAX_RULES, MAX_STRING_BYTES};
pub use pivot::{PIVOT_LEVELS, pivot_pipeline};
pub use read::{Paging, QUERY_OPERATORS, read_query, sort_of};
pub use rule::{Comparer, Rule, RuleType, parse_rules, rules_condition};
