"""PostgreSQL-family connector (postgresql, redshift, cockroachdb, supabase) on psycopg 3.

Connections go to the address checked by the egress policy (``hostaddr``) while ``host``
keeps the user's name for TLS verification. Every libpq parameter that could name a local
file or pull in operator credentials is set explicitly, so nothing from the environment
(``~/.pgpass``, ``~/.postgresql/*``, Kerberos tickets) is ever used for a user's host.
"""

from __future__ import annotations

import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from .base import (
    ColumnInfo,
    ConnectionConfig,
    Connector,
    ConnectorError,
    StageResult,
    StageRunner,
    TableInfo,
    TestResult,
)
from .egress import check_host_syntax, resolve_checked
from .pgwire import TLS_REQUIRED, classify, query_error, ssl_params, tcp_connect, tls_probe, watchdog

APPLICATION_NAME = "datasource-control-plane"
SSH_UNSUPPORTED = "SSH tunnels are not supported yet."
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "crdb_internal", "pg_extension", "pg_internal")

INTROSPECT_SQL = """
SELECT n.nspname, c.relname, c.relkind, a.attname,
       format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a
       ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
  AND (n.nspname = %(schema)s
       OR (%(schema)s::text = '' AND left(n.nspname, 3) <> 'pg_'
           AND NOT n.nspname = ANY(%(system)s)))
ORDER BY n.nspname, c.relname, a.attnum
"""


class PostgresConnector(Connector):
    """Stages: resolve, tcp, tls (only when the SSL mode requires TLS), auth, database."""

    def __init__(self, key: str, default_port: int = 5432, startup_options: bool = True):
        self.key = key
        self.default_port = default_port
        self.startup_options = startup_options  # Redshift rejects ``options``: use SET instead

    def _host_port(self, config: ConnectionConfig) -> tuple[str, int]:
        port = config.connection.get("port") or self.default_port
        return check_host_syntax(config.connection.get("host") or "", port), port

    def _connect(
        self, config: ConnectionConfig, host: str, ip: str, port: int, tmp: Path, timeout_ms: int
    ) -> psycopg.Connection:
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
            "require_auth": "!gss,!sspi",
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
                version = conn.execute("SELECT version()").fetchone()[0]
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

    def test(self, config: ConnectionConfig) -> TestResult:
        """Run resolve, tcp, tls, auth and database stages, stopping at the first failure."""
        c = config.connection
        if (c.get("ssh_tunnel") or {}).get("enabled"):
            stage = StageResult("ssh", False, 0.0, SSH_UNSUPPORTED)
            return TestResult(False, "ssh", SSH_UNSUPPORTED, [stage], 0.0)
        timeout = float(config.connect_timeout)
        mode = (c.get("ssl") or {}).get("mode") or "prefer"
        with StageRunner(config.secrets) as runner, tempfile.TemporaryDirectory(prefix="pgtest-") as tmp:

            def resolve() -> tuple[str, int, str]:
                host, port = self._host_port(config)
                return host, port, resolve_checked(host, port, timeout)

            host, port, ip = runner.run("resolve", resolve)
            sock = runner.run("tcp", lambda: tcp_connect(ip, port, timeout, host))
            with closing(sock):
                if mode in TLS_REQUIRED:
                    runner.run("tls", lambda: tls_probe(sock, c.get("ssl") or {}), "The server accepts TLS.")
            conn = runner.run(
                "auth",
                lambda: self._connect(config, host, ip, port, Path(tmp), config.connect_timeout * 1000),
            )
            with conn:
                runner.server_version = runner.run("database", lambda: self._check_database(conn, config))
        return runner.result()

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """Tables and views with columns of the configured schema (all user schemas if empty)."""
        if (config.connection.get("ssh_tunnel") or {}).get("enabled"):
            raise ConnectorError("ssh", SSH_UNSUPPORTED)
        host, port = self._host_port(config)
        ip = resolve_checked(host, port, float(config.connect_timeout))
        seconds = config.query_timeout + config.connect_timeout
        with tempfile.TemporaryDirectory(prefix="pgintrospect-") as tmp:
            conn = self._connect(config, host, ip, port, Path(tmp), config.query_timeout * 1000)
        with conn, watchdog(conn, seconds) as state:
            try:
                rows = conn.execute(
                    INTROSPECT_SQL,
                    {"schema": config.connection.get("schema") or "", "system": list(SYSTEM_SCHEMAS)},
                ).fetchall()
            except psycopg.Error as exc:
                raise query_error(exc, "introspect", seconds, state["fired"], config.secrets) from None
        tables: dict[tuple[str, str], TableInfo] = {}
        for schema, name, relkind, column, data_type, nullable in rows:
            table = tables.get((schema, name))
            if table is None:
                kind = "view" if relkind in ("v", "m") else "table"
                table = tables[(schema, name)] = TableInfo(schema=schema, name=name, kind=kind, columns=[])
            if column is not None:
                table.columns.append(ColumnInfo(column, data_type, bool(nullable), len(table.columns) + 1))
        return list(tables.values())
