"""Reports end to end: maestro-api -> maestro-worker -> MongoDB, the `finished` notification
only after every chunk is stored (a chord), empty reports, pivots.

The notification task goes to this run's notify queue, which the test reads itself: when it
arrives, every row must already be in the report's collection.
"""
import csv
import io
import json
import time
import urllib.request

import pika
import pytest

from conftest import AMQP_URL, MONGODB_URI, wait_for
from test_api import AUTH, apis  # noqa: F401  (the fixture)


@pytest.fixture
def reports_db(mongo):
    db = mongo.client[f"{mongo.name}_r"]
    yield db
    mongo.client.drop_database(db.name)


def next_notification(queue, timeout=60):
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        ch = conn.channel()
        deadline = time.time() + timeout
        while time.time() < deadline:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is not None:
                args, kwargs, _embed = json.loads(body)
                next_notification.headers = props.headers
                return props.headers["task"], kwargs
            time.sleep(0.05)
        raise AssertionError(f"no notification on {queue} within {timeout}s")
    finally:
        conn.close()


def seed(mongo, n_mine=2000, n_other=50):
    servers = mongo["servers"]
    docs = []
    for i in range(n_mine):
        docs.append({"_id": f"s{i}", "hostname": f"web-{i}",
                     "status": "active" if i % 4 else "inactive",
                     "ipv4": None if i % 10 == 0 else f"10.0.{i // 250}.{i % 250}",
                     "app": f"a{i % 7}", "roles": [{"_id": "u1", "role": 7}]})
    for i in range(n_other):
        docs.append({"_id": f"o{i}", "hostname": f"other-{i}", "status": "active",
                     "roles": [{"_id": "u2", "role": 7}]})
    for start in range(0, len(docs), 500):
        servers.insert_many(docs[start:start + 500])
    mongo["applications"].insert_many(
        [{"_id": f"a{i}", "name": f"app-{i}", "roles": [{"_id": "u1"}]} for i in range(7)])
    return sum(1 for i in range(n_mine) if i % 4)


def start_stack(names, mongo, reports_db, workers, apis, qtd=300):
    q = names.queue("report")
    notify = names.queue("notify")
    routes = ",".join(f"{t}={q}" for t in ["maestro.report.general", "maestro.report.pivot",
                                          "maestro.report.upload", "maestro.report.finish"])
    routes += f",maestro.notify={notify}"
    backend = f"{MONGODB_URI.rstrip('/')}/{mongo.name}"
    worker = workers([q], args=["--result-backend", backend, "--mongo-uri", MONGODB_URI,
                                "--mongo-database", mongo.name,
                                "--reports-database", reports_db.name,
                                "--insert-qtd", str(qtd), "--routes", routes])
    api = apis(["--routes", routes, "--result-backend", backend,
                    "--mongo-uri", MONGODB_URI, "--mongo-database", mongo.name,
                    "--reports-database", reports_db.name])
    # The notify queue exists before anything is sent to it.
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    conn.channel().queue_declare(notify, durable=True)
    conn.close()
    return q, notify, worker, api


