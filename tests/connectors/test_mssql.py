"""SQL Server connector: the real python-tds driver against the TDS stand-in (tests/support/tds_server.py)."""

from __future__ import annotations

import json
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from datasources.connectors import MAX_COLUMNS, MAX_TABLES, ConnectionConfig, get_connector
from datasources.connectors.mssql import MSSQLConnector
from tests.support.certs import make_bundle, make_ca
from tests.support.contract import BLOCKED_IP, Contract, connect_attempts, run_contract
from tests.support.tds_server import SilentListener, Table, TDSServer

CANARY = "canary-mssql-7f3a9c-secret"
USER, DATABASE = "reporter", "shop"
URL = "/api/v1/data-sources/"
DATABRAIN = "/compat/databrain/api/v2/datasource"
TABLES = [
    Table("dbo", "orders", [("id", "int", False), ("amount", "decimal(10,2)", False), ("note", "nvarchar(50)", True)]),
    Table("dbo", "customers", [("id", "bigint", False), ("email", "varchar(max)", True)]),
    Table("sales", "revenue", [("day", "date", False), ("total", "money", True)], kind="VIEW"),
]


@pytest.fixture(scope="module")
def bundle():
    return make_bundle()


def standin(bundle, **options) -> TDSServer:
    options = {"users": {USER: CANARY}, "databases": ("master", DATABASE), "tables": list(TABLES),
               "encryption": "on", "cert": bundle.server, **options}
    return TDSServer(**options)


@pytest.fixture
def server(bundle, allow_loopback):
    with standin(bundle) as running:
        yield running


def config(server, bundle, password: str = CANARY, timeout: int = 3, **changes) -> ConnectionConfig:
    connection = {"host": server.host, "port": server.port, "database": DATABASE, "username": USER,
                  "encrypt": True, "ca_certificate": bundle.ca.cert_pem, **changes}
    return ConnectionConfig("mssql", connection, {"password": password}, connect_timeout=timeout)


def failed(result, stage: str) -> str:
    assert not result.ok and result.stage == stage, result
    assert CANARY not in json.dumps(result.as_dict())
    return result.message


# --- the native API contract -----------------------------------------------------------------------


def test_contract_through_the_native_api(api, allow_loopback, caplog, server, bundle):
    silent = SilentListener()
    try:
        connection = {"host": server.host, "port": server.port, "database": DATABASE, "username": USER,
                      "encrypt": True, "ca_certificate": bundle.ca.cert_pem}
        contract = Contract(
            type_key="mssql", connection=connection, credentials={"password": CANARY},
            tables={"orders", "customers", "revenue"}, patch={"read_only_intent": True},
            wrong_credentials={"password": "wrong-password-123"}, unreachable={"port": silent.port},
            blocked={"host": BLOCKED_IP}, canary=CANARY, stages=("resolve", "tcp", "tls", "auth", "database"),
        )
        final = run_contract(api, contract, caplog)
    finally:
        silent.close()
    assert final["status"] == "active"
    assert all(login.encrypted for login in server.logins)
    assert any(login.read_only for login in server.logins)  # the PATCH reached the server as ApplicationIntent
    assert {login.app_name for login in server.logins} == {"datasource-control-plane"}


def test_registry_builds_the_connector():
    connector = get_connector("mssql")
    assert isinstance(connector, MSSQLConnector) and connector.key == "mssql"


# --- TLS -------------------------------------------------------------------------------------------


def test_tls_verified_against_the_test_ca(server, bundle):
    result = MSSQLConnector("mssql").test(config(server, bundle))
    assert result.ok, result
    assert [s.name for s in result.stages] == ["resolve", "tcp", "tls", "auth", "database"]
    assert result.server_version == "Microsoft SQL Server 2022 (RTM) - 16.0.1000.6 (X64)"
    assert server.logins[-1].encrypted and server.logins[-1].password == CANARY
    assert server.logins[-1].database == DATABASE and not server.logins[-1].read_only


def test_host_name_checked_against_the_certificate(server, bundle):
    other = make_bundle(hosts=("db.example.com",))
    with standin(bundle, cert=other.server) as wrong_name:
        message = failed(MSSQLConnector("mssql").test(config(wrong_name, other)), "tls")
    assert "could not be verified" in message and "mismatch" in message.lower()
    assert not wrong_name.logins  # the password was never sent


@pytest.mark.parametrize("trust", ["another CA", "system CAs"])
def test_an_untrusted_certificate_fails_at_tls(server, bundle, trust):
    pem = make_ca("Somebody Else").cert_pem if trust == "another CA" else ""
    message = failed(MSSQLConnector("mssql").test(config(server, bundle, ca_certificate=pem)), "tls")
    assert "could not be verified" in message
    assert not server.logins


