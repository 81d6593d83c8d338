"""/healthz and /readyz (core/health.py): real failures, never a leak.

- Ready on the test database (migrated, broker of the test settings reachable): 200, each check "ok".
- Broker unreachable (CELERY_BROKER_URL on a closed loopback port, with a password in it): 503 naming
  ``broker``, quickly (one attempt, no retry loop).
- A migration not applied (the newest ``datasources`` migration really migrated backwards, then
  forwards again): 503 naming ``migrations``.
- Database unreachable: a separate process whose DATABASE_URL points at a closed port (Django's
  connections cannot be repointed cleanly inside this one): 503 naming ``database``, while /healthz
  stays 200; the same process runs the production settings (DEBUG off, HTTPS redirect on, a real
  ALLOWED_HOSTS) and is probed the way a kubelet does (plain HTTP, the pod's IP as Host).
- No body names a URL, host, port, user, password, database name, version or exception.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import django
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader

ROOT = Path(__file__).resolve().parents[2]
READY = {"status": "ready", "checks": {"database": "ok", "migrations": "ok", "broker": "ok"}}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_no_leak(body: bytes, *secrets_: str) -> None:
    text = body.decode()
    for needle in (*secrets_, "Traceback", "Error", "://", "127.0.0.1", "localhost", django.get_version(),
                   "password", "SECRET", "redis", "postgres", "sqlite"):
        assert needle.lower() not in text.lower(), (needle, text)


def test_healthz_is_alive_without_authentication_or_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert response["X-Request-ID"]
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405


@pytest.mark.django_db
def test_ready_on_the_test_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == READY
    assert response["Cache-Control"] == "no-store"
    assert client.head("/readyz").status_code == 200
    assert_no_leak(response.content, connection.settings_dict["NAME"] or "")


@pytest.mark.django_db
def test_not_ready_when_the_broker_is_unreachable(client, settings):
    password, port = "s3cret-" + secrets.token_hex(4), closed_port()
    settings.CELERY_BROKER_URL = f"redis://:{password}@127.0.0.1:{port}/0"
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable", "reason": "broker unreachable", "failed": ["broker"],
        "checks": {"database": "ok", "migrations": "ok", "broker": "unreachable"},
    }
    assert_no_leak(response.content, password, str(port))
    assert client.get("/healthz").status_code == 200  # liveness does not depend on the broker


@pytest.mark.django_db(transaction=True)
def test_not_ready_while_a_migration_is_not_applied(client):
    graph = MigrationLoader(connection).graph
    (leaf,) = graph.leaf_nodes("datasources")
    (parent,) = [p for p in graph.node_map[leaf].parents if p.key[0] == "datasources"]
    call_command("migrate", "datasources", parent.key[1], verbosity=0)
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["failed"] == ["migrations"]
        assert body["reason"] == "migrations pending"
        assert body["checks"] == {"database": "ok", "migrations": "pending", "broker": "ok"}
        assert_no_leak(response.content, leaf[1])
    finally:
        call_command("migrate", verbosity=0)  # every app (the backwards step also unapplied its dependents)
    assert client.get("/readyz").json() == READY


PROBE_SCRIPT = """
import json, django
django.setup()
from django.test import Client
client = Client()
out = {}
for path, host in [("/healthz", "10.0.0.7:8000"), ("/readyz", "10.0.0.7:8000"), ("/readyz", "dsp.example.com"),
                   ("/api/v1/data-source-types/", "10.0.0.7:8000"), ("/api/v1/data-source-types/", "dsp.example.com")]:
    response = client.get(path, HTTP_HOST=host)
    out[path + " " + host] = [response.status_code, response.content.decode(), response.get("Location")]
print(json.dumps(out))
"""


def test_not_ready_when_the_database_is_unreachable_in_production_settings():
    db_password, broker_password = "db-" + secrets.token_hex(6), "mq-" + secrets.token_hex(6)
    db_port, broker_port = closed_port(), closed_port()
    secret_key = secrets.token_urlsafe(50)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECURE_", "SESSION_", "CSRF_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings", DEBUG="false", SECRET_KEY=secret_key,
        ENCRYPTION_KEYS="k1:" + secrets.token_urlsafe(32), ALLOWED_HOSTS="dsp.example.com",
        DATABASE_URL=f"postgres://ops:{db_password}@127.0.0.1:{db_port}/controlplane_prod",
        CELERY_BROKER_URL=f"redis://:{broker_password}@127.0.0.1:{broker_port}/0",
    )
    result = subprocess.run([sys.executable, "-c", PROBE_SCRIPT], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])

    status, body, location = out["/healthz 10.0.0.7:8000"]
    assert (status, json.loads(body), location) == (200, {"status": "ok"}, None)
    for host in ("10.0.0.7:8000", "dsp.example.com"):
        status, body, location = out[f"/readyz {host}"]
        assert status == 503 and location is None, (status, body, location)
        assert json.loads(body) == {
            "status": "unavailable", "reason": "database unreachable; broker unreachable",
            "failed": ["database", "broker"],
            "checks": {"database": "unreachable", "migrations": "skipped", "broker": "unreachable"},
        }
        assert_no_leak(body.encode(), db_password, broker_password, str(db_port), str(broker_port),
                       "controlplane_prod", "ops", secret_key)
    # Everything else keeps Django's protections: an unknown Host is refused, plain HTTP is redirected.
    assert out["/api/v1/data-source-types/ 10.0.0.7:8000"][0] == 400
    status, _, location = out["/api/v1/data-source-types/ dsp.example.com"]
    assert (status, location) == (301, "https://dsp.example.com/api/v1/data-source-types/")
    # The causes are in the log, for the operator.
    assert "readiness: database check failed" in result.stderr
    assert "readiness: broker check failed" in result.stderr


@pytest.mark.django_db
def test_probes_answer_a_kubelet_over_plain_http_with_the_pod_ip_as_host(client, settings):
    settings.ALLOWED_HOSTS = ["dsp.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    for path in ("/healthz", "/readyz"):
        response = client.get(path, HTTP_HOST="10.42.0.17:8000")
        assert response.status_code == 200, (path, response.status_code, response.content)
    assert client.get("/api/v1/data-source-types/", HTTP_HOST="10.42.0.17:8000").status_code == 400
    redirected = client.get("/api/v1/data-source-types/", HTTP_HOST="dsp.example.com")
    assert redirected.status_code == 301


@pytest.mark.django_db
def test_the_routes_alone_are_exempt_from_the_https_redirect(client, settings):
    """Without ProbeMiddleware (a project that drops it), SECURE_REDIRECT_EXEMPT still lets a plain-HTTP
    probe with an allowed Host through."""
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != "core.health.ProbeMiddleware"]
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/api/v1/data-source-types/").status_code == 301
