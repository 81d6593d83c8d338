"""Snowflake connector on snowflake-connector-python 4.x, the vendor's own driver.

The endpoint is ``https://<account>.snowflakecomputing.com`` or the ``endpoint_url`` override
(private link, or a local emulator in the tests). ``reach_http`` resolves it once through the
egress policy, proves an HTTP(S) server answers there and verifies its certificate; the driver then
runs inside the same egress scope, so its own lookups (login, queries, result-chunk URLs the server
hands out) get the checked address or are refused. Driver calls run in ``call_bounded`` with
login/network/socket timeouts of ``connect_timeout``, a 1 s constant backoff, and the features that
would reach other hosts or threads off: platform detection (it probes cloud metadata addresses),
out-of-band telemetry, session keep-alive, prefetch threads (result batches are read in the calling
thread, under the scope). Plain ``http://`` endpoints are refused (stage tls, ``reach_http``) unless private and opened.

Certificate revocation: the 4.x driver's default (OCSP and CRL checks off) is kept. The chain and
host name are verified, by our ``tls`` stage and by the driver. Opting into fail-open OCSP would add
lookups to the CAs' responders and Snowflake's OCSP cache (the scope would check them too) with
their own 5-10 s timeouts and retries: a deployment whose egress does not reach them would see every
test time out, for a check that fails open anyway.

The session is not told the role, warehouse, database or schema at login (a login does not check
them); ``USE`` statements do, so an unknown one fails at stage ``database``. Introspection is one
``INFORMATION_SCHEMA.COLUMNS`` query joined with ``TABLES`` (and ``VIEWS``, which some emulators
keep apart) for the configured schema.

Password or key-pair login arguments: ``snowflake_auth``. The driver's log records, secrets masked:
``snowflake_logs``.
"""

from __future__ import annotations

import contextlib
import re
import ssl
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import snowflake.connector
from snowflake.connector.errors import Error as DriverError
from snowflake.connector.session_manager import ProxySessionManager, SessionManager

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
from .egress import check_host_syntax
from .guard import EgressScope, TimedOut, call_bounded, egress_scope
from .http_stages import Endpoint, parse_endpoint, reach_http
from .snowflake_auth import credentials
from .snowflake_logs import SCRUB, guard_driver_logs

T = TypeVar("T")
SUFFIX = ".snowflakecomputing.com"
ACCOUNT_RE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")  # unquoted identifiers (Snowflake upper-cases them)
QUOTED_RE = re.compile(r'"(?:[^"]|"")+"')
APPLICATION = "datasource_control_plane"
JWT_CODES = frozenset({390144, *range(394300, 394307)})
NOT_FOUND_CODES = frozenset({2003, 2043, 3001, 3013})  # does not exist / not authorized


def _without_environment(make_session: Callable[..., Any]) -> Callable[..., Any]:
    """The driver's sessions ignore proxies, netrc and CA bundles from the environment: a proxy
    would resolve the user's host itself, past the address the egress policy checked."""

    def make(self: Any, *, url: str | None = None) -> Any:
        session = make_session(self, url=url)
        session.trust_env = False
        return session

    return make


for _manager in (SessionManager, ProxySessionManager):
    _manager.make_session = _without_environment(_manager.make_session)  # type: ignore[method-assign]

COLUMNS_SQL = """
SELECT c.TABLE_SCHEMA, c.TABLE_NAME,
       COALESCE(t.TABLE_TYPE, CASE WHEN v.TABLE_NAME IS NOT NULL THEN 'VIEW' END) AS TABLE_TYPE,
       c.COLUMN_NAME, c.DATA_TYPE, c.IS_NULLABLE, c.ORDINAL_POSITION,
       c.CHARACTER_MAXIMUM_LENGTH, c.NUMERIC_PRECISION, c.NUMERIC_SCALE
FROM INFORMATION_SCHEMA.COLUMNS c
LEFT JOIN INFORMATION_SCHEMA.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
LEFT JOIN INFORMATION_SCHEMA.VIEWS v ON v.TABLE_SCHEMA = c.TABLE_SCHEMA AND v.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA {where} AND c.ORDINAL_POSITION <= %s
ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION
"""


def account_and_endpoint(config: ConnectionConfig) -> tuple[str, Endpoint]:
    """The validated account identifier and the endpoint (``endpoint_url`` or the account's host)."""
    account = str(config.connection.get("account") or "").strip()
    if account.lower().endswith(SUFFIX):
        account = account[: -len(SUFFIX)]
    if not account:
        raise ConnectorError("resolve", "An account identifier is required.")
    if len(account) > 200 or not ACCOUNT_RE.fullmatch(account):
        raise ConnectorError("resolve", "The account identifier may contain only letters, digits, '-', '_' "
                                        "and '.' between labels.")
    override = str(config.connection.get("endpoint_url") or "").strip()
    if override:
        endpoint = parse_endpoint(override)
        if endpoint.path:
            raise ConnectorError("resolve", "The endpoint URL must not have a path: give https://host[:port].")
        return account, endpoint
    host = check_host_syntax(f"{account.lower()}{SUFFIX}", 443)
    return account, Endpoint("https", host, 443)


