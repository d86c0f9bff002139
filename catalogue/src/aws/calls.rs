//! Every AWS API call of Maestro's AWS discovery, as data: the service and protocol it speaks,
//! the request (action, fixed parameters, page size and page token), where the items and the
//! next token are in the answer, and how an item is translated ([`super::rules`]). One row per
//! call of `maestro_contract::providers` (a test holds the two tables to each other).

use super::rules::{Naming, Rule, Rule::*};

/// How a service is called and answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// EC2's query API: form POST, XML with `item` lists and lower-case names.
    Ec2,
    /// The query API of ELB, RDS, SQS, ...: form POST, XML with `member` lists.
    Query,
    /// JSON 1.0 (DynamoDB): POST of a JSON body, the operation in `X-Amz-Target`.
    Json10 { target: &'static str },
    /// REST with JSON answers (Lambda, API Gateway): GET of a path with a query string.
    RestJson,
    /// REST with XML answers (S3, CloudFront).
    RestXml,
}

/// One AWS service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// Endpoint prefix: `https://<host>.<region>.amazonaws.com`.
    pub host: &'static str,
    /// SigV4 service name.
    pub signing: &'static str,
    /// API version (`Version` of query calls).
    pub version: &'static str,
    pub protocol: Protocol,
    /// One endpoint for every region (`https://<host>.amazonaws.com`, signed for us-east-1).
    pub global_endpoint: bool,
    /// Scanned once per connection, not per region: the account's whole list comes from
    /// any region (S3 buckets, CloudFront distributions).
    pub once: bool,
}

const fn service(host: &'static str, version: &'static str, protocol: Protocol) -> Service {
    Service {
        host,
        signing: host,
        version,
        protocol,
        global_endpoint: false,
        once: false,
    }
}

pub const EC2: Service = service("ec2", "2016-11-15", Protocol::Ec2);
pub const ELB: Service = service("elasticloadbalancing", "2012-06-01", Protocol::Query);
pub const ELBV2: Service = service("elasticloadbalancing", "2015-12-01", Protocol::Query);
pub const AUTOSCALING: Service = service("autoscaling", "2011-01-01", Protocol::Query);
pub const RDS: Service = service("rds", "2014-10-31", Protocol::Query);
pub const ELASTICACHE: Service = service("elasticache", "2015-02-02", Protocol::Query);
pub const SQS: Service = service("sqs", "2012-11-05", Protocol::Query);
pub const SES: Service = Service {
    signing: "ses",
    ..service("email", "2010-12-01", Protocol::Query)
};
pub const CLOUDSEARCH: Service = service("cloudsearch", "2013-01-01", Protocol::Query);
pub const DYNAMODB: Service = service(
    "dynamodb",
    "2012-08-10",
    Protocol::Json10 {
        target: "DynamoDB_20120810",
    },
);
pub const LAMBDA: Service = service("lambda", "2015-03-31", Protocol::RestJson);
pub const APIGATEWAY: Service = service("apigateway", "2015-07-09", Protocol::RestJson);
pub const S3: Service = Service {
    once: true,
    ..service("s3", "2006-03-01", Protocol::RestXml)
};
pub const CLOUDFRONT: Service = Service {
    global_endpoint: true,
    once: true,
    ..service("cloudfront", "2020-05-31", Protocol::RestXml)
};

/// How the items of an answer become inventory items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Each element of the list is an item, translated by the call's rules.
    Each,
    /// Hand-read by one of the EC2/S3 parsers of [`super`] (servers, volumes, groups, buckets).
    Parsed,
    /// A list of names (DynamoDB tables): one item per name.
    Names,
    /// Every queue of the region in one item (Maestro's `QueueSQS`); all pages are read.
    Queues,
    /// Every identity of the region in one item (Maestro's `IdentitySES`); all pages are read.
    Identities,
}

/// Page size parameter: its name and the range the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize {
    pub param: &'static str,
    pub min: usize,
    pub max: usize,
}

