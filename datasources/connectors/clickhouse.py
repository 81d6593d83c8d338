"""ClickHouse connector on clickhouse-driver (the native TCP protocol, plain or TLS).

The native protocol rather than HTTP: it is what ClickHouse's own client speaks on 9000/9440, it
works against every server version still deployed (clickhouse-connect's HTTP client sends
settings older servers reject), and a wrong password or database is a typed error code.

Stages:
- resolve: the host is resolved once and every address checked (``resolve_checked``).
- tcp: a connection to the checked address (over TLS without verification when ``secure``) that
  sends one Ping packet before any Hello. A ClickHouse server answers a first packet that is not
  Hello with an Exception packet (type 2, code, ``DB::...Exception``); nothing else proves the peer
  is ClickHouse, so until that answer every failure reads like a closed port. No credentials are
  sent before the server has proved itself (and, with TLS, its certificate); the server logs the
  probe as an "Unexpected packet from client" error. With ``secure``, a port whose TLS handshake fails
  but that answers the same Ping in plain text on a new connection is ClickHouse's plain port: stage
  tls says so (as PostgreSQL's "The server does not support SSL").
- tls (secure only): a verified handshake, host name checked, against the system CAs or the
  source's ``ca_certificate`` alone.
- auth: the driver's Hello (user, password, database) inside an egress scope where the host name
  resolves to the checked address only, so TLS still verifies the user's host name. No alternative
  hosts, no reconnects.
- database: the server refuses an unknown database in its Hello answer (error 81); then one query.
- introspect: system.tables and system.columns, two queries whatever the number of tables.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from clickhouse_driver import Client, errors  # type: ignore[import-untyped]

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
from .http_stages import tls_context
from .reach import Deadline, NotTheServer, connect_and_greet, tcp_connect

# The driver logs every failed connect as a warning with a traceback; the connector reports it itself.
logging.getLogger("clickhouse_driver").setLevel(logging.ERROR)

APPLICATION_NAME = "datasource-control-plane"
PING = b"\x04"  # the client packet type Ping: refused before Hello with an Exception packet
EXCEPTION_PACKET = 2
MAX_PROBE_ANSWER = 65536  # an Exception packet with the server's stack trace is a few kB
SYSTEM_DATABASES = ("system", "INFORMATION_SCHEMA", "information_schema")
VIEW_ENGINES = ("View", "MaterializedView", "LiveView", "WindowView")
AUTH_FAILED = (516, 192, 193, 194)  # AUTHENTICATION_FAILED; older servers: UNKNOWN_USER, WRONG/REQUIRED_PASSWORD
DRIVER_ERRORS = (errors.Error, OSError, EOFError)
NO_TLS = ("The server does not support TLS on port {port}, but TLS is required (secure is on): use the server's "
          "TLS port (9440 by default) or turn secure off.")

# Parameters (substituted by the driver): %(system)s the skipped databases, %(tables)s / %(columns)s the caps.
# ``.inner`` tables are a materialized view's storage, listed as the view itself.
TABLES_SQL = """
SELECT database, name, engine FROM system.tables
WHERE database NOT IN %(system)s AND is_temporary = 0 AND NOT startsWith(name, '.inner')
ORDER BY database, name LIMIT %(tables)s
"""
# Rows of one table come in column order (system.columns of older servers has no ``position``).
COLUMNS_SQL = """
SELECT database, table, name, type FROM system.columns
WHERE (database, table) IN (
    SELECT database, name FROM system.tables
    WHERE database NOT IN %(system)s AND is_temporary = 0 AND NOT startsWith(name, '.inner')
    ORDER BY database, name LIMIT %(tables)s)
LIMIT %(columns)s BY database, table
"""
CATALOGUE_PARAMS = {"system": SYSTEM_DATABASES, "tables": MAX_TABLES, "columns": MAX_COLUMNS}

T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """Where and how to connect, from the source's connection settings."""

    host: str
    port: int
    secure: bool
    ca_pem: str
    database: str
    user: str

    @classmethod
    def of(cls, config: ConnectionConfig) -> Target:
        c = config.connection
        secure = c.get("secure") is not False
        port = c.get("port") or (9440 if secure else 9000)
        return cls(check_host_syntax(c.get("host") or "", port), port, secure, c.get("ca_certificate") or "",
                   c.get("database") or "default", c.get("username") or "default")


def exception_packet(data: bytes) -> bool | None:
    """Judge: the bytes start a native-protocol Exception packet (type, UInt32 code, ``...Exception`` name)."""
    if not data:
        return None
    if data[0] != EXCEPTION_PACKET:
        return False
    if len(data) < 6:
        return None
    length = data[5]
    if not 0 < int.from_bytes(data[1:5], "little") < 100_000 or not 0 < length < 0x80:
        return False
    if len(data) < 6 + length:
        return None
    name = data[6 : 6 + length]
    return name.isascii() and name.decode().isprintable() and name.endswith(b"Exception")


