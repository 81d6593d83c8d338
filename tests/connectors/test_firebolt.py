"""Firebolt: the real firebolt-sdk against tests/support/firebolt_server.py (token, engine URL, queries)."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import time

import appdirs
import pytest

from datasources.connectors import ConnectionConfig, get_connector
from datasources.connectors import firebolt as module
from datasources.connectors.firebolt import auth_url
from datasources.connectors.http_stages import parse_endpoint
from tests.support.certs import make_bundle
from tests.support.contract import BLOCKED_IP, Contract, connect_attempts, run_contract
from tests.support.firebolt_server import FireboltStandIn, serve

URL = "/api/v1/data-sources/"
DB = "/compat/databrain/api/v2/datasource"
CANARY = "canary-fb-9f3c2e71d0b84a65"
TABLES = {
    "orders": [("id", "bigint", False), ("customer_id", "integer", True), ("total", "numeric(12, 2)", True)],
    "customers": [("id", "integer", False), ("email", "text", True)],
    "order_totals": [("customer_id", "integer", True), ("total", "numeric(12, 2)", True)],
    "sales.regions": [("code", "text", False)],
}


@pytest.fixture
def firebolt():
    state = FireboltStandIn(client_secret=CANARY, tables=dict(TABLES), views={"order_totals"})
    with serve(state) as running:
        yield running


def connection(server: FireboltStandIn, **changes) -> dict:
    return {"client_id": server.client_id, "account_name": server.account, "database": server.database,
            "engine_name": server.engine, "endpoint_url": server.url, **changes}


def config(server: FireboltStandIn, timeout: int = 3, secret: str = CANARY, **changes) -> ConnectionConfig:
    return ConnectionConfig("firebolt", connection(server, **changes), {"client_secret": secret},
                            connect_timeout=timeout, query_timeout=5)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent():
    """A listener that accepts connections and never answers (a black hole past the handshake)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


def test_contract_through_the_native_api(api, allow_loopback, firebolt, caplog):
    contract = Contract(
        type_key="firebolt",
        connection=connection(firebolt),
        credentials={"client_secret": CANARY},
        tables={"orders", "customers", "order_totals"},
        patch={"schema": "public"},
        wrong_credentials={"client_secret": "wrong-secret-value"},
        unreachable={"endpoint_url": f"http://127.0.0.1:{closed_port()}"},
        blocked={"endpoint_url": f"http://{BLOCKED_IP}"},
        canary=CANARY,
    )
    final = run_contract(api, contract, caplog)
    assert final["connection"]["endpoint_url"] == firebolt.url
    schema = api.get(f"{URL}{final['id']}/schema/").json()
    kinds = {t["name"]: t["kind"] for t in schema["tables"]}
    assert kinds["order_totals"] == "view" and kinds["orders"] == "table"
    assert set(firebolt.secret_seen_at) == {"/oauth/token"}  # the secret goes to the token endpoint only


def test_stages_version_and_the_requests_the_sdk_sends(allow_loopback, firebolt):
    result = get_connector("firebolt").test_and_introspect(config(firebolt))
    assert result.ok, result
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database", "introspect"]
    assert result.server_version == "Firebolt 4.21.7"
    assert {t.name for t in result.tables} == {"orders", "customers", "order_totals", "regions"}
    orders = next(t for t in result.tables if t.name == "orders")
    assert [(c.name, c.data_type, c.nullable, c.ordinal) for c in orders.columns] == [
        ("id", "bigint", False, 1), ("customer_id", "integer", True, 2), ("total", "numeric(12, 2)", True, 3)]
    assert [(r.method, r.path) for r in firebolt.requests[:3]] == [
        ("HEAD", "/"), ("POST", "/oauth/token"), ("GET", f"/web/v3/account/{firebolt.account}/engineUrl")]
    assert firebolt.queries() == ['USE DATABASE "shop"', 'USE ENGINE "reporting"', "SELECT VERSION()",
                                  firebolt.queries("information_schema")[0]]
    catalogue = firebolt.requests[-1]
    assert catalogue.params == {"database": "shop", "engine": "reporting", "output_format": "JSON_Compact"}


def test_schema_setting_limits_introspection(allow_loopback, firebolt):
    result = get_connector("firebolt").test_and_introspect(config(firebolt, schema="sales"))
    assert result.ok and [(t.schema, t.name) for t in result.tables] == [("sales", "regions")]


