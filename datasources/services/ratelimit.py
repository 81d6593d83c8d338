"""Connection tests are rate-limited per token and per organization (fixed one-minute windows), and
bounded in how many run at once (``test_slots``: per process and per organization).

Counters and slots live in Django's cache: set CACHE_URL to a shared cache (Redis) when running
several web processes, so the limits hold across them.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache

from core.errors import ApiError, ErrorCode
from datasources.services import test_slots
from organizations.actors import Actor

WINDOW = 60

logger = logging.getLogger(__name__)


class RateLimited(ApiError):
    code = ErrorCode.RATE_LIMITED
    status_code = 429


class CacheUnavailable(ApiError):
    """503 SERVICE_UNAVAILABLE: the shared cache that counts tests (CACHE_URL) is unreachable; nothing
    was tested or changed."""

    code = ErrorCode.SERVICE_UNAVAILABLE
    status_code = 503
    default_message = ("Connection tests are unavailable: the shared cache that counts them (CACHE_URL) cannot "
                       "be reached. Nothing was tested or changed; retry later.")
    retry_after = 30

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": str(self.retry_after)}, extra={"retry_after": self.retry_after})


def _limited(message: str, retry_after: int) -> RateLimited:
    return RateLimited(message, headers={"Retry-After": str(retry_after)}, extra={"retry_after": retry_after})


def consume_test_budget(actor: Actor, *, timeout: float | None = None) -> None:
    """Before a connection test of ``timeout`` seconds (the source's connection_timeout; None: not
    known): a running-test slot, then one count of the actor's token (or user) and organization
    budgets. 429 RATE_LIMITED with Retry-After when any is exhausted; a refusal for want of a slot
    counts nothing. 503 (``CacheUnavailable``) when the shared cache cannot be reached. The slot is
    held until the request ends (or the thread tests again)."""
    if actor.is_system:
        return
    try:
        slot = test_slots.acquire(actor.organization.pk, timeout)
    except test_slots.SlotsBusy as exc:
        raise _limited(str(exc), exc.retry_after) from exc
    except test_slots.CacheUnavailable as exc:
        raise CacheUnavailable() from exc
    try:
        _count(actor)
    except test_slots.cache_errors() as exc:
        test_slots.release(slot)
        logger.warning("connection-test rate limits: the shared cache is unreachable: %s: %s", type(exc).__name__,
                       str(exc)[:300])
        raise CacheUnavailable() from exc
    except BaseException:
        test_slots.release(slot)
        raise


def _count(actor: Actor) -> None:
    now = time.time()
    window = int(now // WINDOW)
    retry_after = max(1, int(WINDOW - now % WINDOW))
    who = f"token:{actor.token.pk}" if actor.token is not None else f"user:{getattr(actor.user, 'pk', None)}"
    limits = [
        (f"conntest:{who}:{window}", settings.DATASOURCE_TEST_RATE_PER_TOKEN),
        (f"conntest:org:{actor.organization.pk}:{window}", settings.DATASOURCE_TEST_RATE_PER_ORG),
    ]
    for key, limit in limits:
        cache.add(key, 0, timeout=WINDOW + 5)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=WINDOW + 5)
            count = 1
        if count > limit:
            raise _limited(f"Too many connection tests: at most {limit} a minute. Retry in {retry_after} s.",
                           retry_after)
