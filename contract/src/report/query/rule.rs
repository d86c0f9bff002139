//! The report rule DSL (spec §2.1): parsing rule lists and turning them into one flat condition.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::report::query::RuleError;
use crate::report::query::guard::{self, MAX_RULES};

/// The `typ` of a rule: which method of the original `AggregationRuler` handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleType {
    /// `string`: equality, `contain` (`$regex`) or `not contain` (`$ne`).
    String,
    /// `boolean`: true only for the exact string `"true"`.
    Boolean,
    /// `select`: equality.
    Select,
    /// `object`: equality on `field.subfield`.
    Object,
    /// `array`: `$elemMatch` on `field`, merged with the other array rules on the same field.
    Array,
    /// `number`: `greater` is `$gte`, `less` is `$lte`, anything else equality (values stay as sent).
    Number,
    /// `date`: `after` is `$gte`, `before` is `$lte`, anything else equality (values stay as sent).
    Date,
}

impl RuleType {
    /// Every type, in the order of the spec's table.
    pub const ALL: [RuleType; 7] = [
        Self::String,
        Self::Boolean,
        Self::Select,
        Self::Object,
        Self::Array,
        Self::Number,
        Self::Date,
    ];

    /// The wire name (`"string"`, `"boolean"`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Boolean => "boolean",
            Self::Select => "select",
            Self::Object => "object",
            Self::Array => "array",
            Self::Number => "number",
            Self::Date => "date",
        }
    }

    /// The type for a wire name; names are case-sensitive, as in the original.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    fn needs_subfield(self) -> bool {
        matches!(self, Self::Object | Self::Array)
    }
}

impl fmt::Display for RuleType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule's `comparer`. Only some matter for some types; every other value means equality.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Comparer {
    /// `equal`
    Equal,
    /// `contain` (string rules: `$regex`)
    Contain,
    /// `not contain` (string rules: `$ne`, an exact inequality)
    NotContain,
    /// `greater` (number rules: `$gte`)
    Greater,
    /// `less` (number rules: `$lte`)
    Less,
    /// `after` (date rules: `$gte`)
    After,
    /// `before` (date rules: `$lte`)
    Before,
    /// `same` (date rules: equality; the UI's default)
    Same,
    /// Anything else, kept as sent (a non-string comparer as its JSON text). Means equality.
    Other(String),
}

