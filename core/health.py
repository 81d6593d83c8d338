"""Liveness and readiness probes: ``GET /healthz`` and ``GET /readyz``.

- ``/healthz``: the process answers HTTP. Always ``200 {"status": "ok"}``; it touches nothing else
  and never waits for a readiness check, so a database or broker outage never makes an orchestrator
  restart healthy web processes.
- ``/readyz``: this process can serve traffic. Four checks, each reported by name: ``database`` (a
  ``SELECT 1``), ``migrations`` (no migration of the code's migration graph left to apply, the same
  test as ``manage.py migrate --check``), ``broker`` (a fresh connection to ``CELERY_BROKER_URL``,
  one attempt, ``READINESS_BROKER_TIMEOUT`` seconds at most) and ``cache`` (one round trip to a shared
  cache, when ``CACHE_URL`` names a server). ``200`` when all pass, else ``503`` with ``reason`` and
  ``failed`` naming the failed checks.

Bounded, whatever the dependencies do (a database that accepts connections and never answers held
a probe, and its thread, for 130 s: psycopg's default connect timeout). The database and migration
checks run on a connection of their own with ``connect_timeout`` and ``statement_timeout`` of
``READINESS_DATABASE_TIMEOUT`` seconds (2), and every check runs in a background thread: a probe
answers within ``READINESS_TIMEOUT`` seconds (4, under a kubelet's usual 5), a check still running
by then counting as failed. At most one set of checks runs at a time in a process: a probe arriving
meanwhile shares its result (or, past its deadline, answers at once), so abandoned checks can never
hold the threads that serve ``/healthz`` and the API.

Both are unauthenticated, answer ``GET`` and ``HEAD`` only (``405`` with ``Allow`` otherwise), are
never cached (``Cache-Control: no-store``), and say nothing about the configuration: fixed words only
(``ok``, ``unreachable``, ``pending``, ...), never a URL, host, user, version or exception text. The
cause goes to the log.

Orchestrators probe with the address they reach the container by (a kubelet sends the pod IP as
``Host``, a load balancer the target's IP) and over plain HTTP. ``ProbeMiddleware`` therefore answers
these two paths before Django validates ``Host`` against ``ALLOWED_HOSTS``, before the HTTPS redirect
and before CSRF: no response depends on the host, the scheme or a cookie, so no host-header attack applies.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

OK = "ok"
UNREACHABLE = "unreachable"
PENDING = "pending"  # migrations: some are not applied
SKIPPED = "skipped"  # migrations: the database could not be reached, so they were not checked

BROKER_TIMEOUT_SECONDS = 2.0
DATABASE_TIMEOUT_SECONDS = 2  # libpq's connect_timeout counts whole seconds (2 at least)
READINESS_TIMEOUT_SECONDS = 4.0
PROBE_METHODS = ("GET", "HEAD")
# Cache backends that live in this process or on its disk: nothing to reach, nothing to check.
LOCAL_CACHES = ("django.core.cache.backends.locmem.LocMemCache", "django.core.cache.backends.filebased.FileBasedCache",
                "django.core.cache.backends.dummy.DummyCache")


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def _json(body: dict[str, Any], status: int = 200) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    return response


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    return _json({"status": "ok"})


def check_database() -> str:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        _log_failure("database", exc)
        return UNREACHABLE
    return OK


def check_migrations() -> str:
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        _log_failure("migrations", exc)
        return UNREACHABLE
    if plan:
        logger.warning("readiness: %d migration(s) not applied, first %s", len(plan), plan[0][0])
        return PENDING
    return OK


def check_broker() -> str:
    """One connection attempt (no retry loop), bounded by the timeout, then closed.

    The URL is read from Django's settings at each call (what the worker and beat of this deployment
    were started with), not from the Celery app's cached configuration."""
    from celery import current_app as app  # the project's app (config/__init__ makes it current)

    timeout = _setting("READINESS_BROKER_TIMEOUT", BROKER_TIMEOUT_SECONDS)
    try:
        connection = app.connection_for_write(
            url=settings.CELERY_BROKER_URL,
            connect_timeout=timeout,
            transport_options={"socket_timeout": timeout, "socket_connect_timeout": timeout},
        )
        try:
            connection.ensure_connection(max_retries=0, timeout=timeout)
        finally:
            connection.release()
    except Exception as exc:
        _log_failure("broker", exc)
        return UNREACHABLE
    return OK


def cache_is_shared() -> bool:
    """Whether the default cache is a server (Redis, Memcached) rather than this process or its disk."""
    return settings.CACHES["default"]["BACKEND"] not in LOCAL_CACHES


def check_cache() -> str:
    """One round trip to the shared cache (rate limits, test slots, the token cache's generation):
    a Redis ``PING`` on a connection of its own, ``READINESS_BROKER_TIMEOUT`` seconds at most, to each
    server of ``LOCATION``; another server backend, one read through Django's cache."""
    config = settings.CACHES["default"]
    timeout = _setting("READINESS_BROKER_TIMEOUT", BROKER_TIMEOUT_SECONDS)
    try:
        if "redis" in config["BACKEND"].lower():
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            locations = config["LOCATION"]
            for url in locations.split(",") if isinstance(locations, str) else locations:
                client = redis.Redis.from_url(url.strip(), socket_timeout=timeout, socket_connect_timeout=timeout,
                                              retry=Retry(NoBackoff(), 0))  # one attempt, like the broker's
                try:
                    client.ping()
                finally:
                    client.close()
        else:
            cache.get("readiness:probe")
    except Exception as exc:
        _log_failure("cache", exc)
        return UNREACHABLE
    return OK


