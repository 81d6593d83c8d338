"""The schema cache's bounds (README "Connections": at most MAX_TABLES tables and MAX_COLUMNS columns per
table per source) on the connectors with real servers here: PostgreSQL, MariaDB, SQLite and the file
connectors. Like the cloud connectors, past a bound the first tables by schema and name and the first
columns by position are kept and the rest left out, the bound applied in the catalogue query itself.
MAX_TABLES is lowered in most tests (the code reads it at call time); MAX_COLUMNS is the real 1,000."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import psycopg
import pymysql
import pytest
from psycopg import sql

from datasources.connectors import MAX_COLUMNS, ConnectionConfig, get_connector
from datasources.connectors import file_tables as file_module
from datasources.connectors import mysql as mysql_module
from datasources.connectors import postgresql as pg_module
from datasources.connectors import sqlite as sqlite_module
from tests.conftest import require_service

WIDE = MAX_COLUMNS + 5  # 1,005 columns: within PostgreSQL's 1,600, InnoDB's 1,017 and SQLite's 2,000
NAMES = [f"c{i:04d}" for i in range(WIDE)]


def _shape(tables):
    return [(t.schema, t.name, len(t.columns)) for t in tables]


# -------------------------------------------------------------------------------- PostgreSQL

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


@pytest.fixture
def pg_db():
    require_service(PG["host"], PG["port"], "PostgreSQL")
    name = f"dsp_limits_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(dbname=name, autocommit=True, **PG) as conn:
            conn.execute(f"CREATE TABLE aaa_wide ({', '.join(f'{c} int' for c in NAMES)})")
            conn.execute("ALTER TABLE aaa_wide DROP COLUMN c0001")  # a dropped column is not counted
            for i in range(8):
                conn.execute(f"CREATE TABLE t{i} (id int PRIMARY KEY, label text)")
            conn.execute("CREATE VIEW v0 AS SELECT * FROM t0")
        yield name
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **PG) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _pg(database):
    connection = {"host": "127.0.0.1", "port": 5432, "database": database, "schema": "public", "username": "postgres",
                  "ssl": {"mode": "disable"}, "ssh_tunnel": {"enabled": False}}  # fmt: skip
    return ConnectionConfig("postgresql", connection, {"password": "unused"}, connect_timeout=5, query_timeout=20)


@pytest.mark.postgres_source
def test_postgresql_keeps_the_first_tables_and_columns(allow_loopback, pg_db, monkeypatch):
    monkeypatch.setattr(pg_module, "MAX_TABLES", 5)
    tables = get_connector("postgresql").introspect(_pg(pg_db))
    assert _shape(tables) == [("public", "aaa_wide", MAX_COLUMNS)] + [("public", f"t{i}", 2) for i in range(4)]
    wide = tables[0].columns
    assert [c.name for c in wide[:2]] + [wide[-1].name] == ["c0000", "c0002", "c1000"]
    assert [c.ordinal for c in wide] == list(range(1, MAX_COLUMNS + 1))
    result = get_connector("postgresql").test_and_introspect(_pg(pg_db))  # over the tested session: the same
    assert result.ok and _shape(result.tables) == _shape(tables)


@pytest.mark.postgres_source
def test_postgresql_bounds_are_in_the_query(pg_db):
    """The server sends no more rows than the bounds allow (10 tables x 1,005 columns otherwise)."""
    with psycopg.connect(dbname=pg_db, **PG) as conn:
        params = {"schema": "public", "system": list(pg_module.SYSTEM_SCHEMAS), "max_tables": 3, "max_columns": 1}
        rows = conn.execute(pg_module.INTROSPECT_SQL, params).fetchall()
    assert [row[:4] for row in rows] == [("public", "aaa_wide", "r", "c0000"), ("public", "t0", "r", "id"),
                                         ("public", "t1", "r", "id")]  # fmt: skip


# -------------------------------------------------------------------------------- MariaDB

MY_HOST, MY_PORT = "127.0.0.1", 3306


@pytest.fixture
def my_db():
    require_service(MY_HOST, MY_PORT, "MariaDB")
    name = f"dsp_limits_{uuid.uuid4().hex[:10]}"
    with pymysql.connect(host=MY_HOST, port=MY_PORT, user="root", autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        try:
            cur.execute(f"CREATE TABLE `{name}`.aaa_wide ({', '.join(f'{c} int' for c in NAMES)})")
            for i in range(8):
                cur.execute(f"CREATE TABLE `{name}`.t{i} (id int PRIMARY KEY, label text)")
            cur.execute(f"CREATE VIEW `{name}`.v0 AS SELECT * FROM `{name}`.t0")
            yield name
        finally:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def _my(database):
    connection = {"host": MY_HOST, "port": MY_PORT, "database": database, "username": "root",
                  "ssl": {"mode": "prefer"}, "ssh_tunnel": {"enabled": False}}  # fmt: skip
    return ConnectionConfig("mariadb", connection, {"password": ""}, connect_timeout=5, query_timeout=20)


def test_mariadb_keeps_the_first_tables_and_columns(allow_loopback, my_db, monkeypatch):
    monkeypatch.setattr(mysql_module, "MAX_TABLES", 5)
    tables = get_connector("mariadb").introspect(_my(my_db))
    assert _shape(tables) == [(my_db, "aaa_wide", MAX_COLUMNS)] + [(my_db, f"t{i}", 2) for i in range(4)]
    assert [c.name for c in tables[0].columns] == NAMES[:MAX_COLUMNS]
    result = get_connector("mariadb").test_and_introspect(_my(my_db))
    assert result.ok and _shape(result.tables) == _shape(tables)


def test_mariadb_bounds_are_in_the_queries(my_db):
    """Each catalogue query sends no more rows than the bounds allow."""
    where = "TABLE_SCHEMA = %s"
    with pymysql.connect(host=MY_HOST, port=MY_PORT, user="root") as conn, conn.cursor() as cur:
        cur.execute(mysql_module.TABLES_SQL.format(where=where), [my_db, 3])
        assert [row[1] for row in cur.fetchall()] == ["aaa_wide", "t0", "t1"]
        cur.execute(mysql_module.COLUMNS_SQL.format(where=where), [my_db, 3, 1])
        assert [row[1:3] for row in cur.fetchall()] == [("aaa_wide", "c0000"), ("t0", "id"), ("t1", "id")]


# -------------------------------------------------------------------------------- SQLite


def _sqlite_file(root: str, name: str, script: str) -> str:
    with sqlite3.connect(Path(root) / name) as db:
        db.executescript(script)
    return name


def _sqlite(path):
    return ConnectionConfig("sqlite", {"path": path}, {}, connect_timeout=5, query_timeout=20)


def test_sqlite_keeps_the_first_tables_and_columns(_file_root, monkeypatch):
    script = f"CREATE TABLE aaa_wide ({', '.join(NAMES)});" + "".join(
        f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, label TEXT);" for i in range(8)
    ) + "CREATE VIEW v0 AS SELECT * FROM t0;"
    path = _sqlite_file(_file_root, "limits.db", script)
    monkeypatch.setattr(sqlite_module, "MAX_TABLES", 5)
    tables = get_connector("sqlite").introspect(_sqlite(path))
    assert _shape(tables) == [("main", "aaa_wide", MAX_COLUMNS)] + [("main", f"t{i}", 2) for i in range(4)]
    assert [c.name for c in tables[0].columns] == NAMES[:MAX_COLUMNS]
    assert [c.ordinal for c in tables[0].columns] == list(range(1, MAX_COLUMNS + 1))


def _statements(monkeypatch) -> list[str]:
    """The top-level statements the SQLite connector runs (SQLite's own nested ones, ``-- ...``, left out)."""
    seen: list[str] = []
    real_connect = sqlite3.connect

    def connect(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(lambda text: None if text.startswith("--") else seen.append(text))
        return conn

    monkeypatch.setattr(sqlite_module.sqlite3, "connect", connect)
    return seen


@pytest.mark.parametrize("table_list", [True, False], ids=["table_list", "before_3_37"])
def test_sqlite_reads_the_catalogue_in_one_statement_whatever_the_number_of_tables(
    _file_root, monkeypatch, table_list
):
    monkeypatch.setattr(sqlite_module, "TABLE_LIST", table_list)
    table = "id INTEGER PRIMARY KEY, label TEXT NOT NULL, price REAL"
    one = _sqlite_file(_file_root, "one.db", f"CREATE TABLE t0 ({table});")
    script = "".join(f"CREATE TABLE t{i:03d} ({table});" for i in range(300))
    many = _sqlite_file(_file_root, "many.db", f"BEGIN; {script} COMMIT;")
    statements = _statements(monkeypatch)
    assert len(get_connector("sqlite").introspect(_sqlite(one))) == 1
    small = list(statements)
    statements.clear()
    tables = get_connector("sqlite").introspect(_sqlite(many))
    assert len(tables) == 300 and all(len(t.columns) == 3 for t in tables)
    assert len(statements) == len(small) == 4  # trusted_schema, schema_version, count(*), the catalogue


def test_sqlite_an_object_it_cannot_describe_costs_only_its_columns(_file_root, monkeypatch):
    """A view over a dropped table makes the one statement fail: each object is then described alone."""
    script = "CREATE TABLE a (x INTEGER); CREATE TABLE gone (y); CREATE VIEW b AS SELECT * FROM gone; DROP TABLE gone;"
    path = _sqlite_file(_file_root, "broken.db", script + "CREATE TABLE c (z TEXT);")
    monkeypatch.setattr(sqlite_module, "MAX_TABLES", 2)
    tables = get_connector("sqlite").introspect(_sqlite(path))
    assert [(t.name, t.kind, [c.name for c in t.columns]) for t in tables] == [("a", "table", ["x"]),
                                                                               ("b", "view", [])]  # fmt: skip


# -------------------------------------------------------------------------------- files


def test_csv_keeps_the_first_columns(_file_root):
    (Path(_file_root) / "wide.csv").write_text(",".join(NAMES) + "\n" + ",".join("1" for _ in NAMES) + "\n")
    config = ConnectionConfig("csv", {"path": "wide.csv"}, {}, connect_timeout=5, query_timeout=20)
    [table] = get_connector("csv").introspect(config)
    assert [c.name for c in table.columns] == NAMES[:MAX_COLUMNS]


def test_a_folder_keeps_the_first_files_by_name(_file_root, monkeypatch):
    folder = Path(_file_root) / "many"
    folder.mkdir()
    for i in (4, 0, 3, 1, 2):
        (folder / f"f{i}.csv").write_text("id\n1\n")
    monkeypatch.setattr(file_module, "MAX_FILES", 3)
    config = ConnectionConfig("file", {"path": "many", "format": "csv"}, {}, connect_timeout=5, query_timeout=20)
    assert [t.name for t in get_connector("file").introspect(config)] == ["f0", "f1", "f2"]
    result = get_connector("file").test(config)
    assert result.ok and result.stages[-1].message == "More than 3 files found: the first 3 by name are read."
    (folder / "f4.csv").unlink()
    (folder / "f3.csv").unlink()
    assert get_connector("file").test(config).stages[-1].message == "3 file(s) found."
