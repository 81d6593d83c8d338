"""Snowflake connector: the real snowflake-connector-python against fakesnow's server (an emulator).

fakesnow runs in server mode on a loopback port (tests/support/snowflake_server.py), its login route
wrapped by a password / key-pair check; the connector reaches it through ``endpoint_url``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from datasources.connectors import ConnectionConfig, ConnectorError, get_connector, snowflake_logs
from datasources.connectors import snowflake as sf
from tests.conftest import IN_CI
from tests.support.certs import make_bundle
from tests.support.contract import Contract, connect_attempts, run_contract

try:
    from tests.support.snowflake_server import SnowflakeServer, run_sql, serve_snowflake
except ImportError as missing:  # fakesnow's server extra (uvicorn, starlette)
    if IN_CI:
        raise
    pytest.skip(f"fakesnow's server is not installed ({missing}): pip install 'fakesnow[server]==0.12.1'",
                allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")  # fakesnow's own

URL = "/api/v1/data-sources/"
DB = "/compat/databrain/api/v2/datasource"
CANARY = "canary-sf-5c1e9d7b"
KEY_PASSPHRASE = "passphrase-sf-81d3"
MANY = 150  # tables in schema MANY


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey, passphrase: str = "") -> str:
    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


@pytest.fixture(scope="module")
def user_key() -> rsa.RSAPrivateKey:
    return _rsa()


@pytest.fixture(scope="module")
def fakesnow(user_key):
    """fakesnow's server with users ANALYST (password) and KEYUSER (key pair) and a small warehouse."""
    run_sql(
        "CREATE DATABASE IF NOT EXISTS SALES", "CREATE SCHEMA IF NOT EXISTS SALES.PUBLIC",
        "CREATE OR REPLACE TABLE SALES.PUBLIC.ORDERS (ID INT NOT NULL, AMOUNT NUMBER(10,2), NOTE VARCHAR(50))",
        "CREATE OR REPLACE TABLE SALES.PUBLIC.CUSTOMERS (ID INT NOT NULL, EMAIL VARCHAR)",
        "CREATE OR REPLACE VIEW SALES.PUBLIC.BIG_ORDERS AS SELECT ID, AMOUNT FROM SALES.PUBLIC.ORDERS",
        "CREATE SCHEMA IF NOT EXISTS SALES.ONE", "CREATE OR REPLACE TABLE SALES.ONE.ONLY_TABLE (X INT)",
        "CREATE SCHEMA IF NOT EXISTS SALES.MANY",
        *(f"CREATE OR REPLACE TABLE SALES.MANY.T{i:03d} (ID INT, LABEL VARCHAR(10))" for i in range(MANY)),
    )
    server = SnowflakeServer(passwords={"ANALYST": CANARY}, public_keys={"KEYUSER": user_key.public_key()})
    with serve_snowflake(server) as running:
        yield running


def _connection(server: SnowflakeServer, **overrides) -> dict:
    connection = {"account": "acme-test", "username": "analyst", "role": "ANALYST", "warehouse": "COMPUTE_WH",
                  "database": "SALES", "schema": "PUBLIC", "auth_method": "password", "endpoint_url": server.url,
                  **overrides}
    return {k: v for k, v in connection.items() if v is not None}


def _config(server: SnowflakeServer, secrets: dict | None = None, timeout: int = 3, **overrides) -> ConnectionConfig:
    return ConnectionConfig("snowflake", _connection(server, **overrides),
                            {"password": CANARY} if secrets is None else secrets, connect_timeout=timeout)


def _closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


# --- the contract, through the native API -----------------------------------------------------------


