//! Reports as Maestro's report-app made them: the request of `maestro.report.general` /
//! `maestro.report.pivot` (Maestro's rule lists and pivot specs), where a report lives, and
//! how it is read back.
//!
//! - `query`  rules and pivot specs into owner-scoped MongoDB filters and pipelines; the read
//!   parameters of `GET /reports/<table>`
//! - `render` a page of rows in every format server-app asks for (JSON, CSV, XML, text,
//!   Ansible inventory); the columns and chart aggregations of a finished report
//!
//! Rows are the collection `<report_id>_<kind>` in `MAESTRO_REPORTS_DATABASE`. When a report
//! ends, its status, message, columns and charts are written onto server-app's report
//! document (`maestro-client.reports`); this project also keeps a summary (row count,
//! columns) in the reports database's `reports` collection.

use maestro_tasks::FieldError;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::check::{check_id, null_as_default};

pub mod query;
pub mod render;

/// Where report summaries are kept (in the reports database).
pub const SUMMARY_COLLECTION: &str = "reports";

/// server-app's report documents (in `maestro-client`): a finished report's status, message,
/// columns and charts are written onto its document here.
pub const MAESTRO_REPORTS_COLLECTION: &str = "reports";

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
/// `maestro.report.pivot(...)`: Maestro's report bodies, as server-app sends them to
/// `POST|PATCH /reports/general|pivot`.
///
/// `filters` is Maestro's JSON text (a string holding a rule list for a general report, an
/// object `{clients|systems|applications|servers: {enabled, filters}}` for a pivot); the list
/// or object itself is taken too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"report_id": "5f1a2b3c4d5e6f7a8b9c0d1e", "component": "Servers", "filters": "[{\"field\": \"active\", \"filter\": \"true\", \"comparer\": \"equal\", \"typ\": \"boolean\"}]", "owner_user": "5f0000000000000000000001"})))]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// The report's id (server-app's report document); rows land in `<report_id>_<kind>`.
    pub report_id: String,
    /// The rules, as Maestro's JSON text.
    #[serde(deserialize_with = "filters_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub filters: String,
    /// The inventory entity reported on, as the UI names it (`Servers`); a pivot starts from
    /// its first enabled level instead.
    #[serde(default, deserialize_with = "null_as_default")]
    pub component: Option<String>,
    /// The user whose inventory is read (24-hex id).
    pub owner_user: String,
}

/// The task's call binds to the request: `#[args] req: ReportRequest` in a `#[task]`.
impl maestro_tasks::CallArgs for ReportRequest {
    const PARAMETERS: &'static [&'static str] = &ReportRequest::PARAMS;
}

impl ReportRequest {
    /// The task's parameters, in order.
    pub const PARAMS: [&'static str; 4] = ["report_id", "filters", "component", "owner_user"];

    /// The report's rows collection for `kind`.
    pub fn collection(&self, kind: ReportKind) -> String {
        rows_collection(&self.report_id, kind)
    }

    /// What a report of `kind` reads: the collection and the `find` filter of a general report,
    /// or the start collection and the pipeline of a pivot; errors name the field.
    pub fn plan(&self, kind: ReportKind) -> Result<ReportPlan, FieldError> {
        check_id("report_id", &self.report_id)?;
        match kind {
            ReportKind::Pivot => {
                let (start, pipeline) =
                    query::pivot_pipeline(&self.filters, &self.owner_user).map_err(rule_error)?;
                Ok(ReportPlan::Pivot { start, pipeline })
            }
            _ => {
                let component = self
                    .component
                    .as_deref()
                    .ok_or_else(|| FieldError::type_("component", "missing field `component`"))?;
                let collection = query::collection_of(component)
                    .map_err(|e| FieldError::value("component", e.reason))?;
                let filter =
                    query::general_filter(&self.filters, &self.owner_user).map_err(rule_error)?;
                Ok(ReportPlan::General { collection, filter })
            }
        }
    }

    /// Checks the request for a report of `kind` (see [`plan`](Self::plan)).
    pub fn validate_for(&self, kind: ReportKind) -> Result<(), FieldError> {
        self.plan(kind).map(|_| ())
    }
}

/// What a report reads.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportPlan {
    General {
        collection: String,
        filter: bson::Document,
    },
    Pivot {
        start: String,
        pipeline: Vec<bson::Document>,
    },
}

/// A rule's error as a field of the request (`filters[2].subfield`, `owner_user`).
fn rule_error(e: query::RuleError) -> FieldError {
    FieldError::value(e.field, e.reason)
}

/// Maestro's filters as JSON text: a string is taken as it is (server-app sends
/// `JSON.stringify(rules, null, 2)`), a list or object is written out.
fn filters_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        v @ (Value::Array(_) | Value::Object(_)) => Ok(v.to_string()),
        _ => Err(D::Error::custom(
            "must be Maestro's rules: a JSON string, a list or an object",
        )),
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
    /// Rows of this chunk the report task stored itself (a chunk over
    /// [`CHUNK_BYTES_MAX`] is not carried in a message), counted in the chunk's result.
    #[serde(default)]
    pub stored: u64,
}

