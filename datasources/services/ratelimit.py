"""Connection tests are rate-limited per token and per organization (fixed one-minute windows).

Counters live in Django's cache: set CACHE_URL to a shared cache (Redis) when running several
web processes, so the limit holds across them.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

from core.errors import ApiError, ErrorCode
from organizations.actors import Actor

WINDOW = 60


class RateLimited(ApiError):
    code = ErrorCode.RATE_LIMITED
    status_code = 429


def consume_test_budget(actor: Actor) -> None:
    """Count one connection test for the actor's token (or user) and organization; 429 when over."""
    if actor.is_system:
        return
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
            raise RateLimited(
                f"Too many connection tests: at most {limit} a minute. Retry in {retry_after} s.",
                headers={"Retry-After": str(retry_after)},
                extra={"retry_after": retry_after},
            )
