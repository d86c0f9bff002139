"""The demo's walk through the stack, doing what Maestro's server-app does when a user adds an
AWS connection and asks for a report (scripts/demo.sh starts the stack and runs this):

1. AWS (moto) gets a few instances, a volume and a bucket;
2. a datacenter and a connection are stored as server-app stores them, the credentials in an
   HS256 token under MAESTRO_SECRETJWT;
3. for every task `GET /available/rules/aws` marks `init_job`, a schedule is stored as
   server-app's SchedulerBatchCreator makes it (run_immediately): the beats fire them, the
   scheduler worker calls `PUT /crawler/AWS/<id>/<task>` on maestro-api, discovery scans;
4. a general report is asked for as server-app asks (`POST /reports/general`) and read back in
   three formats once server-app's report document says `finished`.
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.request
from datetime import datetime, timezone

import boto3
import pymongo
from bson import ObjectId

# server-app's intervals per task (its scheduler_options migration).
INTERVALS = {"server-list": (5, "minutes"), "volumes-list": (6, "hours"),
             "security-list": (6, "hours"), "storage-object-list": (24, "hours")}


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256(claims, key):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def wait(what, check, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    sys.exit(f"demo: {what} did not happen within {timeout}s")


def main():
    p = argparse.ArgumentParser()
    for a in ("api", "mongo", "client-db", "reports-db", "moto", "secret-private", "noauth",
              "secretjwt"):
        p.add_argument(f"--{a}", required=True)
    a = p.parse_args()
    token = hs256({"app": "demo", "noauth": a.noauth}, a.secret_private)

    def api(method, path, body=None, accept="application/json"):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(a.api + path, data=data, method=method, headers={
            "Authorization": f"JWT {token}", "Accept": accept,
            "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if accept == "application/json" else raw.decode())

    db = pymongo.MongoClient(a.mongo)[a.client_db]

    # 1. The cloud account.
    aws = {"aws_access_key_id": "AKIADEMO0000000001", "aws_secret_access_key": "demo-secret"}
    for region, names in (("us-east-1", ["web-1", "web-2", "db-1"]), ("eu-west-1", ["web-eu"])):
        ec2 = boto3.client("ec2", endpoint_url=a.moto, region_name=region, **aws)
        for name in names:
            ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                              InstanceType="t3.micro", TagSpecifications=[{
                                  "ResourceType": "instance",
                                  "Tags": [{"Key": "Name", "Value": name},
                                           {"Key": "environment", "Value": "demo"}]}])
    boto3.client("ec2", endpoint_url=a.moto, region_name="us-east-1", **aws).create_volume(
        AvailabilityZone="us-east-1a", Size=20, VolumeType="gp3")
    boto3.client("s3", endpoint_url=a.moto, region_name="us-east-1", **aws).create_bucket(
        Bucket="demo-assets")
    print("aws       -> moto: 4 instances in 2 regions, a volume, a bucket")

    # 2. What server-app stores for a user's datacenter and AWS connection.
    owner = ObjectId()
    roles = [{"_id": owner, "refs": "users", "role": 7, "email": "demo@example.com"}]
    now = datetime.now(timezone.utc)
    dc = db.datacenters.insert_one({"name": "aws-demo", "provider": "AWS", "roles": roles,
                                    "active": True, "created_at": now}).inserted_id
    conn = db.connections.insert_one({
        "name": "aws-demo", "provider": "AWS", "service": "iam_aws", "dc": "aws-demo",
        "dc_id": str(dc), "regions": ["us-east-1 (N. Virginia)", "eu-west-1 (Ireland)"],
        "conn": hs256({"access": aws["aws_access_key_id"],
                       "secret": aws["aws_secret_access_key"]}, a.secretjwt),
        "status": "enabled", "active": True, "process": {},
        "owner_user": {"_id": owner, "email": "demo@example.com"}, "roles": roles,
        "created_at": now}).inserted_id
    print(f"connection-> {conn} (as server-app's POST /connections stores it)")

    # 3. Its schedules, one per task the rules mark init_job, fired at once by the beats.
    _, rules = api("GET", "/available/rules/aws")
    tasks = [t for t, cmds in rules["items"][0]["value"]["permissions"].items()
             if cmds and cmds[0].get("init_job")]
    for task in tasks:
        every, period = INTERVALS.get(task, (1, "days"))
        db.schedulers.insert_one({
            "name": f"connections - {task} - {conn} ({int(time.time() * 1000)})",
            "method": "PUT", "enabled": True, "period_type": "interval", "task": "connections",
            "run_immediately": True, "source": None,
            "interval": {"every": every, "period": period},
            "endpoint": f"crawler/AWS/{conn}/{task}",
            "link": {"name": "aws-demo", "_id": conn, "task": task, "provider": "AWS"},
            "owner": {"_id": owner, "refs": "users"}, "roles": roles, "_cls": "PeriodicTask",
            "total_run_count": 1, "crawling": True, "active": True, "created_at": now})
    print(f"schedules -> {len(tasks)}: {', '.join(tasks)} (run_immediately)")

    def states():
        process = db.connections.find_one({"_id": conn}).get("process", {})
        done = {t: process[t] for t in tasks
                if process.get(t, {}).get("state") in ("success", "danger")}
        return done if len(done) == len(tasks) else None

    for task, p in sorted(wait("every scan", states).items()):
        print(f"scan      -> {task}: {p['state']} ({p['msg']})")
    for coll in ("servers", "volumes", "networks", "applications"):
        n = db[coll].count_documents({"roles._id": owner, "active": True})
        print(f"inventory -> {coll}: {n} active, owner-scoped")
    orphans = db.servers.count_documents({"roles._id": owner, "accountant": {"$exists": False}})
    print(f"inventory -> servers without an accountant (server-app's orphans): {orphans}")

    # 4. A general report, as server-app's POST /reports asks for it.
    rules = [{"field": "active", "filter": "true", "comparer": "equal", "typ": "boolean"}]
    report = db.reports.insert_one({"name": "demo servers", "report": "general",
                                    "component": "Servers", "filters": rules,
                                    "status": "process", "owner": {"_id": owner},
                                    "roles": roles, "active": True}).inserted_id
    _, answer = api("POST", "/reports/general", {
        "report_id": str(report), "component": "Servers",
        "filters": json.dumps(rules, indent=2), "owner_user": str(owner)})
    print(f"report    -> POST /reports/general: {answer}")
    doc = wait("the report", lambda: (d := db.reports.find_one({"_id": report}))
               and d.get("status") != "process" and d)
    print(f"report    -> status {doc['status']} ({doc['msg']}), columns {doc.get('columns')}")
    table = f"{report}_general"
    _, page = api("GET", f"/reports/{table}?limit=10")
    print(f"read json -> found {page['found']}: "
          + ", ".join(sorted(i.get("name", "?") for i in page["items"])))
    _, csv_text = api("GET", f"/reports/{table}?limit=10&orderBy=name&ascending=1",
                      accept="text/csv")
    print("read csv  -> " + csv_text.splitlines()[0][:100] + " ...")
    _, inventory = api("GET", f"/reports/{table}", accept="text/inventory")
    print("read ini  -> " + inventory.replace("\n\r", " | ").replace("\n", " | ")[:120])

    runs = db.events.count_documents({"context": "scheduler", "status": "success"})
    print(f"events    -> {runs} successful scheduled runs recorded for server-app's history")
    print(f"token     -> curl -H 'Authorization: JWT {token}' {a.api}/reports/{table}")


if __name__ == "__main__":
    main()
