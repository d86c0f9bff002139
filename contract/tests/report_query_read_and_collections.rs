//! `GET /reports/<table>` parameters (§1.6) and the component → collection rule (§2.2).

use bson::oid::ObjectId;
use bson::{DateTime, doc};
use maestro_contract::report::query::{Paging, collection_of, read_query, sort_of};

fn oid(hex: &str) -> ObjectId {
    ObjectId::parse_str(hex).expect("valid")
}

#[test]
fn read_query_as_server_app_sends_it() {
    let got = read_query(r#"{"hostname": {"$regex": "web", "$options": "i"}}"#).expect("valid");
    assert_eq!(got, doc! {"hostname": {"$regex": "web", "$options": "i"}});
}

#[test]
fn read_query_top_level_conversions() {
    let got = read_query(
        r#"{"_id": "5f00000000000000000000dc", "x._idfoo": ["5f00000000000000000000dd"],
            "tags": ["a", "b"], "created_at": "2020-01-01T00:00:00",
            "updated_at": {"$gte": "2020-01-01T00:00:00Z", "$lt": 5},
            "nested": {"_id": "not converted", "created_at": "nor this"},
            "n": {"$exists": true}, "m": {"$in": [1, 2], "$ne": 3}}"#,
    )
    .expect("valid");
    let day = DateTime::from_millis(1_577_836_800_000);
    assert_eq!(
        got,
        doc! {
            "_id": oid("5f00000000000000000000dc"),
            "x._idfoo": {"$in": [oid("5f00000000000000000000dd")]},
            "tags": {"$in": ["a", "b"]},
            "created_at": day,
            "updated_at": {"$gte": day, "$lt": null},
            "nested": {"_id": "not converted", "created_at": "nor this"},
            "n": {"$exists": true},
            "m": {"$in": [1, 2], "$ne": 3},
        }
    );
    assert_eq!(read_query("{}").expect("valid"), doc! {});
}

#[test]
fn read_query_errors() {
    let err = |q: &str| read_query(q).expect_err("refused");
    assert_eq!(err("[]").field, "query");
    assert_eq!(err("not json").field, "query");
    assert_eq!(err(r#"{"_id": "5f1"}"#).field, "query._id");
    assert_eq!(
        err(r#"{"_id": {"$ne": "5f00000000000000000000dc"}}"#).field,
        "query._id"
    );
    assert_eq!(
        err(r#"{"created_at": "2020-01-01"}"#).field,
        "query.created_at"
    );
    // operators that run code or widen the query
    for q in [
        r#"{"$where": "sleep(1000)"}"#,
        r#"{"$expr": {"$eq": [1, 1]}}"#,
        r#"{"$or": [{"a": 1}]}"#,
        r#"{"a.$b": 1}"#,
        r#"{"": 1}"#,
    ] {
        assert!(err(q).field.starts_with("query"), "{q}");
    }
    let e = err(r#"{"a": {"$function": {"body": "x", "args": [], "lang": "js"}}}"#);
    assert_eq!(e.field, "query.a");
    assert!(e.reason.contains("$function"));
    let e = err(r#"{"a": {"$elemMatch": {"b": 1}}}"#);
    assert_eq!(e.field, "query.a");
    let e = err(r#"{"a": {"$in": [{"$where": "1"}]}}"#);
    assert_eq!(e.field, "query.a.$in[0]");
    let many: String = format!(
        "{{{}}}",
        (0..101)
            .map(|i| format!("\"k{i}\": 1"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(err(&many).field, "query");
}

#[test]
fn sort_direction_rule() {
    assert_eq!(sort_of(None, None).expect("valid"), doc! {"updated_at": 1});
    for ascending in ["-1", "1", "5", " 1 ", "+2", "99999999999999999999999"] {
        assert_eq!(
            sort_of(Some("name"), Some(ascending)).expect("valid"),
            doc! {"name": 1}
        );
    }
    for ascending in ["0", "-0", "000"] {
        assert_eq!(
            sort_of(None, Some(ascending)).expect("valid"),
            doc! {"updated_at": -1}
        );
    }
    for bad in ["true", "", "1.5", "one", "--1"] {
        assert_eq!(
            sort_of(None, Some(bad)).expect_err("refused").field,
            "ascending",
            "{bad:?}"
        );
    }
    for bad in ["", "$natural", "a..b", "a.$x"] {
        assert_eq!(
            sort_of(Some(bad), None).expect_err("refused").field,
            "orderBy",
            "{bad:?}"
        );
    }
    assert_eq!(
        sort_of(Some("datacenters.name"), Some("0")).expect("valid"),
        doc! {"datacenters.name": -1}
    );
}

#[test]
fn paging() {
    let p = Paging::parse(None, None, 1500).expect("valid");
    assert_eq!((p.limit, p.page, p.skip()), (1500, 1, 0));
    assert_eq!(p.total_pages(0), 0);
    assert_eq!(p.total_pages(1500), 1);
    assert_eq!(p.total_pages(1501), 2);

    let p = Paging::parse(Some("20"), Some("3"), 1500).expect("valid");
    assert_eq!((p.limit, p.page, p.skip()), (20, 3, 40));

    for (limit, page, field) in [
        (Some("0"), None, "limit"),
        (Some("-5"), None, "limit"),
        (Some("ten"), None, "limit"),
        (Some("99999999999999999999"), None, "limit"),
        (None, Some("0"), "page"),
        (None, Some("-1"), "page"),
        (None, Some("1.0"), "page"),
        (Some("9223372036854775807"), Some("3"), "page"),
    ] {
        let e = Paging::parse(limit, page, 1500).expect_err("refused");
        assert_eq!(e.field, field, "{limit:?} {page:?}");
    }
    assert_eq!(
        Paging::parse(None, None, 0).expect_err("refused").field,
        "limit"
    );
}

#[test]
fn collections() {
    for (component, collection) in [
        ("Servers", "servers"),
        ("Applications", "applications"),
        ("Systems", "systems"),
        ("Clients", "clients"),
        ("Datacenters", "datacenters"),
        ("Flavors", "flavors"),
        ("Images", "images"),
        ("Networks", "networks"),
        ("Projects", "projects"),
        ("Snapshots", "snapshots"),
        ("Volumes", "volumes"),
        ("servers", "servers"),
    ] {
        assert_eq!(collection_of(component).expect("valid"), collection);
    }
    for component in [
        "Connections",
        "Teams",
        "users",
        "adminer",
        "network",
        "events",
        "reports",
        "flavors_public",
        " servers",
        "",
    ] {
        let e = collection_of(component).expect_err("refused");
        assert_eq!(e.field, "component", "{component:?}");
    }
    assert!(
        collection_of("Connections")
            .expect_err("refused")
            .reason
            .contains("credentials")
    );
}
