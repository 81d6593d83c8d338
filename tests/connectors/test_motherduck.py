"""MotherDuck: what the md: step sends (duckdb.connect recorded), and the SQL path on a real local DuckDB.

There is no network here and the motherduck extension cannot be downloaded, so ``duckdb.connect``
(the driver) is replaced where a test needs a session: it records its arguments and opens a local
DuckDB file instead. The vendor host is made to resolve to a loopback listener (or a blocked
address) by replacing ``socket.getaddrinfo`` for that one name; everything else is the real code.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from pathlib import Path

import duckdb
import pytest

from datasources.connectors import MAX_COLUMNS, MAX_TABLES, ConnectionConfig, ConnectorError, get_connector
from datasources.connectors.motherduck import (
    API_HOST,
    API_PORT,
    INTROSPECT_SQL,
    MotherDuckConnector,
    open_connection,
    read_tables,
)
from tests.support.contract import BLOCKED_IP, connect_attempts

URL = "/api/v1/data-sources/"
CANARY = "md-CANARY-eyJhbGciOi.9f3c2a7d"
REAL_CONNECT = duckdb.connect
EXPECTED_OPTIONS = {
    "motherduck_token": CANARY,
    "motherduck_saas_mode": True,
    "motherduck_attach_mode": "single",
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": True,
    "custom_user_agent": "datasource-control-plane",
}


def config(database: str = "analytics", token: str = CANARY, timeout: int = 3) -> ConnectionConfig:
    return ConnectionConfig("motherduck", {"database": database}, {"token": token}, connect_timeout=timeout)


def make_database(path: Path, tables: int = 0) -> Path:
    """A local DuckDB file with tables, a view and a second schema."""
    with REAL_CONNECT(str(path)) as con:
        con.execute("CREATE TABLE orders (id BIGINT NOT NULL, amount DECIMAL(10,2), placed_at TIMESTAMP)")
        con.execute("CREATE TABLE customers (id BIGINT NOT NULL, email VARCHAR)")
        con.execute("CREATE VIEW big_orders AS SELECT id, amount FROM orders WHERE amount > 100")
        con.execute("CREATE SCHEMA sales; CREATE TABLE sales.regions (code VARCHAR NOT NULL)")
        if tables:
            con.execute("BEGIN")  # one transaction: a commit per table would take seconds
            con.execute(";".join(f"CREATE TABLE t{i:04d} (id INTEGER, v VARCHAR)" for i in range(tables)))
            con.execute("COMMIT")
    return path


class Driver:
    """``duckdb.connect`` as the tests see it: records every call, opens the local file for md:analytics."""

    def __init__(self, files: dict[str, Path], token: str = CANARY, delay: float = 0.0):
        self.files, self.token, self.delay = files, token, delay
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, database: str = ":memory:", read_only: bool = False, config: dict | None = None):
        self.calls.append((database, dict(config or {})))
        time.sleep(self.delay)
        if (config or {}).get("motherduck_token") != self.token:  # how the extension refuses a token
            raise duckdb.IOException("IO Error: Failed to attach 'md:': [Unauthenticated] Invalid token")
        return REAL_CONNECT(str(self.files[database]))


@pytest.fixture
def driver(monkeypatch, tmp_path):
    fake = Driver({"md:analytics": make_database(tmp_path / "analytics.duckdb"),
                   "md:archive": make_database(tmp_path / "elsewhere.duckdb")})
    monkeypatch.setattr(duckdb, "connect", fake)
    return fake


def vendor_host_at(monkeypatch, address: str) -> list[str]:
    """Resolve the vendor host to ``address`` (one name only); returns the names looked up."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        asked.append(str(host))
        return real(address if host == API_HOST else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def vendor(monkeypatch, allow_loopback):
    """A loopback listener on port 443 standing for the vendor endpoint's TCP reachability."""
    rng = random.Random()
    for _ in range(20):
        ip = f"127.{rng.randint(1, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        listener = socket.socket()
        try:
            listener.bind((ip, API_PORT))
            break
        except PermissionError:
            pytest.skip("binding port 443 needs root")
        except OSError:
            listener.close()
    else:
        pytest.skip("no free loopback address for port 443")
    listener.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    asked = vendor_host_at(monkeypatch, ip)
    yield asked
    listener.close()
    for sock in held:
        sock.close()


def test_registry_builds_the_connector():
    assert isinstance(get_connector("motherduck"), MotherDuckConnector)


def test_exact_connect_arguments(driver):
    con = open_connection(config(), 3)
    try:
        assert driver.calls == [("md:analytics", EXPECTED_OPTIONS)]
        assert CANARY not in driver.calls[0][0]  # the token is never in the connection string
        assert con.execute("SELECT current_setting('lock_configuration')").fetchone() == (True,)
    finally:
        con.close()


def test_whole_test_and_introspection_over_the_session(driver, vendor):
    result = MotherDuckConnector("motherduck").test_and_introspect(config())
    assert result.ok, result
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database", "introspect"]
    assert result.server_version == f"DuckDB v{duckdb.__version__}"
    assert API_HOST in vendor and len(driver.calls) == 1
    by_name = {t.name: t for t in result.tables}
    assert set(by_name) == {"orders", "customers", "big_orders", "regions"}
    assert by_name["big_orders"].kind == "view" and by_name["regions"].schema == "sales"
    assert [(c.name, c.data_type, c.nullable, c.ordinal) for c in by_name["orders"].columns] == [
        ("id", "BIGINT", False, 1), ("amount", "DECIMAL(10,2)", True, 2), ("placed_at", "TIMESTAMP", True, 3)]
    assert [t.name for t in MotherDuckConnector("motherduck").introspect(config())] == [
        t.name for t in result.tables]


def test_native_api_create_caches_the_schema_and_refuses_injection(api, driver, vendor, caplog):
    created = api.post(URL, {"name": "ducks", "type": "motherduck", "connection": {"database": "analytics"},
                             "credentials": {"token": CANARY}, "connection_timeout": 3}, format="json")
    assert created.status_code == 201, created.json()
    schema = api.get(f"{URL}{created.json()['id']}/schema/").json()
    assert {"orders", "big_orders"} <= {t["name"] for t in schema["tables"]}
    smuggled = api.patch(f"{URL}{created.json()['id']}/",
                         {"connection": {"database": "analytics?motherduck_host=evil.example"}}, format="json")
    assert smuggled.status_code == 400 and smuggled.json()["stage"] == "resolve"
    wrong = api.patch(f"{URL}{created.json()['id']}/", {"credentials": {"token": "md-wrong-token"}}, format="json")
    assert wrong.status_code == 400 and wrong.json()["stage"] == "auth"
    for text in (created.content.decode(), smuggled.content.decode(), wrong.content.decode(), caplog.text):
        assert CANARY not in text
    assert [call[0] for call in driver.calls] == ["md:analytics", "md:analytics"]  # nothing for the smuggled name


def test_blocked_resolution_fails_at_tcp_without_a_connection(monkeypatch, driver):
    vendor_host_at(monkeypatch, BLOCKED_IP)
    with connect_attempts() as attempts:
        result = MotherDuckConnector("motherduck").test(config())
    assert (result.stage, result.message) == ("tcp", f"Could not connect to the server at {API_HOST}:{API_PORT}.")
    assert [s.name for s in result.stages] == ["resolve", "tcp"]
    assert not [a for a in attempts if isinstance(a, tuple) and a[0] == BLOCKED_IP] and not driver.calls


def test_unreachable_vendor_fails_at_tcp_within_the_timeout(monkeypatch, allow_loopback, driver):
    vendor_host_at(monkeypatch, "127.0.0.1")  # nothing listens on 127.0.0.1:443 here
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", API_PORT)) == 0:
            pytest.skip("something listens on 127.0.0.1:443")
    start = time.monotonic()
    result = MotherDuckConnector("motherduck").test(config(timeout=2))
    assert time.monotonic() - start < 2 + 1 and result.stage == "tcp" and not driver.calls


@pytest.mark.parametrize("name", [
    "analytics?motherduck_host=evil.example", "analytics?saas_mode=false", "../../etc/passwd", "/tmp/x.duckdb",
    "md:other", "a'b", 'a"b', "a;b", "a b", "a\nb", "s3://bucket/db", "", "9lives", "x" * 300,
])
def test_injection_attempts_are_refused_before_any_lookup(monkeypatch, driver, name):
    asked = vendor_host_at(monkeypatch, "127.0.0.1")
    result = MotherDuckConnector("motherduck").test(config(database=name))
    assert (result.ok, result.stage) == (False, "resolve") and [s.name for s in result.stages] == ["resolve"]
    assert not asked and not driver.calls
    with pytest.raises(ConnectorError) as refused:
        open_connection(config(database=name), 3)
    assert refused.value.stage == "resolve" and not driver.calls


def test_token_never_in_messages(monkeypatch, vendor):
    def echoing(database, read_only=False, config=None):  # a driver that repeats what it was given
        raise duckdb.IOException(f"IO Error: cannot open {database}?motherduck_token={config['motherduck_token']}")

    monkeypatch.setattr(duckdb, "connect", echoing)
    result = MotherDuckConnector("motherduck").test(config())
    assert result.stage == "auth" and CANARY not in str(result.as_dict()) and "***" in result.message


def test_wrong_token_fails_at_auth(driver, vendor):
    result = MotherDuckConnector("motherduck").test(config(token="md-not-the-token"))
    assert (result.stage, result.message) == ("auth", "MotherDuck refused the service token.")


def test_missing_extension_is_a_clear_auth_failure_never_a_hang(vendor):
    """The real driver: the extension is not installed here and is never downloaded."""
    start = time.monotonic()
    result = MotherDuckConnector("motherduck").test(config())
    assert time.monotonic() - start < 3
    assert result.stage == "auth" and "MotherDuck extension is unavailable" in result.message
    assert "INSTALL motherduck" in result.message and CANARY not in result.message


def test_a_hanging_connect_is_bounded(monkeypatch, tmp_path, vendor):
    monkeypatch.setattr(duckdb, "connect", Driver({"md:analytics": make_database(tmp_path / "a.duckdb")}, delay=4))
    start = time.monotonic()
    result = MotherDuckConnector("motherduck").test(config(timeout=1))
    assert time.monotonic() - start < 1 + 1
    assert result.stage == "auth" and "did not answer within 1 seconds" in result.message


def test_unknown_database_fails_at_database(driver, vendor):
    result = MotherDuckConnector("motherduck").test(config(database="archive"))  # the session holds 'elsewhere'
    assert (result.stage, result.message) == ("database", "The database 'archive' was not found in MotherDuck.")
    assert [s.name for s in result.stages if s.ok] == ["resolve", "tcp", "auth"]


class Counting:
    """A DuckDB connection that counts the statements it runs."""

    def __init__(self, con):
        self.con, self.statements = con, []

    def execute(self, sql, params=None):
        self.statements.append((sql, params))
        return self.con.execute(sql, params or {})

    def interrupt(self):
        self.con.interrupt()


def test_one_query_for_a_thousand_tables_and_a_view(tmp_path):
    path = make_database(tmp_path / "analytics.duckdb", tables=1000)
    with REAL_CONNECT(str(path)) as con:
        counting = Counting(con)
        tables = read_tables(counting, config(), 30)
        assert len(counting.statements) == 1 and len(tables) == 1004
        assert counting.statements[0][1]["max_tables"] == MAX_TABLES
        assert counting.statements[0][1]["max_columns"] == MAX_COLUMNS
        assert {t.kind for t in tables if t.name == "big_orders"} == {"view"}
        assert all(len(t.columns) == 2 for t in tables if t.name.startswith("t"))
        bounded = con.execute(INTROSPECT_SQL, {"database": "analytics", "max_tables": 10, "max_columns": 1}).fetchall()
        assert len({(r[0], r[1]) for r in bounded}) == 10 and len(bounded) == 10  # the caps are in the SQL


def test_columns_are_capped(tmp_path):
    path = tmp_path / "analytics.duckdb"
    with REAL_CONNECT(str(path)) as con:
        con.execute(f"CREATE TABLE wide ({', '.join(f'c{i} INTEGER' for i in range(MAX_COLUMNS + 5))})")
    with REAL_CONNECT(str(path)) as con:
        (wide,) = read_tables(con, config(), 30)
    assert len(wide.columns) == MAX_COLUMNS and wide.columns[-1].name == f"c{MAX_COLUMNS - 1}"


@pytest.mark.parametrize("message,stage", [
    ('IO Error: Extension "/root/.duckdb/extensions/v2.0.0/linux_amd64/motherduck.duckdb_extension" not found.',
     "auth"),
    ("Permission Error: Loading external extensions is disabled through configuration", "auth"),
    ('Invalid Input Error: Initialization function "motherduck_duckdb_cpp_init" from file '
     '"motherduck.duckdb_extension" threw an exception: "Failed to attach: [Unauthenticated] user not found"',
     "auth"),
    ("Catalog Error: no database/share named 'analytics' found", "database"),
    ("IO Error: [UNAVAILABLE] failed to connect to all addresses; DNS resolution failed", "tcp"),
])
def test_driver_errors_are_classified(monkeypatch, vendor, message, stage):
    def failing(database, read_only=False, config=None):
        raise duckdb.IOException(message)

    monkeypatch.setattr(duckdb, "connect", failing)
    result = MotherDuckConnector("motherduck").test(config())
    assert result.stage == stage and message not in result.message
