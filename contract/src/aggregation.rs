//! `maestro.aggregation(collection, pipeline, owner_user, report_id=None)`: a stored MongoDB
//! aggregation pipeline over one owner's part of an inventory collection, its output written as
//! report `<report_id>` of kind `aggregation`.
//!
//! What a pipeline may do is an allowlist, checked recursively (inside `$facet` and
//! `$lookup.pipeline` too):
//! - sources and `$lookup` joins only over the inventory entities of
//!   [`REPORT_COLLECTIONS`] (never `connections`, whose `conn` tokens hold cloud keys, nor
//!   `users` or `teams`);
//! - only the stages in [`STAGES`] (no `$out`/`$merge`, `$unionWith`, `$graphLookup`,
//!   `$collStats`, `$changeStream`, `$documents`, ...);
//! - no server-side JavaScript anywhere (`$where`, `$function`, `$accumulator`).
//!
//! [`AggregationRequest::scoped_pipeline`] then scopes it to the owner: a leading
//! `{"$match": {"roles._id": owner}}`, and every `$lookup` keeps only the owner's documents
//! (a `$match` first in its pipeline, or, for the `localField`/`foreignField` form, a `$filter`
//! over the joined array right after it), so a join cannot reach another tenant's documents.

use maestro_tasks::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::check::null_as_default;
use crate::check::{check_collection, check_id};
use crate::report::query::REPORT_COLLECTIONS;
use crate::report::{ReportKind, rows_collection};

/// Most stages in a pipeline, nested ones (in `$facet` and `$lookup`) included.
pub const PIPELINE_STAGES_MAX: usize = 64;
/// Deepest nesting of pipelines (`$facet` and `$lookup.pipeline` inside each other).
pub const PIPELINE_DEPTH_MAX: usize = 4;

/// The stages a pipeline may use.
pub const STAGES: [&str; 20] = [
    "$addFields",
    "$bucket",
    "$bucketAuto",
    "$count",
    "$facet",
    "$group",
    "$limit",
    "$lookup",
    "$match",
    "$project",
    "$replaceRoot",
    "$replaceWith",
    "$sample",
    "$set",
    "$setWindowFields",
    "$skip",
    "$sort",
    "$sortByCount",
    "$unset",
    "$unwind",
];

/// Operators refused anywhere in a pipeline: they run JavaScript on the server.
pub const JAVASCRIPT_OPERATORS: [&str; 3] = ["$where", "$function", "$accumulator"];

/// The request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"collection": "servers", "pipeline": [{"$match": {"active": true}}, {"$count": "n"}], "owner_user": "5f0000000000000000000001", "report_id": "r1"})))]
#[serde(deny_unknown_fields)]
pub struct AggregationRequest {
    /// The inventory collection the pipeline runs over (one of the report components:
    /// servers, applications, systems, clients, datacenters, volumes, images, networks,
    /// snapshots, flavors, projects).
    pub collection: String,
    /// MongoDB aggregation stages, each an object with one allowed `$` stage (extended JSON
    /// for dates and ObjectIds).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub pipeline: Vec<Value>,
    /// The owner (a 24-hex-digit ObjectId): only documents whose `roles._id` holds it are read,
    /// joins included.
    pub owner_user: String,
    /// The report the result belongs to; the task's id when not given.
    #[serde(default, deserialize_with = "null_as_default")]
    pub report_id: Option<String>,
}

/// The task's call binds to the request: `#[args] req: AggregationRequest` in a `#[task]`.
impl maestro_tasks::CallArgs for AggregationRequest {
    const PARAMETERS: &'static [&'static str] = &AggregationRequest::PARAMS;
}

