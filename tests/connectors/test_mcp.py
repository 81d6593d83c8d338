"""MCP: the connector (the official MCP Python SDK's client) against a real MCP server built with the same SDK."""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
import time

import pytest

from datasources.connectors import MAX_COLUMNS, MAX_TABLES, ConnectionConfig, ConnectorError, get_connector
from datasources.connectors.mcp import MAX_PAGES, MCPConnector
from tests.support.certs import make_bundle
from tests.support.contract import BLOCKED_IP, Contract, connect_attempts, run_contract
from tests.support.mcp_server import Catalog, resource, serve, tool

URL = "/api/v1/data-sources/"
CANARY = "mcp-CANARY-7d41c2e9b0"
DRIVER_LOGGERS = ("mcp", "httpx2", "httpcore2", "client")


def tools() -> list:
    return [
        tool("orders", {"id": {"type": "integer"}, "note": {"type": ["string", "null"]},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "amount": {"anyOf": [{"type": "number"}, {"type": "string"}]},
                        "status": {"enum": ["open", "paid"]}}, required=("id", "note")),
        tool("customers", {"email": {"type": "string", "format": "email"}, "active": {"type": "boolean"}},
             required=("email",)),
        tool("ping", {}),
    ]


def resources() -> list:
    return [resource("file:///exports/orders.csv", "orders export", "text/csv"),
            resource("db://warehouse/readme", "readme")]


@pytest.fixture
def server():
    catalog = Catalog(tools=tools(), resources=resources(), token=CANARY)
    with serve(catalog):
        yield catalog


def config(catalog: Catalog, key: str = CANARY, path: str = "/mcp", transport: str = "http", timeout: int = 3,
           **changes) -> ConnectionConfig:
    connection = {"server_url": catalog.url + path, "transport": transport, **changes}
    return ConnectionConfig("mcp", connection, {"api_key": key}, connect_timeout=timeout)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def to(address: str, attempts: list) -> list:
    return [a for a in attempts if isinstance(a, tuple) and a and a[0] == address]


def test_contract_through_the_native_api(api, allow_loopback, server, caplog):
    for name in DRIVER_LOGGERS:  # the drivers' own DEBUG output must not carry the key either
        caplog.set_level(logging.DEBUG, logger=name)
    contract = Contract(
        type_key="mcp",
        connection={"server_url": f"{server.url}/mcp", "transport": "http"},
        credentials={"api_key": CANARY},
        tables={"orders", "customers", "file:///exports/orders.csv"},
        patch={"transport": "sse"},  # the same URL answers the SSE transport too
        wrong_credentials={"api_key": "mcp-wrong-key-0000"},
        unreachable={"server_url": f"http://127.0.0.1:{closed_port()}/mcp"},
        blocked={"server_url": f"http://{BLOCKED_IP}/mcp"},
        canary=CANARY,
    )
    final = run_contract(api, contract, caplog)
    schema = api.get(f"{URL}{final['id']}/schema/").json()
    by_name = {(t["schema"], t["name"]): t for t in schema["tables"]}
    assert [(c["name"], c["type"], c["nullable"]) for c in by_name["tools", "customers"]["columns"]] == [
        ("email", "string", False), ("active", "boolean", True)]
    assert by_name["resources", "file:///exports/orders.csv"]["columns"][0]["type"] == "text/csv"
    assert ("POST", "/messages/", True) in server.requests  # the PATCH to transport sse was tested over SSE
    assert CANARY not in caplog.text


def test_registry_builds_the_connector():
    assert isinstance(get_connector("mcp"), MCPConnector)


@pytest.mark.parametrize("transport,path", [("http", "/mcp"), ("sse", "/sse"), ("sse", "/mcp")])
def test_tools_and_resources_as_tables(allow_loopback, server, transport, path):
    result = MCPConnector("mcp").test_and_introspect(config(server, transport=transport, path=path))
    assert result.ok, result
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database", "introspect"]
    assert result.server_version == "connector-test-server 1.2.3 (MCP 2025-11-25)"
    tables = {(t.schema, t.name): t for t in result.tables}
    assert list(tables) == [("tools", "orders"), ("tools", "customers"), ("tools", "ping"),
                            ("resources", "file:///exports/orders.csv"), ("resources", "db://warehouse/readme")]
    orders = [(c.name, c.data_type, c.nullable, c.ordinal) for c in tables["tools", "orders"].columns]
    assert orders == [("id", "integer", False, 1), ("note", "string", True, 2), ("tags", "array<string>", True, 3),
                      ("amount", "number|string", True, 4), ("status", "any", True, 5)]
    assert tables["tools", "ping"].columns == []
    readme = tables["resources", "db://warehouse/readme"].columns
    assert [(c.name, c.data_type) for c in readme] == [("content", "unknown")]
    assert server.calls == [("tools/list", None), ("resources/list", None)]


