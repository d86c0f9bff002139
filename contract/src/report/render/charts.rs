//! Chart aggregations (`aggr`) of a report's rows.
//!
//! A fixed table of 34 chart specs is evaluated in order over the raw (not flattened) rows. Each
//! spec names a top-level `field`, an optional dotted `lens` into object values and a `sublens`
//! (default `_id`) into the objects of list values. A row contributes to a chart like this:
//!
//! - A missing or `null` field contributes nothing.
//! - An object is replaced by the value at `lens` (nothing when the spec has no lens or the path
//!   is missing).
//! - A list (held directly, or found at `lens`) contributes each element: the value at `sublens`
//!   for an object element, the element itself otherwise.
//! - Any other value contributes itself.
//! - Only strings, numbers and booleans are counted; `null`s are dropped.
//!
//! Equal values are counted together with Python's `==`: `10` and `10.0` (and `true` and `1`)
//! share a bucket, labelled with the first value seen, while `"10"` is separate. A chart with no
//! counts is left out. Buckets are sorted by count descending, then by label descending (numbers
//! before strings in ascending order, so strings come first among equal counts).
//!
//! Where the original crashed, these functions do the sensible thing instead:
//! - pandas raised when a column's values were lists in some rows and scalars or nulls in others
//!   (e.g. `systems.clients` present on one pivot row only), killing the upload task. Here every
//!   value is handled on its own by the rules above.
//! - A lens yielding an object, or a list element that is itself a list, raised (unhashable).
//!   Here such values are skipped.
//!
//! One deliberate fix: spec 4 (`applications_datacenters_provider`) had the sublens
//! `datacenters,provider` (a comma), so it never counted anything from objects in lists. It is
//! `datacenters.provider` here, like spec 7's `datacenters.name`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::report::render::python::{Key, get_path, number_text};

/// How a chart's counts are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    /// `{"label": [labels...], "data": [counts...]}`, labels as their JSON values (booleans stay
    /// booleans). Used for the `aggr` stored on a finished report.
    Label,
    /// `{label: count, ...}`, labels as object keys: strings as they are, booleans as
    /// `"true"`/`"false"`, numbers as Python writes them (`10`, `1.5`). Used by
    /// `GET /aggregation/<table>`. Labels that give the same key (`1` and `"1"`) have their counts
    /// added together.
    Dict,
}

/// One chart spec: what to count and how the UI draws it.
struct ChartSpec {
    field: &'static str,
    lens: Option<&'static str>,
    sublens: &'static str,
    /// Runs only for general reports on `servers`.
    servers_only: bool,
    ct: &'static str,
    txt: &'static str,
    size: Option<&'static str>,
    legend: Option<bool>,
    limit: Option<u64>,
    order: u64,
}

impl ChartSpec {
    /// The output key: `field`, then the parts of `lens`, joined by `_`.
    fn key(&self) -> String {
        match self.lens {
            Some(lens) => format!("{}_{}", self.field, lens.replace('.', "_")),
            None => self.field.to_owned(),
        }
    }

    /// The `opts` object, keys in the order `ct, txt, size, legend, limit, order`.
    fn opts(&self) -> Value {
        let mut opts = Map::new();
        opts.insert("ct".into(), self.ct.into());
        opts.insert("txt".into(), self.txt.into());
        if let Some(size) = self.size {
            opts.insert("size".into(), size.into());
        }
        if let Some(legend) = self.legend {
            opts.insert("legend".into(), legend.into());
        }
        if let Some(limit) = self.limit {
            opts.insert("limit".into(), limit.into());
        }
        opts.insert("order".into(), self.order.into());
        Value::Object(opts)
    }
}

