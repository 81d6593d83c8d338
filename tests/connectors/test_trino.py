"""Trino connector: the real ``trino`` client against the protocol stand-in (tests/support/trino_server.py)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from datasources.connectors import ConnectionConfig, ConnectorError, get_connector
from datasources.connectors import trino as trino_module
from tests.support.certs import issue, make_bundle, make_ca
from tests.support.contract import BLOCKED_IP, Contract, connect_attempts, run_contract
from tests.support.sshd import serve_sshd
from tests.support.trino_server import Table, TrinoServer

CANARY = "canary-Trino-5ecret-7f3a"
URL = "/api/v1/data-sources/"
DB = "/compat/databrain/api/v2/datasource"
ORDERS = Table("orders", [("id", "bigint", False), ("amount", "decimal(10,2)", True), ("note", "varchar(50)", True)])
CATALOGS = {
    "hive": {
        "sales": [ORDERS, Table("big_orders", [("id", "bigint", True)], "VIEW"), Table("no_columns")],
        "marketing": [Table("campaigns", [("name", "varchar", True), ("budget", "double", True)])],
        "empty": [],
    },
}


@pytest.fixture(scope="module")
def bundle():
    return make_bundle()  # server certificate for 127.0.0.1 and localhost


@pytest.fixture
def server(bundle):
    with TrinoServer(CATALOGS, password=CANARY, tls=bundle.server) as standin:
        yield standin


def _config(server, bundle, password=CANARY, timeout=3, **overrides) -> ConnectionConfig:
    connection = {"host": "127.0.0.1", "port": server.port, "catalog": "hive", "schema": "sales",
                  "username": "analyst", "http_scheme": server.scheme, "ssh_tunnel": {"enabled": False},
                  **({"ca_certificate": bundle.ca.cert_pem} if server.scheme == "https" else {}), **overrides}
    secrets = {"password": password} if password else {}
    return ConnectionConfig("trino", connection, secrets, connect_timeout=timeout, query_timeout=20)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _failed(result, stage: str) -> str:
    assert (result.ok, result.stage) == (False, stage), result.as_dict()
    assert result.stages[-1].name == stage and not result.stages[-1].ok
    assert CANARY not in json.dumps(result.as_dict())
    return result.message


def test_stages_version_and_introspection_over_one_session(allow_loopback, server, bundle, capsys):
    result = get_connector("trino").test_and_introspect(_config(server, bundle))
    assert result.ok, result.message
    assert [s.name for s in result.stages] == ["resolve", "tcp", "tls", "auth", "database", "introspect"]
    assert result.server_version == "Trino 468"
    tables = {t.name: t for t in result.tables}
    assert set(tables) == {"orders", "big_orders", "no_columns"} and {t.schema for t in tables.values()} == {"sales"}
    assert (tables["orders"].kind, tables["big_orders"].kind, tables["no_columns"].columns) == ("table", "view", [])
    assert [(c.name, c.data_type, c.nullable, c.ordinal) for c in tables["orders"].columns] == [
        ("id", "bigint", False, 1), ("amount", "decimal(10,2)", True, 2), ("note", "varchar(50)", True, 3)]
    assert len(server.statements) == 3  # version, the schema check, one introspection statement
    for method, _path, headers in server.requests:
        if method != "HEAD":
            assert headers["Host"] == f"127.0.0.1:{server.port}" and headers["X-Trino-User"] == "analyst"
            assert (headers["X-Trino-Catalog"], headers["X-Trino-Schema"]) == ("hive", "sales")
            assert trino_module.ENCODING_HEADER not in headers  # never the spooling protocol
    durations = sorted(get_connector("trino").test(_config(server, bundle)).duration_ms for _ in range(5))
    with capsys.disabled():
        print(f"\nTrino (stand-in, https + basic auth) connection test: best of 5 {durations[0]:.1f} ms")


def test_contract(api, allow_loopback, caplog, server, bundle):
    connection = {"host": "127.0.0.1", "port": server.port, "catalog": "hive", "schema": "sales",
                  "username": "analyst", "http_scheme": "https", "ca_certificate": bundle.ca.cert_pem}
    contract = Contract(
        type_key="trino", connection=connection, credentials={"password": CANARY},
        tables={"orders", "big_orders"}, patch={"username": "analyst2"},
        wrong_credentials={"password": "wrong-password-123"},
        unreachable={"port": _free_port()}, blocked={"host": BLOCKED_IP},
        canary=CANARY, stages=("resolve", "tcp", "tls", "auth", "database"),
    )
    final = run_contract(api, contract, caplog)
    assert final["schema"]["status"] == "ready" and final["last_test"]["ok"]


def test_a_password_is_never_sent_over_plain_http(allow_loopback, bundle):
    with TrinoServer(CATALOGS, password=CANARY) as plain:
        message = _failed(get_connector("trino").test(_config(plain, bundle)), "auth")
        assert message == trino_module.PLAIN_HTTP
        assert plain.statements == [] and all("Authorization" not in h for _, _, h in plain.requests)
    with TrinoServer(CATALOGS) as open_server:  # no password configured: plain http is allowed
        result = get_connector("trino").test(_config(open_server, bundle, password=""))
        assert result.ok, result.message
        assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database"]


def test_wrong_or_missing_password_fails_at_auth(allow_loopback, server, bundle):
    message = _failed(get_connector("trino").test(_config(server, bundle, password="wrong-password-123")), "auth")
    assert message == "Authentication failed for user 'analyst'."
    message = _failed(get_connector("trino").test(_config(server, bundle, password="")), "auth")
    assert message == "The server requires a password for user 'analyst'."


def test_untrusted_certificates_fail_at_tls(allow_loopback, server, bundle):
    system_cas = _config(server, bundle)
    del system_cas.connection["ca_certificate"]
    assert "could not be verified" in _failed(get_connector("trino").test(system_cas), "tls")
    other_ca = _config(server, bundle, ca_certificate=make_ca("Other CA").cert_pem)
    assert "could not be verified" in _failed(get_connector("trino").test(other_ca), "tls")
    elsewhere = issue(bundle.ca, "trino.example", ("trino.example",))  # the right CA, another host name
    with TrinoServer(CATALOGS, password=CANARY, tls=elsewhere) as named:
        message = _failed(get_connector("trino").test(_config(named, bundle)), "tls")
        assert "could not be verified" in message and named.statements == []


@pytest.mark.parametrize(("overrides", "message"), [
    ({"catalog": "nope"}, "Catalog 'nope' does not exist or is not accessible."),
    ({"schema": "nope"}, "Schema 'nope' does not exist in catalog 'hive' or is not accessible."),
    ({"schema": "it's"}, "Schema 'it's' does not exist in catalog 'hive' or is not accessible."),
])
def test_unknown_catalog_or_schema_fails_at_database(allow_loopback, server, bundle, overrides, message):
    assert _failed(get_connector("trino").test(_config(server, bundle, **overrides)), "database") == message
    with pytest.raises(ConnectorError) as caught:
        get_connector("trino").introspect(_config(server, bundle, **overrides))
    assert caught.value.stage == "database"


def test_an_empty_schema_introspects_to_no_tables(allow_loopback, server, bundle):
    assert get_connector("trino").introspect(_config(server, bundle, schema="empty")) == []


def test_schema_names_fold_to_lower_case_as_in_trino(allow_loopback, server, bundle):
    assert {t.name for t in get_connector("trino").introspect(_config(server, bundle, schema="Marketing"))} == {
        "campaigns"}


@pytest.mark.parametrize(("next_host", "refused"), [
    (BLOCKED_IP, f"https://{BLOCKED_IP}:443"),
    ("127.0.0.1:{other}", "https://127.0.0.1:{other}"),  # loopback is allowed here, but not this port
    ("localhost:{port}", "https://localhost:{port}"),  # the same server under another name
    ("http://127.0.0.1:{port}", "http://127.0.0.1:{port}"),  # the same address without TLS
])
def test_next_uri_elsewhere_is_never_followed(allow_loopback, server, bundle, next_host, refused):
    """A hostile coordinator's nextUri: refused before any socket opens (loopback ones included)."""
    other = _free_port()
    server.next_host = next_host.format(other=other, port=server.port)
    with connect_attempts() as attempts:
        result = get_connector("trino").test(_config(server, bundle))
    refused = refused.format(other=other, port=server.port)
    assert _failed(result, "auth") == (f"The server sent a URL for another address ({refused}); "
                                       f"only https://127.0.0.1:{server.port} is followed.")
    assert not [a for a in attempts if a[0] != "127.0.0.1" or a[1] != server.port], attempts
    assert [m for m, _, _ in server.requests if m != "HEAD"] == ["POST"]  # the first page's nextUri was refused


