"""MySQL-family connector (mysql, mariadb, singlestore) on PyMySQL.

The TCP connection goes to the address checked by the egress policy (or to an SSH tunnel's local
end, the bastion resolving the host) and is handed to PyMySQL, so the host is looked up exactly
once; the user's host name is kept for TLS verification. The client never reads option files,
never sends local files, and never sends a clear-text password without TLS.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar, cast

import pymysql

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
from .egress import check_host_syntax, resolve_checked
from .limits import Catalogue
from .mysqlwire import (
    TLS_REQUIRED,
    ClearTextRefused,
    SafeConnection,
    apply_tls,
    classify,
    deadline,
    open_server,
    tls_check,
    tls_context,
)
from .ssh import SSHTunnel, forwarded, run_tunnel_stages

APPLICATION_NAME = "datasource-control-plane"
SYSTEM_SCHEMAS = ("information_schema", "mysql", "performance_schema", "sys", "memsql", "cluster")
DRIVER_ERRORS = (pymysql.Error, OSError, RuntimeError, ClearTextRefused)

#: Two catalogue queries whatever the number of tables, both bounded on the server (README:
#: "Connections"): the first MAX_TABLES tables by schema and name, then the first MAX_COLUMNS columns
#: (by position) of those tables only. Listed are the user's tables and views: not the server's own
#: views, nor MariaDB's sequences (a one-row generator with eight internal columns) or a session's
#: temporary tables.
TABLES_SQL = (
    "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
    "WHERE {where} AND TABLE_TYPE NOT IN ('SYSTEM VIEW', 'SEQUENCE', 'TEMPORARY') "
    "ORDER BY TABLE_SCHEMA, TABLE_NAME LIMIT %s"
)
COLUMNS_SQL = (
    "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE "
    "FROM information_schema.COLUMNS c JOIN ("
    "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
    "WHERE {where} AND TABLE_TYPE NOT IN ('SYSTEM VIEW', 'SEQUENCE', 'TEMPORARY') "
    "ORDER BY TABLE_SCHEMA, TABLE_NAME LIMIT %s"
    ") t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME "
    "WHERE c.ORDINAL_POSITION <= %s ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION"
)

T = TypeVar("T")
Target = tuple[str, int, str]  # host name (for TLS and messages), port, IP address to connect to


class _Link:
    """The one TCP connection a test or introspection logs in over: always closed."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None

    def get(self) -> socket.socket:
        if self.sock is None:
            raise ConnectorError("tcp", "No connection to the server.")
        return self.sock

    def __enter__(self) -> _Link:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sock is not None:
            self.sock.close()  # a no-op once PyMySQL has closed it or moved it into a TLS socket


def _ssl(config: ConnectionConfig) -> tuple[str, dict]:
    settings = config.connection.get("ssl") or {}
    return settings.get("mode") or "prefer", settings