def test_test_without_introspection_lists_one_page(allow_loopback, server):
    result = MCPConnector("mcp").test(config(server))
    assert result.ok and result.tables is None
    assert server.calls == [("tools/list", None)]


def test_introspect_for_a_refresh(allow_loopback, server):
    tables = MCPConnector("mcp").introspect(config(server, transport="sse", path="/sse"))
    assert len(tables) == 5
    with pytest.raises(ConnectorError) as failed:
        MCPConnector("mcp").introspect(config(server, key="mcp-wrong-key-0000"))
    assert failed.value.stage == "introspect" and "HTTP 401" in failed.value.message


@pytest.mark.parametrize("transport,path", [("http", "/mcp"), ("sse", "/sse")])
def test_wrong_and_missing_token_fail_at_auth(allow_loopback, server, transport, path):
    connector = MCPConnector("mcp")
    wrong = connector.test(config(server, key="mcp-wrong-key-0000", transport=transport, path=path))
    assert (wrong.stage, wrong.message) == ("auth", "The MCP server refused the API key (HTTP 401).")
    missing = connector.test(config(server, key="", transport=transport, path=path))
    assert missing.stage == "auth" and missing.message.startswith("The MCP server requires authentication (HTTP 401)")
    assert "set the API key" in missing.message
    assert [s.name for s in missing.stages if s.ok] == ["resolve", "tcp"]
    sent = len(server.requests)
    broken = connector.test(config(server, key="mcp-key\r\nX-Injected: 1", transport=transport, path=path))
    assert (broken.stage, broken.message) == ("auth", "The API key contains invalid characters.")
    assert [r[:2] for r in server.requests[sent:]] == [("HEAD", "/")]  # the probe only


@pytest.mark.parametrize("body,field", [
    ({"transport": "stdio"}, "transport"),
    ({"server_url": "file:///bin/sh"}, "server_url"),
    ({"server_url": "npx -y @modelcontextprotocol/server-filesystem /"}, "server_url"),
    ({"server_url": "/usr/local/bin/mcp-server --stdio"}, "server_url"),
])
def test_stdio_is_refused_by_the_api(api, allow_loopback, server, monkeypatch, body, field):
    launched: list = []
    monkeypatch.setattr(subprocess.Popen, "__init__", lambda self, *a, **k: launched.append(a))
    connection = {"server_url": f"{server.url}/mcp", "transport": "http", **body}
    response = api.post(URL, {"name": "tools", "type": "mcp", "connection": connection,
                              "credentials": {"api_key": CANARY}}, format="json")
    assert response.status_code == 400, response.json()
    assert list(response.json()["errors"]) == [f"connection.{field}"], response.json()
    assert not launched and not server.requests


@pytest.mark.parametrize("connection", [
    {"transport": "stdio", "server_url": "http://127.0.0.1/mcp"}, {"transport": "http", "server_url": "file:///bin/sh"},
    {"transport": "http", "server_url": "uvx mcp-server-fetch"}, {"transport": "sse", "server_url": ""},
    {"transport": "http", "server_url": "http://127.0.0.1/mcp; /bin/sh -c id"},
])
def test_the_connector_refuses_anything_but_http_urls(monkeypatch, connection):
    launched: list = []
    monkeypatch.setattr(subprocess.Popen, "__init__", lambda self, *a, **k: launched.append(a))
    with connect_attempts() as attempts:
        result = MCPConnector("mcp").test(ConnectionConfig("mcp", connection, {"api_key": CANARY}))
    assert (result.ok, result.stage) == (False, "resolve") and not attempts and not launched
    assert "http" in result.message or "required" in result.message


def test_redirect_to_the_metadata_address_gets_zero_attempts(allow_loopback, server):
    server.redirect_to = f"http://{BLOCKED_IP}/latest/meta-data/"
    with connect_attempts() as attempts:
        result = MCPConnector("mcp").test(config(server))
    assert result.stage == "auth" and "redirected" in result.message, result
    assert not to(BLOCKED_IP, attempts), attempts


