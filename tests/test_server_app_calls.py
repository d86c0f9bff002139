"""maestro-api answering the calls Maestro's server-app makes to discovery-api, byte-level where
server-app reads the answer. Each call is the one in the server-app file named beside it
(paths in the maestro-server/server-app repository); reports are in test_reports.py and the
scheduler's calls in test_scheduled_jobs.py.
"""
import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.request

import pika
import pytest
from bson import ObjectId

from conftest import AMQP_URL, MONGODB_URI
from test_api import NOAUTH, SECRET, apis, b64url, proxy  # noqa: F401  (the fixtures)


def server_app_token():
    """server-app's private token: jwt-simple HS256 of {app, version, noauth}, no exp
    (app/core/configs/private_token.js)."""
    head = b64url(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
    body = b64url(json.dumps({"app": "server-app", "version": "0.9.0", "noauth": NOAUTH}).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def call(api, method, path, body=None, auth=True):
    """As server-app's HTTPService (axios) sends it: JSON, `Authorization: JWT <token>`."""
    headers = {"Accept": "application/json, text/plain, */*"}
    if auth:
        headers["Authorization"] = f"JWT {server_app_token()}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json;charset=utf-8"
    req = urllib.request.Request(api.base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def shown(body):
    """What server-app's user reads of a failed answer: HTTPService.js joins the values of
    `message` (lodash/fp reduce: a string would be joined letter by letter), else `errors`,
    else `error` (app/core/services/HTTPService.js)."""
    m = body.get("message")
    if m:
        return "".join(f" {v}" for v in (m.values() if isinstance(m, dict) else m))
    return body.get("errors") or body.get("error")


@pytest.fixture
def api(names, amqp, apis, mongo):
    disc = names.queue("discovery")
    a = apis(["--routes", f"maestro.discovery.scan={disc}", "--mongo-uri", MONGODB_URI,
              "--mongo-database", mongo.name])
    a.disc = disc
    return a


def test_health_card(api):
    # app/core/applications/healthCheckApplication.js: GET / on each service, shown with its
    # description and version; no token needed.
    status, card = call(api, "GET", "/", auth=False)
    assert status == 200 and list(card) == ["name", "description", "version", "license"]
    assert card["name"] == "maestro-api" and card["version"]


def test_provider_templates_and_rules(api):
    # app/inventory/applications/persistenceConnection.js::info, ::single, ::rules,
    # ::single_rules: passed through verbatim to the UI.
    status, info = call(api, "GET", "/available/info")
    assert status == 200
    providers = info["items"][0]["value"]["providers"]
    assert [p["label"] for p in providers] == [
        "AWS", "Digital Ocean", "Spaces", "Openstack", "Azure", "File", "Ansible", "Terraform"]
    # The client asks with whatever the user picked; server-app does not normalise it here.
    for label in ("AWS", "aws"):
        status, one = call(api, "GET", f"/available/info/{label}")
        value = one["items"][0]["value"]["providers"]
        assert status == 200 and value["label"] == "AWS" and value["data"], one
    status, do = call(api, "GET", "/available/info/Digital%20Ocean")
    value = do["items"][0]["value"]["providers"]
    assert status == 200 and value["label"] == "Digital Ocean" and value["dc"] == "Digital Ocean"
    assert value["data"][0]["template"]["conn"][0]["metas"]["name"] == "token"
    status, os_ = call(api, "GET", "/available/info/OpenStack")
    value = os_["items"][0]["value"]["providers"]
    assert status == 200 and value["label"] == "Openstack" and value["dc"] == "Openstack"
    extra = [f["metas"]["name"] for f in value["data"][0]["template"]["extra"] if "name" in f.get("metas", {})]
    assert {"url", "project", "user_domain_id"} <= set(extra)
    status, ansible = call(api, "GET", "/available/info/Ansible")
    methods = [m["service"] for m in ansible["items"][0]["value"]["providers"]["data"]]
    assert status == 200 and methods == ["upload_ansible", "ssh_ansible", "s3_ansible"]
    status, none = call(api, "GET", "/available/info/VMware")
    assert status == 200 and none == {"items": [{"value": {"providers": []}}]}
    status, rules = call(api, "GET", "/available/rules")
    assert status == 200 and rules["items"][0]["value"] == [
        {"name": "AWS"}, {"name": "Digital Ocean"}, {"name": "Spaces"}, {"name": "Openstack"},
        {"name": "Azure"}, {"name": "File"}, {"name": "Ansible"}, {"name": "Terraform"}]
    status, rules = call(api, "GET", "/available/rules/digitalocean")
    permissions = rules["items"][0]["value"]["permissions"]
    assert sorted(permissions) == sorted([
        "server-list", "volumes-list", "images-list", "loadbalance-list", "snapshot-list",
        "cdns-list", "container-orchestration-list", "network-list"])
    assert all(cmds[0]["init_job"] for cmds in permissions.values())
    status, rules = call(api, "GET", "/available/rules/spaces")
    (bucket,) = rules["items"][0]["value"]["permissions"]["storage-object-list"]
    assert (bucket["command"], bucket["access"], bucket["provider"]) == (
        "s3", "list_buckets", "Spaces (DigitalOcean)")

    # ::create, after inserting a connection: GET /available/rules/<provider lower-cased, no
    # spaces>, then one schedule per task whose first command has a truthy init_job
    # (app/inventory/services/SchedulerBatchCreator.js).
    status, rules = call(api, "GET", "/available/rules/aws")
    permissions = rules["items"][0]["value"]["permissions"]
    scheduled = sorted(t for t, cmds in permissions.items() if cmds and cmds[0].get("init_job"))
    # Maestro's 19 AWS tasks (the original permission file's), every one scheduled.
    assert scheduled == sorted([
        "server-list", "loadbalance-list", "autoscaling-list", "dbs-list", "storage-object-list",
        "brokers-list", "cache-list", "smtp-list", "volumes-list", "cdns-list", "snapshot-list",
        "images-list", "security-list", "serverless-list", "serverless-support-list",
        "search-list", "dynamodb-list", "gateway-list", "network-list"])
    for task, commands in permissions.items():
        for c in commands:
            assert {"command", "access", "entity"} <= set(c), (task, c)
    status, crawler = call(api, "GET", "/crawler/AWS")
    assert status == 200 and crawler == permissions


def test_crawl_as_server_app_asks_for_it(api, mongo):
    # persistenceConnection.js::task: PUT /crawler/<connection.provider as stored>/<id>/<command>
    # with body {}; the answer goes to the UI with 200.
    conn = "5f1b00000000000000000010"
    mongo.connections.insert_one({"_id": ObjectId(conn), "provider": "AWS", "process": {
        "server-list": {"state": "success", "msg": "Success. At 2026-01-01 00:00:00.000000"}}})
    status, body = call(api, "PUT", f"/crawler/AWS/{conn}/server-list", body={})
    assert status == 201, body
    assert {k: body[k] for k in ("msg", "conn_id", "task", "status")} == {
        "msg": "In progress. server-list", "conn_id": conn, "task": "server-list",
        "status": "warning"}
    c = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        method, props, raw = c.channel().basic_get(api.disc, auto_ack=True)
    finally:
        c.close()
    assert props.headers["task"] == "maestro.discovery.scan"
    assert json.loads(raw)[1] == {"provider": "aws", "conn_id": conn, "task": "server-list"}
    # The UI shows "In progress" from the moment the scan is accepted, as discovery wrote it
    # (it reads process through GET /connections/:id, app/inventory/entities/Connections.js).
    p = mongo.connections.find_one({"_id": ObjectId(conn)})["process"]["server-list"]
    assert p["state"] == "warning" and p["msg"].startswith("In progress. server-list At "), p

    # A task the provider does not have: server-app shows the answer's `message`
    # (app/core/services/HTTPService.js reads message, then errors, then error).
    status, body = call(api, "PUT", f"/crawler/AWS/{conn}/flavor-list", body={})
    assert status == 422 and shown(body).startswith(" task: This task is not allowed"), body
    status, body = call(api, "PUT", f"/crawler/VMware/{conn}/server-list", body={})
    assert status == 422 and body["field"] == "provider", body
    assert shown(body).startswith(" provider: "), body
    assert "process" not in mongo.connections.find_one({"_id": ObjectId(conn)}) or \
        "flavor-list" not in mongo.connections.find_one({"_id": ObjectId(conn)})["process"]
    # A forged token gets 401 with a reason, nothing enqueued.
    req = urllib.request.Request(api.base + f"/crawler/AWS/{conn}/server-list", method="PUT",
                                 headers={"Authorization": "JWT " + server_app_token()[:-2] + "xx"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=15)
    assert e.value.code == 401


def test_a_scan_the_broker_did_not_take_leaves_the_progress_as_it_was(names, amqp, apis, mongo,
                                                                      proxy):
    disc = names.queue("discovery")
    api = apis(["--broker", f"amqp://guest:guest@127.0.0.1:{proxy.port}//", "--routes",
                f"maestro.discovery.scan={disc}", "--mongo-uri", MONGODB_URI,
                "--mongo-database", mongo.name, "--publish-timeout", "2"])
    conn = ObjectId()
    before = {"state": "success", "msg": "Success. At 2026-01-01 00:00:00.000000"}
    mongo.connections.insert_one({"_id": conn, "process": {"server-list": before}})
    proxy.cut()
    status, body = call(api, "PUT", f"/crawler/AWS/{conn}/server-list", body={})
    assert status == 503, body
    assert mongo.connections.find_one({"_id": conn})["process"]["server-list"] == before
    status, body = call(api, "PUT", f"/crawler/AWS/{conn}/volumes-list", body={})
    assert status == 503, body
    assert "volumes-list" not in mongo.connections.find_one({"_id": conn})["process"]
