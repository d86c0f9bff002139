//! The examples of the report-app spec (§2.1, §2.2, §3.2) and the error cases around them.

use bson::oid::ObjectId;
use bson::{Bson, DateTime, Document, doc};
use maestro_contract::report::query::{
    RuleError, general_filter, parse_rules, pivot_pipeline, rules_condition,
};
use serde_json::{Value, json};

const OWNER: &str = "5e5f1a2b3c4d5e6f7a8b9c0d";

fn oid(hex: &str) -> ObjectId {
    ObjectId::parse_str(hex).expect("valid")
}

fn owner() -> ObjectId {
    oid(OWNER)
}

/// `JSON.stringify(list, null, 2)`, as server-app sends `filters`.
fn stringify(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("valid")
}

/// Equality including key order and BSON types (the raw BSON bytes).
fn assert_same(got: &Document, expected: &Document) {
    let bytes = |d: &Document| {
        let mut out = Vec::new();
        d.to_writer(&mut out).expect("valid");
        out
    };
    assert_eq!(got, expected);
    assert_eq!(
        bytes(got),
        bytes(expected),
        "key order or types differ:\n{got:#?}"
    );
}

fn rule(field: &str, filter: &str, comparer: &str, typ: &str) -> Value {
    json!({"field": field, "filter": filter, "comparer": comparer, "typ": typ})
}

fn sub_rule(field: &str, subfield: &str, subfilter: &str, typ: &str) -> Value {
    json!({"field": field, "filter": null, "comparer": "equal", "typ": typ,
           "subfield": subfield, "subfilter": subfilter})
}

/// The rule list of the spec's §2.1 example, with the dates and the datacenter id given.
fn spec_21_rules(dc_id: &str, after: &str, before: &str) -> Value {
    json!([
        rule("active", "true", "equal", "boolean"),
        sub_rule("datacenters", "_id", dc_id, "object"),
        rule("name", "web", "contain", "string"),
        rule("hostname", "db", "not contain", "string"),
        rule("role", "app", "equal", "string"),
        rule("env", "prod", "equal", "select"),
        sub_rule("tags", "key", "Name", "array"),
        sub_rule("tags", "value", "x", "array"),
        rule("cpu", "4", "greater", "number"),
        rule("memory", "8", "less", "number"),
        rule("storage", "8", "equal", "number"),
        rule("created_at", after, "after", "date"),
        rule("updated_at", before, "before", "date"),
        rule("active", "True", "equal", "boolean"),
    ])
}

#[test]
fn spec_21_rule_dsl_example() {
    let rules = parse_rules(&stringify(&spec_21_rules(
        "5f1",
        "2020-01-01",
        "2020-02-01",
    )))
    .expect("valid");
    let condition = rules_condition(&rules).expect("valid");
    // The spec's output, in Python's json.dumps form; key order matters.
    let expected = r#"{"active": false, "datacenters._id": "5f1", "name": {"$regex": "web"}, "hostname": {"$ne": "db"}, "role": "app", "env": "prod", "tags": {"$elemMatch": {"key": "Name", "value": "x"}}, "cpu": {"$gte": "4"}, "memory": {"$lte": "8"}, "storage": "8", "created_at": {"$gte": "2020-01-01"}, "updated_at": {"$lte": "2020-02-01"}}"#;
    let expected: Value = serde_json::from_str(expected).expect("valid");
    assert_eq!(
        serde_json::to_string(&condition).expect("valid"),
        serde_json::to_string(&expected).expect("valid")
    );
}

