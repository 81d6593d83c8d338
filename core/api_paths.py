"""API paths answer with or without their final slash.

Django's ``APPEND_SLASH`` answers ``PATCH /api/v1/data-sources/1`` with a redirect (a 301 with DEBUG
off: a client that follows it re-sends the PATCH as a GET and the change is lost) or, with DEBUG on,
an HTML error page. Under ``/api/`` and ``/compat/`` the request is served where it was meant instead,
as the workflow routes (``/?$``) always were: a path without its slash is served at the path with
one, and a seed path that has no final slash (``/compat/maiascore/datasources/6``) is served with one
too. A path that resolves as sent is never touched, and the core API's own paths (which end in "/")
cost nothing here.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import is_valid_path

API_PREFIXES = ("/api/", "/compat/")
SEED_PREFIX = "/compat/"


def served_path(path: str, urlconf: str | None = None) -> str | None:
    """The path to serve instead of ``path``, or None to serve it as sent."""
    if not path.startswith(API_PREFIXES):
        return None
    if path.endswith("/"):
        other = path[:-1]
        if not path.startswith(SEED_PREFIX) or other.endswith("/"):
            return None
    else:
        other = path + "/"
    if is_valid_path(path, urlconf) or not is_valid_path(other, urlconf):
        return None
    return other


class OptionalTrailingSlashMiddleware:
    """Insert before ``CommonMiddleware`` (which would redirect first)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = served_path(request.path_info, getattr(request, "urlconf", None))
        if path is not None:
            script = request.path[: len(request.path) - len(request.path_info)]
            request.path_info, request.path = path, script + path
        return self.get_response(request)
