"""Prometheus metrics (prometheus-client) and the protected ``/metrics`` endpoint.

Metric names (all prefixed ``controlplane_``):

- ``http_requests_total{route,method,status}`` and ``http_request_duration_seconds{route,method,status}``:
  ``route`` is the URL pattern's name (``data-source-detail``), else its pattern, never the raw
  path; ``unmatched`` for a URL that names no view, ``metrics`` for a scrape.
- ``connection_tests_total{type,stage,outcome}`` and ``connection_test_duration_seconds{type,outcome}``:
  ``outcome`` is ``passed``, ``failed`` (``stage`` names the failing stage; ``none`` when passed)
  or ``unavailable`` (no connector can test the type here: ``stage`` ``connector``).
- ``schema_refresh_duration_seconds{type,outcome}`` (``ok``, ``failed``, ``busy``, ``error``) and
  ``schema_refresh_failures_total{type}`` (``failed`` and ``error``).
- ``task_queue_lag_seconds{task}``: a Celery task's wait from enqueue (or its retry ETA) to start.
- ``schema_refresh_oldest_pending_seconds``: age of the oldest source queued for a refresh and
  not started yet (read from the database at each scrape; 0 when none; ``datasources.metrics``).

Several processes (gunicorn workers, Celery workers): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory shared by all of them (the same machine, or a shared volume) before they start; each
process writes its samples there and ``/metrics`` sums them (prometheus-client's multiprocess
mode). Without it, ``/metrics`` shows the answering process only (fine for a single process).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
import re
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, disable_created_metrics, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def _process_identity() -> str:
    """Host and pid: processes of several containers may share one directory (each has its pid 1)."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())
    return f"{host}-{os.getpid()}"


if MULTIPROC_DIR:
    # Before the first metric is created; the identity is re-read after a fork (gunicorn, prefork).
    values.ValueClass = values.MultiProcessValue(_process_identity)

disable_created_metrics()  # no *_created series: half the samples, and nothing here reads them

NAMESPACE = "controlplane"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SLOW_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
LAG_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)

HTTP_REQUESTS = Counter("http_requests", "HTTP requests answered, by route, method and status.",
                        ["route", "method", "status"], namespace=NAMESPACE)
HTTP_DURATION = Histogram("http_request_duration_seconds", "Time to answer an HTTP request.",
                          ["route", "method", "status"], namespace=NAMESPACE, buckets=LATENCY_BUCKETS)
CONNECTION_TESTS = Counter("connection_tests", "Connection tests run, by source type, failing stage and outcome.",
                           ["type", "stage", "outcome"], namespace=NAMESPACE)
CONNECTION_TEST_DURATION = Histogram("connection_test_duration_seconds", "Time a connection test took.",
                                     ["type", "outcome"], namespace=NAMESPACE, buckets=SLOW_BUCKETS)
REFRESH_DURATION = Histogram("schema_refresh_duration_seconds", "Time a schema refresh took, by outcome.",
                             ["type", "outcome"], namespace=NAMESPACE, buckets=SLOW_BUCKETS)
REFRESH_FAILURES = Counter("schema_refresh_failures", "Schema refreshes that failed (introspection or error).",
                           ["type"], namespace=NAMESPACE)
TASK_QUEUE_LAG = Histogram("task_queue_lag_seconds", "Wait of a Celery task from enqueue (or ETA) to start.",
                           ["task"], namespace=NAMESPACE, buckets=LAG_BUCKETS)

UNMATCHED = "unmatched"
F = TypeVar("F", bound=Callable[..., Any])


# --- Recording ------------------------------------------------------------------------------------

def route_of(request: HttpRequest) -> str:
    """The route label: the URL pattern's name, else its pattern; never the path itself."""
    explicit = getattr(request, "metrics_route", None)
    if explicit:
        return explicit
    match = getattr(request, "resolver_match", None)
    if match is None:  # answered before URL resolution (a probe, a refusal): resolve it here
        try:
            match = resolve(request.path_info)
        except (Resolver404, ValueError):
            return UNMATCHED
    if match.url_name:
        return match.view_name
    return match.route or UNMATCHED


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    labels = {"route": route, "method": method if method in METHODS else "other", "status": str(status)}
    HTTP_REQUESTS.labels(**labels).inc()
    HTTP_DURATION.labels(**labels).observe(seconds)


def observe_task_queue_lag(task: str, seconds: float) -> None:
    TASK_QUEUE_LAG.labels(task=task).observe(seconds)


