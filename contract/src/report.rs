//! Reports: the request of `maestro.report.general` / `maestro.report.pivot`, and where a
//! report lives. Rows are the collection `<report_id>_<kind>` in `MAESTRO_REPORTS_DATABASE`;
//! the report's summary (status, row count, columns) is a document in that database's
//! `reports` collection, written when the last chunk is stored.

use maestro_tasks::FieldError;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::check::check_id;

/// Where report summaries are kept (in the reports database).
pub const SUMMARY_COLLECTION: &str = "reports";

/// Operators that run code on the server; never accepted in report filters.
pub const FORBIDDEN_OPERATORS: [&str; 3] = ["$where", "$function", "$accumulator"];

/// What a report holds: an inventory query, a pivot, or an aggregation's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    General,
    Pivot,
    Aggregation,
}

impl ReportKind {
    /// Every kind, in the order of their names in [`ReportKind::NAMES`].
    pub const ALL: [ReportKind; 3] = [Self::General, Self::Pivot, Self::Aggregation];
    /// The kinds' names.
    pub const NAMES: [&'static str; 3] = ["general", "pivot", "aggregation"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::Pivot => "pivot",
            Self::Aggregation => "aggregation",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// The collection holding the rows of report `report_id` of `kind`: `<report_id>_<kind>`.
pub fn rows_collection(report_id: &str, kind: ReportKind) -> String {
    format!("{report_id}_{}", kind.as_str())
}

/// `maestro.report.general(report_id, filters, component, owner_user)` and
/// `maestro.report.pivot(...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"report_id": "r1", "filters": {"status": "active"}, "component": "servers", "owner_user": "u1"})))]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// The report's id; rows land in collection `<report_id>_<general|pivot>`.
    pub report_id: String,
    /// Query filters: an object, or (as Maestro sent it) a JSON string holding one. For a
    /// pivot, `pivot: [{from, local_field, foreign_field, as}]` lists the joins.
    #[serde(default, deserialize_with = "filters")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub filters: Map<String, Value>,
    /// The inventory entity reported on (e.g. `servers`).
    pub component: String,
    /// Id of the user whose inventory is read.
    pub owner_user: String,
}

/// One join of a pivot report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PivotJoin {
    /// The collection joined.
    pub from: String,
    pub local_field: String,
    pub foreign_field: String,
    /// Where the joined document goes in each row.
    pub as_: String,
}

impl ReportRequest {
    /// The task's parameters, in order.
    pub const PARAMS: [&'static str; 4] = ["report_id", "filters", "component", "owner_user"];

    /// Checks the ids and the filters (no server-side code, well-formed joins).
    pub fn validate(&self) -> Result<(), FieldError> {
        check_id("report_id", &self.report_id)?;
        check_id("component", &self.component)?;
        check_id("owner_user", &self.owner_user)?;
        check_operators("filters", &Value::Object(self.filters.clone()))?;
        self.joins().map(|_| ())
    }

    /// The report's rows collection for `kind`.
    pub fn collection(&self, kind: ReportKind) -> String {
        rows_collection(&self.report_id, kind)
    }

    /// The filters without the pivot's joins: the query on the owner's items.
    pub fn query(&self) -> Map<String, Value> {
        let mut m = self.filters.clone();
        m.remove("pivot");
        m
    }

    /// A pivot's joins (`filters.pivot`), in order.
    pub fn joins(&self) -> Result<Vec<PivotJoin>, FieldError> {
        let joins = match self.filters.get("pivot") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(FieldError::value(
                    "filters.pivot",
                    "must be a list of {from, local_field, foreign_field, as}",
                ));
            }
        };
        joins
            .iter()
            .enumerate()
            .map(|(i, join)| {
                let field = |name: &str| match join.get(name).and_then(Value::as_str) {
                    Some(s) if !s.is_empty() && !s.starts_with('$') => Ok(s.to_owned()),
                    _ => Err(FieldError::value(
                        format!("filters.pivot[{i}].{name}"),
                        "must be a non-empty field or collection name",
                    )),
                };
                let from = field("from")?;
                check_id(&format!("filters.pivot[{i}].from"), &from)?;
                Ok(PivotJoin {
                    from,
                    local_field: field("local_field")?,
                    foreign_field: field("foreign_field")?,
                    as_: field("as")?,
                })
            })
            .collect()
    }
}