@pytest.mark.parametrize("announce", [f"http://{BLOCKED_IP}/messages/?session_id=0123456789abcdef",
                                      "http://127.0.0.1:{port}/messages/?session_id=0123456789abcdef"])
def test_sse_endpoint_naming_another_host_gets_zero_attempts(allow_loopback, server, announce):
    port = closed_port()
    server.announce = announce.format(port=port)
    with connect_attempts() as attempts:
        result = MCPConnector("mcp").test(config(server, transport="sse", path="/sse-elsewhere", timeout=1))
    assert result.stage == "auth" and "announced no message endpoint on the server URL's origin" in result.message
    assert not to(BLOCKED_IP, attempts) and not [a for a in attempts if a[1:2] == (port,)], attempts
    assert [(m, p) for m, p, _ in server.requests] == [("HEAD", "/"), ("GET", "/sse-elsewhere")]


def test_black_holed_endpoint_fails_within_the_timeout(allow_loopback):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel accepts; nobody answers
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True).start()
    cfg = ConnectionConfig("mcp", {"server_url": f"http://127.0.0.1:{silent.getsockname()[1]}/mcp"},
                           {"api_key": CANARY}, connect_timeout=2)
    start = time.monotonic()
    try:
        result = MCPConnector("mcp").test(cfg)
    finally:
        silent.close()
        for sock in held:
            sock.close()
    assert time.monotonic() - start < 2 + 1
    assert result.stage == "tcp" and result.message.startswith("Could not connect to the server at 127.0.0.1:")


@pytest.mark.parametrize("transport,path", [("http", "/mcp"), ("sse", "/sse")])
def test_server_that_hangs_after_the_probe_fails_within_the_timeout(allow_loopback, server, transport, path):
    server.stall = True
    before = threading.active_count()
    start = time.monotonic()
    result = MCPConnector("mcp").test(config(server, timeout=2, transport=transport, path=path))
    assert time.monotonic() - start < 2 + 1
    assert result.stage == "auth" and "did not answer the initialize handshake within 2 seconds" in result.message
    assert threading.active_count() == before


def test_no_thread_outlives_a_test(allow_loopback, server):
    connector = MCPConnector("mcp")
    before = {t.ident for t in threading.enumerate()}
    for cfg in (config(server), config(server, transport="sse", path="/sse"), config(server, key="mcp-wrong-0000")):
        connector.test_and_introspect(cfg)
    assert {t.ident for t in threading.enumerate()} == before
    assert ("DELETE", "/mcp", True) in server.requests  # the streamable HTTP session was ended


def test_not_an_mcp_endpoint_fails_at_auth(allow_loopback, server):
    result = MCPConnector("mcp").test(config(server, path="/not-mcp"))
    assert result.stage == "auth" and "No MCP endpoint answered at the server URL (HTTP 404)" in result.message


def test_list_error_fails_at_database_without_the_token(allow_loopback, server):
    server.echo_token = True
    result = MCPConnector("mcp").test(config(server))
    assert (result.ok, result.stage) == (False, "database"), result
    assert "***" in result.message and CANARY not in str(result.as_dict())


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_open_server_needs_no_key(allow_loopback, transport):
    catalog = Catalog(resources=resources(), offer=("resources",))  # the database stage lists resources
    with serve(catalog) as url:
        cfg = ConnectionConfig("mcp", {"server_url": f"{url}/mcp", "transport": transport}, {}, connect_timeout=3)
        result = MCPConnector("mcp").test_and_introspect(cfg)
    assert result.ok, result
    assert [t.name for t in result.tables] == ["file:///exports/orders.csv", "db://warehouse/readme"]
    assert not [r for r in catalog.requests if r[2]]  # no Authorization header without a key
    assert catalog.calls == [("resources/list", None)]  # the first page serves the database stage and introspection


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_server_without_tools_or_resources_fails_at_database(allow_loopback, transport):
    with serve(Catalog(offer=())) as url:
        cfg = ConnectionConfig("mcp", {"server_url": f"{url}/mcp", "transport": transport}, {}, connect_timeout=3)
        result = MCPConnector("mcp").test(cfg)
    assert result.stage == "database" and "neither tools nor resources" in result.message


