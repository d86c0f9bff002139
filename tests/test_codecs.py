"""Python Celery 5.7 clients with `task_serializer` msgpack or yaml and with `task_compression`:
the Rust worker runs their messages, re-sends a retry in the serializer and compression it came
in (Python kombu reads it), dead-letters a decompression bomb without running out of memory and
still refuses pickle."""
import base64
import datetime
import json
import subprocess
import sys
import zlib

import pika
import pytest
from kombu.compression import decompress, encoders
from celery.security.certificate import Certificate, FSCertStore
from celery.security.key import PrivateKey
from celery.security.serialization import SecureSerializer
from kombu.serialization import loads

from conftest import BROKER_URL, ROOT, backend_url, wait_for
from test_catalogue_http import Recorder, start_worker

# kombu's compression aliases (`compression=` / `task_compression`) and the header each writes.
COMPRESSIONS = {
    "zlib": "application/x-gzip",
    "gzip": "application/x-gzip",
    "bzip2": "application/x-bz2",
    "brotli": "application/x-brotli",
    "lzma": "application/x-lzma",
    "zstd": "application/zstd",
}
CONTENT_TYPES = {"json": "application/json", "msgpack": "application/x-msgpack",
                 "yaml": "application/x-yaml"}


def test_the_venv_has_every_compression_kombu_knows():
    # brotli and backports.zstd are optional in kombu: without them these are not sent at all.
    assert set(COMPRESSIONS.values()) <= set(encoders())


@pytest.mark.parametrize("serializer", ["msgpack", "yaml"])
def test_a_msgpack_or_yaml_client_is_run(names, workers, celery_app, serializer):
    q = names.queue()
    workers([q])
    celery_app.conf.task_serializer = serializer
    args = ["ünïcødé ✓ 𝄞", 0, -1, 2**63 - 1, -2**63, 1.5, 0.1, 1e20, None, True, False, [],
            {"nested": [1, {"deep": [None, "x"]}]}, b"bytes", b"\xff\x00", ""]
    kwargs = {"big": 2**64 - 1, "text": "line\nbreak \"quoted\"", "ключ": "значение",
              "list": [1.25, "a", [True]]}
    if serializer == "yaml":
        # What only yaml carries: integers of any size, times, dates; and strings YAML 1.2
        # would read as numbers.
        args += [2**100, datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc),
                 datetime.date(2024, 1, 2), "1e3", "0o17", "yes", "017"]
    result = celery_app.send_task("maestro.echo", args=args, kwargs=kwargs, queue=q).get(timeout=30)
    # The worker's result is JSON: bytes and times come back through kombu's JSON envelopes.
    assert result == [args, kwargs]


def test_every_compression_is_run(names, workers, celery_app):
    q = names.queue()
    workers([q])
    args = ["compressed ✓", 2**70, {"a": [1, 2, 3]}, "padding " * 200]
    sent = []
    for serializer in ["json", "msgpack", "yaml"]:
        for compression in COMPRESSIONS:
            big = 2**70 if serializer != "msgpack" else 2**60  # msgpack has no larger integers
            a = [serializer, compression, big] + args[2:]
            r = celery_app.send_task("maestro.echo", args=a, queue=q, serializer=serializer,
                                     compression=compression)
            sent.append((r, a))
    for r, a in sent:
        assert r.get(timeout=30) == [a, {}], a[:2]


def test_task_compression_setting(names, workers, celery_app):
    q = names.queue()
    workers([q])
    celery_app.conf.task_serializer = "msgpack"
    celery_app.conf.task_compression = "zstd"
    assert celery_app.send_task("maestro.echo", args=["zstd"], queue=q).get(timeout=30) == [["zstd"], {}]


@pytest.fixture
def hook():
    r = Recorder([500] * 6)
    yield r
    r.stop()