/// Most bytes of rows (as JSON) one chunk message carries; a chunk that would be larger is
/// stored by the report task itself, so no message of the report path is large enough to
/// exhaust a worker's memory when prefetched.
pub const CHUNK_BYTES_MAX: usize = 1024 * 1024;

/// The task's call binds to the request: `#[args] req: UploadRequest` in a `#[task]`.
impl maestro_tasks::CallArgs for UploadRequest {
    const PARAMETERS: &'static [&'static str] = &UploadRequest::PARAMS;
}

impl UploadRequest {
    /// The task's parameters, in order.
    pub const PARAMS: [&'static str; 4] = ["collection", "chunk", "rows", "stored"];

    pub fn validate(&self) -> Result<(), FieldError> {
        check_id("collection", &self.collection)
    }
}

/// `maestro.report.finish(chunk_results, report_id, kind, collection, owner_user, entity)`: a
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
    /// The inventory entity the rows come from (`servers`), which picks the charts drawn;
    /// absent for a pivot.
    #[serde(default, deserialize_with = "null_as_default")]
    pub entity: Option<String>,
}

/// The task's call binds to the request: `#[args] req: FinishRequest` in a `#[task]`.
impl maestro_tasks::CallArgs for FinishRequest {
    const PARAMETERS: &'static [&'static str] = &FinishRequest::PARAMS;
}

impl FinishRequest {
    /// The task's parameters, in order.
    pub const PARAMS: [&'static str; 6] = [
        "chunk_results",
        "report_id",
        "kind",
        "collection",
        "owner_user",
        "entity",
    ];

    pub fn validate(&self) -> Result<(), FieldError> {
        check_id("report_id", &self.report_id)?;
        check_id("collection", &self.collection)?;
        check_id("owner_user", &self.owner_user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestro_tasks::field::from_json_value;
    use serde_json::json;

    const OWNER: &str = "5f0000000000000000000001";

    fn req(v: Value) -> Result<ReportRequest, FieldError> {
        from_json_value::<ReportRequest>(&v)
    }

    #[test]
    fn maestro_bodies_as_server_app_sends_them() {
        let rules = "[\n  {\n    \"field\": \"active\",\n    \"filter\": \"true\",\n    \"comparer\": \"equal\",\n    \"typ\": \"boolean\"\n  }\n]";
        let r = req(
            json!({"report_id": "5f1a2b3c4d5e6f7a8b9c0d1e", "component": "Servers",
            "filters": rules, "owner_user": OWNER}),
        )
        .expect("valid");
        assert_eq!(r.filters, rules, "the text is kept as sent");
        let ReportPlan::General { collection, filter } = r.plan(ReportKind::General).expect("plan")
        else {
            panic!("general")
        };
        assert_eq!(collection, "servers");
        assert_eq!(filter.get_bool("active"), Ok(true));
        assert!(matches!(
            filter.get("roles._id"),
            Some(bson::Bson::ObjectId(_))
        ));
        assert_eq!(
            r.collection(ReportKind::General),
            "5f1a2b3c4d5e6f7a8b9c0d1e_general"
        );
        let listed = req(json!({"report_id": "r1", "component": "Servers",
            "filters": [{"field": "name", "filter": "web", "comparer": "contain", "typ": "string"}],
            "owner_user": OWNER}))
        .expect("a list is taken too");
        assert!(listed.validate_for(ReportKind::General).is_ok());
    }

    #[test]
    fn a_pivot_needs_no_component() {
        let spec = json!({"clients": {"enabled": true, "filters": []},
            "systems": {"enabled": true, "filters": []}})
        .to_string();
        let r = req(json!({"report_id": "r1", "filters": spec, "owner_user": OWNER})).expect("ok");
        let ReportPlan::Pivot { start, pipeline } = r.plan(ReportKind::Pivot).expect("plan") else {
            panic!("pivot")
        };
        assert_eq!(start, "clients");
        assert_eq!(pipeline.len(), 4);
        assert_eq!(
            r.validate_for(ReportKind::General)
                .expect_err("needs one")
                .field,
            "component"
        );
    }

    #[test]
    fn bad_requests_name_the_field() {
        let field = |v: Value, kind| {
            req(v)
                .and_then(|r| r.validate_for(kind))
                .expect_err("refused")
                .field
        };
        let ok = json!({"report_id": "r1", "component": "Servers", "filters": "[]", "owner_user": OWNER});
        let with = |k: &str, v: Value| {
            let mut o = ok.clone();
            o[k] = v;
            o
        };
        assert_eq!(
            field(with("filters", json!(3)), ReportKind::General),
            "filters"
        );
        assert_eq!(
            field(with("filters", json!("not json")), ReportKind::General),
            "filters"
        );
        assert_eq!(
            field(with("owner_user", json!("u1")), ReportKind::General),
            "owner_user"
        );
        assert_eq!(
            field(with("component", json!("Connections")), ReportKind::General),
            "component"
        );
        assert_eq!(
            field(with("report_id", json!("a b")), ReportKind::General),
            "report_id"
        );
        let roles = json!(
            "[{\"field\": \"roles._id\", \"filter\": \"x\", \"comparer\": \"equal\", \"typ\": \"string\"}]"
        );
        assert!(field(with("filters", roles), ReportKind::General).starts_with("filters"));
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
