"""One access-log line per request, and the request metrics from the same measurement.

Logger ``core.access``; fields: ``request_id`` (the one the response's ``X-Request-ID`` and any
error body carry), ``actor`` (``token:<name>``, ``token:<name> (user:<username>)``,
``user:<username>`` or ``anonymous``; never a token's value), ``route`` (as the metrics label:
the URL pattern's name, never the raw path), ``method``, ``path`` (without the query string),
``status`` and ``duration_ms``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from core import metrics
from core.request_id import current_request_id

logger = logging.getLogger("core.access")


def actor_of(request: HttpRequest) -> str:
    """Who the request acted as, from what authentication already resolved (no query of its own)."""
    token = getattr(request, "auth", None)
    token_name = getattr(token, "name", None) if token is not None else None
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        user = None  # the session user was never looked at: do not load it just to log it
    username = None
    if user is not None and getattr(user, "is_authenticated", False) and getattr(user, "pk", None) is not None:
        username = user.get_username()
    if token_name is not None:
        return f"token:{token_name} (user:{username})" if username else f"token:{token_name}"
    return f"user:{username}" if username else "anonymous"


class AccessLogMiddleware:
    """Times the request (everything inside it: refusals, views, error pages) and logs it once."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        seconds = time.perf_counter() - start
        route = metrics.route_of(request)
        metrics.observe_request(route, request.method or "", response.status_code, seconds)
        rid = getattr(request, "request_id", None) or current_request_id()
        actor = actor_of(request)
        logger.info(
            "%s %s %s %s %s", request.method, route, response.status_code, f"{seconds * 1000:.1f}ms", actor,
            extra={
                "request_id": rid,
                "actor": actor,
                "route": route,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(seconds * 1000, 1),
            },
        )
        return response
