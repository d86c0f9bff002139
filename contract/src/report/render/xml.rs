//! `application/xml`: what python-simplexml's `dumps({"response": envelope})` wrote through
//! `xml.dom.minidom`.
//!
//! - The body is `<?xml version="1.0" ?>` immediately followed by `<response>`: no newline, no
//!   encoding declaration, no indentation. The envelope's children follow in key order.
//! - An object becomes an element holding one child per key, recursively; an empty object gives
//!   `<key/>`.
//! - A list under a key ending in `s` becomes a wrapper element holding one element per item,
//!   named without the final `s` (`items`/`item`, `tags`/`tag`); an empty list gives `<key/>`.
//!   A list under any other key becomes repeated `<key>` elements, and an empty one writes
//!   nothing.
//! - A string containing `<`, `>` or `&` is written as a CDATA section; other strings as text, in
//!   which `"` is escaped as `&quot;`. Other scalars are written with Python's `str()` (`True`,
//!   `None`, `2`, `1.5`); an empty string gives `<key></key>`.
//! - Element names are the keys as they are, unchecked (`_id` gives `<_id>`), and characters XML
//!   cannot hold are not removed, as in the original.
//!
//! Where the original failed, this module writes something sensible instead:
//! - A list of scalars (`zones: ["a", "b"]`) made simplexml raise, and the answer became
//!   `<response><message>Internal Server Error</message></response>`. Here each scalar is an
//!   element like a list of objects would give: `<zones><zone>a</zone><zone>b</zone></zones>`,
//!   `<l>1</l><l>2</l>`. A list nested in a list is written the same way, under the same name.
//! - A string containing `]]>` made minidom raise. Here the CDATA section is split so that no
//!   section contains `]]>` (`<![CDATA[a]]]]><![CDATA[>b]]>`).
//! - A list under the key `s` alone would have given elements with an empty name; here it is
//!   written as repeated `<s>` elements.
//! - simplexml's special `_attrs`/`_value` keys are not interpreted; they are written as ordinary
//!   elements (report rows never hold them).

use serde_json::{Map, Value};

use crate::report::render::Page;
use crate::report::render::python::{number_text, py_str};

/// Writes the XML body for `page`.
pub(crate) fn render(page: &Page) -> String {
    let mut out = String::from("<?xml version=\"1.0\" ?><response>");
    for (name, value) in [
        ("found", page.found),
        ("total_pages", page.total_pages),
        ("page", page.page),
        ("limit", page.limit),
    ] {
        push_text_element(&mut out, name, &value.to_string());
    }
    if page.items.is_empty() {
        out.push_str("<items/>");
    } else {
        out.push_str("<items>");
        for item in &page.items {
            push_object(&mut out, "item", item);
        }
        out.push_str("</items>");
    }
    out.push_str("</response>");
    out
}

/// Writes the element(s) for one key/value pair.
fn push_field(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Object(map) => push_object(out, name, map),
        Value::Array(items) if name.len() > 1 && name.ends_with('s') => {
            if items.is_empty() {
                push_empty(out, name);
            } else {
                let item_name = &name[..name.len() - 1];
                open(out, name);
                for item in items {
                    push_field(out, item_name, item);
                }
                close(out, name);
            }
        }
        Value::Array(items) => {
            for item in items {
                push_field(out, name, item);
            }
        }
        Value::String(s) => push_text_element(out, name, s),
        Value::Number(n) => push_text_element(out, name, &number_text(n)),
        scalar => push_text_element(out, name, &py_str(scalar)),
    }
}

fn push_object(out: &mut String, name: &str, map: &Map<String, Value>) {
    if map.is_empty() {
        push_empty(out, name);
        return;
    }
    open(out, name);
    for (key, value) in map {
        push_field(out, key, value);
    }
    close(out, name);
}

fn push_text_element(out: &mut String, name: &str, text: &str) {
    open(out, name);
    if text.contains(['<', '>', '&']) {
        out.push_str("<![CDATA[");
        out.push_str(&text.replace("]]>", "]]]]><![CDATA[>"));
        out.push_str("]]>");
    } else {
        out.push_str(&text.replace('"', "&quot;"));
    }
    close(out, name);
}

fn open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn push_empty(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push_str("/>");
}

#[cfg(test)]
mod tests {
    use super::render;
    use crate::report::render::Page;
    use crate::report::render::fixtures::{page_a, rows};
    use serde_json::json;

    fn item_xml(row: serde_json::Value) -> String {
        let page = Page::new(1, 1, 1500, rows(json!([row])));
        let body = render(&page);
        let start = body.find("<items>").expect("valid") + "<items>".len();
        let end = body.rfind("</items>").expect("valid");
        body[start..end].to_owned()
    }

    #[test]
    fn spec_input_a() {
        let expected = concat!(
            r#"<?xml version="1.0" ?><response><found>2</found><total_pages>1</total_pages><page>1</page><limit>1500</limit><items>"#,
            r#"<item><_id>64b000000000000000000001</_id><hostname>web-1</hostname><ipv4_private>10.0.0.1</ipv4_private><active>True</active><cpu>2</cpu><datacenters><name>dc1</name><provider>AWS</provider></datacenters><tags><tag><key>Name</key><value>web &quot;a&quot;</value></tag></tags><updated_at>2020-05-01T10:00:00</updated_at></item>"#,
            r#"<item><_id>64b000000000000000000002</_id><hostname>db-1</hostname><active>False</active><datacenters><name>dc1</name><region>us-east-1</region></datacenters><os><base>Linux</base></os><ansible><user>ubuntu</user><port>2222</port><key>~/.ssh/id</key></ansible><memory>1.5</memory></item>"#,
            r#"</items></response>"#
        );
        assert_eq!(render(&page_a()), expected);
    }

    #[test]
    fn no_items() {
        assert_eq!(
            render(&Page::new(0, 1, 1500, Vec::new())),
            r#"<?xml version="1.0" ?><response><found>0</found><total_pages>0</total_pages><page>1</page><limit>1500</limit><items/></response>"#
        );
    }

    #[test]
    fn spec_more_cases() {
        let row = json!({"_id": "x1", "name": "a<b & c", "n": null, "empty": [], "emptyd": {},
                         "role": [{"x": 1}, {"x": 2}], "deep": {"a": {"b": "c"}}});
        assert_eq!(
            item_xml(row),
            "<item><_id>x1</_id><name><![CDATA[a<b & c]]></name><n>None</n><emptyd/><role><x>1</x></role><role><x>2</x></role><deep><a><b>c</b></a></deep></item>"
        );
    }

    #[test]
    fn lists_of_scalars_are_elements() {
        let row = json!({"zones": ["a", "b"], "ip": ["10.0.0.1"], "l": [1, 2.5, true], "tags": [],
                         "roles": [{"refs": "users"}], "m": [[1, 2]]});
        assert_eq!(
            item_xml(row),
            "<item><zones><zone>a</zone><zone>b</zone></zones><ip>10.0.0.1</ip><l>1</l><l>2.5</l><l>True</l><tags/><roles><role><refs>users</refs></role></roles><m>1</m><m>2</m></item>"
        );
    }

    #[test]
    fn cdata_and_escaping() {
        let row = json!({"a": "x]]>y<", "b": "it's \"q\"", "c": "", "s": [1], "d": 1e16});
        assert_eq!(
            item_xml(row),
            "<item><a><![CDATA[x]]]]><![CDATA[>y<]]></a><b>it's &quot;q&quot;</b><c></c><s>1</s><d>1e+16</d></item>"
        );
    }
}
