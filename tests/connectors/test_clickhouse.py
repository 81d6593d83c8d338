"""ClickHouse connector against the real server: Debian's clickhouse-server 18.16 (tests/support/clickhouse_server.py).

One server for the session, on loopback ports of its own: the native port and the native TLS port
(certificate signed by a throwaway CA). The connector is reached through the native API (the
contract), directly, and through the Databrain adapter.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid

import pytest
from clickhouse_driver.connection import Connection

from datasources.connectors import ConnectionConfig, ConnectorError, egress, get_connector
from datasources.connectors import clickhouse as clickhouse_module
from tests.support import clickhouse_server
from tests.support.certs import make_ca
from tests.support.contract import BLOCKED_IP, Contract, connect_attempts, run_contract

CANARY = "ch-canary-Zq7x-41d9"  # the password: must never be echoed
URL = "/api/v1/data-sources/"
DB = "/compat/databrain/api/v2/datasource"
SHOP = ("orders", "customers", "big_orders", "daily_totals")


@pytest.fixture(scope="session")
def ch():
    """The server, with database ``shop``: two tables, a view and a materialized view."""
    clickhouse_server.require()
    server = clickhouse_server.start_server(CANARY)
    try:
        admin = server.client()
        for statement in (
            "CREATE DATABASE shop",
            "CREATE TABLE shop.orders (id UInt64, amount Decimal(10, 2), note Nullable(String), created DateTime)"
            " ENGINE = MergeTree() ORDER BY id",
            "CREATE TABLE shop.customers (id UInt32, email String, tags Array(String)) ENGINE = Memory",
            "CREATE VIEW shop.big_orders AS SELECT id, amount FROM shop.orders WHERE amount > 100",
            "CREATE MATERIALIZED VIEW shop.daily_totals ENGINE = Memory AS"
            " SELECT toDate(created) AS day, sum(amount) AS total FROM shop.orders GROUP BY day",
        ):
            admin.execute(statement)
        admin.disconnect()
        yield server
    finally:
        clickhouse_server.stop_server(server)


def _config(ch, secure=True, password=CANARY, timeout=3, **overrides):
    connection = {"host": ch.host, "port": ch.secure_port if secure else ch.port, "database": "shop",
                  "username": ch.user, "secure": secure, "ca_certificate": ch.ca_pem if secure else "",
                  **overrides}  # fmt: skip
    return ConnectionConfig("clickhouse", connection, {"password": password}, connect_timeout=timeout,
                            query_timeout=20)


def _clean(result) -> None:
    assert CANARY not in json.dumps(result.as_dict())


@pytest.fixture
def silent_listener():
    """A port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def queries(monkeypatch):
    """Every query the driver sends on the wire, in order."""
    sent: list[str] = []
    real = Connection.send_query

    def send_query(self, query, *args, **kwargs):
        sent.append(query)
        return real(self, query, *args, **kwargs)

    monkeypatch.setattr(Connection, "send_query", send_query)
    return sent


# --- the contract through the native API ------------------------------------------------------


def test_contract(api, allow_loopback, caplog, ch):
    closed = clickhouse_server._free_ports(1)[0]
    contract = Contract(
        type_key="clickhouse",
        connection={"host": ch.host, "port": ch.secure_port, "database": "shop", "username": ch.user,
                    "secure": True, "ca_certificate": ch.ca_pem},
        credentials={"password": CANARY},
        tables=set(SHOP),
        patch={"database": "default"},
        wrong_credentials={"password": "wrong-password-123"},
        unreachable={"port": closed},
        blocked={"host": BLOCKED_IP},
        canary=CANARY,
        stages=("resolve", "tcp", "tls", "auth", "database"),
    )
    final = run_contract(api, contract, caplog)
    assert final["connection"]["secure"] is True
    schema = api.get(f"{URL}{final['id']}/schema/").json()
    kinds = {t["name"]: t["kind"] for t in schema["tables"]}
    assert kinds["big_orders"] == kinds["daily_totals"] == "view" and kinds["orders"] == "table"


# --- the connector ----------------------------------------------------------------------------


def test_tls_verified_with_the_test_ca(allow_loopback, ch, capsys):
    connector = get_connector("clickhouse")
    durations = []
    for _ in range(5):
        result = connector.test(_config(ch))
        assert result.ok, result.message
        durations.append(result.duration_ms)
    assert [s.name for s in result.stages] == ["resolve", "tcp", "tls", "auth", "database"]
    assert result.server_version.startswith("ClickHouse 18.")
    _clean(result)
    plain = connector.test(_config(ch, secure=False))
    assert plain.ok, plain.message
    with capsys.disabled():
        print(f"\nClickHouse connection test: TLS best of 5 {min(durations):.1f} ms, plain {plain.duration_ms:.1f} ms")


