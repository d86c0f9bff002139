//! The `columns` list stored on a finished report.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// How many leading rows decide the columns.
const SAMPLE_ROWS: usize = 50;

/// The weight of a column name that is not in [`WEIGHTS`].
const DEFAULT_WEIGHT: u32 = 50;

/// Sort weights of well-known columns; lighter columns come first.
const WEIGHTS: &[(&str, u32)] = &[
    ("active", 0),
    ("status", 1),
    ("_id", 2),
    ("name", 3),
    ("hostname", 4),
    ("ipv4_private", 5),
    ("ipv4_public", 5),
    ("tags", 5),
    ("role", 5),
    ("servers", 6),
    ("datacenters", 7),
    ("os", 7),
    ("storage", 8),
    ("services", 9),
    ("systems", 10),
    ("clients", 11),
    ("contacts", 12),
    ("owner", 97),
    ("roles", 98),
    ("updated_at", 99),
    ("created_at", 100),
];

fn weight(name: &str) -> u32 {
    WEIGHTS
        .iter()
        .find(|(known, _)| *known == name)
        .map_or(DEFAULT_WEIGHT, |(_, weight)| *weight)
}

/// The report's column names, from the first 50 raw (not flattened) rows.
///
/// Takes the top-level keys in first-seen order across those rows, drops the keys that are
/// missing or `null` in every one of them (an empty list or object counts as a value), then
/// stable-sorts by a weight table: `active` 0, `status` 1, `_id` 2, `name` 3, `hostname` 4,
/// `ipv4_private`/`ipv4_public`/`tags`/`role` 5, `servers` 6, `datacenters`/`os` 7, `storage` 8,
/// `services` 9, `systems` 10, `clients` 11, `contacts` 12, any other name 50, `owner` 97,
/// `roles` 98, `updated_at` 99, `created_at` 100.
pub fn columns(rows: &[Map<String, Value>]) -> Vec<String> {
    let sample = &rows[..rows.len().min(SAMPLE_ROWS)];
    let mut seen = HashSet::new();
    let mut names: Vec<&str> = sample
        .iter()
        .flat_map(|row| row.keys())
        .filter(|name| seen.insert(name.as_str()))
        .map(String::as_str)
        .filter(|name| {
            sample
                .iter()
                .any(|row| row.get(*name).is_some_and(|value| !value.is_null()))
        })
        .collect();
    names.sort_by_key(|name| weight(name));
    names.into_iter().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::columns;
    use crate::report::render::fixtures::rows;
    use serde_json::json;

    #[test]
    fn servers_report() {
        let items = rows(json!([
            {"_id": "1", "hostname": "web-1", "ipv4_private": "10.0.0.1", "ipv4_public": null,
             "tags": [], "datacenters": {"name": "dc1"}, "os": {}, "cpu": 2, "ansible": {"user": "u"},
             "owner": "o", "roles": [{"_id": "r"}], "updated_at": "2020-05-01", "created_at": "2020-04-01",
             "active": true},
            {"_id": "2", "hostname": "db-1", "auth": [{"type": "PKI"}], "ipv4_public": null, "active": false}
        ]));
        assert_eq!(
            columns(&items),
            [
                "active",
                "_id",
                "hostname",
                "ipv4_private",
                "tags",
                "datacenters",
                "os",
                "cpu",
                "ansible",
                "auth",
                "owner",
                "roles",
                "updated_at",
                "created_at"
            ]
        );
    }

    #[test]
    fn pivot_report() {
        let items = rows(json!([{
            "_id": "p1", "name": "ACME", "roles": [], "systems": {"_id": "s1"},
            "applications": {"_id": "a1"}, "servers": {"_id": "v1"}
        }]));
        assert_eq!(
            columns(&items),
            ["_id", "name", "servers", "systems", "applications", "roles"]
        );
    }

    #[test]
    fn only_the_first_50_rows_count() {
        let mut items = rows(json!([{"_id": "a", "late": null}]));
        items.extend(std::iter::repeat_n(items[0].clone(), 49));
        items.extend(rows(json!([{"_id": "z", "late": 1, "later": 2}])));
        assert_eq!(columns(&items), ["_id"]);
        assert_eq!(columns(&items[1..]), ["_id", "late", "later"]);
        assert!(columns(&[]).is_empty());
    }
}
