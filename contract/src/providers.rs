//! Discovery's providers: the tasks each one's connections may scan, the API calls behind each
//! task, and the connection templates Maestro's UI renders. One table for everything that
//! speaks of it: `GET /available/info|rules` serve it, `PUT /crawler/...` and
//! `maestro.discovery.scan` check against it, and the catalogue's providers implement exactly
//! the tasks marked [`TaskSpec::runs`] (a test of the catalogue holds them to it).
//!
//! Maestro names a provider by its label (`AWS`, `OpenStack`, `Digital Ocean`): the key is the
//! label lower-cased without white space ([`provider_key`]), as server-app's own lookups do.

use maestro_tasks::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::check::check_id;

/// One API call a task makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// The service (`ec2`, `s3`, `elbv2`, ...).
    pub command: &'static str,
    /// The call, in Maestro's (boto3's) words: `describe_instances`.
    pub access: &'static str,
    /// The inventory collection its items go to.
    pub entity: &'static str,
    /// Maestro's `family` of the items, where the collection holds several.
    pub family: Option<&'static str>,
    /// The `provider` string stored on items of shared collections (`S3 (AWS)`).
    pub label: Option<&'static str>,
    /// The field an item is matched by among the owner's items (`ipv4_private` for servers,
    /// `unique_id` otherwise), as Maestro merged them.
    pub key_comparer: &'static str,
}

/// One discovery task of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSpec {
    /// Maestro's task name (`server-list`, `volumes-list`).
    pub name: &'static str,
    /// Whether this project scans it. Tasks it does not are neither advertised nor accepted.
    pub runs: bool,
    pub commands: &'static [Command],
}

/// One provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    /// The key: the label lower-cased without white space (`aws`, `digitalocean`).
    pub key: &'static str,
    /// Maestro's label (`AWS`).
    pub label: &'static str,
    pub icon: &'static str,
    /// The ways to connect, as the UI lists them.
    pub methods: &'static [&'static str],
    /// The label a datacenter of this provider carries, if it is a cloud.
    pub dc: Option<&'static str>,
    pub tasks: &'static [TaskSpec],
    /// The connection templates (`data` of `/available/info/<p>`), JSON.
    pub templates: &'static str,
}

impl Provider {
    /// Whether this project scans any of its tasks.
    pub fn runs(&self) -> bool {
        self.tasks.iter().any(|t| t.runs)
    }

    /// The task named `name`, if this project runs it.
    pub fn task(&self, name: &str) -> Option<&'static TaskSpec> {
        self.tasks.iter().find(|t| t.runs && t.name == name)
    }

    /// The names of the tasks this project runs.
    pub fn task_names(&self) -> Vec<&'static str> {
        self.tasks
            .iter()
            .filter(|t| t.runs)
            .map(|t| t.name)
            .collect()
    }

    /// `/available/info/<p>`: the provider with its connection templates.
    pub fn info(&self) -> Value {
        let templates: Value = serde_json::from_str(self.templates).unwrap_or_else(|_| json!([]));
        let mut m = self.summary();
        if let Some(dc) = self.dc {
            m.insert("dc".into(), json!(dc));
        }
        m.insert("data".into(), templates);
        Value::Object(m)
    }

    /// The provider in a list of providers: `{icon, label, method}`.
    pub fn summary(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("icon".into(), json!(self.icon));
        m.insert("label".into(), json!(self.label));
        m.insert("method".into(), json!(self.methods));
        m
    }

    /// `/available/rules/<p>`: `{permissions: {task: [command, ...]}}` for the tasks this
    /// project runs; every task's commands carry `init_job: true`, which makes Maestro's
    /// server-app schedule the task when a connection is created.
    pub fn rules(&self) -> Value {
        let mut permissions = Map::new();
        for t in self.tasks.iter().filter(|t| t.runs) {
            let commands: Vec<Value> = t
                .commands
                .iter()
                .map(|c| {
                    let mut m = Map::new();
                    m.insert("command".into(), json!(c.command));
                    m.insert("access".into(), json!(c.access));
                    m.insert("entity".into(), json!(c.entity));
                    if let Some(f) = c.family {
                        m.insert("family".into(), json!(f));
                    }
                    if let Some(l) = c.label {
                        m.insert("provider".into(), json!(l));
                    }
                    m.insert("key_comparer".into(), json!(c.key_comparer));
                    m.insert("init_job".into(), json!(true));
                    Value::Object(m)
                })
                .collect();
            permissions.insert(t.name.into(), Value::Array(commands));
        }
        json!({"permissions": permissions})
    }
}