impl Comparer {
    /// The comparer for a wire value (`"not contain"` becomes [`Comparer::NotContain`]).
    #[must_use]
    pub fn from_name(name: &str) -> Self {
        match name {
            "equal" => Self::Equal,
            "contain" => Self::Contain,
            "not contain" => Self::NotContain,
            "greater" => Self::Greater,
            "less" => Self::Less,
            "after" => Self::After,
            "before" => Self::Before,
            "same" => Self::Same,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// One rule of a report's rule list, as the UI and server-app send it:
/// `{"field", "filter", "comparer", "typ", "subfield", "subfilter"}`.
///
/// Which keys are needed depends on `typ` (spec §2.1): `field` and `typ` always; `comparer` for
/// `string`, `number` and `date`; `filter` for every type except `object` and `array`, which
/// need `subfield` and `subfilter` instead. Presence matters, not the value: a JSON `null`
/// `filter` is present (and compared as null), a missing one is an error when the type needs it.
/// Extra keys (`title`, leftovers from the UI) are ignored.
///
/// Deserializing checks the shape of each key; [`Rule::condition`] then checks what the type
/// needs and builds the condition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct Rule {
    /// The document field the rule is about. An empty string makes the rule a no-op.
    pub field: String,
    /// The value to compare with (any JSON; `None` when the key is missing).
    pub filter: Option<Value>,
    /// How to compare (`None` when the key is missing).
    pub comparer: Option<Comparer>,
    /// Which kind of rule this is.
    pub typ: RuleType,
    /// The sub-field of `object`/`array` rules (`None` when missing, or not a string on a
    /// type that ignores it).
    pub subfield: Option<String>,
    /// The value of `object`/`array` rules (`None` when the key is missing).
    pub subfilter: Option<Value>,
}

impl TryFrom<Map<String, Value>> for Rule {
    type Error = RuleError;

    fn try_from(map: Map<String, Value>) -> Result<Self, Self::Error> {
        Self::from_map(&map)
    }
}

impl Rule {
    /// Reads a rule from a JSON object. Error paths are relative to the rule (`typ`, `subfield`).
    ///
    /// # Errors
    ///
    /// `field` or `typ` missing or not a string, an unknown `typ`, a `subfield` that is not a
    /// string on an `object`/`array` rule.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self, RuleError> {
        let field = match map.get("field") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(RuleError::new(
                    "field",
                    format!("must be a string, found {}", guard::kind(other)),
                ));
            }
            None => return Err(RuleError::new("field", "missing")),
        };
        let typ = match map.get("typ") {
            Some(Value::String(s)) => RuleType::from_name(s).ok_or_else(|| {
                RuleError::new(
                    "typ",
                    format!(
                        "unknown rule type {s:?}; expected one of {}",
                        RuleType::ALL.map(RuleType::as_str).join(", ")
                    ),
                )
            })?,
            Some(other) => {
                return Err(RuleError::new(
                    "typ",
                    format!("must be a string, found {}", guard::kind(other)),
                ));
            }
            None => return Err(RuleError::new("typ", "missing")),
        };
        let comparer = map.get("comparer").map(|c| match c {
            Value::String(s) => Comparer::from_name(s),
            other => Comparer::Other(other.to_string()),
        });
        let subfield = match map.get("subfield") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) if typ.needs_subfield() => {
                return Err(RuleError::new(
                    "subfield",
                    format!("must be a string, found {}", guard::kind(other)),
                ));
            }
            _ => None,
        };
        Ok(Self {
            field,
            filter: map.get("filter").cloned(),
            comparer,
            typ,
            subfield,
            subfilter: map.get("subfilter").cloned(),
        })
    }

    /// The `(key, value)` pair this rule contributes, before any prefix (spec §2.1's table).
    ///
    /// Returns `Ok(None)` for a rule whose `field` is empty (the original ignores those).
    /// `array` rules give `(field, {"$elemMatch": {subfield: subfilter}})`; merging several of
    /// them is the job of the rule list (see [`rules_condition`]).
    ///
    /// # Errors
    ///
    /// A key the type needs is missing, the field is refused (operator, `$` segment, NUL, empty
    /// segment, `roles`), a value is a JSON object, or a `contain` pattern is not a string.
    pub fn condition(&self) -> Result<Option<(String, Value)>, RuleError> {
        Ok(self.part()?.map(|part| match part {
            Part::Plain { key, value, .. } => (key, value),
            Part::ElemMatch {
                key,
                subfield,
                value,
            } => {
                let mut inner = Map::new();
                inner.insert(subfield, value);
                (key, single("$elemMatch", Value::Object(inner)))
            }
        }))
    }

    fn part(&self) -> Result<Option<Part>, RuleError> {
        if self.field.is_empty() {
            return Ok(None);
        }
        guard::check_path(&self.field, "field", true)?;
        let missing =
            |key: &str| RuleError::new(key, format!("missing (required for {} rules)", self.typ));
        let comparer = || self.comparer.as_ref().ok_or_else(|| missing("comparer"));
        let filter = || self.filter.as_ref().ok_or_else(|| missing("filter"));
        let subfilter = || self.subfilter.as_ref().ok_or_else(|| missing("subfilter"));
        let subfield = || {
            let subfield = self
                .subfield
                .as_deref()
                .ok_or_else(|| missing("subfield"))?;
            guard::check_path(subfield, "subfield", false)?;
            Ok::<_, RuleError>(subfield.to_owned())
        };
        let field = self.field.clone();
        let (key, value, source) = match self.typ {
            RuleType::String => {
                let comparer = comparer()?;
                let filter = filter()?;
                let value = match comparer {
                    Comparer::Contain => single("$regex", regex_pattern(filter)?),
                    Comparer::NotContain => single("$ne", checked(filter, "filter")?),
                    _ => checked(filter, "filter")?,
                };
                (field, value, "filter")
            }
            RuleType::Boolean => {
                let truth = matches!(filter()?, Value::String(s) if s == "true");
                (field, Value::Bool(truth), "filter")
            }
            RuleType::Select => (field, checked(filter()?, "filter")?, "filter"),
            RuleType::Object => {
                let key = format!("{field}.{}", subfield()?);
                (key, checked(subfilter()?, "subfilter")?, "subfilter")
            }
            RuleType::Array => {
                let subfield = subfield()?;
                let value = checked(subfilter()?, "subfilter")?;
                return Ok(Some(Part::ElemMatch {
                    key: field,
                    subfield,
                    value,
                }));
            }
            RuleType::Number | RuleType::Date => {
                let comparer = comparer()?;
                let value = checked(filter()?, "filter")?;
                let value = match (self.typ, comparer) {
                    (RuleType::Number, Comparer::Greater) | (RuleType::Date, Comparer::After) => {
                        single("$gte", value)
                    }
                    (RuleType::Number, Comparer::Less) | (RuleType::Date, Comparer::Before) => {
                        single("$lte", value)
                    }
                    _ => value,
                };
                (field, value, "filter")
            }
        };
        Ok(Some(Part::Plain { key, value, source }))
    }
}

