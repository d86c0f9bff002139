//! What an import takes from a file, as Maestro's importers translated it: Maestro's own JSON
//! inventory (`{"servers": [...], "volumes": [...], ...}`, fields of each kind copied from a
//! list, nothing else), Ansible's facts (the setup module's `--tree` output, one host per
//! file) and Terraform's state (format 4, Terraform 0.12 and later: `aws_instance` and
//! `aws_ebs_volume`). Each item gets a `unique_id`: the file's own, the provider's id, or the
//! value it is matched by.

use serde_json::{Map, Value, json};

use crate::discovery::rules::{copy, key_values, put, truthy};

/// Why a file gives no items.
pub type Refusal = String;

/// A Maestro inventory file's `key` list: each object's fields among `fields` (a file cannot
/// set roles, owners or ids), its `datacenters.zone` and `.region`, and a `unique_id`: its own,
/// else its `match_key` (servers by `ipv4_private`, the other kinds by `name`).
pub fn file_items(
    doc: &Value,
    key: &str,
    fields: &[&str],
    match_key: &str,
) -> Result<Vec<Value>, Refusal> {
    let known = FILE_KEYS.iter().any(|k| doc.get(*k).is_some());
    if !known {
        return Err(format!(
            "it is not a Maestro inventory file: it has none of {}",
            FILE_KEYS.join(", ")
        ));
    }
    let list = match doc.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(format!("{key:?} is not a list")),
    };
    let mut out = Vec::with_capacity(list.len());
    for raw in list {
        if !raw.is_object() {
            return Err(format!("an element of {key:?} is not an object"));
        }
        let mut d = Map::new();
        for f in fields {
            put(&mut d, f, raw.get(*f));
        }
        let mut dc = Map::new();
        put(&mut dc, "zone", raw.pointer("/datacenters/zone"));
        put(&mut dc, "region", raw.pointer("/datacenters/region"));
        d.insert("datacenters".into(), Value::Object(dc));
        let id = d
            .get("unique_id")
            .or_else(|| d.get(match_key))
            .and_then(text)
            .map(str::to_owned);
        let Some(id) = id else { continue };
        d.insert("unique_id".into(), json!(id));
        out.push(Value::Object(d));
    }
    Ok(out)
}

/// The lists a Maestro inventory file may hold.
pub const FILE_KEYS: [&str; 6] = [
    "servers",
    "applications",
    "volumes",
    "snapshots",
    "images",
    "flavors",
];

