//! `maestro.aggregation(collection, pipeline, report_id=None)`: a stored MongoDB aggregation
//! pipeline over an inventory collection, its output written as report `<report_id>` of kind
//! `aggregation`.

use maestro_tasks::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::check::null_as_default;
use crate::check::{check_collection, check_id};
use crate::report::{ReportKind, rows_collection};

/// Most stages in a pipeline.
pub const PIPELINE_STAGES_MAX: usize = 64;

/// The request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"collection": "servers", "pipeline": [{"$match": {"active": true}}, {"$count": "n"}], "report_id": "r1"})))]
#[serde(deny_unknown_fields)]
pub struct AggregationRequest {
    /// The collection the pipeline runs over.
    pub collection: String,
    /// MongoDB aggregation stages, each an object with one `$` operator (extended JSON for
    /// dates and ObjectIds).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub pipeline: Vec<Value>,
    /// The report the result belongs to; the task's id when not given.
    #[serde(default, deserialize_with = "null_as_default")]
    pub report_id: Option<String>,
}

impl AggregationRequest {
    /// The task's parameters, in order.
    pub const PARAMS: [&'static str; 3] = ["collection", "pipeline", "report_id"];

    /// Checks the collection, the report id and the stages' shape (`$out` and `$merge` are
    /// refused: the task stores the output itself).
    pub fn validate(&self) -> Result<(), FieldError> {
        check_collection("collection", &self.collection)?;
        if let Some(r) = &self.report_id {
            check_id("report_id", r)?;
        }
        if self.pipeline.is_empty() || self.pipeline.len() > PIPELINE_STAGES_MAX {
            return Err(FieldError::value(
                "pipeline",
                format!("must hold 1 to {PIPELINE_STAGES_MAX} stages"),
            ));
        }
        for (i, stage) in self.pipeline.iter().enumerate() {
            let field = format!("pipeline[{i}]");
            let Value::Object(m) = stage else {
                return Err(FieldError::value(field, "must be an object (one stage)"));
            };
            let mut keys = m.keys();
            let (Some(op), None) = (keys.next(), keys.next()) else {
                return Err(FieldError::value(
                    field,
                    "must have exactly one key (a stage)",
                ));
            };
            if !op.starts_with('$') {
                return Err(FieldError::value(
                    field,
                    format!("{op:?} is not a stage operator ($...)"),
                ));
            }
            if op == "$out" || op == "$merge" {
                return Err(FieldError::value(
                    field,
                    format!("{op} is not allowed: the task stores the result itself"),
                ));
            }
        }
        Ok(())
    }

    /// The output collection, for a run whose task id is `task_id`.
    pub fn target(&self, task_id: &str) -> String {
        rows_collection(
            self.report_id.as_deref().unwrap_or(task_id),
            ReportKind::Aggregation,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(pipeline: Value) -> Option<String> {
        let a = AggregationRequest {
            collection: "servers".into(),
            pipeline: serde_json::from_value(pipeline).expect("array"),
            report_id: None,
        };
        a.validate().err().map(|e| e.field)
    }

    #[test]
    fn aggregation_stages() {
        assert_eq!(field(json!([{"$match": {}}])), None);
        assert_eq!(field(json!([])).as_deref(), Some("pipeline"));
        assert_eq!(
            field(json!([{"$match": {}}, {"a": 1}])).as_deref(),
            Some("pipeline[1]")
        );
        assert_eq!(
            field(json!([{"$out": "x"}])).as_deref(),
            Some("pipeline[0]")
        );
        assert_eq!(field(json!([1])).as_deref(), Some("pipeline[0]"));
        let a = AggregationRequest {
            collection: "system.users".into(),
            pipeline: vec![json!({"$match": {}})],
            report_id: Some("r1".into()),
        };
        assert_eq!(a.validate().expect_err("system").field, "collection");
        assert_eq!(a.target("t-1"), "r1_aggregation");
    }
}
