"""SQLite connector: read-only access to database files under the file root."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from .base import (
    MAX_COLUMNS,
    MAX_TABLES,
    ConnectionConfig,
    Connector,
    ConnectorError,
    StageRunner,
    TableInfo,
    TestResult,
)
from .file_root import resolve_under_root
from .limits import group_rows

NOT_A_DATABASE = "The file is not a SQLite database or cannot be read."


@contextmanager
def open_readonly(path: Path, timeout: float) -> Iterator[sqlite3.Connection]:
    """Open ``path`` read-only; statements are aborted once ``timeout`` seconds have passed."""
    uri = f"file:{quote(str(path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
    except sqlite3.Error:
        raise ConnectorError("database", NOT_A_DATABASE) from None
    deadline = time.monotonic() + timeout
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        conn.execute("PRAGMA trusted_schema = OFF")
        yield conn
    finally:
        conn.close()


def _check_database(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("PRAGMA schema_version").fetchone()
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise ConnectorError("database", "The database did not answer in time.") from None
        raise ConnectorError("database", NOT_A_DATABASE) from None
    except sqlite3.Error:
        raise ConnectorError("database", NOT_A_DATABASE) from None


#: ``PRAGMA table_list`` (SQLite 3.37) types each object, shadow tables included; before it, a
#: virtual table is a table without a root page and its shadow tables are told by name.
TABLE_LIST = sqlite3.sqlite_version_info >= (3, 37, 0)
OBJECTS = "SELECT name, type FROM pragma_table_list WHERE schema = 'main' AND type IN ('table', 'view', 'virtual')"
#: Shadow tables of the virtual-table modules SQLite ships: fts3/fts4, fts5, rtree and geopoly (their
#: names collected once, so the listing stays linear in the number of tables).
OBJECTS_BEFORE_TABLE_LIST = """
SELECT name, CASE WHEN type = 'table' AND rootpage = 0 THEN 'virtual' ELSE type END AS type
FROM sqlite_master
WHERE type IN ('table', 'view')
  AND name NOT IN (
    SELECT v.name || '_' || s.suffix
    FROM sqlite_master v,
         (SELECT 'content' AS suffix UNION ALL SELECT 'segments' UNION ALL SELECT 'segdir'
          UNION ALL SELECT 'docsize' UNION ALL SELECT 'stat' UNION ALL SELECT 'data' UNION ALL SELECT 'idx'
          UNION ALL SELECT 'config' UNION ALL SELECT 'node' UNION ALL SELECT 'rowid' UNION ALL SELECT 'parent') s
    WHERE v.type = 'table' AND v.rootpage = 0)
"""
#: The first MAX_TABLES tables and views by name (README: "Connections"): user objects only (no
#: ``sqlite_`` tables, no virtual tables' shadow tables; a virtual table itself is queryable, so listed).
LISTED = """
SELECT name, type FROM ({objects}) WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name LIMIT :max_tables
"""
#: Columns of the listed objects, the first MAX_COLUMNS of each, in ONE statement whatever the number
#: of tables. An INTEGER PRIMARY KEY is the rowid (never NULL) unless the key has an index of its own
#: (INTEGER PRIMARY KEY DESC, a composite or non-INTEGER key: those may hold NULL unless declared NOT
#: NULL); WITHOUT ROWID keys already say NOT NULL.
COLUMNS = """
SELECT o.name, o.type, c.name, c.type, c."notnull",
       c.pk > 0 AND upper(c.type) = 'INTEGER' AND o.type = 'table'
       AND NOT EXISTS (SELECT 1 FROM pragma_index_list(o.name, 'main') i WHERE i.origin = 'pk')
FROM ({listed}) AS o
LEFT JOIN pragma_table_info(o.name, 'main') AS c ON c.cid < :max_columns
ORDER BY o.name, c.cid
"""
ONE_OBJECT = COLUMNS.replace("FROM ({listed}) AS o", "FROM (SELECT :name AS name, :type AS type) AS o")


def _listed_sql() -> str:
    return LISTED.format(objects=OBJECTS if TABLE_LIST else OBJECTS_BEFORE_TABLE_LIST)


def _rows(conn: sqlite3.Connection) -> list[tuple]:
    """The catalogue rows: one statement; when SQLite cannot describe an object (a view over a dropped
    table, a virtual table whose module is not loaded here) that statement fails as a whole, so each
    object is then described on its own and the ones that cannot be are listed without columns."""
    bounds = {"max_tables": MAX_TABLES, "max_columns": MAX_COLUMNS}
    try:
        return conn.execute(COLUMNS.format(listed=_listed_sql()), bounds).fetchall()
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise
    rows: list[tuple] = []
    for name, kind in conn.execute(_listed_sql(), bounds).fetchall():
        try:
            rows += conn.execute(ONE_OBJECT, {**bounds, "name": name, "type": kind}).fetchall()
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise
            rows.append((name, kind, None, None, 0, 0))
    return rows


def _list_tables(conn: sqlite3.Connection) -> list[TableInfo]:
    return group_rows(
        (("main", name, "view" if kind == "view" else "table", column, (ctype or "").upper(),
          not notnull and not rowid) for name, kind, column, ctype, notnull, rowid in _rows(conn)),
        MAX_TABLES, MAX_COLUMNS,
    )  # fmt: skip


class SQLiteConnector(Connector):
    """Stages: ``resolve`` (path confinement) then ``database`` (open read-only, query)."""

    key = "sqlite"

    def __init__(self, key: str = "sqlite"):
        self.key = key

    def test_and_introspect(self, config: ConnectionConfig) -> TestResult:
        return self.test_then_read_local(config)

    def _path(self, config: ConnectionConfig) -> Path:
        return resolve_under_root(config.connection.get("path", ""), config.file_folder)

    def test(self, config: ConnectionConfig) -> TestResult:
        """Check the path and that the file is a readable SQLite database."""
        with StageRunner(config.secrets) as runner:
            path = runner.run("resolve", lambda: self._path(config))

            def database() -> None:
                with open_readonly(path, config.connect_timeout) as conn:
                    _check_database(conn)

            runner.run("database", database)
            runner.server_version = f"SQLite {sqlite3.sqlite_version}"
        return runner.result()

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """Tables, views and virtual tables with their columns (schema ``main``), in one catalogue statement."""
        path = self._path(config)
        with open_readonly(path, config.query_timeout) as conn:
            _check_database(conn)
            try:
                return _list_tables(conn)
            except sqlite3.Error:
                raise ConnectorError("introspect", "Could not read the database schema.") from None