/// A provider label as a key: lower-cased, white space removed (`Digital Ocean` ->
/// `digitalocean`), as server-app normalises it.
pub fn provider_key(label: &str) -> String {
    label
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The provider a label or key names, whether this project runs it or not.
pub fn provider(label: &str) -> Option<&'static Provider> {
    let key = provider_key(label);
    PROVIDERS.iter().find(|p| p.key == key)
}

/// The providers this project scans.
pub fn running() -> impl Iterator<Item = &'static Provider> {
    PROVIDERS.iter().filter(|p| p.runs())
}

/// The provider `label` names if this project runs any of its tasks, or an error naming
/// `provider`.
pub fn running_provider(label: &str) -> Result<&'static Provider, FieldError> {
    provider(label).filter(|p| p.runs()).ok_or_else(|| {
        let known: Vec<&str> = running().map(|p| p.label).collect();
        FieldError::value(
            "provider",
            format!("provider {label:?} is not one of {}", known.join(", ")),
        )
    })
}

/// `maestro.discovery.scan(provider, conn_id, task)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// The provider's key or Maestro's label (`aws`, `AWS`).
    pub provider: String,
    /// The connection's id (in `connections`).
    pub conn_id: String,
    /// A task the provider allows (`server-list`).
    pub task: String,
}

/// The task's call binds to the request: `#[args] req: ScanRequest` in a `#[task]`.
impl maestro_tasks::CallArgs for ScanRequest {
    const PARAMETERS: &'static [&'static str] = &ScanRequest::PARAMS;
}

impl ScanRequest {
    /// The task's parameters, in order.
    pub const PARAMS: [&'static str; 3] = ["provider", "conn_id", "task"];

    /// Checks the provider runs the task and the connection id is an identifier; the provider
    /// and its task.
    pub fn check(&self) -> Result<(&'static Provider, &'static TaskSpec), FieldError> {
        let p = running_provider(&self.provider)?;
        check_id("conn_id", &self.conn_id)?;
        let task = p.task(&self.task).ok_or_else(|| {
            FieldError::value(
                "task",
                format!(
                    "This task is not allowed: provider {} runs {}, not {:?}",
                    p.label,
                    p.task_names().join(", "),
                    self.task
                ),
            )
        })?;
        Ok((p, task))
    }

    /// Checks the request (see [`check`](Self::check)).
    pub fn validate(&self) -> Result<(), FieldError> {
        self.check().map(|_| ())
    }
}

/// The words of `process.<task>` on a connection, as Maestro's UI colours them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanState {
    /// Accepted, running, retrying, or finished with nothing found.
    Warning,
    /// Finished.
    Success,
    /// Failed: credentials refused, the provider refused, a bad region.
    Danger,
}

impl ScanState {
    /// The word stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanState::Warning => "warning",
            ScanState::Success => "success",
            ScanState::Danger => "danger",
        }
    }
}

