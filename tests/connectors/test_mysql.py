"""MySQL-family connector against the real MariaDB server on 127.0.0.1:3306 (root, no password)."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pymysql
import pytest

from datasources.connectors import STAGES, ConnectionConfig, ConnectorError, get_connector
from datasources.connectors import mysql as mysql_module
from datasources.connectors.mysqlwire import SafeConnection
from datasources.connectors.ssh import INCOMPLETE
from tests.conftest import require_service
from tests.support.sshd import serve_sshd

HOST, PORT = "127.0.0.1", 3306
PASSWORD = "dsp-right-pass-123"


def _admin():
    return pymysql.connect(host=HOST, port=PORT, user="root", autocommit=True, connect_timeout=3)


@pytest.fixture(scope="module")
def mariadb():
    require_service(HOST, PORT, "MariaDB")
    with _admin() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@have_ssl, @@version")
        have_ssl, version = cur.fetchone()
    return {"ssl": have_ssl == "YES", "version": version}


@pytest.fixture(scope="module")
def account(mariadb):
    """A throwaway database with a table, a view and a user with a password (dropped afterwards)."""
    suffix = uuid.uuid4().hex[:8]
    db, user = f"dsp_test_{suffix}", f"dsp_test_{suffix}"
    hosts = ("%", "127.0.0.1", "localhost")
    with _admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}`")
        try:
            for host in hosts:
                cur.execute(f"CREATE USER '{user}'@'{host.replace('%', '%%')}' IDENTIFIED BY %s", (PASSWORD,))
                cur.execute(f"GRANT ALL ON `{db}`.* TO '{user}'@'{host}'")
            cur.execute(
                f"CREATE TABLE `{db}`.orders (id INT AUTO_INCREMENT PRIMARY KEY, amount DECIMAL(10,2) NOT NULL,"
                " note VARCHAR(50), created DATETIME NULL, status ENUM('new','done') NOT NULL DEFAULT 'new')"
            )
            cur.execute(f"CREATE TABLE `{db}`.`order items` (order_id INT NOT NULL, qty DOUBLE)")
            cur.execute(f"CREATE VIEW `{db}`.big_orders AS SELECT id, amount FROM `{db}`.orders WHERE amount > 100")
            cur.execute(f"CREATE TABLE `{db}`.loaded (line TEXT)")
            yield {"db": db, "user": user}
        finally:
            for host in hosts:
                cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")


@pytest.fixture
def loopback(settings):
    settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return settings


def _my(account, type_key="mysql", password=PASSWORD, **overrides):
    connection = {"host": HOST, "port": PORT, "database": account["db"], "username": account["user"],
                  "ssl": {"mode": "prefer"}, "ssh_tunnel": {"enabled": False}, **overrides}  # fmt: skip
    return ConnectionConfig(type_key, connection, {"password": password}, connect_timeout=5, query_timeout=20)


def _free_port():
    probe = socket.socket()
    probe.bind((HOST, 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@pytest.mark.parametrize("type_key", ["mysql", "mariadb", "singlestore"])
def test_ok(loopback, account, type_key):
    result = get_connector(type_key).test(_my(account, type_key))
    assert result.ok, result.message
    assert (result.stage, result.message) == (None, "Connection succeeded.")
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database"]
    assert all(s.ok and s.duration_ms >= 0 and s.name in STAGES for s in result.stages)
    assert result.server_version.split()[0] in ("MariaDB", "MySQL")
    assert get_connector(type_key).key == type_key
    json.dumps(result.as_dict())


def test_stage_timings(loopback, account, capsys):
    durations = []
    for _ in range(5):
        result = get_connector("mariadb").test(_my(account))
        assert result.ok, result.message
        durations.append(result.duration_ms)
        assert result.duration_ms < 5000
    with capsys.disabled():
        stages = ", ".join(f"{s.name} {s.duration_ms:.2f} ms" for s in result.stages)
        print(f"\nMariaDB test stages: {stages}; total {result.duration_ms:.2f} ms (best of 5: {min(durations)} ms)")


@pytest.mark.parametrize(
    ("overrides", "stage", "message"),
    [
        ({"password": "wrong-pass-456"}, "auth", "Authentication failed for user '{user}'."),
        ({"username": "no_such_user_dsp"}, "auth", "Authentication failed for user 'no_such_user_dsp'."),
        ({"database": "no_such_db_dsp"}, "database", "Database 'no_such_db_dsp' does not exist or is not accessible."),
        ({"database": "mysql"}, "database", "Database 'mysql' does not exist or is not accessible."),
        ({"ssl": {"mode": "verify-ca"}}, "tls", "SSL mode 'verify-ca' needs a CA certificate."),
        ({"ssh_tunnel": {"enabled": True}}, "ssh", INCOMPLETE),
        ({"host": "/var/run/mysqld/mysqld.sock"}, "resolve", None),
        ({"username": ""}, "auth", "A username is required."),
    ],
)
def test_failures(loopback, account, overrides, stage, message):
    password = overrides.pop("password", PASSWORD)
    result = get_connector("mariadb").test(_my(account, "mariadb", password, **overrides))
    assert (result.ok, result.stage) == (False, stage)
    assert result.stages[-1].name == stage and not result.stages[-1].ok
    if message:
        assert result.message == message.format(user=account["user"])
    assert password not in json.dumps(result.as_dict())


def test_tls_stage_when_required(loopback, account, mariadb):
    result = get_connector("mysql").test(_my(account, ssl={"mode": "require"}))
    assert [s.name for s in result.stages].count("tls") == 1
    if mariadb["ssl"]:
        assert result.ok, result.message
    else:
        assert (result.ok, result.stage) == (False, "tls")
        assert result.message == "The server does not support SSL, but the SSL mode requires it."


def test_closed_port_and_blocked_host_look_the_same(loopback, account):
    port = _free_port()
    closed = get_connector("mysql").test(_my(account, port=port))
    loopback.DATASOURCE_ALLOWED_NETWORKS = []
    blocked = get_connector("mysql").test(_my(account))  # a live server, refused by policy
    for result, p in ((closed, port), (blocked, PORT)):
        assert (result.ok, result.stage) == (False, "tcp")
        assert result.message == f"Could not connect to the server at 127.0.0.1:{p}."
        assert [(s.name, s.ok) for s in result.stages] == [("resolve", True), ("tcp", False)]
    with pytest.raises(ConnectorError) as caught:
        get_connector("mysql").introspect(_my(account))
    assert caught.value.stage == "tcp"


def test_introspect(loopback, account):
    tables = {t.name: t for t in get_connector("mariadb").introspect(_my(account))}
    assert set(tables) == {"orders", "order items", "big_orders", "loaded"}
    assert {t.schema for t in tables.values()} == {account["db"]}
    assert tables["orders"].kind == "table" and tables["big_orders"].kind == "view"
    cols = [(c.name, c.data_type, c.nullable, c.ordinal) for c in tables["orders"].columns]
    assert cols == [
        ("id", "int(11)", False, 1),
        ("amount", "decimal(10,2)", False, 2),
        ("note", "varchar(50)", True, 3),
        ("created", "datetime", True, 4),
        ("status", "enum('new','done')", False, 5),
    ]
    assert [(c.name, c.nullable) for c in tables["big_orders"].columns] == [("id", False), ("amount", False)]
    assert [(c.name, c.nullable) for c in tables["order items"].columns] == [("order_id", False), ("qty", True)]


def test_test_and_introspect_reads_the_tables_over_the_tested_session(loopback, account, monkeypatch):
    logins = []
    real_login = mysql_module.MySQLConnector._login
    monkeypatch.setattr(mysql_module.MySQLConnector, "_login",
                        lambda self, *a, **k: logins.append(1) or real_login(self, *a, **k))
    result = get_connector("mariadb").test_and_introspect(_my(account))
    assert result.ok and len(logins) == 1
    assert {t.name for t in result.tables} == {"orders", "order items", "big_orders", "loaded"}
    assert get_connector("mariadb").test(_my(account)).tables is None
    failed = get_connector("mariadb").test_and_introspect(_my(account, password="wrong"))
    assert (failed.ok, failed.stage, failed.tables) == (False, "auth", None)


def test_introspect_all_databases_of_the_user(loopback, account):
    tables = get_connector("mysql").introspect(_my(account, database=""))
    assert {(t.schema, t.name) for t in tables} >= {(account["db"], "orders"), (account["db"], "big_orders")}
    assert not {t.schema for t in tables} & {"information_schema", "mysql", "performance_schema", "sys"}


@pytest.mark.parametrize(("overrides", "stage"), [({"database": "no_such_db_dsp"}, "database"), ({"port": 1}, "tcp")])
def test_introspect_failure_raises_connector_error(loopback, account, overrides, stage):
    with pytest.raises(ConnectorError) as caught:
        get_connector("mysql").introspect(_my(account, **overrides))
    assert caught.value.stage == stage


def test_load_data_local_is_impossible_on_a_real_server(loopback, account):
    options = {"host": HOST, "port": PORT, "user": account["user"], "password": PASSWORD, "database": account["db"]}
    conn = SafeConnection(local_infile=True, **options)  # asking for it changes nothing
    try:
        with conn.cursor() as cur, pytest.raises((pymysql.Error, RuntimeError)):
            cur.execute("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE loaded")
    finally:
        conn.abort()
    with _admin() as admin, admin.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{account['db']}`.loaded")
        assert cur.fetchone()[0] == 0


def test_introspection_of_1000_tables_is_two_catalogue_queries(loopback, account, monkeypatch, capsys):
    """1,000 tables x 20 columns: the same handful of commands as for one table, in well under a second here."""
    db = f"{account['db']}_big"
    columns = ", ".join(f"c{j} {('INT', 'VARCHAR(40)', 'DECIMAL(10,2) NOT NULL')[j % 3]}" for j in range(20))
    commands = []
    original = SafeConnection._execute_command
    monkeypatch.setattr(SafeConnection, "_execute_command", lambda s, c, q: commands.append(c) or original(s, c, q))
    with _admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}`")
        try:
            cur.execute(f"CREATE TABLE `{db}`.t0000 ({columns})")
            config = _my(account, username="root", password="", database=db)
            assert len(get_connector("mariadb").introspect(config)) == 1
            small = len(commands)
            for i in range(1, 1000):
                cur.execute(f"CREATE TABLE `{db}`.t{i:04d} ({columns})")
            commands.clear()
            start = time.perf_counter()
            tables = get_connector("mariadb").introspect(config)
            elapsed = time.perf_counter() - start
        finally:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
    assert len(tables) == 1000 and sum(len(t.columns) for t in tables) == 20_000
    assert tables[0].columns[2].data_type == "decimal(10,2)" and not tables[0].columns[2].nullable
    assert len(commands) == small == 5  # SET NAMES, SELECT VERSION(), USE db, TABLES, COLUMNS
    assert elapsed < 15
    with capsys.disabled():
        print(f"\nMariaDB introspection: 1000 tables x 20 columns in {elapsed * 1000:.0f} ms, {len(commands)} commands")


@pytest.fixture(scope="module")
def sshd():
    yield from serve_sshd()


def test_through_an_ssh_tunnel(loopback, account, sshd, monkeypatch):
    def no_egress_for_the_db(*args):  # the bastion resolves the database host, not us
        raise AssertionError(f"database host checked against our egress policy: {args}")

    monkeypatch.setattr(mysql_module, "resolve_checked", no_egress_for_the_db)
    tunnel = {"enabled": True, "host": sshd.host, "port": sshd.port, "username": sshd.user}
    config = _my(account, ssh_tunnel=tunnel)
    config.secrets["ssh_private_key"] = sshd.keys["ed25519"]
    result = get_connector("mariadb").test(config)
    assert result.ok, result.message
    assert [s.name for s in result.stages] == ["resolve", "tcp", "ssh", "auth", "database"]
    assert result.ssh_host_key_fingerprint
    tables = get_connector("mariadb").introspect(config)
    assert {"orders", "big_orders"} <= {t.name for t in tables}
    config.secrets["password"] = "wrong-pass-456"
    result = get_connector("mariadb").test(config)
    assert (result.ok, result.stage) == (False, "auth")