/// Builds a [`ChartSpec`]; `style` is `(size, legend, limit)`.
const fn spec(
    field: &'static str,
    lens: Option<&'static str>,
    sublens: Option<&'static str>,
    ct: &'static str,
    txt: &'static str,
    style: (Option<&'static str>, Option<bool>, Option<u64>),
    order: u64,
) -> ChartSpec {
    ChartSpec {
        field,
        lens,
        sublens: match sublens {
            Some(sublens) => sublens,
            None => "_id",
        },
        servers_only: false,
        ct,
        txt,
        size: style.0,
        legend: style.1,
        limit: style.2,
        order,
    }
}

const PLAIN: (Option<&str>, Option<bool>, Option<u64>) = (None, None, None);
const WIDE: (Option<&str>, Option<bool>, Option<u64>) = (Some("col-sm-8"), Some(false), None);
const WIDE_16: (Option<&str>, Option<bool>, Option<u64>) =
    (Some("col-sm-8"), Some(false), Some(16));
const TOP_12: (Option<&str>, Option<bool>, Option<u64>) = (None, None, Some(12));

/// The chart specs, in output order: field, lens, sublens (default `_id`), chart type, title,
/// `(size, legend, limit)`, order.
#[rustfmt::skip]
const SPECS: [ChartSpec; 34] = [
    spec("datacenters",  Some("provider"),             None,                         "doughnut", "Providers",                PLAIN,   1),
    spec("provider",     None,                         None,                         "doughnut", "Resource",                 PLAIN,   1),
    spec("servers",      Some("datacenters.provider"), None,                         "doughnut", "Providers (by Servers)",   PLAIN,   1),
    // The original's sublens was `datacenters,provider` (a typo); see the module docs.
    spec("applications", Some("datacenters.provider"), Some("datacenters.provider"), "doughnut", "Providers (by Apps)",      PLAIN,   1),
    spec("datacenters",  Some("name"),                 None,                         "polar",    "Datacenters",              PLAIN,   2),
    spec("servers",      Some("datacenters.name"),     None,                         "polar",    "Datacenters (by Servers)", PLAIN,   2),
    spec("applications", Some("datacenters.name"),     Some("datacenters.name"),     "polar",    "Datacenters (by Apps)",    PLAIN,   2),
    spec("servers",      Some("datacenters.region"),   None,                         "doughnut", "Regions (by Servers)",     PLAIN,   3),
    spec("datacenters",  Some("region"),               None,                         "doughnut", "Regions",                  PLAIN,   3),
    spec("regions",      None,                         None,                         "doughnut", "Regions",                  PLAIN,   3),
    ChartSpec {
        servers_only: true,
        ..spec("datacenters", Some("zone"),            None,                         "doughnut", "Zones",                    PLAIN,   4)
    },
    spec("zones",        None,                         None,                         "doughnut", "Zones",                    PLAIN,   4),
    spec("servers",      Some("hostname"),             None,                         "total",    "Hostname",                 TOP_12,  5),
    spec("datacenters",  Some("instance"),             None,                         "bar",      "Instances",                WIDE_16, 6),
    spec("servers",      Some("datacenters.instance"), None,                         "bar",      "Instances (by Servers)",   WIDE_16, 6),
    spec("size",         None,                         None,                         "bar",      "Size",                     WIDE,    7),
    spec("family",       None,                         None,                         "pie",      "Family",                   PLAIN,   8),
    spec("applications", Some("family"),               Some("family"),               "pie",      "Family (by Apps)",         PLAIN,   8),
    spec("applications", Some("name"),                 Some("name"),                 "bar",      "Apps",                     WIDE,    9),
    spec("servers",      Some("os.base"),              Some("base"),                 "pie",      "OS (by Servers)",          PLAIN,   9),
    spec("os",           Some("base"),                 None,                         "pie",      "OS",                       PLAIN,   9),
    spec("system",       Some("name"),                 Some("name"),                 "bar",      "Systems",                  WIDE,   10),
    spec("systems",      Some("name"),                 None,                         "bar",      "Systems",                  WIDE,   10),
    spec("deps",         None,                         Some("name"),                 "pie",      "Most dependencies apps",   PLAIN,  11),
    spec("services",     None,                         Some("name"),                 "pie",      "Services",                 PLAIN,  12),
    spec("deploy",       None,                         Some("type"),                 "polar",    "Deploy",                   PLAIN,  13),
    spec("contacts",     None,                         Some("channel"),              "doughnut", "Contacts",                 PLAIN,  14),
    spec("entry",        None,                         Some("name"),                 "pie",      "Endpoint Apps",            PLAIN,  15),
    spec("auth",         None,                         Some("type"),                 "polar",    "Auths",                    PLAIN,  15),
    spec("systems",      Some("clients"),              Some("name"),                 "bar",      "Clients",                  WIDE,   16),
    spec("clients",      Some("name"),                 Some("name"),                 "bar",      "Clients",                  WIDE,   16),
    spec("tags",         None,                         Some("key"),                  "total",    "Tags",                     TOP_12, 17),
    spec("active",       None,                         None,                         "pie",      "Active",                   TOP_12, 18),
    spec("roles",        None,                         Some("refs"),                 "total",    "Access Refs",              TOP_12, 19),
];

/// The chart aggregations of `rows`: `{<chart key>: {"aggr": <counts>, "opts": {...}}, ...}`, in
/// spec order, leaving out charts with nothing to count.
///
/// `entity` is the collection of a general report (e.g. `"servers"`), or `None` for pivot
/// reports and `GET /aggregation`; the `datacenters_zone` chart is computed only for
/// `Some("servers")`. `view` chooses how the counts are written.
///
/// See the module documentation for the counting rules and where they differ from the original.
pub fn charts(rows: &[Map<String, Value>], entity: Option<&str>, view: View) -> Map<String, Value> {
    let mut counter = Charts::new(entity);
    for row in rows {
        counter.add(row);
    }
    counter.finish(view)
}

/// The chart aggregations counted one row at a time, for reports read from a cursor: the
/// same result as [`charts`] over all the rows added, holding only the counts.
pub struct Charts {
    specs: Vec<(&'static ChartSpec, Counter)>,
}

impl Charts {
    /// A counter for a report of `entity` (see [`charts`]).
    pub fn new(entity: Option<&str>) -> Self {
        Self {
            specs: SPECS
                .iter()
                .filter(|spec| !spec.servers_only || entity == Some("servers"))
                .map(|spec| (spec, Counter::default()))
                .collect(),
        }
    }

    /// Counts one row.
    pub fn add(&mut self, row: &Map<String, Value>) {
        for (spec, counter) in &mut self.specs {
            counter.add_row(row, spec);
        }
    }

    /// The aggregations, in spec order, leaving out charts with nothing counted.
    pub fn finish(self, view: View) -> Map<String, Value> {
        let mut out = Map::new();
        for (spec, counter) in self.specs {
            let buckets = counter.sorted();
            if buckets.is_empty() {
                continue;
            }
            out.insert(
                spec.key(),
                json!({"aggr": write_view(&buckets, view), "opts": spec.opts()}),
            );
        }
        out
    }
}

/// The body of `GET /aggregation/<table>`:
/// `{"name": table, "aggr": charts(rows, None, View::Dict)}`.
///
/// The original read the rows with `find({})`, sorted by `updated_at` descending and limited to
/// 99,999; the caller does that. No rows give `{"name": table, "aggr": {}}`.
pub fn aggregation_body(table: &str, rows: &[Map<String, Value>]) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("name".into(), table.into());
    body.insert("aggr".into(), Value::Object(charts(rows, None, View::Dict)));
    body
}

/// A counted label: its first-seen value, its key and how often it was seen.
struct Bucket {
    label: Value,
    key: Key,
    count: u64,
}

/// The buckets of one spec, in first-seen order.
#[derive(Default)]
struct Counter {
    buckets: Vec<Bucket>,
    positions: HashMap<Key, usize>,
}

impl Counter {
    fn add(&mut self, value: &Value) {
        if !matches!(value, Value::Bool(_) | Value::Number(_) | Value::String(_)) {
            return;
        }
        let key = Key::of(value);
        match self.positions.get(&key) {
            Some(&index) => self.buckets[index].count += 1,
            None => {
                self.positions.insert(key.clone(), self.buckets.len());
                self.buckets.push(Bucket {
                    label: value.clone(),
                    key,
                    count: 1,
                });
            }
        }
    }

    fn add_row(&mut self, row: &Map<String, Value>, spec: &ChartSpec) {
        let value = match row.get(spec.field) {
            None | Some(Value::Null) => return,
            Some(object @ Value::Object(_)) => {
                match spec.lens.and_then(|lens| get_path(object, lens)) {
                    Some(value) => value,
                    None => return,
                }
            }
            Some(value) => value,
        };
        match value {
            Value::Array(elements) => {
                for element in elements {
                    if element.is_object() {
                        if let Some(inner) = get_path(element, spec.sublens) {
                            self.add(inner);
                        }
                    } else {
                        self.add(element);
                    }
                }
            }
            other => self.add(other),
        }
    }

    /// The buckets sorted by count descending, then label descending.
    fn sorted(mut self) -> Vec<Bucket> {
        self.buckets
            .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| b.key.sort_cmp(&a.key)));
        self.buckets
    }
}