def test_contract(api, allow_loopback, fakesnow, caplog):
    contract = Contract(
        type_key="snowflake",
        connection=_connection(fakesnow),
        credentials={"password": CANARY},
        tables={"ORDERS", "CUSTOMERS", "BIG_ORDERS"},
        patch={"warehouse": "REPORTING_WH"},
        wrong_credentials={"password": "wrong-password-123"},
        unreachable={"endpoint_url": f"http://127.0.0.1:{_closed_port()}"},
        blocked={"endpoint_url": "https://169.254.169.254"},
        canary=CANARY,
    )
    final = run_contract(api, contract, caplog)
    assert final["connection"]["endpoint_url"] == fakesnow.url
    schema = api.get(f"{URL}{final['id']}/schema/").json()
    kinds = {t["name"]: t["kind"] for t in schema["tables"]}
    assert kinds["BIG_ORDERS"] == "view" and kinds["ORDERS"] == "table"
    orders = next(t for t in schema["tables"] if t["name"] == "ORDERS")
    assert [(c["name"], c["type"], c["nullable"]) for c in orders["columns"]] == [
        ("ID", "NUMBER(38,0)", False), ("AMOUNT", "NUMBER(10,2)", True), ("NOTE", "VARCHAR(50)", True)]


# --- stages ------------------------------------------------------------------------------------------


def test_ok_stages_and_only_the_endpoint_contacted(allow_loopback, fakesnow, capsys):
    with connect_attempts() as attempts:
        result = get_connector("snowflake").test(_config(fakesnow))
    assert result.ok, result.message
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database"]
    assert result.server_version.startswith("Snowflake ")
    # no platform detection (metadata addresses), telemetry or OCSP hosts: only the endpoint
    assert {a for a in attempts if isinstance(a, tuple)} <= {("127.0.0.1", fakesnow.port)}, attempts
    best = min(get_connector("snowflake").test(_config(fakesnow)).duration_ms for _ in range(5))
    with capsys.disabled():
        print(f"\nSnowflake (fakesnow) connection test: best of 5 {best:.1f} ms")


def test_proxies_from_the_environment_are_ignored(allow_loopback, fakesnow, monkeypatch):
    """A proxy would look the user's host up itself, past the checked address: never used."""
    trap = socket.socket()
    trap.bind(("127.0.0.1", 0))
    trap.listen(8)
    proxy = f"http://127.0.0.1:{trap.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        with connect_attempts() as attempts:
            result = get_connector("snowflake").test(_config(fakesnow))
    finally:
        trap.close()
    assert result.ok, result
    assert ("127.0.0.1", int(proxy.rsplit(":", 1)[1])) not in attempts


def test_wrong_password_is_auth(allow_loopback, fakesnow):
    result = get_connector("snowflake").test(_config(fakesnow, {"password": "wrong-password-123"}))
    assert (result.stage, result.message) == (
        "auth", "Authentication failed for user 'analyst': incorrect username or password.")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"database": "NO_SUCH_DB"}, "The database 'NO_SUCH_DB' does not exist or is not authorized for this user."),
    ({"schema": "NO_SUCH_SCHEMA"}, "The schema 'NO_SUCH_SCHEMA' does not exist or is not authorized for this user."),
    ({"database": "sales", "schema": "public"}, None),  # unquoted identifiers: case-insensitive, like Snowflake
    # quoted as one identifier ("SALES""; DROP ..."): DuckDB's parser under fakesnow refuses the doubled quote,
    # Snowflake would look the name up; either way stage database, and nothing else runs
    ({"database": 'SALES"; DROP DATABASE SALES; --'}, "database 'SALES\"; DROP DATABASE SALES; --'"),
])
def test_database_stage(allow_loopback, fakesnow, overrides, message):
    result = get_connector("snowflake").test(_config(fakesnow, **overrides))
    if message is None:
        assert result.ok, result.message
    else:
        assert result.stage == "database" and message in result.message, result
    assert not [q for q in fakesnow.queries if q.upper().startswith("DROP")]
    assert get_connector("snowflake").test(_config(fakesnow)).ok  # nothing was dropped


@pytest.mark.parametrize("account", ["evil.com/x", "a@b", "x y", "acme/../x", "acme:443", "", ".acme", "acme..x"])
def test_account_injection_refused_at_resolve(allow_loopback, fakesnow, account):
    with connect_attempts() as attempts:
        result = get_connector("snowflake").test(_config(fakesnow, account=account, endpoint_url=None))
    assert result.stage == "resolve" and [s.name for s in result.stages] == ["resolve"], result
    assert not attempts