def test_plain_port_without_tls(allow_loopback, ch):
    result = get_connector("clickhouse").test(_config(ch, secure=False))
    assert result.ok, result.message
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database"]


@pytest.mark.parametrize("ca", ["other", ""])
def test_untrusted_certificate_fails_at_tls(allow_loopback, ch, ca):
    pem = make_ca("Another CA").cert_pem if ca == "other" else ""
    result = get_connector("clickhouse").test(_config(ch, ca_certificate=pem))
    assert (result.ok, result.stage) == (False, "tls"), result.message
    assert result.message.startswith("The server's certificate could not be verified")
    _clean(result)


def test_invalid_ca_pem_fails_at_tls(allow_loopback, ch):
    result = get_connector("clickhouse").test(_config(ch, ca_certificate="-----BEGIN CERTIFICATE-----\nnope"))
    assert (result.stage, result.message) == ("tls", "The CA certificate is not a valid PEM certificate.")


@pytest.mark.parametrize(
    ("overrides", "stage", "message"),
    [
        ({"password": "wrong-password-123"}, "auth", "Authentication failed for user 'dsp_user'."),
        ({"username": "nobody"}, "auth", "Authentication failed for user 'nobody'."),
        ({"database": "no_such_db"}, "database", "Database 'no_such_db' does not exist."),
        ({"host": "bad host"}, "resolve", "The host name contains invalid characters."),
    ],
)
@pytest.mark.parametrize("secure", [True, False])
def test_failures(allow_loopback, ch, caplog, overrides, stage, message, secure):
    changes = dict(overrides)
    password = changes.pop("password", CANARY)
    result = get_connector("clickhouse").test(_config(ch, secure=secure, password=password, **changes))
    assert (result.ok, result.stage, result.message) == (False, stage, message)
    if stage == "database":  # refused in the server's Hello answer, after the login was accepted
        expected = ["resolve", "tcp", "tls", "auth"] if secure else ["resolve", "tcp", "auth"]
        assert [s.name for s in result.stages if s.ok] == expected
    assert CANARY not in caplog.text
    _clean(result)


@pytest.mark.parametrize("secure", [True, False])
def test_silent_listener_fails_at_tcp_within_the_timeout(allow_loopback, ch, silent_listener, secure):
    start = time.monotonic()
    result = get_connector("clickhouse").test(_config(ch, secure=secure, port=silent_listener, timeout=2))
    assert time.monotonic() - start < 2 + 1
    assert (result.stage, result.message) == ("tcp", f"Could not connect to the server at 127.0.0.1:{silent_listener}.")


def test_wrong_protocol(allow_loopback, ch):
    """Plain against the TLS port reads like a closed port; TLS against the plain port is named at stage tls."""
    result = get_connector("clickhouse").test(_config(ch, secure=False, port=ch.secure_port))
    assert (result.stage, result.message) == ("tcp", f"Could not connect to the server at 127.0.0.1:{ch.secure_port}.")
    result = get_connector("clickhouse").test(_config(ch, secure=True, port=ch.port))
    assert (result.stage, result.message) == ("tls", f"The server does not support TLS on port {ch.port}, but TLS is "
                                                     "required (secure is on): use the server's TLS port (9440 by "
                                                     "default) or turn secure off.")


def test_loopback_refused_by_default_without_a_connect(ch):
    with connect_attempts() as attempts:
        result = get_connector("clickhouse").test(_config(ch))
    assert (result.stage, result.message) == ("tcp", f"Could not connect to the server at 127.0.0.1:{ch.secure_port}.")
    assert not [a for a in attempts if isinstance(a, tuple) and a[:2] == ("127.0.0.1", ch.secure_port)]


def test_host_name_verified_while_connecting_to_the_checked_address(allow_loopback, ch, monkeypatch):
    """The name is resolved once (the driver's own lookup gets the pinned address) and TLS checks the name."""
    looked_up: list[str] = []

    def lookup(host, port, timeout):
        looked_up.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(egress, "_getaddrinfo", lookup)
    with connect_attempts() as attempts:
        result = get_connector("clickhouse").test(_config(ch, host="localhost"))
    assert result.ok, result.message
    assert looked_up == ["localhost"]
    assert {a for a in attempts if isinstance(a, tuple)} == {("127.0.0.1", ch.secure_port)}
    mismatch = get_connector("clickhouse").test(_config(ch, host="ch.example.test"))
    assert (mismatch.stage, mismatch.message) == (
        "tls", "The server's certificate could not be verified: "
               "Hostname mismatch, certificate is not valid for 'ch.example.test'.")