fn text(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

/// The fields Maestro's file importer copied, per kind.
pub const SERVER_FIELDS: &[&str] = &[
    "unique_id",
    "name",
    "hostname",
    "ipv4_private",
    "ipv4_public",
    "role",
    "environment",
    "os",
    "services",
    "tags",
    "cpu",
    "memory",
    "auth",
    "status",
    "storage",
];
pub const APPLICATION_FIELDS: &[&str] = &[
    "name",
    "unique_id",
    "asm_groups",
    "spec",
    "size",
    "engine",
    "system",
    "own",
    "provider",
    "tags",
    "environment",
    "family",
    "status",
    "domain",
    "loadbalance_names",
    "instances",
    "language",
    "cluster",
    "dataguard",
    "type",
    "storage_types",
    "queues",
    "urls",
    "cache_behavior",
    "cache_nodes",
    "crs_version",
    "modal",
    "pdbs",
];
pub const VOLUME_FIELDS: &[&str] = &[
    "name",
    "unique_id",
    "iops",
    "encrypted",
    "size",
    "fftype",
    "kms_key_id",
    "source_volume_id",
    "storage_account_type",
    "tags",
    "write_accelerator_enabled",
    "vhd",
    "diff_disk_settings",
    "create_option",
    "sectors",
    "sectorsize",
    "support_discard",
    "host",
    "holders",
    "migration_id",
    "image_id",
    "volume_type",
    "snapshot_id",
    "project_id",
    "service",
    "droplets_ids",
];
pub const SNAPSHOT_FIELDS: &[&str] = &[
    "name",
    "unique_id",
    "volume_id",
    "volume_size",
    "status",
    "snapshot_id",
    "size",
    "progress",
    "tags",
    "kms_key_id",
    "encrypted",
    "description",
    "project_id",
    "service",
    "data_encryption_key_id",
    "owner_id",
    "start_time",
    "owner_alias",
    "state_message",
    "min_disk_size",
    "public",
    "type",
];
pub const IMAGE_FIELDS: &[&str] = &[
    "name",
    "unique_id",
    "image_type",
    "image_location",
    "status",
    "root_device_type",
    "hypervisor",
    "plataform",
    "tags",
    "storage",
    "distribution",
    "slug",
    "region",
    "public",
    "min_disk_size",
    "type",
];
pub const FLAVOR_FIELDS: &[&str] = &[
    "name",
    "unique_id",
    "api_name",
    "provider",
    "memory",
    "compute_units_ecu",
    "vcpus",
    "gpus",
    "fpgas",
    "tags",
    "ecu_per_vcpu",
    "physical_processor",
    "clock_speed_ghz",
    "intel_avx",
    "intel_avx2",
    "intel_turbo",
    "instance_storage",
    "instance_storage_already_warmed_up",
    "instance_storage_ssd_trim_support",
    "arch",
    "network_performance",
    "ebs_optimized_max_bandwidth",
    "ebs_optimized_throughput",
    "ebs_optimized_max_16_k_iops",
    "max_ips",
    "enhanced_networking",
    "vpc_only",
    "ipv_6_support",
    "placement_group_support",
    "linux_virtualization",
    "service",
    "is_public",
    "ebs_optimized_surcharge",
    "linux_on_demand_cost",
    "linux_reserved_cost",
    "rhel_on_demand_cost",
    "rhel_reserved_cost",
    "sles_on_demand_cost",
    "sles_reserved_cost",
    "windows_on_demand_cost",
    "windows_reserved_cost",
    "windows_sql_web_on_demand_cost",
    "windows_sql_web_reserved_cost",
    "windows_sql_std_on_demand_cost",
    "windows_sql_std_reserved_cost",
    "windows_sql_ent_on_demand_cost",
    "windows_sql_ent_reserved_cost",
];

/// The `ansible_facts` of a setup `--tree` file; `None` for a host Ansible could not reach
/// (its file holds `unreachable` or `failed` and no facts).
fn facts(doc: &Value) -> Result<Option<&Value>, Refusal> {
    match doc.get("ansible_facts") {
        Some(f @ Value::Object(_)) => Ok(Some(f)),
        Some(_) => Err("ansible_facts is not an object".into()),
        None if doc.get("unreachable").is_some() || doc.get("failed").is_some() => Ok(None),
        None => Err("it has no ansible_facts: not the output of Ansible's setup module".into()),
    }
}

/// Whether a setup `--tree` file is of a host Ansible could not reach (no facts, and
/// `unreachable` or `failed`).
pub fn unreachable(doc: &Value) -> bool {
    doc.get("ansible_facts").is_none()
        && (doc.get("unreachable").is_some() || doc.get("failed").is_some())
}

/// The host's identity for ids: its machine id, else its product UUID, else its address.
fn host_id(f: &Value) -> Option<&str> {
    ["ansible_machine_id", "ansible_product_uuid"]
        .iter()
        .find_map(|k| f.get(*k).and_then(text))
        .or_else(|| f.pointer("/ansible_default_ipv4/address").and_then(text))
}

/// An Ansible host as Maestro's Ansible rules stored it.
pub fn ansible_server(doc: &Value) -> Result<Vec<Value>, Refusal> {
    let Some(f) = facts(doc)? else {
        return Ok(Vec::new());
    };
    let Some(id) = host_id(f) else {
        return Ok(Vec::new());
    };
    let mut d = Map::new();
    d.insert("unique_id".into(), json!(id));
    let host = f
        .get("ansible_nodename")
        .or_else(|| f.get("ansible_hostname"));
    put(&mut d, "name", host);
    put(&mut d, "hostname", host);
    put(
        &mut d,
        "ipv4_private",
        f.pointer("/ansible_default_ipv4/address"),
    );
    put(&mut d, "cpu", f.get("ansible_processor_vcpus"));
    if let Some(mb) = f.get("ansible_memtotal_mb").and_then(Value::as_f64) {
        // Megabytes as Maestro stored Ansible's: thousands, rounded.
        put(&mut d, "memory", Some(&json!((mb / 1000.0).round())));
    }
    let mut os = Map::new();
    copy(
        &mut os,
        f,
        &[
            ("base", "ansible_system"),
            ("dist", "ansible_distribution"),
            ("file_path", "ansible_distribution_file_path"),
            ("variety", "ansible_distribution_file_variety"),
            ("major_version", "ansible_distribution_major_version"),
            ("version", "ansible_distribution_version"),
        ],
    );
    if !os.is_empty() {
        d.insert("os".into(), Value::Object(os));
    }
    let devices = f.get("ansible_devices").and_then(Value::as_object);
    let storage: Vec<Value> = devices
        .into_iter()
        .flatten()
        .map(|(name, dev)| {
            let mut s = Map::new();
            s.insert("name".into(), json!(name));
            let partitions: Vec<Value> = dev
                .get("partitions")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(pname, p)| partition(f, pname, p))
                .collect();
            if !partitions.is_empty() {
                s.insert("partitions".into(), Value::Array(partitions));
            }
            s.insert("unique_id".into(), json!(device_id(f, name, dev)));
            s.insert("status".into(), json!("attached"));
            Value::Object(s)
        })
        .collect();
    if !storage.is_empty() {
        d.insert("storage_count".into(), json!(storage.len()));
        d.insert("storage".into(), Value::Array(storage));
    }
    copy(
        &mut d,
        f,
        &[
            ("dns", "ansible_dns"),
            ("network_interface", "ansible_interfaces"),
            ("service_mgr", "ansible_service_mgr"),
            ("pkg_mgr", "ansible_pkg_mgr"),
            ("ipv4_all", "ansible_all_ipv4_addresses"),
            ("ipv6_all", "ansible_all_ipv6_addresses"),
        ],
    );
    if let Some(user) = f.get("ansible_user_id").filter(|u| truthy(u)) {
        d.insert("auth".into(), json!([{"username": user}]));
    }
    if let Some(v) = f.get("ansible_python_version").filter(|v| truthy(v)) {
        d.insert(
            "services".into(),
            json!([{"name": "Python", "version": v, "status": "Active"}]),
        );
    }
    let mut dc = Map::new();
    copy(
        &mut dc,
        f,
        &[
            ("kernel", "ansible_kernel"),
            ("instance", "ansible_product_name"),
            ("vendor", "ansible_system_vendor"),
            ("virtualization", "ansible_virtualization_type"),
            ("architecture", "ansible_architecture"),
            ("bios_date", "ansible_bios_date"),
        ],
    );
    d.insert("datacenters".into(), Value::Object(dc));
    Ok(vec![Value::Object(d)])
}

