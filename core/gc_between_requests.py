"""Cyclic garbage collection between requests instead of in the middle of them.

A request leaves what it built in reference cycles: Django's request and its lazy user, DRF's view
and request, a serializer and its fields, prefetched rows pointing back at their parents. For a
page of 50 data sources that is about 650 containers, freed only by the cyclic collector. CPython
collects its youngest generation whenever 700 more containers are alive than at its last
collection, so collections ran *inside* requests: each one promoted the running request's live
objects to the older generations, whose collections then cost ~2 ms (every tenth) to tens of ms (a
full one) inside a later request. Measured under wrk (bench/FINDINGS.md): 12% of list requests ran
a middle-generation collection and 1% a full one.

``wrap()`` (config/wsgi.py, after start-up and ``gc.freeze()``) raises the automatic threshold of
the youngest generation to ``DURING_REQUEST``, a safety net for very large requests, and hands the
WSGI server each response inside a small iterable whose ``close()`` closes the response (Django's
``request_finished``), lets go of it and then collects, once no other request of the process is in
flight (a threaded worker's other requests would be paused, their live objects promoted; under
constant concurrency the safety net collects instead). The client has its answer by then and the
request's objects are unreachable, so a young collection frees them and promotes next to nothing.
The generation collected follows CPython 3.11's rule: the youngest after 700 objects, an older one
after 10 collections of the one below, a full one only once the objects promoted since the last
outnumber a quarter of those it kept. In process, over 2,000 list requests, the collector's total
time fell from 0.77 s to 0.45 s and its longest pause from 4.5 ms (inside a request) to 0.6 ms
(after one). A response handed to the server's ``wsgi.file_wrapper`` (sendfile) is left as it is:
no collection follows it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.http import HttpResponseBase

#: young objects more than at the last collection before one runs automatically (inside a request)
DURING_REQUEST = 20_000
#: ... and before one runs after a request: CPython's default threshold
BETWEEN_REQUESTS = 700
#: collections of a generation before the next older one is collected (CPython's default)
OLDER = 10

WSGIApplication = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class _State:
    in_flight: int = 0
    promoted: int = 0  # objects moved to the oldest generation since the last full collection
    kept: int = 0  # objects in the oldest generation after the last full collection


_state = _State()
_lock = threading.Lock()


def generation_due(counts: tuple[int, int, int], promoted: int = 0, kept: int = 0) -> int | None:
    """The generation CPython would collect at ``gc.get_count()`` = ``counts`` (None: none yet),
    given the objects ``promoted`` to the oldest generation since the last full collection and
    the objects it ``kept`` then."""
    young, middle, old = counts
    if young <= BETWEEN_REQUESTS:
        return None
    if old > OLDER and promoted >= kept / 4:
        return 2
    return 1 if middle > OLDER else 0


def collect() -> int | None:
    """Collect the generation due, if any; returns it."""
    generation = generation_due(gc.get_count(), _state.promoted, _state.kept)
    if generation is None:
        return None
    if generation == 1:  # what survives it moves to the oldest generation
        candidates = len(gc.get_objects(generation=0)) + len(gc.get_objects(generation=1))
        _state.promoted += max(0, candidates - gc.collect(1))
    else:
        gc.collect(generation)
    if generation == 2:
        _state.promoted, _state.kept = 0, len(gc.get_objects(generation=2))
    return generation


class _CollectedResponse:
    """The iterable the WSGI server writes and closes: the response, until it is closed."""

    __slots__ = ("_response",)

    def __init__(self, response: HttpResponseBase) -> None:
        self._response: HttpResponseBase | None = response

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._response if self._response is not None else ())

    def close(self) -> None:
        response, self._response = self._response, None
        if response is None:
            return
        try:
            response.close()
        finally:
            del response  # the server's reference was the last live one: the request is now garbage
            _finished()


def _finished() -> None:
    with _lock:
        _state.in_flight -= 1
        idle = _state.in_flight == 0
    if idle:
        collect()


def wrap(application: WSGIApplication) -> WSGIApplication:
    """``application`` with its requests' garbage collected after each response (see the module)."""
    gc.set_threshold(DURING_REQUEST, OLDER, OLDER)

    def collected(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with _lock:
            _state.in_flight += 1
        try:
            result = application(environ, start_response)
        except BaseException:
            _finished()
            raise
        if isinstance(result, HttpResponseBase):
            return _CollectedResponse(result)
        _finished()  # a file for the server's wsgi.file_wrapper: its request is done as far as we know
        return result

    return collected