def _ident(name: str) -> str:
    """A user-given object name as a Snowflake identifier: unquoted when plain, else quoted."""
    if IDENT_RE.fullmatch(name) or QUOTED_RE.fullmatch(name):
        return name
    return '"' + name.replace('"', '""') + '"'


def _backoff() -> Iterator[int]:
    """One second between the driver's retries, which end at its timeouts (the default waits up to 16 s)."""
    while True:
        yield 1


def _rows(cursor: Any) -> Iterator[tuple[Any, ...]]:
    """Rows of the last statement, batch after batch in this thread (chunk downloads stay under the scope)."""
    for batch in cursor.get_result_batches() or []:
        yield from batch


def _ssl_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _data_type(data_type: Any, length: Any, precision: Any, scale: Any) -> str:
    name = str(data_type or "")
    if name == "NUMBER" and precision is not None:
        return f"NUMBER({precision},{scale or 0})"
    if name == "TEXT" and length is not None:
        return f"VARCHAR({length})"
    return name


class _Session:
    """One test: its egress scope, endpoint, and the driver connection once logged in."""

    def __init__(self, config: ConnectionConfig, scope: EgressScope, account: str, endpoint: Endpoint):
        self.config, self.scope, self.account, self.endpoint = config, scope, account, endpoint
        self.conn: Any = None
        self.schema = ""  # the current schema as Snowflake names it (after USE SCHEMA)

    def call(self, fn: Callable[[], T], seconds: float, late: Callable[[T], object] | None = None) -> T:
        """``fn`` under the scope, bounded, with the config's secrets masked in the driver's logs."""

        def run() -> T:
            token = SCRUB.add(self.config.secrets)
            try:
                return fn()
            finally:
                SCRUB.remove(token)

        return call_bounded(run, seconds, self.scope, late)

    def kwargs(self) -> dict[str, Any]:
        c, timeout = self.config.connection, int(self.config.connect_timeout)
        params: dict[str, Any] = {
            "account": self.account, "user": str(c.get("username") or ""),
            "host": self.endpoint.host, "port": self.endpoint.port, "protocol": self.endpoint.scheme,
            "login_timeout": timeout, "network_timeout": timeout, "socket_timeout": timeout,
            "backoff_policy": _backoff, "platform_detection_timeout_seconds": 0.0,
            "client_session_keep_alive": False, "client_prefetch_threads": 1, "paramstyle": "pyformat",
            "application": APPLICATION,
            "session_parameters": {
                "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False, "CLIENT_TELEMETRY_ENABLED": False,
                "STATEMENT_TIMEOUT_IN_SECONDS": int(self.config.query_timeout),
                "STATEMENT_QUEUED_TIMEOUT_IN_SECONDS": int(self.config.query_timeout),
            },
        }
        params.update(credentials(self.config))
        return params

    def login(self) -> None:
        user = str(self.config.connection.get("username") or "")
        if not user:
            raise ConnectorError("auth", "A username is required.")
        params = self.kwargs()
        if "password" in params and not params["password"]:
            raise ConnectorError("auth", "A password is required.")
        seconds = float(self.config.connect_timeout)
        try:
            self.conn = self.call(lambda: snowflake.connector.connect(**params), seconds,
                                  late=lambda conn: conn.close())
        except TimedOut:
            raise ConnectorError("auth", f"The server did not answer the login within {seconds:g} seconds.") from None
        except Exception as exc:
            raise self._login_error(exc, user) from None
        finally:
            guard_driver_logs()

    def _login_error(self, exc: Exception, user: str) -> ConnectorError:
        code = getattr(exc, "errno", None) if isinstance(exc, DriverError) else None
        if isinstance(code, int) and 390000 <= code < 400000:  # Snowflake answered the login: it refused
            if code == 390100:
                return ConnectorError("auth", f"Authentication failed for user '{user}': incorrect username or "
                                              "password.")
            if code in JWT_CODES:
                return ConnectorError("auth", f"Key-pair authentication failed for user '{user}': the key is not "
                                              "the one registered for this user, or the account is wrong.")
            return ConnectorError("auth", f"Snowflake refused the login for user '{user}' (code {code})."
                                          f"{self._detail(exc)}")
        blocked = self.scope.blocked_error()
        if blocked is not None:
            return blocked
        if _ssl_failure(exc):
            return ConnectorError("tls", "The server's certificate could not be verified by the driver.")
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        return ConnectorError("auth", f"The server at {where} did not answer the Snowflake login.")

    def use_objects(self) -> str:
        """``USE`` the role, warehouse, database and schema; returns the server version."""
        c = self.config.connection
        cursor = self.conn.cursor()

        def use() -> tuple[Any, ...]:
            for kind in ("role", "warehouse", "database", "schema"):
                name = str(c.get(kind) or "").strip()
                if not name:
                    continue
                try:
                    cursor.execute(f"USE {kind.upper()} {_ident(name)}")
                except DriverError as exc:
                    raise self._object_error(kind, name, exc) from None
            cursor.execute("SELECT CURRENT_VERSION(), CURRENT_DATABASE(), CURRENT_SCHEMA()")
            return next(_rows(cursor), (None, None, None))

        version, database, schema = self._bounded("database", use, float(self.config.connect_timeout))
        if not database:
            raise ConnectorError("database", "No database is selected: set the database.")
        self.schema = str(schema or "")
        return f"Snowflake {version}"[:255]

    def _object_error(self, kind: str, name: str, exc: DriverError) -> ConnectorError:
        if getattr(exc, "errno", None) in NOT_FOUND_CODES:
            return ConnectorError("database", f"The {kind} '{name}' does not exist or is not authorized for this user.")
        return ConnectorError("database", f"Could not use the {kind} '{name}'.{self._detail(exc)}")

    def _bounded(self, stage: str, fn: Callable[[], T], seconds: float) -> T:
        try:
            return self.call(fn, seconds)
        except ConnectorError:
            raise
        except TimedOut:
            raise ConnectorError(stage, f"Snowflake did not answer within {seconds:g} seconds.") from None
        except DriverError as exc:
            raise ConnectorError(stage, f"The query failed at stage {stage}.{self._detail(exc)}") from None
        except Exception:
            failed = ConnectorError(stage, f"The connection failed at stage {stage}.")
            raise self.scope.blocked_error() or failed from None

    def _detail(self, exc: BaseException) -> str:
        """The driver's own message (without its code prefix), secrets masked; '' or ' <text>'."""
        detail = sanitize(str(getattr(exc, "raw_msg", "") or ""), self.config.secrets)
        return f" {detail}" if detail else ""

    def catalogue(self) -> list[TableInfo]:
        """One INFORMATION_SCHEMA query: tables and views of the schema (all schemas when none is set)."""
        configured = str(self.config.connection.get("schema") or "").strip()
        schema = (self.schema or configured) if configured else ""
        cursor = self.conn.cursor()

        def query() -> list[TableInfo]:
            if schema:
                cursor.execute(COLUMNS_SQL.format(where="= %s"), (schema, MAX_COLUMNS))
            else:
                cursor.execute(COLUMNS_SQL.format(where="<> 'INFORMATION_SCHEMA'"), (MAX_COLUMNS,))
            tables: dict[tuple[str, str], TableInfo] = {}
            for row in _rows(cursor):
                schema_name, name, table_type, column, data_type, nullable, _ordinal, length, precision, scale = row
                table = tables.get((schema_name, name))
                if table is None:
                    if len(tables) >= MAX_TABLES:
                        break
                    kind = "view" if "VIEW" in str(table_type or "").upper() else "table"
                    table = tables[(schema_name, name)] = TableInfo(schema_name, name, kind, [])
                if len(table.columns) < MAX_COLUMNS:
                    table.columns.append(ColumnInfo(column, _data_type(data_type, length, precision, scale),
                                                    str(nullable).upper() == "YES", len(table.columns) + 1))
            return list(tables.values())

        return self._bounded("introspect", query, float(self.config.query_timeout))

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            with contextlib.suppress(Exception):  # a session that cannot be closed expires on its own
                self.call(lambda: conn.close(retry=False), float(self.config.connect_timeout))


