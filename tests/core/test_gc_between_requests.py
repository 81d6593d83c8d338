"""Garbage collection between requests (core/gc_between_requests.py, as config/wsgi.py serves).

The wrapped WSGI application is called as a WSGI server calls it: the body is written, then the
response closed. Django's ``close_old_connections`` is held back while it runs, as Django's test
client does: the test's transaction must outlive the request.
"""

from __future__ import annotations

import gc
import io
import weakref
from collections.abc import Iterator

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.http import FileResponse, HttpResponse

from core import gc_between_requests
from core.gc_between_requests import BETWEEN_REQUESTS, DURING_REQUEST, OLDER, generation_due
from datasources.models import DataSource


@pytest.fixture
def wrapped() -> Iterator:
    thresholds = gc.get_threshold()
    assert gc_between_requests._state.in_flight == 0, "a request left in flight by an earlier test"
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield gc_between_requests.wrap(WSGIHandler())
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)
        gc.set_threshold(*thresholds)
        gc_between_requests._state.in_flight = 0


class Collections:
    """Every collection the cyclic collector runs, noted as during or after a request."""

    def __init__(self) -> None:
        self.in_request = False
        self.during: list[int] = []
        self.after: list[int] = []

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            (self.during if self.in_request else self.after).append(info["generation"])


@pytest.fixture
def collections() -> Iterator[Collections]:
    seen = Collections()
    gc.callbacks.append(seen)
    try:
        yield seen
    finally:
        gc.callbacks.remove(seen)


def _environ(path: str, token: str) -> dict:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "testserver",
            "SERVER_PORT": "80", "HTTP_HOST": "testserver", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": io.StringIO(),
            "HTTP_AUTHORIZATION": f"Bearer {token}"}


def _serve(application, environ: dict, seen: Collections) -> tuple[str, bytes]:
    """Call, write the body and close, as a WSGI server does; ``seen`` marks the request's span."""
    status: list[str] = []
    seen.in_request = True
    result = application(environ, lambda s, headers, exc_info=None: status.append(s))
    body = b"".join(result)
    seen.in_request = False
    result.close()
    return status[0], body


@pytest.mark.parametrize(("counts", "promoted", "kept", "due"), [
    ((0, 0, 0), 0, 0, None),
    ((BETWEEN_REQUESTS, 5, 5), 0, 0, None),  # CPython collects above its threshold, not at it
    ((BETWEEN_REQUESTS + 1, 0, 0), 0, 0, 0),
    ((BETWEEN_REQUESTS + 1, OLDER, 0), 0, 0, 0),
    ((BETWEEN_REQUESTS + 1, OLDER + 1, 0), 0, 0, 1),
    ((BETWEEN_REQUESTS + 1, OLDER + 1, OLDER + 1), 250, 1000, 2),
    ((BETWEEN_REQUESTS + 1, 0, OLDER + 1), 250, 1000, 2),  # the oldest generation due wins
    # a full collection waits until a quarter of what the last one kept has been promoted since
    ((BETWEEN_REQUESTS + 1, OLDER + 1, OLDER + 1), 249, 1000, 1),
    ((BETWEEN_REQUESTS + 1, 0, OLDER + 1), 249, 1000, 0),
    ((5, OLDER + 1, OLDER + 1), 250, 1000, None),  # nothing young: nothing to do yet
])
def test_generation_due_follows_cpython_rule(counts, promoted, kept, due):
    assert generation_due(counts, promoted, kept) == due


def test_a_page_of_50_is_built_without_a_collection_and_collected_after(wrapped, collections, org, make_client):
    DataSource.objects.bulk_create(
        DataSource(organization=org, reference_id=f"g{i:05d}", name=f"src {i:03d}", type="sqlite",
                   connection={"path": "x.db"}, tags=["t"]) for i in range(60))
    token = make_client(org).raw_token
    assert gc.get_threshold()[0] == DURING_REQUEST
    _serve(wrapped, _environ("/api/v1/data-sources/", token), collections)  # the first one resolves the token
    gc.collect()
    collections.during.clear()
    collections.after.clear()
    for _ in range(4):  # at CPython's threshold of 700, each page of 50 starts a collection mid-request
        status, body = _serve(wrapped, _environ("/api/v1/data-sources/", token), collections)
        assert status.startswith("200") and body.count(b'"reference_id"') == 50
    assert collections.during == []
    assert collections.after, "no collection ran once the responses were closed"
    assert gc.get_count()[0] <= BETWEEN_REQUESTS


def test_the_response_is_let_go_before_the_collection(wrapped, collections):
    """What only the response keeps alive, in a cycle, is freed by the collection after close()."""
    app = _ring_app(BETWEEN_REQUESTS + 100)
    gc.collect()
    collections.after.clear()
    status, body = _serve(gc_between_requests.wrap(app), {}, collections)
    assert (status, body) == ("200 OK", b"ok")
    assert collections.after, "no collection after the response was closed"
    assert app.probes[0]() is None, "the response's cycle outlived the collection after close()"


def test_a_file_for_the_servers_file_wrapper_is_passed_through(wrapped, tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"file")

    class FileWrapper:
        def __init__(self, filelike, block_size=8192):
            self.filelike = filelike

    def respond(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](FileResponse(path.open("rb")).file_to_stream)

    result = gc_between_requests.wrap(respond)({"wsgi.file_wrapper": FileWrapper}, lambda *a: None)
    assert isinstance(result, FileWrapper)  # sendfile stays possible
    result.filelike.close()


class _Ring:
    next: _Ring


def _ring_app(size: int):
    """A WSGI app whose response alone holds a cycle of ``size`` objects; ``app.probes`` weakly
    refer to one object of each response's cycle."""

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        response = HttpResponse(b"ok")
        ring = [_Ring() for _ in range(size)]
        for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
            a.next = b
        response.ring = ring[0]
        app.probes.append(weakref.ref(ring[-1]))
        return response

    app.probes = []
    return app


def test_no_collection_while_another_request_is_in_flight(wrapped, collections):
    """In a threaded worker the collection would pause the other requests and promote what they hold:
    it waits for the last request in flight to close."""
    app = _ring_app(BETWEEN_REQUESTS + 100)
    served = gc_between_requests.wrap(app)
    gc.collect()
    collections.after.clear()
    first, second = served({}, lambda *a: None), served({}, lambda *a: None)  # both in flight
    b"".join(first)
    first.close()
    assert collections.after == [] and app.probes[0]() is not None, "collected with a request in flight"
    b"".join(second)
    second.close()
    assert collections.after, "no collection once the last request closed"
    assert app.probes[0]() is None and app.probes[1]() is None