class MySQLConnector(Connector):
    """Stages: resolve, tcp, [ssh], tls (only when the SSL mode requires TLS), auth, database."""

    def __init__(self, key: str, default_port: int = 3306):
        self.key = key
        self.default_port = default_port

    def connect_target(self, config: ConnectionConfig) -> Target:
        """Direct connection target: host name, port and the one egress-checked IP to connect to."""
        port = config.connection.get("port") or self.default_port
        host = check_host_syntax(config.connection.get("host") or "", port)
        return host, port, resolve_checked(host, port, float(config.connect_timeout))

    def _login(
        self, config: ConnectionConfig, sock: socket.socket, host: str, port: int, ctx: ssl.SSLContext | None
    ) -> SafeConnection:
        """Handshake, TLS and authentication over ``sock`` (no database selected yet)."""
        user = config.connection.get("username") or ""
        if not user:
            raise ConnectorError("auth", "A username is required.")
        seconds = float(config.connect_timeout)
        conn = SafeConnection(
            user=user,
            password=(config.secrets.get("password") or "").encode(),  # UTF-8 bytes: PyMySQL would try latin-1
            host=host,
            port=port,
            charset="utf8mb4",
            connect_timeout=config.connect_timeout,
            read_timeout=seconds,
            write_timeout=seconds,
            autocommit=True,
            local_infile=False,
            ssl_disabled=True,  # TLS is configured below from our own context, never from server-side paths
            program_name=APPLICATION_NAME,
            defer_connect=True,
        )
        apply_tls(conn, _ssl(config)[0], ctx)
        with deadline(sock, seconds + 2) as state:
            try:
                conn.connect(sock)
            except DRIVER_ERRORS as exc:
                raise classify(exc, config, host, "auth", seconds, state["fired"]) from None
        return conn

    def _guarded(
        self, conn: SafeConnection, config: ConnectionConfig, stage: str, seconds: float, fn: Callable[[], T]
    ) -> T:
        """Run ``fn`` under a deadline; on any error drop the connection without another byte."""
        with deadline(conn.transport, seconds + 2) as state:
            try:
                return fn()
            except DRIVER_ERRORS as exc:
                conn.abort()
                raise classify(exc, config, conn.host, stage, seconds, state["fired"]) from None

    def _check_database(self, conn: SafeConnection, config: ConnectionConfig) -> str:
        """Server version, then select the configured database (unknown or forbidden -> stage database)."""
        database = config.connection.get("database") or ""

        def check() -> str:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                version = str(cast("tuple[Any, ...]", cur.fetchone())[0])  # always a row
            if database:
                conn.select_db(database)
            return version

        version = self._guarded(conn, config, "database", float(config.connect_timeout), check)
        flavour = "MariaDB" if "mariadb" in version.lower() else "MySQL"
        return f"{flavour} {version}"[:255]

    def _reach(self, runner: StageRunner, config: ConnectionConfig, tunnel: SSHTunnel | None, link: _Link) -> str:
        """Stages resolve, tcp (and ssh through a tunnel); returns the host name, ``link`` open to a greeting server."""
        timeout = float(config.connect_timeout)
        if tunnel:
            port = config.connection.get("port") or self.default_port
            target = config.connection.get("host") or ""
            host, _, link.sock = run_tunnel_stages(
                runner, tunnel, target, port, lambda local: open_server(*local, timeout, target)
            )
            return host
        host, port, ip = runner.run("resolve", lambda: self.connect_target(config))
        link.sock = runner.run("tcp", lambda: open_server(ip, port, timeout, host))
        return host

    def test(self, config: ConnectionConfig) -> TestResult:
        """Run resolve, tcp, [ssh], tls, auth and database stages, stopping at the first failure."""
        return self._run(config, introspect=False)

    def test_and_introspect(self, config: ConnectionConfig) -> TestResult:
        """The test, then the tables over the same session when it passed (``tables`` None when only
        the introspection failed)."""
        return self._run(config, introspect=True)

    def _run(self, config: ConnectionConfig, *, introspect: bool) -> TestResult:
        mode, ssl_settings = _ssl(config)
        timeout = float(config.connect_timeout)
        port = config.connection.get("port") or self.default_port
        tunnel = SSHTunnel(config) if SSHTunnel.enabled(config) else None
        tables: list[TableInfo] | None = None  # set only when every stage passed (a failed one ends the block)
        with StageRunner(config.secrets) as runner, tunnel or nullcontext(), _Link() as link:
            host = self._reach(runner, config, tunnel, link)
            ctx: ssl.SSLContext | None = None
            if mode in TLS_REQUIRED:

                def tls() -> ssl.SSLContext | None:
                    context = tls_context(ssl_settings, config.secrets)
                    tls_check(link.get(), timeout)
                    return context

                ctx = runner.run("tls", tls, "The server offers TLS.")

            def auth() -> SafeConnection:
                context = ctx if mode in TLS_REQUIRED else tls_context(ssl_settings, config.secrets)
                return self._login(config, link.get(), host, port, context)

            conn = runner.run("auth", auth)
            try:
                runner.server_version = runner.run("database", lambda: self._check_database(conn, config))
                if introspect:
                    tables = self._read_tables(conn, config)
            finally:
                conn.finish()
        result = runner.result()
        result.tables = tables
        return result

    def _read_tables(self, conn: SafeConnection, config: ConnectionConfig) -> list[TableInfo] | None:
        conn.set_timeouts(float(config.query_timeout))
        try:
            return self._guarded(
                conn, config, "introspect", float(config.query_timeout), lambda: self._catalogue(conn, config)
            )
        except ConnectorError:
            return None

    @contextmanager
    def _endpoint(self, config: ConnectionConfig) -> Iterator[tuple[str, int, socket.socket]]:
        """Host name, port and a connection whose peer has greeted like a MySQL server (direct or tunnelled)."""
        timeout = float(config.connect_timeout)
        if SSHTunnel.enabled(config):
            port = config.connection.get("port") or self.default_port
            host = check_host_syntax(config.connection.get("host") or "", port)
            with forwarded(config, host, port, lambda local: open_server(*local, timeout, host)) as (_, sock):
                yield host, port, sock
        else:
            host, port, ip = self.connect_target(config)
            yield host, port, open_server(ip, port, timeout, host)

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """Tables and views with columns of the configured database (all user databases if empty).

        Two catalogue queries whatever the number of tables: one on TABLES, one on COLUMNS.
        """
        ctx = tls_context(_ssl(config)[1], config.secrets)
        with self._endpoint(config) as (host, port, sock), _Link() as link:
            link.sock = sock
            conn = self._login(config, link.get(), host, port, ctx)
            try:
                self._check_database(conn, config)
                conn.set_timeouts(float(config.query_timeout))
                return self._guarded(
                    conn, config, "introspect", float(config.query_timeout), lambda: self._catalogue(conn, config)
                )
            finally:
                conn.finish()

    def _catalogue(self, conn: SafeConnection, config: ConnectionConfig) -> list[TableInfo]:
        database = config.connection.get("database") or ""
        if database:
            where, params = "TABLE_SCHEMA = %s", [database]
        else:
            where, params = f"TABLE_SCHEMA NOT IN ({', '.join(['%s'] * len(SYSTEM_SCHEMAS))})", list(SYSTEM_SCHEMAS)
        catalogue = Catalogue(MAX_TABLES, MAX_COLUMNS)
        with conn.cursor() as cur:
            cur.execute(TABLES_SQL.format(where=where), [*params, MAX_TABLES])
            for schema, name, table_type in cur.fetchall():
                catalogue.table(schema, name, "view" if str(table_type).upper() == "VIEW" else "table")
            cur.execute(COLUMNS_SQL.format(where=where), [*params, MAX_TABLES, MAX_COLUMNS])
            for schema, name, column, data_type, nullable in cur.fetchall():
                # a table created between the two queries is left for the next refresh
                catalogue.column(schema, name, column, str(data_type), str(nullable).upper() == "YES")
        return catalogue.tables