/// A partition with its size in GB and, when mounted, where and how.
fn partition(facts: &Value, name: &str, p: &Value) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    if let Some(size) = p.get("size").and_then(Value::as_str).and_then(gigabytes) {
        out.insert("size".into(), json!(size));
    }
    let uuid = p
        .get("uuid")
        .and_then(text)
        .or_else(|| p.pointer("/links/uuids/0").and_then(text));
    put(&mut out, "uuid", uuid.map(|u| json!(u)).as_ref());
    let mount = uuid.and_then(|u| {
        facts
            .get("ansible_mounts")?
            .as_array()?
            .iter()
            .find(|m| m.get("uuid").and_then(Value::as_str) == Some(u))
    });
    if let Some(m) = mount {
        copy(
            &mut out,
            m,
            &[
                ("device", "device"),
                ("mount", "mount"),
                ("ftype", "fstype"),
                ("options", "options"),
            ],
        );
    }
    Value::Object(out)
}

/// A device's id, as Maestro's chain found it: an EBS volume id in its links (so a disk of an
/// AWS machine meets the volume AWS discovery stored), its last link id, its first partition's
/// UUID, its own UUID; else the host and the device's name (Maestro used the sector count and
/// the name, which two hosts share).
fn device_id(facts: &Value, name: &str, dev: &Value) -> String {
    let ids: Vec<&str> = dev
        .pointer("/links/ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let ebs = ids.iter().find_map(|id| {
        let rest = id.split("Elastic_Block_Store_vol").nth(1)?;
        let hex: String = rest
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        (!hex.is_empty()).then(|| format!("vol-{hex}"))
    });
    ebs.or_else(|| ids.last().map(|s| (*s).to_owned()))
        .or_else(|| {
            dev.get("partitions")
                .and_then(Value::as_object)
                .and_then(|p| p.values().next())
                .and_then(|p| p.get("uuid"))
                .and_then(text)
                .map(str::to_owned)
        })
        .or_else(|| {
            dev.pointer("/links/uuids/0")
                .and_then(text)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| format!("{}_{name}", host_id(facts).unwrap_or("host")))
}