/// A rule value that goes into the query as is, after [`guard::check_value`].
fn checked(value: &Value, key: &str) -> Result<Value, RuleError> {
    guard::check_value(value, key)?;
    Ok(value.clone())
}

/// The pattern of a `contain` rule: a string (MongoDB rejects anything else in `$regex`),
/// without NUL bytes. Not escaped, as in the original: `contain` is a regex match.
fn regex_pattern(filter: &Value) -> Result<Value, RuleError> {
    match filter {
        Value::String(pattern) if pattern.contains('\0') => Err(RuleError::new(
            "filter",
            "a `contain` pattern may not hold a NUL byte",
        )),
        Value::String(_) => Ok(filter.clone()),
        other => Err(RuleError::new(
            "filter",
            format!(
                "a `contain` rule needs a string (it becomes a $regex), found {}",
                guard::kind(other)
            ),
        )),
    }
}

/// What one rule contributes to a rule list's condition.
enum Part {
    /// `key: value`, overwriting an earlier rule on the same key. `source` is the rule key the
    /// value came from (`filter`/`subfilter`), for error paths.
    Plain {
        key: String,
        value: Value,
        source: &'static str,
    },
    /// One `subfield: value` pair of the `$elemMatch` on `key`.
    ElemMatch {
        key: String,
        subfield: String,
        value: Value,
    },
}

fn single(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.to_owned(), value);
    Value::Object(map)
}

/// A rule list turned into one flat condition, with where each key came from.
#[derive(Debug, Default)]
pub(crate) struct Condition {
    /// The condition, in first-insertion order (a later rule on a key keeps the key's place,
    /// like a Python dict).
    pub entries: Map<String, Value>,
    /// For each key, the path of the rule value that set it last (`filters[3].subfilter`).
    pub origin: HashMap<String, String>,
}

impl Condition {
    /// The input path to blame for a problem with `key`.
    pub(super) fn blame(&self, key: &str) -> String {
        self.origin
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_owned())
    }
}

/// Parses a rule list from its JSON text; `base` names the list in error paths.
pub(crate) fn parse_rules_at(filters_json: &str, base: &str) -> Result<Vec<Rule>, RuleError> {
    rules_from_value(&guard::parse_json(filters_json, base)?, base)
}