def test_no_password_sent_before_the_server_proved_itself(allow_loopback, ch, silent_listener, queries):
    """The tcp probe sends one Ping byte; the driver's Hello (with the password) never goes to a silent peer."""
    sent: list[bytes] = []
    real = socket.socket.sendall

    def sendall(self, data, *args):
        sent.append(bytes(data))
        return real(self, data, *args)

    socket.socket.sendall = sendall  # type: ignore[method-assign]
    try:
        result = get_connector("clickhouse").test(_config(ch, secure=False, port=silent_listener, timeout=1))
    finally:
        socket.socket.sendall = real  # type: ignore[method-assign]
    assert result.stage == "tcp"
    assert sent == [clickhouse_module.PING] and not queries


def test_introspection(allow_loopback, ch, queries):
    result = get_connector("clickhouse").test_and_introspect(_config(ch))
    assert result.ok, result.message
    tables = {(t.schema, t.name): t for t in result.tables}
    assert {name for schema, name in tables if schema == "shop"} == set(SHOP)
    assert not [key for key in tables if key[0] in ("system", "default") or key[1].startswith(".inner")]
    orders = tables[("shop", "orders")]
    assert [(c.name, c.data_type, c.nullable, c.ordinal) for c in orders.columns] == [
        ("id", "UInt64", False, 1), ("amount", "Decimal(10, 2)", False, 2), ("note", "Nullable(String)", True, 3),
        ("created", "DateTime", False, 4)]
    assert tables[("shop", "big_orders")].kind == "view" and tables[("shop", "daily_totals")].kind == "view"
    assert [c.name for c in tables[("shop", "big_orders")].columns] == ["id", "amount"]
    assert len(queries) == 3  # SELECT version(), tables, columns
    assert get_connector("clickhouse").introspect(_config(ch, secure=False)) == result.tables


def test_a_thousand_tables_in_two_catalogue_queries(allow_loopback, ch, queries):
    bulk = f"bulk_{uuid.uuid4().hex[:8]}"
    admin = ch.client()
    admin.execute(f"CREATE DATABASE {bulk}")
    try:
        for i in range(1000):
            admin.execute(f"CREATE TABLE {bulk}.t{i:04d} (id UInt32, label Nullable(String)) ENGINE = Memory")
        queries.clear()
        tables = get_connector("clickhouse").introspect(_config(ch))
        assert len(queries) == 3, queries
        mine = [t for t in tables if t.schema == bulk]
        assert len(mine) == 1000 and all(len(t.columns) == 2 for t in mine)
    finally:
        admin.execute(f"DROP DATABASE {bulk}")
        admin.disconnect()


def test_caps_bound_the_introspection(allow_loopback, ch, monkeypatch):
    monkeypatch.setitem(clickhouse_module.CATALOGUE_PARAMS, "tables", 2)
    monkeypatch.setitem(clickhouse_module.CATALOGUE_PARAMS, "columns", 1)
    tables = get_connector("clickhouse").introspect(_config(ch))
    assert len(tables) == 2 and all(len(t.columns) == 1 for t in tables)


def test_introspect_raises_at_the_failing_stage(allow_loopback, ch):
    with pytest.raises(ConnectorError) as caught:
        get_connector("clickhouse").introspect(_config(ch, password="wrong-password-123"))
    assert (caught.value.stage, caught.value.message) == ("auth", "Authentication failed for user 'dsp_user'.")


# --- the Databrain adapter --------------------------------------------------------------------


def test_databrain_put_tests_and_recaches(api, allow_loopback, ch):
    created = api.post(URL, {"name": "events-clickhouse", "type": "clickhouse", "connection_timeout": 3,
                             "connection": {"host": ch.host, "port": ch.secure_port, "database": "default",
                                            "username": ch.user, "secure": True, "ca_certificate": ch.ca_pem},
                             "credentials": {"password": CANARY}}, format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    body = {"datasourceType": "clickhouse", "credentials": {
        "name": "events-clickhouse", "host": ch.host, "port": ch.secure_port, "username": ch.user,
        "password": CANARY, "database": "shop"}}  # fmt: skip
    response = api.put(DB, body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": "events-clickhouse"}
    core = api.get(f"{URL}{pk}/").json()
    assert core["connection"]["database"] == "shop" and core["connection"]["secure"] is True
    assert core["last_test"]["ok"] and core["schema"]["status"] == "ready"
    schema = api.get(f"{URL}{pk}/schema/").json()
    assert set(SHOP) <= {t["name"] for t in schema["tables"]}

    wrong = api.put(DB, {**body, "credentials": {**body["credentials"], "password": "wrong-password-123"}},
                    format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "CREDENTIAL_TEST_FAILED", wrong.json()
    assert wrong.json()["error"]["stage"] == "auth"
    assert CANARY not in json.dumps([response.json(), wrong.json(), core, schema])
