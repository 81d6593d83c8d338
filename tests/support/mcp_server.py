"""A real MCP server for the MCP connector's tests: the official Python SDK's low-level ``Server`` under uvicorn.

Started in a thread on 127.0.0.1 with an ephemeral port (``serve``; over TLS with a test certificate). What it
answers is the SDK's own server code; this module only supplies the catalogue and a few hostile switches:

- ``POST/GET/DELETE /mcp``: the SDK's streamable HTTP transport (stateful sessions, answers as SSE).
  JSON-RPC methods: ``initialize`` (capabilities tools + resources), ``notifications/initialized``,
  ``tools/list`` and ``resources/list`` paginated by ``page_size`` (cursor = the next offset), ``tools/call``
  (echoes its arguments), ``resources/read`` (a fixed text), ``ping``. Only the kinds in ``offer`` have
  handlers, so only those capabilities are announced (``()``: neither tools nor resources). With
  ``echo_token``, ``tools/list`` answers a JSON-RPC error quoting the token.
- ``GET /sse`` + ``POST /messages/?session_id=...``: the SDK's (legacy) SSE transport, same methods. A
  ``GET /mcp`` without ``mcp-session-id`` opens that SSE transport too: one URL serves both transports,
  the backwards-compatible arrangement the MCP specification describes (``sse_on_mcp=False``: it does not,
  and ``/mcp`` is the streamable HTTP transport alone, as on a server without the legacy transport).
- With ``token`` set, every MCP route sits behind the SDK's bearer-token middleware: no or a wrong
  ``Authorization: Bearer`` is answered ``401 {"error": "invalid_token"}`` with ``WWW-Authenticate``.
- ``GET /sse-elsewhere``: an SSE stream whose ``endpoint`` event names another host (``announce``).
- With ``redirect_to`` set, every ``POST /mcp`` is answered ``307 Location: <redirect_to>``.
- With ``stall`` set, every ``POST /mcp`` and ``GET /sse`` is held unanswered (a server that hangs after the
  HTTP probe).

``Catalog.requests`` records (method, path, had-authorization) per HTTP request; ``Catalog.calls`` records
(MCP method, cursor) per list call.
"""

from __future__ import annotations

import hmac
import os
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp.server.auth.middleware.bearer_auth import RequireAuthMiddleware
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.lowlevel import Server
from mcp.server.sse import SseServerTransport
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support.certs import Issued


def tool(name: str, properties: dict[str, Any], required: tuple[str, ...] = (), description: str = "") -> types.Tool:
    """A tool whose input schema is the given top-level properties."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return types.Tool(name=name, description=description or f"The {name} tool.", input_schema=schema)


def resource(uri: str, name: str, mime_type: str | None = None) -> types.Resource:
    return types.Resource(uri=uri, name=name, mime_type=mime_type)


@dataclass
class Catalog:
    """What the server offers, its switches, and what it saw."""

    tools: list[types.Tool] = field(default_factory=list)
    resources: list[types.Resource] = field(default_factory=list)
    page_size: int = 0  # 0: one page
    token: str = ""  # the bearer token required (fixed when the server starts: "" = no auth)
    redirect_to: str = ""
    stall: bool = False
    offer: tuple[str, ...] = ("tools", "resources")  # the list handlers registered (capabilities announced)
    echo_token: bool = False
    sse_on_mcp: bool = True  # GET /mcp without a session opens the SSE transport (both transports on one URL)
    announce: str = "http://169.254.169.254/messages/?session_id=0123456789abcdef"
    requests: list[tuple[str, str, bool]] = field(default_factory=list)
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""  # http://127.0.0.1:<port>, set by serve()

    def page(self, method: str, items: list[Any],
             params: types.PaginatedRequestParams | None) -> tuple[list[Any], str | None]:
        cursor = params.cursor if params else None
        self.calls.append((method, cursor))
        start = int(cursor or 0)
        size = self.page_size or max(len(items), 1)
        end = start + size
        return items[start:end], (str(end) if end < len(items) else None)


class StaticTokens:
    """The SDK's ``TokenVerifier`` protocol for one fixed token."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    async def verify_token(self, token: str) -> AccessToken | None:
        if self.catalog.token and hmac.compare_digest(token.encode(), self.catalog.token.encode()):
            return AccessToken(token=token, client_id="connector-tests", scopes=[])
        return None