def test_spooled_results_are_refused(allow_loopback, bundle):
    """Segment URLs would be fetched (and acknowledged from another thread) outside the adapter."""
    with TrinoServer(CATALOGS, password=CANARY, tls=bundle.server, spool_to=f"http://{BLOCKED_IP}/s/1") as hostile:
        with connect_attempts() as attempts:
            result = get_connector("trino").test(_config(hostile, bundle))
        assert _failed(result, "auth") == "The server answered with spooled results, which are not accepted."
        assert not [a for a in attempts if a[:2] != ("127.0.0.1", hostile.port)], attempts


def test_introspection_of_1000_tables_is_one_statement(allow_loopback, bundle, capsys):
    columns = [(f"c{j}", ("bigint", "varchar(40)", "decimal(10,2)")[j % 3], j % 3 != 2) for j in range(20)]
    big = {"hive": {"wide": [Table(f"t{i:04d}", columns) for i in range(1000)]}}
    with TrinoServer(big, password=CANARY, tls=bundle.server, page_rows=4000) as standin:
        start = time.perf_counter()
        result = get_connector("trino").test_and_introspect(_config(standin, bundle, schema="wide"))
        elapsed = time.perf_counter() - start
        pages = sum(1 for m, p, _ in standin.requests if m == "GET" and "/executing/" in p)
    assert result.ok, result.message
    assert len(result.tables) == 1000 and sum(len(t.columns) for t in result.tables) == 20_000
    assert result.tables[0].columns[2].data_type == "decimal(10,2)" and not result.tables[0].columns[2].nullable
    assert len(standin.statements) == 3 and pages >= 4  # 20,000 rows over several nextUri pages
    assert elapsed < 15
    with capsys.disabled():
        print(f"\nTrino introspection: 1000 tables x 20 columns in {elapsed * 1000:.0f} ms, "
              f"{len(standin.statements)} statements, {pages + 1} result pages")


