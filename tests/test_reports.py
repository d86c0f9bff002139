"""Reports end to end, as Maestro's server-app drives them: maestro-api -> maestro-worker ->
MongoDB, through the report-app contract (server-app's `callReportApi.js` and
`persistenceReports.js` calls).

- `POST /reports/general|pivot` with server-app's body (rules as pretty-printed JSON text)
  answers 200 `{filter, general-id|pivot-id, _id, component}`;
- the rows land in `<reports db>.<report_id>_<kind>`, owner-scoped, and only then is
  server-app's report document marked `finished` with `columns` and `aggr` and the owner told
  on the websocket (the notification task goes to this run's notify queue, which the test
  reads itself: when the websocket message comes, every row is stored);
- `GET /reports/<id>_<kind>` pages them in the five formats server-app asks for; `DELETE`
  drops them.
"""
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pika
import pytest
from bson import ObjectId

from conftest import AMQP_URL, MONGODB_URI, wait_for
from test_api import AUTH, apis  # noqa: F401  (the fixture)

OWNER = ObjectId("5f0000000000000000000001")
OTHER = ObjectId("5f0000000000000000000002")
DC = ObjectId("5f00000000000000000000dc")


@pytest.fixture
def reports_db(mongo):
    db = mongo.client[f"{mongo.name}_r"]
    yield db
    mongo.client.drop_database(db.name)


def notifications(queue, want, timeout=60):
    """The next `maestro.notify` messages on `queue` until one of channel `want` came."""
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    got = []
    try:
        ch = conn.channel()
        deadline = time.time() + timeout
        while time.time() < deadline:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                time.sleep(0.05)
                continue
            _args, kwargs, _embed = json.loads(body)
            got.append((props.headers, kwargs))
            if kwargs.get("channel") == want:
                return got
        raise AssertionError(f"no {want} notification on {queue} within {timeout}s: {got}")
    finally:
        conn.close()