impl AggregationRequest {
    /// The task's parameters, in order.
    pub const PARAMS: [&'static str; 4] = ["collection", "pipeline", "owner_user", "report_id"];

    /// Checks the collection, the owner, the report id and every stage (see the module
    /// documentation for what is allowed).
    pub fn validate(&self) -> Result<(), FieldError> {
        check_collection("collection", &self.collection)?;
        check_inventory("collection", &self.collection)?;
        check_owner(&self.owner_user)?;
        if let Some(r) = &self.report_id {
            check_id("report_id", r)?;
        }
        if self.pipeline.is_empty() {
            return Err(FieldError::value(
                "pipeline",
                format!("must hold 1 to {PIPELINE_STAGES_MAX} stages"),
            ));
        }
        let mut count = 0;
        check_pipeline(&self.pipeline, "pipeline", 1, false, &mut count)
    }

    /// The pipeline to run: the checked stages scoped to the owner (a leading `$match` on
    /// `roles._id`, and every `$lookup` limited to the owner's documents). Call after
    /// [`validate`](Self::validate).
    pub fn scoped_pipeline(&self) -> Vec<Value> {
        let owner = json!({"$oid": self.owner_user.to_ascii_lowercase()});
        let mut stages = vec![json!({"$match": {"roles._id": owner}})];
        stages.extend(scope_stages(&self.pipeline, &owner));
        stages
    }

    /// The output collection, for a run whose task id is `task_id`.
    pub fn target(&self, task_id: &str) -> String {
        rows_collection(
            self.report_id.as_deref().unwrap_or(task_id),
            ReportKind::Aggregation,
        )
    }
}

fn check_inventory(field: &str, collection: &str) -> Result<(), FieldError> {
    if REPORT_COLLECTIONS.contains(&collection) {
        return Ok(());
    }
    Err(FieldError::value(
        field,
        format!(
            "{collection:?} is not an inventory collection; expected one of {}",
            REPORT_COLLECTIONS.join(", ")
        ),
    ))
}

fn check_owner(owner: &str) -> Result<(), FieldError> {
    if owner.len() == 24 && owner.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(());
    }
    Err(FieldError::value(
        "owner_user",
        "must be a 24-hex-digit ObjectId",
    ))
}

/// Checks `stages` (at `field`, nested `depth` deep) and adds them to `count`.
fn check_pipeline(
    stages: &[Value],
    field: &str,
    depth: usize,
    in_facet: bool,
    count: &mut usize,
) -> Result<(), FieldError> {
    if depth > PIPELINE_DEPTH_MAX {
        return Err(FieldError::value(
            field,
            format!("nests pipelines more than {PIPELINE_DEPTH_MAX} deep"),
        ));
    }
    for (i, stage) in stages.iter().enumerate() {
        let field = format!("{field}[{i}]");
        *count += 1;
        if *count > PIPELINE_STAGES_MAX {
            return Err(FieldError::value(
                field,
                format!(
                    "the pipeline holds more than {PIPELINE_STAGES_MAX} stages, nested ones included"
                ),
            ));
        }
        let Value::Object(m) = stage else {
            return Err(FieldError::value(field, "must be an object (one stage)"));
        };
        let mut keys = m.iter();
        let (Some((op, body)), None) = (keys.next(), keys.next()) else {
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
        if !STAGES.contains(&op.as_str()) || (in_facet && op == "$facet") {
            let why = match op.as_str() {
                "$out" | "$merge" => {
                    format!("{op} is not allowed: the task stores the result itself")
                }
                "$facet" => "$facet is not allowed inside $facet".to_owned(),
                _ => format!(
                    "{op} is not an allowed stage; allowed: {}",
                    STAGES.join(", ")
                ),
            };
            return Err(FieldError::value(field, why));
        }
        let at = format!("{field}.{op}");
        match op.as_str() {
            "$facet" => {
                let Value::Object(facets) = body else {
                    return Err(FieldError::value(at, "must be an object of pipelines"));
                };
                for (name, sub) in facets {
                    let at = format!("{at}.{name}");
                    let Value::Array(sub) = sub else {
                        return Err(FieldError::value(at, "must be a pipeline (an array)"));
                    };
                    check_pipeline(sub, &at, depth + 1, true, count)?;
                }
            }
            "$lookup" => check_lookup(body, &at, depth, in_facet, count)?,
            _ => check_no_javascript(body, &at)?,
        }
    }
    Ok(())
}

fn check_lookup(
    body: &Value,
    at: &str,
    depth: usize,
    in_facet: bool,
    count: &mut usize,
) -> Result<(), FieldError> {
    let Value::Object(l) = body else {
        return Err(FieldError::value(at, "must be an object"));
    };
    match l.get("from") {
        Some(Value::String(from)) => check_inventory(&format!("{at}.from"), from)?,
        _ => {
            return Err(FieldError::value(
                format!("{at}.from"),
                "must name an inventory collection",
            ));
        }
    }
    if !matches!(l.get("as"), Some(Value::String(s)) if !s.is_empty() && !s.starts_with('$')) {
        return Err(FieldError::value(
            format!("{at}.as"),
            "must be a field name",
        ));
    }
    for (key, value) in l {
        match key.as_str() {
            "from" | "as" => {}
            "localField" | "foreignField" => {
                if !value.is_string() {
                    return Err(FieldError::value(
                        format!("{at}.{key}"),
                        "must be a field path",
                    ));
                }
            }
            "let" => check_no_javascript(value, &format!("{at}.let"))?,
            "pipeline" => {
                let Value::Array(sub) = value else {
                    return Err(FieldError::value(
                        format!("{at}.pipeline"),
                        "must be an array",
                    ));
                };
                check_pipeline(sub, &format!("{at}.pipeline"), depth + 1, in_facet, count)?;
            }
            other => {
                return Err(FieldError::value(
                    format!("{at}.{other}"),
                    "is not a $lookup field (from, localField, foreignField, let, pipeline, as)",
                ));
            }
        }
    }
    Ok(())
}

/// Refuses the [`JAVASCRIPT_OPERATORS`] anywhere inside `value`.
fn check_no_javascript(value: &Value, at: &str) -> Result<(), FieldError> {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                if JAVASCRIPT_OPERATORS.contains(&k.as_str()) {
                    return Err(FieldError::value(
                        format!("{at}.{k}"),
                        format!("{k} is not allowed: it runs JavaScript on the server"),
                    ));
                }
                check_no_javascript(v, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_no_javascript(v, &format!("{at}[{i}]"))),
        _ => Ok(()),
    }
}