#[test]
fn spec_21_example_through_data_app_conversions() {
    // As in the original, data-app refuses the example's short id and short dates (it
    // answered 500); here the error names the rule value.
    let list = spec_21_rules("5f1", "2020-01-01", "2020-02-01");
    let err = general_filter(&stringify(&list), OWNER).expect_err("refused");
    assert_eq!(err.field, "filters[1].subfilter");
    assert!(err.reason.contains("datacenters._id") && err.reason.contains("\"5f1\""));

    let list = spec_21_rules("5f00000000000000000000dc", "2020-01-01", "2020-02-01");
    let err = general_filter(&stringify(&list), OWNER).expect_err("refused");
    assert_eq!(err.field, "filters[11].filter");
    assert!(err.reason.contains("created_at"), "{}", err.reason);

    // With the UI's date format the whole example converts.
    let list = spec_21_rules(
        "5f00000000000000000000dc",
        "2020-01-01T00:00:00.000Z",
        "2020-02-01T12:30:00.000Z",
    );
    let filter = general_filter(&stringify(&list), OWNER).expect("valid");
    let expected = doc! {
        "roles._id": owner(),
        "active": false,
        "datacenters._id": oid("5f00000000000000000000dc"),
        "name": {"$regex": "web"},
        "hostname": {"$ne": "db"},
        "role": "app",
        "env": "prod",
        "tags": {"$elemMatch": {"key": "Name", "value": "x"}},
        "cpu": {"$gte": "4"},
        "memory": {"$lte": "8"},
        "storage": "8",
        "created_at": {"$gte": DateTime::from_millis(1_577_836_800_000)},
        "updated_at": {"$lte": DateTime::from_millis(1_580_560_200_000)},
    };
    assert_same(&filter, &expected);
}

#[test]
fn spec_22_data_app_call_example() {
    // POST /servers {"query": "{\"roles._id\": \"5e5f...\", \"active\": true, \"datacenters._id\": \"5f00...dc\"}", "limit": 99999}
    let list = json!([
        rule("active", "true", "equal", "boolean"),
        sub_rule("datacenters", "_id", "5f00000000000000000000dc", "object"),
    ]);
    let filters = stringify(&list);

    // The condition report-app sent, before data-app's conversions.
    let mut sent = serde_json::Map::new();
    sent.insert("roles._id".into(), json!(OWNER));
    sent.extend(rules_condition(&parse_rules(&filters).expect("valid")).expect("valid"));
    let spec_query = "{\"roles._id\": \"5e5f1a2b3c4d5e6f7a8b9c0d\", \"active\": true, \"datacenters._id\": \"5f00000000000000000000dc\"}";
    let spec_query: Value = serde_json::from_str(spec_query).expect("valid");
    assert_eq!(
        serde_json::to_string(&sent).expect("valid"),
        serde_json::to_string(&spec_query).expect("valid")
    );

    // What data-app ran, which general_filter now gives directly.
    let filter = general_filter(&filters, OWNER).expect("valid");
    assert_same(
        &filter,
        &doc! {
            "roles._id": owner(),
            "active": true,
            "datacenters._id": oid("5f00000000000000000000dc"),
        },
    );
}

#[test]
fn general_empty_list_is_owner_only() {
    assert_same(
        &general_filter("[]", OWNER).expect("valid"),
        &doc! {"roles._id": owner()},
    );
    assert_same(
        &general_filter("[\n]", OWNER).expect("valid"),
        &doc! {"roles._id": owner()},
    );
}

#[test]
fn general_list_values_become_in() {
    let list = json!([
        {"field": "environment", "filter": ["prod", "stage"], "comparer": "equal", "typ": "select"},
        {"field": "applications._id", "filter": ["5f00000000000000000000dc", "5f00000000000000000000dd"],
         "comparer": "equal", "typ": "select"},
        {"field": "cpu", "filter": 4, "comparer": "equal", "typ": "number"},
        {"field": "ratio", "filter": 0.5, "comparer": "equal", "typ": "number"},
        {"field": "size", "filter": 5_000_000_000i64, "comparer": "equal", "typ": "number"},
    ]);
    let filter = general_filter(&stringify(&list), OWNER).expect("valid");
    assert_same(
        &filter,
        &doc! {
            "roles._id": owner(),
            "environment": {"$in": ["prod", "stage"]},
            "applications._id": {"$in": [oid("5f00000000000000000000dc"), oid("5f00000000000000000000dd")]},
            "cpu": 4,
            "ratio": 0.5,
            "size": 5_000_000_000i64,
        },
    );
}

#[test]
fn general_dates() {
    let list = json!([
        rule("created_at", "2020-05-01T03:00:00.000Z", "same", "date"),
        rule("updated_at", "2020-05-01T03:00:00.000Z", "after", "date"),
        // non-string values under a date key become null inside a dict (data-app's quirk)
        {"field": "deleted_at", "filter": 5, "comparer": "less", "typ": "number"},
        // an empty string is falsy and is left alone
        rule("synced_at", "", "equal", "string"),
    ]);
    let filter = general_filter(&stringify(&list), OWNER).expect("valid");
    let may_first = DateTime::from_millis(1_588_302_000_000);
    assert_same(
        &filter,
        &doc! {
            "roles._id": owner(),
            "created_at": may_first,
            "updated_at": {"$gte": may_first},
            "deleted_at": {"$lte": Bson::Null},
            "synced_at": "",
        },
    );
}

