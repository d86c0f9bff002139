//! Pivot reports (spec §3): the aggregation pipeline joining clients → systems →
//! applications → servers.

use bson::{Document, doc};
use serde_json::{Map, Value};

use crate::report::query::RuleError;
use crate::report::query::convert::{self, Step};
use crate::report::query::general::owner_id;
use crate::report::query::guard::{self, MAX_KEYS};
use crate::report::query::rule::{build_condition, rules_from_value};

/// One level of the fixed mapper (`client_system_app_server`).
struct Level {
    name: &'static str,
    /// How this level joins the previous one; `None` for `clients`, the root.
    join: Option<Join>,
}

struct Join {
    /// `localField` template; `{prev}` becomes `"<prev>."`, or nothing while there is no
    /// previous joined level.
    local_field: &'static str,
    foreign_field: &'static str,
    unwind_path: &'static str,
}

/// The mapper of spec §3.1, in its table order (the pipeline follows the input's order).
const MAPPER: [Level; 4] = [
    Level {
        name: "clients",
        join: None,
    },
    Level {
        name: "systems",
        join: Some(Join {
            local_field: "{prev}_id",
            foreign_field: "clients._id",
            unwind_path: "$systems",
        }),
    },
    Level {
        name: "applications",
        join: Some(Join {
            local_field: "{prev}_id",
            foreign_field: "system._id",
            unwind_path: "$applications",
        }),
    },
    Level {
        name: "servers",
        join: Some(Join {
            local_field: "{prev}_id",
            foreign_field: "applications._id",
            unwind_path: "$servers",
        }),
    },
];

/// The entity names a pivot spec may use, in the order the UI sends them.
pub const PIVOT_LEVELS: [&str; 4] = ["clients", "systems", "applications", "servers"];