/// Ansible's human sizes (`7.28 TB`, `512.00 MB`, `0.00 Bytes`) in GB, to two places; `None`
/// for what is not a size.
pub fn gigabytes(s: &str) -> Option<f64> {
    let mut parts = s.split_whitespace();
    let n: f64 = parts.next()?.parse().ok()?;
    let per_gb = match parts.next()?.to_ascii_uppercase().as_str() {
        "BYTES" | "B" => 1e-9,
        "KB" => 1e-6,
        "MB" => 1e-3,
        "GB" => 1.0,
        "TB" => 1e3,
        "PB" => 1e6,
        _ => return None,
    };
    let gb = n * per_gb;
    gb.is_finite().then(|| (gb * 100.0).round() / 100.0)
}

/// An Ansible host's disks as volumes (devices of no size, such as an empty CD drive, are
/// left out).
pub fn ansible_volumes(doc: &Value) -> Result<Vec<Value>, Refusal> {
    let Some(f) = facts(doc)? else {
        return Ok(Vec::new());
    };
    let host = f
        .get("ansible_nodename")
        .or_else(|| f.get("ansible_hostname"))
        .and_then(text);
    let mut out = Vec::new();
    for (name, dev) in f
        .get("ansible_devices")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let size = dev.get("size").and_then(Value::as_str).and_then(gigabytes);
        if !size.is_some_and(|s| s > 0.0) {
            continue;
        }
        let mut d = Map::new();
        d.insert("unique_id".into(), json!(device_id(f, name, dev)));
        d.insert(
            "name".into(),
            json!(match host {
                Some(h) => format!("{h}:{name}"),
                None => name.clone(),
            }),
        );
        put(&mut d, "size", size.map(|s| json!(s)).as_ref());
        copy(
            &mut d,
            dev,
            &[
                ("sectors", "sectors"),
                ("sectorsize", "sectorsize"),
                ("support_discard", "support_discard"),
                ("model", "model"),
                ("host", "host"),
                ("holders", "holders"),
            ],
        );
        d.insert("datacenters".into(), Value::Object(Map::new()));
        out.push(Value::Object(d));
    }
    Ok(out)
}

/// The `attributes` of every instance of the state's managed resources of `kind`
/// (`aws_instance`).
fn resources<'a>(doc: &'a Value, kind: &str) -> Result<Vec<&'a Value>, Refusal> {
    match doc.get("version").and_then(Value::as_u64) {
        Some(4) => {}
        Some(v) if v < 4 => {
            return Err(format!(
                "it is a state of Terraform before 0.12 (format version {v}); Terraform 0.12 and later are read"
            ));
        }
        _ => {
            return Err("it is not a Terraform state of format version 4".into());
        }
    }
    let list = match doc.get("resources") {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(_) => return Err("its resources are not a list".into()),
    };
    Ok(list
        .iter()
        .filter(|r| r.get("type").and_then(Value::as_str) == Some(kind))
        .filter(|r| r.get("mode").and_then(Value::as_str).unwrap_or("managed") == "managed")
        .flat_map(|r| {
            r.get("instances")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|i| i.get("attributes").filter(|a| a.is_object()))
        .collect())
}

