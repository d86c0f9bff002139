"""Results in MongoDB, in Celery's layout: Python Celery 5.7 clients with
result_backend='mongodb://host/db' read what the Rust worker stored."""
import json

import pytest

from conftest import backend_url, wait_for


def start(workers, names, mongo, *extra):
    q = names.queue()
    start.worker = workers([q], args=["--result-backend", backend_url(mongo), *extra])
    return q


def test_python_reads_results_and_failures(names, workers, mongo, mongo_app):
    q = start(workers, names, mongo)
    args = ["ünï", 2**62, 1.5, None, {"deep": [True]}]
    r = mongo_app.send_task("maestro.echo", args=args, kwargs={"k": "v"}, queue=q)
    assert r.get(timeout=30) == [args, {"k": "v"}]
    assert r.state == "SUCCESS"
    doc = mongo.celery_taskmeta.find_one({"_id": r.id})
    assert doc["status"] == "SUCCESS"
    assert isinstance(doc["result"], str)  # JSON text, as Celery's MongoDB backend stores it
    assert doc["date_done"] is not None and doc["children"] == []
    assert doc["name"] == "maestro.echo" and doc["queue"] == q
    assert doc.get("args") in (None, []) and doc.get("kwargs") in (None, {}), \
        "arguments only with --result-extended"

    f = mongo_app.send_task("maestro.fail", args=["stored failure"], queue=q)
    with pytest.raises(RuntimeError, match="stored failure"):
        f.get(timeout=30)
    assert f.state == "FAILURE"
    assert "RuntimeError: stored failure" in f.traceback


def test_extended_results_read_too(names, workers, mongo, mongo_app):
    mongo_app.conf.result_extended = True
    # Celery's result_extended is the worker's setting: it stores the arguments only then.
    q = start(workers, names, mongo, "--result-extended", "true")
    r = mongo_app.send_task("maestro.echo", args=[1, 2], queue=q)
    assert r.get(timeout=30) == [[1, 2], {}]
    assert r.name == "maestro.echo"
    assert r.args == [1, 2]
    assert r.queue == q


def test_started_state_when_asked(names, workers, mongo, mongo_app):
    q = start(workers, names, mongo, "--track-started", "true")
    r = mongo_app.send_task("maestro.sleep", args=[2], queue=q)
    wait_for(lambda: r.state == "STARTED", 15, what="STARTED stored")
    assert r.get(timeout=30) == 2
    assert r.state == "SUCCESS"


def test_ignore_result_stores_nothing(names, workers, mongo, mongo_app):
    q = start(workers, names, mongo)
    r = mongo_app.send_task("maestro.noop", queue=q, ignore_result=True)
    marker = mongo_app.send_task("maestro.echo", args=["after"], queue=q)
    assert marker.get(timeout=30) == [["after"], {}]
    assert mongo.celery_taskmeta.find_one({"_id": r.id}) is None


def test_a_success_is_never_overwritten_nor_run_again(names, workers, mongo, mongo_app):
    q = start(workers, names, mongo, "--log-level", "maestro_worker=debug")
    first = mongo_app.send_task("maestro.echo", args=["first"], queue=q)
    assert first.get(timeout=30) == [["first"], {}]
    # The same task id sent again (a duplicate publish): acknowledged, not run, result kept.
    again = mongo_app.send_task("maestro.echo", args=["second"], queue=q, task_id=first.id)
    marker = mongo_app.send_task("maestro.echo", args=["marker"], queue=q)
    assert marker.get(timeout=30) == [["marker"], {}]
    doc = mongo.celery_taskmeta.find_one({"_id": first.id})
    assert json.loads(doc["result"]) == [["first"], {}]
    assert again.id == first.id
    log = start.worker.log()
    assert "task_duplicate" in log
    assert log.count("task_started") == 2  # first and marker; the duplicate never ran


def test_duplicate_check_redelivered_runs_a_duplicate_publish_again(names, workers, mongo,
                                                                    mongo_app):
    # The operator's trade (--duplicate-check redelivered): no lookup for first deliveries, so
    # a duplicate publish runs again (its SUCCESS is still never overwritten).
    q = start(workers, names, mongo, "--duplicate-check", "redelivered",
              "--log-level", "maestro_worker=debug")
    first = mongo_app.send_task("maestro.echo", args=["first"], queue=q)
    assert first.get(timeout=30) == [["first"], {}]
    mongo_app.send_task("maestro.echo", args=["second"], queue=q, task_id=first.id)
    marker = mongo_app.send_task("maestro.echo", args=["marker"], queue=q)
    assert marker.get(timeout=30) == [["marker"], {}]
    log = start.worker.log()
    assert log.count("task_started") == 3 and "task_duplicate" not in log
    doc = mongo.celery_taskmeta.find_one({"_id": first.id})
    assert json.loads(doc["result"]) == [["first"], {}]


def test_results_expire_through_a_ttl_index(names, workers, mongo, mongo_app):
    q = start(workers, names, mongo, "--result-expires", "3600")
    r = mongo_app.send_task("maestro.noop", queue=q)
    assert r.get(timeout=30) is None
    info = mongo.celery_taskmeta.index_information()
    assert info["maestro_expires_at_ttl"]["expireAfterSeconds"] == 0
    assert "date_done_1" in info  # Celery's own index, made by the Python client, coexists
    doc = mongo.celery_taskmeta.find_one({"_id": r.id})
    assert 3590 <= (doc["expires_at"] - doc["date_done"]).total_seconds() <= 3610


def test_unreachable_mongodb_is_retried_and_shutdown_still_works(names, workers):
    q = names.queue()
    w = workers([q], args=["--result-backend", "mongodb://127.0.0.1:1/none?serverSelectionTimeoutMS=200"],
                ready=False)
    wait_for(lambda: w.log().count("result_store_unreachable") >= 2, 30, what="two attempts")
    assert w.stop(timeout=15) == 0


def test_a_result_too_large_to_store_fails_the_task_instead_of_rerunning_it(
        names, workers, mongo, mongo_app):
    # 5 MiB of JSON back from maestro.echo: over the 4 MiB the worker stores. Before, MongoDB's
    # refusal of an oversized document was retried, then the task was requeued and ran again,
    # for ever; now it is one FAILURE saying why.
    q = start(workers, names, mongo, "--log-level", "info,maestro_worker=debug")
    r = mongo_app.send_task("maestro.echo", args=["z" * (5 * 1024 * 1024)], queue=q)
    with pytest.raises(Exception, match="more than the 4194304 stored"):
        r.get(timeout=60)
    assert r.state == "FAILURE"
    doc = mongo.celery_taskmeta.find_one({"_id": r.id})
    assert "ResultNotStored" in doc["result"]
    wait_for(lambda: "result_not_stored" in start.worker.log(), 10, what="the log line")
    assert start.worker.log().count("task_started") == 1, "run once, not again"
