"""Deliveries by real Celery workers and beat against the real Redis and a real receiver on loopback
(PostgreSQL only: the worker processes share the test database)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook as Verifier

from eventlog.models import Event
from eventlog.services import new_event_id, publish
from organizations.models import AuditEvent
from tests.support.webhook_receiver import Receiver
from tests.support.workers import REPO, serve_worker_pool, wait_for
from webhooks.models import Delivery, Webhook

URL = "/api/v1/webhooks/"
DS = "/api/v1/data-sources/"
LOOPBACK = "127.0.0.0/8,::1/128"
DISABLE_AFTER = 4
WORKER_ENV = {
    "DATASOURCE_ALLOWED_NETWORKS": LOOPBACK,
    "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "WEBHOOK_RETRY_MAX_SECONDS": "0.8",
    "WEBHOOK_MAX_ATTEMPTS": "8",
    "WEBHOOK_DISABLE_AFTER_FAILURES": str(DISABLE_AFTER),
    "WEBHOOK_TIMEOUT_SECONDS": "3",
    "WEBHOOK_SWEEP_SECONDS": "0.5",
    # beat's other entries stay out of the way of these tests
    "SCHEMA_REFRESH_TICK_SECONDS": "3600",
    "HEALTH_CHECK_TICK_SECONDS": "3600",
}


@pytest.fixture
def workers(transactional_db, tmp_path, allow_loopback):
    yield from serve_worker_pool(tmp_path, extra_env=WORKER_ENV)


@pytest.fixture
def beat(workers, tmp_path):
    log = tmp_path / "beat.log"
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO",
                             "-s", str(tmp_path / "beat-schedule")], cwd=REPO, env=workers.env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: "webhooks.sweep" in log.read_text() or proc.poll() is not None, 30), log.read_text()
        assert proc.poll() is None, log.read_text()
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def _webhook(api, receiver, events=("data_source.updated",)) -> tuple[int, str]:
    response = api.post(URL, {"url": receiver.url(), "events": list(events)}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"], response.json()["secret"]


def _publish(org, type="data_source.updated", **data) -> Event:
    with transaction.atomic():
        return publish(organization_id=org.pk, type=type, data=data)


def _attempts(api, pk: int) -> list[list[tuple]]:
    results = api.get(f"{URL}{pk}/deliveries/").json()["results"]
    return [[(a["number"], a["status_code"], a["outcome"]) for a in d["attempts"]] for d in results]


def test_a_change_delivers_one_signed_event_and_a_rollback_nothing(workers, api, org, receiver, _file_root):
    workers.start(1)
    pk, secret = _webhook(api, receiver)
    with sqlite3.connect(os.path.join(_file_root, "s.db")) as db:
        db.execute("CREATE TABLE t (id INTEGER)")
    ds = api.post(f"{DS}?test_connection=false", {"name": "S", "type": "sqlite", "connection": {"path": "s.db"}},
                  format="json").json()
    with pytest.raises(RuntimeError), transaction.atomic():
        publish(organization_id=org.pk, type="data_source.updated", data={"id": ds["id"], "rolled": "back"})
        raise RuntimeError("the change fails after publishing")
    changed = api.patch(f"{DS}{ds['id']}/", {"description": "now documented"}, format="json")
    assert changed.status_code == 200, changed.json()
    assert wait_for(lambda: receiver.count() >= 1)
    time.sleep(1.0)  # anything else would have arrived by now
    assert receiver.count() == 1, [r.body for r in receiver.requests]
    request = receiver.requests[0]
    payload = Verifier(secret).verify(request.body, request.headers)
    assert payload["type"] == "data_source.updated" and payload["data"]["data_source"]["id"] == ds["id"]
    assert payload["data"]["changed"] == ["description"] and payload["id"] == request.headers["webhook-id"]
    assert Event.objects.filter(public_id=payload["id"]).exists()
    assert not Event.objects.filter(data__rolled="back").exists()
    assert wait_for(lambda: _attempts(api, pk) == [[(1, 204, "succeeded")]])


def test_two_failures_then_success_three_requests_then_a_redelivery(workers, api, org):
    workers.start(1)
    with Receiver(fail_first=2) as receiver:
        pk, secret = _webhook(api, receiver)
        event = _publish(org, id=7, changed=["name"])
        assert wait_for(lambda: receiver.count() >= 3)
        assert wait_for(lambda: Delivery.objects.get().status == "succeeded")
        time.sleep(1.0)
        assert receiver.count() == 3
        assert {r.headers["webhook-id"] for r in receiver.requests} == {event.public_id}
        for request in receiver.requests:
            Verifier(secret).verify(request.body, request.headers)
        assert _attempts(api, pk) == [[(1, 500, "failed"), (2, 500, "failed"), (3, 204, "succeeded")]]
        delivery = api.get(f"{URL}{pk}/deliveries/").json()["results"][0]
        again = api.post(f"{URL}{pk}/deliveries/{delivery['id']}/redeliver/")
        assert again.status_code == 202, again.json()
        assert wait_for(lambda: receiver.count() == 4)
        assert receiver.requests[3].headers["webhook-id"] == event.public_id
        assert wait_for(lambda: len(_attempts(api, pk)[0]) == 4)
        assert _attempts(api, pk)[0][3] == (4, 204, "succeeded")
        assert Webhook.objects.get(pk=pk).consecutive_failures == 0


def test_disabled_after_consecutive_failures_with_an_audit_event(workers, api, org):
    workers.start(1)
    with Receiver(fail_first=1000, fail_status=503) as receiver:
        pk, _ = _webhook(api, receiver)
        _publish(org, id=1)
        assert wait_for(lambda: not Webhook.objects.get(pk=pk).active)
        time.sleep(1.5)
        assert receiver.count() == DISABLE_AFTER
    webhook = Webhook.objects.get(pk=pk)
    assert webhook.disabled_at and "4 consecutive failed" in webhook.disabled_reason
    audit = AuditEvent.objects.get(target_type="webhooks.webhook", target_id=pk, action="disable")
    assert audit.actor_repr == "system:webhooks"
    assert Delivery.objects.get().status == "failed"
    body = api.get(f"{URL}{pk}/").json()
    assert body["active"] is False and body["consecutive_failures"] == DISABLE_AFTER
    enabled = api.patch(f"{URL}{pk}/", {"active": True}, format="json").json()
    assert enabled["active"] is True and enabled["consecutive_failures"] == 0 and enabled["disabled_at"] is None


def test_beat_sweeps_events_left_undispatched_and_stale_claims(beat, workers, api, org, receiver):
    workers.start(1)
    pk, secret = _webhook(api, receiver)
    # A process died after its commit: the event is in the outbox, no listener ran.
    lost = Event.objects.create(organization=org, public_id=new_event_id(), type="data_source.updated",
                                data={"id": 3})
    assert wait_for(lambda: receiver.count() >= 1, 30)
    assert receiver.requests[0].headers["webhook-id"] == lost.public_id
    Verifier(secret).verify(receiver.requests[0].body, receiver.requests[0].headers)
    # A worker died mid-delivery: its claim went stale.
    stale = Event.objects.create(organization=org, public_id=new_event_id(), type="data_source.updated",
                                 data={"id": 4}, dispatched_at=timezone.now())
    Delivery.objects.create(webhook_id=pk, event=stale, status="delivering", attempts_allowed=8,
                            claimed_until=timezone.now() - timedelta(seconds=1))
    assert wait_for(lambda: receiver.count() >= 2, 30)
    assert receiver.requests[1].headers["webhook-id"] == stale.public_id
    time.sleep(1.5)
    assert receiver.count() == 2
    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}