/// `aws_instance`s as Maestro's Terraform rules stored them.
pub fn terraform_servers(doc: &Value) -> Result<Vec<Value>, Refusal> {
    let mut out = Vec::new();
    for a in resources(doc, "aws_instance")? {
        let Some(id) = a.get("id").and_then(text) else {
            continue;
        };
        let tags = a.get("tags");
        let tag = |names: &[&str]| names.iter().find_map(|n| tags?.get(*n)).cloned();
        let mut d = Map::new();
        d.insert("unique_id".into(), json!(id));
        put(&mut d, "name", tag(&["Name", "name"]).as_ref());
        put(&mut d, "role", tag(&["role", "Role"]).as_ref());
        put(&mut d, "environment", tag(&["environment", "env"]).as_ref());
        copy(
            &mut d,
            a,
            &[
                ("cpu", "cpu_core_count"),
                ("dns_public", "public_dns"),
                ("dns_private", "private_dns"),
                ("ebs_optimized", "ebs_optimized"),
                ("ipv4_private", "private_ip"),
                ("ipv4_public", "public_ip"),
            ],
        );
        let storage: Vec<Value> = block_devices(a)
            .map(|b| {
                let mut s = Map::new();
                copy(
                    &mut s,
                    b,
                    &[
                        ("device_name", "device_name"),
                        ("delete_termination", "delete_on_termination"),
                        ("unique_id", "volume_id"),
                    ],
                );
                Value::Object(s)
            })
            .collect();
        if !storage.is_empty() {
            d.insert("storage".into(), Value::Array(storage));
        }
        if let Some(key) = a.get("key_name").filter(|k| truthy(k)) {
            d.insert("auth".into(), json!([{"name": key, "type": "PKI"}]));
        }
        let state = a.get("instance_state").and_then(Value::as_str);
        match state {
            Some("running" | "pending") => {
                d.insert("status".into(), json!("Active"));
            }
            Some("stopping" | "stopped") => {
                d.insert("status".into(), json!("Stopped"));
            }
            _ => {}
        }
        d.insert(
            "active".into(),
            json!(!matches!(state, Some("terminated" | "shutting-down"))),
        );
        d.insert("tags".into(), key_values(tags));
        let mut dc = Map::new();
        copy(
            &mut dc,
            a,
            &[
                ("zone", "availability_zone"),
                ("instance", "instance_type"),
                ("instance_id", "id"),
                ("vpc_security_group_ids", "vpc_security_group_ids"),
                ("subnet_id", "subnet_id"),
                ("arn", "arn"),
                ("image_id", "ami"),
            ],
        );
        d.insert("datacenters".into(), Value::Object(dc));
        out.push(Value::Object(d));
    }
    Ok(out)
}

fn block_devices(a: &Value) -> impl Iterator<Item = &Value> {
    ["ebs_block_device", "root_block_device"]
        .into_iter()
        .flat_map(|k| a.get(k).and_then(Value::as_array).into_iter().flatten())
}

/// The disks of `aws_instance`s (root and EBS block devices) as volumes, named by their id as
/// Maestro's hook named them.
pub fn terraform_instance_volumes(doc: &Value) -> Result<Vec<Value>, Refusal> {
    let mut out = Vec::new();
    for a in resources(doc, "aws_instance")? {
        for b in block_devices(a) {
            let Some(id) = b.get("volume_id").and_then(text) else {
                continue;
            };
            let mut d = Map::new();
            d.insert("unique_id".into(), json!(id));
            d.insert("name".into(), json!(id));
            copy(
                &mut d,
                b,
                &[
                    ("size", "volume_size"),
                    ("iops", "iops"),
                    ("volume_type", "volume_type"),
                    ("encrypted", "encrypted"),
                    ("delete_on_termination", "delete_on_termination"),
                    ("kms_key_id", "kms_key_id"),
                ],
            );
            let mut dc = Map::new();
            put(&mut dc, "zone", a.get("availability_zone"));
            d.insert("datacenters".into(), Value::Object(dc));
            out.push(Value::Object(d));
        }
    }
    Ok(out)
}

