"""maestro.discovery.scan against moto_server (AWS APIs) and MongoDB, end to end: a Celery
client sends the scan, the real maestro-worker signs SigV4 requests to moto, pages through
EC2 answers and keeps the inventory collections in step, in the shapes server-app reads
(the connection as server-app's `POST /connections` stores it; items with ObjectId roles and
owner, `accountant`, the datacenter; `process.<task>` in the UI's words)."""
import base64
import hashlib
import hmac
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest
from bson import ObjectId

from conftest import MONGODB_URI, backend_url, wait_for

SECRETJWT = "disc-test-jwt-secret-Zq8"
AWS_ACCESS = "AKIADISCOVERYTEST01"
AWS_SECRET = "moto-secret-never-logged-7Hc2"
REGIONS = ["us-east-1", "eu-west-1"]
# As server-app stores them: the UI's labels, the API region first.
LABELS = {"us-east-1": "us-east-1 (N. Virginia)", "eu-west-1": "eu-west-1 (Ireland)"}
PAGE = 5  # --scan-qtd: EC2 MaxResults, so 7 instances take two pages
DC = ObjectId("5f00000000000000000000dc")


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256(claims, key):
    """A JWT as Maestro stored connection credentials (HS256)."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def moto(tmp_path):
    """A moto_server of this test's own, stopped afterwards."""
    port = free_port()
    exe = pathlib.Path(sys.executable).parent / "moto_server"
    log = open(tmp_path / "moto.log", "w")
    # Without moto's 1300 public AMIs and their snapshots, which it lists even to an owner
    # filter of "self".
    env = {**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return proc.poll() is not None

    wait_for(up, 60, 0.2, "moto_server")
    assert proc.poll() is None, (tmp_path / "moto.log").read_text()
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def client(endpoint, service, region):
    import boto3
    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        aws_access_key_id=AWS_ACCESS, aws_secret_access_key=AWS_SECRET)


def tags(name, env):
    return [{"ResourceType": "instance",
             "Tags": [{"Key": "Name", "Value": name}, {"Key": "environment", "Value": env}]}]


