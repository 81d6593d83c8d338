"""MotherDuck connector on DuckDB's ``motherduck`` extension (``duckdb.connect("md:<database>")``).

MotherDuck's endpoint is the vendor's (api.motherduck.com:443), never user input, so the only
user-controlled part of the connection is the database name: it must be a plain identifier, so
no ``?`` parameters (``motherduck_host``, ``saas_mode``...), paths, ``md:`` prefixes or quotes can
be smuggled into the connection string. Stage resolve checks the name and resolves the host through
the egress policy; tcp connects to the checked address (a refused or black-holed network fails
there, within the timeout). The extension then opens its own connections from C++, outside
Python's socket layer and so outside the egress scope: the fixed vendor host is what bounds it.

Opening the connection (stage auth) is separate from the SQL it runs (``check_database``,
``read_tables``), so the SQL is tested on a local DuckDB file; the ``md:`` step by what it sends.

The DuckDB options sent, and why:
- ``motherduck_token`` in ``config``, never in the connection string (DuckDB echoes that in errors).
- ``motherduck_saas_mode``: MotherDuck's switch that stops the client from reading or writing local
  files and loading local extensions. ``enable_external_access=false`` cannot be used: it also
  forbids loading the motherduck extension itself ("Loading external extensions is disabled").
- ``motherduck_attach_mode single``: a session of this one database; the user's saved workspace
  attachments are neither used nor changed.
- ``autoinstall_known_extensions`` off: the extension is installed at deploy time
  (``INSTALL motherduck``), never downloaded during a test; a missing one is a clear auth failure.
- ``lock_configuration`` once connected: nothing later can change these settings.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from .base import (
    MAX_COLUMNS,
    MAX_TABLES,
    ColumnInfo,
    ConnectionConfig,
    ConnectorError,
    ConnectorUnavailable,
    SessionConnector,
    StageRunner,
    TableInfo,
    TestResult,
    sanitize,
)
from .egress import connect_failed_message, resolve_checked
from .guard import TimedOut, call_bounded
from .reach import tcp_connect

API_HOST = "api.motherduck.com"
API_PORT = 443
USER_AGENT = "datasource-control-plane"
#: A MotherDuck database name: letters, digits, ``_`` and ``-``; nothing DuckDB could read as a parameter or path.
DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,254}")
#: How DuckDB says an extension is not there (installing is off; external extensions may be refused).
MISSING_EXTENSION = ("install it first", "loading external extensions is disabled")
CHECK_SQL = "SELECT database_name FROM duckdb_databases() WHERE database_name = $database AND NOT internal"
INTROSPECT_SQL = """
WITH t AS (
  SELECT table_schema, table_name, table_type FROM information_schema.tables
  WHERE table_catalog = $database AND table_schema NOT IN ('information_schema', 'pg_catalog')
  ORDER BY table_schema, table_name LIMIT $max_tables
)
SELECT t.table_schema, t.table_name, t.table_type, c.column_name, c.data_type, c.is_nullable
FROM t LEFT JOIN information_schema.columns AS c
  ON c.table_catalog = $database AND c.table_schema = t.table_schema AND c.table_name = t.table_name
 AND c.ordinal_position <= $max_columns
ORDER BY t.table_schema, t.table_name, c.ordinal_position
"""

T = TypeVar("T")


def _duckdb(type_key: str = "motherduck") -> Any:
    try:
        import duckdb
    except ImportError:
        raise ConnectorUnavailable(type_key, "duckdb") from None
    return duckdb


def database_name(config: ConnectionConfig) -> str:
    """The configured database, refused (stage resolve) unless it is a plain name."""
    name = config.connection.get("database")
    if not isinstance(name, str) or not name:
        raise ConnectorError("resolve", "A database name is required.")
    if not DATABASE_NAME.fullmatch(name):
        raise ConnectorError("resolve", "The database must be a plain MotherDuck database name (letters, digits, "
                                        "'_' and '-'): no '?', '/', ':', quotes or spaces.")
    return name


def connect_arguments(database: str, token: str) -> tuple[str, dict[str, Any]]:
    """What ``duckdb.connect`` is given: the ``md:`` path (no secret in it) and the options above."""
    return f"md:{database}", {
        "motherduck_token": token,
        "motherduck_saas_mode": True,
        "motherduck_attach_mode": "single",
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": True,
        "custom_user_agent": USER_AGENT,
    }


def _classify(exc: Exception, config: ConnectionConfig) -> ConnectorError:
    """A DuckDB/extension error as a stage and our own message (driver text only sanitized)."""
    text = str(exc)
    low = text.lower()
    if any(word in low for word in ("unauthenticated", "unauthorized", "invalid token", "token is invalid",
                                    "expired", "permission denied", "forbidden", "401", "403")):
        return ConnectorError("auth", "MotherDuck refused the service token.")
    if any(m in low for m in MISSING_EXTENSION) or re.search(r'extension "[^"]*" not found', low):
        version = getattr(_duckdb(), "__version__", "")
        return ConnectorError("auth", f"The MotherDuck extension is unavailable on this server (DuckDB {version}):"
                                      " it is never downloaded during a test; install it once with "
                                      "'INSTALL motherduck'.")
    if ("database" in low or "share" in low) and any(w in low for w in ("not found", "does not exist", "no database")):
        return ConnectorError("database", f"The database '{database_name(config)}' was not found in MotherDuck.")
    if any(word in low for word in ("unavailable", "failed to connect", "connection refused", "dns",
                                    "deadline exceeded", "timed out", "network")):
        return ConnectorError("tcp", connect_failed_message(API_HOST, API_PORT))
    detail = sanitize(text, config.secrets)
    return ConnectorError("auth", "MotherDuck refused the connection." + (f" {detail}" if detail else ""))


def _bounded(fn: Callable[[], T], seconds: float, stage: str, what: str) -> T:
    try:
        return call_bounded(fn, seconds)
    except TimedOut:
        raise ConnectorError(stage, f"{what} did not answer within {seconds:g} seconds.") from None


def lock(con: Any) -> None:
    """Lock the connection's configuration (saas mode may have locked it already)."""
    locked = con.execute("SELECT current_setting('lock_configuration')").fetchone()
    if not (locked and locked[0] is True):
        con.execute("SET lock_configuration = true")