def observe_connection_test(func: F) -> F:
    """Decorates ``run_test(config, ...)``: counts each test by type, failing stage and outcome."""

    @functools.wraps(func)
    def wrapper(config: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        type_key = str(getattr(config, "type_key", "") or "unknown")
        try:
            result = func(config, *args, **kwargs)
        except Exception as exc:
            outcome, stage = ("unavailable", "connector") if _is_unavailable(exc) else ("error", "none")
            _count_test(type_key, stage, outcome, time.perf_counter() - start)
            raise
        ok = bool(getattr(result, "ok", False))
        stage = "none" if ok else str(getattr(result, "stage", None) or "unknown")
        _count_test(type_key, stage, "passed" if ok else "failed", time.perf_counter() - start)
        return result

    return cast(F, wrapper)


def _is_unavailable(exc: Exception) -> bool:
    return type(exc).__name__ in {"ConnectorUnavailableError", "ConnectorUnavailable"}


def _count_test(type_key: str, stage: str, outcome: str, seconds: float) -> None:
    CONNECTION_TESTS.labels(type=type_key, stage=stage, outcome=outcome).inc()
    CONNECTION_TEST_DURATION.labels(type=type_key, outcome=outcome).observe(seconds)


def observe_schema_refresh(func: F) -> F:
    """Decorates ``refresh_schema(*, data_source, ...)``: its duration by outcome, and failures."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        type_key = str(getattr(kwargs.get("data_source"), "type", "") or "unknown")
        try:
            outcome = func(*args, **kwargs)
        except Exception:
            _count_refresh(type_key, "error", time.perf_counter() - start)
            raise
        label = "busy" if getattr(outcome, "busy", False) else "ok" if getattr(outcome, "ok", False) else "failed"
        _count_refresh(type_key, label, time.perf_counter() - start)
        return outcome

    return cast(F, wrapper)


def _count_refresh(type_key: str, outcome: str, seconds: float) -> None:
    REFRESH_DURATION.labels(type=type_key, outcome=outcome).observe(seconds)
    if outcome in ("failed", "error"):
        REFRESH_FAILURES.labels(type=type_key).inc()


class ScrapeGauge:
    """A gauge read at scrape time: ``read()`` returns its value, or ``None`` to leave it out of
    this scrape (e.g. the database is down: the scrape still answers)."""

    def __init__(self, name: str, help: str, read: Callable[[], float | None]) -> None:
        self.name, self.help, self.read = name, help, read

    def describe(self) -> list:
        return [GaugeMetricFamily(self.name, self.help)]

    def collect(self) -> list:
        value = self.read()
        return [] if value is None else [GaugeMetricFamily(self.name, self.help, value=value)]


_SCRAPE_GAUGES: dict[str, ScrapeGauge] = {}


def register_scrape_gauge(name: str, help: str, read: Callable[[], float | None]) -> None:
    """Serve ``controlplane_<name>`` from ``read`` at each scrape. The app that owns the data
    registers its gauges at startup (core knows no app's models); once per name."""
    if name in _SCRAPE_GAUGES:
        return
    gauge = ScrapeGauge(f"{NAMESPACE}_{name}", help, read)
    _SCRAPE_GAUGES[name] = gauge
    if not MULTIPROC_DIR:
        REGISTRY.register(gauge)


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The scrape body: every process's samples in multiprocess mode, else this process's."""
    if MULTIPROC_DIR:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=MULTIPROC_DIR)
        for gauge in _SCRAPE_GAUGES.values():
            registry.register(gauge)
    else:
        registry = REGISTRY
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


# --- The endpoint ---------------------------------------------------------------------------------

LOOPBACK = ("127.0.0.0/8", "::1/128")
PATH = "/metrics"


def parse_networks(entries: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """CIDRs (or single addresses); ValueError naming the first bad one."""
    networks = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"METRICS_ALLOWED_NETWORKS: {entry!r} is not a network (CIDR): {exc}") from exc
    return networks


def _client_address(request: HttpRequest) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(str(request.META.get("REMOTE_ADDR", "")).split("%")[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the scrape may be served.

    Each configured check must pass: ``METRICS_TOKEN`` (``Authorization: Bearer <token>``) and
    ``METRICS_ALLOWED_NETWORKS`` (the peer address, ``REMOTE_ADDR``: forwarded headers are not
    trusted). With neither set, loopback only.
    """
    token = getattr(settings, "METRICS_TOKEN", "") or ""
    entries = list(getattr(settings, "METRICS_ALLOWED_NETWORKS", []) or [])
    if not token and not entries:
        entries = list(LOOPBACK)
    if entries:
        address = _client_address(request)
        if address is None or not any(address in net for net in parse_networks(entries)
                                      if net.version == address.version):
            return HttpResponse("Forbidden: /metrics is not served to this address.\n", status=403,
                                content_type="text/plain; charset=utf-8")
    if token:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            response = HttpResponse("Unauthorized: send Authorization: Bearer <METRICS_TOKEN>.\n", status=401,
                                    content_type="text/plain; charset=utf-8")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return None


class MetricsEndpointMiddleware:
    """Answers ``GET /metrics`` itself, before sessions, authentication, CSRF and the HTTPS
    redirect (a scraper speaks plain HTTP to the process, with its own bearer token)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.rstrip("/") != PATH:
            return self.get_response(request)
        request.metrics_route = "metrics"  # type: ignore[attr-defined]
        if request.method not in ("GET", "HEAD"):
            response = HttpResponse("Method not allowed.\n", status=405, content_type="text/plain; charset=utf-8")
            response["Allow"] = "GET, HEAD"
            return response
        refused = refusal(request)
        if refused is not None:
            return refused
        body, content_type = exposition(request.META.get("HTTP_ACCEPT"))
        response = HttpResponse(body, content_type=content_type)
        response["Cache-Control"] = "no-store"
        return response
