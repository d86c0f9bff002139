//! General reports (spec §2): the owner-scoped condition and the collection to read.

use bson::Document;
use bson::oid::ObjectId;

use crate::report::query::RuleError;
use crate::report::query::convert;
use crate::report::query::rule::{build_condition, parse_rules_at};

/// The collections a general report may read, i.e. the lowercased components accepted by
/// [`collection_of`].
///
/// These are server-app's report components (`adminer.reports_options`: Servers, Applications,
/// Systems, Clients, Datacenters, Flavors, Images, Networks, Projects, Snapshots, Volumes)
/// minus the ones refused on purpose: `connections` (their `conn` holds the cloud
/// credentials, JWT-signed but readable), `teams` (member lists with e-mails and roles) and
/// `users` (password hashes). The original read whatever data-app route the lowercased
/// component named.
pub const REPORT_COLLECTIONS: [&str; 11] = [
    "servers",
    "applications",
    "systems",
    "clients",
    "datacenters",
    "volumes",
    "images",
    "networks",
    "snapshots",
    "flavors",
    "projects",
];

/// The `maestro-client` collection a general report on `component` reads (spec §2.2).
///
/// Like the original, the component is only lowercased (`Servers` → `servers`), with no
/// mapping or pluralisation. Unlike the original, only [`REPORT_COLLECTIONS`] are accepted:
/// `connections`, `teams` and `users` are refused because their documents hold credentials
/// or account data, and anything else is not an inventory entity.
///
/// # Errors
///
/// A [`RuleError`] on `component` for anything that does not lowercase to one of
/// [`REPORT_COLLECTIONS`].
pub fn collection_of(component: &str) -> Result<String, RuleError> {
    let collection = component.to_lowercase();
    if REPORT_COLLECTIONS.contains(&collection.as_str()) {
        return Ok(collection);
    }
    let reason = match collection.as_str() {
        "connections" => {
            "connections cannot be reported on: their documents hold the cloud credentials".into()
        }
        "teams" | "users" => format!(
            "{collection} cannot be reported on: their documents hold account data (members, e-mails, password hashes)"
        ),
        _ => format!(
            "unknown component {component:?}; expected one of {}",
            REPORT_COLLECTIONS.join(", ")
        ),
    };
    Err(RuleError::new("component", reason))
}

/// The owner id, which must be a 24-hex-digit ObjectId.
pub(crate) fn owner_id(owner_user: &str) -> Result<ObjectId, RuleError> {
    convert::object_id(owner_user).ok_or_else(|| {
        RuleError::new(
            "owner_user",
            format!("{owner_user:?} is not a 24-hex-digit ObjectId"),
        )
    })
}

/// The MongoDB filter of a general report: `filters_json` is the rule list as server-app sends
/// it (a JSON string, `JSON.stringify(list, null, 2)`), `owner_user` the owner's id.
///
/// The result is what data-app would have run: `{"roles._id": ObjectId(owner), ...rules}` (owner
/// first, rules in order, per spec §2.1), with data-app's query-side conversions applied to every
/// top-level key (ids to ObjectIds, lists to `$in`, `_at` strings to dates; contract §3.5).
///
/// # Errors
///
/// A [`RuleError`] naming the input, where the original answered 501 or data-app 500: invalid
/// JSON, not a list, an unknown `typ`, a missing key, an invalid id (`filters[1].subfilter`), an
/// unparsable date, an invalid `owner_user`. Also, deliberately: a `field`/`subfield` that is
/// an operator, has a `$` segment or NUL, or touches `roles` (the owner scope); a JSON object as
/// a rule value; more than [`MAX_RULES`](crate::report::query::MAX_RULES) rules or a string over
/// [`MAX_STRING_BYTES`](crate::report::query::MAX_STRING_BYTES).
pub fn general_filter(filters_json: &str, owner_user: &str) -> Result<Document, RuleError> {
    let owner = owner_id(owner_user)?;
    let rules = parse_rules_at(filters_json, "filters")?;
    let condition = build_condition(&rules, "", "filters")?;
    let mut filter = Document::new();
    filter.insert("roles._id", owner);
    filter.extend(convert::query_document(&condition.entries, |key| {
        condition.blame(key)
    })?);
    Ok(filter)
}