/// The expression of the owner ids in `roles` (an array of `{_id, ...}`; none when missing).
fn owner_ids(roles: &str) -> Value {
    json!({"$map": {"input": {"$ifNull": [roles, []]}, "as": "r", "in": "$$r._id"}})
}

/// `stages` with every `$lookup` (nested ones too) limited to the owner's documents.
fn scope_stages(stages: &[Value], owner: &Value) -> Vec<Value> {
    let mut out = Vec::with_capacity(stages.len());
    for stage in stages {
        let Some((op, body)) = stage.as_object().and_then(|m| m.iter().next()) else {
            out.push(stage.clone());
            continue;
        };
        match (op.as_str(), body) {
            ("$facet", Value::Object(facets)) => {
                let scoped: Map<String, Value> = facets
                    .iter()
                    .map(|(name, sub)| {
                        let sub = sub.as_array().map(Vec::as_slice).unwrap_or_default();
                        (name.clone(), Value::Array(scope_stages(sub, owner)))
                    })
                    .collect();
                out.push(json!({"$facet": scoped}));
            }
            ("$lookup", Value::Object(l)) => {
                let mut l = l.clone();
                if let Some(Value::Array(sub)) = l.get("pipeline") {
                    let mut scoped = vec![json!({"$match": {"roles._id": owner}})];
                    scoped.extend(scope_stages(sub, owner));
                    l.insert("pipeline".into(), Value::Array(scoped));
                    out.push(json!({"$lookup": l}));
                } else {
                    // The localField/foreignField form (any MongoDB version): keep the joined
                    // documents whose roles hold the owner.
                    let as_field = l
                        .get("as")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    out.push(json!({"$lookup": l}));
                    out.push(json!({"$set": {&as_field: {"$filter": {
                        "input": format!("${as_field}"),
                        "cond": {"$in": [owner, owner_ids("$$this.roles")]},
                    }}}}));
                }
            }
            _ => out.push(stage.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "5f0000000000000000000001";

    fn request(collection: &str, pipeline: Value) -> AggregationRequest {
        AggregationRequest {
            collection: collection.into(),
            pipeline: serde_json::from_value(pipeline).expect("array"),
            owner_user: OWNER.into(),
            report_id: None,
        }
    }

    fn field(pipeline: Value) -> Option<String> {
        request("servers", pipeline)
            .validate()
            .err()
            .map(|e| e.field)
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
        let mut a = request("system.users", json!([{"$match": {}}]));
        a.report_id = Some("r1".into());
        assert_eq!(a.validate().expect_err("system").field, "collection");
        assert_eq!(a.target("t-1"), "r1_aggregation");
    }

    #[test]
    fn only_inventory_collections_are_read_or_joined() {
        for c in ["connections", "users", "teams", "events", "schedulers"] {
            let e = request(c, json!([{"$match": {}}])).validate().expect_err(c);
            assert_eq!(e.field, "collection", "{c}");
        }
        let join = |from: &str| json!([{"$lookup": {"from": from, "localField": "_id", "foreignField": "x", "as": "j"}}]);
        assert_eq!(field(join("applications")), None);
        assert_eq!(
            field(join("connections")).as_deref(),
            Some("pipeline[0].$lookup.from")
        );
        let nested =
            json!([{"$facet": {"a": [{"$lookup": {"from": "users", "pipeline": [], "as": "u"}}]}}]);
        assert_eq!(
            field(nested).as_deref(),
            Some("pipeline[0].$facet.a[0].$lookup.from")
        );
        let deep = json!([{"$lookup": {"from": "systems", "as": "s", "pipeline": [
            {"$lookup": {"from": "connections", "as": "c", "pipeline": []}}]}}]);
        assert_eq!(
            field(deep).as_deref(),
            Some("pipeline[0].$lookup.pipeline[0].$lookup.from")
        );
        let odd = json!([{"$lookup": {"from": {"db": "admin", "coll": "x"}, "as": "j"}}]);
        assert_eq!(field(odd).as_deref(), Some("pipeline[0].$lookup.from"));
    }

    #[test]
    fn stages_outside_the_allowlist_and_javascript_are_refused() {
        for op in [
            "$unionWith",
            "$graphLookup",
            "$collStats",
            "$indexStats",
            "$changeStream",
            "$documents",
            "$currentOp",
            "$merge",
            "$planCacheStats",
        ] {
            let e = request("servers", json!([{op: {}}]))
                .validate()
                .expect_err(op);
            assert_eq!(e.field, "pipeline[0]", "{op}");
        }
        let facet = json!([{"$facet": {"x": [{"$unionWith": "users"}]}}]);
        assert_eq!(field(facet).as_deref(), Some("pipeline[0].$facet.x[0]"));
        let facet_in_facet = json!([{"$facet": {"x": [{"$facet": {}}]}}]);
        assert_eq!(
            field(facet_in_facet).as_deref(),
            Some("pipeline[0].$facet.x[0]")
        );
        let js = json!([{"$match": {"$where": "while(true){}"}}]);
        assert_eq!(field(js).as_deref(), Some("pipeline[0].$match.$where"));
        let js = json!([{"$group": {"_id": null, "x": {"$accumulator": {}}}}]);
        assert_eq!(
            field(js).as_deref(),
            Some("pipeline[0].$group.x.$accumulator")
        );
        let js = json!([{"$lookup": {"from": "systems", "as": "s", "let": {"v": {"$function": {}}}, "pipeline": []}}]);
        assert_eq!(
            field(js).as_deref(),
            Some("pipeline[0].$lookup.let.v.$function")
        );
        let js = json!([{"$facet": {"a": [{"$project": {"x": [{"$function": {}}]}}]}}]);
        assert_eq!(
            field(js).as_deref(),
            Some("pipeline[0].$facet.a[0].$project.x[0].$function")
        );
    }

    #[test]
    fn nesting_and_size_are_bounded() {
        let mut p = json!([{"$match": {}}]);
        for _ in 0..PIPELINE_DEPTH_MAX {
            p = json!([{"$lookup": {"from": "servers", "as": "s", "pipeline": p}}]);
        }
        assert!(field(p).expect("too deep").contains("$lookup.pipeline"));
        let many: Vec<Value> = (0..=PIPELINE_STAGES_MAX)
            .map(|_| json!({"$match": {}}))
            .collect();
        assert_eq!(field(Value::Array(many)).as_deref(), Some("pipeline[64]"));
        let wide = json!([{"$facet": {"a": vec![json!({"$limit": 1}); PIPELINE_STAGES_MAX]}}]);
        assert!(
            field(wide)
                .expect("too many nested")
                .starts_with("pipeline[0].$facet.a[")
        );
        let mut bad_owner = request("servers", json!([{"$match": {}}]));
        bad_owner.owner_user = "me".into();
        assert_eq!(bad_owner.validate().expect_err("owner").field, "owner_user");
    }

    #[test]
    fn the_pipeline_is_scoped_to_the_owner_joins_included() {
        let owner = json!({"$oid": OWNER});
        let r = request(
            "servers",
            json!([
                {"$lookup": {"from": "applications", "localField": "_id", "foreignField": "servers._id", "as": "apps"}},
                {"$facet": {"n": [{"$lookup": {"from": "systems", "as": "s", "pipeline": [{"$limit": 1}]}}]}},
            ]),
        );
        r.validate().expect("valid");
        assert_eq!(
            r.scoped_pipeline(),
            vec![
                json!({"$match": {"roles._id": owner}}),
                json!({"$lookup": {"from": "applications", "localField": "_id", "foreignField": "servers._id", "as": "apps"}}),
                json!({"$set": {"apps": {"$filter": {"input": "$apps",
                    "cond": {"$in": [owner, {"$map": {"input": {"$ifNull": ["$$this.roles", []]},
                                                      "as": "r", "in": "$$r._id"}}]}}}}}),
                json!({"$facet": {"n": [{"$lookup": {"from": "systems", "as": "s", "pipeline": [
                    {"$match": {"roles._id": owner}}, {"$limit": 1}]}}]}}),
            ]
        );
    }
}
