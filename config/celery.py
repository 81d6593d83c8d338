"""The Celery application: background schema refreshes and the scheduler's tick.

Tasks carry the request id of whatever enqueued them (a message header, ``request_id``), so a
task's log lines share the id of the HTTP request (or beat tick) that caused them; the enqueue
time goes along too (``enqueued_at``) for the queue-lag metric.
"""

import logging
import os
import time
from datetime import datetime

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger("config.celery")

REQUEST_ID_HEADER = "request_id"
ENQUEUED_AT_HEADER = "enqueued_at"


@signals.setup_logging.connect
def _setup_logging(loglevel=None, **_kwargs):
    """Workers and beat log through Django's ``LOGGING`` (JSON or text, scrubbed, with request ids)
    instead of Celery's own format; ``--loglevel`` sets the root level."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


@signals.before_task_publish.connect
def _stamp_headers(headers=None, **_kwargs):
    from core.request_id import current_request_id

    if headers is None:
        return
    rid = current_request_id()
    if rid and not headers.get(REQUEST_ID_HEADER):
        headers[REQUEST_ID_HEADER] = rid
    headers[ENQUEUED_AT_HEADER] = time.time()


def _header(task, name: str):
    """A custom header: an attribute of the request on a worker, in ``request.headers`` when eager."""
    value = getattr(task.request, name, None)
    if value is None:
        value = (getattr(task.request, "headers", None) or {}).get(name)
    return value


def _queue_lag(task) -> float | None:
    """Seconds from enqueue (or from the ETA of a delayed retry) to start; None when unknown."""
    enqueued_at = _header(task, ENQUEUED_AT_HEADER)
    try:
        start = float(enqueued_at)
    except (TypeError, ValueError):
        return None
    eta = getattr(task.request, "eta", None)
    if eta:
        try:
            start = max(start, datetime.fromisoformat(str(eta)).timestamp())
        except ValueError:
            pass
    return max(0.0, time.time() - start)


_tokens: dict[str, object] = {}


@signals.task_prerun.connect
def _task_started(task_id=None, task=None, **_kwargs):
    from core import metrics
    from core.request_id import current_request_id, new_request_id, set_request_id

    # The enqueuing request's id; in an eager run, the request's own; else a new one for this run.
    rid = new_request_id(_header(task, REQUEST_ID_HEADER) or current_request_id())
    _tokens[task_id] = set_request_id(rid)
    lag = _queue_lag(task)
    if lag is not None:
        metrics.observe_task_queue_lag(task.name, lag)
    logger.info("task %s[%s] started", task.name, task_id,
                extra={"task": task.name, "task_id": task_id, "queue_lag_seconds": lag})


@signals.task_postrun.connect
def _task_finished(task_id=None, **_kwargs):
    from core.request_id import reset_request_id

    token = _tokens.pop(task_id, None)
    if token is not None:
        try:
            reset_request_id(token)  # type: ignore[arg-type]
        except ValueError:  # set in another context (should not happen): leave it
            pass
