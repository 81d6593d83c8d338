"""The shared cache (CACHE_URL, Redis) down: /readyz says so, connection tests answer 503, nothing changes.

Rate limits, test slots and the token cache's generation live in the shared cache. With it down,
/readyz answered 200 and every connection test (POST .../test/, a PATCH of the connection) a 500 with a
redis ConnectionError in the log. Now /readyz is 503 naming ``cache`` (one PING, bounded, no retry), and
a connection test is a 503 in the error shape with Retry-After, having tested, counted and changed nothing.
"""

from __future__ import annotations

import time

import pytest

from core import health
from datasources.models import DataSource, DataSourceRevision
from eventlog.models import Event
from organizations.models import AuditEvent
from tests.core.test_health import assert_no_leak, closed_port

URL = "/api/v1/data-sources/"


def redis_cache(location: str) -> dict:
    return {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": location,
                        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2}}}


@pytest.fixture
def fresh_readiness(monkeypatch):
    monkeypatch.setattr(health, "_current", None)


@pytest.mark.django_db
def test_readyz_checks_a_shared_cache(client, settings, fresh_readiness):
    settings.CACHES = redis_cache("redis://127.0.0.1:6379/13")
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok", "broker": "ok", "cache": "ok"}

    password, port = "c4che-secret", closed_port()
    settings.CACHES = redis_cache(f"redis://:{password}@127.0.0.1:{port}/10")
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 3
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable", "reason": "cache unreachable", "failed": ["cache"],
        "checks": {"database": "ok", "migrations": "ok", "broker": "ok", "cache": "unreachable"},
    }
    assert_no_leak(response.content, password, str(port))
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_a_process_local_cache_is_not_a_check(client, settings, fresh_readiness):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert client.get("/readyz").json()["checks"] == {"database": "ok", "migrations": "ok", "broker": "ok"}


def _state(ds_id: int) -> tuple:
    row = DataSource.objects.values().get(pk=ds_id)
    return (row, DataSourceRevision.objects.count(), Event.objects.count(), AuditEvent.objects.count())


def test_connection_tests_answer_503_and_change_nothing_while_the_cache_is_down(api, sqlite_file, settings):
    ds = api.post(f"{URL}?test_connection=false", {"name": "C", "type": "sqlite", "connection": {"path": sqlite_file}},
                  format="json").json()
    before = _state(ds["id"])
    settings.CACHES = redis_cache(f"redis://127.0.0.1:{closed_port()}/10")

    for method, path, body in [("post", f"{URL}{ds['id']}/test/", None),
                               ("patch", f"{URL}{ds['id']}/", {"connection": {"read_only": False}}),
                               ("post", URL, {"name": "D", "type": "sqlite", "connection": {"path": sqlite_file}})]:
        response = getattr(api, method)(path, body, format="json")
        assert response.status_code == 503, (method, path, response.status_code, response.content[:300])
        payload = response.json()
        assert set(payload) == {"code", "message", "errors", "request_id", "retry_after"}
        assert payload["code"] == "SERVICE_UNAVAILABLE" and "CACHE_URL" in payload["message"]
        assert int(response["Retry-After"]) == payload["retry_after"] > 0
        assert _state(ds["id"]) == before, (method, path)
    assert DataSource.objects.count() == 1

    # Writes that need no connection test still work.
    assert api.patch(f"{URL}{ds['id']}/", {"description": "still writable"}, format="json").status_code == 200