def test_account_host_stays_under_snowflakecomputing(fakesnow):
    for account, host in [("evil.com", "evil.com.snowflakecomputing.com"),
                          ("XY12345.eu-west-1", "xy12345.eu-west-1.snowflakecomputing.com"),
                          ("myorg-acct.snowflakecomputing.com", "myorg-acct.snowflakecomputing.com")]:
        config = _config(fakesnow, account=account, endpoint_url=None)
        assert sf.account_and_endpoint(config)[1].base_url == f"https://{host}:443"


@pytest.mark.parametrize("account", ["evil.com/x", "a@b"])
def test_account_through_the_api_is_refused(api, allow_loopback, fakesnow, account):
    response = api.post(URL, {"name": "evil", "type": "snowflake", "credentials": {"password": CANARY},
                              "connection": _connection(fakesnow, account=account, endpoint_url=None)},
                        format="json")
    body = response.json()  # checked by the catalogue when written (f2c7bb9): no test, nothing stored
    assert response.status_code == 400 and body["code"] == "INVALID_REQUEST_BODY", body
    assert "connection.account" in body["errors"] and CANARY not in response.content.decode()


def test_untrusted_certificate_fails_at_tls(allow_loopback):
    bundle = make_bundle()
    with serve_snowflake(SnowflakeServer(passwords={"ANALYST": CANARY}),
                         tls=(bundle.server.cert_pem, bundle.server.key_pem)) as server:
        result = get_connector("snowflake").test(_config(server))
        assert result.stage == "tls", result
        assert result.message.startswith("The server's certificate could not be verified")
        assert [s.name for s in result.stages] == ["resolve", "tcp", "tls"]
        assert "POST /session/v1/login-request" not in server.requests  # the password was never sent


def test_silent_listener_fails_at_tcp_within_timeout():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (the kernel does) and never answers
    try:
        start = time.monotonic()
        result = get_connector("snowflake").test(ConnectionConfig(
            "snowflake", {"account": "acme", "username": "u", "database": "D", "schema": "S",
                          "endpoint_url": f"http://127.0.0.1:{listener.getsockname()[1]}"},
            {"password": CANARY}, connect_timeout=2))
        elapsed = time.monotonic() - start
    finally:
        listener.close()
    assert result.stage == "tcp" and result.message.startswith("Could not connect to the server at 127.0.0.1:")
    assert elapsed < 3.0, elapsed


class _NotSnowflake(BaseHTTPRequestHandler):
    """An HTTP server that is not Snowflake: answers HEAD, then 404s (or hangs on) the login POST."""

    hang = False

    def do_HEAD(self):
        self.send_response(200)
        self.end_headers()

    def do_POST(self):
        if self.hang:
            time.sleep(8)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class _Hanging(_NotSnowflake):
    hang = True


@pytest.mark.parametrize(("handler", "message"), [
    (_NotSnowflake, "The server at 127.0.0.1:{port} did not answer the Snowflake login."),
    (_Hanging, "The server did not answer the login within 2 seconds."),
])
def test_not_snowflake_fails_at_auth_within_timeout(allow_loopback, handler, message):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        start = time.monotonic()
        result = get_connector("snowflake").test(ConnectionConfig(
            "snowflake", {"account": "acme", "username": "u", "database": "D", "schema": "S",
                          "endpoint_url": f"http://127.0.0.1:{httpd.server_port}"}, {"password": CANARY},
            connect_timeout=2))
        elapsed = time.monotonic() - start
    finally:
        httpd.shutdown()
    assert (result.stage, result.message) == ("auth", message.format(port=httpd.server_port))
    assert elapsed < 3.0, elapsed


def test_plain_http_to_a_public_address_is_refused_before_any_packet(fakesnow):
    """Private addresses the operator opened may speak plain http (an emulator); a public one never."""
    with connect_attempts() as attempts:
        result = get_connector("snowflake").test(_config(fakesnow, endpoint_url="http://8.8.8.8:8080"))
    assert result.stage == "tls" and "https://" in result.message, result
    assert attempts == []


