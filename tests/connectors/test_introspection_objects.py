"""What introspection lists as a table, on real servers: the user's tables and views, not the engine's
own objects (MariaDB sequences, SQLite's shadow tables of a virtual table), and a partitioned
PostgreSQL table once (its partitions left out); and which columns are certain to hold no NULL."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import psycopg
import pymysql
import pytest
from psycopg import sql

from datasources.connectors import ConnectionConfig, get_connector
from datasources.connectors import sqlite as sqlite_module
from tests.conftest import require_service


def _listing(tables):
    return sorted((t.schema, t.name, t.kind) for t in tables)


# -------------------------------------------------------------------------------- PostgreSQL

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


@pytest.fixture
def pg_db():
    require_service(PG["host"], PG["port"], "PostgreSQL")
    name = f"dsp_objects_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(dbname=name, autocommit=True, **PG) as conn:
            conn.execute(
                """
                CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, body text) PARTITION BY RANGE (at);
                CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
                CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')
                    PARTITION BY LIST (id);
                CREATE TABLE events_2025_all PARTITION OF events_2025 DEFAULT;
                CREATE SCHEMA archive;
                CREATE TABLE archive.events_2023 PARTITION OF events
                    FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
                CREATE TABLE cities (name text NOT NULL);
                CREATE TABLE capitals (state text) INHERITS (cities);  -- inheritance, not a partition
                """
            )
        yield name
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **PG) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _pg(database, schema):
    connection = {"host": "127.0.0.1", "port": 5432, "database": database, "schema": schema, "username": "postgres",
                  "ssl": {"mode": "disable"}, "ssh_tunnel": {"enabled": False}}  # fmt: skip
    return ConnectionConfig("postgresql", connection, {"password": "unused"}, connect_timeout=5, query_timeout=20)


@pytest.mark.postgres_source
def test_postgresql_lists_a_partitioned_table_not_its_partitions(allow_loopback, pg_db):
    tables = get_connector("postgresql").introspect(_pg(pg_db, ""))
    assert _listing(tables) == [("public", "capitals", "table"), ("public", "cities", "table"),
                                ("public", "events", "table")]  # fmt: skip
    events = next(t for t in tables if t.name == "events")
    assert [(c.name, c.nullable) for c in events.columns] == [("id", False), ("at", False), ("body", True)]


@pytest.mark.postgres_source
def test_postgresql_lists_partitions_whose_parent_is_outside_the_schema(allow_loopback, pg_db):
    """Configured to read ``archive`` only, the partition there is the only way to its rows: listed."""
    tables = get_connector("postgresql").introspect(_pg(pg_db, "archive"))
    assert _listing(tables) == [("archive", "events_2023", "table")]


# -------------------------------------------------------------------------------- MariaDB

MY_HOST, MY_PORT = "127.0.0.1", 3306


@pytest.fixture
def my_db():
    require_service(MY_HOST, MY_PORT, "MariaDB")
    name = f"dsp_objects_{uuid.uuid4().hex[:10]}"
    with pymysql.connect(host=MY_HOST, port=MY_PORT, user="root", autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        try:
            cur.execute(f"CREATE SEQUENCE `{name}`.seq1")
            cur.execute(f"CREATE TABLE `{name}`.orders (id INT PRIMARY KEY DEFAULT (NEXT VALUE FOR `{name}`.seq1))")
            cur.execute(f"CREATE TABLE `{name}`.prices (amount INT) WITH SYSTEM VERSIONING")
            cur.execute(f"CREATE VIEW `{name}`.order_ids AS SELECT id FROM `{name}`.orders")
            yield name
        finally:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def test_mariadb_leaves_sequences_out(allow_loopback, my_db):
    connection = {"host": MY_HOST, "port": MY_PORT, "database": my_db, "username": "root",
                  "ssl": {"mode": "prefer"}, "ssh_tunnel": {"enabled": False}}  # fmt: skip
    config = ConnectionConfig("mariadb", connection, {"password": ""}, connect_timeout=5, query_timeout=20)
    tables = get_connector("mariadb").introspect(config)
    assert _listing(tables) == [(my_db, "order_ids", "view"), (my_db, "orders", "table"), (my_db, "prices", "table")]
    assert [c.name for t in tables for c in t.columns] == ["id", "id", "amount"]  # a sequence's 8 columns: none


# -------------------------------------------------------------------------------- SQLite


def _sqlite(root: str, script: str):
    with sqlite3.connect(Path(root) / "objects.db") as db:
        db.executescript(script)
    config = ConnectionConfig("sqlite", {"path": "objects.db"}, {}, connect_timeout=5, query_timeout=20)
    return get_connector("sqlite").introspect(config)


@pytest.mark.parametrize("table_list", [True, False], ids=["table_list", "before_3_37"])
def test_sqlite_lists_virtual_tables_without_their_shadow_tables(_file_root, monkeypatch, table_list):
    monkeypatch.setattr(sqlite_module, "TABLE_LIST", table_list)
    tables = _sqlite(_file_root, """
        CREATE VIRTUAL TABLE ft USING fts5(body);
        CREATE VIRTUAL TABLE old USING fts4(body);
        CREATE VIRTUAL TABLE box USING rtree(id, x0, x1);
        CREATE TABLE notes (body TEXT);
        CREATE TABLE notes_data (body TEXT);  -- a user's table named like a shadow table: listed
        CREATE VIEW hits AS SELECT body FROM notes;
    """)  # fmt: skip
    assert [(t.name, t.kind, [c.name for c in t.columns]) for t in tables] == [
        ("box", "table", ["id", "x0", "x1"]),
        ("ft", "table", ["body"]),
        ("hits", "view", ["body"]),
        ("notes", "table", ["body"]),
        ("notes_data", "table", ["body"]),
        ("old", "table", ["body"]),
    ]


@pytest.mark.parametrize("table_list", [True, False], ids=["table_list", "before_3_37"])
def test_sqlite_a_rowid_primary_key_is_not_nullable(_file_root, monkeypatch, table_list):
    """Only the rowid alias (and WITHOUT ROWID keys) cannot hold NULL: other primary keys can."""
    monkeypatch.setattr(sqlite_module, "TABLE_LIST", table_list)
    tables = _sqlite(_file_root, """
        CREATE TABLE alias (id INTEGER PRIMARY KEY, v);
        CREATE TABLE auto (id integer PRIMARY KEY AUTOINCREMENT, v);
        CREATE TABLE separate (v, id INTEGER, PRIMARY KEY (id));
        CREATE TABLE descending (id INTEGER PRIMARY KEY DESC, v);
        CREATE TABLE int_key (id INT PRIMARY KEY, v);
        CREATE TABLE text_key (id TEXT PRIMARY KEY, v);
        CREATE TABLE pair (a INTEGER, b INTEGER, PRIMARY KEY (a, b));
        CREATE TABLE wr (id TEXT PRIMARY KEY, v) WITHOUT ROWID;
        CREATE VIEW seen AS SELECT id FROM alias;
    """)  # fmt: skip
    nullable = {t.name: [c.nullable for c in t.columns] for t in tables}
    assert nullable == {
        "alias": [False, True],
        "auto": [False, True],
        "separate": [True, False],
        "descending": [True, True],  # not a rowid alias: an ordinary column that may hold NULL
        "int_key": [True, True],
        "text_key": [True, True],
        "pair": [True, True],
        "wr": [False, True],
        "seen": [True],  # SQLite does not say what a view's column may hold
    }
    db = sqlite3.connect(Path(_file_root) / "objects.db")
    db.execute("INSERT INTO alias (id) VALUES (NULL)")  # NULL becomes a new rowid
    db.execute("INSERT INTO descending (id) VALUES (NULL)")  # stays NULL
    assert db.execute("SELECT id IS NULL FROM alias UNION ALL SELECT id IS NULL FROM descending").fetchall() == [
        (0,), (1,)]  # fmt: skip
    db.close()