def open_connection(config: ConnectionConfig, seconds: float) -> Any:
    """The one step that reaches MotherDuck: the extension opens and authenticates the session."""
    duckdb = _duckdb()
    token = (config.secrets.get("token") or "").strip()
    if not token:
        raise ConnectorError("auth", "A service token is required.")
    path, options = connect_arguments(database_name(config), token)
    abandoned = threading.Event()

    def connect() -> Any:
        con = duckdb.connect(path, config=options)
        try:
            lock(con)
            if abandoned.is_set():  # the test gave up meanwhile: nobody will close it
                raise TimedOut("abandoned")
        except BaseException:
            con.close()
            raise
        return con

    try:
        return _bounded(connect, seconds, "auth", "MotherDuck")
    except ConnectorError:
        abandoned.set()
        raise
    except duckdb.Error as exc:
        raise _classify(exc, config) from None


@contextmanager
def _interrupt_after(con: Any, seconds: float) -> Iterator[None]:
    timer = threading.Timer(seconds, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _query(con: Any, sql: str, params: dict[str, Any], stage: str, seconds: float, config: ConnectionConfig) -> list:
    duckdb = _duckdb()
    with _interrupt_after(con, seconds):
        try:
            return _bounded(lambda: con.execute(sql, params).fetchall(), seconds + 1, stage, "MotherDuck")
        except duckdb.Error as exc:
            if type(exc).__name__ == "InterruptException":
                raise ConnectorError(stage, f"The query did not finish within {seconds:g} seconds.") from None
            detail = sanitize(str(exc), config.secrets)
            raise ConnectorError(stage, "The catalogue query failed." + (f" {detail}" if detail else "")) from None


def check_database(con: Any, config: ConnectionConfig, seconds: float) -> str:
    """The configured database is the one attached (unknown -> stage database); returns the DuckDB version."""
    database = database_name(config)
    if not _query(con, CHECK_SQL, {"database": database}, "database", seconds, config):
        raise ConnectorError("database", f"The database '{database}' was not found in MotherDuck.")
    version = _query(con, "SELECT version()", {}, "database", seconds, config)
    return f"DuckDB {version[0][0]}" if version else "DuckDB"


def read_tables(con: Any, config: ConnectionConfig, seconds: float) -> list[TableInfo]:
    """Tables and views with columns: ONE information_schema query, bounded by MAX_TABLES / MAX_COLUMNS."""
    params = {"database": database_name(config), "max_tables": MAX_TABLES, "max_columns": MAX_COLUMNS}
    rows = _query(con, INTROSPECT_SQL, params, "introspect", seconds, config)
    tables: dict[tuple[str, str], TableInfo] = {}
    for schema, name, table_type, column, data_type, nullable in rows:
        table = tables.get((schema, name))
        if table is None:
            kind = "view" if str(table_type).upper() == "VIEW" else "table"
            table = tables[(schema, name)] = TableInfo(schema=str(schema), name=str(name), kind=kind, columns=[])
        if column is not None:
            ordinal = len(table.columns) + 1
            table.columns.append(ColumnInfo(str(column), str(data_type), str(nullable).upper() == "YES", ordinal))
    return list(tables.values())


def reach(config: ConnectionConfig) -> str:
    """Stage resolve: the name, then the vendor host through the egress policy (blocked -> stage tcp)."""
    database_name(config)
    return resolve_checked(API_HOST, API_PORT, float(config.connect_timeout))


def probe(address: str, seconds: float) -> None:
    """Stage tcp: a TCP connection to the checked address (closed or silent reads like a closed port)."""
    sock: socket.socket = tcp_connect(address, API_PORT, seconds, API_HOST)
    sock.close()


class MotherDuckConnector(SessionConnector):
    """Stages: resolve (name, host), tcp (vendor endpoint), auth (the md: session), database, [introspect]."""

    def run(self, config: ConnectionConfig, *, introspect: bool) -> TestResult:
        _duckdb(self.key)
        seconds = float(config.connect_timeout)
        tables: list[TableInfo] | None = None
        with StageRunner(config.secrets) as runner:
            address = runner.run("resolve", lambda: reach(config))
            runner.run("tcp", lambda: probe(address, seconds))
            con = runner.run("auth", lambda: open_connection(config, seconds))
            try:
                runner.server_version = runner.run("database", lambda: check_database(con, config, seconds))
                if introspect:
                    query_seconds = float(config.query_timeout)
                    tables = runner.optional("introspect", lambda: read_tables(con, config, query_seconds),
                                             lambda found: f"{len(found)} tables and views.")
            finally:
                con.close()
        result = runner.result()
        result.tables = tables if result.ok else None
        return result

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """Tables and views with columns of the database; raises ``ConnectorError``."""
        _duckdb(self.key)
        seconds = float(config.connect_timeout)
        probe(reach(config), seconds)
        con = open_connection(config, seconds)
        try:
            check_database(con, config, seconds)
            return read_tables(con, config, float(config.query_timeout))
        finally:
            con.close()
