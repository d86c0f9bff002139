"""The poison-message corpus (tests/poison/*.json) against a real maestro-worker: every file,
published as it describes, lands in the run's dead-letter queue with the reason it records, the
body unchanged; the worker stays up and still runs a good task. workers/tests/poison_corpus.rs
checks the same files against the worker's triage in `cargo test`."""
import datetime
import decimal
import json
import pathlib
import struct

import pika
import pika.data

from conftest import ROOT, amqp_params, wait_for

CORPUS = pathlib.Path(__file__).resolve().parent / "poison"
MAX_BODY_BYTES = 65536


def load_corpus():
    return {p.stem: json.loads(p.read_text()) for p in sorted(CORPUS.glob("*.json"))}


class Double(float):
    """A header value pika writes as an AMQP double (`d`), as py-amqp does for floats."""


def _encode_value(original):
    def encode_value(pieces, value):
        if isinstance(value, Double):
            pieces.append(struct.pack(">cd", b"d", float(value)))
            return 9
        return original(pieces, value)
    return encode_value


def header_value(v):
    """A corpus header value as the Python value pika encodes with the intended AMQP type."""
    if isinstance(v, dict) and "$amqp" in v:
        tag, value = v["$amqp"], v["value"]
        if tag == "d":
            return Double(value)  # "NaN" and "Infinity" parse too
        if tag == "x":
            return bytes.fromhex(value)
        if tag == "T":
            return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
        if tag == "D":
            return decimal.Decimal(value["value"]).scaleb(-value["scale"])
        raise ValueError(f"unknown $amqp tag {tag!r}")
    if isinstance(v, dict):
        return {k: header_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [header_value(x) for x in v]
    return v


def body_of(doc):
    if "body" in doc:
        return doc["body"].encode()
    if "body_hex" in doc:
        return bytes.fromhex(doc["body_hex"])
    return "".join(text * count for text, count in doc["body_parts"]).encode()


def properties_of(label, doc):
    p = doc["properties"]
    headers = doc["headers"]
    kwargs = {}
    if headers is not None:
        kwargs["headers"] = header_value(headers)
        if isinstance(headers.get("id"), str):
            kwargs["correlation_id"] = headers["id"]
    return pika.BasicProperties(content_type=p.get("content_type"),
                                content_encoding=p.get("content_encoding"),
                                delivery_mode=2, message_id=label, **kwargs)


def test_the_corpus_is_large_enough_and_well_formed():
    corpus = load_corpus()
    assert len(corpus) >= 40
    reasons = {d["expect"]["reason"] for d in corpus.values()}
    assert reasons == {"undecodable", "unsupported-content-type", "unknown-task", "oversized",
                       "untrusted"}
    for label, doc in corpus.items():
        assert doc["about"] and doc["expect"]["detail"], label
        body_of(doc)
        properties_of(label, doc)


def test_every_poison_message_is_dead_lettered_with_its_reason(names, workers, celery_app, amqp,
                                                               monkeypatch):
    # pika has no float type: teach it the double py-amqp would send.
    monkeypatch.setattr(pika.data, "encode_value", _encode_value(pika.data.encode_value))
    corpus = {k: d for k, d in load_corpus().items() if "broker_refuses" not in d}
    # Files with `accept` go to a worker reading only signed messages (its own key signs).
    q, signed_q = names.queue(), names.queue("signed")
    w = workers([q], args=["--max-body-bytes", str(MAX_BODY_BYTES)])
    auth = ROOT / "broker" / "tests" / "fixtures" / "auth"
    signed_w = workers([signed_q], args=[
        "--max-body-bytes", str(MAX_BODY_BYTES), "--accept-content", "auth",
        "--security-cert-store", str(auth / "producer.pem"),
        "--security-key", str(auth / "producer.key"),
        "--security-certificate", str(auth / "producer.pem")])
    queue_of = {label: signed_q if "accept" in doc else q for label, doc in corpus.items()}
    for label, doc in corpus.items():
        amqp.publish(queue_of[label], body_of(doc), properties_of(label, doc))
    wait_for(lambda: amqp.ready(names.dead_queue) == len(corpus), 60,
             what=f"{len(corpus)} poison messages dead-lettered")
    # The workers are still up and the plain one runs a good task after all of them.
    assert w.proc.poll() is None, w.log()
    assert signed_w.proc.poll() is None, signed_w.log()
    assert celery_app.send_task("maestro.echo", args=["alive"], queue=q).get(timeout=30) == [["alive"], {}]
    dead = amqp.get_all(names.dead_queue)
    by_label = {props.message_id: (props, body) for _, props, body in dead}
    assert sorted(by_label) == sorted(corpus)
    wrong = []
    for label, doc in corpus.items():
        props, body = by_label[label]
        want = doc["expect"]
        reason = props.headers.get("x-maestro-dead-reason")
        detail = props.headers.get("x-maestro-dead-detail", "")
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        if reason != want["reason"] or want["detail"] not in detail:
            wrong.append(f"{label}: {reason} ({detail!r}), expected {want['reason']} with {want['detail']!r}")
        if body != body_of(doc):
            wrong.append(f"{label}: the dead letter's body differs from what was published")
        if props.headers.get("x-maestro-dead-queue") != queue_of[label]:
            wrong.append(f"{label}: x-maestro-dead-queue is {props.headers.get('x-maestro-dead-queue')!r}")
    assert not wrong, "\n".join(wrong)
    assert amqp.ready(q) == 0 and amqp.ready(signed_q) == 0
    assert w.proc.poll() is None and signed_w.proc.poll() is None
    assert w.log().count("dead_lettered") + signed_w.log().count("dead_lettered") == len(corpus)
    assert "panicked" not in w.log() + signed_w.log()


def test_a_header_nested_thousands_deep_does_not_crash_the_worker(names, workers, celery_app,
                                                                  amqp):
    """lapin parses header tables recursively on its own thread before the worker sees the
    message; 300 levels used to overflow its stack and abort the process (and every worker
    that took the message after it). 15,000 levels (RabbitMQ's 128 KiB frame holds about
    19,000) now reach the worker, which settles the message and keeps running."""
    import sys
    import threading
    q = names.queue()
    w = workers([q])
    nested = {}
    for _ in range(15_000):
        nested = {"a": nested}
    headers = {"lang": "py", "task": "maestro.echo", "id": "deep-1", "deep": nested}
    props = pika.BasicProperties(content_type="application/json", content_encoding="utf-8",
                                 headers=headers, correlation_id="deep-1")
    errors = []

    def publish():
        # pika encodes tables recursively too: give it room.
        # A connection of its own: pika's are not to be shared across threads.
        sys.setrecursionlimit(100_000)
        try:
            conn = pika.BlockingConnection(amqp_params())
            try:
                conn.channel().basic_publish("", q, json.dumps([["deep"], {}, None]).encode(),
                                             props)
            finally:
                conn.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    old = threading.stack_size(512 << 20)
    try:
        t = threading.Thread(target=publish)
        t.start()
        t.join()
    finally:
        threading.stack_size(old)
    assert not errors, errors
    wait_for(lambda: amqp.ready(q) == 0 or w.proc.poll() is not None, 60,
             what="the deep message taken")
    assert w.proc.poll() is None, w.log()[-3000:]
    assert celery_app.send_task("maestro.echo", args=["alive"], queue=q).get(timeout=30) == [["alive"], {}]
    assert amqp.ready(q) == 0
    assert "overflowed" not in w.log()