def test_a_retry_goes_out_in_the_serializer_and_compression_it_came_in(names, workers, mongo,
                                                                       mongo_app, amqp, hook):
    """maestro.webhook retries after a 500. The worker is stopped once every first attempt was
    answered, so the retries wait in the task queue: each is read here with Python kombu, then
    published back for a new worker, which delivers them."""
    formats = [("msgpack", "bzip2"), ("yaml", "zstd"), ("json", "brotli"), ("msgpack", "lzma"),
               ("yaml", "zlib"), ("msgpack", None)]
    q = names.queue("webhook")
    w = start_worker(workers, q, mongo)
    payload = {"text": "ünï", "big": 2**62, "list": [1.5, None, True]}
    sent = {}
    for serializer, compression in formats:
        r = mongo_app.send_task("maestro.webhook", queue=q, serializer=serializer,
                                compression=compression,
                                kwargs={"url": f"{hook.url}/hook", "method": "POST",
                                        "payload": payload})
        sent[r.id] = (serializer, compression, r)
    wait_for(lambda: len(hook.requests()) == len(formats), 30, what="every first attempt")
    # Each retry is published (confirmed) before its delivery is acknowledged; a graceful stop
    # waits for the runs in flight.
    w.stop()
    wait_for(lambda: amqp.ready(q) == len(formats), 30, what="the retries back in the queue")
    retries = amqp.get_all(q)
    assert len(retries) == len(formats)
    for _, props, body in retries:
        serializer, compression, _ = sent[props.correlation_id]
        assert props.content_type == CONTENT_TYPES[serializer]
        assert props.headers.get("compression") == (COMPRESSIONS[compression] if compression else None)
        assert props.headers["retries"] == 1
        raw = decompress(body, props.headers["compression"]) if compression else body
        args, kwargs, embed = loads(raw, props.content_type, props.content_encoding,
                                    accept=[props.content_type])
        assert args == [] and kwargs == {"url": f"{hook.url}/hook", "method": "POST",
                                         "payload": payload}, (serializer, compression)
        amqp.publish(q, body, props)
    start_worker(workers, q, mongo)
    for serializer, compression, r in sent.values():
        assert r.get(timeout=60) == {"status": 200, "attempts": 2}, (serializer, compression)
    assert len(hook.requests()) == 2 * len(formats)


def test_a_decompression_bomb_is_dead_lettered_and_pickle_still_refused(names, workers,
                                                                        celery_app, amqp):
    q = names.queue()
    w = workers([q], args=["--max-body-bytes", "65536"])
    # 1 KB on the wire, 10 MB inflated.
    bomb = zlib.compress(b'[["' + b"0" * 10_000_000 + b'"], {}, null]', 9)
    assert len(bomb) < 65536
    headers = {"lang": "py", "task": "maestro.echo", "id": "bomb-1", "compression": "application/x-gzip"}
    amqp.publish(q, bomb, pika.BasicProperties(content_type="application/json",
                                               content_encoding="utf-8", headers=headers,
                                               correlation_id="bomb-1", message_id="bomb"))
    celery_app.send_task("maestro.echo", args=["pickled"], queue=q, serializer="pickle",
                         task_id="pickle-1")
    wait_for(lambda: amqp.ready(names.dead_queue) == 2, 30, what="two dead letters")
    dead = {props.correlation_id: (props, body) for _, props, body in amqp.get_all(names.dead_queue)}
    props, body = dead["bomb-1"]
    assert props.headers["x-maestro-dead-reason"] == "oversized"
    assert props.headers["x-maestro-dead-detail"] == (
        "the body decompressed (application/x-gzip) is more than the limit of 65536 bytes")
    assert body == bomb
    props, _ = dead["pickle-1"]
    assert props.headers["x-maestro-dead-reason"] == "unsupported-content-type"
    assert "application/x-python-serialize" in props.headers["x-maestro-dead-detail"]
    # The worker is up and runs a compressed message within the limit.
    assert w.proc.poll() is None, w.log()
    r = celery_app.send_task("maestro.echo", args=["0" * 50_000], queue=q, compression="gzip")
    assert r.get(timeout=30) == [["0" * 50_000], {}]


