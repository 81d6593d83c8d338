"""SQL Server connector (mssql) on python-tds (pytds): pure Python, TDS 7.4, TLS through pyOpenSSL.

The connector speaks the first TDS messages itself (``mssql_probe``): a PRELOGIN exchange proves the peer is a TDS
server (until then every failure reads like a closed port), and with ``encrypt`` the TLS handshake
that follows, carried in PRELOGIN packets as MS-TDS requires, is verified with the standard
library (system CAs, or ``ca_certificate`` alone; host name checked; TLS 1.2, the version pytds
speaks). pytds then logs in on a second connection to the same checked address, with TLS
required and verified against the same CAs (a private temporary PEM file, removed after).

``encrypt`` false: pytds announces ENCRYPT_NOT_SUP, so nothing is encrypted, the LOGIN7 packet
included; its password is only obfuscated (TDS scrambling is reversible), which is why turning
encryption off needs the secrets resent. A server that requires encryption is refused at stage tls
before the password is sent.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any, TypeVar

import pytds  # type: ignore[import-untyped]  # python-tds ships no type information

from .base import (
    MAX_COLUMNS,
    MAX_TABLES,
    ColumnInfo,
    ConnectionConfig,
    Connector,
    ConnectorError,
    StageRunner,
    TableInfo,
    TestResult,
    sanitize,
)
from .egress import check_host_syntax, resolve_checked
from .guard import EgressScope, TimedOut, call_bounded, egress_scope
from .mssql_probe import ENCRYPT_NOT_SUP, ENCRYPT_ON, ENCRYPT_REQ, Target, handshake, probe
from .reach import tcp_connect

#: pytds logs each login attempt at INFO with the server's messages (which echo user and database
#: names) and a traceback: keep the driver to warnings.
logging.getLogger("pytds").setLevel(logging.WARNING)

T = TypeVar("T")

APPLICATION_NAME = "datasource-control-plane"
LOGIN_REFUSED = {18456: "check the user name and password", 18486: "the account is locked",
                 18487: "the password has expired", 18488: "the password must be changed",
                 18470: "the account is disabled", 18452: "the login is from an untrusted domain"}
NO_TLS = ("The server does not offer encryption (TLS); turn off 'Encrypt connection' only if the password may "
          "cross the network unencrypted.")
SIZED_TYPES = ("char", "varchar", "nchar", "nvarchar", "binary", "varbinary")
#: One catalogue query whatever the number of tables, bounded on the server (TOP, ORDINAL_POSITION).
INTROSPECT_SQL = f"""
SELECT t.TABLE_SCHEMA, t.TABLE_NAME, t.TABLE_TYPE, c.COLUMN_NAME, c.DATA_TYPE,
       c.CHARACTER_MAXIMUM_LENGTH, c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.IS_NULLABLE
FROM (SELECT TOP ({MAX_TABLES}) TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM INFORMATION_SCHEMA.TABLES
      WHERE TABLE_SCHEMA NOT IN ('sys', 'INFORMATION_SCHEMA')
      ORDER BY TABLE_SCHEMA, TABLE_NAME) AS t
LEFT JOIN INFORMATION_SCHEMA.COLUMNS AS c
  ON c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME AND c.ORDINAL_POSITION <= {MAX_COLUMNS}
ORDER BY t.TABLE_SCHEMA, t.TABLE_NAME, c.ORDINAL_POSITION
"""  # noqa: S608 (module constants only, no user input)  # nosec B608


def _cafile(ca_pem: str, directory: str) -> str:
    """A PEM file of the CAs pytds verifies against: ``ca_pem`` alone, else the system's."""
    if ca_pem:
        path = Path(directory) / "ca.pem"
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(ca_pem)
        return str(path)
    paths = ssl.get_default_verify_paths()
    if paths.cafile:
        return paths.cafile
    certificates = [
        text for entry in sorted(Path(paths.capath or "/nonexistent").glob("*")) if entry.is_file()
        and "BEGIN CERTIFICATE" in (text := entry.read_text(errors="ignore"))
    ]
    if not certificates:
        raise ConnectorError("tls", "No system CA certificates were found: give the server's CA (ca_certificate).")
    path = Path(directory) / "system-ca.pem"
    path.write_text("\n".join(certificates))
    return str(path)