def seed(endpoint):
    """Instances (7 in the first region, 1 in the second), volumes, a security group per
    region and two buckets; returns their ids."""
    out = {"instances": {}, "volumes": {}, "groups": {}, "buckets": []}
    for n, region in enumerate(REGIONS):
        ec2 = client(endpoint, "ec2", region)
        count = 7 if n == 0 else 1
        ids = []
        for i in range(count):
            r = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                  InstanceType="t3.micro",
                                  TagSpecifications=tags(f"web-{region}-{i}", "prod"))
            ids.append(r["Instances"][0]["InstanceId"])
        out["instances"][region] = ids
        v = ec2.create_volume(AvailabilityZone=f"{region}a", Size=8 + n, VolumeType="gp3",
                              TagSpecifications=[{"ResourceType": "volume",
                                                  "Tags": [{"Key": "Name", "Value": f"data-{n}"}]}])
        out["volumes"][region] = v["VolumeId"]
        g = ec2.create_security_group(GroupName=f"ssh-{n}", Description="ssh in")
        ec2.authorize_security_group_ingress(GroupId=g["GroupId"], IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
            "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
        out["groups"][region] = g["GroupId"]
    s3 = client(endpoint, "s3", "us-east-1")
    for b in ("disc-logs", "disc-assets"):
        s3.create_bucket(Bucket=b)
        out["buckets"].append(b)
    return out


def connection(mongo, token, regions=REGIONS):
    """A connection as server-app's `POST /connections` stores it."""
    owner = ObjectId()
    doc = {"_id": ObjectId(), "name": "aws-prod", "provider": "AWS", "service": "iam_aws",
           "dc": "aws-dc", "dc_id": str(DC), "regions": [LABELS[r] for r in regions],
           "conn": token, "status": "enabled", "active": True,
           "owner_user": {"_id": owner, "name": "Ana", "email": "ana@example.com"},
           "roles": [{"_id": owner, "refs": "users", "role": 7}], "process": {}}
    mongo.connections.insert_one(doc)
    return doc


def worker_args(mongo, endpoint, names):
    # A scan's notification goes to a queue of the test's own (else to the shared `notify`).
    return ["--routes", f"maestro.notify={names.queue('notify')}",
            "--result-backend", backend_url(mongo), "--mongo-uri", MONGODB_URI,
            "--mongo-database", mongo.name, "--secretjwt", SECRETJWT,
            "--aws-endpoint", endpoint, "--scan-qtd", str(PAGE), "--translate-qtd", "3"]


def scan(app, q, conn, task, timeout=90):
    r = app.send_task("maestro.discovery.scan", queue=q,
                      kwargs={"provider": "aws", "conn_id": str(conn["_id"]), "task": task})
    return r, r.get(timeout=timeout, propagate=False)


def process(mongo, conn, task):
    return mongo.connections.find_one({"_id": conn["_id"]})["process"].get(task)


def test_scan_translates_pages_upserts_changes_and_retires_what_is_gone(
        names, workers, mongo, mongo_app, moto, amqp):
    seeded = seed(moto)
    token = hs256({"access": AWS_ACCESS, "secret": AWS_SECRET}, SECRETJWT)
    conn = connection(mongo, token)
    owner = conn["roles"][0]["_id"]
    # Maestro's hooks: cpu and memory from the public flavors, applications linked by the
    # servers' tags, among the owner's applications only.
    mongo.flavors_public.insert_one({"api_name": "t3.micro", "vcpus": "2 vCPUs",
                                     "memory": "1 GiB"})
    shop = mongo.applications.insert_one({"name": "shop", "family": "Application",
                                          "roles": [{"_id": owner, "refs": "users", "role": 7}]})
    mongo.applications.insert_one({"name": "shop", "family": "Application",
                                   "roles": [{"_id": ObjectId(), "refs": "users", "role": 7}]})
    client(moto, "ec2", "us-east-1").create_tags(
        Resources=[seeded["instances"]["us-east-1"][0]],
        Tags=[{"Key": "applications", "Value": "shop, nowhere"}])
    q = names.queue("discovery")
    notify = names.queue("notify")
    amqp._fresh().queue_declare(notify, durable=True)
    w = workers([q], args=worker_args(mongo, moto, names) + ["--audit-uri", "http://127.0.0.1:9"],
                env={"MAESTRO_LOG_LEVEL": "debug"})

    # Servers: two regions, 7 instances in the first (pages of 5), tags and datacenters.
    r, result = scan(mongo_app, q, conn, "server-list")
    assert r.state == "SUCCESS", (r.traceback, w.log()[-3000:])
    assert result["seen"] == 8 and result["written"] == 8 and result["deactivated"] == 0
    servers = {d["unique_id"]: d for d in mongo.servers.find()}
    assert set(servers) == {i for ids in seeded["instances"].values() for i in ids}
    first = servers[seeded["instances"]["us-east-1"][0]]
    assert first["name"] == "web-us-east-1-0"
    assert first["status"] == "Active" and first["active"] is True
    assert {"key": "Name", "value": "web-us-east-1-0"} in first["tags"]
    assert {"key": "environment", "value": "prod"} in first["tags"]
    assert first["environment"] == "prod"
    dc = first["datacenters"]
    assert dc["provider"] == "AWS" and dc["region"] == LABELS["us-east-1"]
    assert dc["zone"].startswith("us-east-1") and dc["instance"] == "t3.micro"
    assert dc["_id"] == DC and dc["name"] == "aws-dc"
    # What server-app's ACL and orphan queries need: ObjectIds, the connection as accountant.
    assert first["roles"] == conn["roles"]
    assert first["owner"] == {"refs": "connections", "name": "aws-dc", "_id": conn["_id"]}
    assert first["accountant"] == [str(conn["_id"])]
    # The checksum is of the item as translated (dates as the API's text), so an unchanged
    # item is not written again (checked below).
    assert len(first["checksum"]) == 40
    assert first["cpu"] == 2 and first["memory"] == 1.0
    assert first["applications"] == [{"_id": shop.inserted_id, "name": "shop",
                                      "family": "Application"}]
    assert "applications" not in servers[seeded["instances"]["us-east-1"][1]]
    # An audit record per inserted item, as Maestro's discovery sent them.
    audits = [json.loads(body)[1] for _, _, body in amqp.get_all(notify)]
    audits = [a for a in audits if a.get("channel") == "audit"]
    assert len(audits) == 8 and {a["method"] for a in audits} == {"POST"}
    by_id = {a["entity_id"]: a for a in audits}
    assert by_id[str(first["_id"])]["entity"] == "servers"
    assert by_id[str(first["_id"])]["body"]["unique_id"] == first["unique_id"]
    east = servers[seeded["instances"]["eu-west-1"][0]]["datacenters"]["region"]
    assert east == LABELS["eu-west-1"]
    p = process(mongo, conn, "server-list")
    assert p["state"] == "success" and p["msg"].startswith("Success. At "), p
    # server-app's own queries find them: its ACL filter for a read (role >= 1) and `active`
    # (app/core/services/PersistenceServices.js), a datacenter's servers
    # (app/core/applications/relationsApplication.js), and no orphans
    # (app/inventory/services/DatacentersOrphans.js: no accountant).
    acl = {"roles": {"$elemMatch": {"_id": owner, "role": {"$gte": 1}}}, "active": True}
    assert owner == conn["roles"][0]["_id"]
    assert mongo.servers.count_documents(acl) == 8
    assert mongo.servers.count_documents({**acl, "datacenters._id": DC}) == 8
    assert mongo.servers.count_documents({"datacenters._id": DC,
                                          "accountant": {"$exists": False}}) == 0

    # Volumes, security groups, buckets.
    for task, coll in (("volumes-list", "volumes"), ("security-list", "networks"),
                       ("storage-object-list", "applications")):
        r, result = scan(mongo_app, q, conn, task)
        assert r.state == "SUCCESS", (task, r.traceback)
        assert process(mongo, conn, task)["state"] == "success"
        assert mongo[coll].count_documents({"accountant": str(conn["_id"])}) == result["seen"] > 0
    vol = mongo.volumes.find_one({"unique_id": seeded["volumes"]["eu-west-1"]})
    assert vol["name"] == "data-1" and vol["size"] == 9 and vol["volume_type"] == "gp3"
    assert vol["datacenters"]["region"] == LABELS["eu-west-1"]
    sg = mongo.networks.find_one({"unique_id": seeded["groups"]["us-east-1"]})
    assert sg["name"] == "ssh-0" and sg["family"] == "SecurityGroup"
    assert sg["ip_permissions"][0]["from_port"] == 22
    assert sg["ip_permissions"][0]["ip_ranges"] == ["10.0.0.0/8"]
    buckets = {d["unique_id"]: d for d in mongo.applications.find({"family": "ObjectStorage"})}
    assert set(buckets) == set(seeded["buckets"])
    assert buckets["disc-logs"]["datacenters"]["provider"] == "AWS"

    # A second scan with nothing changed writes nothing.
    before = {d["unique_id"]: d["updated_at"] for d in mongo.servers.find()}
    r, result = scan(mongo_app, q, conn, "server-list")
    assert r.state == "SUCCESS" and result["seen"] == 8 and result["written"] == 0
    assert {d["unique_id"]: d["updated_at"] for d in mongo.servers.find()} == before
    assert process(mongo, conn, "server-list")["msg"].startswith("Success. No changes At ")

    # Terminated, deleted: inactive.
    east = client(moto, "ec2", "us-east-1")
    gone = seeded["instances"]["us-east-1"][1]
    east.terminate_instances(InstanceIds=[gone])
    amqp.get_all(notify)
    r, result = scan(mongo_app, q, conn, "server-list")
    assert r.state == "SUCCESS" and result["written"] >= 1
    rewritten = [json.loads(body)[1] for _, _, body in amqp.get_all(notify)]
    assert [(a["entity_id"], a["method"]) for a in rewritten if a.get("channel") == "audit"] \
        == [(str(mongo.servers.find_one({"unique_id": gone})["_id"]), "PUT")]
    t = mongo.servers.find_one({"unique_id": gone})
    assert t["active"] is False and t["status"] != "Active"
    assert mongo.servers.count_documents({"active": True}) == 7
    east.delete_volume(VolumeId=seeded["volumes"]["us-east-1"])
    r, result = scan(mongo_app, q, conn, "volumes-list")
    # The terminated instance's root volume went with it (DeleteOnTermination), so 1 or 2.
    assert r.state == "SUCCESS" and result["deactivated"] >= 1, result
    assert mongo.volumes.find_one({"unique_id": seeded["volumes"]["us-east-1"]})["active"] is False
    assert mongo.volumes.find_one({"unique_id": seeded["volumes"]["eu-west-1"]})["active"] is True
    client(moto, "s3", "us-east-1").delete_bucket(Bucket="disc-logs")
    r, result = scan(mongo_app, q, conn, "storage-object-list")
    assert r.state == "SUCCESS" and result["deactivated"] == 1
    assert mongo.applications.find_one({"unique_id": "disc-logs"})["active"] is False
    assert mongo.applications.find_one({"unique_id": "disc-assets"})["active"] is True

    # Secrets never reach the log.
    log = w.log()
    assert "discovery_scan_finished" in log
    for secret in (AWS_SECRET, SECRETJWT, token):
        assert secret not in log


def test_refusals_are_clear_failures(names, workers, mongo, mongo_app, moto):
    q = names.queue("discovery")
    w = workers([q], args=worker_args(mongo, moto, names))
    good = connection(mongo, hs256({"access_key": AWS_ACCESS, "secret_key": AWS_SECRET},
                                   SECRETJWT))

    # A task AWS does not have (OpenStack's): refused before it starts, naming the task (the
    # API refuses it too).
    r, _ = scan(mongo_app, q, good, "flavor-list")
    assert r.state == "FAILURE" and "flavor-list" in str(r.result), r.result
    assert process(mongo, good, "flavor-list") is None

    forged = connection(mongo, hs256({"access": AWS_ACCESS, "secret": AWS_SECRET}, "wrong-key"))
    r, _ = scan(mongo_app, q, forged, "server-list")
    assert r.state == "FAILURE" and "PermissionError" in r.traceback
    p = process(mongo, forged, "server-list")
    assert p["state"] == "danger" and "signature" in p["msg"]
    assert mongo.servers.count_documents({}) == 0

    unsigned = b64url(b'{"alg":"none","typ":"JWT"}') + "." + b64url(
        json.dumps({"access": AWS_ACCESS, "secret": AWS_SECRET}).encode()) + "."
    none_alg = connection(mongo, unsigned)
    r, _ = scan(mongo_app, q, none_alg, "server-list")
    assert r.state == "FAILURE" and "PermissionError" in r.traceback

    r, _ = scan(mongo_app, q, {"_id": ObjectId()}, "server-list")
    assert r.state == "FAILURE" and "not found" in str(r.result)

    # The alternative claim names work for a real scan.
    r, result = scan(mongo_app, q, good, "security-list")
    assert r.state == "SUCCESS", r.traceback
    assert AWS_SECRET not in w.log() and SECRETJWT not in w.log()