/// The pivot report's start collection and aggregation pipeline (spec §3.1-3.3).
///
/// `filters_json` is the JSON text of an object whose keys are entity names, each with
/// `enabled` (only JSON `true` enables it) and `filters` (a rule list, spec §2.1); other keys of
/// a level (`title`, `icon`, ...) are ignored. Levels follow the **input key order**. Keys that
/// are not in the mapper (`system`, `apps` of an old UI) are skipped.
///
/// For each enabled level, in order: unless it is the first, a `$lookup` (from the level,
/// `localField` from the template with the previous joined level as prefix, the level's
/// `foreignField`, `as` the level) and an `$unwind` (`preserveNullAndEmptyArrays: true`); then a
/// `$match` with `<prev>.roles._id` = owner and the level's rules, all prefixed with `<prev>.`.
/// Then data-app's pipeline conversions (24-character strings under id keys become ObjectIds,
/// long strings under `_at` keys become dates).
///
/// Kept from the original on purpose, because reports depend on them:
/// - the first lookup's `localField` is `_id` (the root document's `_id`), and the prefix of a
///   level is the name of the previous *joined* level; so with a middle level disabled, the
///   next one joins on the wrong key (with `systems` off, applications join `localField: "_id"`
///   (client ids) against `system._id`), which is what the original does;
/// - the owner `$match` after each `$unwind` drops rows whose level is missing (inner joins);
/// - dates inside `{"$gte": ...}` stay strings (data-app converts only under `_at` keys).
///
/// Changed on purpose: array rules on the same prefixed key merge into one `$elemMatch` (the
/// original's merge looked the un-prefixed name up among prefixed keys, so only the last array
/// rule survived); a spec that would give an invalid pipeline (`clients` after another enabled
/// level, which gave `localField: ""`, `foreignField: null`, `$unwind: null`; no enabled level,
/// which gave an empty pipeline) is refused instead of being sent to MongoDB.
///
/// # Errors
///
/// A [`RuleError`] naming the input (`filters.servers.filters[1].subfield`,
/// `filters.systems.enabled`, `owner_user`, ...), as for [`general_filter`](crate::report::query::general_filter).
pub fn pivot_pipeline(
    filters_json: &str,
    owner_user: &str,
) -> Result<(String, Vec<Document>), RuleError> {
    let owner = owner_id(owner_user)?.to_hex();
    let spec = guard::parse_json(filters_json, "filters")?;
    let Value::Object(spec) = spec else {
        return Err(RuleError::new(
            "filters",
            format!(
                "a pivot spec must be a JSON object of levels, found {}",
                guard::kind(&spec)
            ),
        ));
    };
    if spec.len() > MAX_KEYS {
        return Err(RuleError::new(
            "filters",
            format!("has {} levels; at most {MAX_KEYS} are accepted", spec.len()),
        ));
    }

    let mut first: Option<&'static str> = None;
    let mut prev = String::new();
    let mut stages: Vec<Document> = Vec::new();
    for (name, level_spec) in &spec {
        let path = format!("filters.{name}");
        if !is_enabled(level_spec, &path)? {
            continue;
        }
        let Some(level) = MAPPER.iter().find(|level| level.name == name) else {
            continue;
        };
        match (&level.join, first) {
            (None, Some(before)) => {
                return Err(RuleError::new(
                    path,
                    format!(
                        "`{name}` is the root level and must come before every other enabled level (it comes after `{before}`)"
                    ),
                ));
            }
            (Some(join), Some(_)) => {
                let local_field = join.local_field.replace("{prev}", &dotted(&prev));
                stages.push(doc! {
                    "$lookup": {
                        "from": level.name,
                        "localField": local_field,
                        "foreignField": join.foreign_field,
                        "as": level.name,
                    }
                });
                stages.push(doc! {
                    "$unwind": {"path": join.unwind_path, "preserveNullAndEmptyArrays": true}
                });
                prev = level.name.into();
            }
            (_, None) => first = Some(level.name),
        }
        let prefix = dotted(&prev);
        let rules_path = format!("{path}.filters");
        let rules_value = level_spec.get("filters").ok_or_else(|| {
            RuleError::new(
                &rules_path,
                "missing (an enabled level needs its rule list)",
            )
        })?;
        let rules = rules_from_value(rules_value, &rules_path)?;
        let mut condition = build_condition(&rules, &prefix, &rules_path)?;

        let mut matcher = Map::new();
        matcher.insert(format!("{prefix}roles._id"), Value::String(owner.clone()));
        matcher.extend(std::mem::take(&mut condition.entries));
        let stage_index = stages.len();
        let mut converted = Document::new();
        for (key, value) in &matcher {
            let mut at = vec![
                Step::Index(stage_index),
                Step::Key("$match".into()),
                Step::Key(key.clone()),
            ];
            let bson = convert::pipeline_value(value, &mut at)
                .map_err(|reason| RuleError::new(condition.blame(key), reason))?;
            converted.insert(key.clone(), bson);
        }
        stages.push(doc! { "$match": converted });
    }

    let first = first.ok_or_else(|| {
        RuleError::new(
            "filters",
            format!(
                "no level is enabled; enable at least one of {}",
                PIVOT_LEVELS.join(", ")
            ),
        )
    })?;
    Ok((first.to_owned(), stages))
}

/// `"<prev>."`, or nothing while `prev` is empty.
fn dotted(prev: &str) -> String {
    if prev.is_empty() {
        String::new()
    } else {
        format!("{prev}.")
    }
}

/// Whether a level is enabled: `enabled` must be present (the original failed with a
/// `KeyError` otherwise) and only JSON `true` enables.
fn is_enabled(level_spec: &Value, path: &str) -> Result<bool, RuleError> {
    let Value::Object(level) = level_spec else {
        return Err(RuleError::new(
            path,
            format!(
                "a level must be a JSON object with `enabled` and `filters`, found {}",
                guard::kind(level_spec)
            ),
        ));
    };
    level
        .get("enabled")
        .map(|enabled| *enabled == Value::Bool(true))
        .ok_or_else(|| RuleError::new(format!("{path}.enabled"), "missing"))
}