def _login_error(exc: BaseException, config: ConnectionConfig, database: str) -> ConnectorError:
    """A clean message for a failed pytds login, built here (no driver text; names masked like secrets)."""
    timeout = float(config.connect_timeout)
    user = sanitize(config.connection.get("username") or "", config.secrets, 128) or "?"
    if type(exc).__module__.startswith("OpenSSL"):
        return ConnectorError("tls", "The server's certificate could not be verified on the login connection.")
    if "Certificate does not match" in str(exc):
        return ConnectorError("tls", "The driver could not match the host name to the server's certificate "
                                     "(python-tds compares it with the common name and DNS names only).")
    if isinstance(exc, pytds.DatabaseError):
        number = exc.msg_no
        if number == 18456 and exc.args[0] != exc.text:  # 4060/4064 came first: the credentials were accepted
            shown = f"database '{sanitize(database, config.secrets, 128) or '?'}'" if database else (
                "the login's default database")
            return ConnectorError("database", f"Cannot open {shown} as user '{user}': it does not exist or the "
                                              f"login may not use it (SQL Server error {4060 if database else 4064}).")
        if number in LOGIN_REFUSED:
            return ConnectorError("auth", f"Login failed for user '{user}' (SQL Server error {number}): "
                                          f"{LOGIN_REFUSED[number]}.")
        return ConnectorError("auth", f"The server refused the login (SQL Server error {number}).")
    if isinstance(exc, TimeoutError):
        return ConnectorError("auth", f"The server did not complete the login within {timeout:g} seconds.")
    if isinstance(exc, (OSError, pytds.InterfaceError)):
        return ConnectorError("auth", "The server closed the connection during the login.")
    return ConnectorError("auth", "The login failed (the driver reported an unexpected error).")


def _bounded(fn: Callable[[], T], seconds: float, stage: str, what: str, secrets: dict[str, str]) -> T:
    """A driver call under ``call_bounded``; failures become clean ``ConnectorError`` at ``stage``."""
    try:
        return call_bounded(fn, seconds)
    except TimedOut:
        raise ConnectorError(stage, f"The server did not answer {what} within {seconds:g} seconds.") from None
    except (pytds.Error, OSError) as exc:
        detail = sanitize(str(exc.args[0]) if exc.args else "", secrets)
        raise ConnectorError(stage, f"The server could not answer {what}." + (f" {detail}" if detail else "")) from None


def _type_name(data_type: str, length: int | None, precision: int | None, scale: int | None) -> str:
    if data_type in SIZED_TYPES and length is not None:
        return f"{data_type}({'max' if length == -1 else length})"
    if data_type in ("decimal", "numeric") and precision is not None:
        return f"{data_type}({precision},{scale or 0})"
    return data_type


def _close(conn: Any) -> None:
    with suppress(Exception):  # a connection that is gone needs no closing
        conn.close()