def probe(ip: str, port: int, timeout: float, host: str, secure: bool) -> None:
    """Stage tcp: only an Exception packet answering a lone Ping proves a ClickHouse server is there."""

    def greet(sock: socket.socket, deadline: Deadline) -> bool:
        stream = sock
        if secure:
            sock.settimeout(max(deadline.remaining(), 0.001))
            try:
                stream = tls_context(verify=False).wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, OSError):
                if _answers_plain(ip, port, deadline, host):
                    raise ConnectorError("tls", NO_TLS.format(port=port)) from None
                raise NotTheServer("no TLS") from None
        stream.settimeout(max(deadline.remaining(), 0.001))
        stream.sendall(PING)
        data = b""
        while (verdict := exception_packet(data)) is not True:
            if verdict is False or len(data) > MAX_PROBE_ANSWER or deadline.remaining() <= 0:
                raise NotTheServer("not a ClickHouse answer")
            stream.settimeout(max(deadline.remaining(), 0.001))
            chunk = stream.recv(4096)
            if not chunk:
                raise NotTheServer("closed")
            data += chunk
        stream.close()
        return True

    sock, _ = connect_and_greet(ip, port, timeout, host, greet)
    sock.close()


def _answers_plain(ip: str, port: int, deadline: Deadline, host: str) -> bool:
    """Whether the port answers the Ping probe in plain text on a new connection (after a failed TLS handshake)."""
    if deadline.remaining() <= 0:
        return False
    try:
        probe(ip, port, deadline.remaining(), host, False)
    except ConnectorError:
        return False
    return True


def verify_tls(ip: str, port: int, timeout: float, target: Target) -> None:
    """Stage tls: a handshake verifying the chain (system CAs or the source's CA) and the host name."""
    try:
        context = tls_context(target.ca_pem)
    except (ssl.SSLError, ValueError):
        raise ConnectorError("tls", "The CA certificate is not a valid PEM certificate.") from None
    sock = tcp_connect(ip, port, timeout, target.host)
    try:
        sock.settimeout(timeout)
        context.wrap_socket(sock, server_hostname=target.host).close()
    except ssl.SSLCertVerificationError as exc:
        reason = str(exc.verify_message or "unknown reason").rstrip(".")
        raise ConnectorError("tls", f"The server's certificate could not be verified: {reason}.") from None
    except (ssl.SSLError, OSError):
        raise ConnectorError("tls", "The TLS handshake with the server failed.") from None
    finally:
        sock.close()


@contextmanager
def ca_file(target: Target) -> Iterator[str | None]:
    """The CA bundle path the driver loads: the source's CA in a private temp file, else the system's."""
    if not target.secure:
        yield None
        return
    if not target.ca_pem:
        yield ssl.get_default_verify_paths().cafile  # None: the driver's default (certifi)
        return
    with tempfile.TemporaryDirectory(prefix="chtls-") as tmp:
        path = Path(tmp) / "ca.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(target.ca_pem)
        yield str(path)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", "") or exc).strip().splitlines()
    line = text[0] if text else ""
    return line.split(" Stack trace:", 1)[0]


def classify(
    exc: BaseException, config: ConnectionConfig, target: Target, stage: str, seconds: float
) -> ConnectorError:
    """Our own message, at the right stage, for a driver or socket error."""
    code = getattr(exc, "code", None)
    if isinstance(exc, errors.ServerException):
        if code in AUTH_FAILED:
            return ConnectorError("auth", f"Authentication failed for user '{target.user}'.")
        if code == 195:
            return ConnectorError("auth", f"The server does not accept user '{target.user}' from this address.")
        if code == 81:
            return ConnectorError("database", f"Database '{target.database}' does not exist.")
        if code == 291:
            return ConnectorError("database", f"Database '{target.database}' is not accessible to this user.")
        if code in (497, 164):
            return ConnectorError(stage, "Permission denied while reading the database catalogue.")
        if code == 159:
            return ConnectorError(stage, f"The server did not answer within {seconds:g} seconds.")
        detail = sanitize(_first_line(exc), config.secrets)
        message = f"The server refused stage {stage} (error {code})."
        return ConnectorError(stage, message + (f" {detail}" if detail else ""))
    if isinstance(exc, TimedOut | errors.SocketTimeoutError | TimeoutError):
        return ConnectorError(stage, f"The server did not answer within {seconds:g} seconds.")
    if "CERTIFICATE_VERIFY_FAILED" in str(exc) or isinstance(exc, ssl.SSLCertVerificationError):
        return ConnectorError("tls", "The server's certificate could not be verified.")
    if isinstance(exc, errors.UnexpectedPacketFromServerError):
        return ConnectorError(stage, f"The server answered stage {stage} with an unexpected packet.")
    return ConnectorError(stage, f"The server closed the connection during stage {stage}.")