/// `aws_ebs_volume`s as Maestro's Terraform rules stored them.
pub fn terraform_ebs_volumes(doc: &Value) -> Result<Vec<Value>, Refusal> {
    let mut out = Vec::new();
    for a in resources(doc, "aws_ebs_volume")? {
        let Some(id) = a.get("id").and_then(text) else {
            continue;
        };
        let mut d = Map::new();
        d.insert("unique_id".into(), json!(id));
        put(&mut d, "name", a.pointer("/tags/Name"));
        copy(
            &mut d,
            a,
            &[
                ("size", "size"),
                ("iops", "iops"),
                ("volume_type", "type"),
                ("encrypted", "encrypted"),
                ("availability_zone", "availability_zone"),
                ("kms_key_id", "kms_key_id"),
                ("snapshot_id", "snapshot_id"),
            ],
        );
        d.insert("tags".into(), key_values(a.get("tags")));
        let mut dc = Map::new();
        copy(
            &mut dc,
            a,
            &[
                ("zone", "availability_zone"),
                ("instance_id", "id"),
                ("arn", "arn"),
            ],
        );
        d.insert("datacenters".into(), Value::Object(dc));
        out.push(Value::Object(d));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_files_copy_only_the_listed_fields() {
        let doc = json!({"servers": [
            {"name": "web-1", "ipv4_private": "10.0.0.1", "cpu": 2, "roles": [{"_id": "x"}],
             "_id": "5f0000000000000000000001", "active": false, "owner": {"_id": "x"},
             "datacenters": {"zone": "a", "region": "r", "_id": "forged", "name": "n"}},
            {"name": "no address"}
        ]});
        let items = file_items(&doc, "servers", SERVER_FIELDS, "ipv4_private").expect("items");
        assert_eq!(
            items,
            vec![
                json!({"name": "web-1", "ipv4_private": "10.0.0.1", "cpu": 2,
                        "datacenters": {"zone": "a", "region": "r"}, "unique_id": "10.0.0.1"})
            ]
        );
        assert!(file_items(&json!({"servers": {}}), "servers", SERVER_FIELDS, "name").is_err());
        assert_eq!(
            file_items(&json!({"volumes": []}), "servers", SERVER_FIELDS, "name"),
            Ok(Vec::new())
        );
        for not_inventory in [json!({}), json!([]), json!({"server": [{"name": "typo"}]})] {
            assert!(
                file_items(&not_inventory, "servers", SERVER_FIELDS, "name").is_err(),
                "{not_inventory}"
            );
        }
    }

    #[test]
    fn ansible_sizes_and_device_ids() {
        assert_eq!(gigabytes("7.28 TB"), Some(7280.0));
        assert_eq!(gigabytes("512.00 MB"), Some(0.51));
        assert_eq!(gigabytes("0.00 Bytes"), Some(0.0));
        assert_eq!(gigabytes("n/a"), None);
        let facts = json!({"ansible_machine_id": "m1"});
        let ebs = json!({"links": {"ids": ["nvme-Amazon_Elastic_Block_Store_vol0abc123def"]}});
        assert_eq!(device_id(&facts, "nvme0n1", &ebs), "vol-0abc123def");
        let lvm = json!({"links": {"ids": ["dm-name-vg0-lvol0", "dm-uuid-LVM-xyz"]}});
        assert_eq!(device_id(&facts, "dm-0", &lvm), "dm-uuid-LVM-xyz");
        assert_eq!(device_id(&facts, "sda", &json!({})), "m1_sda");
    }

    #[test]
    fn terraform_reads_managed_resources_of_state_format_4() {
        let doc = json!({"version": 4, "resources": [
            {"mode": "managed", "type": "aws_instance", "name": "web", "instances": [
                {"attributes": {"id": "i-1", "private_ip": "10.0.0.9", "instance_state": "stopped",
                 "tags": {"Name": "web", "env": "prod"}, "instance_type": "t3.micro",
                 "root_block_device": [{"volume_id": "vol-1", "volume_size": 8, "device_name": "/dev/xvda"}]}}]},
            {"mode": "data", "type": "aws_instance", "name": "other", "instances": [
                {"attributes": {"id": "i-2"}}]}
        ]});
        let servers = terraform_servers(&doc).expect("servers");
        assert_eq!(servers.len(), 1, "data sources are not inventory");
        let s = &servers[0];
        assert_eq!(
            (&s["name"], &s["status"], &s["environment"]),
            (&json!("web"), &json!("Stopped"), &json!("prod"))
        );
        assert_eq!(
            s["storage"],
            json!([{"device_name": "/dev/xvda", "unique_id": "vol-1"}])
        );
        assert_eq!(s["datacenters"]["instance"], "t3.micro");
        let vols = terraform_instance_volumes(&doc).expect("volumes");
        assert_eq!(vols[0]["unique_id"], "vol-1");
        assert!(terraform_servers(&json!({"version": 3, "modules": []})).is_err());
        assert!(terraform_servers(&json!({"name": "package.json", "version": "1.0.0"})).is_err());
        assert!(unreachable(
            &json!({"unreachable": true, "msg": "ssh: timeout"})
        ));
        assert!(!unreachable(&json!({"ansible_facts": {}})));
    }
}