def raw(api, method, path, accept=None, timeout=30):
    """status, headers, body bytes."""
    h = dict(AUTH)
    if accept:
        h["Accept"] = accept
    req = urllib.request.Request(api.base + path, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def rules(*items):
    """Rules as server-app sends them: `JSON.stringify(filters, null, 2)`."""
    return json.dumps(list(items), indent=2)


def seed(db, n_mine=1200, n_other=40):
    docs = []
    for i in range(n_mine):
        docs.append({"hostname": f"web-{i:04d}", "active": bool(i % 4),
                     "ipv4_private": None if i % 10 == 0 else f"10.0.{i // 250}.{i % 250}",
                     "datacenters": {"_id": DC, "name": "dc1", "provider": "AWS",
                                     "region": "us-east-1", "zone": f"us-east-1{'ab'[i % 2]}"},
                     "os": {"base": "Linux" if i % 3 else "Windows"},
                     "roles": [{"_id": OWNER, "refs": "users", "role": 7}]})
    for i in range(n_other):
        docs.append({"hostname": f"other-{i}", "active": True,
                     "roles": [{"_id": OTHER, "refs": "users", "role": 7}]})
    for start in range(0, len(docs), 500):
        db["servers"].insert_many(docs[start:start + 500])
    return sum(1 for i in range(n_mine) if i % 4)


def server_app_report(db, kind, component, filters):
    """The report document server-app writes before it calls the report service."""
    _id = ObjectId()
    db["reports"].insert_one({"_id": _id, "name": f"{kind} report", "report": kind,
                              "component": component, "filters": filters, "status": "process",
                              "owner": {"_id": OWNER, "refs": "users"},
                              "roles": [{"_id": OWNER, "refs": "users", "role": 7}],
                              "active": True})
    return str(_id)


def start_stack(names, mongo, reports_db, workers, apis, qtd=300):
    q = names.queue("report")
    notify = names.queue("notify")
    routes = ",".join(f"{t}={q}" for t in ["maestro.report.general", "maestro.report.pivot",
                                          "maestro.report.upload", "maestro.report.finish"])
    routes += f",maestro.notify={notify}"
    backend = f"{MONGODB_URI.rstrip('/')}/{mongo.name}"
    common = ["--mongo-uri", MONGODB_URI, "--mongo-database", mongo.name,
              "--reports-database", reports_db.name, "--routes", routes]
    workers([q], args=["--result-backend", backend, "--insert-qtd", str(qtd)] + common)
    api = apis(["--result-backend", backend] + common)
    # The notify queue exists before anything is sent to it.
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    conn.channel().queue_declare(notify, durable=True)
    conn.close()
    return notify, api


def test_general_report_as_server_app_drives_it(names, amqp, mongo, reports_db, workers,
                                                apis):
    expected = seed(mongo)
    notify, api = start_stack(names, mongo, reports_db, workers, apis)
    active = {"field": "active", "filter": "true", "comparer": "equal", "typ": "boolean"}
    in_dc = {"field": "datacenters", "subfield": "_id", "subfilter": str(DC), "typ": "object"}
    report_id = server_app_report(mongo, "general", "Servers", [active, in_dc])
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    filters = rules(active, in_dc)
    status, body = api.request("POST", "/reports/general", {
        "report_id": report_id, "component": "Servers", "filters": filters,
        "owner_user": str(OWNER)},
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    # report-app's answer, which server-app passes on (and stores `_id`, `component` of).
    assert status == 200, body
    assert list(body) == ["filter", "general-id", "_id", "component"], body
    assert body["filter"] == filters and body["_id"] == report_id
    assert body["component"] == "Servers"

    got = notifications(notify, "ws")
    headers, ws = got[-1]
    rows_when_notified = reports_db[f"{report_id}_general"].count_documents({})
    assert rows_when_notified == expected, "finished arrived before the last chunk was stored"
    # One trace from the API request through the chunks' chord to the notification.
    tp = headers["traceparent"].split("-")
    assert tp[1] == trace_id and tp[2] != "00f067aa0ba902b7", tp
    assert ws["owner_id"] == str(OWNER)
    assert ws["notify"] == {"title": f"general ({report_id})", "msg": "Finish Sync",
                            "type": "success"}, ws
    assert ws["event"]["caller"] == ["reports-update", f"reports-{report_id}"]
    audits = [k for _, k in got if k.get("channel") == "audit"]
    assert audits and audits[0]["entity"] == "reports" and "aggr" in audits[0]["body"]

    # server-app's report document: finished, with the columns and the charts.
    doc = mongo["reports"].find_one({"_id": ObjectId(report_id)})
    assert doc["status"] == "finished" and doc["msg"] == "completed", doc
    assert doc["columns"][:3] == ["active", "_id", "hostname"], doc["columns"]
    assert doc["aggr"]["active"]["aggr"] == {"label": [True], "data": [expected]}
    assert doc["aggr"]["datacenters_zone"]["opts"]["txt"] == "Zones"

    # Rows: only the owner's active servers, ids and dates as text, each its own _id.
    table = f"{report_id}_general"
    rows = reports_db[table]
    assert rows.count_documents({"active": {"$ne": True}}) == 0
    row = rows.find_one({})
    assert isinstance(row["_id"], ObjectId)
    assert row["roles"][0]["_id"] == str(OWNER) and row["datacenters"]["_id"] == str(DC)

    # Reading it back as server-app does.
    status, h, page = raw(api, "GET", f"/reports/{table}?limit=100&page=2")
    assert status == 200 and h["Content-Type"] == "application/json", page
    page = json.loads(page)
    assert list(page) == ["found", "total_pages", "page", "limit", "items"]
    assert page["found"] == expected and page["page"] == 2 and page["limit"] == 100
    assert page["total_pages"] == -(-expected // 100) and len(page["items"]) == 100
    assert all(len(i["_id"]) == 24 for i in page["items"])

    q = urllib.parse.quote(json.dumps({"hostname": {"$regex": "WEB-00", "$options": "i"}}))
    status, _, found = raw(api, "GET", f"/reports/{table}?query={q}&orderBy=hostname&ascending=0")
    found = json.loads(found)
    assert found["found"] == sum(1 for i in range(100) if i % 4), found["found"]
    names_seen = [i["hostname"] for i in found["items"]]
    assert names_seen == sorted(names_seen, reverse=True), "ascending=0 sorts descending"

    status, h, csv_body = raw(api, "GET", f"/reports/{table}?limit=10", accept="text/csv")
    assert status == 200 and h["Content-Type"] == "text/csv"
    lines = csv_body.decode().splitlines()
    assert lines[0].startswith('"","_id","hostname","active"') and len(lines) == 11, lines[:2]
    assert lines[1].startswith("0,\"")
    status, h, xml = raw(api, "GET", f"/reports/{table}?limit=2", accept="application/xml")
    assert h["Content-Type"] == "application/xml"
    assert xml.startswith(b'<?xml version="1.0" ?><response><found>')
    status, h, text = raw(api, "GET", f"/reports/{table}?limit=2", accept="text/plain")
    assert text.count(b"\n\r") == 2 and text.startswith(b" - _id: ")
    status, h, inv = raw(api, "GET", f"/reports/{table}?limit=3", accept="text/inventory")
    assert h["Content-Type"] == "text/inventory"
    assert inv.startswith(b"[all]\n\rweb-") and b"ansible_host=" in inv

    # Refused reads name the parameter; nothing outside the report tables is reachable.
    for bad, field in [("?limit=0", "limit"), ("?limit=100001", "limit"),
                       ("?ascending=true", "ascending"),
                       (f"?query={urllib.parse.quote(json.dumps({'$where': '1'}))}", "query.$where")]:
        status, _, b = raw(api, "GET", f"/reports/{table}{bad}")
        assert status == 422 and json.loads(b)["field"] == field, (bad, b)
    assert raw(api, "GET", "/reports/reports")[0] == 422
    status, _, b = raw(api, "GET", f"/aggregation/{table}")
    aggr = json.loads(b)
    assert aggr["name"] == table and aggr["aggr"]["active"]["aggr"] == {"true": expected}

    # Running it again (server-app's PUT, scheduler-app's PATCH) rebuilds rather than appends.
    status, again = api.request("PATCH", "/reports/general", {
        "report_id": report_id, "component": "Servers", "filters": filters,
        "owner_user": str(OWNER)})
    assert status == 200 and again["general-id"] != body["general-id"]
    notifications(notify, "ws")
    assert rows.count_documents({}) == expected

    # server-app's delete of a finished report; again when there is nothing left.
    for _ in range(2):
        status, _, b = raw(api, "DELETE", f"/reports/{table}")
        assert status == 200 and json.loads(b)["ok"] == 1.0, b
    assert table not in reports_db.list_collection_names()


def test_empty_reports_warn_bad_rules_mark_error_and_pivots_join(
        names, amqp, mongo, reports_db, workers, apis):
    seed(mongo, n_mine=0, n_other=5)
    notify, api = start_stack(names, mongo, reports_db, workers, apis, qtd=7)
    empty = server_app_report(mongo, "general", "Servers", [])
    status, _ = api.request("POST", "/reports/general", {
        "report_id": empty, "component": "Servers", "filters": rules(),
        "owner_user": str(OWNER)})
    assert status == 200
    _, ws = notifications(notify, "ws")[-1]
    assert ws["notify"]["type"] == "info"
    doc = mongo["reports"].find_one({"_id": ObjectId(empty)})
    assert doc["status"] == "warning" and doc["msg"] == "This report is empty"

    # Rules report-app could not read: 422 naming the rule, and server-app's report says why.
    bad = server_app_report(mongo, "general", "Servers", [])
    status, body = api.request("POST", "/reports/general", {
        "report_id": bad, "component": "Servers", "owner_user": str(OWNER),
        "filters": rules({"field": "name", "filter": "x", "typ": "regexp"})})
    assert status == 422 and body["field"] == "filters[0].typ", body
    doc = mongo["reports"].find_one({"_id": ObjectId(bad)})
    assert doc["status"] == "error" and "filters[0].typ" in doc["msg"], doc
    status, body = api.request("POST", "/reports/general", {
        "report_id": bad, "component": "Servers", "owner_user": str(OWNER),
        "filters": rules({"field": "roles._id", "filter": str(OTHER), "typ": "string",
                          "comparer": "equal"})})
    assert status == 422 and body["field"].startswith("filters[0]"), "the owner scope holds"

    # A pivot: clients -> systems -> applications -> servers, each level the owner's.
    client = mongo["clients"].insert_one({"name": "ACME", "active": True,
                                          "roles": [{"_id": OWNER}]}).inserted_id
    mongo["clients"].insert_one({"name": "Theirs", "roles": [{"_id": OTHER}]})
    system = mongo["systems"].insert_one({"name": "Billing", "clients": [{"_id": client}],
                                          "roles": [{"_id": OWNER}]}).inserted_id
    apps = mongo["applications"].insert_many([
        {"name": f"app-{i}", "system": [{"_id": system}], "roles": [{"_id": OWNER}]}
        for i in range(3)]).inserted_ids
    mongo["servers"].insert_many([
        {"hostname": f"srv-{i}", "applications": [{"_id": apps[i % 3]}], "active": True,
         "ipv4_private": f"10.1.0.{i}", "roles": [{"_id": OWNER}]} for i in range(9)])
    level = {"enabled": True, "filters": []}
    spec = json.dumps({"clients": level, "systems": level, "applications": level,
                       "servers": level}, indent=2)
    pivot = server_app_report(mongo, "pivot", None, spec)
    status, body = api.request("POST", "/reports/pivot", {
        "report_id": pivot, "filters": spec, "owner_user": str(OWNER), "component": None})
    assert status == 200 and list(body) == ["filter", "pivot-id", "_id", "component"], body
    _, ws = notifications(notify, "ws")[-1]
    assert ws["notify"]["type"] == "success", ws
    rows = list(reports_db[f"{pivot}_pivot"].find({}))
    assert len(rows) == 9 and {r["name"] for r in rows} == {"ACME"}
    assert {r["servers"]["hostname"] for r in rows} == {f"srv-{i}" for i in range(9)}
    doc = mongo["reports"].find_one({"_id": ObjectId(pivot)})
    assert doc["status"] == "finished" and "servers" in doc["columns"], doc
    status, h, inv = raw(api, "GET", f"/reports/{pivot}_pivot", accept="text/inventory")
    assert inv.count(b"ansible_host=10.1.0.") == 9, inv


def test_chunks_too_large_for_a_message_are_stored_by_the_report_task(
        names, amqp, mongo, reports_db, workers, apis):
    # 300 rows of ~8 KiB each in one 300-row chunk: 2.4 MB, more than one chunk message
    # carries (1 MiB). The report task stores those rows itself and the chunk's message says how
    # many; the report is complete and nothing is stored twice.
    expected = seed(mongo, n_mine=600, n_other=10)
    mongo["servers"].update_many({}, {"$set": {"notes": "n" * 8000}})
    notify, api = start_stack(names, mongo, reports_db, workers, apis, qtd=300)
    active = {"field": "active", "filter": "true", "comparer": "equal", "typ": "boolean"}
    report_id = server_app_report(mongo, "general", "Servers", [active])
    status, body = api.request("POST", "/reports/general", {
        "report_id": report_id, "component": "Servers", "filters": rules(active),
        "owner_user": str(OWNER)})
    assert status == 200, body
    notifications(notify, "ws")
    doc = mongo["reports"].find_one({"_id": ObjectId(report_id)})
    assert doc["status"] == "finished", doc
    rows = reports_db[f"{report_id}_general"]
    assert rows.count_documents({}) == expected
    assert len(rows.find_one({})["notes"]) == 8000
    uploads = list(mongo["celery_taskmeta"].find({"name": "maestro.report.upload"}))
    assert sum(json.loads(u["result"])["rows"] for u in uploads) == expected, uploads