def _bounded_database(timeout: int) -> Any:
    """A connection of its own to the default database, whose connect and statements give up after
    ``timeout`` seconds (PostgreSQL; a SQLite file has nothing to wait for)."""
    default = connections[DEFAULT_DB_ALIAS]
    settings_dict = copy.deepcopy(default.settings_dict)
    if default.vendor == "postgresql":
        options = settings_dict.setdefault("OPTIONS", {})
        configured = int(options.get("connect_timeout") or 0)
        options["connect_timeout"] = min(configured, timeout) if configured > 0 else timeout
    return type(default)(settings_dict, DEFAULT_DB_ALIAS)


def _database_checks(checks: dict[str, str]) -> None:
    """``database`` then ``migrations``, on a bounded connection installed as this thread's default
    (the migration recorder reads through the alias); in one transaction on PostgreSQL, where
    ``SET LOCAL statement_timeout`` bounds each statement (and leaves nothing behind a pooler)."""
    timeout = int(_setting("READINESS_DATABASE_TIMEOUT", DATABASE_TIMEOUT_SECONDS))
    probe = _bounded_database(timeout)
    connections[DEFAULT_DB_ALIAS] = probe
    try:
        if probe.vendor == "postgresql":
            try:
                probe.set_autocommit(False)
                with probe.cursor() as cursor:
                    cursor.execute("SET LOCAL statement_timeout = %s", [f"{timeout}s"])
            except Exception as exc:
                _log_failure("database", exc)
                checks["database"] = UNREACHABLE
                checks["migrations"] = SKIPPED
                return
        checks["database"] = check_database()
        checks["migrations"] = check_migrations() if checks["database"] == OK else SKIPPED
    finally:
        try:
            probe.close()
        except Exception:  # noqa: S110 (a broken connection: nothing left to close)
            pass
        del connections[DEFAULT_DB_ALIAS]


class _Run:
    """One set of checks, run in background threads; probes wait for it up to its deadline."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.checks: dict[str, str] = {}
        self.done = threading.Event()
        self.names = ["database", "migrations", "broker", *(["cache"] if cache_is_shared() else [])]
        self.overdue_logged = False

    def start(self) -> None:
        threading.Thread(target=self._run, name="readiness", daemon=True).start()

    def _run(self) -> None:
        try:
            side = threading.Thread(target=self._side, name="readiness-broker", daemon=True)
            side.start()
            _database_checks(self.checks)
            side.join()
        finally:
            self.done.set()

    def _side(self) -> None:
        self.checks["broker"] = check_broker()
        if "cache" in self.names:
            self.checks["cache"] = check_cache()

    def result(self, timeout: float) -> dict[str, str]:
        """The checks once finished, or at the deadline: those still running count as failed."""
        self.done.wait(max(0.0, self.started + timeout - time.monotonic()))
        checks = dict(self.checks)
        missing = [name for name in self.names if name not in checks]
        if missing and not self.overdue_logged:
            self.overdue_logged = True
            logger.warning("readiness: %s check(s) did not finish within %g s", ", ".join(missing), timeout)
        for name in missing:
            checks[name] = SKIPPED if name == "migrations" and checks.get("database") != OK else UNREACHABLE
        if checks["database"] != OK:
            checks["migrations"] = SKIPPED
        return {name: checks[name] for name in self.names}


_lock = threading.Lock()
_current: _Run | None = None


def readiness() -> tuple[bool, dict[str, str]]:
    """Start a set of checks unless one is running (then share it), and wait for it up to
    ``READINESS_TIMEOUT`` seconds from its start."""
    global _current
    with _lock:
        run = _current
        if run is None or run.done.is_set():
            run = _current = _Run()
            run.start()
    checks = run.result(_setting("READINESS_TIMEOUT", READINESS_TIMEOUT_SECONDS))
    return all(state == OK for state in checks.values()), checks


@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    ready, checks = readiness()
    if ready:
        return _json({"status": "ready", "checks": checks})
    failed = [name for name, state in checks.items() if state not in (OK, SKIPPED)]
    reason = "; ".join(f"{name} {checks[name]}" for name in failed)
    response = _json({"status": "unavailable", "reason": reason, "failed": failed, "checks": checks}, status=503)
    # The failed checks are logged above as warnings, with their cause; without this Django would add an
    # ERROR "Service Unavailable: /readyz" on every probe while a dependency is down or a deploy migrates.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _log_failure(check: str, exc: BaseException) -> None:
    # The class and message for the operator; the response body gets none of it.
    logger.warning("readiness: %s check failed: %s: %s", check, type(exc).__name__, str(exc)[:300])


PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {"/healthz": healthz, "/readyz": readyz}


class ProbeMiddleware:
    """Answer the probe paths before host validation, the HTTPS redirect and CSRF: ``GET``/``HEAD``
    with the view, any other method ``405`` with ``Allow: GET, HEAD``.

    Put it right after ``RequestIdMiddleware`` (responses still carry ``X-Request-ID``).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = PROBES.get(request.path_info)
        if view is None:
            return self.get_response(request)
        if request.method in PROBE_METHODS:
            return view(request)
        response = HttpResponseNotAllowed(PROBE_METHODS)
        response["Cache-Control"] = "no-store"
        response._has_been_logged = True  # type: ignore[attr-defined]  # (the access log has it)
        return response
