"""Connectors against real parts: SQLite files under a temp root and the local PostgreSQL server."""

import json
import os
import socket
import sqlite3
import uuid

import psycopg
import pytest
from psycopg import sql

from datasources.connectors import (
    STAGES,
    ConnectionConfig,
    ConnectorError,
    ConnectorUnavailable,
    get_connector,
)
from datasources.connectors.base import sanitize
from datasources.connectors.file_root import resolve_under_root

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}

# ---------------------------------------------------------------------------------- registry


def test_every_catalogue_type_has_a_connector():
    from datasources import catalogue
    from datasources.connectors import registry

    assert set(registry.DRIVERS) == set(catalogue.CATALOGUE)
    assert registry.connector_types() == sorted(catalogue.CATALOGUE)  # all drivers installed here


def test_a_driver_whose_parent_package_is_absent_is_just_unavailable(monkeypatch):
    import sys

    from datasources.connectors import registry

    monkeypatch.setattr(registry, "_LOADED", {})
    for name in [m for m in sys.modules if m.startswith(("google.", "snowflake."))]:
        monkeypatch.delitem(sys.modules, name)  # as if never imported (restored after the test)
    monkeypatch.setitem(sys.modules, "google", None)  # `import google` now fails, as on a partial install
    monkeypatch.setitem(sys.modules, "snowflake", None)
    assert registry.requirement_for("bigquery") == "google-cloud-bigquery"
    assert registry.requirement_for("snowflake") == "snowflake-connector-python"
    available = registry.connector_types()
    assert "bigquery" not in available and "snowflake" not in available and "postgresql" in available
    assert registry.connector_info("bigquery")["install"] == "pip install google-cloud-bigquery"


def test_an_unknown_type_is_unavailable():
    with pytest.raises(ConnectorUnavailable, match="^No connection test is available for type 'nosuchdb' yet"):
        get_connector("nosuchdb")


def test_a_missing_driver_names_the_package_and_the_extra(monkeypatch):
    from datasources.connectors import registry

    monkeypatch.setattr(registry, "_LOADED", {})
    monkeypatch.setattr(registry, "_installed", lambda module: module != "trino")
    with pytest.raises(ConnectorUnavailable) as caught:
        get_connector("trino")
    assert str(caught.value) == (
        "No connection test is available for type 'trino' yet: install the optional driver 'trino' "
        "(pip install trino; every driver: pip install -r requirements-connectors.txt)."
    )
    assert registry.connector_info("trino")["available"] is False
    assert registry.connector_info("trino")["install"] == "pip install trino"


@pytest.mark.parametrize(
    "type_key",
    ["postgresql", "redshift", "cockroachdb", "supabase", "sqlite", "mysql", "mariadb", "singlestore", "csv", "file"],
)
def test_built_connectors(type_key):
    assert get_connector(type_key).key in (type_key, "file", "mysql", "postgresql")


def test_secrets_masked():
    assert sanitize("bad pw hunter22 here\nsecond", {"password": "hunter22"}) == "bad pw *** here"
    assert sanitize("x", {"password": "ab"}) == ""  # too short to mask reliably: drop the raw text
    assert "hunter22" not in repr(ConnectionConfig("postgresql", {"host": "h"}, {"password": "hunter22"}))


# ------------------------------------------------------------------------------------ SQLite


@pytest.fixture
def file_root(tmp_path, settings):
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    settings.DATASOURCE_FILE_ROOT = str(root)
    return root


