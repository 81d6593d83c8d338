"""Slow connection tests never starve the API (datasources/services/test_slots.py, gunicorn.conf.py).

The slow destination is real: a loopback port whose listener never accepts nor answers (the kernel
completes the TCP handshake, then nothing), so a PostgreSQL test waits its whole connection_timeout
and fails at stage ``tcp``. Tests run over HTTP, concurrently: in-process on the threaded live server
(the slots and the cache are this process's), and on a real gunicorn with the project's
gunicorn.conf.py (two worker processes sharing Redis).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from django.core.cache import cache
from django.db import connection

from datasources.models import DataSource
from datasources.services import test_slots
from organizations.services import create_organization, create_token
from tests.conftest import require_service
from tests.support.gunicorn_server import REPO, gunicorn_server
from tests.support.live import live_http_server
from tests.support.rate_window import within_one_rate_window
from tests.support.workers import database_url, wait_for

URL = "/api/v1/data-sources/"
TIMEOUT = 3  # each black-holed test's connection_timeout
#: Retry-After names when the earliest running test should end: its connection_timeout when the call
#: site passes it to consume_test_budget (timeout=...), else the default connection_timeout (30 s)
RETRY_AT_MOST = 30
REDIS_CACHE = "redis://127.0.0.1:6379/15"


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that completes TCP handshakes (up to its backlog) and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.fixture
def server(transactional_db, settings):
    with live_http_server(settings) as live:
        yield live


def tokens(*slugs: str) -> dict[str, str]:
    return {slug: create_token(organization=create_organization(slug=slug)[0], name="t",
                               scopes=["datasource.read", "datasource.write"])[1] for slug in slugs}


def slow_source(request: Callable, token: str, port: int, name: str = "Slow") -> int:
    status, _, body = request("POST", f"{URL}?test_connection=false", token=token, body={
        "name": name, "type": "postgresql", "connection_timeout": TIMEOUT,
        "connection": {"host": "127.0.0.1", "port": port, "database": "d", "username": "u", "ssl": {"mode": "prefer"}},
        "credentials": {"password": "pw-never-answered"}})
    assert status == 201, body
    return body["id"]


def timed(request: Callable, *args, **kwargs) -> tuple[int, dict, object, float]:
    start = time.monotonic()
    status, headers, body = request(*args, **kwargs)
    return status, headers, body, time.monotonic() - start


def in_flight(pool: ThreadPoolExecutor, request: Callable, token: str, source: int, n: int) -> list[Future]:
    return [pool.submit(timed, request, "POST", f"{URL}{source}/test/", token=token) for _ in range(n)]


def assert_limited(status: int, headers: dict, body: dict, *, at_most: int) -> int:
    assert status == 429, body
    assert body["code"] == "RATE_LIMITED", body
    retry_after = int(headers["Retry-After"])
    assert body["retry_after"] == retry_after and 1 <= retry_after <= at_most, (headers, body)
    return retry_after


def assert_failed_at_tcp_in_time(future: Future) -> None:
    """Failed at tcp after its own timeout, not queued behind another test (that would take 2x).
    (How close to the timeout it ends is a figure of bench/concurrent_tests.py, not a test.)"""
    status, _, body, elapsed = future.result(timeout=TIMEOUT + 30)
    assert status == 400 and body["code"] == "CREDENTIAL_TEST_FAILED" and body["stage"] == "tcp", body
    assert elapsed < 2 * TIMEOUT, elapsed


def running_in(organization_slug: str) -> int:
    from organizations.models import Organization

    pk = Organization.objects.get(slug=organization_slug).pk
    limit = 16
    return len(cache.get_many([test_slots.KEY.format(organization=pk, index=i) for i in range(limit)]))


# --- in-process: the threaded live server --------------------------------------------------------


def test_an_organization_past_its_bound_gets_429_and_another_organization_does_not(server, settings, black_hole):
    settings.DATASOURCE_TEST_CONCURRENCY_PER_ORG = 2
    settings.TEST_SLOTS_PER_PROCESS = 10
    keys = tokens("acme", "globex")
    acme, globex = slow_source(server.request, keys["acme"], black_hole), slow_source(
        server.request, keys["globex"], black_hole)
    before = DataSource.objects.values("status", "last_test", "version").get(pk=acme)
    with ThreadPoolExecutor(8) as pool:
        running = in_flight(pool, server.request, keys["acme"], acme, 2)
        assert wait_for(lambda: test_slots.running_here() == 2, timeout=10)
        started = time.time()
        status, headers, body = server.request("POST", f"{URL}{acme}/test/", token=keys["acme"])
        assert_limited(status, headers, body, at_most=RETRY_AT_MOST)
        assert time.time() - started < TIMEOUT / 2, "a refusal does not wait for a slot"
        # the write path (a connection change is tested before it is applied) is bounded alike
        change = {"connection": {"port": black_hole}, "credentials": {"password": "x"}}
        status, headers, body = server.request("PATCH", f"{URL}{acme}/", token=keys["acme"], body=change)
        assert_limited(status, headers, body, at_most=RETRY_AT_MOST)
        assert DataSource.objects.values("status", "last_test", "version").get(pk=acme) == before
        other = in_flight(pool, server.request, keys["globex"], globex, 2)  # its own bound
        for future in [*running, *other]:
            assert_failed_at_tcp_in_time(future)
    assert wait_for(lambda: test_slots.running_here() == 0 and running_in("acme") == running_in("globex") == 0)
    status, _, body, elapsed = timed(server.request, "POST", f"{URL}{acme}/test/", token=keys["acme"])
    assert status == 400 and body["stage"] == "tcp" and elapsed < 2 * TIMEOUT, body  # the slots came back


def test_a_refusal_for_want_of_a_slot_counts_nothing_against_the_rate(server, settings, black_hole):
    settings.DATASOURCE_TEST_CONCURRENCY_PER_ORG = 1
    settings.DATASOURCE_TEST_RATE_PER_ORG = 2
    within_one_rate_window(20)  # the test takes about 5 s here, up to 10 s on a loaded machine
    keys = tokens("acme")
    acme = slow_source(server.request, keys["acme"], black_hole)
    with ThreadPoolExecutor(2) as pool:
        running = in_flight(pool, server.request, keys["acme"], acme, 1)
        assert wait_for(lambda: test_slots.running_here() == 1, timeout=10)
        for _ in range(5):
            status, headers, body = server.request("POST", f"{URL}{acme}/test/", token=keys["acme"])
            assert_limited(status, headers, body, at_most=RETRY_AT_MOST)
            assert "of this organization" in body["message"]
        assert_failed_at_tcp_in_time(running[0])
    assert server.request("POST", f"{URL}{acme}/test/", token=keys["acme"])[0] == 400  # the 2nd of 2 a minute
    assert server.request("POST", f"{URL}{acme}/test/", token=keys["acme"])[0] == 429  # the rate, now


def test_the_process_bound_leaves_threads_for_reads(server, settings, black_hole):
    settings.DATASOURCE_TEST_CONCURRENCY_PER_ORG = 10
    settings.TEST_SLOTS_PER_PROCESS = 1
    keys = tokens("acme", "globex")
    acme, globex = slow_source(server.request, keys["acme"], black_hole), slow_source(
        server.request, keys["globex"], black_hole)
    with ThreadPoolExecutor(2) as pool:
        running = in_flight(pool, server.request, keys["acme"], acme, 1)
        assert wait_for(lambda: test_slots.running_here() == 1, timeout=10)
        status, headers, body = server.request("POST", f"{URL}{globex}/test/", token=keys["globex"])
        assert_limited(status, headers, body, at_most=RETRY_AT_MOST)
        assert "on this server" in body["message"]
        assert server.request("GET", f"{URL}{globex}/", token=keys["globex"])[0] == 200
        assert_failed_at_tcp_in_time(running[0])
    assert wait_for(lambda: test_slots.running_here() == 0)


def test_a_slot_is_released_when_the_test_fails_at_once(server, settings):
    """A refused destination (no packet sent) and a closed port: each test ends, its slot is back."""
    settings.DATASOURCE_TEST_CONCURRENCY_PER_ORG = 1
    keys = tokens("acme")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    acme = slow_source(server.request, keys["acme"], closed)
    for _ in range(3):
        status, _, body = server.request("POST", f"{URL}{acme}/test/", token=keys["acme"])
        assert status == 400 and body["stage"] == "tcp", body
    status, _, body = server.request("PATCH", f"{URL}{acme}/", token=keys["acme"],
                                     body={"connection": {"host": "169.254.169.254"}, "credentials": {"password": "x"}})
    assert status == 400, body
    assert server.request("POST", f"{URL}{acme}/test/", token=keys["acme"])[0] == 400
    assert wait_for(lambda: test_slots.running_here() == 0)


# --- a real gunicorn: the project's gunicorn.conf.py, two workers sharing Redis ---------------------


@pytest.fixture
def redis_cache(settings):
    require_service("127.0.0.1", 6379, "Redis")
    if connection.vendor != "postgresql":
        pytest.skip("gunicorn workers share the test database: set DATABASE_URL to PostgreSQL")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": REDIS_CACHE}}
    cache.clear()
    yield REDIS_CACHE
    cache.clear()


def hold(organization_id: int, timeout: float, started: threading.Event, stop: threading.Event) -> None:
    """A test of another thread: holds its slot until ``stop``."""
    with test_slots.held_slot(organization_id, timeout=timeout):
        started.set()
        stop.wait(30)


@pytest.mark.parametrize("bound", ["organization", "process"])
def test_retry_after_is_when_the_earliest_running_test_should_end(db, settings, bound):
    settings.DATASOURCE_TEST_CONCURRENCY_PER_ORG = 2 if bound == "organization" else 10
    settings.TEST_SLOTS_PER_PROCESS = 2 if bound == "process" else 10
    stop = threading.Event()
    holders = []
    for organization, timeout in ((998, 20), (998 if bound == "organization" else 996, TIMEOUT)):
        started = threading.Event()
        holders.append(threading.Thread(target=hold, args=(organization, timeout, started, stop)))
        holders[-1].start()
        assert started.wait(5)
    try:
        with pytest.raises(test_slots.SlotsBusy) as busy:
            test_slots.acquire(998, timeout=5)
        assert 1 <= busy.value.retry_after <= TIMEOUT  # the earliest of the two (the other ends in 20 s)
        assert test_slots.running_here() == 2  # the refusal took nothing
    finally:
        stop.set()
        for holder in holders:
            holder.join()
    assert test_slots.running_here() == 0
    assert cache.get_many([test_slots.KEY.format(organization=998, index=i) for i in range(2)]) == {}


def test_a_crashed_processs_slot_is_freed_by_its_lease(redis_cache, settings):
    """A process killed mid-test never releases its slot: the lease (timeout + margin) does."""
    settings.DATASOURCE_TEST_CONCURRENCY_PER_ORG = 1
    script = ("from datasources.services import test_slots; import os, sys; "
              "test_slots.acquire(997, timeout=2); print('held', flush=True); os.kill(os.getpid(), 9)")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "CACHE_URL": redis_cache,
           "DATASOURCE_TEST_CONCURRENCY_PER_ORG": "1", "DATASOURCE_TEST_LEASE_MARGIN_SECONDS": "1"}
    crashed = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=60)
    assert crashed.returncode == -signal.SIGKILL and "held" in crashed.stdout, crashed.stderr
    with pytest.raises(test_slots.SlotsBusy):
        test_slots.acquire(997, timeout=TIMEOUT)
    assert wait_for(lambda: cache.get(test_slots.KEY.format(organization=997, index=0)) is None, timeout=3 + 1)
    with test_slots.held_slot(997, timeout=TIMEOUT) as slot:
        assert cache.get(test_slots.KEY.format(organization=997, index=0)) == slot.value
    assert cache.get(test_slots.KEY.format(organization=997, index=0)) is None


def test_gunicorn_serves_reads_while_black_holed_tests_hold_threads(transactional_db, redis_cache, black_hole,
                                                                    tmp_path):
    """The default shape (2 workers of 8 threads, 4 test slots each, 4 tests per organization): an
    organization's 4 tests run, its 5th is refused whichever process it reaches, and reads are
    answered at once while the tests wait. (Two sync workers would queue every read behind them.)"""
    keys = tokens("acme", "globex")
    with gunicorn_server(database_url(), tmp_path, workers=2, env={"CACHE_URL": redis_cache}) as gunicorn:
        acme = slow_source(gunicorn.request, keys["acme"], black_hole)
        globex = slow_source(gunicorn.request, keys["globex"], black_hole)
        with ThreadPoolExecutor(8) as pool:
            running = in_flight(pool, gunicorn.request, keys["acme"], acme, 4)
            assert wait_for(lambda: running_in("acme") == 4, timeout=10), gunicorn.output()[-2000:]
            status, headers, body = gunicorn.request("POST", f"{URL}{acme}/test/", token=keys["acme"])
            assert_limited(status, headers, body, at_most=RETRY_AT_MOST)
            reads = [timed(gunicorn.request, "GET", f"{URL}{globex}/", token=keys["globex"]) for _ in range(10)]
            assert not [future for future in running if future.done()], "the reads ran while the tests waited"
            assert [r[0] for r in reads] == [200] * 10
            assert max(r[3] for r in reads) < TIMEOUT / 2, [round(r[3], 3) for r in reads]  # none waited for a test
            for future in running:
                assert_failed_at_tcp_in_time(future)
        assert wait_for(lambda: running_in("acme") == 0)


def test_one_organization_never_takes_a_process_s_last_slot(db, settings):
    """With the per-organization bound as large as the process's (4 and 4, the old defaults with one
    worker), one tenant's slow tests took every slot and every other tenant's test was a 429."""
    settings.DATASOURCE_TEST_CONCURRENCY_PER_ORG = 4
    settings.TEST_SLOTS_PER_PROCESS = 4
    stop = threading.Event()
    holders = []
    for _ in range(3):
        started = threading.Event()
        holders.append(threading.Thread(target=hold, args=(995, 20, started, stop)))
        holders[-1].start()
        assert started.wait(5)
    try:
        with pytest.raises(test_slots.SlotsBusy) as busy:
            test_slots.acquire(995, timeout=5)
        assert "of this organization" in str(busy.value) and "on this server" in str(busy.value)
        assert test_slots.running_here() == 3
        with test_slots.held_slot(994, timeout=5):  # another organization: the slot left is its own
            assert test_slots.running_here() == 4
    finally:
        stop.set()
        for holder in holders:
            holder.join()
    assert test_slots.running_here() == 0