/// Reads a rule list from a parsed JSON value; `base` names the list in error paths.
pub(crate) fn rules_from_value(value: &Value, base: &str) -> Result<Vec<Rule>, RuleError> {
    let Value::Array(items) = value else {
        return Err(RuleError::new(
            base,
            format!(
                "must be a JSON array of rules, found {}",
                guard::kind(value)
            ),
        ));
    };
    if items.len() > MAX_RULES {
        return Err(RuleError::new(
            base,
            format!(
                "has {} rules; at most {MAX_RULES} are accepted",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{base}[{i}]");
            match item {
                Value::Object(map) => Rule::from_map(map).map_err(|e| e.under(&path)),
                other => Err(RuleError::new(
                    path,
                    format!("a rule must be a JSON object, found {}", guard::kind(other)),
                )),
            }
        })
        .collect()
}

/// Builds the flat condition of a rule list; `prefix` (`"servers."` or empty) goes before every
/// key, `base` names the list in error paths.
///
/// Array rules on the same (prefixed) key merge into one `$elemMatch`, a later subfield
/// overwriting an earlier one. Any other rule on a key replaces what was there, and a later
/// array rule then starts a new `$elemMatch`.
pub(crate) fn build_condition(
    rules: &[Rule],
    prefix: &str,
    base: &str,
) -> Result<Condition, RuleError> {
    let mut condition = Condition::default();
    let mut elem_match_keys = HashSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("{base}[{i}]");
        let Some(part) = rule.part().map_err(|e| e.under(&path))? else {
            continue;
        };
        match part {
            Part::Plain { key, value, source } => {
                let key = format!("{prefix}{key}");
                elem_match_keys.remove(&key);
                condition
                    .origin
                    .insert(key.clone(), format!("{path}.{source}"));
                condition.entries.insert(key, value);
            }
            Part::ElemMatch {
                key,
                subfield,
                value,
            } => {
                let key = format!("{prefix}{key}");
                condition
                    .origin
                    .insert(key.clone(), format!("{path}.subfilter"));
                let merged = elem_match_keys.contains(&key).then(|| {
                    condition
                        .entries
                        .get_mut(&key)
                        .and_then(|v| v.get_mut("$elemMatch"))
                        .and_then(Value::as_object_mut)
                });
                if let Some(Some(inner)) = merged {
                    inner.insert(subfield, value);
                } else {
                    let mut inner = Map::new();
                    inner.insert(subfield, value);
                    condition
                        .entries
                        .insert(key.clone(), single("$elemMatch", Value::Object(inner)));
                    elem_match_keys.insert(key);
                }
            }
        }
    }
    Ok(condition)
}

/// Parses a rule list from its JSON text (what server-app sends as `filters`).
///
/// # Errors
///
/// Invalid JSON, not an array, more than [`MAX_RULES`] rules, a string over
/// [`MAX_STRING_BYTES`](crate::report::query::MAX_STRING_BYTES), or a malformed rule (see [`Rule::from_map`]).
/// Paths name the list `filters`, e.g. `filters[2].typ`.
pub fn parse_rules(filters_json: &str) -> Result<Vec<Rule>, RuleError> {
    parse_rules_at(filters_json, "filters")
}

/// The condition of a rule list exactly as spec §2.1 describes it, before owner scoping and
/// data-app's conversions: plain JSON, ids and dates still strings.
///
/// [`general_filter`](crate::report::query::general_filter) is this plus the owner rule plus the conversions.
///
/// # Errors
///
/// As [`Rule::condition`], with paths such as `filters[2].subfield`.
pub fn rules_condition(rules: &[Rule]) -> Result<Map<String, Value>, RuleError> {
    Ok(build_condition(rules, "", "filters")?.entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(rules: Value) -> Result<Value, RuleError> {
        let rules = rules_from_value(&rules, "filters")?;
        rules_condition(&rules).map(Value::Object)
    }

    #[test]
    fn deserialize_through_serde() {
        let rule: Rule = serde_json::from_value(json!({
            "field": "name", "filter": "web", "comparer": "contain", "typ": "string", "title": "x"
        }))
        .expect("valid");
        assert_eq!(rule.typ, RuleType::String);
        assert_eq!(rule.comparer, Some(Comparer::Contain));
        assert_eq!(rule.filter, Some(json!("web")));
        assert_eq!(rule.subfield, None);

        let err = serde_json::from_value::<Rule>(json!({"field": "a", "typ": "zzz"}))
            .expect_err("refused");
        assert!(err.to_string().contains("unknown rule type"), "{err}");
    }

    #[test]
    fn null_filter_is_present() {
        let rule: Rule =
            serde_json::from_value(json!({"field": "a", "typ": "select", "filter": null}))
                .expect("valid");
        assert_eq!(rule.filter, Some(Value::Null));
        assert_eq!(
            rule.condition().expect("valid"),
            Some(("a".into(), Value::Null))
        );
    }

    #[test]
    fn comparers() {
        let c = |typ: &str, comparer: Value| {
            cond(json!([{"field": "f", "typ": typ, "filter": "v", "comparer": comparer}]))
                .expect("valid")
        };
        assert_eq!(c("string", json!("equal")), json!({"f": "v"}));
        assert_eq!(c("string", json!("greater")), json!({"f": "v"}));
        assert_eq!(c("string", json!("contain")), json!({"f": {"$regex": "v"}}));
        assert_eq!(
            c("string", json!("not contain")),
            json!({"f": {"$ne": "v"}})
        );
        assert_eq!(c("string", Value::Null), json!({"f": "v"}));
        assert_eq!(c("number", json!("greater")), json!({"f": {"$gte": "v"}}));
        assert_eq!(c("number", json!("less")), json!({"f": {"$lte": "v"}}));
        assert_eq!(c("number", json!("after")), json!({"f": "v"}));
        assert_eq!(c("date", json!("after")), json!({"f": {"$gte": "v"}}));
        assert_eq!(c("date", json!("before")), json!({"f": {"$lte": "v"}}));
        assert_eq!(c("date", json!("same")), json!({"f": "v"}));
        assert_eq!(c("date", json!("greater")), json!({"f": "v"}));
        assert_eq!(c("select", json!("contain")), json!({"f": "v"}));
    }

    #[test]
    fn boolean_only_exact_true() {
        for (filter, expected) in [
            (json!("true"), true),
            (json!("True"), false),
            (json!(true), false),
            (json!("1"), false),
            (json!(null), false),
        ] {
            let got =
                cond(json!([{"field": "a", "typ": "boolean", "filter": filter}])).expect("valid");
            assert_eq!(got, json!({ "a": expected }));
        }
    }

    #[test]
    fn empty_field_is_ignored_and_empty_list_is_empty() {
        assert_eq!(cond(json!([])).expect("valid"), json!({}));
        let got = cond(json!([{"field": "", "typ": "string"}])).expect("valid");
        assert_eq!(got, json!({}));
    }

    #[test]
    fn later_rule_overwrites_in_place() {
        let got = cond(json!([
            {"field": "a", "typ": "select", "filter": "1"},
            {"field": "b", "typ": "select", "filter": "2"},
            {"field": "a", "typ": "select", "filter": "3"},
        ]))
        .expect("valid");
        assert_eq!(
            serde_json::to_string(&got).expect("valid"),
            r#"{"a":"3","b":"2"}"#
        );
    }

    #[test]
    fn array_rules_merge_and_reset() {
        let got = cond(json!([
            {"field": "tags", "typ": "array", "subfield": "key", "subfilter": "Name"},
            {"field": "tags", "typ": "array", "subfield": "value", "subfilter": "x"},
            {"field": "tags", "typ": "array", "subfield": "key", "subfilter": "env"},
        ]))
        .expect("valid");
        assert_eq!(
            got,
            json!({"tags": {"$elemMatch": {"key": "env", "value": "x"}}})
        );

        let got = cond(json!([
            {"field": "tags", "typ": "array", "subfield": "key", "subfilter": "Name"},
            {"field": "tags", "typ": "select", "filter": "plain"},
            {"field": "tags", "typ": "array", "subfield": "value", "subfilter": "x"},
        ]))
        .expect("valid");
        assert_eq!(got, json!({"tags": {"$elemMatch": {"value": "x"}}}));
    }

    #[test]
    fn missing_keys_name_the_rule() {
        let err = |rules: Value| cond(rules).expect_err("refused");
        let e = err(json!([{"field": "a", "typ": "string", "filter": "x"}]));
        assert_eq!(e.field, "filters[0].comparer");
        let e = err(json!([{"typ": "select", "filter": "x"}]));
        assert_eq!(e.field, "filters[0].field");
        let e = err(json!([{"field": "a", "filter": "x"}]));
        assert_eq!(e.field, "filters[0].typ");
        let e = err(json!([
            {"field": "a", "typ": "select", "filter": "x"},
            {"field": "a", "typ": "select", "filter": "x"},
            {"field": "t", "typ": "array", "subfilter": "x"}
        ]));
        assert_eq!(e.field, "filters[2].subfield");
        let e = err(json!([{"field": "t", "typ": "object", "subfield": "k"}]));
        assert_eq!(e.field, "filters[0].subfilter");
        let e = err(json!([{"field": "t", "typ": "object", "subfield": 5, "subfilter": 1}]));
        assert_eq!(e.field, "filters[0].subfield");
        let e = err(json!([{"field": "a", "typ": "boolean"}]));
        assert_eq!(e.field, "filters[0].filter");
        let e = err(json!([{"field": "a", "typ": "zzz", "filter": "x"}]));
        assert_eq!(e.field, "filters[0].typ");
        assert!(e.reason.contains("\"zzz\""));
        let e = err(json!({"field": "a"}));
        assert_eq!(e.field, "filters");
        let e = err(json!(["a"]));
        assert_eq!(e.field, "filters[0]");
        let e = err(json!([{"field": 5, "typ": "select", "filter": "x"}]));
        assert_eq!(e.field, "filters[0].field");
    }

    #[test]
    fn ignored_keys_need_not_be_valid() {
        // object rules ignore filter/comparer; other types ignore a non-string subfield
        let got = cond(json!([
            {"field": "d", "typ": "object", "subfield": "_id", "subfilter": "x", "filter": {"$where": 1}},
            {"field": "n", "typ": "select", "filter": "v", "subfield": null},
        ]))
        .expect("valid");
        assert_eq!(got, json!({"d._id": "x", "n": "v"}));
    }

    #[test]
    fn refuses_operator_injection() {
        let err = |rules: Value| cond(rules).expect_err("refused");
        let e = err(json!([{"field": "$where", "typ": "select", "filter": "1"}]));
        assert_eq!(e.field, "filters[0].field");
        let e = err(json!([{"field": "a.$ne", "typ": "select", "filter": "1"}]));
        assert_eq!(e.field, "filters[0].field");
        let e = err(json!([{"field": "roles._id", "typ": "select", "filter": "1"}]));
        assert_eq!(e.field, "filters[0].field");
        let e =
            err(json!([{"field": "roles", "typ": "object", "subfield": "_id", "subfilter": "1"}]));
        assert_eq!(e.field, "filters[0].field");
        let e =
            err(json!([{"field": "roles", "typ": "array", "subfield": "_id", "subfilter": "1"}]));
        assert_eq!(e.field, "filters[0].field");
        let e =
            err(json!([{"field": "t", "typ": "array", "subfield": "$where", "subfilter": "1"}]));
        assert_eq!(e.field, "filters[0].subfield");
        let e = err(json!([{"field": "a", "typ": "select", "filter": {"$gt": ""}}]));
        assert_eq!(e.field, "filters[0].filter");
        let e = err(
            json!([{"field": "a", "typ": "string", "comparer": "not contain", "filter": [{"$gt": 1}]}]),
        );
        assert_eq!(e.field, "filters[0].filter[0]");
        let e = err(json!([{"field": "a", "typ": "string", "comparer": "contain", "filter": 5}]));
        assert_eq!(e.field, "filters[0].filter");
        let e = err(json!([{"field": "a\u{0}b", "typ": "select", "filter": "1"}]));
        assert_eq!(e.field, "filters[0].field");
        let e = err(
            json!([{"field": "a", "typ": "string", "comparer": "contain", "filter": "x\u{0}"}]),
        );
        assert_eq!(e.field, "filters[0].filter");
    }

    #[test]
    fn rule_cap() {
        let rule = json!({"field": "a", "typ": "select", "filter": "1"});
        let ok = Value::Array(vec![rule.clone(); MAX_RULES]);
        assert!(cond(ok).is_ok());
        let too_many = Value::Array(vec![rule; MAX_RULES + 1]);
        assert_eq!(cond(too_many).expect_err("refused").field, "filters");
    }
}