/// Maestro's time suffix of a progress message: ` At 2020-07-13 10:00:00.123456` (UTC).
pub fn at_now() -> String {
    format!(" At {}", chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f"))
}

/// The `$set` of a connection's progress on `task`: `{process.<task>: {state, msg + " At <now>"}}`,
/// written by the API when it accepts a scan and by the worker as it runs.
pub fn progress_update(task: &str, state: ScanState, msg: &str) -> bson::Document {
    let mut progress = bson::Document::new();
    progress.insert("state", state.as_str());
    progress.insert("msg", format!("{msg}{}", at_now()));
    let mut set = bson::Document::new();
    set.insert(format!("process.{task}"), progress);
    set
}

const fn cmd(
    command: &'static str,
    access: &'static str,
    entity: &'static str,
    family: Option<&'static str>,
    label: Option<&'static str>,
) -> Command {
    Command {
        command,
        access,
        entity,
        family,
        label,
        key_comparer: "unique_id",
    }
}

const fn task(name: &'static str, runs: bool, commands: &'static [Command]) -> TaskSpec {
    TaskSpec {
        name,
        runs,
        commands,
    }
}

/// AWS's tasks: Maestro's 19, over 29 API calls.
const AWS_TASKS: &[TaskSpec] = &[
    task(
        "server-list",
        true,
        &[Command {
            key_comparer: "ipv4_private",
            ..cmd("ec2", "describe_instances", "servers", None, None)
        }],
    ),
    task(
        "loadbalance-list",
        true,
        &[
            cmd(
                "elbv2",
                "describe_load_balancers",
                "applications",
                Some("Loadbalance"),
                Some("ELB (AWS)"),
            ),
            cmd(
                "elb",
                "describe_load_balancers",
                "applications",
                Some("Loadbalance"),
                Some("ELB (AWS)"),
            ),
        ],
    ),
    task(
        "autoscaling-list",
        true,
        &[cmd(
            "autoscaling",
            "describe_auto_scaling_groups",
            "applications",
            Some("AutoScaling"),
            Some("AutoScaling (AWS)"),
        )],
    ),
    task(
        "dbs-list",
        true,
        &[cmd(
            "rds",
            "describe_db_instances",
            "applications",
            Some("Database"),
            Some("RDS (AWS)"),
        )],
    ),
    task(
        "storage-object-list",
        true,
        &[cmd(
            "s3",
            "list_buckets",
            "applications",
            Some("ObjectStorage"),
            Some("S3 (AWS)"),
        )],
    ),
    task(
        "brokers-list",
        true,
        &[cmd(
            "sqs",
            "list_queues",
            "applications",
            Some("Broker"),
            Some("SQS (AWS)"),
        )],
    ),
    task(
        "cache-list",
        true,
        &[cmd(
            "elasticache",
            "describe_cache_clusters",
            "applications",
            Some("Cache"),
            Some("Elastic Cache (AWS)"),
        )],
    ),
    task(
        "smtp-list",
        true,
        &[cmd(
            "ses",
            "list_identities",
            "applications",
            Some("SMTP"),
            Some("SES (AWS)"),
        )],
    ),
    task(
        "volumes-list",
        true,
        &[cmd("ec2", "describe_volumes", "volumes", None, None)],
    ),
    task(
        "cdns-list",
        true,
        &[
            cmd(
                "cloudfront",
                "list_distributions",
                "applications",
                Some("CDN"),
                Some("CloudFront (AWS)"),
            ),
            cmd(
                "cloudfront",
                "list_streaming_distributions",
                "applications",
                Some("CDN"),
                Some("CloudFront (AWS)"),
            ),
        ],
    ),
    task(
        "snapshot-list",
        true,
        &[cmd("ec2", "describe_snapshots", "snapshots", None, None)],
    ),
    task(
        "images-list",
        true,
        &[cmd("ec2", "describe_images", "images", None, None)],
    ),
    task(
        "security-list",
        true,
        &[cmd(
            "ec2",
            "describe_security_groups",
            "networks",
            Some("SecurityGroup"),
            None,
        )],
    ),
    task(
        "serverless-list",
        true,
        &[cmd(
            "lambda",
            "list_functions",
            "applications",
            Some("Serverless"),
            Some("Lambda (AWS)"),
        )],
    ),
    task(
        "serverless-support-list",
        true,
        &[cmd(
            "lambda",
            "list_layers",
            "applications",
            Some("ServerlessLayer"),
            Some("Lambda Layer (AWS)"),
        )],
    ),
    task(
        "search-list",
        true,
        &[cmd(
            "cloudsearch",
            "describe_domains",
            "applications",
            Some("Database"),
            Some("CloudSearch (AWS)"),
        )],
    ),
    task(
        "dynamodb-list",
        true,
        &[cmd(
            "dynamodb",
            "list_tables",
            "applications",
            Some("Database"),
            Some("DynamoDB (AWS)"),
        )],
    ),
    task(
        "gateway-list",
        true,
        &[cmd(
            "apigateway",
            "get_rest_apis",
            "applications",
            Some("ApiGateway"),
            Some("ApiGateway (AWS)"),
        )],
    ),
    task(
        "network-list",
        true,
        &[
            cmd("ec2", "describe_vpcs", "networks", Some("Vpc"), None),
            cmd("ec2", "describe_subnets", "networks", Some("Subnet"), None),
            cmd(
                "ec2",
                "describe_vpc_peering_connections",
                "networks",
                Some("VpcPeering"),
                None,
            ),
            cmd(
                "ec2",
                "describe_vpn_gateways",
                "networks",
                Some("VpnGateways"),
                None,
            ),
            cmd(
                "ec2",
                "describe_vpc_endpoints",
                "networks",
                Some("VpcEndpoint"),
                None,
            ),
            cmd(
                "ec2",
                "describe_route_tables",
                "networks",
                Some("RouteTable"),
                None,
            ),
            cmd(
                "ec2",
                "describe_network_interfaces",
                "networks",
                Some("NetworkInterfaces"),
                None,
            ),
            cmd(
                "ec2",
                "describe_nat_gateways",
                "networks",
                Some("NatGateway"),
                None,
            ),
            cmd(
                "ec2",
                "describe_network_acls",
                "networks",
                Some("NetworkAcl"),
                None,
            ),
        ],
    ),
];

/// DigitalOcean's tasks: Maestro's 8, one REST call each (`GET /v2/droplets`, ...). The
/// `access` names are Maestro's (its python-digitalocean manager's methods).
const DIGITALOCEAN_TASKS: &[TaskSpec] = &[
    task(
        "server-list",
        true,
        &[Command {
            key_comparer: "ipv4_private",
            ..cmd("", "get_all_droplets", "servers", None, None)
        }],
    ),
    task(
        "volumes-list",
        true,
        &[cmd("", "get_all_volumes", "volumes", None, None)],
    ),
    task(
        "images-list",
        true,
        &[cmd("", "get_my_images", "images", None, None)],
    ),
    task(
        "loadbalance-list",
        true,
        &[cmd(
            "",
            "get_all_load_balancers",
            "applications",
            Some("Loadbalance"),
            Some("LB (DigitalOcean)"),
        )],
    ),
    task(
        "snapshot-list",
        true,
        &[cmd("", "get_all_snapshots", "snapshots", None, None)],
    ),
    task(
        "cdns-list",
        true,
        &[cmd(
            "",
            "get_all_cdns",
            "applications",
            Some("CDN"),
            Some("CDN (DigitalOcean)"),
        )],
    ),
    task(
        "container-orchestration-list",
        true,
        &[cmd(
            "",
            "get_all_kubernetes",
            "applications",
            Some("ContainerOrchestration"),
            Some("Kubernetes (DigitalOcean)"),
        )],
    ),
    task(
        "network-list",
        true,
        &[cmd(
            "",
            "get_all_firewalls",
            "networks",
            Some("Firewall"),
            None,
        )],
    ),
];

/// DigitalOcean Spaces' one task: S3's ListBuckets per region.
const SPACES_TASKS: &[TaskSpec] = &[task(
    "storage-object-list",
    true,
    &[cmd(
        "s3",
        "list_buckets",
        "applications",
        Some("ObjectStorage"),
        Some("Spaces (DigitalOcean)"),
    )],
)];

/// OpenStack's tasks: Maestro's 8, over Nova, Cinder, Neutron and Octavia. The `command` and
/// `access` names are Maestro's (its openstacksdk proxies and their methods); the families of
/// `network-list` are the ones Maestro's rules stored on the items.
const OPENSTACK_TASKS: &[TaskSpec] = &[
    task(
        "server-list",
        true,
        &[Command {
            key_comparer: "ipv4_private",
            ..cmd("compute", "servers", "servers", None, None)
        }],
    ),
    task(
        "loadbalance-list",
        true,
        &[cmd(
            "load_balancer",
            "load_balancers",
            "applications",
            Some("Loadbalance"),
            Some("OpenStack (HaProxy)"),
        )],
    ),
    task(
        "volumes-list",
        true,
        &[cmd("block_store", "volumes", "volumes", None, None)],
    ),
    task(
        "snapshot-list",
        true,
        &[cmd("block_store", "snapshots", "snapshots", None, None)],
    ),
    task(
        "images-list",
        true,
        &[cmd("compute", "images", "images", None, None)],
    ),
    task(
        "security-list",
        true,
        &[cmd(
            "network",
            "security_groups",
            "networks",
            Some("SecurityGroup"),
            None,
        )],
    ),
    task(
        "flavor-list",
        true,
        &[cmd("compute", "flavors", "flavors", None, None)],
    ),
    task(
        "network-list",
        true,
        &[
            cmd("network", "networks", "networks", Some("Network"), None),
            cmd("network", "subnets", "networks", Some("Subnet"), None),
            cmd("network", "ports", "networks", Some("Ports"), None),
            cmd("network", "routers", "networks", Some("RouteTable"), None),
        ],
    ),
];

/// Azure's tasks: Maestro's 5, over Azure Resource Manager's compute and network lists.
/// Machines are matched by their `unique_id`, not Maestro's `ipv4_private`: Azure gives the
/// same private addresses in every virtual network (10.0.0.4 is each subnet's first machine),
/// so two machines would take turns in one document (Maestro's own matching never ran: its
/// Azure servers were not stored at all).
const AZURE_TASKS: &[TaskSpec] = &[
    task(
        "server-list",
        true,
        &[cmd("compute", "virtual_machines", "servers", None, None)],
    ),
    task(
        "volumes-list",
        true,
        &[cmd("compute", "disks", "volumes", None, None)],
    ),
    task(
        "snapshot-list",
        true,
        &[cmd("compute", "snapshots", "snapshots", None, None)],
    ),
    task(
        "images-list",
        true,
        &[cmd("compute", "images", "images", None, None)],
    ),
    task(
        "network-list",
        true,
        &[
            cmd(
                "network",
                "network_interfaces",
                "networks",
                Some("NetworkInterface"),
                None,
            ),
            cmd(
                "network",
                "public_ip_addresses",
                "networks",
                Some("PublicIpAddress"),
                None,
            ),
            cmd(
                "network",
                "route_tables",
                "networks",
                Some("RouteTables"),
                None,
            ),
            cmd(
                "network",
                "virtual_networks",
                "networks",
                Some("VirtualNetwork"),
                None,
            ),
        ],
    ),
];

const fn keyed(command: Command, key_comparer: &'static str) -> Command {
    Command {
        key_comparer,
        ..command
    }
}

/// The File importer's tasks: Maestro's 6, one list of its inventory format each. Maestro's
/// permission table names every import call `s3` (its boto3 client), whatever the method.
const FILE_TASKS: &[TaskSpec] = &[
    task(
        "server-import",
        true,
        &[keyed(
            cmd("s3", "maestro_template", "servers", None, None),
            "ipv4_private",
        )],
    ),
    task(
        "applications-import",
        true,
        &[keyed(
            cmd("s3", "maestro_applications", "applications", None, None),
            "name",
        )],
    ),
    task(
        "volumes-import",
        true,
        &[keyed(
            cmd("s3", "maestro_volumes", "volumes", None, None),
            "name",
        )],
    ),
    task(
        "snapshots-import",
        true,
        &[keyed(
            cmd("s3", "maestro_snapshots", "snapshots", None, None),
            "name",
        )],
    ),
    task(
        "images-import",
        true,
        &[keyed(
            cmd("s3", "maestro_images", "images", None, None),
            "name",
        )],
    ),
    task(
        "flavors-import",
        true,
        &[keyed(
            cmd("s3", "maestro_flavors", "flavors", None, None),
            "name",
        )],
    ),
];

/// The Ansible importer's tasks: hosts and their disks from setup facts.
const ANSIBLE_TASKS: &[TaskSpec] = &[
    task(
        "server-list",
        true,
        &[keyed(
            cmd("s3", "ansible_facts", "servers", None, None),
            "ipv4_private",
        )],
    ),
    task(
        "volumes-list",
        true,
        &[cmd("s3", "ansible_devices", "volumes", None, None)],
    ),
];

/// The Terraform importer's tasks: instances, their disks and EBS volumes from state files.
const TERRAFORM_TASKS: &[TaskSpec] = &[
    task(
        "server-list",
        true,
        &[keyed(
            cmd("s3", "statefile_instances", "servers", None, None),
            "ipv4_private",
        )],
    ),
    task(
        "volumes-list",
        true,
        &[cmd(
            "s3",
            "statefile_volumes",
            "volumes",
            Some("TFInstance"),
            None,
        )],
    ),
    task(
        "storage-list",
        true,
        &[cmd("s3", "statefile_ebs", "volumes", Some("TFEbs"), None)],
    ),
];

/// Every provider Maestro discovered; the ones this project does not scan yet have no task
/// marked `runs` and are not advertised.
pub const PROVIDERS: [Provider; 8] = [
    Provider {
        key: "aws",
        label: "AWS",
        icon: "icon-aws",
        methods: &["AWS Access Key(IAM)"],
        dc: Some("AWS"),
        tasks: AWS_TASKS,
        templates: include_str!("../providers/aws.json"),
    },
    Provider {
        key: "digitalocean",
        label: "Digital Ocean",
        icon: "icon-digital-ocean",
        methods: &["Api Token"],
        dc: Some("Digital Ocean"),
        tasks: DIGITALOCEAN_TASKS,
        templates: include_str!("../providers/digitalocean.json"),
    },
    Provider {
        key: "spaces",
        label: "Spaces",
        icon: "icon-digital-ocean",
        methods: &["Spaces Token"],
        dc: Some("Digital Ocean"),
        tasks: SPACES_TASKS,
        templates: include_str!("../providers/spaces.json"),
    },
    Provider {
        key: "openstack",
        label: "Openstack",
        icon: "icon-openstack",
        methods: &["Api (Horizon)"],
        dc: Some("Openstack"),
        tasks: OPENSTACK_TASKS,
        templates: include_str!("../providers/openstack.json"),
    },
    Provider {
        key: "azure",
        label: "Azure",
        icon: "icon-azure",
        methods: &["Subscription Secret Key"],
        dc: Some("Azure"),
        tasks: AZURE_TASKS,
        templates: include_str!("../providers/azure.json"),
    },
    Provider {
        key: "file",
        label: "File",
        icon: "fa fa-file",
        methods: &["Json files"],
        dc: None,
        tasks: FILE_TASKS,
        templates: include_str!("../providers/file.json"),
    },
    Provider {
        key: "ansible",
        label: "Ansible",
        icon: "icon-ansible",
        methods: &["Facts gathering", "Ansible CMDB"],
        dc: None,
        tasks: ANSIBLE_TASKS,
        templates: include_str!("../providers/ansible.json"),
    },
    Provider {
        key: "terraform",
        label: "Terraform",
        icon: "icon-terraform",
        methods: &["TF state >=0.12"],
        dc: None,
        tasks: TERRAFORM_TASKS,
        templates: include_str!("../providers/terraform.json"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn field(provider: &str, conn_id: &str, task: &str) -> Option<String> {
        let r = ScanRequest {
            provider: provider.into(),
            conn_id: conn_id.into(),
            task: task.into(),
        };
        r.validate().err().map(|e| e.field)
    }

    #[test]
    fn labels_and_tasks_as_maestro_names_them() {
        assert_eq!(field("AWS", "5f1c0a", "server-list"), None);
        assert_eq!(field("aws", "5f1c0a", "volumes-list"), None);
        assert_eq!(field("A W S", "5f1c0a", "security-list"), None);
        assert_eq!(field("aws", "c1", "flavor-list").as_deref(), Some("task"));
        assert_eq!(field("aws", "c1", "dbs-list"), None);
        assert_eq!(field("aws", "c1", "network-list"), None);
        assert_eq!(
            field("vmware", "c1", "server-list").as_deref(),
            Some("provider")
        );
        assert_eq!(
            field("gcp", "c1", "server-list").as_deref(),
            Some("provider")
        );
        assert_eq!(
            field("aws", "a b", "server-list").as_deref(),
            Some("conn_id")
        );
        assert_eq!(provider_key("Digital Ocean"), "digitalocean");
    }

    #[test]
    fn only_what_runs_is_advertised() {
        let aws = provider("AWS").expect("aws");
        let rules = aws.rules();
        let tasks: Vec<&String> = rules["permissions"]
            .as_object()
            .expect("map")
            .keys()
            .collect();
        let every: Vec<&str> = AWS_TASKS.iter().map(|t| t.name).collect();
        assert_eq!(tasks, every, "every AWS task runs");
        assert_eq!(rules["permissions"]["server-list"][0]["init_job"], true);
        assert_eq!(
            rules["permissions"]["server-list"][0]["key_comparer"],
            "ipv4_private"
        );
        let info = aws.info();
        assert_eq!(info["label"], "AWS");
        assert!(info["data"][0]["template"]["conn"].is_array(), "{info}");
        let every_task: usize = AWS_TASKS.iter().map(|t| t.commands.len()).sum();
        assert_eq!((AWS_TASKS.len(), every_task), (19, 29));
    }

    #[test]
    fn digitalocean_as_maestro_names_it() {
        assert_eq!(field("Digital Ocean", "5f1c0a", "server-list"), None);
        assert_eq!(field("digitalocean", "5f1c0a", "network-list"), None);
        assert_eq!(
            field("Digital Ocean", "5f1c0a", "dbs-list").as_deref(),
            Some("task")
        );
        let p = provider("Digital Ocean").expect("digitalocean");
        assert_eq!(p.task_names().len(), 8);
        let rules = p.rules();
        assert_eq!(
            rules["permissions"]["server-list"][0]["key_comparer"],
            "ipv4_private"
        );
        assert_eq!(
            rules["permissions"]["cdns-list"][0]["provider"],
            "CDN (DigitalOcean)"
        );
        let info = p.info();
        assert_eq!(info["dc"], "Digital Ocean");
        assert_eq!(
            info["data"][0]["template"]["conn"][0]["metas"]["name"],
            "token"
        );
    }

    #[test]
    fn openstack_and_azure_as_maestro_names_them() {
        assert_eq!(field("OpenStack", "5f1c0a", "flavor-list"), None);
        assert_eq!(field("Openstack", "5f1c0a", "network-list"), None);
        assert_eq!(field("Azure", "5f1c0a", "network-list"), None);
        assert_eq!(
            field("Azure", "5f1c0a", "flavor-list").as_deref(),
            Some("task")
        );
        let os = provider("OpenStack").expect("openstack");
        assert_eq!(os.task_names().len(), 8);
        let rules = os.rules();
        assert_eq!(
            rules["permissions"]["network-list"]
                .as_array()
                .map(Vec::len),
            Some(4)
        );
        assert_eq!(
            rules["permissions"]["loadbalance-list"][0]["provider"],
            "OpenStack (HaProxy)"
        );
        let az = provider("azure").expect("azure");
        assert_eq!(az.task_names().len(), 5);
        assert_eq!(
            az.rules()["permissions"]["server-list"][0]["key_comparer"],
            "unique_id"
        );
        for p in [os, az] {
            let info = p.info();
            assert!(info["data"][0]["template"]["conn"].is_array(), "{info}");
        }
    }
}
