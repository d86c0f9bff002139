"""Maestro's scheduled HTTP jobs, end to end: schedule documents exactly as server-app writes
them (`SchedulerBatchCreator.js` for a connection's scans, `DatacentersAttachReports.js` for a
datacenter's daily reports, a user's webhook with a chain), fired by maestro-beat as
`maestro.scheduler.run` on the `scheduler` route, run by a maestro-worker against a real
maestro-api with Maestro's private token.

What the test reads: the messages maestro-api enqueues (discovery scans and reports go to
this run's queues, which nothing consumes), the schedule documents (`run_immediately`
cleared, `total_run_count`, depleted ones `enabled: false` with a `msg`), the `events`
records server-app lists, and what a local HTTP receiver got.
"""
import json
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pika
import pytest
from bson import ObjectId

from conftest import AMQP_URL, MONGODB_URI, wait_for
from test_api import NOAUTH, SECRET, apis  # noqa: F401  (the fixture)
from test_beat import Beat

OWNER = ObjectId("5f0000000000000000000001")


class Receiver:
    """A local HTTP server recording every request: path, headers, JSON body."""

    def __init__(self):
        got = self.got = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                got.append((self.path, dict(self.headers), json.loads(self.rfile.read(n) or b"null")))
                body = json.dumps({"received": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self):
        return [p for p, _, _ in self.got]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def take(queue):
    """Every message on `queue`: (task, kwargs); none while the queue does not exist yet."""
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    out = []
    try:
        ch = conn.channel()
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            _args, kwargs, _embed = json.loads(body)
            out.append((props.headers["task"], kwargs))
    except pika.exceptions.ChannelClosedByBroker as e:
        if e.reply_code != 404:
            raise
        return out
    finally:
        if conn.is_open:
            conn.close()


def server_app_defaults(doc):
    """The fields server-app's Joi schema fills on every schedule it writes."""
    now = datetime.now(timezone.utc)
    base = {"_cls": "PeriodicTask", "total_run_count": 1, "crawling": True, "active": True,
            "enabled": True, "run_immediately": False, "method": "GET",
            "owner": {"_id": OWNER, "refs": "users", "email": "me@example.com"},
            "roles": [{"_id": OWNER, "refs": "users", "role": 7, "email": "me@example.com"}],
            "created_at": now, "updated_at": now}
    base.update(doc)
    return base


def events_of(mongo, schedule_id):
    """A schedule's run history, as server-app's `GET /scheduler/:id/events` reads it
    (app/reports/services/schedulerEvents.js)."""
    query = {"roles": {"$elemMatch": {"_id": schedule_id, "role": {"$gte": 1}}}}
    return list(mongo["events"].find(query))


def test_server_app_schedules_run_as_scheduler_app_ran_them(
        names, amqp, mongo, workers, apis, receiver, tmp_path):
    disc, report, sched = names.queue("discovery"), names.queue("report"), names.queue("scheduler")
    routes = (f"maestro.discovery.scan={disc},maestro.report.general={report},"
              f"maestro.scheduler.run={sched},maestro.notify={names.queue('notify')}")
    common = ["--mongo-uri", MONGODB_URI, "--mongo-database", mongo.name, "--routes", routes]
    api = apis(common)
    workers([sched], args=common + ["--discovery-uri", api.base, "--report-uri", api.base],
            env={"MAESTRO_SECRETJWT_PRIVATE": SECRET, "MAESTRO_NOAUTH": NOAUTH})

    # A connection and the schedule server-app made for its server-list scan (source null,
    # run_immediately, every 5 minutes); a disabled connection's schedule.
    conn = ObjectId()
    mongo["connections"].insert_one({"_id": conn, "provider": "AWS", "status": "enabled",
                                     "active": True, "process": {}})
    gone = ObjectId()
    mongo["connections"].insert_one({"_id": gone, "provider": "AWS", "status": "disabled",
                                     "active": True})
    # And one for a task AWS does not have (OpenStack's flavor-list, say a hand-edited
    # schedule): discovery refuses it, so it stops.
    crawl, dead, refused = ObjectId(), ObjectId(), ObjectId()
    for _id, c, task in ((crawl, conn, "server-list"), (dead, gone, "server-list"),
                         (refused, conn, "flavor-list")):
        mongo["schedulers"].insert_one(server_app_defaults({
            "_id": _id, "name": f"connections - {task} - {c} (1594634400000)",
            "method": "PUT", "period_type": "interval", "task": "connections",
            "run_immediately": True, "source": None, "interval": {"every": 5, "period": "minutes"},
            "endpoint": f"crawler/AWS/{c}/{task}",
            "link": {"name": "aws-prod", "_id": c, "task": task, "provider": "AWS"}}))

    # A datacenter's daily report, as `POST /datacenters/:id/analytics` made it.
    rep = ObjectId()
    rules = [{"field": "active", "filter": "true", "comparer": "equal", "typ": "boolean"}]
    mongo["reports"].insert_one({"_id": rep, "name": "DC aws-dc - Server", "report": "general",
                                 "component": "Servers", "filters": rules, "active": True,
                                 "owner": {"_id": OWNER, "refs": "users"}})
    daily = ObjectId()
    mongo["schedulers"].insert_one(server_app_defaults({
        "_id": daily, "name": f"DC {rep} - Servers", "method": "PATCH",
        "period_type": "interval", "task": "reports", "run_immediately": True,
        "source": "report", "interval": {"period": "days", "every": 1},
        "endpoint": "reports/general", "link": {"_id": str(rep), "report": "general"},
        "args": [{"key": "report_id", "value": str(rep)}, {"key": "owner_user", "value": OWNER}]}))

    # A user's webhook every 15 minutes (cron), chained to a second one after a second.
    chained = ObjectId()
    mongo["schedulers"].insert_one(server_app_defaults({
        "_id": chained, "name": "after the hook", "method": "POST", "period_type": "interval",
        "task": "webhook", "interval": {"every": 7, "period": "days"},
        "endpoint": f"{receiver.base}/chained", "args": [{"key": "step", "value": 2}]}))
    hook = ObjectId()
    mongo["schedulers"].insert_one(server_app_defaults({
        "_id": hook, "name": "ping hook", "method": "POST", "period_type": "cron",
        "task": "webhook", "run_immediately": True,
        "cron": {"second": 0, "minute": "*/15", "hour": "*", "day": "*", "week": "*",
                 "month": "*", "year": "*", "day_of_week": "*"},
        "endpoint": f"{receiver.base}/hook", "args": [{"key": "hello", "value": "world"}],
        "chain": [{"_id": str(chained), "name": "after the hook", "countdown": 1}]}))

    beat = Beat(names, tmp_path, mongo, 0, extra=["--routes", routes])
    try:
        # The connection's scan reached discovery (maestro-api) and was enqueued.
        scans = wait_for(lambda: take(disc) or None, 60, 0.2, "the scheduled scan")
        assert scans == [("maestro.discovery.scan",
                          {"provider": "aws", "conn_id": str(conn), "task": "server-list"})]
        s = wait_for(lambda: (d := mongo["schedulers"].find_one({"_id": crawl}))
                     and "run_immediately" not in d and d, 30, 0.2, "run_immediately cleared")
        assert s["total_run_count"] == 2 and s["enabled"] is True
        ev = wait_for(lambda: events_of(mongo, crawl) or None, 30, 0.2, "the scan's event")
        assert ev[0]["status"] == "success" and ev[0]["context"] == "scheduler"
        assert ev[0]["msg"] == f"Scheduler run - {s['name']}"
        assert ev[0]["description"]["msg"] == "In progress. server-list"
        assert ev[0]["roles"] == [{"_id": crawl, "refs": "scheduler", "role": 5}]

        # The disabled connection's schedule is depleted.
        d = wait_for(lambda: (x := mongo["schedulers"].find_one({"_id": dead}))
                     and x["enabled"] is False and x, 30, 0.2, "depleted")
        assert d["msg"] == f"Connection issue - {gone}"
        # The event is written after the schedule is disabled: wait for it too.
        ev_dead = wait_for(lambda: events_of(mongo, dead) or None, 30, 0.2, "depleted event")
        assert ev_dead[0]["status"] == "danger"
        r = wait_for(lambda: (x := mongo["schedulers"].find_one({"_id": refused}))
                     and x["enabled"] is False and x, 30, 0.2, "refused depleted")
        assert r["msg"].startswith("Refused by discovery: task: ") and "flavor-list" in r["msg"], r

        # The report job: server-app's stored rules and component joined the body.
        reports = wait_for(lambda: take(report) or None, 60, 0.2, "the scheduled report")
        task, kwargs = reports[0]
        assert task == "maestro.report.general"
        assert kwargs["report_id"] == str(rep) and kwargs["owner_user"] == str(OWNER)
        assert json.loads(kwargs["filters"]) == rules and kwargs["component"] == "Servers"

        # The webhook got the args, no private token; its chain ran after the countdown.
        wait_for(lambda: "/chained" in receiver.paths(), 60, 0.2, "the chained webhook")
        by_path = {p: (h, b) for p, h, b in receiver.got}
        headers, body = by_path["/hook"]
        assert body == {"hello": "world"}
        assert "Authorization" not in headers, "the private token stays inside Maestro"
        assert by_path["/chained"][1] == {"step": 2}
        hooked = events_of(mongo, hook)
        assert hooked and hooked[0]["description"] == {"received": True}
    finally:
        beat.kill()

    # Fired once each: nothing fires again before its interval.
    time.sleep(2)
    assert take(disc) == [] and take(report) == []
    assert receiver.paths().count("/hook") == 1 and receiver.paths().count("/chained") == 1