class ClickHouseConnector(Connector):
    """Stages: resolve, tcp, tls (when ``secure``), auth, database; introspect over the same session."""

    def __init__(self, key: str):
        self.key = key

    def test(self, config: ConnectionConfig) -> TestResult:
        """Run resolve, tcp, [tls], auth and database, stopping at the first failure."""
        return self._run(config, introspect=False)[0]

    def test_and_introspect(self, config: ConnectionConfig) -> TestResult:
        """The test, then the introspection over the same session (stage introspect; ``tables`` None if that
        failed: the refresh that follows tries on its own and records why)."""
        result, _ = self._run(config, introspect=True)
        return result

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """Tables and views with columns of every user database; raises ``ConnectorError``."""
        result, error = self._run(config, introspect=True)
        if not result.ok:
            raise ConnectorError(result.stage or "tcp", result.message)
        if error is not None or result.tables is None:
            raise error or ConnectorError("introspect", "The schema could not be read.")
        return result.tables

    def _run(self, config: ConnectionConfig, *, introspect: bool) -> tuple[TestResult, ConnectorError | None]:
        timeout = float(config.connect_timeout)
        tables: list[TableInfo] | None = None
        with StageRunner(config.secrets) as runner, ExitStack() as stack:

            def resolve() -> tuple[Target, str]:
                target = Target.of(config)
                return target, resolve_checked(target.host, target.port, timeout)

            target, ip = runner.run("resolve", resolve)
            scope = stack.enter_context(egress_scope(timeout, only=(target.host,)))
            scope.pin(target.host, ip)
            runner.run("tcp", lambda: probe(ip, target.port, timeout, target.host, target.secure))
            if target.secure:
                runner.run("tls", lambda: verify_tls(ip, target.port, timeout, target), "The certificate is valid.")
            cafile = stack.enter_context(ca_file(target))
            client = runner.run("auth", lambda: self._login(config, target, scope, cafile))
            stack.callback(client.disconnect)
            runner.server_version = runner.run("database", lambda: self._check(client, config, target))
            if introspect:
                tables = runner.optional("introspect", lambda: self._catalogue(client, config, target),
                                         lambda found: f"{len(found)} tables and views.")
        result = runner.result()
        result.tables = tables if result.ok else None
        return result, runner.optional_failure

    def _login(self, config: ConnectionConfig, target: Target, scope: EgressScope, cafile: str | None) -> Client:
        """The driver's Hello exchange over a connection to the pinned address."""
        seconds = config.connect_timeout
        client = Client(
            host=target.host, port=target.port, database=target.database, user=target.user,
            password=config.secrets.get("password") or "", client_name=APPLICATION_NAME,
            connect_timeout=seconds, send_receive_timeout=seconds, sync_request_timeout=seconds,
            secure=target.secure, verify=True, check_hostname=True, ca_certs=cafile,
            server_hostname=target.host if target.secure else None, disable_reconnect=True,
        )  # fmt: skip
        try:
            call_bounded(client.connection.connect, seconds + 1, scope, late=lambda _: client.disconnect())
        except (*DRIVER_ERRORS, TimedOut) as exc:
            client.disconnect()
            raise scope.blocked_error() or classify(exc, config, target, "auth", seconds) from None
        return client

    def _check(self, client: Client, config: ConnectionConfig, target: Target) -> str:
        """One query in the session (the database itself was accepted in the Hello); the server version."""
        seconds = config.connect_timeout
        try:
            rows = call_bounded(lambda: client.execute("SELECT version()"), seconds + 1)
        except (*DRIVER_ERRORS, TimedOut) as exc:
            raise classify(exc, config, target, "database", seconds) from None
        return f"ClickHouse {rows[0][0]}"[:255]

    def _catalogue(self, client: Client, config: ConnectionConfig, target: Target) -> list[TableInfo]:
        """Two catalogue queries: tables (up to MAX_TABLES), then their columns (up to MAX_COLUMNS each)."""
        seconds = float(config.query_timeout)

        def fetch() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
            with client.connection.timeout_setter(seconds):
                return client.execute(TABLES_SQL, CATALOGUE_PARAMS), client.execute(COLUMNS_SQL, CATALOGUE_PARAMS)

        try:
            table_rows, column_rows = call_bounded(fetch, seconds + config.connect_timeout)
        except (*DRIVER_ERRORS, TimedOut) as exc:
            raise classify(exc, config, target, "introspect", seconds) from None
        tables: dict[tuple[str, str], TableInfo] = {}
        for database, name, engine in table_rows:
            kind = "view" if engine in VIEW_ENGINES else "table"
            tables[(database, name)] = TableInfo(schema=database, name=name, kind=kind, columns=[])
        for database, table_name, column, data_type in column_rows:
            table = tables.get((database, table_name))
            if table is not None:  # a table created between the two queries is left for the next refresh
                nullable = data_type.startswith(("Nullable(", "LowCardinality(Nullable("))
                table.columns.append(ColumnInfo(column, data_type, nullable, len(table.columns) + 1))
        return list(tables.values())
