"""PostgreSQL-family connector (postgresql, redshift, cockroachdb, supabase) on psycopg 3.

Connections go to the address checked by the egress policy (``hostaddr``) while ``host``
keeps the user's name for TLS verification. Every libpq parameter that could name a local
file or pull in operator credentials is set explicitly, so nothing from the environment
(``~/.pgpass``, ``~/.postgresql/*``, Kerberos tickets) is ever used for a user's host.
With an SSH tunnel the driver connects to the tunnel's local port instead (``hostaddr``
127.0.0.1), the bastion resolving the database host.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg import sql

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
from .limits import group_rows
from .pgwire import (
    TLS_REQUIRED,
    classify,
    greet,
    query_error,
    require_auth,
    ssl_params,
    tls_verdict,
    watchdog,
)
from .ssh import SSHTunnel, forwarded, run_tunnel_stages

APPLICATION_NAME = "datasource-control-plane"
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "crdb_internal", "pg_extension", "pg_internal")

#: One catalogue query whatever the number of tables, bounded on the server: the first MAX_TABLES
#: tables and views by schema and name, the first MAX_COLUMNS columns of each by position (README:
#: "Connections"). A partition is left out when its partitioned parent is listed (querying the parent
#: reads every partition's rows); one whose parent lies outside the configured schema is listed.
INTROSPECT_SQL = """
WITH scope AS (
  SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace n
  WHERE n.nspname = %(schema)s
     OR (%(schema)s::text = '' AND left(n.nspname, 3) <> 'pg_' AND NOT n.nspname = ANY(%(system)s))
), listed AS (
  SELECT c.oid, s.nspname, c.relname, c.relkind
  FROM pg_catalog.pg_class c
  JOIN scope s ON s.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                    JOIN pg_catalog.pg_class parent ON parent.oid = i.inhparent AND parent.relkind = 'p'
                    JOIN scope ON scope.oid = parent.relnamespace
                    WHERE i.inhrelid = c.oid)
  ORDER BY s.nspname, c.relname
  LIMIT %(max_tables)s
), attributes AS (
  SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS data_type,
         NOT a.attnotnull AS nullable, row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS position
  FROM pg_catalog.pg_attribute a
  JOIN listed ON listed.oid = a.attrelid
  WHERE a.attnum > 0 AND NOT a.attisdropped
)
SELECT l.nspname, l.relname, l.relkind, a.attname, a.data_type, a.nullable
FROM listed l
LEFT JOIN attributes a ON a.attrelid = l.oid AND a.position <= %(max_columns)s
ORDER BY l.nspname, l.relname, a.attnum
"""


class PostgresConnector(Connector):
    """Stages: resolve, tcp, [ssh], tls (only when the SSL mode requires TLS), auth, database."""

    def __init__(self, key: str, default_port: int = 5432, startup_options: bool = True):
        self.key = key
        self.default_port = default_port
        self.startup_options = startup_options  # Redshift rejects ``options``: use SET instead

    def _host_port(self, config: ConnectionConfig) -> tuple[str, int]:
        port = config.connection.get("port") or self.default_port
        return check_host_syntax(config.connection.get("host") or "", port), port

    def _connect(
        self, config: ConnectionConfig, host: str, address: tuple[str, int], tmp: Path, timeout_ms: int
    ) -> psycopg.Connection:
        """Log in at ``address`` (checked IP or tunnel end); ``host`` names the server for TLS."""
        ip, port = address
        c = config.connection
        user = c.get("username") or ""
        if not user:
            raise ConnectorError("auth", "A username is required.")
        params: dict[str, Any] = {
            "host": host,
            "hostaddr": ip,
            "port": port,
            "dbname": c.get("database") or user,
            "user": user,
            "password": config.secrets.get("password") or "",
            "passfile": str(tmp / "absent-pgpass"),
            "connect_timeout": max(2, int(config.connect_timeout)),
            "application_name": APPLICATION_NAME,
            "gssencmode": "disable",
            "require_auth": require_auth(c.get("ssl") or {}),
            **ssl_params(c.get("ssl") or {}, config.secrets, tmp),
        }
        if self.startup_options:
            params["options"] = f"-c statement_timeout={timeout_ms}"
        try:
            conn = psycopg.connect(autocommit=True, prepare_threshold=None, **params)
        except psycopg.Error as exc:
            raise classify(exc, config, host, port) from None
        if not self.startup_options:
            try:
                conn.execute(sql.SQL("SET statement_timeout TO {}").format(sql.Literal(timeout_ms)))
            except psycopg.Error as exc:
                conn.close()
                raise query_error(exc, "auth", config.connect_timeout, False, config.secrets) from None
        return conn

    def _check_database(self, conn: psycopg.Connection, config: ConnectionConfig) -> str:
        seconds = config.connect_timeout + 2
        schema = config.connection.get("schema") or ""
        with watchdog(conn, seconds) as state:
            try:
                version = cast("tuple[Any, ...]", conn.execute("SELECT version()").fetchone())[0]  # always a row
                found = (
                    not schema
                    or conn.execute(
                        "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
                    ).fetchone()
                )
            except psycopg.Error as exc:
                raise query_error(exc, "database", seconds, state["fired"], config.secrets) from None
        if not found:
            raise ConnectorError("database", f"Schema '{schema}' not found.")
        return str(version)[:255]

    def _reach(
        self, runner: StageRunner, config: ConnectionConfig, tunnel: SSHTunnel | None
    ) -> tuple[str, tuple[str, int], bytes]:
        """Stages resolve, tcp (and ssh): the host name, the address to log in at, the answer to SSLRequest."""
        timeout = float(config.connect_timeout)
        if tunnel:
            port = config.connection.get("port") or self.default_port
            host, address, answer = run_tunnel_stages(
                runner, tunnel, config.connection.get("host") or "", port,
                lambda local: greet(*local, timeout, config.connection.get("host") or ""),
            )  # fmt: skip
            return host, address, answer

        def resolve() -> tuple[str, int, str]:
            host, port = self._host_port(config)
            return host, port, resolve_checked(host, port, timeout)

        host, port, ip = runner.run("resolve", resolve)
        answer = runner.run("tcp", lambda: greet(ip, port, timeout, host))
        return host, (ip, port), answer

    def test(self, config: ConnectionConfig) -> TestResult:
        """Run resolve, tcp, [ssh], tls, auth and database stages, stopping at the first failure."""
        return self._test(config, introspect=False)

    def test_and_introspect(self, config: ConnectionConfig) -> TestResult:
        """The test, then the introspection over the same session when it passed (one login, not two)."""
        return self._test(config, introspect=True)

    def _test(self, config: ConnectionConfig, *, introspect: bool) -> TestResult:
        ssl = config.connection.get("ssl") or {}
        tls = (ssl.get("mode") or "prefer") in TLS_REQUIRED
        tunnel = SSHTunnel(config) if SSHTunnel.enabled(config) else None
        tables = None
        with StageRunner(config.secrets) as runner, tempfile.TemporaryDirectory(prefix="pgtest-") as tmp:
            with tunnel or nullcontext():
                host, address, answer = self._reach(runner, config, tunnel)
                if tls:
                    runner.run("tls", lambda: tls_verdict(answer, ssl), "The server accepts TLS.")
                timeout_ms = config.connect_timeout * 1000
                conn = runner.run("auth", lambda: self._connect(config, host, address, Path(tmp), timeout_ms))
                with conn:
                    runner.server_version = runner.run("database", lambda: self._check_database(conn, config))
                    if introspect:
                        tables = self._introspect_session(conn, config)
        result = runner.result()
        result.tables = tables if result.ok else None
        return result

    def _introspect_session(self, conn: psycopg.Connection, config: ConnectionConfig) -> list[TableInfo] | None:
        """Introspect over the tested session; None when that fails (the refresh then tries on its own
        and records why)."""
        try:
            conn.execute(sql.SQL("SET statement_timeout TO {}").format(sql.Literal(config.query_timeout * 1000)))
            return self._introspect_rows(conn, config)
        except (psycopg.Error, ConnectorError):
            return None

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """Tables and views with columns of the configured schema (all user schemas if empty)."""
        host, port = self._host_port(config)
        with ExitStack() as stack:
            timeout = float(config.connect_timeout)
            if SSHTunnel.enabled(config):
                address, _ = stack.enter_context(forwarded(config, host, port, lambda a: greet(*a, timeout, host)))
            else:
                address = (resolve_checked(host, port, timeout), port)
                greet(*address, timeout, host)
            with tempfile.TemporaryDirectory(prefix="pgintrospect-") as tmp:
                conn = self._connect(config, host, address, Path(tmp), config.query_timeout * 1000)
            with conn:
                return self._introspect_rows(conn, config)

    def _introspect_rows(self, conn: psycopg.Connection, config: ConnectionConfig) -> list[TableInfo]:
        seconds = config.query_timeout + config.connect_timeout
        with watchdog(conn, seconds) as state:
            try:
                rows = conn.execute(
                    INTROSPECT_SQL,
                    {"schema": config.connection.get("schema") or "", "system": list(SYSTEM_SCHEMAS),
                     "max_tables": MAX_TABLES, "max_columns": MAX_COLUMNS},
                ).fetchall()
            except psycopg.Error as exc:
                raise query_error(exc, "introspect", seconds, state["fired"], config.secrets) from None
        kinds = {"v": "view", "m": "view"}
        return group_rows(
            ((schema, name, kinds.get(relkind, "table"), column, data_type, bool(nullable))
             for schema, name, relkind, column, data_type, nullable in rows),
            MAX_TABLES, MAX_COLUMNS,
        )  # fmt: skip
