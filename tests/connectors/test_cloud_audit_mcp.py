"""MCP: the configured transport is the one used, never another by fallback (outside audit, finding 7).

``transport: "sse"`` on a streamable-HTTP ``/mcp`` URL passed the test: the stand-in's ``/mcp`` also serves the
legacy SSE transport (``GET /mcp`` without a session), the backwards-compatible arrangement the MCP
specification describes, and the connector talked SSE there. These tests pin that each transport speaks only
its own requests, and that a URL which does not serve the configured transport fails clearly at auth.
"""

from __future__ import annotations

import pytest

from datasources.connectors import ConnectionConfig, get_connector
from tests.support.mcp_server import Catalog, serve, tool

CANARY = "mcp-CANARY-audit-51c0"


@pytest.fixture
def catalog():
    return Catalog(tools=[tool("orders", {"id": {"type": "integer"}})], token=CANARY)


def _config(url: str, transport: str) -> ConnectionConfig:
    return ConnectionConfig("mcp", {"server_url": url, "transport": transport}, {"api_key": CANARY},
                            connect_timeout=3)


def _traffic(catalog: Catalog, start: int) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _ in catalog.requests[start:] if (method, path) != ("HEAD", "/")]


def test_sse_on_a_url_that_also_serves_sse_talks_sse_only(allow_loopback, catalog):
    with serve(catalog):
        result = get_connector("mcp").test(_config(catalog.url + "/mcp", "sse"))
        assert result.ok, result.as_dict()
        traffic = _traffic(catalog, 0)
        assert traffic[0] == ("GET", "/mcp") and ("POST", "/messages/") in traffic
        assert ("POST", "/mcp") not in traffic  # never the streamable HTTP transport


def test_http_talks_streamable_http_only(allow_loopback, catalog):
    with serve(catalog):
        result = get_connector("mcp").test(_config(catalog.url + "/mcp", "http"))
        assert result.ok, result.as_dict()
        traffic = _traffic(catalog, 0)
        assert ("POST", "/mcp") in traffic and not any(path.startswith(("/messages", "/sse")) for _, path in traffic)


def test_sse_on_a_streamable_http_only_endpoint_fails_clearly(allow_loopback, catalog):
    catalog.sse_on_mcp = False
    with serve(catalog):
        result = get_connector("mcp").test(_config(catalog.url + "/mcp", "sse"))
        assert (result.ok, result.stage) == (False, "auth"), result.as_dict()
        assert result.message == ("No MCP endpoint answered at the server URL (HTTP 400): check its path and the "
                                  "transport ('http' for streamable HTTP, 'sse' for SSE).")
        assert _traffic(catalog, 0) == [("GET", "/mcp")]  # no fallback to streamable HTTP


def test_http_on_an_sse_endpoint_fails_clearly(allow_loopback, catalog):
    with serve(catalog):
        result = get_connector("mcp").test(_config(catalog.url + "/sse", "http"))
        assert (result.ok, result.stage) == (False, "auth"), result.as_dict()
        assert result.message == ("No MCP endpoint answered at the server URL (HTTP 405): check its path and the "
                                  "transport ('http' for streamable HTTP, 'sse' for SSE).")
        assert not any(path.startswith("/messages") for _, path in _traffic(catalog, 0))  # no fallback to SSE
