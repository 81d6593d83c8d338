"""/healthz and /readyz under a database that never answers, and for methods they do not serve.

- A database that accepts connections and never replies (DATABASE_URL without connect_timeout, as in
  README "Without Docker"): under the project's gunicorn with two threads, concurrent /readyz probes
  each answer 503 naming ``database`` within the readiness bound, and /healthz still answers at once
  (the checks ran in a background thread on a bounded connection; it used to be 130 s per probe, with
  every gthread thread stuck behind them).
- At most one set of checks runs at a time in a process: concurrent probes share it; past its deadline
  a probe answers at once instead of starting another.
- Any method but GET/HEAD is a 405 with ``Allow: GET, HEAD``, before host validation and CSRF.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import Client

from core import health
from tests.support.gunicorn_server import gunicorn_server


@contextlib.contextmanager
def silent_listener() -> Iterator[tuple[int, list[socket.socket]]]:
    """A loopback TCP port that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join()
        for sock in [*accepted, server]:
            sock.close()


def test_a_silent_database_bounds_readyz_and_never_starves_healthz(tmp_path):
    with silent_listener() as (port, accepted):
        url = f"postgres://ops:pw@127.0.0.1:{port}/controlplane"  # no connect_timeout, like the README
        with gunicorn_server(url, tmp_path, workers=1, env={"GUNICORN_THREADS": "2"}) as server:
            def probe(_: int) -> tuple[float, int, object]:
                started = time.monotonic()
                status, _headers, body = server.request("GET", "/readyz", timeout=10)
                return time.monotonic() - started, status, body

            with ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(probe, range(6)))
            # Two threads serve six probes: each set of checks gives up after its 2 s connect timeout.
            for elapsed, status, body in answers:
                assert status == 503 and elapsed < 9, (elapsed, status, body)
                assert isinstance(body, dict) and body["checks"]["database"] == "unreachable", body
                assert body["checks"]["migrations"] == "skipped"
            started = time.monotonic()
            status, _headers, body = server.request("GET", "/healthz", timeout=5)
            assert (status, body) == (200, {"status": "ok"})
            assert time.monotonic() - started < 2
            assert accepted  # the probes did reach the silent database
            assert "readiness: database check failed" in server.output()


@pytest.fixture
def blocked_checks(monkeypatch, settings):
    """The database checks block until released; the broker answers at once."""
    settings.READINESS_TIMEOUT = 0.5
    release, calls = threading.Event(), []

    def database_checks(checks: dict[str, str]) -> None:
        calls.append(time.monotonic())
        release.wait(10)
        checks["database"], checks["migrations"] = health.OK, health.OK

    monkeypatch.setattr(health, "_database_checks", database_checks)
    monkeypatch.setattr(health, "check_broker", lambda: health.OK)
    monkeypatch.setattr(health, "_current", None)
    yield release, calls
    release.set()


def test_one_set_of_checks_at_a_time_shared_by_concurrent_probes(blocked_checks):
    release, calls = blocked_checks
    started = time.monotonic()
    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda _: health.readiness(), range(5)))
    assert time.monotonic() - started < 1.5
    assert len(calls) == 1
    assert results == [(False, {"database": "unreachable", "migrations": "skipped", "broker": "ok"})] * 5

    # The abandoned check still runs: a new probe answers at once, starting nothing.
    started = time.monotonic()
    response = Client().get("/readyz")
    assert time.monotonic() - started < 0.3
    assert response.status_code == 503 and response.json()["failed"] == ["database"]
    assert len(calls) == 1
    started = time.monotonic()
    assert Client().get("/healthz").status_code == 200
    assert time.monotonic() - started < 0.3

    release.set()
    deadline = time.monotonic() + 5
    while health._current is not None and not health._current.done.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert health.readiness() == (True, {"database": "ok", "migrations": "ok", "broker": "ok"})
    assert len(calls) == 2


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
def test_other_methods_are_405_before_host_validation_and_csrf(settings, path, method):
    settings.ALLOWED_HOSTS = ["dsp.example.com"]
    client = Client(enforce_csrf_checks=True)
    for host in ("10.0.0.7:8000", "dsp.example.com"):
        response = getattr(client, method)(path, data=json.dumps({}), content_type="application/json",
                                           HTTP_HOST=host)
        assert response.status_code == 405, (host, response.status_code, response.content[:200])
        assert response["Allow"] == "GET, HEAD"
        assert response["Cache-Control"] == "no-store"