def test_the_login_connection_is_verified_too(bundle, allow_loopback):
    """The probe's handshake passed; pytds' own connection then meets another certificate: refused."""
    impostor = make_bundle()  # same host names, a CA nobody trusts here
    with standin(bundle, later_cert=impostor.server) as switching:
        message = failed(MSSQLConnector("mssql").test(config(switching, bundle)), "tls")
        assert message == "The server's certificate could not be verified on the login connection."
        assert switching.connections == 2 and not switching.logins  # LOGIN7 (the password) never sent


def test_an_unreadable_ca_certificate_fails_at_tls(server, bundle):
    message = failed(MSSQLConnector("mssql").test(config(server, bundle, ca_certificate="not a pem")), "tls")
    assert "ca_certificate" in message


def test_encrypt_false_against_a_server_that_requires_tls(bundle, allow_loopback):
    with standin(bundle, encryption="required") as strict:
        message = failed(MSSQLConnector("mssql").test(config(strict, bundle, encrypt=False)), "tls")
        assert message == "The server requires encryption: turn on 'Encrypt connection'."
        assert not strict.logins
        assert MSSQLConnector("mssql").test(config(strict, bundle)).ok  # encrypt=true: ENCRYPT_REQ is fine


def test_encrypt_false_sends_the_login_unencrypted(bundle, allow_loopback):
    """What encrypt=false means with pytds: ENCRYPT_NOT_SUP, no TLS at all, the login packet included."""
    with standin(bundle, encryption="on") as optional:
        result = MSSQLConnector("mssql").test(config(optional, bundle, encrypt=False))
        assert result.ok and "tls" not in [s.name for s in result.stages], result
        assert optional.logins[-1].encrypted is False


def test_encrypt_true_against_a_server_without_tls(bundle, allow_loopback):
    with standin(bundle, encryption="off", cert=None) as plain:
        message = failed(MSSQLConnector("mssql").test(config(plain, bundle)), "tls")
        assert "does not offer encryption" in message and not plain.logins


# --- auth, database, options ------------------------------------------------------------------------


def test_wrong_password_fails_at_auth(server, bundle):
    message = failed(MSSQLConnector("mssql").test(config(server, bundle, password="wrong-password-123")), "auth")
    assert message == f"Login failed for user '{USER}' (SQL Server error 18456): check the user name and password."


def test_unknown_database_fails_at_database(server, bundle):
    message = failed(MSSQLConnector("mssql").test(config(server, bundle, database="nope")), "database")
    assert "Cannot open database 'nope'" in message and "4060" in message


def test_disable_database_selection_logs_in_without_a_database(server, bundle):
    result = MSSQLConnector("mssql").test(config(server, bundle, database="nope", disable_database_selection=True))
    assert result.ok, result
    assert server.logins[-1].database == ""


def test_read_only_intent_is_sent(server, bundle):
    assert MSSQLConnector("mssql").test(config(server, bundle, read_only_intent=True)).ok
    assert server.logins[-1].read_only


# --- reaching the server ----------------------------------------------------------------------------


def test_read_only_routing_follows_the_egress_policy(bundle, allow_loopback):
    with standin(bundle) as secondary, standin(bundle, route_to=(secondary.host, secondary.port)) as listener:
        assert MSSQLConnector("mssql").test(config(listener, bundle, read_only_intent=True)).ok
        assert secondary.logins[-1].read_only and secondary.logins[-1].encrypted  # routed, verified again
    with standin(bundle, route_to=(BLOCKED_IP, 1433)) as listener, connect_attempts() as attempts:
        result = MSSQLConnector("mssql").test(config(listener, bundle, read_only_intent=True))
    assert failed(result, "tcp") == f"Could not connect to the server at {BLOCKED_IP}:1433."
    assert not [a for a in attempts if isinstance(a, tuple) and a[0] == BLOCKED_IP]


def test_a_silent_listener_fails_at_tcp_within_the_timeout(allow_loopback, bundle):
    silent = SilentListener()
    try:
        start = time.monotonic()
        result = MSSQLConnector("mssql").test(config(silent, bundle, timeout=3))
        elapsed = time.monotonic() - start
    finally:
        silent.close()
    assert failed(result, "tcp") == f"Could not connect to the server at 127.0.0.1:{silent.port}."
    assert 2.5 < elapsed < 4.0


def test_a_peer_that_is_not_sql_server_reads_like_a_closed_port(allow_loopback, bundle):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        with listener, listener.accept()[0] as sock:
            sock.recv(1024)
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=answer, daemon=True).start()
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    for used in (port, closed_port):
        result = MSSQLConnector("mssql").test(config(SimpleNamespace(host="127.0.0.1", port=used), bundle))
        assert failed(result, "tcp") == f"Could not connect to the server at 127.0.0.1:{used}."


