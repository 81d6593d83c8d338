"""MCP connector: a Model Context Protocol server as a data source, through the official MCP Python SDK.

Why the SDK (``mcp``): it is the protocol's reference implementation, kept in step with the
specification; the connector runs its streamable HTTP (or legacy SSE) client transport and
``ClientSession``: the ``initialize`` handshake, then ``tools/list`` and ``resources/list`` pages.

Only http(s) URLs. MCP over stdio would launch a local command from user input: the catalogue's
transport is ``http`` | ``sse`` and ``settings_of`` refuses anything else before any work; the SDK's
stdio client is never imported.

Egress. The SDK is async (anyio, httpx2) and anyio resolves names in worker threads that carry no
egress scope, so nothing here depends on a lookup: the SDK gets an httpx2 client whose transport
sends only to the server URL's origin (scheme, host, port; anything else fails before a connection,
so a redirect or an SSE ``endpoint`` naming another host gets zero attempts; the SDK itself follows
no cross-origin redirect either) and opens every TCP connection to the address ``reach_http`` checked
and pinned (``mcp_transport``; TLS verifies the host name, sent as SNI, against the system's CAs). No
proxies or .netrc from the environment, no retries, at most MAX_RESPONSE_BYTES per response. The event
loop runs in the connector's own thread, itself under an egress scope admitting only that pinned name.

Stages: resolve, tcp, tls (https) by ``reach_http``; auth = the initialize handshake (HTTP 401/403,
a missing token, an endpoint that is not MCP); database = the first page of ``tools/list`` (of
``resources/list`` when the server offers no tools); introspect = the other pages. Each stage is
bounded inside the loop (a cancel scope whose deadline moves per stage) and, in the calling thread,
by the same time plus a second; then the session is closed (bounded) and the thread joined.

Schema (``mcp_tables``): one table per tool in schema ``tools`` (columns: the input schema's top-level
properties with their JSON types, nullable unless required), one per resource in schema ``resources``
(named by its URI; one ``content`` column typed with its MIME type). At most MAX_TABLES tables from at
most MAX_PAGES list requests per kind, MAX_COLUMNS columns a tool.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from .base import (
    MAX_TABLES,
    ConnectionConfig,
    ConnectorError,
    SessionConnector,
    StageRunner,
    TableInfo,
    TestResult,
    sanitize,
)
from .egress import resolve_checked
from .guard import EgressScope, egress_scope
from .http_stages import USER_AGENT, Endpoint, check_transport, parse_endpoint, reach_http, tls_context
from .mcp_tables import resource_table, tool_table
from .mcp_transport import PinnedTransport

for _name in ("mcp", "httpx2", "httpcore2"):  # their DEBUG records carry every JSON-RPC message and URL
    logging.getLogger(_name).setLevel(logging.WARNING)

TRANSPORTS = ("http", "sse")
MAX_PAGES = 100  # list requests per kind (tools, resources)
CLOSE_SECONDS = 2.0  # for ending the session (DELETE) after the last stage
STDIO_REFUSED = "MCP over stdio (a local command) is not supported: give the server's http(s) URL."
WHAT = {"auth": "The MCP initialize handshake", "database": "Listing the server's tools",
        "introspect": "Listing the server's tools and resources"}


@dataclass(frozen=True)
class Settings:
    endpoint: Endpoint
    url: str  # the server URL as the SDK will use it (normalized origin, path and query kept)
    transport: str  # "http" (streamable HTTP) | "sse"
    api_key: str


def settings_of(config: ConnectionConfig) -> Settings:
    """The server URL and transport; ``ConnectorError`` at stage resolve for anything but http(s)."""
    c = config.connection
    transport = str(c.get("transport") or "http").strip().lower()
    if transport not in TRANSPORTS:
        raise ConnectorError("resolve", f"The transport must be 'http' (streamable HTTP) or 'sse'. {STDIO_REFUSED}")
    raw = str(c.get("server_url") or "").strip()
    if not raw:
        raise ConnectorError("resolve", "A server URL is required.")
    if not re.fullmatch(r"(?i)https?://\S+", raw):
        raise ConnectorError("resolve", f"The server URL must be an http:// or https:// URL. {STDIO_REFUSED}")
    endpoint = parse_endpoint(raw)
    parts = urlsplit(raw)
    url = endpoint.base_url + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Settings(endpoint, url, transport, (config.secrets.get("api_key") or "").strip())


def check_key(settings: Settings) -> None:
    """The key goes into a header: no spaces or control characters (``ConnectorError`` at stage auth)."""
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in settings.api_key):
        raise ConnectorError("auth", "The API key contains invalid characters.")


def _leaf(exc: BaseException) -> BaseException:
    """The first error inside nested groups, cancellations last (anyio task groups wrap what the SDK raises)."""
    if not isinstance(exc, BaseExceptionGroup) or not exc.exceptions:
        return exc
    leaves = [_leaf(inner) for inner in exc.exceptions]
    return next((leaf for leaf in leaves if isinstance(leaf, Exception)), leaves[0])


class Conversation:
    """The MCP session in its own thread and event loop; each stage's outcome is handed to the caller in turn."""

    def __init__(self, settings: Settings, config: ConnectionConfig, scope: EgressScope, introspect: bool):
        self.settings = settings
        self.secrets = config.secrets
        self.timeout = float(config.connect_timeout)
        self.introspect_seconds = float(config.query_timeout)
        self.scope = scope
        self.introspect = introspect
        self.transport = PinnedTransport(settings.endpoint, scope, tls_context())
        self.reports: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.stage = "auth"
        self.mark = 0  # answers seen before the current stage
        self.failed = False
        self.opened = False  # the transport is connected (over SSE: the message endpoint was announced)
        self.deadline: anyio.CancelScope | None = None
        self.thread = threading.Thread(target=self._main, name="mcp-connector", daemon=True)

    def __enter__(self) -> Conversation:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.thread.join(max(self.timeout, self.introspect_seconds) + CLOSE_SECONDS + 1)

    def wait(self, stage: str, seconds: float) -> Any:
        """The outcome of ``stage`` (raised when it is a failure), waiting at most ``seconds`` plus a second."""
        try:
            _name, value = self.reports.get(timeout=seconds + 1)
        except queue.Empty:
            raise ConnectorError(stage, self._late(stage, seconds)) from None
        if isinstance(value, ConnectorError):
            raise value
        return value

    def _main(self) -> None:
        host = self.settings.endpoint.host
        with egress_scope(self.timeout, only=(host,)) as inner:
            if host in self.scope.pins:
                inner.pin(host, self.scope.pins[host])
            try:
                anyio.run(self._converse)
            except BaseException:  # a failure of ours: the caller still gets an answer, never a hang
                if self.stage in WHAT:
                    self._report(self.stage, ConnectorError(self.stage, f"{WHAT[self.stage]} failed."))

    def _begin(self, stage: str, seconds: float) -> None:
        self.stage, self.mark = stage, len(self.transport.seen)
        if self.deadline is not None:
            self.deadline.deadline = anyio.current_time() + seconds

    def _report(self, stage: str, value: Any) -> None:
        if not self.failed and stage in WHAT:
            self.failed = isinstance(value, ConnectorError)
            self.reports.put((stage, value))

    def _client(self, headers: Any = None, timeout: Any = None, auth: Any = None) -> httpx2.AsyncClient:
        """Our client for the SDK (also its SSE client factory: what the SDK offers it is not used)."""
        sent = {"User-Agent": USER_AGENT}
        if self.settings.api_key:
            sent["Authorization"] = f"Bearer {self.settings.api_key}"
        # The read timeout covers the slowest stage: over SSE every answer arrives on one long GET.
        timeout = httpx2.Timeout(self.timeout, read=max(self.timeout, self.introspect_seconds))
        return httpx2.AsyncClient(transport=self.transport, headers=sent, timeout=timeout, follow_redirects=False,
                                  trust_env=False, max_redirects=3)

    async def _open(self, stack: AsyncExitStack) -> ClientSession:
        if self.settings.transport == "sse":
            streams = await stack.enter_async_context(sse_client(self.settings.url, httpx_client_factory=self._client))
        else:
            client = await stack.enter_async_context(self._client())
            streams = await stack.enter_async_context(streamable_http_client(self.settings.url, http_client=client))
        return await stack.enter_async_context(ClientSession(*streams))

    async def _converse(self) -> None:
        try:
            check_key(self.settings)
        except ConnectorError as exc:
            self._report("auth", exc)
            return
        with anyio.CancelScope() as deadline:
            self.deadline = deadline
            self._begin("auth", self.timeout)
            try:
                async with AsyncExitStack() as stack:
                    session = await self._open(stack)
                    self.opened = True
                    init = await session.initialize()
                    self._report("auth", init)
                    await self._lists(session, init)
                    self._begin("close", CLOSE_SECONDS)
            except Exception as exc:
                if self.stage in WHAT:  # not while closing: the caller has its answers
                    self._report(self.stage, self._failure(exc))
        if deadline.cancelled_caught and self.stage in WHAT:
            self._report(self.stage, ConnectorError(self.stage, self._late(self.stage, self._seconds(self.stage))))

    async def _lists(self, session: ClientSession, init: types.InitializeResult) -> None:
        offered = [k for k, cap in (("tools", init.capabilities.tools), ("resources", init.capabilities.resources))
                   if cap is not None]
        self._begin("database", self.timeout)
        if not offered:
            self._report("database", ConnectorError("database", "The MCP server offers neither tools nor resources."))
            return
        first = await self._list(session, offered[0], None)
        self._report("database", first)
        if not self.introspect:
            return
        self._begin("introspect", self.introspect_seconds)
        tables: list[TableInfo] = []
        for kind in offered:
            if len(tables) < MAX_TABLES:
                await self._collect(session, kind, first if kind == offered[0] else None, tables)
        self._report("introspect", tables)

    async def _list(self, session: ClientSession, kind: str, cursor: str | None) -> Any:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        if kind == "tools":
            return await session.list_tools(params=params)
        return await session.list_resources(params=params)

    async def _collect(self, session: ClientSession, kind: str, page: Any, tables: list[TableInfo]) -> None:
        """Pages of one kind into ``tables``: at most MAX_PAGES requests, MAX_TABLES tables, no cursor twice."""
        cursors: set[str] = set()
        names = {(t.schema, t.name) for t in tables}
        for count in range(1, MAX_PAGES + 1):
            if page is None:
                page = await self._list(session, kind, None)
            items = page.tools if kind == "tools" else page.resources
            for item in items:
                table = tool_table(item) if kind == "tools" else resource_table(item)
                if len(tables) >= MAX_TABLES:
                    return
                if table.name and (table.schema, table.name) not in names:
                    names.add((table.schema, table.name))
                    tables.append(table)
            cursor = page.next_cursor
            if not cursor or cursor in cursors or count == MAX_PAGES or len(tables) >= MAX_TABLES:
                return
            cursors.add(cursor)
            page = await self._list(session, kind, cursor)

    def _seconds(self, stage: str) -> float:
        return self.introspect_seconds if stage == "introspect" else self.timeout

    def _late(self, stage: str, seconds: float) -> str:
        if stage == "auth" and self.settings.transport == "sse" and ("GET", 200) in self.transport.seen:
            return (f"The MCP server's SSE stream announced no message endpoint on the server URL's origin within "
                    f"{seconds:g} seconds (one elsewhere is never used).")
        if stage == "auth":
            return f"The MCP server did not answer the initialize handshake within {seconds:g} seconds."
        return f"The MCP server did not list its tools and resources within {seconds:g} seconds."

    def _failure(self, exc: BaseException) -> ConnectorError:
        """Our own message for what went wrong in the current stage (driver text only through ``sanitize``)."""
        stage, leaf = self.stage, _leaf(exc)
        blocked = self.scope.blocked_error()
        if blocked:
            return blocked
        answered = self._http_failure(stage)
        if answered:
            return answered
        if isinstance(leaf, MCPError):
            detail = sanitize(leaf.message, self.secrets)
            return ConnectorError(stage, f"{WHAT[stage]} failed: the server answered an error" +
                                  (f" ({detail})." if detail else "."))
        if isinstance(leaf, ValidationError):
            return ConnectorError(stage, f"{WHAT[stage]} failed: the answer is not a valid MCP message.")
        if isinstance(leaf, httpx2.TimeoutException):
            return ConnectorError(stage, self._late(stage, self._seconds(stage)))
        if isinstance(leaf, (httpx2.HTTPError, OSError)):
            return ConnectorError(stage, f"{WHAT[stage]} failed: the connection to the server was lost.")
        if not self.opened and self.settings.transport == "sse":  # the stream ended before an endpoint event
            return ConnectorError(stage, "The MCP server's SSE stream announced no message endpoint on the server "
                                         "URL's origin (one elsewhere is never used).")
        detail = sanitize(str(leaf), self.secrets)  # e.g. the SDK's "Unsupported protocol version"
        return ConnectorError(stage, f"{WHAT[stage]} failed" + (f": {detail}" if detail else "."))

    def _http_failure(self, stage: str) -> ConnectorError | None:
        """Failures the HTTP status of a message request explains (the SDK keeps only a generic error)."""
        sse = self.settings.transport == "sse"
        codes = [code for method, code in self.transport.seen[self.mark:] if method == "POST" or sse]
        refused = [code for code in codes if code in (401, 403)]
        if refused:
            if not self.settings.api_key:
                return ConnectorError(stage, f"The MCP server requires authentication (HTTP {refused[0]}): set the "
                                             "API key, sent as a bearer token.")
            return ConnectorError(stage, f"The MCP server refused the API key (HTTP {refused[0]}).")
        if self.transport.left_origin or any(300 <= code < 400 for code in codes):
            return ConnectorError(stage, "The MCP server redirected the request away from the server URL; such "
                                         "redirects are not followed: check the server URL.")
        failed = [code for code in codes if code >= 400]
        # A URL that does not serve the configured transport (the SDK's client never tries the other one): a
        # streamable HTTP endpoint answers the SSE client's opening GET 400 (no session), 405 or 406; an SSE-only
        # URL answers the initialize POST 404 or 405.
        if failed and stage == "auth" and failed[0] in ((400, 404, 405, 406) if sse else (404, 405)):
            return ConnectorError(stage, f"No MCP endpoint answered at the server URL (HTTP {failed[0]}): check its "
                                         "path and the transport ('http' for streamable HTTP, 'sse' for SSE).")
        if failed:
            return ConnectorError(stage, f"{WHAT[stage]} failed: the server answered HTTP {failed[0]}.")
        return None


