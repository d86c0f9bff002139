//! `text/inventory`: an Ansible INI inventory with the single group `[all]`.
//!
//! The body starts with `"[all]\n\r"`. Each item then gives one host line ended by `"\n"`, built
//! from the first truthy value (not null, `false`, `0` or `""`) of each option list, looked up as
//! dotted paths:
//!
//! 1. the host name, bare: `hostname`, `servers.hostname`;
//! 2. ` ansible_host=`: `dns_internal`, `ipv4_private`, `ipv4_public`, `hostname`,
//!    `servers.ipv4_private`, `servers.ipv4_public`, `servers.hostname`;
//! 3. ` ansible_user=`: `ansible.user`, `auth[0].username`;
//! 4. ` ansible_ssh_private_key_file=`: `ansible.key`;
//! 5. ` ansible_port=`: `ansible.port`.
//!
//! A part with no value is left out; there are no defaults. Values use Python's `str()`. An item
//! without a host name therefore starts with a space, and an item with none of the fields gives
//! an empty line.
//!
//! Items are deduplicated by their id, the first truthy of `servers._id` and `_id` (compared with
//! Python's `==`): only the first item with a given id is written, and all items without an id
//! share one id. For pivot reports this keeps one line per server.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::report::render::python::{Key, get_in_row, py_str, truthy};

const ID: &[&str] = &["servers._id", "_id"];
const HOST_NAME: &[&str] = &["hostname", "servers.hostname"];
/// The `key=value` parts after the host name, in the order they are written.
const PARTS: &[(&str, &[&str])] = &[
    (
        "ansible_host",
        &[
            "dns_internal",
            "ipv4_private",
            "ipv4_public",
            "hostname",
            "servers.ipv4_private",
            "servers.ipv4_public",
            "servers.hostname",
        ],
    ),
    ("ansible_user", &["ansible.user", "auth[0].username"]),
    ("ansible_ssh_private_key_file", &["ansible.key"]),
    ("ansible_port", &["ansible.port"]),
];

/// Writes the inventory body for `items`.
pub(crate) fn render(items: &[Map<String, Value>]) -> String {
    let mut out = String::from("[all]\n\r");
    let mut seen = HashSet::new();
    for item in items {
        let id = first_truthy(item, ID).map_or(Key::Null, Key::of);
        if !seen.insert(id) {
            continue;
        }
        if let Some(host) = first_truthy(item, HOST_NAME) {
            out.push_str(&py_str(host));
        }
        for (name, options) in PARTS {
            if let Some(value) = first_truthy(item, options) {
                out.push(' ');
                out.push_str(name);
                out.push('=');
                out.push_str(&py_str(value));
            }
        }
        out.push('\n');
    }
    out
}

fn first_truthy<'a>(item: &'a Map<String, Value>, paths: &[&str]) -> Option<&'a Value> {
    paths
        .iter()
        .filter_map(|path| get_in_row(item, path))
        .find(|value| truthy(value))
}

#[cfg(test)]
mod tests {
    use super::render;
    use crate::report::render::fixtures::{input_a, rows};
    use serde_json::json;

    #[test]
    fn spec_input_a() {
        assert_eq!(
            render(&input_a()),
            "[all]\n\rweb-1 ansible_host=10.0.0.1\ndb-1 ansible_host=db-1 ansible_user=ubuntu ansible_ssh_private_key_file=~/.ssh/id ansible_port=2222\n"
        );
    }

    #[test]
    fn spec_dedup_and_fallbacks() {
        let pivot = json!({"_id": "p1", "name": "ACME",
                           "servers": {"_id": "s1", "hostname": "web-1", "ipv4_private": "10.0.0.1"}});
        let items = rows(json!([
            pivot,
            pivot,
            {"_id": "p2", "servers": {"_id": "s2", "ipv4_public": "1.2.3.4"}, "auth": [{"username": "root"}]},
            {"_id": "x9", "dns_internal": "ip-10.internal", "ipv4_private": "10.0.0.9", "hostname": "h9",
             "ansible": {"port": "22", "user": ""}},
            {"_id": "c1"},
            {"_id": "c1", "hostname": "dupe-of-c1"},
            {"name": "noid", "hostname": "n1"},
            {"name": "noid2", "hostname": "n2"}
        ]));
        assert_eq!(
            render(&items),
            "[all]\n\rweb-1 ansible_host=10.0.0.1\n ansible_host=1.2.3.4 ansible_user=root\nh9 ansible_host=ip-10.internal ansible_port=22\n\nn1 ansible_host=n1\n"
        );
    }

    #[test]
    fn empty_and_python_equal_ids() {
        assert_eq!(render(&[]), "[all]\n\r");
        let items = rows(json!([
            {"_id": 1, "hostname": "a", "ansible": {"port": 0}},
            {"_id": 1.0, "hostname": "b"},
            {"_id": "1", "hostname": "c", "ansible": {"port": 2.0}}
        ]));
        assert_eq!(
            render(&items),
            "[all]\n\ra ansible_host=a\nc ansible_host=c ansible_port=2.0\n"
        );
    }
}
