"""Liveness and readiness probes: ``GET /healthz`` and ``GET /readyz``.

- ``/healthz``: the process answers HTTP. Always ``200 {"status": "ok"}``; it touches nothing else,
  so a database or broker outage never makes an orchestrator restart healthy web processes.
- ``/readyz``: this process can serve traffic. Three checks, each reported by name:
  ``database`` (a ``SELECT 1`` on the default database), ``migrations`` (no migration of the code's
  migration graph left to apply, the same test as ``manage.py migrate --check``) and ``broker`` (a
  fresh connection to ``CELERY_BROKER_URL``, one attempt, ``READINESS_BROKER_TIMEOUT`` seconds at
  most). ``200`` when all pass, else ``503`` with ``reason`` and ``failed`` naming the failed checks.

Both are unauthenticated, answer ``GET`` and ``HEAD`` only, are never cached (``Cache-Control:
no-store``), and say nothing about the configuration: fixed words only (``ok``, ``unreachable``,
``pending``, ...), never a URL, host, user, version or exception text. The cause goes to the log.

Orchestrators probe with the address they reach the container by (a kubelet sends the pod IP as
``Host``, a load balancer the target's IP) and over plain HTTP. ``ProbeMiddleware`` therefore answers
these two paths before Django validates ``Host`` against ``ALLOWED_HOSTS`` and before the HTTPS
redirect: neither response depends on the host or the scheme, so no host-header attack applies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

OK = "ok"
UNREACHABLE = "unreachable"
PENDING = "pending"  # migrations: some are not applied
SKIPPED = "skipped"  # migrations: the database could not be reached, so they were not checked

BROKER_TIMEOUT_SECONDS = 2.0


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

    timeout = float(getattr(settings, "READINESS_BROKER_TIMEOUT", BROKER_TIMEOUT_SECONDS))
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


def _log_failure(check: str, exc: BaseException) -> None:
    # The class and message for the operator; the response body gets none of it.
    logger.warning("readiness: %s check failed: %s: %s", check, type(exc).__name__, str(exc)[:300])


def readiness() -> tuple[bool, dict[str, str]]:
    checks = {"database": check_database()}
    checks["migrations"] = check_migrations() if checks["database"] == OK else SKIPPED
    checks["broker"] = check_broker()
    ready = all(state == OK for state in checks.values())
    return ready, checks


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


PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {"/healthz": healthz, "/readyz": readyz}


class ProbeMiddleware:
    """Answer ``GET``/``HEAD`` on the probe paths before host validation and the HTTPS redirect.

    Put it right after ``RequestIdMiddleware`` (responses still carry ``X-Request-ID``). Other
    methods go down the normal chain (and get 405 from the same views, routed in config/urls.py).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = PROBES.get(request.path_info)
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)
