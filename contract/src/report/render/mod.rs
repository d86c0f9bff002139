//! Output of the Maestro report-app, reimplemented in Rust.
//!
//! This crate is the pure, I/O-free part of a replacement for the Python report-app:
//!
//! - [`Format::negotiate`] picks an output format from an `Accept` header, and [`render`] writes a
//!   [`Page`] of report rows (`GET /reports/<table>`) as JSON, CSV, XML, plain text or an Ansible
//!   inventory, byte for byte as the original did.
//! - [`columns`] computes the `columns` list stored on a finished report.
//! - [`charts`] computes the chart aggregations (`aggr`), and [`aggregation_body`] the body of
//!   `GET /aggregation/<table>`.
//! - The [`python`] module has the Python-compatible value conversions these are built on.
//!
//! ```
//! use maestro_contract::report::render::{Format, Page, render};
//! use serde_json::json;
//!
//! let row = json!({"_id": "64b000000000000000000001", "hostname": "web-1", "cpu": 2});
//! let page = Page::new(1, 1, 1500, vec![row.as_object().expect("valid").clone()]);
//!
//! let format = Format::negotiate(Some("text/csv"));
//! assert_eq!(format.content_type(), "text/csv");
//! assert_eq!(
//!     render(format, &page),
//!     "\"\",\"_id\",\"hostname\",\"cpu\"\n0,\"64b000000000000000000001\",\"web-1\",2\n"
//! );
//! assert_eq!(render(Format::Text, &page), " - _id: 64b000000000000000000001 - hostname: web-1 - cpu: 2\n\r");
//! ```
//!
//! Rows are JSON objects as stored in the reports database, with ids and dates already strings.
//! Where the original crashed or answered an error page, this crate does the sensible thing
//! instead; each such place says so in its documentation, and the crate's README lists them.

mod charts;
mod columns;
mod csv;
mod format;
mod inventory;
pub mod python;
mod text;
mod xml;

pub use charts::{Charts, View, aggregation_body, charts};
pub use columns::columns;
pub use format::Format;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One page of a report read: the envelope of `GET /reports/<table>`.
///
/// Fields serialise in the original's key order: `found`, `total_pages`, `page`, `limit`,
/// `items`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// How many rows match the query, on all pages.
    pub found: u64,
    /// `ceil(found / limit)`; 0 when nothing was found.
    pub total_pages: u64,
    /// The 1-based page number.
    pub page: u64,
    /// The page size.
    pub limit: u64,
    /// The rows of this page, in order.
    pub items: Vec<Map<String, Value>>,
}

impl Page {
    /// Builds a page, computing `total_pages` as `ceil(found / limit)`.
    ///
    /// A `limit` of 0 gives `total_pages` 0; the original answered 500 (division by zero).
    pub fn new(found: u64, page: u64, limit: u64, items: Vec<Map<String, Value>>) -> Page {
        let total_pages = if limit == 0 { 0 } else { found.div_ceil(limit) };
        Page {
            found,
            total_pages,
            page,
            limit,
            items,
        }
    }
}

/// Writes `page` in `format`, as the body of a `GET /reports/<table>` answer.
///
/// - [`Format::Json`]: the envelope as Python's `json.dumps` wrote it (see
///   [`python::to_python_json`]), followed by `"\n"`.
/// - [`Format::Csv`]: the items only, as pandas `json_normalize` + `to_csv(QUOTE_NONNUMERIC)`.
/// - [`Format::Xml`]: the envelope under `<response>`, as python-simplexml wrote it.
/// - [`Format::Text`]: one ` - key: value` line per item, each ending in `"\n\r"`.
/// - [`Format::Inventory`]: an Ansible INI inventory of the items.
///
/// See each format's module documentation for the details.
pub fn render(format: Format, page: &Page) -> String {
    match format {
        Format::Json => {
            let mut body = python::to_python_json(page);
            body.push('\n');
            body
        }
        Format::Csv => csv::render(&page.items),
        Format::Xml => xml::render(page),
        Format::Text => text::render(&page.items),
        Format::Inventory => inventory::render(&page.items),
    }
}