const fn size(param: &'static str, min: usize, max: usize) -> Option<PageSize> {
    Some(PageSize { param, min, max })
}

/// One API call.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// Maestro's task it belongs to.
    pub task: &'static str,
    /// The call in Maestro's (boto3's) words, as in the contract.
    pub access: &'static str,
    pub service: &'static Service,
    /// Query `Action`, JSON operation, or REST path.
    pub action: &'static str,
    /// Fixed request parameters.
    pub params: &'static [(&'static str, &'static str)],
    pub page_size: Option<PageSize>,
    /// Request parameter of the page token.
    pub token_param: &'static str,
    /// Path of the next page's token in the answer.
    pub next: &'static str,
    /// Path of the item list in the answer.
    pub items: &'static str,
    pub shape: Shape,
    pub naming: Naming,
    pub rules: &'static [Rule],
}

const fn naming(unique_id: &'static str, name: &'static str) -> Naming {
    Naming { unique_id, name }
}

/// An EC2 `Describe*` call.
const fn ec2(
    task: &'static str,
    access: &'static str,
    action: &'static str,
    items: &'static str,
    unique_id: &'static str,
    rules: &'static [Rule],
) -> Call {
    Call {
        task,
        access,
        service: &EC2,
        action,
        params: &[],
        page_size: None,
        token_param: "NextToken",
        next: "NextToken",
        items,
        shape: Shape::Each,
        naming: naming(unique_id, ""),
        rules,
    }
}

/// EC2's page size: 5 to 1000 (DescribeVolumes 500, kept for all).
const EC2_SIZE: Option<PageSize> = size("MaxResults", 5, 500);

/// EC2 states that mean "not active" for most network objects.
const BROKEN: &[&str] = &["error", "invalid"];

const LOADBALANCE: &[Rule] = &[
    Obj(
        "role",
        &[
            Str("endpoint", "DNSName"),
            Str("arn", "LoadBalancerArn"),
            Str("canonical_hosted_zone", "CanonicalHostedZoneId"),
            Str("vpc_id", "VpcId|VPCId"),
            Str("type", "Type"),
            Str("scheme", "Scheme"),
            Str("ip_address_type", "IpAddressType"),
            Raw("backend_server_descriptions", "BackendServerDescriptions"),
            Raw("health_check_classic", "HealthCheck"),
            Str("healthcheck", "HealthCheck.Target"),
            Str("canonical_hosted_zone_name", "CanonicalHostedZoneName"),
            Str("canonical_hosted_zone_name_id", "CanonicalHostedZoneNameID"),
        ],
    ),
    Zones("AvailabilityZones|AvailabilityZone"),
    Obj(
        "datacenters",
        &[
            Raw("security_groups", "SecurityGroups"),
            Str("canonical_hosted_zone_name", "CanonicalHostedZoneName"),
            Str("canonical_hosted_zone_name_id", "CanonicalHostedZoneNameID"),
            Raw("listener_descriptions", "ListenerDescriptions"),
            Raw("policies", "Policies"),
        ],
    ),
    Raw("instances", "Instances"),
    Status("State.Code", &["failed", "active_impaired"]),
    Str("created_at", "CreatedTime"),
];

