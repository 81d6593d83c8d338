"""TLS required against a plaintext server fails at stage tls, saying so (outside audit, finding 1).

The TCP connect succeeds and the peer answers its own protocol in plain text, so the failure is the TLS
handshake, as PostgreSQL's "The server does not support SSL, but the SSL mode requires it." says it: stage
tls, a clean message, no credentials sent. Before, every such test read like a closed port (stage tcp,
"Could not connect to the server at 127.0.0.1:<port>."). A peer that answers nothing we know, in TLS or in
plain text, still reads like a closed port (README, "Egress policy"). Each type runs against its stand-in
(or real server) in plaintext mode.
"""

from __future__ import annotations

import json
import socket
import threading

import pytest

from datasources.connectors import ConnectionConfig, get_connector
from datasources.connectors.http_stages import NO_TLS
from tests.support import clickhouse_server
from tests.support.mcp_server import Catalog, serve, tool
from tests.support.mongo_server import MongoServer
from tests.support.search_server import Cluster, SearchServer
from tests.support.trino_server import Table, TrinoServer

CANARY = "canary-audit-tls-4b7e"


def _tls_failure(result, message: str) -> None:
    """Failed at tls, after a passed tcp, with exactly ``message``, and no secret in the result."""
    assert (result.ok, result.stage, result.message) == (False, "tls", message), result.as_dict()
    assert [(s.name, s.ok) for s in result.stages][-2:] == [("tcp", True), ("tls", False)], result.as_dict()
    assert CANARY not in json.dumps(result.as_dict())


def _closed(result, port: int) -> None:
    assert (result.ok, result.stage, result.message) == (
        False, "tcp", f"Could not connect to the server at 127.0.0.1:{port}."), result.as_dict()


@pytest.fixture
def not_a_server():
    """A port that answers anything with garbage and hangs up (neither TLS nor the expected protocol)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve_forever() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.recv(4096)
                    conn.sendall(b"\x00garbage\r\n")
                except OSError:
                    pass

    threading.Thread(target=serve_forever, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


# --- mongodb -----------------------------------------------------------------------------------------------


def _mongo(port: int, **overrides) -> ConnectionConfig:
    connection = {"host": "127.0.0.1", "port": port, "database": "shop", "username": "analyst",
                  "auth_source": "admin", "tls": True, "srv": False, **overrides}
    return ConnectionConfig("mongodb", connection, {"password": CANARY}, connect_timeout=3)


def test_mongodb_tls_against_a_plain_server(allow_loopback, not_a_server):
    with MongoServer({"shop": {"orders": [{"id": 1}]}}, users={"analyst": CANARY}) as plain:
        _tls_failure(get_connector("mongodb").test(_mongo(plain.port)),
                     "The server does not support TLS, but TLS is required (tls or srv is on).")
        assert plain.names("saslStart") == []  # the password never travelled
        assert get_connector("mongodb").test(_mongo(plain.port, tls=False)).ok
    _closed(get_connector("mongodb").test(_mongo(not_a_server)), not_a_server)


# --- clickhouse --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ch():
    clickhouse_server.require()
    server = clickhouse_server.start_server(CANARY)
    try:
        yield server
    finally:
        clickhouse_server.stop_server(server)


def _clickhouse(port: int, secure: bool = True) -> ConnectionConfig:
    connection = {"host": "127.0.0.1", "port": port, "database": "default", "username": "default", "secure": secure}
    return ConnectionConfig("clickhouse", connection, {"password": CANARY}, connect_timeout=3)


def test_clickhouse_secure_on_the_plain_native_port(allow_loopback, ch, not_a_server):
    _tls_failure(get_connector("clickhouse").test(_clickhouse(ch.port)),
                 f"The server does not support TLS on port {ch.port}, but TLS is required (secure is on): use the "
                 "server's TLS port (9440 by default) or turn secure off.")
    _closed(get_connector("clickhouse").test(_clickhouse(not_a_server)), not_a_server)


# --- the HTTP connectors: elasticsearch, opensearch, snowflake, mcp, trino ---------------------------------


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch"])
def test_search_https_against_a_plain_cluster(allow_loopback, kind, not_a_server):
    def config(port: int) -> ConnectionConfig:
        return ConnectionConfig(kind, {"server_type": "self-managed", "server_url": f"https://127.0.0.1:{port}",
                                       "username": "analyst"}, {"password": CANARY}, connect_timeout=3)

    with SearchServer(Cluster(), product=kind, users={"analyst": CANARY}) as plain:
        _tls_failure(get_connector(kind).test(config(plain.port)), NO_TLS)
        assert plain.calls() == []  # only the probes' HEAD /: no request carried the credentials
    _closed(get_connector(kind).test(config(not_a_server)), not_a_server)


def test_snowflake_https_endpoint_on_a_plain_server(allow_loopback, not_a_server):
    snowflake_server = pytest.importorskip("tests.support.snowflake_server")

    def config(port: int) -> ConnectionConfig:
        connection = {"account": "acme-test", "username": "analyst", "role": "ANALYST", "warehouse": "COMPUTE_WH",
                      "database": "SALES", "schema": "PUBLIC", "auth_method": "password",
                      "endpoint_url": f"https://127.0.0.1:{port}"}
        return ConnectionConfig("snowflake", connection, {"password": CANARY}, connect_timeout=3)

    server = snowflake_server.SnowflakeServer(passwords={"ANALYST": CANARY})
    with snowflake_server.serve_snowflake(server) as plain:
        assert plain.scheme == "http"
        _tls_failure(get_connector("snowflake").test(config(plain.port)), NO_TLS)
        assert plain.requests == ["HEAD /"] and not plain.logins  # the plain probe only: no login was sent
    _closed(get_connector("snowflake").test(config(not_a_server)), not_a_server)


def test_mcp_https_server_url_on_a_plain_server(allow_loopback, not_a_server):
    catalog = Catalog(tools=[tool("orders", {"id": {"type": "integer"}})], token=CANARY)

    def config(url: str) -> ConnectionConfig:
        return ConnectionConfig("mcp", {"server_url": url, "transport": "http"}, {"api_key": CANARY},
                                connect_timeout=3)

    with serve(catalog) as url:
        _tls_failure(get_connector("mcp").test(config(url.replace("http://", "https://") + "/mcp")), NO_TLS)
        assert all(method == "HEAD" for method, _, _ in catalog.requests)  # the probe only, no bearer token
    _closed(get_connector("mcp").test(config(f"https://127.0.0.1:{not_a_server}/mcp")), not_a_server)


def test_trino_https_scheme_against_a_plain_server(allow_loopback, not_a_server):
    def config(port: int) -> ConnectionConfig:
        connection = {"host": "127.0.0.1", "port": port, "catalog": "hive", "schema": "sales", "username": "analyst",
                      "http_scheme": "https", "ssh_tunnel": {"enabled": False}}
        return ConnectionConfig("trino", connection, {"password": CANARY}, connect_timeout=3)

    with TrinoServer({"hive": {"sales": [Table("orders", [("id", "bigint", False)])]}}, password=CANARY) as plain:
        assert plain.scheme == "http"
        _tls_failure(get_connector("trino").test(config(plain.port)), NO_TLS)
        assert not plain.statements  # nothing was asked, no credentials sent
    _closed(get_connector("trino").test(config(not_a_server)), not_a_server)