/// Example inputs from the specification, shared by the tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use serde_json::{Map, Value, json};

    /// Converts `json!([...])` of objects into rows.
    pub(crate) fn rows(value: Value) -> Vec<Map<String, Value>> {
        match value {
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::Object(map) => map,
                    other => panic!("row is not an object: {other}"),
                })
                .collect(),
            other => panic!("rows are not an array: {other}"),
        }
    }

    /// The spec's "input A": two server rows of one page (`found=2, limit=1500, page=1`).
    pub(crate) fn input_a() -> Vec<Map<String, Value>> {
        rows(json!([
            {"_id": "64b000000000000000000001", "hostname": "web-1", "ipv4_private": "10.0.0.1",
             "active": true, "cpu": 2, "datacenters": {"name": "dc1", "provider": "AWS"},
             "tags": [{"key": "Name", "value": "web \"a\""}], "updated_at": "2020-05-01T10:00:00"},
            {"_id": "64b000000000000000000002", "hostname": "db-1", "active": false,
             "datacenters": {"name": "dc1", "region": "us-east-1"}, "os": {"base": "Linux"},
             "ansible": {"user": "ubuntu", "port": 2222, "key": "~/.ssh/id"}, "memory": 1.5}
        ]))
    }

    /// Input A as a page.
    pub(crate) fn page_a() -> super::Page {
        super::Page::new(2, 1, 1500, input_a())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_of_input_a() {
        let expected = concat!(
            r#"{"found": 2, "total_pages": 1, "page": 1, "limit": 1500, "items": ["#,
            r#"{"_id": "64b000000000000000000001", "hostname": "web-1", "ipv4_private": "10.0.0.1", "active": true, "cpu": 2, "datacenters": {"name": "dc1", "provider": "AWS"}, "tags": [{"key": "Name", "value": "web \"a\""}], "updated_at": "2020-05-01T10:00:00"}, "#,
            r#"{"_id": "64b000000000000000000002", "hostname": "db-1", "active": false, "datacenters": {"name": "dc1", "region": "us-east-1"}, "os": {"base": "Linux"}, "ansible": {"user": "ubuntu", "port": 2222, "key": "~/.ssh/id"}, "memory": 1.5}"#,
            "]}\n"
        );
        assert_eq!(render(Format::Json, &fixtures::page_a()), expected);
    }

    #[test]
    fn json_of_empty_page() {
        let page = Page::new(0, 1, 1500, Vec::new());
        assert_eq!(
            render(Format::Json, &page),
            "{\"found\": 0, \"total_pages\": 0, \"page\": 1, \"limit\": 1500, \"items\": []}\n"
        );
    }

    #[test]
    fn json_escapes_non_ascii() {
        let page = Page::new(1, 1, 10, fixtures::rows(json!([{"name": "café"}])));
        assert!(render(Format::Json, &page).contains(r#""name": "caf\u00e9""#));
    }

    #[test]
    fn total_pages() {
        assert_eq!(Page::new(0, 1, 1500, Vec::new()).total_pages, 0);
        assert_eq!(Page::new(1500, 1, 1500, Vec::new()).total_pages, 1);
        assert_eq!(Page::new(1501, 1, 1500, Vec::new()).total_pages, 2);
        assert_eq!(Page::new(7, 1, 0, Vec::new()).total_pages, 0);
    }

    #[test]
    fn page_round_trips_through_serde() {
        let page = fixtures::page_a();
        let text = serde_json::to_string(&page).expect("valid");
        assert!(text.starts_with(r#"{"found":2,"total_pages":1,"page":1,"limit":1500,"items":"#));
        assert_eq!(serde_json::from_str::<Page>(&text).expect("valid"), page);
    }
}