# --- introspection ---------------------------------------------------------------------------------


def test_introspection_over_the_tested_session(server, bundle):
    result = MSSQLConnector("mssql").test_and_introspect(config(server, bundle))
    assert result.ok and result.stages[-1].name == "introspect", result
    tables = {(t.schema, t.name): t for t in result.tables}
    assert set(tables) == {("dbo", "orders"), ("dbo", "customers"), ("sales", "revenue")}
    assert tables[("sales", "revenue")].kind == "view" and tables[("dbo", "orders")].kind == "table"
    orders = [(c.name, c.data_type, c.nullable, c.ordinal) for c in tables[("dbo", "orders")].columns]
    assert orders == [("id", "int", False, 1), ("amount", "decimal(10,2)", False, 2), ("note", "nvarchar(50)", True, 3)]
    assert tables[("dbo", "customers")].columns[1].data_type == "varchar(max)"
    assert server.connections == 2  # the PRELOGIN/TLS probe, then pytds' session (tested, then introspected)


def test_a_thousand_tables_in_one_query(bundle, allow_loopback):
    many = [Table("dbo", f"t{i:04d}", [("id", "int", False), ("label", "nvarchar(20)", True)]) for i in range(1000)]
    with standin(bundle, tables=many) as big:
        tables = MSSQLConnector("mssql").introspect(config(big, bundle))
        assert len(tables) == 1000 and all(len(t.columns) == 2 for t in tables)
        assert sum("INFORMATION_SCHEMA.TABLES" in sql for sql in big.batches) == 1
        assert len(big.batches) == 2  # the version query and the catalogue query


def test_introspection_is_bounded(bundle, allow_loopback):
    wide = Table("dbo", "aaa_wide", [(f"c{i:04d}", "int", True) for i in range(MAX_COLUMNS + 1)])
    many = [wide] + [Table("dbo", f"t{i:05d}", [("id", "int", False)]) for i in range(MAX_TABLES)]
    with standin(bundle, tables=many) as big:
        tables = MSSQLConnector("mssql").introspect(config(big, bundle))
        assert f"TOP ({MAX_TABLES})" in big.batches[-1]
    assert len(tables) == MAX_TABLES and len(tables[0].columns) == MAX_COLUMNS


def test_the_canary_password_never_appears(server, bundle, caplog, allow_loopback):
    caplog.set_level("DEBUG")
    connector = MSSQLConnector("mssql")
    results = [
        connector.test(config(server, bundle)),
        connector.test(config(server, bundle, database="nope")),
        connector.test(config(server, bundle, username=CANARY)),  # a login failure naming the "user"
        connector.test(config(server, bundle, ca_certificate=make_ca().cert_pem)),
        connector.test(config(server, bundle, host=BLOCKED_IP)),
    ]
    assert [r.stage for r in results] == [None, "database", "auth", "tls", "tcp"]
    for result in results:
        assert CANARY not in json.dumps(result.as_dict()), result
    assert results[2].message.startswith("Login failed for user '***'")  # a user name equal to the secret is masked
    assert CANARY not in caplog.text


# --- the Databrain adapter ------------------------------------------------------------------------


def test_databrain_put_tests_and_recaches(api, allow_loopback, server, bundle, monkeypatch, tmp_path):
    created = api.post(URL, {"name": "sqlserver", "type": "mssql", "credentials": {"password": CANARY},
                             "connection": {"host": server.host, "port": server.port, "database": DATABASE,
                                            "username": USER, "ca_certificate": bundle.ca.cert_pem}}, format="json")
    assert created.status_code == 201, created.json()
    server.tables.append(Table("dbo", "invoices", [("id", "int", False)]))
    # The Databrain structure has no CA field: the PUT returns ca_certificate to its default, so the
    # stand-in's CA becomes a "system" CA for this test (OpenSSL reads SSL_CERT_FILE on every load).
    system = tmp_path / "system-ca.pem"
    system.write_text(bundle.ca.cert_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(system))
    body = {"datasourceType": "mssql", "credentials": {
        "name": "sqlserver", "server": server.host, "port": server.port, "user": USER, "password": CANARY,
        "database": DATABASE, "readOnlyIntent": True}}
    response = api.put(DATABRAIN, body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": "sqlserver"}
    core = api.get(f"{URL}{created.json()['id']}/").json()
    assert core["connection"]["read_only_intent"] is True and core["connection"]["encrypt"] is True
    assert core["last_test"]["ok"] and core["schema"]["status"] == "ready"
    schema = api.get(f"{URL}{created.json()['id']}/schema/").json()
    assert "invoices" in {t["name"] for t in schema["tables"]}  # re-cached after the PUT
    assert server.logins[-1].read_only and server.logins[-1].encrypted
    assert CANARY not in json.dumps(core) + json.dumps(schema)