def test_general_report_finishes_after_every_chunk(names, amqp, mongo, reports_db, workers,
                                                  apis):
    expected = seed(mongo)
    q, notify, worker, api = start_stack(names, mongo, reports_db, workers, apis)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    status, body = api.request("POST", "/reports/general", {
        "report_id": "r1", "filters": json.dumps({"status": "active"}),
        "component": "servers", "owner_user": "u1"},
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert status == 202, body
    task, kwargs = next_notification(notify)
    # One trace from the API request through the report, its chunks' chord and the
    # notification: same trace id, each hop a new span.
    tp = next_notification.headers["traceparent"].split("-")
    assert tp[1] == trace_id and tp[2] != "00f067aa0ba902b7", tp
    rows_when_notified = reports_db["r1_general"].count_documents({})
    assert task == "maestro.notify"
    assert kwargs["channel"] == "ws" and kwargs["owner_id"] == "u1"
    assert kwargs["notify"]["type"] == "success", kwargs
    assert rows_when_notified == expected, "finished arrived before the last chunk was stored"
    assert str(expected) in kwargs["notify"]["msg"]

    # Only the owner's active items; the summary counts filled cells per column.
    assert reports_db["r1_general"].count_documents({"roles._id": {"$ne": "u1"}}) == 0
    assert reports_db["r1_general"].count_documents({"status": {"$ne": "active"}}) == 0
    summary = reports_db["reports"].find_one({"_id": "r1_general"})
    assert summary["status"] == "finished" and summary["rows"] == expected
    cols = {c["name"]: c["filled"] for c in summary["columns"]}
    assert cols["hostname"] == expected
    assert cols["ipv4"] == sum(1 for i in range(2000) if i % 4 and i % 10)

    # The report task's own result names the chord's callback, which succeeded.
    def report_done():
        s, b = api.request("GET", f"/tasks/{body['task_id']}")
        return b if b.get("state") == "SUCCESS" else None
    result = wait_for(report_done, 30, interval=0.2, what="report task SUCCESS")["result"]
    assert result["chunks"] == -(-expected // 300)
    finish = mongo["celery_taskmeta"].find_one({"_id": result["finish_task_id"]})
    assert finish and finish["status"] == "SUCCESS"

    # Paged reads (default page MAESTRO_REPORT_RESULT_QTD) and streamed exports.
    status, page = api.request("GET", "/reports/r1/general?skip=10&limit=100")
    assert status == 200, page
    assert page["status"] == "finished" and page["rows"] == expected
    assert len(page["items"]) == 100 and page["skip"] == 10
    assert {c["name"] for c in page["columns"]} >= {"hostname", "ipv4", "status", "roles"}
    assert api.request("GET", "/reports/r1/general?limit=100000")[0] == 422
    assert api.request("GET", "/reports/nope/general")[0] == 404
    assert api.request("GET", "/reports/r1/weekly")[0] == 422
    req = urllib.request.Request(api.base + "/reports/r1/general/export?format=csv",
                                 headers=AUTH)
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/csv")
        lines = list(csv.reader(io.TextIOWrapper(r, encoding="utf-8")))
    assert len(lines) == expected + 1
    assert lines[0][0] == "_id" and "hostname" in lines[0]
    col = lines[0].index("hostname")
    assert all(row[col].startswith("web-") for row in lines[1:])
    req = urllib.request.Request(api.base + "/reports/r1/general/export?format=json",
                                 headers=AUTH)
    with urllib.request.urlopen(req, timeout=30) as r:
        exported = json.load(r)
    assert len(exported) == expected and all(row["status"] == "active" for row in exported)

    # Running it again rebuilds the collection rather than appending.
    status, body = api.request("POST", "/reports/general", {
        "report_id": "r1", "filters": {"status": "active"},
        "component": "servers", "owner_user": "u1"})
    assert status == 202
    next_notification(notify)
    assert reports_db["r1_general"].count_documents({}) == expected


def test_empty_report_warns_and_pivot_joins(names, amqp, mongo, reports_db, workers, apis):
    seed(mongo, n_mine=40, n_other=0)
    q, notify, worker, api = start_stack(names, mongo, reports_db, workers, apis, qtd=7)
    status, _ = api.request("POST", "/reports/general", {
        "report_id": "empty", "filters": {"status": "gone"},
        "component": "servers", "owner_user": "u1"})
    assert status == 202
    _, kwargs = next_notification(notify)
    assert kwargs["notify"]["type"] == "warning"
    assert kwargs["notify"]["msg"] == "This report is empty"
    assert reports_db["empty_general"].count_documents({}) == 0

    status, body = api.request("POST", "/reports/pivot", {
        "report_id": "p", "component": "servers", "owner_user": "u1",
        "filters": {"pivot": [{"from": "applications", "local_field": "app",
                               "foreign_field": "_id", "as": "application"}]}})
    assert status == 202, body
    _, kwargs = next_notification(notify)
    assert kwargs["notify"]["type"] == "success"
    assert reports_db["p_pivot"].count_documents({}) == 40
    row = reports_db["p_pivot"].find_one({"_id": "s8"})
    assert row["application"]["name"] == "app-1"

    # A filter that would run code on the server fails the task, naming the operator.
    status, body = api.request("POST", "/tasks/maestro.report.general", {"kwargs": {
        "report_id": "x", "filters": {"$where": "sleep(100)"}, "component": "servers",
        "owner_user": "u1"}})
    assert status in (202, 422), body
    if status == 202:
        def failed():
            s, b = api.request("GET", f"/tasks/{body['task_id']}")
            return b if b.get("state") == "FAILURE" else None
        state = wait_for(failed, 30, interval=0.2, what="FAILURE")
        assert "$where" in json.dumps(state)