def build_server(catalog: Catalog) -> Server[Any]:
    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        if catalog.echo_token:
            raise MCPError(types.INVALID_REQUEST, f"token {catalog.token} may not list tools")
        tools, cursor = catalog.page("tools/list", catalog.tools, params)
        return types.ListToolsResult(tools=tools, next_cursor=cursor)

    async def list_resources(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        resources, cursor = catalog.page("resources/list", catalog.resources, params)
        return types.ListResourcesResult(resources=resources, next_cursor=cursor)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=repr(params.arguments))])

    async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        return types.ReadResourceResult(contents=[types.TextResourceContents(uri=params.uri, text="id,amount\n1,2\n")])

    handlers: dict[str, Any] = {}
    if "tools" in catalog.offer:
        handlers.update(on_list_tools=list_tools, on_call_tool=call_tool)
    if "resources" in catalog.offer:
        handlers.update(on_list_resources=list_resources, on_read_resource=read_resource)
    return Server("connector-test-server", version="1.2.3", **handlers)


class Switches:
    """ASGI middleware: records requests, applies ``redirect_to`` / ``stall``, sends ``GET /mcp`` without a
    session to the SSE transport."""

    def __init__(self, app: ASGIApp, catalog: Catalog):
        self.app = app
        self.catalog = catalog

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        self.catalog.requests.append((scope["method"], scope["path"], b"authorization" in headers))
        if self.catalog.redirect_to and scope["method"] == "POST" and scope["path"] == "/mcp":
            await Response(status_code=307, headers={"Location": self.catalog.redirect_to})(scope, receive, send)
            return
        if self.catalog.stall and scope["path"] in ("/mcp", "/sse"):
            while self.catalog.stall:  # released (503) when the server stops
                await anyio.sleep(0.05)
            await Response(status_code=503)(scope, receive, send)
            return
        if (self.catalog.sse_on_mcp and scope["method"] == "GET" and scope["path"] == "/mcp"
                and b"mcp-session-id" not in headers):
            scope = {**scope, "path": "/sse"}
        await self.app(scope, receive, send)


class Open:
    """An ASGI app as it is, without the bearer-token check."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def build_app(catalog: Catalog) -> ASGIApp:
    server = build_server(catalog)
    sse = SseServerTransport("/messages/")

    async def handle_sse(scope: Scope, receive: Receive, send: Send) -> None:
        async with sse.connect_sse(scope, receive, send) as (read, write):
            await server.run(read, write, server.create_initialization_options())

    async def elsewhere(request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            yield f"event: endpoint\r\ndata: {catalog.announce}\r\n\r\n".encode()
            await anyio.sleep(30)

        return StreamingResponse(events(), media_type="text/event-stream")

    verifier = StaticTokens(catalog) if catalog.token else None
    # An ASGI object either way (Starlette would call a bare function as a request handler).
    guard: Any = (lambda app: RequireAuthMiddleware(app, [])) if verifier else Open
    routes = [Route("/sse", endpoint=guard(handle_sse), methods=["GET"]),
              Mount("/messages/", app=guard(sse.handle_post_message)),
              Route("/sse-elsewhere", endpoint=elsewhere, methods=["GET"])]
    auth = AuthSettings(issuer_url="http://127.0.0.1/", resource_server_url=None) if verifier else None
    app = server.streamable_http_app(streamable_http_path="/mcp", auth=auth, token_verifier=verifier,
                                     custom_starlette_routes=routes)  # type: ignore[arg-type]
    return Switches(app, catalog)


@contextmanager
def serve(catalog: Catalog, tls: Issued | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """Run the server on ``host`` (ephemeral port) in a thread, over TLS with ``tls``; yields its base URL."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    files = tempfile.TemporaryDirectory()
    options: dict[str, Any] = {}
    if tls:
        options = {"ssl_certfile": os.path.join(files.name, "cert.pem"),
                   "ssl_keyfile": os.path.join(files.name, "key.pem")}
        with open(options["ssl_certfile"], "w") as cert, open(options["ssl_keyfile"], "w") as key:
            cert.write(tls.cert_pem)
            key.write(tls.key_pem)
    config = uvicorn.Config(build_app(catalog), log_level="warning", lifespan="on", timeout_graceful_shutdown=1,
                            **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="mcp-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        raise RuntimeError("the MCP test server did not start")
    name = f"[{host}]" if ":" in host else host
    catalog.url = f"{'https' if tls else 'http'}://{name}:{port}"
    try:
        yield catalog.url
    finally:
        catalog.stall = False
        server.should_exit = True
        thread.join(5)
        sock.close()
        files.cleanup()