fn write_view(buckets: &[Bucket], view: View) -> Value {
    match view {
        View::Label => json!({
            "label": buckets.iter().map(|b| b.label.clone()).collect::<Vec<_>>(),
            "data": buckets.iter().map(|b| b.count).collect::<Vec<_>>(),
        }),
        View::Dict => {
            let mut counts = Map::new();
            for bucket in buckets {
                let key = match &bucket.label {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => number_text(n),
                    other => other.to_string(),
                };
                let total = counts.get(&key).and_then(Value::as_u64).unwrap_or(0) + bucket.count;
                counts.insert(key, total.into());
            }
            Value::Object(counts)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::render::fixtures::rows;
    use crate::report::render::python::to_python_json;
    use std::collections::HashSet;

    fn servers_rows() -> Vec<Map<String, Value>> {
        rows(json!([
            {"_id": "1", "hostname": "web-1", "active": true,
             "datacenters": {"provider": "AWS", "name": "dc1", "region": "us-east-1",
                             "zone": "us-east-1a", "instance": "t2.micro"},
             "os": {"base": "Linux"}, "auth": [{"type": "PKI"}], "tags": [{"key": "Name", "value": "x"}],
             "roles": [{"_id": "u1", "refs": "users"}]},
            {"_id": "2", "hostname": "web-2", "active": true,
             "datacenters": {"provider": "AWS", "name": "dc1", "region": "us-east-1", "zone": "us-east-1b"},
             "os": {"base": "Linux"}, "roles": [{"_id": "u1", "refs": "users"}, {"_id": "t1", "refs": "teams"}]},
            {"_id": "3", "hostname": "win-1", "active": true,
             "datacenters": {"provider": "Azure", "name": "dc2"}, "os": {"base": "Windows"}, "roles": []}
        ]))
    }

    #[test]
    fn spec_servers_upload_in_label_view() {
        let aggr = charts(&servers_rows(), Some("servers"), View::Label);
        let summary: Vec<(String, Value)> = aggr
            .iter()
            .map(|(key, chart)| (key.clone(), chart["aggr"].clone()))
            .collect();
        let expected = [
            (
                "datacenters_provider",
                json!({"label": ["AWS", "Azure"], "data": [2, 1]}),
            ),
            (
                "datacenters_name",
                json!({"label": ["dc1", "dc2"], "data": [2, 1]}),
            ),
            (
                "datacenters_region",
                json!({"label": ["us-east-1"], "data": [2]}),
            ),
            (
                "datacenters_zone",
                json!({"label": ["us-east-1b", "us-east-1a"], "data": [1, 1]}),
            ),
            (
                "datacenters_instance",
                json!({"label": ["t2.micro"], "data": [1]}),
            ),
            (
                "os_base",
                json!({"label": ["Linux", "Windows"], "data": [2, 1]}),
            ),
            ("auth", json!({"label": ["PKI"], "data": [1]})),
            ("tags", json!({"label": ["Name"], "data": [1]})),
            ("active", json!({"label": [true], "data": [3]})),
            (
                "roles",
                json!({"label": ["users", "teams"], "data": [2, 1]}),
            ),
        ]
        .map(|(key, value)| (key.to_owned(), value));
        assert_eq!(summary, expected);
        assert_eq!(
            to_python_json(&aggr["datacenters_instance"]["opts"]),
            r#"{"ct": "bar", "txt": "Instances", "size": "col-sm-8", "legend": false, "limit": 16, "order": 6}"#
        );
        assert_eq!(
            to_python_json(&aggr["active"]),
            r#"{"aggr": {"label": [true], "data": [3]}, "opts": {"ct": "pie", "txt": "Active", "limit": 12, "order": 18}}"#
        );
    }

    #[test]
    fn zones_only_for_servers() {
        let rows = servers_rows();
        assert!(!charts(&rows, None, View::Label).contains_key("datacenters_zone"));
        assert!(!charts(&rows, Some("applications"), View::Label).contains_key("datacenters_zone"));
        assert!(charts(&rows, Some("servers"), View::Label).contains_key("datacenters_zone"));
    }

    #[test]
    fn spec_aggregation_endpoint() {
        let rows = rows(json!([
            {"_id": "1", "datacenters": {"provider": "AWS"}, "tags": [{"key": "Name"}, {"key": "env"}], "active": true},
            {"_id": "2", "datacenters": {"provider": "GCP"}, "tags": [{"key": "Name"}], "active": false},
            {"_id": "3", "datacenters": {"provider": "AWS"}, "active": true}
        ]));
        assert_eq!(
            to_python_json(&aggregation_body("r1_general", &rows)),
            concat!(
                r#"{"name": "r1_general", "aggr": {"#,
                r#""datacenters_provider": {"aggr": {"AWS": 2, "GCP": 1}, "opts": {"ct": "doughnut", "txt": "Providers", "order": 1}}, "#,
                r#""tags": {"aggr": {"Name": 2, "env": 1}, "opts": {"ct": "total", "txt": "Tags", "limit": 12, "order": 17}}, "#,
                r#""active": {"aggr": {"true": 2, "false": 1}, "opts": {"ct": "pie", "txt": "Active", "limit": 12, "order": 18}}"#,
                "}}"
            )
        );
        assert_eq!(
            to_python_json(&aggregation_body("missing", &[])),
            r#"{"name": "missing", "aggr": {}}"#
        );
    }

    #[test]
    fn python_equality_and_tie_order() {
        let rows = rows(json!([
            {"size": 10}, {"size": 10.0}, {"size": "10"}, {"size": 2.5}, {"size": "a"},
            {"size": null}, {"size": ""}, {"family": "x"}
        ]));
        let aggr = charts(&rows, None, View::Label);
        assert_eq!(
            aggr["size"]["aggr"],
            json!({"label": [10, "a", "10", "", 2.5], "data": [2, 1, 1, 1, 1]})
        );
        let aggr = charts(&rows, None, View::Dict);
        assert_eq!(
            to_python_json(&aggr["size"]["aggr"]),
            r#"{"10": 3, "a": 1, "": 1, "2.5": 1}"#
        );
    }

    #[test]
    fn lens_and_sublens() {
        let rows = rows(json!([
            // Pivot rows: `systems` is one object, `systems.clients` a list of objects.
            {"systems": {"name": "Billing", "clients": [{"name": "ACME"}, {"name": "Initech"}]},
             "servers": {"hostname": "web-1", "os": {"base": "Linux"}, "datacenters": {"provider": "AWS"}}},
            {"systems": {"name": "Billing", "clients": "not-a-list"},
             "servers": {"hostname": "web-1"}},
            {"systems": {"name": "CRM"}},
            // General rows: lists held directly only go through the sublens (default `_id`).
            {"servers": [{"_id": "s1", "hostname": "ignored"}, "s2", null, [1], {"no_id": 1}]},
            {"applications": [{"datacenters": {"provider": "GCP", "name": "dc9"}, "family": "Application"}]},
            // A lens reaching an object is skipped; so is a spec without a lens on an object.
            {"datacenters": {"provider": {"nested": 1}}, "provider": {"x": 1}}
        ]));
        let aggr = charts(&rows, None, View::Label);
        let keys: Vec<&str> = aggr.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "servers_datacenters_provider",
                "applications_datacenters_provider",
                "servers_datacenters_name",
                "applications_datacenters_name",
                "servers_datacenters_region",
                "servers_hostname",
                "servers_datacenters_instance",
                "applications_family",
                "servers_os_base",
                "systems_name",
                "systems_clients"
            ]
        );
        // The list in row 4 contributes `_id`s (and the bare string) to every `servers` chart.
        assert_eq!(
            aggr["servers_datacenters_provider"]["aggr"],
            json!({"label": ["s2", "s1", "AWS"], "data": [1, 1, 1]})
        );
        assert_eq!(
            aggr["servers_hostname"]["aggr"],
            json!({"label": ["web-1", "s2", "s1"], "data": [2, 1, 1]})
        );
        assert_eq!(
            aggr["systems_name"]["aggr"],
            json!({"label": ["Billing", "CRM"], "data": [2, 1]})
        );
        assert_eq!(
            aggr["systems_clients"]["aggr"],
            json!({"label": ["not-a-list", "Initech", "ACME"], "data": [1, 1, 1]})
        );
        assert_eq!(
            aggr["applications_datacenters_provider"]["aggr"],
            json!({"label": ["GCP"], "data": [1]})
        );
        assert_eq!(
            aggr["servers_os_base"]["aggr"],
            json!({"label": ["s2", "Linux"], "data": [1, 1]})
        );
    }

    #[test]
    fn spec_table_is_consistent() {
        let keys: HashSet<String> = SPECS.iter().map(ChartSpec::key).collect();
        assert_eq!(keys.len(), 34);
        assert_eq!(SPECS[29].key(), "systems_clients");
        assert_eq!(SPECS[19].key(), "servers_os_base");
        assert_eq!(SPECS.iter().filter(|s| s.servers_only).count(), 1);
    }
}