def test_driver_logs_turned_up_to_debug_never_carry_secrets(allow_loopback, fakesnow, user_key, caplog):
    """An operator's snowflake log config (easy logging) may set DEBUG: records are still scrubbed."""
    driver = logging.getLogger("snowflake")
    level = driver.level
    caplog.set_level(logging.DEBUG)
    driver.setLevel(logging.DEBUG)
    pem = _pem(user_key, KEY_PASSPHRASE)
    try:
        assert get_connector("snowflake").test(_config(fakesnow)).ok
        assert get_connector("snowflake").test(_config(fakesnow, {"password": "wrong-password-123"})).stage == "auth"
        keyed = _key_config(fakesnow, {"private_key": pem, "private_key_passphrase": KEY_PASSPHRASE})
        assert get_connector("snowflake").test(keyed).ok
    finally:
        driver.setLevel(level)
    records = [r for r in caplog.records if r.name.startswith("snowflake")]
    assert records and not any(r.exc_info for r in records)
    text = caplog.text
    for secret in (CANARY, "wrong-password-123", KEY_PASSPHRASE, pem.splitlines()[1]):
        assert secret not in text


def test_scrub_filter_masks_the_running_calls_secrets(caplog):
    caplog.set_level(logging.DEBUG)
    snowflake_logs.guard_driver_logs()
    token = snowflake_logs.SCRUB.add({"password": CANARY})
    try:
        logging.getLogger("snowflake.connector.network").error(
            "request to acme failed, sent %s", CANARY, exc_info=ValueError(CANARY))  # plain: the driver's masks miss it
    finally:
        snowflake_logs.SCRUB.remove(token)
    assert "request to acme failed, sent ***" in caplog.text
    assert CANARY not in caplog.text and "ValueError" not in caplog.text  # traceback dropped


# --- key-pair authentication ----------------------------------------------------------------------


def _key_config(server, secrets):
    return _config(server, secrets, username="keyuser", auth_method="key_pair")


@pytest.mark.parametrize("passphrase", ["", KEY_PASSPHRASE])
def test_key_pair_login(allow_loopback, fakesnow, user_key, passphrase):
    secrets = {"private_key": _pem(user_key, passphrase), "private_key_passphrase": passphrase}
    result = get_connector("snowflake").test(_key_config(fakesnow, {k: v for k, v in secrets.items() if v}))
    assert result.ok, result.message
    login = fakesnow.logins[-1]
    assert login["AUTHENTICATOR"] == "SNOWFLAKE_JWT" and login["LOGIN_NAME"] == "keyuser"
    assert "PASSWORD" not in login  # the stand-in verified the JWT's signature, iss and sub


def test_key_pair_with_another_key_is_auth(allow_loopback, fakesnow):
    result = get_connector("snowflake").test(_key_config(fakesnow, {"private_key": _pem(_rsa())}))
    assert result.stage == "auth"
    assert result.message.startswith("Key-pair authentication failed for user 'keyuser'")


@pytest.mark.parametrize(("secrets", "message"), [
    ({"private_key": "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n"},
     "The private key could not be read: it is not a PEM private key, or the passphrase is wrong."),
    ({"private_key": "ENCRYPTED", "private_key_passphrase": "wrong-passphrase"},
     "The private key could not be read: it is not a PEM private key, or the passphrase is wrong."),
    ({"private_key": "ENCRYPTED"}, "The private key could not be read: it is encrypted: give its passphrase."),
    ({"private_key": "PLAIN", "private_key_passphrase": KEY_PASSPHRASE},
     "The private key could not be read: it is not encrypted: leave the passphrase empty."),
    ({}, "Key-pair authentication needs the private key (PEM)."),
])
def test_malformed_key_fails_at_auth_without_key_material(allow_loopback, fakesnow, user_key, caplog, secrets,
                                                          message):
    caplog.set_level("DEBUG")
    pems = {"ENCRYPTED": _pem(user_key, KEY_PASSPHRASE), "PLAIN": _pem(user_key)}
    secrets = {k: pems.get(v, v) for k, v in secrets.items()}
    before = len(fakesnow.logins)
    result = get_connector("snowflake").test(_key_config(fakesnow, secrets))
    assert (result.stage, result.message) == ("auth", message)
    assert len(fakesnow.logins) == before  # refused before anything was sent
    rendered = repr(result.as_dict()) + caplog.text
    for value in secrets.values():
        for line in value.splitlines():
            if len(line) > 8 and "-----" not in line:
                assert line not in rendered