/// The 29 calls, in the contract's order.
pub const CALLS: &[Call] = &[
    Call {
        page_size: EC2_SIZE,
        shape: Shape::Parsed,
        ..ec2(
            "server-list",
            "describe_instances",
            "DescribeInstances",
            "",
            "",
            &[],
        )
    },
    Call {
        task: "loadbalance-list",
        access: "describe_load_balancers",
        service: &ELBV2,
        action: "DescribeLoadBalancers",
        params: &[],
        page_size: size("PageSize", 1, 400),
        token_param: "Marker",
        next: "DescribeLoadBalancersResult.NextMarker",
        items: "DescribeLoadBalancersResult.LoadBalancers",
        shape: Shape::Each,
        naming: naming("LoadBalancerName", "LoadBalancerName"),
        rules: LOADBALANCE,
    },
    Call {
        task: "loadbalance-list",
        access: "describe_load_balancers",
        service: &ELB,
        action: "DescribeLoadBalancers",
        params: &[],
        page_size: size("PageSize", 1, 400),
        token_param: "Marker",
        next: "DescribeLoadBalancersResult.NextMarker",
        items: "DescribeLoadBalancersResult.LoadBalancerDescriptions",
        shape: Shape::Each,
        naming: naming("LoadBalancerName", "LoadBalancerName"),
        rules: LOADBALANCE,
    },
    Call {
        task: "autoscaling-list",
        access: "describe_auto_scaling_groups",
        service: &AUTOSCALING,
        action: "DescribeAutoScalingGroups",
        params: &[],
        page_size: size("MaxRecords", 1, 100),
        token_param: "NextToken",
        next: "DescribeAutoScalingGroupsResult.NextToken",
        items: "DescribeAutoScalingGroupsResult.AutoScalingGroups",
        shape: Shape::Each,
        naming: naming("AutoScalingGroupARN", "AutoScalingGroupName"),
        rules: &[
            Raw("loadbalance_names", "LoadBalancerNames"),
            Raw("instances", "Instances"),
            Obj(
                "role",
                &[
                    Str("launch_configuration_name", "LaunchConfigurationName"),
                    Raw("launch_template", "LaunchTemplate"),
                    Int("min_size", "MinSize"),
                    Int("max_size", "MaxSize"),
                    Int("desired_capacity", "DesiredCapacity"),
                    Str("health_check_type", "HealthCheckType"),
                    Int("health_check_grace_period", "HealthCheckGracePeriod"),
                    Int("default_cooldown", "DefaultCooldown"),
                    Str("vpc_zone_identifier", "VPCZoneIdentifier"),
                ],
            ),
            Zones("AvailabilityZones"),
            Status("Status", &["Delete in progress"]),
            Str("created_at", "CreatedTime"),
        ],
    },
    Call {
        task: "dbs-list",
        access: "describe_db_instances",
        service: &RDS,
        action: "DescribeDBInstances",
        params: &[],
        page_size: size("MaxRecords", 20, 100),
        token_param: "Marker",
        next: "DescribeDBInstancesResult.Marker",
        items: "DescribeDBInstancesResult.DBInstances.DBInstance",
        shape: Shape::Each,
        naming: naming("DBInstanceIdentifier", "DBInstanceIdentifier"),
        rules: &[
            Str("engine", "Engine"),
            Obj(
                "role",
                &[
                    Str("dbname", "DBName"),
                    Str("endpoint", "Endpoint.Address"),
                    Int("port", "Endpoint.Port"),
                    Str("version", "EngineVersion"),
                    Int("allocated_storage", "AllocatedStorage"),
                    Str("backup_window", "PreferredBackupWindow"),
                    Int("backup_retention", "BackupRetentionPeriod"),
                    Raw("security_group", "DBSecurityGroups"),
                    Str("class", "DBInstanceClass"),
                    Raw("parameter", "DBParameterGroups"),
                    Raw("vpc_security", "VpcSecurityGroups"),
                    Raw("subnet_group", "DBSubnetGroup"),
                    Str("availability_zone", "AvailabilityZone"),
                    Str("license_model", "LicenseModel"),
                    Int("iops", "Iops"),
                    Str("secondary_availability_zone", "SecondaryAvailabilityZone"),
                    Str("storage_type", "StorageType"),
                    Int("instance_port", "DbInstancePort"),
                    Str("cluster_name", "DBClusterIdentifier"),
                    Bool("storage_encrypted", "StorageEncrypted"),
                    Int("monitoring_interval", "MonitoringInterval"),
                    Str("instance_arn", "DBInstanceArn"),
                    Str("timezone", "Timezone"),
                    Str(
                        "read_replicas_identifier",
                        "ReadReplicaSourceDBInstanceIdentifier",
                    ),
                    Raw("read_replicas_dbnames", "ReadReplicaDBInstanceIdentifiers"),
                    Bool("deletion_protection", "DeletionProtection"),
                ],
            ),
            Str("read_status", "StatusInfos.DBInstanceStatusInfo.Status"),
            Zones("AvailabilityZone"),
            Obj(
                "datacenters",
                &[Raw("security_groups", "VpcSecurityGroups")],
            ),
            Status(
                "DBInstanceStatus",
                &[
                    "stopping",
                    "stopped",
                    "failed",
                    "deleting",
                    "inaccessible-encryption-credentials",
                    "incompatible-network",
                ],
            ),
            Str("created_at", "InstanceCreateTime"),
        ],
    },
    Call {
        task: "storage-object-list",
        access: "list_buckets",
        service: &S3,
        action: "/",
        params: &[],
        page_size: None,
        token_param: "continuation-token",
        next: "ContinuationToken",
        items: "",
        shape: Shape::Parsed,
        naming: naming("", ""),
        rules: &[],
    },
    Call {
        task: "brokers-list",
        access: "list_queues",
        service: &SQS,
        action: "ListQueues",
        params: &[],
        page_size: size("MaxResults", 1, 1000),
        token_param: "NextToken",
        next: "ListQueuesResult.NextToken",
        items: "ListQueuesResult.QueueUrl",
        shape: Shape::Queues,
        naming: naming("", ""),
        rules: &[],
    },
    Call {
        task: "cache-list",
        access: "describe_cache_clusters",
        service: &ELASTICACHE,
        action: "DescribeCacheClusters",
        params: &[("ShowCacheNodeInfo", "true")],
        page_size: size("MaxRecords", 20, 100),
        token_param: "Marker",
        next: "DescribeCacheClustersResult.Marker",
        items: "DescribeCacheClustersResult.CacheClusters.CacheCluster",
        shape: Shape::Each,
        naming: naming("CacheClusterId", "ReplicationGroupId|CacheClusterId"),
        rules: &[
            Str("created_at", "CacheClusterCreateTime"),
            Str("engine", "Engine"),
            Obj(
                "role",
                &[
                    Raw("configuration_endpoint", "ConfigurationEndpoint"),
                    Str("client_download_landing_page", "ClientDownloadLandingPage"),
                    Str("cache_node_type", "CacheNodeType"),
                    Str("engine", "Engine"),
                    Str("engine_version", "EngineVersion"),
                    Str("cache_cluster_status", "CacheClusterStatus"),
                    Int("num_cache_nodes", "NumCacheNodes"),
                    Str("preferred_availability_zone", "PreferredAvailabilityZone"),
                    Str("cache_cluster_create_time", "CacheClusterCreateTime"),
                    Str("preferred_maintenance_window", "PreferredMaintenanceWindow"),
                    Raw("pending_modified_values", "PendingModifiedValues"),
                    Raw("notification_configuration", "NotificationConfiguration"),
                    Str("cache_subnet_group_name", "CacheSubnetGroupName"),
                    Str("replication_group_id", "ReplicationGroupId"),
                    Int("snapshot_retention_limit", "SnapshotRetentionLimit"),
                    Str("snapshot_window", "SnapshotWindow"),
                    Bool("auth_token_enabled", "AuthTokenEnabled"),
                    Bool("transit_encryption_enabled", "TransitEncryptionEnabled"),
                    Bool("atRest_encryption_enabled", "AtRestEncryptionEnabled"),
                ],
            ),
            Raw("cache_nodes", "CacheNodes.CacheNode"),
            Zones("PreferredAvailabilityZone"),
            Obj(
                "datacenters",
                &[
                    Raw("cache_security_groups", "CacheSecurityGroups"),
                    Raw("cache_parameter_group", "CacheParameterGroup"),
                ],
            ),
        ],
    },
    Call {
        task: "smtp-list",
        access: "list_identities",
        service: &SES,
        action: "ListIdentities",
        params: &[],
        page_size: size("MaxItems", 1, 1000),
        token_param: "NextToken",
        next: "ListIdentitiesResult.NextToken",
        items: "ListIdentitiesResult.Identities",
        shape: Shape::Identities,
        naming: naming("", ""),
        rules: &[],
    },
    Call {
        page_size: EC2_SIZE,
        shape: Shape::Parsed,
        ..ec2(
            "volumes-list",
            "describe_volumes",
            "DescribeVolumes",
            "",
            "",
            &[],
        )
    },
    Call {
        task: "cdns-list",
        access: "list_distributions",
        service: &CLOUDFRONT,
        action: "/2020-05-31/distribution",
        params: &[],
        page_size: size("MaxItems", 1, 1000),
        token_param: "Marker",
        next: "NextMarker",
        items: "Items.DistributionSummary",
        shape: Shape::Each,
        naming: naming("Id", "DomainName"),
        rules: &[
            Raw("origins", "Origins"),
            Raw("cache_behavior", "CacheBehaviors"),
            Obj(
                "role",
                &[
                    Raw("origins", "Origins.Items"),
                    Raw("default_cache_behavior", "DefaultCacheBehavior"),
                    Raw("cache_behaviors", "CacheBehaviors.Items"),
                    Raw("custom_error", "CustomErrorResponses.Items"),
                    Raw("restrictions", "Restrictions"),
                    Str("web_acl_id", "WebACLId"),
                    Str("http_version", "HttpVersion"),
                    Bool("ipv6_enabled", "IsIPV6Enabled"),
                    Str("arn", "ARN"),
                ],
            ),
            Status("Status", &["failed", "active_impaired", "deleting"]),
            Bool("state", "Enabled"),
            Str("created_at", "LastModifiedTime"),
            Const("type", "Web"),
        ],
    },
    Call {
        task: "cdns-list",
        access: "list_streaming_distributions",
        service: &CLOUDFRONT,
        action: "/2020-05-31/streaming-distribution",
        params: &[],
        page_size: size("MaxItems", 1, 1000),
        token_param: "Marker",
        next: "NextMarker",
        items: "Items.StreamingDistributionSummary",
        shape: Shape::Each,
        naming: naming("Id", "DomainName"),
        rules: &[
            Obj(
                "role",
                &[
                    Raw("s3_origin", "S3Origin"),
                    Raw("trusted_signers", "TrustedSigners"),
                    Raw("aliases", "Aliases.Items"),
                    Str("price_class", "PriceClass"),
                    Bool("enabled", "Enabled"),
                    Str("arn", "ARN"),
                ],
            ),
            Status("Status", &["failed", "active_impaired", "deleting"]),
            Str("created_at", "LastModifiedTime"),
            Const("type", "RTMP"),
        ],
    },
    Call {
        page_size: EC2_SIZE,
        params: &[("Owner.1", "self")],
        ..ec2(
            "snapshot-list",
            "describe_snapshots",
            "DescribeSnapshots",
            "SnapshotSet",
            "SnapshotId",
            &[
                Str("data_encryption_key_id", "DataEncryptionKeyId"),
                Bool("encrypted", "Encrypted"),
                Str("kms_key_id", "KmsKeyId"),
                Str("owner_id", "OwnerId"),
                Str("progress", "Progress"),
                Str("start_time", "StartTime"),
                Str("state_message", "StateMessage"),
                Str("volume_id", "VolumeId"),
                Int("size", "VolumeSize"),
                Str("owner_alias", "OwnerAlias"),
                Str("description", "Description"),
                Status("Status|State", &["error"]),
            ],
        )
    },
    Call {
        params: &[("Owner.1", "self")],
        naming: naming("ImageId", "Name"),
        ..ec2(
            "images-list",
            "describe_images",
            "DescribeImages",
            "ImagesSet",
            "ImageId",
            &[
                Str("image_location", "ImageLocation"),
                Str("image_type", "ImageType"),
                Bool("public", "IsPublic|Public"),
                Str("kernel_id", "KernelId"),
                Str("platform", "Platform"),
                Raw("product_codes", "ProductCodes"),
                Raw("storage", "BlockDeviceMapping|BlockDeviceMappings"),
                Str("description", "Description"),
                Bool("ena_support", "EnaSupport"),
                Str("hypervisor", "Hypervisor"),
                Str("root_device_name", "RootDeviceName"),
                Str("root_device_type", "RootDeviceType"),
                Str("architecture", "Architecture"),
                Str("virtualization_type", "VirtualizationType"),
                Raw("state_reason", "StateReason"),
                Status(
                    "ImageState|State",
                    &["deregistered", "invalid", "transient", "failed", "error"],
                ),
                Str("created_at", "CreationDate"),
            ],
        )
    },
    Call {
        page_size: EC2_SIZE,
        shape: Shape::Parsed,
        ..ec2(
            "security-list",
            "describe_security_groups",
            "DescribeSecurityGroups",
            "",
            "",
            &[],
        )
    },
    Call {
        task: "serverless-list",
        access: "list_functions",
        service: &LAMBDA,
        action: "/2015-03-31/functions/",
        params: &[],
        page_size: size("MaxItems", 1, 50),
        token_param: "Marker",
        next: "NextMarker",
        items: "Functions",
        shape: Shape::Each,
        naming: naming("FunctionArn", "FunctionName"),
        rules: &[
            Str("created_at", "LastModified"),
            Obj(
                "role",
                &[
                    Str("language", "Runtime"),
                    Str("aws_role", "Role"),
                    Str("handler", "Handler"),
                    Int("code_size", "CodeSize"),
                    Str("description", "Description"),
                    Int("timeout", "Timeout"),
                    Int("memory_size", "MemorySize"),
                    Str("code_sha_256", "CodeSha256"),
                    Raw("vpc_config", "VpcConfig"),
                    Raw("dead_letter_config", "DeadLetterConfig"),
                    Str("kms_key_arn", "KMSKeyArn"),
                    Str("master_arn", "MasterArn"),
                    Raw("tracing_config", "TracingConfig"),
                    Raw("layers", "Layers"),
                    Str("revision_id", "RevisionId"),
                    Raw("architectures", "Architectures"),
                    Str("package_type", "PackageType"),
                ],
            ),
        ],
    },
    Call {
        task: "serverless-support-list",
        access: "list_layers",
        service: &LAMBDA,
        action: "/2018-10-31/layers",
        params: &[],
        page_size: size("MaxItems", 1, 50),
        token_param: "Marker",
        next: "NextMarker",
        items: "Layers",
        shape: Shape::Each,
        naming: naming(
            "LatestMatchingVersion.LayerVersionArn",
            "LatestMatchingVersion.LayerVersionArn",
        ),
        rules: &[
            Time("created_at", "LatestMatchingVersion.CreatedDate"),
            Str("layer_name", "LayerName"),
            Str("layer_arn", "LayerArn"),
            Str("description", "LatestMatchingVersion.Description"),
            Raw("runtimes", "LatestMatchingVersion.CompatibleRuntimes"),
            Str("license_info", "LatestMatchingVersion.LicenseInfo"),
            Int("version", "LatestMatchingVersion.Version"),
        ],
    },
    Call {
        task: "search-list",
        access: "describe_domains",
        service: &CLOUDSEARCH,
        action: "DescribeDomains",
        params: &[],
        page_size: None,
        token_param: "",
        next: "",
        items: "DescribeDomainsResult.DomainStatusList",
        shape: Shape::Each,
        naming: naming("DomainId", "DomainName"),
        rules: &[
            Const("engine", "CloudSearch"),
            Obj(
                "role",
                &[
                    Str("arn", "ARN"),
                    Raw("doc_service", "DocService"),
                    Raw("search_service", "SearchService"),
                    Bool("requires_index_documents", "RequiresIndexDocuments"),
                    Bool("processing", "Processing"),
                    Str("search_instance_type", "SearchInstanceType"),
                    Int("search_partition_count", "SearchPartitionCount"),
                    Int("search_instance_count", "SearchInstanceCount"),
                    Raw("limits", "Limits"),
                ],
            ),
            Bool("deleted", "Deleted"),
        ],
    },
    Call {
        task: "dynamodb-list",
        access: "list_tables",
        service: &DYNAMODB,
        action: "ListTables",
        params: &[],
        page_size: size("Limit", 1, 100),
        token_param: "ExclusiveStartTableName",
        next: "LastEvaluatedTableName",
        items: "TableNames",
        shape: Shape::Names,
        naming: naming("TableName", "TableName"),
        rules: &[],
    },
    Call {
        task: "gateway-list",
        access: "get_rest_apis",
        service: &APIGATEWAY,
        action: "/restapis",
        params: &[],
        page_size: size("limit", 1, 500),
        token_param: "position",
        next: "position",
        items: "item",
        shape: Shape::Each,
        naming: naming("id", "name"),
        rules: &[
            Time("created_at", "createdDate"),
            Str("description", "description"),
            Obj(
                "role",
                &[
                    Str("version", "version"),
                    Raw("warnings", "warnings"),
                    Raw("binary_media_types", "binaryMediaTypes"),
                    Int("minimum_compression_size", "minimumCompressionSize"),
                    Str("api_key_source", "apiKeySource"),
                    Raw("endpoint_configuration", "endpointConfiguration"),
                    Str("policy", "policy"),
                ],
            ),
        ],
    },
    ec2(
        "network-list",
        "describe_vpcs",
        "DescribeVpcs",
        "VpcSet",
        "VpcId",
        &[
            Str("image_id", "CidrBlock"),
            Str("cidr_block", "CidrBlock"),
            Str("dhcp_options_id", "DhcpOptionsId"),
            Str("instance_tenancy", "InstanceTenancy"),
            Raw(
                "ipv6_cidr_block_association_set",
                "Ipv6CidrBlockAssociationSet",
            ),
            Raw("cidr_block_association_set", "CidrBlockAssociationSet"),
            Bool("is_default", "IsDefault"),
            Str("owner_id", "OwnerId"),
            Status("State", BROKEN),
        ],
    ),
    ec2(
        "network-list",
        "describe_subnets",
        "DescribeSubnets",
        "SubnetSet",
        "SubnetId",
        &[
            Str("availability_zone", "AvailabilityZone"),
            Int("available_ip_address_count", "AvailableIpAddressCount"),
            Str("cidr_block", "CidrBlock"),
            Bool("default_for_az", "DefaultForAz"),
            Bool("map_public_ip_on_launch", "MapPublicIpOnLaunch"),
            Str("vpc_id", "VpcId"),
            Str("subnet_arn", "SubnetArn"),
            Zones("AvailabilityZone"),
            Status("State", BROKEN),
        ],
    ),
    ec2(
        "network-list",
        "describe_vpc_peering_connections",
        "DescribeVpcPeeringConnections",
        "VpcPeeringConnectionSet",
        "VpcPeeringConnectionId",
        &[
            Raw("accepter_vpc_info", "AccepterVpcInfo"),
            Raw("requester_vpc_info", "RequesterVpcInfo"),
            Str("expiration_time", "ExpirationTime"),
            Status(
                "Status.Code",
                &["failed", "rejected", "expired", "deleted", "deleting"],
            ),
        ],
    ),
    ec2(
        "network-list",
        "describe_vpn_gateways",
        "DescribeVpnGateways",
        "VpnGatewaySet",
        "VpnGatewayId",
        &[
            Str("availability_zone", "AvailabilityZone"),
            Str("type", "Type"),
            Raw("vpc_attachments", "Attachments|VpcAttachments"),
            Int("amazon_side_asn", "AmazonSideAsn"),
            Status("State", &["deleting", "deleted"]),
        ],
    ),
    Call {
        page_size: EC2_SIZE,
        ..ec2(
            "network-list",
            "describe_vpc_endpoints",
            "DescribeVpcEndpoints",
            "VpcEndpointSet",
            "VpcEndpointId",
            &[
                Str("type", "VpcEndpointType"),
                Str("vpc_id", "VpcId"),
                Str("service_name", "ServiceName"),
                Str("policy_document", "PolicyDocument"),
                Raw("route_table_ids", "RouteTableIdSet|RouteTableIds"),
                Raw("subnet_ids", "SubnetIdSet|SubnetIds"),
                Raw("groups", "GroupSet|Groups"),
                Bool("private_dns_enabled", "PrivateDnsEnabled"),
                Raw(
                    "network_interface_ids",
                    "NetworkInterfaceIdSet|NetworkInterfaceIds",
                ),
                Raw("dns_entries", "DnsEntrySet|DnsEntries"),
                Str("created_at", "CreationTimestamp"),
                Status(
                    "State",
                    &["deleting", "deleted", "rejected", "failed", "expired"],
                ),
            ],
        )
    },
    ec2(
        "network-list",
        "describe_route_tables",
        "DescribeRouteTables",
        "RouteTableSet",
        "RouteTableId",
        &[
            Raw("associations", "AssociationSet|Associations"),
            Raw("routes", "RouteSet|Routes"),
            Raw("propagating_vgws", "PropagatingVgwSet|PropagatingVgws"),
            Str("vpc_id", "VpcId"),
            Str("owner_id", "OwnerId"),
        ],
    ),
    ec2(
        "network-list",
        "describe_network_interfaces",
        "DescribeNetworkInterfaces",
        "NetworkInterfaceSet",
        "NetworkInterfaceId",
        &[
            Raw("association", "Association"),
            Raw("attachment", "Attachment"),
            Str("availability_zone", "AvailabilityZone"),
            Str("description", "Description"),
            Raw("groups", "GroupSet|Groups"),
            Str("interface_type", "InterfaceType"),
            Str("mac_address", "MacAddress"),
            Str("owner_id", "OwnerId"),
            Str("private_dns_name", "PrivateDnsName"),
            Str("private_ip_address", "PrivateIpAddress"),
            Raw(
                "private_ip_addresses",
                "PrivateIpAddressesSet|PrivateIpAddresses",
            ),
            Bool("source_dest_check", "SourceDestCheck"),
            Str("subnet_id", "SubnetId"),
            Str("vpc_id", "VpcId"),
            Zones("AvailabilityZone"),
            Status("Status", BROKEN),
        ],
    ),
    Call {
        page_size: EC2_SIZE,
        ..ec2(
            "network-list",
            "describe_nat_gateways",
            "DescribeNatGateways",
            "NatGatewaySet",
            "NatGatewayId",
            &[
                Str("vpc_id", "VpcId"),
                Str("subnet_id", "SubnetId"),
                Raw(
                    "nat_gateway_addresses",
                    "NatGatewayAddressSet|NatGatewayAddresses",
                ),
                Str("created_at", "CreateTime"),
                Status("State", &["failed", "deleting", "deleted"]),
            ],
        )
    },
    ec2(
        "network-list",
        "describe_network_acls",
        "DescribeNetworkAcls",
        "NetworkAclSet",
        "NetworkAclId",
        &[
            Raw("associations", "AssociationSet|Associations"),
            Raw("entries", "EntrySet|Entries"),
            Bool("is_default", "Default|IsDefault"),
            Str("vpc_id", "VpcId"),
            Str("owner_id", "OwnerId"),
        ],
    ),
];

/// The calls of `task`, in the contract's order.
pub fn calls_of(task: &str) -> impl Iterator<Item = &'static Call> {
    CALLS.iter().filter(move |c| c.task == task)
}