@pytest.mark.parametrize("engine_url_field", ["engine_url", "engine_endpoint"])
def test_a_response_supplied_engine_host_goes_through_the_egress_policy(allow_loopback, firebolt,
                                                                        engine_url_field):
    """The engine URL lookup and USE ENGINE's Firebolt-Update-Endpoint name hosts: a metadata address
    fails at tcp with zero connection attempts, like a closed port."""
    setattr(firebolt, engine_url_field, f"http://{BLOCKED_IP}" if engine_url_field == "engine_url" else BLOCKED_IP)
    with connect_attempts() as attempts:
        result = get_connector("firebolt").test(config(firebolt))
    assert not result.ok and result.stage == "tcp", result
    port = 80 if engine_url_field == "engine_url" else 443
    assert result.message == f"Could not connect to the server at {BLOCKED_IP}:{port}."
    assert not [a for a in attempts if isinstance(a, tuple) and a and a[0] == BLOCKED_IP], attempts


def test_a_plain_http_engine_on_a_public_address_never_gets_the_token(allow_loopback, firebolt):
    firebolt.engine_url = "http://8.8.8.8:8080"
    with connect_attempts() as attempts:
        result = get_connector("firebolt").test(config(firebolt))
    assert not result.ok and result.stage == "tls" and "https://" in result.message, result
    assert not [a for a in attempts if isinstance(a, tuple) and a and a[0] == "8.8.8.8"], attempts


def test_https_endpoint_is_verified_and_never_hands_the_token_to_a_cleartext_engine(
        allow_loopback, tmp_path, monkeypatch):
    bundle = make_bundle()
    (tmp_path / "server.pem").write_text(bundle.server.cert_pem + bundle.server.key_pem)
    (tmp_path / "ca.pem").write_text(bundle.ca.cert_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    with serve(FireboltStandIn(client_secret=CANARY, tables=dict(TABLES)), tls=context) as server:
        untrusted = get_connector("firebolt").test(config(server))
        assert untrusted.stage == "tls" and "certificate" in untrusted.message

        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # the test CA, for the probe and the SDK
        trusted = get_connector("firebolt").test_and_introspect(config(server))
        assert trusted.ok and [s.name for s in trusted.stages][:3] == ["resolve", "tcp", "tls"], trusted
        assert len(trusted.tables) == len(TABLES)

        server.engine_url = f"http://127.0.0.1:{server.port}"  # the API names a plain-HTTP engine
        downgraded = get_connector("firebolt").test(config(server))
        assert downgraded.stage == "database" and "https://" in downgraded.message
        assert [r.path for r in server.requests if r.method == "POST"][-1] == "/oauth/token"  # nothing sent there


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"database": "nope"}, "The database 'nope' does not exist"),
        ({"engine_name": "nope"}, "The engine 'nope' does not exist"),
        ({"account_name": "other"}, "The account 'other' does not exist"),
    ],
)
def test_unknown_account_database_or_engine_fails_at_database(allow_loopback, firebolt, changes, message):
    result = get_connector("firebolt").test(config(firebolt, **changes))
    assert not result.ok and result.stage == "database", result
    assert result.message.startswith(message)
    assert [s.name for s in result.stages if s.ok] == ["resolve", "tcp", "auth"]


def test_wrong_secret_fails_at_auth_with_a_clear_message(allow_loopback, firebolt, caplog):
    caplog.set_level(logging.DEBUG)
    result = get_connector("firebolt").test(config(firebolt, secret="wrong-" + CANARY))
    assert not result.ok and result.stage == "auth"
    assert result.message == "The client ID or client secret was refused."
    assert CANARY not in caplog.text and CANARY not in str(result.as_dict())


def test_account_name_cannot_rewrite_the_api_path(allow_loopback, firebolt):
    result = get_connector("firebolt").test(config(firebolt, account_name="../../oauth/token?x="))
    assert not result.ok and result.stage == "resolve" and "account name" in result.message
    assert firebolt.requests == []


def test_names_are_quoted_never_split_into_statements(allow_loopback, firebolt):
    name = 'x"; DROP TABLE orders; --'
    result = get_connector("firebolt").test(config(firebolt, database=name))
    assert result.stage == "database"
    assert firebolt.queries() == ['USE DATABASE "x""; DROP TABLE orders; --"']