def test_key_pair_through_the_api(api, allow_loopback, fakesnow, user_key, caplog):
    caplog.set_level("DEBUG")
    pem = _pem(user_key, KEY_PASSPHRASE)
    response = api.post(URL, {"name": "sf-key", "type": "snowflake", "connection_timeout": 3,
                              "connection": _connection(fakesnow, username="keyuser", auth_method="key_pair"),
                              "credentials": {"private_key": pem, "private_key_passphrase": KEY_PASSPHRASE}},
                        format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["last_test"]["ok"] is True
    body = response.content.decode() + caplog.text
    assert KEY_PASSPHRASE not in body and pem.splitlines()[1] not in body


# --- introspection ---------------------------------------------------------------------------------


def _catalogue_queries(server: SnowflakeServer) -> list[str]:
    return [q for q in server.queries if "INFORMATION_SCHEMA" in q.upper()]


def test_introspection_is_one_query_whatever_the_number_of_tables(allow_loopback, fakesnow):
    counts = {}
    for schema, expected in (("ONE", 1), ("MANY", MANY)):
        fakesnow.reset()
        result = get_connector("snowflake").test_and_introspect(_config(fakesnow, schema=schema))
        assert result.ok, result.message
        assert len(result.tables) == expected
        assert all(len(t.columns) == (1 if schema == "ONE" else 2) for t in result.tables)
        assert len(_catalogue_queries(fakesnow)) == 1, fakesnow.queries
        counts[schema] = len(fakesnow.queries)
    assert counts["ONE"] == counts["MANY"]  # USE role/warehouse/database/schema, version, one catalogue query


def test_introspection_stops_at_max_tables(allow_loopback, fakesnow, monkeypatch):
    monkeypatch.setattr(sf, "MAX_TABLES", 7)
    tables = get_connector("snowflake").introspect(_config(fakesnow, schema="MANY"))
    assert [t.name for t in tables] == [f"T{i:03d}" for i in range(7)]


def test_introspect_raises_the_failed_stage(allow_loopback, fakesnow):
    with pytest.raises(ConnectorError) as failure:
        get_connector("snowflake").introspect(_config(fakesnow, {"password": "wrong-password-123"}))
    assert failure.value.stage == "auth"


# --- the Databrain adapter ---------------------------------------------------------------------------


def _databrain_body(password: str = CANARY, **changes) -> dict:
    credentials = {"name": "warehouse-sf", "host": "acme-test.snowflakecomputing.com", "username": "analyst",
                   "role": "ANALYST", "warehouse": "COMPUTE_WH", "database": "SALES", "schema": "ONE",
                   "credentials": "username/password", "password": password, **changes}
    return {"datasourceType": "snowflake", "credentials": credentials}


def test_databrain_put_keeps_endpoint_url_tests_and_recaches(api, allow_loopback, fakesnow):
    created = api.post(URL, {"name": "warehouse-sf", "type": "snowflake", "connection": _connection(fakesnow),
                             "credentials": {"password": CANARY}, "connection_timeout": 3}, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert {t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]} >= {"ORDERS", "BIG_ORDERS"}

    wrong = api.put(DB, _databrain_body(password="wrong-password-123"), format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "CREDENTIAL_TEST_FAILED", wrong.json()
    assert wrong.json()["error"]["stage"] == "auth"

    fakesnow.reset()
    response = api.put(DB, _databrain_body(), format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": "warehouse-sf"}
    core = api.get(f"{URL}{pk}/").json()
    assert core["connection"]["endpoint_url"] == fakesnow.url  # a field outside Databrain's structure survives
    assert core["connection"]["account"] == "acme-test" and core["connection"]["schema"] == "ONE"
    assert core["last_test"]["ok"] and core["schema"]["status"] == "ready"
    assert {t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]} == {"ONLY_TABLE"}  # re-cached
    assert "POST /session/v1/login-request" in fakesnow.requests  # tested against fakesnow, not the account host
    assert CANARY not in response.content.decode() + wrong.content.decode()