/// `maestro.report.upload(collection, chunk, rows)`: one chunk of a report's rows, sent by
/// the report task as a chord member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The report's rows collection.
    pub collection: String,
    /// The chunk's index in the chord.
    pub chunk: u64,
    /// The rows, as relaxed extended JSON.
    pub rows: Vec<Value>,
}

impl UploadRequest {
    /// The task's parameters, in order.
    pub const PARAMS: [&'static str; 3] = ["collection", "chunk", "rows"];

    pub fn validate(&self) -> Result<(), FieldError> {
        check_id("collection", &self.collection)
    }
}

/// `maestro.report.finish(chunk_results, report_id, kind, collection, owner_user)`: a
/// report's chord callback, with the chunks' results first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishRequest {
    /// Each chunk's `{chunk, rows, columns: {name: filled}}`, in chunk order.
    pub chunk_results: Vec<Value>,
    pub report_id: String,
    pub kind: ReportKind,
    pub collection: String,
    pub owner_user: String,
}

impl FinishRequest {
    /// The task's parameters, in order.
    pub const PARAMS: [&'static str; 5] = [
        "chunk_results",
        "report_id",
        "kind",
        "collection",
        "owner_user",
    ];

    pub fn validate(&self) -> Result<(), FieldError> {
        check_id("report_id", &self.report_id)?;
        check_id("collection", &self.collection)?;
        check_id("owner_user", &self.owner_user)
    }
}

/// Filters as an object, from an object, a JSON string holding one (Maestro's report-app
/// sent them so), an empty string or null.
fn filters<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(D::Error::custom("the JSON string must hold an object")),
            Err(e) => Err(D::Error::custom(format!("the string is not JSON: {e}"))),
        },
        Some(_) => Err(D::Error::custom(
            "must be an object or a JSON string holding one",
        )),
    }
}

/// Refuses operators that run code on the server, anywhere in `v`.
pub fn check_operators(path: &str, v: &Value) -> Result<(), FieldError> {
    match v {
        Value::Object(m) => m.iter().try_for_each(|(k, v)| {
            if FORBIDDEN_OPERATORS.contains(&k.as_str()) {
                return Err(FieldError::value(
                    format!("{path}.{k}"),
                    "is an operator that runs code on the server; not accepted",
                ));
            }
            check_operators(&format!("{path}.{k}"), v)
        }),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_operators(&format!("{path}[{i}]"), v)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestro_tasks::field::from_json_value;
    use serde_json::json;

    fn parse(v: Value) -> Result<ReportRequest, FieldError> {
        from_json_value::<ReportRequest>(&v).and_then(|r| r.validate().map(|()| r))
    }

    #[test]
    fn report_filters_accept_object_or_json_string() {
        let base = json!({"report_id": "r1", "component": "servers", "owner_user": "u1"});
        let with = |filters: Value| {
            let mut v = base.clone();
            v["filters"] = filters;
            parse(v)
        };
        let r = with(json!("{\"status\":\"active\"}")).expect("valid");
        assert_eq!(
            Value::Object(r.filters.clone()),
            json!({"status": "active"})
        );
        assert_eq!(r.collection(ReportKind::Pivot), "r1_pivot");
        assert!(with(json!(null)).expect("null").filters.is_empty());
        assert_eq!(with(json!("[1]")).expect_err("array").field, "filters");
        assert_eq!(with(json!(3)).expect_err("number").field, "filters");
        assert_eq!(
            with(json!({"$where": "1"})).expect_err("code").field,
            "filters.$where"
        );
        let e = with(json!({"pivot": [{"from": "apps", "local_field": "a", "as": "x"}]}))
            .expect_err("join");
        assert_eq!(e.field, "filters.pivot[0].foreign_field");
    }

    #[test]
    fn kinds_have_names() {
        for (k, n) in ReportKind::ALL.iter().zip(ReportKind::NAMES) {
            assert_eq!(k.as_str(), n);
            assert_eq!(ReportKind::parse(n), Some(*k));
        }
        assert_eq!(rows_collection("r", ReportKind::General), "r_general");
    }
}