AUTH = ROOT / "broker" / "tests" / "fixtures" / "auth"

# A Python Celery 5.7 producer with `app.setup_security()` (its own process: setup_security
# disables kombu's other serializers process-wide).
SIGNED_PRODUCER = """
import json, sys
from celery import Celery
broker, backend, queue, key, cert, store, parked_queue = sys.argv[1:8]
app = Celery("signed", broker=broker, backend=backend)
app.conf.update(security_key=key, security_certificate=cert, security_cert_store=store,
                task_serializer="auth", accept_content=["auth"], result_accept_content=["json"])
app.setup_security()
link = app.signature("maestro.echo", args=["linked"], queue=queue)
link_id = link.freeze().id
parked = app.signature("maestro.echo", args=["parked"], queue=parked_queue)
r = app.send_task("maestro.echo", args=["signed", 1], queue=queue, link=[link, parked])
print(json.dumps([r.get(timeout=30), app.AsyncResult(link_id).get(timeout=30)]))
"""


def test_signed_tasks_run_and_unsigned_or_forged_ones_are_refused(names, workers, amqp, mongo,
                                                                   celery_app):
    q = names.queue()
    parked = names.queue("parked")  # the second link's queue, which nobody consumes
    workers([q], args=["--result-backend", backend_url(mongo), "--accept-content", "auth",
                       "--security-cert-store", str(AUTH / "producer.pem"),
                       "--security-key", str(AUTH / "producer.key"),
                       "--security-certificate", str(AUTH / "producer.pem")])
    out = subprocess.run([sys.executable, "-c", SIGNED_PRODUCER, BROKER_URL, backend_url(mongo), q,
                          str(AUTH / "producer.key"), str(AUTH / "producer.pem"),
                          str(AUTH / "producer.pem"), parked],
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    # The link was sent by the worker, signed with its key: this worker reads nothing else.
    assert json.loads(out.stdout) == [[["signed", 1], {}], [[[["signed", 1], {}], "linked"], {}]]
    # Python's auth serializer checks what the Rust worker signed.
    ((_, props, body),) = wait_for(lambda: amqp.get_all(parked), 10, what="the parked link")
    assert props.content_type == "application/data"
    store = SecureSerializer(None, None, FSCertStore(str(AUTH / "producer.pem")), "sha256")
    assert store.deserialize(body)[0] == [[["signed", 1], {}], "parked"]
    # Unsigned: refused as Celery's ContentDisallowed. Forged: one byte of the body changed.
    celery_app.send_task("maestro.echo", args=["unsigned"], queue=q, task_id="unsigned-1")
    signed = SecureSerializer(PrivateKey((AUTH / "producer.key").read_text()),
                              Certificate((AUTH / "producer.pem").read_text()), None, "sha256")
    body = base64.b64decode(signed.serialize([["forged"], {}, {}]))
    forged = base64.b64encode(body.replace(b"forged", b"F0rged"))
    headers = {"lang": "py", "task": "maestro.echo", "id": "forged-1"}
    amqp.publish(q, forged, pika.BasicProperties(content_type="application/data",
                                                 content_encoding="utf-8", headers=headers,
                                                 correlation_id="forged-1"))
    wait_for(lambda: amqp.ready(names.dead_queue) == 2, 30, what="two dead letters")
    dead = {p.correlation_id: p.headers for _, p, _ in amqp.get_all(names.dead_queue)}
    assert dead["unsigned-1"]["x-maestro-dead-reason"] == "unsupported-content-type"
    assert "refusing to deserialize untrusted content" in dead["unsigned-1"]["x-maestro-dead-detail"]
    assert dead["forged-1"]["x-maestro-dead-reason"] == "untrusted"
    assert "Bad signature" in dead["forged-1"]["x-maestro-dead-detail"]
