"""The real app on a loopback port, for tests that drive it over HTTP (fuzzing, generated clients).

pytest-django's session-wide ``live_server`` builds its middleware once, with the production
default ``SECURE_SSL_REDIRECT = not DEBUG`` (True under tests), and would redirect every request
to https. ``LiveHTTPServer`` starts the same helper (Django's ``LiveServerThread``) *after* the
per-test settings are in place, serves plain HTTP on 127.0.0.1 and stops with the test.

Use it from a fixture that depends on ``transactional_db`` (the server thread must see committed
rows) and ``settings``::

    @pytest.fixture
    def server(transactional_db, settings):
        with live_http_server(settings) as live:
            yield live
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pytest_django.live_server_helper import LiveServer

from tests.support.http_client import http_request

HOST = "127.0.0.1"
# Connection tests per minute: fuzzing runs hundreds of them in a minute.
HIGH_TEST_RATE = 1_000_000


@dataclass
class LiveHTTPServer:
    url: str
    server: LiveServer

    def request(
        self, method: str, path: str, *, token: str | None = None, body: Any = None, headers: dict | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """A plain HTTP request (stdlib only); returns (status, headers, decoded JSON body or text)."""
        return http_request(self.url + path, method, token=token, body=body, headers=headers)


def prepare_settings(settings: Any) -> None:
    """Plain HTTP on loopback, connection tests to loopback allowed, no rate limit in the way."""
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    settings.DATASOURCE_TEST_RATE_PER_TOKEN = HIGH_TEST_RATE
    settings.DATASOURCE_TEST_RATE_PER_ORG = HIGH_TEST_RATE
    settings.SCHEMA_REFRESH_ASYNC = False  # refresh inside the request: no worker in these tests
    if HOST not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]


@contextlib.contextmanager
def live_http_server(settings: Any) -> Iterator[LiveHTTPServer]:
    """Start the app on 127.0.0.1:<free port> for the duration of the block."""
    prepare_settings(settings)
    server = LiveServer(HOST)
    try:
        yield LiveHTTPServer(url=server.url, server=server)
    finally:
        server.stop()
