"""Trino connector on the Trino project's own client (``trino``, over requests).

Every HTTP request of the client goes through one requests adapter bound to the configured
endpoint: it connects to the address the egress policy checked (or to an SSH tunnel's local end,
the bastion resolving the host) while TLS verifies, and ``Host`` names, the configured host. URLs
the server hands back (``nextUri``, redirects) are followed only when they name that same scheme,
host and port; anything else is refused before a socket opens. Lookups the client might still
make run inside ``egress_scope`` (the configured host only). A password is only ever sent over
TLS; the spooling protocol is never asked for (its segment URLs would be fetched outside the
adapter) and a spooled answer is refused; the client never retries.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import trino.dbapi
import trino.exceptions
from requests.adapters import HTTPAdapter
from trino.auth import BasicAuthentication
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool

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
from .guard import EgressScope, TimedOut, call_bounded, egress_scope
from .http_stages import Endpoint, probe_http, reach_http, tls_context
from .ssh import SSHTunnel, run_tunnel_stages

APPLICATION_NAME = "datasource-control-plane"
ENCODING_HEADER = "X-Trino-Query-Data-Encoding"  # asks for the spooling protocol: never sent
PLAIN_HTTP = "A password is only sent over TLS: set http_scheme to https (the password was not sent)."
CHECK_EVERY = 1000  # rows between two looks at the introspection deadline
T = TypeVar("T")

# Trino folds identifiers to lower case: information_schema holds the lower-case names.
SCHEMA_SQL = "SELECT schema_name FROM {catalog}.information_schema.schemata WHERE schema_name = {schema}"
#: One statement for the whole schema, whatever the number of tables.
INTROSPECT_SQL = (
    "SELECT t.table_name, t.table_type, c.column_name, c.data_type, c.is_nullable "
    "FROM {catalog}.information_schema.tables AS t "
    "LEFT JOIN {catalog}.information_schema.columns AS c "
    "ON c.table_schema = t.table_schema AND c.table_name = t.table_name AND c.table_schema = {schema} "
    "WHERE t.table_schema = {schema} "
    "ORDER BY t.table_name, c.ordinal_position"
)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class OffEndpoint(requests.exceptions.ConnectionError):
    """A URL from the server naming another scheme, host or port: never followed."""


class EndpointAdapter(HTTPAdapter):
    """Sends every request to one checked address (``address``:``port``) as ``endpoint``.

    TLS: ``context`` verifies the certificate against ``endpoint.host`` (SNI too), whatever
    address the socket goes to; proxies from the environment or the client are ignored.
    """

    def __init__(self, endpoint: Endpoint, address: str, port: int, context: ssl.SSLContext | None):
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)
        self.endpoint = endpoint
        self.statuses: list[int] = []
        self.refused: list[str] = []
        self.spooled = False
        self.host_header = endpoint.base_url.split("://", 1)[1]
        self.pool: HTTPConnectionPool
        if endpoint.tls:
            self.pool = HTTPSConnectionPool(address, port, maxsize=1, ssl_context=context, cert_reqs="CERT_REQUIRED",
                                            server_hostname=endpoint.host)
        else:
            self.pool = HTTPConnectionPool(address, port, maxsize=1)

    def _check(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            parts, port = urlsplit(""), 0
        host = (parts.hostname or "").rstrip(".").lower()
        if (parts.scheme, host, port) != (self.endpoint.scheme, self.endpoint.host.lower(), self.endpoint.port):
            shown = f"[{host}]" if ":" in host else host
            self.refused.append(f"{parts.scheme or '?'}://{shown or '?'}:{port}"[:200])
            raise OffEndpoint("refused to follow a URL for another address")

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None,
                                        cert: Any = None) -> HTTPConnectionPool:
        self._check(request.url)
        return self.pool

    def get_connection(self, url: Any, proxies: Any = None) -> HTTPConnectionPool:
        self._check(str(url))
        return self.pool

    def cert_verify(self, conn: Any, url: Any, verify: Any, cert: Any) -> None:
        """The pool carries its own TLS context (the configured CA or the system's): nothing to add."""

    def request_url(self, request: Any, proxies: Any) -> str:
        return str(request.path_url)

    def close(self) -> None:
        super().close()
        self.pool.close()

    def send(self, request: Any, stream: bool = False, timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        request.headers["Host"] = self.host_header
        request.headers.pop(ENCODING_HEADER, None)
        response = super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=None)
        self.statuses.append(response.status_code)
        if response.ok and response.content[:1] == b"{":
            try:
                data = json.loads(response.content).get("data")
            except (ValueError, AttributeError):
                data = None
            if isinstance(data, dict):  # spooled segments name URLs outside this adapter
                self.spooled = True
                raise requests.exceptions.ConnectionError("spooled results are not accepted")
        return response


class TrinoSession:
    """The client over an ``EndpointAdapter``: every call bounded in time and its failure classified."""

    def __init__(self, config: ConnectionConfig, endpoint: Endpoint, address: str, port: int, scope: EgressScope):
        self.config = config
        self.endpoint = endpoint
        self.scope = scope
        self.user = str(config.connection.get("username") or "")
        self.catalog = str(config.connection.get("catalog") or "")
        self.schema = str(config.connection.get("schema") or "")
        self.password = config.secrets.get("password") or ""
        self.timeout = float(config.connect_timeout)
        self.where = f"{endpoint.host}:{endpoint.port}"
        context = tls_context(str(config.connection.get("ca_certificate") or "")) if endpoint.tls else None
        self.adapter = EndpointAdapter(endpoint, address, port, context)
        self.http = requests.Session()
        self.http.trust_env = False  # no proxies, CA bundles or .netrc from the environment
        self.http.mount("https://", self.adapter)
        self.http.mount("http://", self.adapter)
        self.conn: Any = None

    def close(self) -> None:
        self.http.close()

    def login(self) -> str:
        """Stage auth: the first statement (``SELECT version()``); returns the server version."""
        if not self.user:
            raise ConnectorError("auth", "A username is required.")
        if self.password and not self.endpoint.tls:
            raise ConnectorError("auth", PLAIN_HTTP)
        host = f"[{self.endpoint.host}]" if ":" in self.endpoint.host else self.endpoint.host
        self.conn = trino.dbapi.connect(
            host=host, port=self.endpoint.port, user=self.user, catalog=self.catalog or None,
            schema=self.schema or None, http_scheme=self.endpoint.scheme, source=APPLICATION_NAME,
            auth=BasicAuthentication(self.user, self.password) if self.password else None,
            max_attempts=1, request_timeout=self.timeout, http_session=self.http, encoding=None,
        )
        rows = self._bounded("auth", self.timeout, lambda: self._fetch("SELECT version()"))
        return f"Trino {rows[0][0]}"[:255] if rows and rows[0] else "Trino"

    def check_schema(self) -> None:
        """Stage database: the catalog and the schema exist and the user may see them."""
        if not self.catalog or not self.schema:
            raise ConnectorError("database", "A catalog and a schema are required.")
        sql = SCHEMA_SQL.format(catalog=quote_identifier(self.catalog), schema=quote_literal(self.schema.lower()))
        if not self._bounded("database", self.timeout, lambda: self._fetch(sql)):
            raise ConnectorError("database", self._schema_missing())

    def tables(self, seconds: float) -> list[TableInfo]:
        """Stage introspect: tables and views of the schema with their columns, one statement."""
        sql = INTROSPECT_SQL.format(catalog=quote_identifier(self.catalog), schema=quote_literal(self.schema.lower()))
        deadline = time.monotonic() + seconds
        return self._bounded("introspect", seconds + 1, lambda: self._read_tables(sql, deadline))

    def _fetch(self, sql: str) -> list[Any]:
        cursor = self.conn.cursor()
        cursor.execute(sql)
        return list(cursor.fetchall())

    def _read_tables(self, sql: str, deadline: float) -> list[TableInfo]:
        cursor = self.conn.cursor()
        cursor.execute(sql)
        tables: dict[str, TableInfo] = {}
        # Row by row: the client reads the next page only when this one is used up (one page ahead).
        for count, (name, table_type, column, data_type, nullable) in enumerate(iter(cursor.fetchone, None)):
            table = tables.get(name)
            if table is None:
                if len(tables) >= MAX_TABLES:  # the cap: stop reading, cancel the rest
                    with suppress(Exception):
                        cursor.cancel()
                    return list(tables.values())
                kind = "view" if str(table_type).upper() == "VIEW" else "table"
                table = tables[name] = TableInfo(schema=self.schema, name=str(name), kind=kind, columns=[])
            if column is not None and len(table.columns) < MAX_COLUMNS:
                table.columns.append(ColumnInfo(str(column), str(data_type), str(nullable).upper() == "YES",
                                                len(table.columns) + 1))
            if count % CHECK_EVERY == 0 and time.monotonic() > deadline:
                with suppress(Exception):
                    cursor.cancel()
                raise TimedOut("introspection deadline")
        return list(tables.values())

    def _schema_missing(self) -> str:
        return f"Schema '{self.schema}' does not exist in catalog '{self.catalog}' or is not accessible."

    def _bounded(self, stage: str, seconds: float, fn: Callable[[], T]) -> T:
        try:
            return call_bounded(fn, seconds, self.scope)
        except TimedOut:
            raise ConnectorError(stage, f"The Trino server at {self.where} did not answer within {seconds:g} "
                                        "seconds.") from None
        except ConnectorError:
            raise
        except Exception as exc:
            raise self._classify(exc, stage) from None

    def _classify(self, exc: Exception, stage: str) -> ConnectorError:
        """Our own message for every failure; driver text only sanitized."""
        if self.adapter.refused:
            return ConnectorError(stage, f"The server sent a URL for another address ({self.adapter.refused[0]}); "
                                         f"only {self.endpoint.base_url} is followed.")
        blocked = self.scope.blocked_error()
        if blocked is not None:
            return blocked
        if self.adapter.spooled:
            return ConnectorError(stage, "The server answered with spooled results, which are not accepted.")
        if isinstance(exc, trino.exceptions.TrinoQueryError):
            return self._query_error(exc, stage)
        status = self.adapter.statuses[-1] if self.adapter.statuses else 200
        if status == 401:
            message = (f"Authentication failed for user '{self.user}'." if self.password
                       else f"The server requires a password for user '{self.user}'.")
            return ConnectorError("auth", message)
        if status == 403:
            return ConnectorError("auth", f"The server refused user '{self.user}' (HTTP 403).")
        if status >= 300 or isinstance(exc, (ValueError, KeyError, TypeError)):
            return ConnectorError(stage, f"The server at {self.where} does not answer like a Trino coordinator"
                                         + (f" (HTTP {status})." if status >= 300 else "."))
        if isinstance(exc, (trino.exceptions.TrinoConnectionError, requests.exceptions.RequestException)):
            return ConnectorError(stage, f"The connection to the Trino server at {self.where} failed or timed out.")
        detail = sanitize(str(exc), self.config.secrets)
        return ConnectorError(stage, f"Connection failed at stage {stage}." + (f" {detail}" if detail else ""))

    def _query_error(self, exc: trino.exceptions.TrinoQueryError, stage: str) -> ConnectorError:
        name = str(exc.error_name or "")
        if name == "CATALOG_NOT_FOUND":
            return ConnectorError("database", f"Catalog '{self.catalog}' does not exist or is not accessible.")
        if name == "SCHEMA_NOT_FOUND":
            return ConnectorError("database", self._schema_missing())
        detail = sanitize(str(exc.message), self.config.secrets)
        if name in ("PERMISSION_DENIED", "ACCESS_DENIED"):
            return ConnectorError("database" if stage == "auth" else stage,
                                  f"User '{self.user}' may not read catalog '{self.catalog}'. {detail}".strip())
        return ConnectorError(stage, f"The statement failed ({name or 'error'}). {detail}".strip())


class TrinoConnector(Connector):
    """Stages: resolve, tcp, [ssh], [tls for https], auth, database; then introspect over the same session."""

    def __init__(self, key: str):
        self.key = key

    def test(self, config: ConnectionConfig) -> TestResult:
        """Run the stages in order, stopping at the first failure."""
        return self._run(config, introspect=False)[0]

    def test_and_introspect(self, config: ConnectionConfig) -> TestResult:
        """The test, then the introspection over the same session when it passed."""
        return self._run(config, introspect=True)[0]

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """Tables and views with columns of the configured schema; raises ``ConnectorError``."""
        result, error = self._run(config, introspect=True)
        if not result.ok:
            raise ConnectorError(result.stage or "tcp", result.message)
        if error is not None:
            raise error
        return result.tables or []

    def _run(self, config: ConnectionConfig, *, introspect: bool) -> tuple[TestResult, ConnectorError | None]:
        scheme = "http" if config.connection.get("http_scheme") == "http" else "https"
        host = str(config.connection.get("host") or "").strip()
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        endpoint = Endpoint(scheme, host, int(config.connection.get("port") or 443))
        tables: list[TableInfo] | None = None
        error: ConnectorError | None = None
        with StageRunner(config.secrets) as runner, ExitStack() as stack:
            scope = stack.enter_context(egress_scope(config.connect_timeout, only=(host,)))
            address, port = self._reach(runner, config, endpoint, scope, stack)
            session = TrinoSession(config, endpoint, address, port, scope)
            stack.callback(session.close)
            runner.server_version = runner.run("auth", session.login)
            runner.run("database", session.check_schema)
            if introspect:
                seconds = float(config.query_timeout)
                tables = runner.optional("introspect", lambda: session.tables(seconds),
                                         lambda found: f"{len(found)} tables and views.")
                error = runner.optional_failure
        result = runner.result()
        result.tables = tables if result.ok else None
        return result, error

    def _reach(self, runner: StageRunner, config: ConnectionConfig, endpoint: Endpoint, scope: EgressScope,
               stack: ExitStack) -> tuple[str, int]:
        """Stages resolve, tcp, [ssh], [tls]; returns the address and port the client connects to."""
        timeout = float(config.connect_timeout)
        ca_pem = str(config.connection.get("ca_certificate") or "")
        if not SSHTunnel.enabled(config):
            return reach_http(runner, endpoint, timeout, scope, ca_pem, credentials=False), endpoint.port
        tunnel = stack.enter_context(SSHTunnel(config))
        unverified = tls_context(verify=False) if endpoint.tls else None

        def probe(local: tuple[str, int]) -> None:  # an HTTP(S) server answers through the tunnel
            probe_http(Endpoint(endpoint.scheme, endpoint.host, local[1]), local[0], timeout, unverified)

        _, (address, port), _ = run_tunnel_stages(runner, tunnel, endpoint.host, endpoint.port, probe)
        scope.pin(address, address)  # the tunnel's local end, 127.0.0.1
        if endpoint.tls:
            local = Endpoint(endpoint.scheme, endpoint.host, port)
            runner.run("tls", lambda: probe_http(local, address, timeout, tls_context(ca_pem)),
                       "The certificate is valid.")
        return address, port