def test_a_thousand_tables_in_one_catalogue_query(allow_loopback, firebolt):
    firebolt.tables = {f"t{i:04d}": [("id", "integer", False), ("name", "text", True)] for i in range(1000)}
    result = get_connector("firebolt").test_and_introspect(config(firebolt))
    assert result.ok and len(result.tables) == 1000
    assert all(len(t.columns) == 2 for t in result.tables)
    assert len(firebolt.queries("information_schema")) == 1
    assert len(firebolt.queries()) == 4  # USE DATABASE, USE ENGINE, SELECT VERSION(), the catalogue


def test_introspection_stops_at_the_bounds(allow_loopback, firebolt, monkeypatch):
    monkeypatch.setattr(module, "MAX_TABLES", 2)
    monkeypatch.setattr(module, "MAX_COLUMNS", 1)
    result = get_connector("firebolt").test_and_introspect(config(firebolt))
    assert [t.name for t in result.tables] == ["customers", "order_totals"]
    assert all(len(t.columns) == 1 for t in result.tables)


def test_no_token_cache_file_is_written(allow_loopback, firebolt, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    assert appdirs.user_data_dir(appname="firebolt").startswith(str(home))  # where the SDK would write
    assert get_connector("firebolt").test_and_introspect(config(firebolt)).ok
    assert not os.path.exists(appdirs.user_data_dir(appname="firebolt"))
    assert list(home.rglob("*")) == []


def test_black_holed_endpoint_fails_within_the_timeout(allow_loopback, firebolt, silent):
    start = time.monotonic()
    result = get_connector("firebolt").test(config(firebolt, timeout=1, endpoint_url=f"http://127.0.0.1:{silent}"))
    assert time.monotonic() - start < 2
    assert result.stage == "tcp" and result.message == f"Could not connect to the server at 127.0.0.1:{silent}."


def test_black_holed_engine_fails_at_tcp_within_the_timeout(allow_loopback, firebolt, silent):
    firebolt.engine_url = f"http://127.0.0.1:{silent}"
    start = time.monotonic()
    result = get_connector("firebolt").test(config(firebolt, timeout=1))
    assert time.monotonic() - start < 2
    assert result.stage == "tcp" and result.message == f"Could not connect to the server at 127.0.0.1:{silent}."


def test_token_host_follows_the_sdk_for_named_endpoints():
    assert auth_url(parse_endpoint("https://api.us-east-1.app.firebolt.io")) == \
        "https://id.us-east-1.app.firebolt.io"
    assert auth_url(parse_endpoint("http://127.0.0.1:8123")) == "http://127.0.0.1:8123"
    assert auth_url(parse_endpoint("https://[::1]:8443/fb")) == "https://[::1]:8443/fb"


# --- the Databrain adapter ------------------------------------------------------------------------


def databrain_body(server: FireboltStandIn, **changes) -> dict:
    credentials = {"name": "warehouse", "clientId": server.client_id, "clientSecret": CANARY,
                   "accountName": server.account, "database": server.database, "engineName": server.engine,
                   "schema": "sales", **changes}
    return {"datasourceType": "firebolt", "credentials": credentials}


def test_databrain_put_tests_and_recaches_keeping_endpoint_url(api, allow_loopback, firebolt):
    created = api.post(URL, {"name": "warehouse", "type": "firebolt", "connection": connection(firebolt),
                             "credentials": {"client_secret": CANARY}, "connection_timeout": 3}, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    before = {t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]}
    assert "orders" in before

    response = api.put(DB, databrain_body(firebolt), format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": "warehouse"}
    core = api.get(f"{URL}{pk}/").json()
    assert core["connection"]["endpoint_url"] == firebolt.url  # not part of Databrain's structure: kept
    assert core["connection"]["schema"] == "sales"
    assert core["last_test"]["ok"] and core["schema"]["status"] == "ready"
    assert {t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]} == {"regions"}  # re-cached

    wrong = api.put(DB, databrain_body(firebolt, clientSecret="wrong-secret-value"), format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "CREDENTIAL_TEST_FAILED"
    assert wrong.json()["error"]["stage"] == "auth"
    assert CANARY not in response.content.decode() + wrong.content.decode()
