"""Health checks end to end: real Celery beat and worker processes (PostgreSQL as the application
database, Redis as the broker) check a real PostgreSQL source (the server on 127.0.0.1:5432) reached
through a TCP forwarder the test cuts and restores. The source flips to ``failing`` after K checks and
back to ``healthy`` after recovery, with exactly one ``data_source.health_changed`` event each time,
each delivered once, signed, to a webhook receiver on loopback (a Standard Webhooks verifier checks it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from standardwebhooks import Webhook as Verifier

from datasources.models import DataSource, HealthCheck
from eventlog.models import Event
from organizations.models import Organization
from tests.conftest import require_service
from tests.support.forwarding import Forwarder
from tests.support.webhook_receiver import Receiver
from tests.support.workers import REPO, serve_worker_pool, wait_for

URL = "/api/v1/data-sources/"
EVENT = "data_source.health_changed"
K = 2


@pytest.fixture
def workers(allow_loopback, transactional_db, tmp_path, settings):
    settings.HEALTH_CHECK_MIN_INTERVAL = 1
    yield from serve_worker_pool(tmp_path, extra_env={
        "HEALTH_CHECK_MIN_INTERVAL": "1", "HEALTH_CHECK_TICK_SECONDS": "0.5",
        "SCHEMA_REFRESH_TICK_SECONDS": "3600", "WEBHOOK_SWEEP_SECONDS": "1",
        "DATASOURCE_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128", "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    })


@pytest.fixture
def beat(workers, tmp_path):
    """``celery beat`` with the workers' environment (their queue, database and broker)."""
    log = tmp_path / "beat.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO",
         "--schedule", str(tmp_path / "beat-schedule")],
        cwd=REPO, env=workers.env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    yield log
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


class Link:
    """A forwarder to the local PostgreSQL server on a fixed loopback port, cut and restored at will."""

    def __init__(self) -> None:
        self.forwarder: Forwarder | None = Forwarder(("127.0.0.1", 0), ("127.0.0.1", 5432))
        self.port = self.forwarder.sock.getsockname()[1]

    def cut(self) -> None:
        if self.forwarder is not None:
            self.forwarder.close()
            self.forwarder = None

    def restore(self) -> None:
        self.forwarder = Forwarder(("127.0.0.1", self.port), ("127.0.0.1", 5432))


@pytest.fixture
def link():
    require_service("127.0.0.1", 5432, "PostgreSQL")
    forward = Link()
    yield forward
    forward.cut()


def _transitions(ds: DataSource) -> list[tuple[str, str]]:
    rows = Event.objects.filter(type=EVENT, data__data_source__id=ds.pk).order_by("id")
    return [(e.data["from"], e.data["to"]) for e in rows]


def _state(ds: DataSource) -> str:
    return DataSource.objects.get(pk=ds.pk).health_state


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def _delivered(receiver: Receiver, secret: str) -> list[tuple[str, str]]:
    """The verified health transitions the receiver got (a bad signature raises)."""
    bodies = [Verifier(secret).verify(r.body, r.headers) for r in list(receiver.requests)]
    return [(b["data"]["from"], b["data"]["to"]) for b in bodies]


def test_a_source_that_stops_answering_fails_after_k_checks_and_recovers(workers, beat, link, make_client, org,
                                                                         receiver):
    Organization.objects.filter(pk=org.pk).update(health_failure_threshold=K)
    hook = make_client(org).post("/api/v1/webhooks/", {"url": receiver.url(), "events": [EVENT]}, format="json")
    assert hook.status_code == 201, hook.json()
    secret = hook.json()["secret"]
    body = {"name": "Warehouse", "type": "postgresql", "health_check_interval": 1,
            "connection": {"host": "127.0.0.1", "port": link.port, "database": "postgres", "username": "postgres",
                           "ssl": {"mode": "disable"}},
            "credentials": {"password": ""}}
    response = make_client(org).post(URL, body, format="json")  # tested through the forwarder
    assert response.status_code == 201, response.json()
    ds = DataSource.objects.get(pk=response.json()["id"])
    workers.start(1)
    assert wait_for(lambda: _state(ds) == "healthy", timeout=60), workers.output()[-3000:]
    assert _transitions(ds) == []

    link.cut()
    cut_at = HealthCheck.objects.filter(data_source=ds).count()
    assert wait_for(lambda: _state(ds) == "failing", timeout=60), workers.output()[-3000:]
    failed = [c for c in HealthCheck.objects.filter(data_source=ds).order_by("id")[cut_at:] if c.outcome == "failed"]
    assert failed and (failed[0].stage, failed[0].code) == ("tcp", "CREDENTIAL_TEST_FAILED")
    assert _transitions(ds) == [("healthy", "failing")]
    event = Event.objects.get(type=EVENT, data__to="failing")
    assert event.data["consecutive_failures"] == K and event.data["last_check"]["stage"] == "tcp"
    assert "connection" not in event.data and "password" not in str(event.data)

    link.restore()
    assert wait_for(lambda: _state(ds) == "healthy", timeout=60), workers.output()[-3000:]
    checks = HealthCheck.objects.filter(data_source=ds).count()
    assert wait_for(lambda: HealthCheck.objects.filter(data_source=ds).count() >= checks + 2, timeout=30)
    assert _transitions(ds) == [("healthy", "failing"), ("failing", "healthy")], "each transition once"
    final = DataSource.objects.get(pk=ds.pk)
    assert (final.health_failures, final.status) == (0, "active"), "a health check is not a user's test"
    # Each transition reached the webhook once, signed, and nothing else did.
    expected = [("healthy", "failing"), ("failing", "healthy")]
    assert wait_for(lambda: len(receiver.requests) >= 2, timeout=30), workers.output()[-3000:]
    time.sleep(1.5)  # a duplicate would have arrived by now (sweep every second)
    assert _delivered(receiver, secret) == expected
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(set(ids)) == 2 and all("password" not in json.loads(r.body)["data"] for r in receiver.requests)
    assert "datasources.health_check_tick" in beat.read_text()