#[test]
fn general_errors() {
    let err = |filters: &str| general_filter(filters, OWNER).expect_err("refused");
    let e = err("");
    assert_eq!(e.field, "filters");
    assert!(e.reason.starts_with("not valid JSON"), "{}", e.reason);
    assert_eq!(err("{\"field\": \"a\"}").field, "filters");
    assert_eq!(err("[1]").field, "filters[0]");
    // str() of a list, as the original got when a JSON array was sent as is
    assert_eq!(err("[{'field': 'a'}]").field, "filters");
    let e = err(r#"[{"field": "a", "filter": "x", "typ": "zzz"}]"#);
    assert_eq!(
        (e.field.as_str(), e.to_string().contains("zzz")),
        ("filters[0].typ", true)
    );
    let e = err(
        r#"[{"field": "x", "typ": "boolean", "filter": "true"}, {"field": "t", "typ": "array", "subfield": "k"}]"#,
    );
    assert_eq!(e.field, "filters[1].subfilter");
    let e = err(r#"[{"field": "_id", "typ": "string", "comparer": "contain", "filter": "5f"}]"#);
    assert_eq!(e.field, "filters[0].filter");
    let e = err(
        r#"[{"field": "datacenters._id", "typ": "select", "filter": "zzzzzzzzzzzzzzzzzzzzzzzz"}]"#,
    );
    assert_eq!(e.field, "filters[0].filter");

    for owner in [
        "",
        "5f1",
        "zzzzzzzzzzzzzzzzzzzzzzzz",
        "5e5f1a2b3c4d5e6f7a8b9c0d0",
    ] {
        let e = general_filter("[]", owner).expect_err("refused");
        assert_eq!(e.field, "owner_user");
    }
}

#[test]
fn general_refuses_scope_escape_and_injection() {
    let err = |rules: Value| general_filter(&stringify(&rules), OWNER).expect_err("refused");
    let e = err(json!([rule(
        "roles._id",
        "5f00000000000000000000dc",
        "equal",
        "select"
    )]));
    assert_eq!(e.field, "filters[0].field");
    let e = err(json!([sub_rule(
        "roles",
        "_id",
        "5f00000000000000000000dc",
        "object"
    )]));
    assert_eq!(e.field, "filters[0].field");
    let e = err(json!([rule("$where", "sleep(1000)", "equal", "string")]));
    assert_eq!(e.field, "filters[0].field");
    let e = err(json!([{"field": "name", "typ": "select", "filter": {"$where": "sleep(1000)"}}]));
    assert_eq!(e.field, "filters[0].filter");
    let e = err(json!([sub_rule("tags", "$where", "x", "array")]));
    assert_eq!(e.field, "filters[0].subfield");

    let many = Value::Array(vec![rule("a", "b", "equal", "string"); 101]);
    assert_eq!(err(many).field, "filters");
    let long = "x".repeat(4097);
    assert_eq!(
        err(json!([rule("a", &long, "equal", "string")])).field,
        "filters[0].filter"
    );
}

#[test]
fn rule_error_display() {
    let e = RuleError::new("filters[2].subfield", "missing (required for array rules)");
    assert_eq!(
        e.to_string(),
        "filters[2].subfield: missing (required for array rules)"
    );
}

// ------------------------------------------------------------------------------------------
// Pivot (§3)

fn level(rules: Value) -> Value {
    json!({"enabled": true, "title": "x", "icon": "y", "arrowhidden": false, "filters": rules})
}

fn default_ui_spec(application_rules: Value) -> Value {
    json!({
        "clients": level(json!([rule("name", "AC", "contain", "string")])),
        "systems": level(json!([])),
        "applications": level(application_rules),
        "servers": level(json!([rule("active", "true", "equal", "boolean")])),
    })
}

fn spec_32_pipeline(tags: Document) -> Vec<Document> {
    let o = owner();
    vec![
        doc! {"$match": {"roles._id": o, "name": {"$regex": "AC"}}},
        doc! {"$lookup": {"from": "systems", "localField": "_id", "foreignField": "clients._id", "as": "systems"}},
        doc! {"$unwind": {"path": "$systems", "preserveNullAndEmptyArrays": true}},
        doc! {"$match": {"systems.roles._id": o}},
        doc! {"$lookup": {"from": "applications", "localField": "systems._id", "foreignField": "system._id", "as": "applications"}},
        doc! {"$unwind": {"path": "$applications", "preserveNullAndEmptyArrays": true}},
        doc! {"$match": {"applications.roles._id": o, "applications.family": "Application", "applications.tags": {"$elemMatch": tags}}},
        doc! {"$lookup": {"from": "servers", "localField": "applications._id", "foreignField": "applications._id", "as": "servers"}},
        doc! {"$unwind": {"path": "$servers", "preserveNullAndEmptyArrays": true}},
        doc! {"$match": {"servers.roles._id": o, "servers.active": true}},
    ]
}

fn assert_pipeline(got: &[Document], expected: &[Document]) {
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (g, e) in got.iter().zip(expected) {
        assert_same(g, e);
    }
}

#[test]
fn spec_32_exact_pipeline() {
    let spec = default_ui_spec(json!([
        rule("family", "Application", "equal", "string"),
        sub_rule("tags", "value", "b", "array"),
    ]));
    let (entity, pipeline) = pivot_pipeline(&stringify(&spec), OWNER).expect("valid");
    assert_eq!(entity, "clients");
    assert_pipeline(&pipeline, &spec_32_pipeline(doc! {"value": "b"}));
}

#[test]
fn spec_32_array_rules_merge_per_prefixed_key() {
    // The spec's run had tags key=a and tags value=b; the original kept only value=b
    // (its merge looked for the un-prefixed key). They now merge, as in general reports.
    let spec = default_ui_spec(json!([
        rule("family", "Application", "equal", "string"),
        sub_rule("tags", "key", "a", "array"),
        sub_rule("tags", "value", "b", "array"),
    ]));
    let (_, pipeline) = pivot_pipeline(&stringify(&spec), OWNER).expect("valid");
    assert_pipeline(
        &pipeline,
        &spec_32_pipeline(doc! {"key": "a", "value": "b"}),
    );
}

#[test]
fn pivot_disabled_middle_level_shifts_the_join() {
    let mut spec = default_ui_spec(json!([]));
    spec["systems"]["enabled"] = json!(false);
    let (entity, pipeline) = pivot_pipeline(&stringify(&spec), OWNER).expect("valid");
    assert_eq!(entity, "clients");
    let o = owner();
    assert_pipeline(
        &pipeline,
        &[
            doc! {"$match": {"roles._id": o, "name": {"$regex": "AC"}}},
            // kept from the original: client ids against system._id
            doc! {"$lookup": {"from": "applications", "localField": "_id", "foreignField": "system._id", "as": "applications"}},
            doc! {"$unwind": {"path": "$applications", "preserveNullAndEmptyArrays": true}},
            doc! {"$match": {"applications.roles._id": o}},
            doc! {"$lookup": {"from": "servers", "localField": "applications._id", "foreignField": "applications._id", "as": "servers"}},
            doc! {"$unwind": {"path": "$servers", "preserveNullAndEmptyArrays": true}},
            doc! {"$match": {"servers.roles._id": o, "servers.active": true}},
        ],
    );
}

#[test]
fn pivot_follows_input_order_and_skips_unknown_levels() {
    let spec = json!({
        "apps": {"enabled": true},
        "systems": level(json!([])),
        "system": {"enabled": true, "filters": "not even a list"},
        "servers": level(json!([])),
        "clients": {"enabled": "true", "filters": []},
    });
    let (entity, pipeline) = pivot_pipeline(&stringify(&spec), OWNER).expect("valid");
    assert_eq!(entity, "systems");
    let o = owner();
    assert_pipeline(
        &pipeline,
        &[
            doc! {"$match": {"roles._id": o}},
            doc! {"$lookup": {"from": "servers", "localField": "_id", "foreignField": "applications._id", "as": "servers"}},
            doc! {"$unwind": {"path": "$servers", "preserveNullAndEmptyArrays": true}},
            doc! {"$match": {"servers.roles._id": o}},
        ],
    );
}

#[test]
fn pivot_single_level() {
    let spec = json!({"servers": level(json!([rule("hostname", "web", "contain", "string")]))});
    let (entity, pipeline) = pivot_pipeline(&stringify(&spec), OWNER).expect("valid");
    assert_eq!(entity, "servers");
    assert_pipeline(
        &pipeline,
        &[doc! {"$match": {"roles._id": owner(), "hostname": {"$regex": "web"}}}],
    );
}

#[test]
fn pivot_conversions() {
    let spec = json!({
        "clients": level(json!([])),
        "servers": level(json!([
            sub_rule("datacenters", "_id", "5f00000000000000000000dc", "object"),
            sub_rule("applications", "_id", "short", "object"),
            {"field": "applications._id", "typ": "select", "filter": ["5f00000000000000000000dd"]},
            rule("created_at", "2020-05-01T03:00:00.000+00:00", "same", "date"),
            rule("updated_at", "2020-05-01T03:00:00.000Z", "same", "date"),
            rule("checked_at", "2020-05-01T03:00:00.000+00:00", "after", "date"),
        ])),
    });
    let (_, pipeline) = pivot_pipeline(&stringify(&spec), OWNER).expect("valid");
    assert_same(
        &pipeline[3],
        &doc! {"$match": {
            "servers.roles._id": owner(),
            "servers.datacenters._id": oid("5f00000000000000000000dc"),
            // later rule on the same key overwrote "short"; a list stays a list in pipelines
            "servers.applications._id": [oid("5f00000000000000000000dd")],
            // longer than 24 characters under an `_at` key: a date
            "servers.created_at": DateTime::from_millis(1_588_302_000_000),
            // exactly 24 characters (the UI's format): left a string, as data-app did
            "servers.updated_at": "2020-05-01T03:00:00.000Z",
            // inside $gte the last key is `$gte`: left a string, as data-app did
            "servers.checked_at": {"$gte": "2020-05-01T03:00:00.000+00:00"},
        }},
    );
}

#[test]
fn pivot_errors() {
    let err = |spec: Value| pivot_pipeline(&stringify(&spec), OWNER).expect_err("refused");

    let e = pivot_pipeline("[]", OWNER).expect_err("refused");
    assert_eq!(e.field, "filters");
    assert_eq!(
        pivot_pipeline("{", OWNER).expect_err("refused").field,
        "filters"
    );
    assert_eq!(err(json!({})).field, "filters");
    let e = err(json!({"clients": {"enabled": false, "filters": []}, "apps": {"enabled": true}}));
    assert_eq!(e.field, "filters");
    assert!(e.reason.contains("no level is enabled"));

    // the original: KeyError 'enabled'
    let e = err(json!({"clients": level(json!([])), "systems": {"filters": []}}));
    assert_eq!(e.field, "filters.systems.enabled");
    assert_eq!(err(json!({"clients": true})).field, "filters.clients");
    assert_eq!(
        err(json!({"clients": {"enabled": true}})).field,
        "filters.clients.filters"
    );

    // clients after another level: the original built {"localField": "", "foreignField": null}
    let e = err(json!({"systems": level(json!([])), "clients": level(json!([]))}));
    assert_eq!(e.field, "filters.clients");

    let e = err(json!({"clients": level(json!([])), "servers": level(json!([
        rule("name", "x", "equal", "string"),
        sub_rule("tags", "key", "x", "zzz"),
    ]))}));
    assert_eq!(e.field, "filters.servers.filters[1].typ");

    let e = err(json!({"clients": level(json!([])), "servers": level(json!([
        sub_rule("datacenters", "_id", "zzzzzzzzzzzzzzzzzzzzzzzz", "object"),
    ]))}));
    assert_eq!(e.field, "filters.servers.filters[0].subfilter");

    let e = err(json!({"clients": level(json!([rule("roles._id", "x", "equal", "select")]))}));
    assert_eq!(e.field, "filters.clients.filters[0].field");

    let e =
        err(json!({"clients": level(Value::Array(vec![rule("a", "b", "equal", "string"); 101]))}));
    assert_eq!(e.field, "filters.clients.filters");

    let e = pivot_pipeline(&stringify(&default_ui_spec(json!([]))), "nope").expect_err("refused");
    assert_eq!(e.field, "owner_user");
}