def test_three_hundred_tools_in_bounded_pages(allow_loopback, server):
    server.tools = [tool(f"t{i:03d}", {"id": {"type": "integer"}, "v": {"type": "string"}}) for i in range(300)]
    server.page_size = 50
    result = MCPConnector("mcp").test_and_introspect(config(server))
    assert result.ok and len([t for t in result.tables if t.schema == "tools"]) == 300
    assert [c for c in server.calls if c[0] == "tools/list"] == [("tools/list", None)] + [
        ("tools/list", str(n)) for n in range(50, 300, 50)]
    assert all(len(t.columns) == 2 for t in result.tables if t.schema == "tools")


def test_list_requests_stop_at_max_pages(allow_loopback, server):
    server.tools = [tool(f"t{i:03d}", {"id": {"type": "integer"}}) for i in range(MAX_PAGES + 20)]
    server.page_size = 1
    cfg = config(server)
    cfg.query_timeout = 30
    result = MCPConnector("mcp").test_and_introspect(cfg)
    assert result.ok and len([t for t in result.tables if t.schema == "tools"]) == MAX_PAGES
    assert len([c for c in server.calls if c[0] == "tools/list"]) == MAX_PAGES


def test_introspection_bounds(allow_loopback, server):
    wide = tool("wide", {f"c{i}": {"type": "integer"} for i in range(MAX_COLUMNS + 5)})
    server.tools = [wide] + [tool(f"t{i:05d}", {"id": {"type": "integer"}}) for i in range(MAX_TABLES + 3)]
    server.page_size = 2500
    cfg = config(server)
    cfg.query_timeout = 60
    tables = MCPConnector("mcp").introspect(cfg)
    assert len(tables) == MAX_TABLES and len(tables[0].columns) == MAX_COLUMNS
    assert len([c for c in server.calls if c[0] == "tools/list"]) == 4  # 10,004 tools, 2,500 a page
    assert not [c for c in server.calls if c[0] == "resources/list"]  # the cap was reached with the tools


def test_https_pins_the_address_and_verifies_the_host_name(allow_loopback, tmp_path, monkeypatch):
    first = socket.getaddrinfo("localhost", 443, type=socket.SOCK_STREAM)[0][4][0]  # what resolve will pick
    bundle = make_bundle(hosts=("localhost",))
    (tmp_path / "ca.pem").write_text(bundle.ca.cert_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # the test CA as a system CA (no CA field)
    catalog = Catalog(tools=tools(), resources=resources(), token=CANARY)
    with serve(catalog, tls=bundle.server, host=first) as url:
        port = url.rsplit(":", 1)[1]
        with connect_attempts() as attempts:
            result = MCPConnector("mcp").test_and_introspect(ConnectionConfig(
                "mcp", {"server_url": f"https://localhost:{port}/mcp"}, {"api_key": CANARY}, connect_timeout=3))
        assert result.ok, result
        assert [s.name for s in result.stages] == ["resolve", "tcp", "tls", "auth", "database", "introspect"]
        assert {a[0] for a in attempts if isinstance(a, tuple)} == {first}  # the checked address, every time
        sent = len(catalog.requests)
        by_ip = MCPConnector("mcp").test(ConnectionConfig("mcp", {"server_url": f"{url}/mcp"}, {"api_key": CANARY}))
    assert by_ip.stage == "tls" and "certificate" in by_ip.message  # the certificate names localhost only
    assert [r[:2] for r in catalog.requests[sent:]] == [("HEAD", "/")]  # the probe only: no key to that peer


def test_plain_http_with_a_key_is_refused_for_public_addresses():
    with connect_attempts() as attempts:
        result = MCPConnector("mcp").test(ConnectionConfig(
            "mcp", {"server_url": "http://93.184.215.14/mcp"}, {"api_key": CANARY}))
    assert result.stage == "tls" and "https://" in result.message and not attempts


def test_environment_proxies_are_ignored(allow_loopback, server, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, f"http://{BLOCKED_IP}:3128")  # a proxy would see the key and resolve for us
    monkeypatch.setenv("NO_PROXY", "")
    with connect_attempts() as attempts:
        result = MCPConnector("mcp").test_and_introspect(config(server))
    assert result.ok, result
    assert {a[0] for a in attempts if isinstance(a, tuple)} == {"127.0.0.1"}
