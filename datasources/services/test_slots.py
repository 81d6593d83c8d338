"""How many connection tests may run at once: per process and per organization.

A test may wait up to its ``connection_timeout`` (30 s by default) on a silent destination, holding
the thread that serves it. Two bounds keep slow tests from starving the API:

- per process: at most ``TEST_SLOTS_PER_PROCESS`` of its threads test at once (default all but two of
  ``GUNICORN_THREADS``), so the other threads keep serving reads; one organization holds at most all
  but one of them, so another organization's test always finds a slot of its own (with one process
  and a per-organization bound as large as the process's, one tenant's slow tests got every other
  tenant's tests a 429);
- per organization: at most ``DATASOURCE_TEST_CONCURRENCY_PER_ORG`` of its tests run at once in all
  processes, counted in Django's cache (Redis with ``CACHE_URL``; locmem counts per process). Each
  running test holds one of N slot keys, taken with an atomic ``add`` and a lease of its
  ``connection_timeout`` plus ``DATASOURCE_TEST_LEASE_MARGIN_SECONDS``: a worker that dies mid-test
  cannot keep a slot beyond that.

Past either bound the test is refused at once (``SlotsBusy``: the caller answers 429 with
Retry-After, the time until the earliest running test should end); nothing waits for a slot. When
the shared cache cannot be reached, ``CacheUnavailable`` (the caller answers 503): no slot is taken.

A thread holds at most one slot. It is released by ``release`` (``held_slot``'s finally), when the
thread's request ends (``request_finished``), when the thread starts another test, or when the
thread itself ends.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.signals import request_finished, request_started

from datasources.fields import CONNECTION_TIMEOUT

logger = logging.getLogger(__name__)

KEY = "conntest:running:{organization}:{index}"
LONGEST_TIMEOUT = int(CONNECTION_TIMEOUT.max_value or 300)  # the lease of a test whose timeout is not known

_ids = itertools.count(1)
_running: dict[int, tuple[float, int]] = {}  # this process's running tests: slot id -> (end, organization)
_lock = threading.RLock()  # re-entrant: a Slot's __del__ may release while it is held
_thread = threading.local()  # .slot: the slot this thread holds


class CacheUnavailable(Exception):
    """The shared cache (CACHE_URL) could not be read or written: no slot could be counted."""


def cache_errors() -> tuple[type[BaseException], ...]:
    """What a cache server that is down or unreachable raises (a socket error; redis-py's own)."""
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover (redis is a requirement)
        return (OSError,)
    return (OSError, RedisError)


class SlotsBusy(Exception):
    """No slot free: ``retry_after`` seconds until one should be."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(eq=False)
class Slot:
    """One running test's place: in this process (``id``) and in its organization (``key``)."""

    id: int
    key: str
    value: str
    ends_at: float  # time.time() when the test should be over (its connection_timeout)
    released: bool = field(default=False)

    def __del__(self) -> None:  # the thread that held it ended without releasing it
        if not self.released and _lock is not None:  # (at interpreter exit the module may be torn down)
            release(self)


def _seconds_until(moment: float, now: float) -> int:
    return max(1, math.ceil(moment - now - 0.01))  # (moments are kept to the millisecond)


def _take_local(organization_id: int, ends_at: float, now: float) -> int:
    limit = int(settings.TEST_SLOTS_PER_PROCESS)
    with _lock:
        if len(_running) >= limit:
            retry_after = _seconds_until(min(end for end, _ in _running.values()), now)
            raise SlotsBusy(f"Too many connection tests are running on this server (at most {limit} at once). "
                            f"Retry in {retry_after} s.", retry_after)
        own = [end for end, org in _running.values() if org == organization_id]
        if limit > 1 and len(own) >= limit - 1:  # the last slot is another organization's
            retry_after = _seconds_until(min(own), now)
            raise SlotsBusy(f"Too many connection tests of this organization are running on this server (at most "
                            f"{limit - 1} at once). Retry in {retry_after} s.", retry_after)
        slot_id = next(_ids)
        _running[slot_id] = (ends_at, organization_id)
    return slot_id


def _take_shared(organization_id: int, value: str, lease: int, now: float) -> str:
    limit = int(settings.DATASOURCE_TEST_CONCURRENCY_PER_ORG)
    keys = [KEY.format(organization=organization_id, index=index) for index in range(limit)]
    held = cache.get_many(keys)
    for key in keys:
        if key not in held and cache.add(key, value, timeout=lease):
            return key
    held = cache.get_many(keys)  # taken meanwhile: when the earliest of them should end
    ends = [float(v.rpartition("|")[2]) for v in held.values() if isinstance(v, str) and "|" in v]
    retry_after = _seconds_until(min(ends), now) if ends else 1
    raise SlotsBusy(f"Too many connection tests of this organization are running (at most {limit} at once). "
                    f"Retry in {retry_after} s.", retry_after)


def acquire(organization_id: int, timeout: float | None = None) -> Slot:
    """A slot for one test of ``timeout`` seconds (None: unknown, leased for the longest allowed
    connection_timeout); ``SlotsBusy`` when none is free. The thread's previous slot is released."""
    release_held()
    now = time.time()
    expected = float(timeout) if timeout else float(CONNECTION_TIMEOUT.default)
    margin = int(settings.DATASOURCE_TEST_LEASE_MARGIN_SECONDS)
    lease = math.ceil(float(timeout or LONGEST_TIMEOUT)) + margin
    ends_at = now + expected
    slot_id = _take_local(organization_id, ends_at, now)
    value = f"{uuid.uuid4().hex}|{ends_at:.3f}"
    try:
        key = _take_shared(organization_id, value, lease, now)
    except BaseException as exc:
        with _lock:
            _running.pop(slot_id, None)
        if isinstance(exc, cache_errors()):
            logger.warning("connection-test slots: the shared cache is unreachable: %s: %s", type(exc).__name__,
                           str(exc)[:300])
            raise CacheUnavailable(str(exc)) from exc
        raise
    slot = Slot(id=slot_id, key=key, value=value, ends_at=ends_at)
    _thread.slot = slot
    return slot


def release(slot: Slot) -> None:
    """Give the slot back (once; later calls do nothing). The shared key is deleted only while it
    still holds this slot's value (after its lease it may be another test's)."""
    if slot.released:
        return
    slot.released = True
    with _lock:
        _running.pop(slot.id, None)
    if getattr(_thread, "slot", None) is slot:
        _thread.slot = None
    try:
        if cache.get(slot.key) == slot.value:
            cache.delete(slot.key)
    except Exception:  # the lease frees it
        logger.warning("connection-test slot %s could not be released; its lease will", slot.key, exc_info=True)


def release_held(**_: Any) -> None:
    """Release the slot this thread holds, if any (at the start and end of each request)."""
    slot = getattr(_thread, "slot", None)
    if slot is not None:
        release(slot)


@contextmanager
def held_slot(organization_id: int, timeout: float | None = None) -> Iterator[Slot]:
    """``with held_slot(org_id, ds.connection_timeout): run the test`` (released in a finally)."""
    slot = acquire(organization_id, timeout)
    try:
        yield slot
    finally:
        release(slot)


def running_here() -> int:
    """Tests running in this process now."""
    with _lock:
        return len(_running)


request_started.connect(release_held, dispatch_uid="datasources-test-slots-started")
request_finished.connect(release_held, dispatch_uid="datasources-test-slots-finished")