def _make_db(path):
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE customers (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, email varchar(100));
        CREATE TABLE "order items" (customer_id INTEGER NOT NULL REFERENCES customers(id), qty REAL);
        CREATE VIEW named AS SELECT id, name FROM customers;
        INSERT INTO customers (name) VALUES ('a');
        """
    )
    conn.commit()
    conn.close()


def _sqlite(path):
    return ConnectionConfig("sqlite", {"path": path, "read_only": True}, {}, connect_timeout=5)


def test_sqlite_test_ok(file_root):
    _make_db(file_root / "data" / "shop.db")
    result = get_connector("sqlite").test(_sqlite("data/shop.db"))
    assert result.ok, result.message
    assert result.stage is None
    assert [s.name for s in result.stages] == ["resolve", "database"]
    assert all(s.ok for s in result.stages)
    assert result.server_version.startswith("SQLite ")
    json.dumps(result.as_dict())


def test_sqlite_introspect(file_root):
    db = file_root / "data" / "shop.db"
    _make_db(db)
    before = db.read_bytes()
    tables = {t.name: t for t in get_connector("sqlite").introspect(_sqlite("data/shop.db"))}
    assert set(tables) == {"customers", "order items", "named"}  # sqlite_sequence skipped
    assert tables["customers"].kind == "table" and tables["named"].kind == "view"
    assert all(t.schema == "main" for t in tables.values())
    cols = [(c.name, c.data_type, c.nullable, c.ordinal) for c in tables["customers"].columns]
    assert cols == [
        ("id", "INTEGER", False, 1),  # the rowid: never NULL
        ("name", "TEXT", False, 2),
        ("email", "VARCHAR(100)", True, 3),
    ]
    assert [c.name for c in tables["named"].columns] == ["id", "name"]
    assert [c.nullable for c in tables["order items"].columns] == [False, True]
    assert db.read_bytes() == before  # opened read-only


@pytest.mark.parametrize("path", ["../outside.db", "data/../../outside.db", "/etc/passwd", "", "a\x00b"])
def test_sqlite_rejects_paths_leaving_the_root(file_root, path):
    _make_db(file_root.parent / "outside.db")
    result = get_connector("sqlite").test(_sqlite(path))
    assert not result.ok
    assert result.stage == "resolve"
    with pytest.raises(ConnectorError):
        get_connector("sqlite").introspect(_sqlite(path))


def test_sqlite_symlink_out_of_root_looks_missing(file_root):
    _make_db(file_root.parent / "outside.db")
    (file_root / "data" / "link.db").symlink_to(file_root.parent / "outside.db")
    escaped = get_connector("sqlite").test(_sqlite("data/link.db"))
    missing = get_connector("sqlite").test(_sqlite("data/missing.db"))
    for result in (escaped, missing):
        assert (result.ok, result.stage, result.message) == (
            False,
            "database",
            "File not found under the file root.",
        )
    with pytest.raises(ConnectorError) as caught:
        resolve_under_root("data/link.db")
    assert caught.value.stage == "database"


def test_sqlite_symlink_inside_root_allowed(file_root):
    _make_db(file_root / "data" / "real.db")
    (file_root / "alias.db").symlink_to(file_root / "data" / "real.db")
    assert resolve_under_root("alias.db") == (file_root / "data" / "real.db").resolve()
    assert get_connector("sqlite").test(_sqlite("alias.db")).ok


def test_sqlite_directory_and_non_database(file_root):
    (file_root / "data" / "notes.db").write_text("this is not a database " * 100)
    result = get_connector("sqlite").test(_sqlite("data/notes.db"))
    assert (result.ok, result.stage) == (False, "database")
    assert "not a SQLite database" in result.message
    assert get_connector("sqlite").test(_sqlite("data")).stage == "database"


# -------------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def pg_server():
    try:
        with psycopg.connect(dbname="postgres", connect_timeout=3, **PG) as conn:
            ssl_on = conn.execute("SHOW ssl").fetchone()[0] == "on"
    except psycopg.OperationalError:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is required in CI")
        pytest.skip("start PostgreSQL on 127.0.0.1:5432")
    return {"ssl": ssl_on}


@pytest.fixture
def allow_loopback(settings, pg_server):
    settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return pg_server


@pytest.fixture(scope="module")
def throwaway_db(pg_server):
    name = f"conn_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(dbname=name, autocommit=True, **PG) as conn:
            conn.execute(
                """
                CREATE SCHEMA sales;
                CREATE TABLE sales.orders (id serial PRIMARY KEY, amount numeric(10,2) NOT NULL,
                                           note varchar(50), dropped int, created timestamptz);
                ALTER TABLE sales.orders DROP COLUMN dropped;
                CREATE VIEW sales.big_orders AS SELECT id, amount FROM sales.orders WHERE amount > 100;
                CREATE TABLE public.empty_table ();
                CREATE TABLE public.t (x text);
                """
            )
        yield name
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **PG) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _pg(port=5432, host="127.0.0.1", secrets=None, **connection):
    settings = dict(host=host, port=port, database="postgres", schema="public", username="postgres")
    settings.update(ssl={"mode": "prefer"}, ssh_tunnel={"enabled": False})
    settings.update(connection)
    return ConnectionConfig("postgresql", settings, secrets or {"password": "unused"}, connect_timeout=5)


def _free_port():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there any more
    return port


@pytest.mark.postgres_source
class TestPostgreSQL:
    def test_ok(self, allow_loopback):
        result = get_connector("postgresql").test(_pg())
        assert result.ok, result.message
        assert result.stage is None
        assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database"]
        assert all(s.ok and s.duration_ms >= 0 and s.name in STAGES for s in result.stages)
        assert result.server_version.startswith("PostgreSQL")
        assert result.duration_ms >= sum(s.duration_ms for s in result.stages) * 0.9
        json.dumps(result.as_dict())

    @pytest.mark.parametrize(
        ("overrides", "stage", "message"),
        [
            ({"database": "nodb"}, "database", "Database 'nodb' does not exist or is not accessible."),
            ({"schema": "no_such_schema"}, "database", "Schema 'no_such_schema' not found."),
            ({"username": "no_such_role"}, "auth", "Authentication failed for user 'no_such_role'."),
            ({"ssl": {"mode": "verify-ca"}}, "tls", "SSL mode 'verify-ca' needs a CA certificate."),
            (
                {"ssh_tunnel": {"enabled": True}},
                "ssh",
                "The SSH tunnel needs a host, a username, and a password or private key.",
            ),
            ({"host": "/var/run/postgresql"}, "resolve", None),
        ],
    )
    def test_failures(self, allow_loopback, overrides, stage, message):
        result = get_connector("postgresql").test(_pg(**overrides))
        assert (result.ok, result.stage) == (False, stage)
        assert result.stages[-1].name == stage and not result.stages[-1].ok
        if message:
            assert result.message == message

    def test_tls_stage_when_required(self, allow_loopback):
        result = get_connector("postgresql").test(_pg(ssl={"mode": "require"}))
        assert [s.name for s in result.stages].count("tls") == 1
        if allow_loopback["ssl"]:
            assert result.ok, result.message
        else:
            assert (result.ok, result.stage) == (False, "tls")
            assert result.message == "The server does not support SSL, but the SSL mode requires it."

    def test_closed_port_and_blocked_host_look_the_same(self, settings, allow_loopback):
        port = _free_port()
        closed = get_connector("postgresql").test(_pg(port=port))
        settings.DATASOURCE_ALLOWED_NETWORKS = []
        blocked = get_connector("postgresql").test(_pg(port=5432))  # a live server, refused by policy
        for result, p in ((closed, port), (blocked, 5432)):
            assert (result.ok, result.stage) == (False, "tcp")
            assert result.message == f"Could not connect to the server at 127.0.0.1:{p}."
            assert [(s.name, s.ok) for s in result.stages] == [("resolve", True), ("tcp", False)]
        with pytest.raises(ConnectorError) as caught:
            get_connector("postgresql").introspect(_pg())
        assert caught.value.stage == "tcp"

    def test_wrong_password(self, allow_loopback, pg_password_server):
        c, secret = pg_password_server, "wrong-pass-456"
        config = _pg(host=c.host, port=c.port, database=c.database, username=c.user, secrets={"password": secret})
        result = get_connector("postgresql").test(config)
        assert (result.ok, result.stage) == (False, "auth")
        assert result.message == f"Authentication failed for user '{c.user}'."
        assert secret not in json.dumps(result.as_dict())
        right = _pg(host=c.host, port=c.port, database=c.database, username=c.user, secrets={"password": c.password})
        assert get_connector("postgresql").test(right).ok

    def test_introspect_schema(self, allow_loopback, throwaway_db):
        tables = get_connector("postgresql").introspect(_pg(database=throwaway_db, schema="sales"))
        by_name = {t.name: t for t in tables}
        assert set(by_name) == {"orders", "big_orders"}
        assert by_name["orders"].kind == "table" and by_name["big_orders"].kind == "view"
        cols = [(c.name, c.data_type, c.nullable, c.ordinal) for c in by_name["orders"].columns]
        assert cols == [
            ("id", "integer", False, 1),
            ("amount", "numeric(10,2)", False, 2),
            ("note", "character varying(50)", True, 3),  # the dropped column leaves no gap
            ("created", "timestamp with time zone", True, 4),
        ]
        assert [c.name for c in by_name["big_orders"].columns] == ["id", "amount"]

    def test_introspect_all_user_schemas(self, allow_loopback, throwaway_db):
        tables = get_connector("postgresql").introspect(_pg(database=throwaway_db, schema=""))
        keys = {(t.schema, t.name) for t in tables}
        assert keys == {
            ("sales", "orders"),
            ("sales", "big_orders"),
            ("public", "t"),
            ("public", "empty_table"),
        }
        assert next(t for t in tables if t.name == "empty_table").columns == []

    def test_introspect_failure_raises_connector_error(self, allow_loopback):
        with pytest.raises(ConnectorError) as caught:
            get_connector("postgresql").introspect(_pg(database="no_such_db"))
        assert caught.value.stage == "database"

    def test_family_members(self, allow_loopback):
        for type_key in ("supabase", "cockroachdb", "redshift"):  # redshift: SET instead of startup options
            config = _pg()
            config.type_key = type_key
            assert get_connector(type_key).test(config).ok