def test_caps_stop_reading_and_cancel_the_query(allow_loopback, bundle, monkeypatch):
    monkeypatch.setattr(trino_module, "MAX_TABLES", 5)
    monkeypatch.setattr(trino_module, "MAX_COLUMNS", 3)
    big = {"hive": {"wide": [Table(f"t{i:03d}", [(f"c{j}", "bigint", True) for j in range(10)]) for i in range(300)]}}
    with TrinoServer(big, password=CANARY, tls=bundle.server, page_rows=100) as standin:
        tables = get_connector("trino").introspect(_config(standin, bundle, schema="wide"))
        assert [t.name for t in tables] == [f"t{i:03d}" for i in range(5)]
        assert all([c.name for c in t.columns] == ["c0", "c1", "c2"] for t in tables)
        assert len(standin.cancelled) == 1  # DELETE on the nextUri: the rest is never read
        gets = sum(1 for m, p, _ in standin.requests if m == "GET" and "/v1/statement/" in p)
        assert gets <= 4  # version, schema check, the first of 30 pages and the one read ahead


def test_a_silent_listener_fails_at_tcp_within_the_timeout(allow_loopback, bundle):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts (the kernel does), never answers
        port = silent.getsockname()[1]
        for scheme in ("https", "http"):
            config = ConnectionConfig("trino", {"host": "127.0.0.1", "port": port, "catalog": "hive",
                                                "schema": "sales", "username": "analyst", "http_scheme": scheme},
                                      {"password": CANARY}, connect_timeout=2)
            start = time.monotonic()
            result = get_connector("trino").test(config)
            assert time.monotonic() - start < 3
            assert _failed(result, "tcp") == f"Could not connect to the server at 127.0.0.1:{port}."


def test_a_closed_port_and_a_blocked_host_look_the_same(allow_loopback, server, bundle):
    port = _free_port()
    closed = get_connector("trino").test(_config(server, bundle, port=port))
    allow_loopback.DATASOURCE_ALLOWED_NETWORKS = []
    with connect_attempts() as attempts:
        blocked = get_connector("trino").test(_config(server, bundle))  # a live server, refused by policy
    assert attempts == [] and server.requests == []
    for result, p in ((closed, port), (blocked, server.port)):
        assert _failed(result, "tcp") == f"Could not connect to the server at 127.0.0.1:{p}."