class MSSQLConnector(Connector):
    """Stages: resolve, tcp (PRELOGIN answered), tls (when ``encrypt``), auth (LOGIN7), database, introspect."""

    def __init__(self, key: str, default_port: int = 1433):
        self.key = key
        self.default_port = default_port

    def _target(self, config: ConnectionConfig) -> Target:
        port = config.connection.get("port") or self.default_port
        host = check_host_syntax(config.connection.get("host") or "", port)
        if "\\" in host:
            raise ConnectorError("resolve", "Named instances (host\\instance) are not supported: give the port.")
        if not host.isascii():
            raise ConnectorError("resolve", "Give the host name in its ASCII (punycode) form.")
        return host, port, resolve_checked(host, port, float(config.connect_timeout))

    def _login(self, config: ConnectionConfig, target: Target, cafile: str | None, scope: EgressScope) -> Any:
        """Stage auth: LOGIN7 by pytds over a new connection to the checked address (TLS when ``cafile``)."""
        host, port, ip = target
        c = config.connection
        user = c.get("username") or ""
        if not user:
            raise ConnectorError("auth", "A username is required.")
        database = "" if c.get("disable_database_selection") else (c.get("database") or "")
        timeout = float(config.connect_timeout)
        sock = tcp_connect(ip, port, timeout, host)
        options = {
            "dsn": host, "port": port, "sock": sock, "user": user, "password": config.secrets.get("password") or "",
            "database": database or None, "appname": APPLICATION_NAME, "autocommit": True,
            "readonly": bool(c.get("read_only_intent")), "cafile": cafile, "validate_host": True,
            "login_timeout": timeout, "timeout": float(config.query_timeout), "disable_connect_retry": True,
        }
        try:
            return call_bounded(lambda: pytds.connect(**options), timeout + 0.5, late=lambda conn: conn.close())
        except Exception as exc:  # every driver failure is classified below
            sock.close()
            blocked = scope.blocked_error()  # e.g. a read-only routing answer naming a refused host
            if blocked:
                raise blocked from None
            if isinstance(exc, TimedOut):
                exc = TimeoutError()
            raise _login_error(exc, config, database) from None

    def _check_database(self, conn: Any, config: ConnectionConfig) -> str:
        """Stage database: the server's version and the session's database, one batch."""

        def query() -> tuple[Any, ...]:
            with conn.cursor() as cur:
                cur.execute("SELECT @@VERSION, DB_NAME()")
                return tuple(cur.fetchone())

        version, _ = _bounded(query, config.connect_timeout + 1.0, "database", "the version query", config.secrets)
        return (str(version or "").strip().splitlines() or ["SQL Server"])[0].strip()[:255]

    def _catalogue(self, conn: Any, config: ConnectionConfig) -> list[TableInfo]:
        """Tables and views with columns of the session's database: one query (INTROSPECT_SQL)."""

        def rows() -> list[tuple[Any, ...]]:
            with conn.cursor() as cur:
                cur.execute(INTROSPECT_SQL)
                return [tuple(row) for row in cur.fetchall()]

        tables: dict[tuple[str, str], TableInfo] = {}
        for schema, name, kind, column, data_type, length, precision, scale, nullable in _bounded(
            rows, config.query_timeout + 1.0, "introspect", "the catalogue query", config.secrets
        ):
            table = tables.get((schema, name))
            if table is None:
                if len(tables) >= MAX_TABLES:
                    continue
                kind = "view" if str(kind).upper() == "VIEW" else "table"
                table = tables[(schema, name)] = TableInfo(schema=schema, name=name, kind=kind, columns=[])
            if column is not None and len(table.columns) < MAX_COLUMNS:
                data = _type_name(str(data_type), length, precision, scale)
                table.columns.append(ColumnInfo(column, data, str(nullable).upper() == "YES", len(table.columns) + 1))
        return list(tables.values())

    def _run(
        self, config: ConnectionConfig, introspect: bool
    ) -> tuple[TestResult, list[TableInfo] | None, ConnectorError | None]:
        c = config.connection
        encrypt = c.get("encrypt") is not False
        timeout = float(config.connect_timeout)
        tables: list[TableInfo] | None = None
        with StageRunner(config.secrets) as runner, ExitStack() as stack:
            target = runner.run("resolve", lambda: self._target(config))
            scope = stack.enter_context(egress_scope(timeout))
            scope.pin(target[0], target[2])
            sock, answer = runner.run("tcp", lambda: probe(target, timeout, encrypt))
            stack.callback(sock.close)
            cafile = None
            if encrypt:
                directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="mssql-ca-"))

                def tls() -> str:
                    if answer not in (ENCRYPT_ON, ENCRYPT_REQ):
                        raise ConnectorError("tls", NO_TLS)
                    handshake(sock, target[0], c.get("ca_certificate") or "", timeout)
                    return _cafile(c.get("ca_certificate") or "", directory)

                cafile = runner.run("tls", tls, "The server's certificate is valid.")
            elif answer != ENCRYPT_NOT_SUP:
                runner.run("tls", _plaintext_refused)
            sock.close()
            conn = runner.run("auth", lambda: self._login(config, target, cafile, scope))
            stack.callback(_close, conn)
            runner.server_version = runner.run("database", lambda: self._check_database(conn, config))
            if introspect:
                tables = runner.optional("introspect", lambda: self._catalogue(conn, config))
        result = runner.result()
        return result, (tables if result.ok else None), runner.optional_failure

    def test(self, config: ConnectionConfig) -> TestResult:
        """Run resolve, tcp, tls (when ``encrypt``), auth and database, stopping at the first failure."""
        return self._run(config, introspect=False)[0]

    def test_and_introspect(self, config: ConnectionConfig) -> TestResult:
        """The test, then the introspection over the same session (``result.tables``; None if it failed)."""
        result, tables, _ = self._run(config, introspect=True)
        result.tables = tables
        return result

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """Tables and views with columns of the login's database (at most MAX_TABLES, MAX_COLUMNS each)."""
        result, tables, failure = self._run(config, introspect=True)
        if not result.ok:
            raise ConnectorError(result.stage or "tcp", result.message)
        if failure is not None:
            raise failure
        return tables or []


def _plaintext_refused() -> None:
    raise ConnectorError("tls", "The server requires encryption: turn on 'Encrypt connection'.")