class SnowflakeConnector(Connector):
    """Stages: resolve, tcp, tls (https), auth, database; introspect over the same session."""

    def __init__(self, key: str):
        self.key = key

    def test(self, config: ConnectionConfig) -> TestResult:
        return self._run(config, introspect=False)[0]

    def test_and_introspect(self, config: ConnectionConfig) -> TestResult:
        result, tables, _error = self._run(config, introspect=True)
        result.tables = tables if result.ok else None
        return result

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        result, tables, error = self._run(config, introspect=True)
        if not result.ok:
            raise ConnectorError(result.stage or "tcp", result.message)
        if error is not None or tables is None:
            raise error or ConnectorError("introspect", "The schema could not be read.")
        return tables

    def _run(
        self, config: ConnectionConfig, *, introspect: bool
    ) -> tuple[TestResult, list[TableInfo] | None, ConnectorError | None]:
        guard_driver_logs()
        tables: list[TableInfo] | None = None
        error: ConnectorError | None = None
        timeout = float(config.connect_timeout)
        with StageRunner(config.secrets) as runner, egress_scope(timeout) as scope:
            try:
                account, endpoint = account_and_endpoint(config)
            except ConnectorError as exc:
                runner.stop(exc.stage, exc)
            reach_http(runner, endpoint, timeout, scope)
            session = _Session(config, scope, account, endpoint)
            try:
                runner.run("auth", session.login, "Logged in.")
                runner.server_version = runner.run("database", session.use_objects)
                if introspect:
                    tables = runner.optional("introspect", session.catalogue,
                                             lambda found: f"{len(found)} tables and views.")
                    error = runner.optional_failure
            finally:
                session.close()
        return runner.result(), tables, error