# --- SSH tunnel ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sshd():
    yield from serve_sshd()


def test_through_an_ssh_tunnel_tls_still_verifies_the_host_name(allow_loopback, bundle, sshd, monkeypatch):
    def no_egress_for_trino(*args):  # the bastion resolves the Trino host, not us
        raise AssertionError(f"Trino host checked against our egress policy: {args}")

    monkeypatch.setattr(trino_module, "reach_http", no_egress_for_trino)
    named = issue(bundle.ca, "localhost", ("localhost",))  # not valid for 127.0.0.1
    tunnel = {"enabled": True, "host": sshd.host, "port": sshd.port, "username": sshd.user}
    with TrinoServer(CATALOGS, password=CANARY, tls=named) as standin:
        config = _config(standin, bundle, host="localhost", ssh_tunnel=tunnel)
        config.secrets["ssh_private_key"] = sshd.keys["ed25519"]
        result = get_connector("trino").test_and_introspect(config)
        assert result.ok, result.message
        assert [s.name for s in result.stages] == ["resolve", "tcp", "ssh", "tls", "auth", "database", "introspect"]
        assert result.ssh_host_key_fingerprint and {t.name for t in result.tables} >= {"orders", "big_orders"}
        hosts = {h["Host"] for m, p, h in standin.requests if m in ("POST", "GET") and p.startswith("/v1/")}
        assert hosts == {f"localhost:{standin.port}"}  # the configured name, not the tunnel's local end
        assert {t.name for t in get_connector("trino").introspect(config)} >= {"orders"}

        by_address = _config(standin, bundle, host="127.0.0.1", ssh_tunnel=tunnel)  # same server, same tunnel
        by_address.secrets["ssh_private_key"] = sshd.keys["ed25519"]
        assert "could not be verified" in _failed(get_connector("trino").test(by_address), "tls")

        config.secrets["password"] = "wrong-password-123"
        assert _failed(get_connector("trino").test(config), "auth") == "Authentication failed for user 'analyst'."


# --- Databrain adapter ---------------------------------------------------------------------------


def test_databrain_put_tests_and_recaches(api, allow_loopback, server, bundle, sshd, tmp_path, monkeypatch):
    connection = {"host": "127.0.0.1", "port": server.port, "catalog": "hive", "schema": "sales",
                  "username": "analyst", "http_scheme": "https", "ca_certificate": bundle.ca.cert_pem}
    created = api.post(URL, {"name": "trino-warehouse", "type": "trino", "connection": connection,
                             "credentials": {"password": CANARY}, "connection_timeout": 3}, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    # Databrain's structure has no CA field and replaces the connection: trust the test CA as the system's.
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(bundle.ca.cert_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    credentials = {"name": "trino-warehouse", "host": "127.0.0.1", "port": server.port, "catalog": "hive",
                   "schema": "marketing", "username": "analyst", "password": CANARY, "sshTunnel": "disable"}
    response = api.put(DB, {"datasourceType": "trino", "credentials": credentials}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": "trino-warehouse"}
    core = api.get(f"{URL}{pk}/").json()
    assert core["connection"]["schema"] == "marketing" and core["last_test"]["ok"]
    assert core["schema"]["status"] == "ready"
    assert {t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]} == {"campaigns"}

    wrong = api.put(DB, {"datasourceType": "trino", "credentials": {**credentials, "password": "wrong-pass-1"}},
                    format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["stage"] == "auth", wrong.json()

    tunnelled = {**credentials, "schema": "sales", "sshTunnel": "enable", "sshHost": sshd.host, "sshPort": sshd.port,
                 "sshUsername": sshd.user, "sshPrivateKey": sshd.keys["ed25519"]}
    response = api.put(DB, {"datasourceType": "trino", "credentials": tunnelled}, format="json")
    assert response.status_code == 200, response.json()
    core = api.get(f"{URL}{pk}/").json()
    assert core["connection"]["ssh_tunnel"]["enabled"] and "ssh" in [s["name"] for s in core["last_test"]["stages"]]
    assert {t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]} >= {"orders", "big_orders"}
    for text in (created.content, response.content, wrong.content, json.dumps(core).encode()):
        assert CANARY.encode() not in text