def _server_version(init: types.InitializeResult, secrets: dict[str, str]) -> str:
    info = init.server_info
    text = sanitize(f"{info.name} {info.version}".strip(), secrets, limit=100)
    return f"{text} (MCP {sanitize(init.protocol_version, secrets, limit=20)})"


class MCPConnector(SessionConnector):
    """Stages: resolve, tcp, tls (https), auth (initialize), database (first list page), [introspect]."""

    def run(self, config: ConnectionConfig, *, introspect: bool) -> TestResult:
        tables: list[TableInfo] | None = None
        timeout = float(config.connect_timeout)
        with StageRunner(config.secrets) as runner:
            try:
                settings = settings_of(config)
            except ConnectorError as exc:
                runner.stop("resolve", exc)
            with egress_scope(timeout, only=(settings.endpoint.host,)) as scope:
                reach_http(runner, settings.endpoint, timeout, scope, credentials=bool(settings.api_key))
                with Conversation(settings, config, scope, introspect) as talk:
                    init = runner.run("auth", lambda: talk.wait("auth", timeout), "Initialize handshake answered.")
                    runner.server_version = _server_version(init, config.secrets)
                    runner.run("database", lambda: talk.wait("database", timeout))
                    if introspect:
                        seconds = float(config.query_timeout)
                        tables = runner.optional("introspect", lambda: talk.wait("introspect", seconds),
                                                 lambda found: f"{len(found)} tools and resources.")
        result = runner.result()
        result.tables = tables if result.ok else None
        return result

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """The server's tools and resources as tables; raises ``ConnectorError``."""
        settings = settings_of(config)
        host, port = settings.endpoint.host, settings.endpoint.port
        timeout = float(config.connect_timeout)
        with egress_scope(timeout, only=(host,)) as scope:
            address = resolve_checked(host, port, timeout)
            if settings.api_key:
                check_transport(settings.endpoint, address)  # a refresh re-checks what the test checked
            scope.pin(host, address)
            with Conversation(settings, config, scope, True) as talk:
                try:
                    talk.wait("auth", timeout)
                    talk.wait("database", timeout)
                    tables: list[TableInfo] = talk.wait("introspect", float(config.query_timeout))
                except ConnectorError as exc:
                    raise ConnectorError("introspect", exc.message) from None
                return tables
