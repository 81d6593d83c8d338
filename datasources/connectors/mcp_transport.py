"""The MCP connector's HTTP transport: the httpx2 client the MCP SDK is given sends only to the server URL's
origin and opens every TCP connection to the address ``reach_http`` checked and pinned in the egress scope.

``PinnedBackend`` is httpcore2's network backend connecting to the pinned address of the server's host name
(TLS still verifies that host name, sent as SNI); ``PinnedTransport`` refuses any other origin before a
connection (so a redirect or an SSE ``endpoint`` naming another host gets zero attempts), has no retries and
no environment (proxies, .netrc), records the status of every answer and caps each response at
MAX_RESPONSE_BYTES.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpcore2
import httpx2

from .guard import EgressScope
from .http_stages import Endpoint

MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class PinnedBackend(httpcore2.AsyncNetworkBackend):
    """Every TCP connection goes to the checked address of the server's host name; nothing else is reachable."""

    def __init__(self, endpoint: Endpoint, scope: EgressScope):
        self.endpoint = endpoint
        self.scope = scope
        self.inner = httpcore2.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        try:
            address = self.scope.address_for(host, port)  # the pin; any other name is refused (only=)
        except OSError:
            raise httpcore2.ConnectError("refused by the egress policy") from None
        if port != self.endpoint.port:
            raise httpcore2.ConnectError("refused: not the server URL's port")
        return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
    # connect_unix_socket stays the base class's NotImplementedError: no uds is ever configured.


class _Capped(httpx2.AsyncByteStream):
    def __init__(self, stream: Any):
        self.stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in self.stream:
            total += len(chunk)
            if total > MAX_RESPONSE_BYTES:
                raise httpx2.ReadError("the response is too large")
            yield chunk

    async def aclose(self) -> None:
        await self.stream.aclose()


class PinnedTransport(httpx2.AsyncHTTPTransport):
    """httpx2's transport over a ``PinnedBackend`` pool, for the server URL's origin only; records answers."""

    def __init__(self, endpoint: Endpoint, scope: EgressScope, context: ssl.SSLContext):
        super().__init__(verify=context, trust_env=False, retries=0)
        # The pool httpx2 builds resolves names itself: replace it by one on the pinned backend.
        self._pool = httpcore2.AsyncConnectionPool(ssl_context=context, network_backend=PinnedBackend(endpoint, scope),
                                                   max_connections=8, retries=0)
        self.endpoint = endpoint
        self.seen: list[tuple[str, int]] = []  # (method, status) of every answer
        self.left_origin = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url, e = request.url, self.endpoint
        if (url.scheme, (url.host or "").lower(), url.port or (443 if url.scheme == "https" else 80)) != (
                e.scheme, e.host, e.port):
            self.left_origin = True
            raise httpx2.ConnectError("refused: not the server URL's origin", request=request)
        response = await super().handle_async_request(request)
        self.seen.append((request.method, response.status_code))
        return httpx2.Response(response.status_code, headers=response.headers, stream=_Capped(response.stream),
                               extensions=response.extensions)
