//! `text/plain`: one line per item, no header and no envelope.
//!
//! Each line is the concatenation, over the item's keys in order, of `" - <key>: <str(value)>"`,
//! ended by `"\n\r"` (LF then CR, as the original wrote). Values use Python's `str()`: strings
//! raw (embedded newlines included), `True`/`False`/`None`, floats with Python's repr, objects and
//! lists as their Python repr (`{'name': 'dc1'}`). No items gives an empty body.

use serde_json::{Map, Value};

use crate::report::render::python::py_str;

/// Writes the plain-text body for `items`.
pub(crate) fn render(items: &[Map<String, Value>]) -> String {
    let mut out = String::new();
    for item in items {
        for (key, value) in item {
            out.push_str(" - ");
            out.push_str(key);
            out.push_str(": ");
            out.push_str(&py_str(value));
        }
        out.push_str("\n\r");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;
    use crate::report::render::fixtures::{input_a, rows};
    use serde_json::json;

    #[test]
    fn spec_input_a() {
        let expected = concat!(
            r#" - _id: 64b000000000000000000001 - hostname: web-1 - ipv4_private: 10.0.0.1 - active: True - cpu: 2 - datacenters: {'name': 'dc1', 'provider': 'AWS'} - tags: [{'key': 'Name', 'value': 'web "a"'}] - updated_at: 2020-05-01T10:00:00"#,
            "\n\r",
            r#" - _id: 64b000000000000000000002 - hostname: db-1 - active: False - datacenters: {'name': 'dc1', 'region': 'us-east-1'} - os: {'base': 'Linux'} - ansible: {'user': 'ubuntu', 'port': 2222, 'key': '~/.ssh/id'} - memory: 1.5"#,
            "\n\r",
        );
        assert_eq!(render(&input_a()), expected);
    }

    #[test]
    fn empty_and_odd_values() {
        assert_eq!(render(&[]), "");
        let items = rows(json!([{}, {"n": null, "s": "a\nb", "l": ["x\ny"], "f": 2.0}]));
        assert_eq!(
            render(&items),
            "\n\r - n: None - s: a\nb - l: ['x\\ny'] - f: 2.0\n\r"
        );
    }
}
