"""SQLite connector: read-only access to database files under the file root."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from .base import ColumnInfo, ConnectionConfig, Connector, ConnectorError, StageRunner, TableInfo, TestResult
from .file_root import resolve_under_root

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


def _list_tables(conn: sqlite3.Connection) -> list[TableInfo]:
    rows = conn.execute(
        "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
    ).fetchall()
    tables = []
    for name, kind in rows:
        try:
            cols = conn.execute(
                'SELECT cid, name, type, "notnull", pk FROM pragma_table_info(?) ORDER BY cid', (name,)
            ).fetchall()
        except sqlite3.OperationalError:  # a view over a missing table cannot be described
            cols = []
        columns = [
            ColumnInfo(name=col, data_type=(ctype or "").upper(), nullable=not notnull, ordinal=cid + 1)
            for cid, col, ctype, notnull, _pk in cols
        ]
        tables.append(
            TableInfo(schema="main", name=name, kind="view" if kind == "view" else "table", columns=columns)
        )
    return tables


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
        """Tables and views from ``sqlite_master`` with their columns (schema ``main``)."""
        path = self._path(config)
        with open_readonly(path, config.query_timeout) as conn:
            _check_database(conn)
            try:
                return _list_tables(conn)
            except sqlite3.Error:
                raise ConnectorError("introspect", "Could not read the database schema.") from None
