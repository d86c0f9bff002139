"""A Python Celery 5.7 app for interop tests: tasks a Python worker runs for Rust senders.
Broker from CELERY_BROKER_URL; results to INTEROP_BACKEND (default rpc://)."""
import os

from celery import Celery

app = Celery("interop", broker=os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
             backend=os.environ.get("INTEROP_BACKEND", "rpc://"))
# No remote control or events: the worker declares nothing but the queue it is given.
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
                worker_enable_remote_control=False, worker_send_task_events=False)


@app.task(name="interop.describe", bind=True)
def describe(self, *args, **kwargs):
    """Returns what the Python worker understood of the message it was sent."""
    r = self.request
    return {"args": list(args), "kwargs": kwargs, "id": r.id, "retries": r.retries,
            "eta": str(r.eta) if r.eta else None, "timelimit": list(r.timelimit or [None, None]),
            "root_id": r.root_id, "parent_id": r.parent_id}


@app.task(name="interop.wrap")
def wrap(x):
    """A Python step for canvas tests: wraps what it was given."""
    return {"got": x}
