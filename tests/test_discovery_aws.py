"""Every AWS discovery task of Maestro against moto_server, end to end: the real maestro-worker
calls each API over its own protocol (EC2 and query XML, JSON 1.0, REST-JSON, REST-XML),
signed with SigV4, pages through two regions, and keeps the inventory in step. What it
stores is compared with what boto3 (the library Maestro's own discovery used) lists from the
same moto, so the test holds the worker to AWS's answers rather than to counts written here.

moto has no CloudSearch and no CloudFront streaming distributions (RTMP, which AWS itself
retired in 2020): CloudSearch's translation is tested over AWS's documented answer in the
catalogue's unit tests, and `cdns-list` shows how a call the endpoint does not answer is
reported."""
import datetime
import io
import json
import zipfile

from test_discovery import (AWS_ACCESS, AWS_SECRET, LABELS, REGIONS, SECRETJWT, client,
                            connection, hs256, moto, process, scan, worker_args)

assert moto  # the fixture, used by name below

ACCOUNT = "123456789012"  # moto's
# Per region: how many of each thing to make. More than a page (--scan-qtd 5; RDS and
# ElastiCache ask for at least 20) in the first region where the API pages.
MANY = {"us-east-1": 6, "eu-west-1": 1}


def zipped():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


def seed(endpoint):
    """Resources of every kind in both regions; returns handles for the changes later."""
    made = {}
    iam = client(endpoint, "iam", "us-east-1")
    role = iam.create_role(RoleName="disc-lambda", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "lambda.amazonaws.com"}}]
    }))["Role"]["Arn"]
    for region in REGIONS:
        n = MANY[region]
        ec2 = client(endpoint, "ec2", region)
        vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
        ec2.create_tags(Resources=[vpc], Tags=[{"Key": "Name", "Value": f"main-{region}"},
                                              {"Key": "environment", "Value": "prod"}])
        peer = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.1.{i}.0/24",
                                     AvailabilityZone=f"{region}{z}")["Subnet"]["SubnetId"]
                   for i, z in enumerate("ab")]
        ec2.create_vpc_peering_connection(VpcId=vpc, PeerVpcId=peer)
        ec2.create_vpn_gateway(Type="ipsec.1")
        rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{region}.s3",
                                RouteTableIds=[rt])
        ec2.create_network_interface(SubnetId=subnets[0])
        eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
        ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=eip)
        ec2.create_network_acl(VpcId=vpc)
        inst = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                 InstanceType="t3.micro")["Instances"][0]["InstanceId"]
        for i in range(n):
            ec2.create_image(InstanceId=inst, Name=f"img-{region}-{i}")
        vol = ec2.create_volume(AvailabilityZone=f"{region}a", Size=8)["VolumeId"]
        for i in range(n):
            ec2.create_snapshot(VolumeId=vol, Description=f"snap {i}")

        elbv2 = client(endpoint, "elbv2", region)
        for i in range(n):
            elbv2.create_load_balancer(Name=f"alb-{region}-{i}", Subnets=subnets)
        elb = client(endpoint, "elb", region)
        elb.create_load_balancer(
            LoadBalancerName=f"clb-{region}", AvailabilityZones=[f"{region}a"],
            Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8080}])

        asg = client(endpoint, "autoscaling", region)
        asg.create_launch_configuration(LaunchConfigurationName=f"lc-{region}",
                                        ImageId="ami-12c6146b", InstanceType="t3.micro")
        for i in range(n):
            asg.create_auto_scaling_group(
                AutoScalingGroupName=f"asg-{region}-{i}", LaunchConfigurationName=f"lc-{region}",
                MinSize=0, MaxSize=2, DesiredCapacity=0, AvailabilityZones=[f"{region}a"])

        rds = client(endpoint, "rds", region)
        for i in range(21 if n > 1 else 1):
            rds.create_db_instance(DBInstanceIdentifier=f"db-{region}-{i}",
                                   DBInstanceClass="db.t3.micro", Engine="postgres",
                                   MasterUsername="admin", MasterUserPassword="pw-12345678",
                                   AllocatedStorage=20)
        cache = client(endpoint, "elasticache", region)
        for i in range(2):
            cache.create_cache_cluster(CacheClusterId=f"cache-{region}-{i}", Engine="redis",
                                       CacheNodeType="cache.t3.micro", NumCacheNodes=1)

        sqs = client(endpoint, "sqs", region)
        for i in range(n + 1):
            sqs.create_queue(QueueName=f"jobs-{region}-{i}")
        ses = client(endpoint, "ses", region)
        ses.verify_email_identity(EmailAddress=f"ops@{region}.example.com")
        ses.verify_domain_identity(Domain=f"{region}.example.com")

        ddb = client(endpoint, "dynamodb", region)
        for i in range(n):
            ddb.create_table(TableName=f"tbl-{region}-{i}", BillingMode="PAY_PER_REQUEST",
                             AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                             KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}])

        lam = client(endpoint, "lambda", region)
        for i in range(n):
            lam.create_function(FunctionName=f"fn-{region}-{i}", Runtime="python3.12",
                                Role=role, Handler="handler.handler",
                                Code={"ZipFile": zipped()}, MemorySize=256, Timeout=30)
        lam.publish_layer_version(LayerName=f"layer-{region}", Content={"ZipFile": zipped()},
                                  CompatibleRuntimes=["python3.12"])

        apigw = client(endpoint, "apigateway", region)
        for i in range(n):
            apigw.create_rest_api(name=f"api-{region}-{i}", description="orders")
        made[region] = {"vpc": vpc}
    cf = client(endpoint, "cloudfront", "us-east-1")
    for i in range(2):
        cf.create_distribution(DistributionConfig={
            "CallerReference": f"disc-{i}", "Comment": "", "Enabled": True,
            "Origins": {"Quantity": 1, "Items": [{
                "Id": "o1", "DomainName": f"origin-{i}.s3.amazonaws.com",
                "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
            "DefaultCacheBehavior": {"TargetOriginId": "o1", "ViewerProtocolPolicy": "allow-all",
                                     "MinTTL": 0, "ForwardedValues": {
                                         "QueryString": False, "Cookies": {"Forward": "none"}},
                                     "TrustedSigners": {"Enabled": False, "Quantity": 0}}})
    return made


def pages(c, method, key, **kw):
    """Every element of `key` over all of boto3's pages of `method`."""
    out = []
    for page in c.get_paginator(method).paginate(**kw):
        out += page.get(key, [])
    return out


def expected(endpoint, conn_id):
    """Per task, per region (None for the global ones): the unique_ids Maestro's mappers give
    the items boto3 lists."""
    e = {}
    for region in REGIONS:
        c = lambda s: client(endpoint, s, region)  # noqa: E731
        ec2 = c("ec2")
        queues = c("sqs").list_queues().get("QueueUrls", [])
        ids = c("ses").list_identities()["Identities"]
        layers = c("lambda").list_layers()["Layers"]
        e[region] = {
            "loadbalance-list": {lb["LoadBalancerName"] for lb in
                                 pages(c("elbv2"), "describe_load_balancers", "LoadBalancers")}
            | {lb["LoadBalancerName"] for lb in pages(
                c("elb"), "describe_load_balancers", "LoadBalancerDescriptions")},
            "autoscaling-list": {g["AutoScalingGroupARN"] for g in pages(
                c("autoscaling"), "describe_auto_scaling_groups", "AutoScalingGroups")},
            "dbs-list": {d["DBInstanceIdentifier"] for d in
                         pages(c("rds"), "describe_db_instances", "DBInstances")},
            "cache-list": {d["CacheClusterId"] for d in
                           pages(c("elasticache"), "describe_cache_clusters", "CacheClusters")},
            "brokers-list": {f"{ACCOUNT}_{region}"} if queues else set(),
            "smtp-list": {f"{conn_id}_ses_{region}"} if ids else set(),
            "snapshot-list": {s["SnapshotId"] for s in
                              pages(ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"])},
            "images-list": {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]},
            "serverless-list": {f["FunctionArn"] for f in
                                pages(c("lambda"), "list_functions", "Functions")},
            "serverless-support-list": {la["LatestMatchingVersion"]["LayerVersionArn"]
                                        for la in layers},
            "dynamodb-list": set(pages(c("dynamodb"), "list_tables", "TableNames")),
            "gateway-list": {a["id"] for a in pages(c("apigateway"), "get_rest_apis", "items")},
            "network-list": {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}
            | {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
            | {p["VpcPeeringConnectionId"] for p in
               ec2.describe_vpc_peering_connections()["VpcPeeringConnections"]}
            | {g["VpnGatewayId"] for g in ec2.describe_vpn_gateways()["VpnGateways"]}
            | {p["VpcEndpointId"] for p in ec2.describe_vpc_endpoints()["VpcEndpoints"]}
            | {r["RouteTableId"] for r in ec2.describe_route_tables()["RouteTables"]}
            | {n["NetworkInterfaceId"] for n in
               ec2.describe_network_interfaces()["NetworkInterfaces"]}
            | {n["NatGatewayId"] for n in ec2.describe_nat_gateways()["NatGateways"]}
            | {a["NetworkAclId"] for a in ec2.describe_network_acls()["NetworkAcls"]},
        }
    cf = client(endpoint, "cloudfront", "us-east-1")
    e[None] = {"cdns-list": {d["Id"] for d in
                             cf.list_distributions()["DistributionList"].get("Items", [])}}
    return e


TASKS = {  # task: (collection, item filter beyond the connection)
    "loadbalance-list": ("applications", {"family": "Loadbalance"}),
    "autoscaling-list": ("applications", {"family": "AutoScaling"}),
    "dbs-list": ("applications", {"provider": "RDS (AWS)"}),
    "cache-list": ("applications", {"family": "Cache"}),
    "brokers-list": ("applications", {"family": "Broker"}),
    "smtp-list": ("applications", {"family": "SMTP"}),
    "snapshot-list": ("snapshots", {}),
    "images-list": ("images", {}),
    "serverless-list": ("applications", {"family": "Serverless"}),
    "serverless-support-list": ("applications", {"family": "ServerlessLayer"}),
    "dynamodb-list": ("applications", {"provider": "DynamoDB (AWS)"}),
    "gateway-list": ("applications", {"family": "ApiGateway"}),
    "network-list": ("networks", {"family": {"$ne": "SecurityGroup"}}),
    "cdns-list": ("applications", {"family": "CDN"}),
}


def stored(mongo, conn, task, active=True):
    """unique_id -> item of the connection's stored items of `task`, per region label."""
    coll, extra = TASKS[task]
    out = {}
    for d in mongo[coll].find({"accountant": str(conn["_id"]), "active": active, **extra}):
        out.setdefault(d["datacenters"].get("region"), {})[d["unique_id"]] = d
    return out


def check_all(mongo, conn, want):
    for task in TASKS:
        have = stored(mongo, conn, task)
        for region, tasks in want.items():
            if task not in tasks:
                continue
            label = LABELS[region] if region else None
            assert set(have.get(label, {})) == tasks[task], (task, region)


def scan_all(app, mongo, q, conn, w):
    results = {}
    for task in TASKS:
        r, result = scan(app, q, conn, task, timeout=180)
        assert r.state == "SUCCESS", (task, r.traceback, w.log()[-4000:])
        assert process(mongo, conn, task)["state"] == "success", task
        results[task] = result
    return results


def test_every_aws_task_scans_what_boto3_lists(names, workers, mongo, mongo_app, moto):
    seed(moto)
    token = hs256({"access": AWS_ACCESS, "secret": AWS_SECRET}, SECRETJWT)
    conn = connection(mongo, token)
    q = names.queue("discovery")
    w = workers([q], args=worker_args(mongo, moto, names))
    want = expected(moto, str(conn["_id"]))

    first = scan_all(mongo_app, mongo, q, conn, w)
    check_all(mongo, conn, want)
    for task, result in first.items():
        assert result["written"] == result["seen"] > 0, (task, result)
    # Where moto pages (it ignores the page size of most EC2 calls, ElastiCache and Lambda), the
    # worker read more than one page per region and call.
    for task, calls in (("dbs-list", 1), ("loadbalance-list", 2), ("autoscaling-list", 1),
                        ("dynamodb-list", 1)):
        assert first[task]["pages"] > calls * len(REGIONS), (task, first[task])
    # moto answers no streaming distributions: said, and the web ones are still scanned.
    assert first["cdns-list"]["unsupported"] == ["cloudfront.list_streaming_distributions"]
    assert "list_streaming_distributions" in process(mongo, conn, "cdns-list")["msg"]

    east = LABELS["us-east-1"]
    # Maestro's fields, a few per kind.
    db = stored(mongo, conn, "dbs-list")[east]["db-us-east-1-3"]
    assert db["name"] == "db-us-east-1-3" and db["engine"] == "postgres"
    assert db["family"] == "Database" and db["provider"] == "RDS (AWS)" and db["own"] == 1
    assert db["role"]["port"] == 5432 and db["role"]["class"] == "db.t3.micro"
    assert db["role"]["allocated_storage"] == 20 and db["status"] == "Available"
    assert db["active"] is True and db["datacenters"]["zone"]
    lbs = stored(mongo, conn, "loadbalance-list")[east]
    alb = lbs["alb-us-east-1-0"]
    assert alb["provider"] == "ELB (AWS)" and alb["role"]["type"] == "application"
    assert alb["role"]["endpoint"] and alb["role"]["arn"].startswith("arn:aws:elasticloadbalancing")
    assert set(alb["datacenters"]["zone"]) == {"us-east-1a", "us-east-1b"}
    clb = lbs["clb-us-east-1"]
    assert clb["role"]["endpoint"] and clb["datacenters"]["zone"] == ["us-east-1a"]
    fn = next(iter(stored(mongo, conn, "serverless-list")[east].values()))
    assert fn["role"]["language"] == "python3.12" and fn["role"]["memory_size"] == 256
    assert fn["provider"] == "Lambda (AWS)" and fn["name"].startswith("fn-us-east-1-")
    sqs = stored(mongo, conn, "brokers-list")[east][f"{ACCOUNT}_us-east-1"]
    assert sqs["name"] == f"SQS - {ACCOUNT}" and len(sqs["queues"]) == MANY["us-east-1"] + 1
    ses = stored(mongo, conn, "smtp-list")[east][f"{conn['_id']}_ses_us-east-1"]
    assert set(ses["domain"]) == {"ops@us-east-1.example.com", "us-east-1.example.com"}
    table = stored(mongo, conn, "dynamodb-list")[east]["tbl-us-east-1-0"]
    assert table["name"] == "DynamoDB - tbl-us-east-1-0"
    api = next(iter(stored(mongo, conn, "gateway-list")[east].values()))
    assert api["description"] == "orders" and api["name"].startswith("api-us-east-1-")
    assert isinstance(api["created_at"], datetime.datetime)  # epoch seconds on the wire
    nets = stored(mongo, conn, "network-list")[east]
    vpc = nets[want_vpc(moto)]
    assert vpc["name"] == "main-us-east-1" and vpc["environment"] == "prod"
    assert vpc["family"] == "Vpc" and vpc["cidr_block"] == "10.1.0.0/16"
    assert {"key": "environment", "value": "prod"} in vpc["tags"]
    families = {d["family"] for d in nets.values()}
    assert families == {"Vpc", "Subnet", "VpcPeering", "VpnGateways", "VpcEndpoint",
                        "RouteTable", "NetworkInterfaces", "NatGateway", "NetworkAcl"}
    cdn = next(iter(stored(mongo, conn, "cdns-list")[None].values()))
    assert cdn["type"] == "Web" and cdn["name"].endswith(".cloudfront.net")

    # Nothing changed: nothing written.
    before = {t: {r: {u: d["updated_at"] for u, d in items.items()}
                  for r, items in stored(mongo, conn, t).items()} for t in TASKS}
    again = scan_all(mongo_app, mongo, q, conn, w)
    for task, result in again.items():
        assert result["written"] == 0 and result["deactivated"] == 0, (task, result)

    # Changed, deleted, added: the changed and added written, the deleted inactive, the
    # rest untouched.
    ec2 = client(moto, "ec2", "us-east-1")
    ec2.create_tags(Resources=[want_vpc(moto)],
                    Tags=[{"Key": "Name", "Value": "renamed"}])
    client(moto, "rds", "us-east-1").delete_db_instance(DBInstanceIdentifier="db-us-east-1-3",
                                                       SkipFinalSnapshot=True)
    client(moto, "dynamodb", "eu-west-1").delete_table(TableName="tbl-eu-west-1-0")
    client(moto, "sqs", "us-east-1").create_queue(QueueName="jobs-new")
    client(moto, "elbv2", "eu-west-1").delete_load_balancer(
        LoadBalancerArn=stored(mongo, conn, "loadbalance-list")[LABELS["eu-west-1"]][
            "alb-eu-west-1-0"]["role"]["arn"])
    want = expected(moto, str(conn["_id"]))
    third = scan_all(mongo_app, mongo, q, conn, w)
    check_all(mongo, conn, want)
    assert third["network-list"]["written"] == 1
    assert third["dbs-list"]["deactivated"] == 1 and third["dbs-list"]["written"] == 0
    assert third["dynamodb-list"]["deactivated"] == 1
    assert third["brokers-list"]["written"] == 1
    assert third["loadbalance-list"]["deactivated"] == 1
    assert stored(mongo, conn, "dbs-list", active=False)[east].keys() == {"db-us-east-1-3"}
    # The classic load balancer of the same region is kept: both APIs retire together.
    assert "clb-eu-west-1" in stored(mongo, conn, "loadbalance-list")[LABELS["eu-west-1"]]
    after = {t: {r: {u: d["updated_at"] for u, d in items.items()}
                 for r, items in stored(mongo, conn, t).items()} for t in TASKS}
    for task in ("autoscaling-list", "cache-list", "serverless-list", "gateway-list",
                 "snapshot-list", "images-list"):
        assert after[task] == before[task], task
    assert stored(mongo, conn, "network-list")[east][want_vpc(moto)]["name"] == "renamed"

    # Secrets never reach the log.
    for secret in (AWS_SECRET, SECRETJWT, token):
        assert secret not in w.log()


def want_vpc(endpoint):
    ec2 = client(endpoint, "ec2", "us-east-1")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.1.0.0/16"]}])["Vpcs"]
    return vpcs[0]["VpcId"]
