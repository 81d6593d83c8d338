"""Firebolt connector on firebolt-sdk, the vendor's Python SDK (DB-API over Firebolt's REST protocol).

It sends what ``firebolt.db.connect(auth=ClientCredentials(...), account_name, database,
engine_name, api_endpoint)`` sends, through the SDK's own client, connection and cursor classes:

1. ``POST <auth>/oauth/token`` (client_credentials) -- inside the SDK's httpx auth flow;
2. ``GET <api>/web/v3/account/<account>/engineUrl`` -> the system engine URL (a response-supplied host);
3. ``POST <system engine>/?output_format=JSON_Compact`` with ``USE DATABASE "<db>"``, then
   ``USE ENGINE "<engine>"``, whose ``Firebolt-Update-Endpoint`` header moves the cursor to the
   account's engine (another response-supplied host);
4. ``SELECT VERSION()``, with a ``schema`` a look-up of it in ``information_schema.schemata`` (a schema that
   does not exist fails stage database, as it does for Snowflake, Trino and Databricks), and the one
   catalogue query on that engine.

``connect()`` itself is not called: it hard-codes 60-second timeouts with no read timeout, keeps
an in-process cache keyed by the secret, and derives the token host as ``id.<rest of the API
host>``, which for an IP-literal endpoint (a proxy, the tests' stand-in) names no host at all. So
the timeouts come from ``connection_timeout``, nothing is cached (no token file under the user's
data directory either), the token is requested from the SDK's ``id.`` host for a named endpoint
and from the endpoint itself for an IP literal, and every host -- token host, system engine,
engine -- is looked up inside the test's egress scope.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import ssl
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar
from uuid import uuid4

import httpx
from firebolt.client import ClientV2
from firebolt.client.auth import ClientCredentials
from firebolt.db import Connection, Cursor
from firebolt.db.cursor import CursorV2
from firebolt.utils.exception import (
    AuthenticationError,
    AuthorizationError,
    FireboltStructuredError,
    OperationalError,
    QueryTimeoutError,
)
from firebolt.utils.urls import GATEWAY_HOST_BY_ACCOUNT_NAME
from firebolt.utils.util import get_auth_endpoint, parse_url_and_params

from .base import (
    MAX_COLUMNS,
    MAX_TABLES,
    ColumnInfo,
    ConnectionConfig,
    ConnectorError,
    SessionConnector,
    StageRunner,
    TableInfo,
    TestResult,
    sanitize,
)
from .egress import connect_failed_message
from .guard import EgressScope, TimedOut, call_bounded, egress_scope
from .http_stages import USER_AGENT, Endpoint, check_transport, parse_endpoint, reach_http, tls_context

T = TypeVar("T")
# The SDK logs every statement at DEBUG and raw server bodies at ERROR; failures are reported by us.
logging.getLogger("firebolt").setLevel(logging.CRITICAL)
DEFAULT_ENDPOINT = "https://api.app.firebolt.io"
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TRANSPORT_ERRORS = (TimedOut, httpx.TransportError, QueryTimeoutError)

#: One catalogue query whatever the number of tables: every column with its table's type.
CATALOGUE_SQL = (
    "SELECT c.table_schema, c.table_name, t.table_type, c.column_name, c.data_type, c.is_nullable, "
    "c.ordinal_position FROM information_schema.columns AS c JOIN information_schema.tables AS t "
    "ON t.table_catalog = c.table_catalog AND t.table_schema = c.table_schema AND t.table_name = c.table_name "
    "WHERE c.table_catalog = {catalog} AND {schema} "
    "ORDER BY c.table_schema, c.table_name, c.ordinal_position"
)
#: Whether the configured schema exists in the database (and the service account may see it).
SCHEMA_SQL = ("SELECT COUNT(*) FROM information_schema.schemata "
              "WHERE catalog_name = {catalog} AND schema_name = {schema}")


def literal(value: str) -> str:
    """A SQL string literal (quotes doubled; control characters refused earlier)."""
    return "'" + value.replace("'", "''") + "'"


def identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def auth_url(endpoint: Endpoint) -> str:
    """The token endpoint: the SDK's rule (``api.x.y`` -> ``id.x.y``) for a named host, else the endpoint."""
    try:
        ipaddress.ip_address(endpoint.host)
    except ValueError:
        if "." in endpoint.host:
            return str(get_auth_endpoint(httpx.URL(endpoint.base_url + endpoint.path)))
    return endpoint.base_url + endpoint.path


def _verify() -> ssl.SSLContext:
    """The system CAs, as the tls stage checks them; built once per CA setting (a CA store costs ~10 ms)."""
    return _context(os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", ""))


@lru_cache(maxsize=4)
def _context(cafile: str, capath: str) -> ssl.SSLContext:
    return tls_context()  # OpenSSL reads SSL_CERT_FILE / SSL_CERT_DIR itself; they only key the cache


class _Client(ClientV2):
    """The SDK's V2 client with our timeouts, no environment (proxies, netrc) and our token host."""

    def __init__(self, session: _Session, base_url: str = ""):
        super().__init__(
            auth=session.auth, account_name=session.account, api_endpoint=session.api_url, base_url=base_url,
            timeout=httpx.Timeout(session.seconds), trust_env=False, follow_redirects=False, verify=_verify(),
            headers={"User-Agent": USER_AGENT},
            event_hooks={"request": [session.sending], "response": [session.answered]},
        )
        self._auth_endpoint = httpx.URL(session.token_url)


class _Session:
    """One SDK session: the token, the system engine, then the account's engine (all in one egress scope)."""

    def __init__(self, config: ConnectionConfig, endpoint: Endpoint, scope: EgressScope):
        connection = config.connection
        self.scope = scope
        self.seconds = float(config.connect_timeout)
        self.endpoint = endpoint
        self.api_url = endpoint.base_url + endpoint.path
        self.token_url = auth_url(endpoint)
        self.account = str(connection.get("account_name") or "")
        self.database = str(connection.get("database") or "")
        self.engine = str(connection.get("engine_name") or "")
        self.schema = str(connection.get("schema") or "")
        # use_token_cache=False: the SDK would otherwise write the token under the user's data directory.
        self.auth = ClientCredentials(str(connection.get("client_id") or ""),
                                      config.secrets.get("client_secret") or "", use_token_cache=False)
        self.auth._user_agent = USER_AGENT  # not the SDK's stack-sniffed client list
        self.last: tuple[str, int] = (endpoint.host, endpoint.port)
        self.heard: set[tuple[str, int]] = set()
        self.step = ""
        self.clients: list[_Client] = []
        self.connection: Connection | None = None
        self.cursor: Cursor | None = None

    # -- httpx event hooks: which host a failure belongs to, and whether it ever answered ----------
    def sending(self, request: httpx.Request) -> None:
        self.last = (request.url.host, request.url.port or (443 if request.url.scheme == "https" else 80))
        if request.url.scheme == "http":  # the token or secret would travel in clear: private addresses only
            endpoint = Endpoint("http", *self.last)
            check_transport(endpoint, self.scope.address_for(*self.last))

    def answered(self, response: httpx.Response) -> None:
        self.heard.add(self.last)

    def client(self, base_url: str = "") -> _Client:
        client = _Client(self, base_url)
        self.clients.append(client)
        return client

    def system_engine(self) -> tuple[str, dict[str, str]]:
        """Stage auth: the token (the SDK's auth flow) and the account's system engine URL."""
        response = self.client(self.api_url).get(GATEWAY_HOST_BY_ACCOUNT_NAME.format(account_name=self.account))
        if response.status_code == 404:
            raise ConnectorError("database", f"The account '{self.account}' does not exist or this service "
                                             "account has no access to it.")
        if response.status_code in (401, 403):
            raise ConnectorError("auth", f"The service account may not use the account '{self.account}'.")
        if response.status_code != 200:
            raise ConnectorError("auth", f"The API endpoint answered HTTP {response.status_code} to the "
                                         "engine URL lookup.")
        try:
            url, params = parse_url_and_params(str(response.json()["engineUrl"]))
            target = httpx.URL(url)
        except (ValueError, KeyError, TypeError, httpx.InvalidURL):
            raise ConnectorError("auth", "The API endpoint did not return an engine URL.") from None
        if target.scheme not in ("http", "https") or not target.host or (
                target.scheme == "http" and self.endpoint.tls):
            raise ConnectorError("database", "The account's engine URL is not an https:// URL; the token "
                                             "is not sent there.")
        return url, params

    def execute(self, step: str, sql: str, seconds: float | None = None) -> list[list[Any]]:
        """One statement, sent as is (never split or rewritten by the SDK's parser)."""
        if self.cursor is None:
            raise ConnectorError("database", "No session with the engine.")
        self.step = step
        self.cursor.execute(sql, skip_parsing=True, timeout_seconds=seconds)
        self.heard.add(self.last)
        return self.cursor.fetchall() if self.cursor.description else []

    def open(self, url: str, params: dict[str, str]) -> str:
        """Stage database: USE DATABASE and USE ENGINE on the system engine, then ask the engine its version."""
        for name, label in ((self.database, "database"), (self.engine, "engine"), (self.schema, "schema")):
            if CONTROL.search(name):
                raise ConnectorError("database", f"The {label} name contains control characters.")
        self.connection = Connection(url, None, self.client(), CursorV2, self.api_url, params, uuid4().hex)
        self.cursor = self.connection.cursor()
        if self.database:
            self.execute("database", f"USE DATABASE {identifier(self.database)}")
        if self.engine:
            self.execute("engine", f"USE ENGINE {identifier(self.engine)}")
        rows = self.execute("version", "SELECT VERSION()")
        version = str(rows[0][0]) if rows and rows[0] else ""
        if self.schema:
            found = self.execute("schema", SCHEMA_SQL.format(catalog=literal(self.database),
                                                             schema=literal(self.schema)))
            if not found or not found[0] or not found[0][0]:
                raise ConnectorError("database", self._schema_missing())
        return f"Firebolt {version}".strip()[:255]

    def _schema_missing(self) -> str:
        return (f"The schema '{self.schema}' does not exist in database '{self.database}' or the service account "
                "cannot use it.")

    def catalogue(self, seconds: float) -> list[TableInfo]:
        """Stage introspect: tables and views with their columns, from one query, bounded."""
        schema = f"c.table_schema = {literal(self.schema)}" if self.schema else \
            "c.table_schema <> 'information_schema'"
        rows = self.execute("catalogue", CATALOGUE_SQL.format(catalog=literal(self.database), schema=schema), seconds)
        tables: dict[tuple[str, str], TableInfo] = {}
        for table_schema, name, table_type, column, data_type, nullable, _ in rows:
            key = (str(table_schema), str(name))
            table = tables.get(key)
            if table is None:
                if len(tables) >= MAX_TABLES:
                    break
                kind = "view" if str(table_type).upper() == "VIEW" else "table"
                table = tables[key] = TableInfo(schema=key[0], name=key[1], kind=kind, columns=[])
            if len(table.columns) < MAX_COLUMNS:
                table.columns.append(ColumnInfo(str(column), str(data_type), _nullable(nullable),
                                                len(table.columns) + 1))
        return list(tables.values())

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()  # closes its cursor and client
        for client in self.clients:
            client.close()

    # -- errors ------------------------------------------------------------------------------------
    def failure(self, exc: BaseException, stage: str, seconds: float, secrets: dict[str, str]) -> ConnectorError:
        """The driver's failure as a stage and a message of ours (server text only from Firebolt's JSON errors)."""
        blocked = self.scope.blocked_error()
        if blocked is not None:
            return blocked
        if isinstance(exc, ConnectorError):
            return exc
        host, port = self.last
        reason = _certificate_error(exc)
        if reason:
            return ConnectorError("tls", f"The certificate of {host} could not be verified: {reason}.")
        if isinstance(exc, TRANSPORT_ERRORS):
            if (host, port) not in self.heard:  # never answered: reads like a closed port
                return ConnectorError("tcp", connect_failed_message(host, port))
            return ConnectorError(stage, f"No answer from {host}:{port} within {seconds:g} seconds.")
        if isinstance(exc, AuthorizationError):
            return ConnectorError("auth", "The client ID or client secret was refused.")
        if isinstance(exc, AuthenticationError):
            status = getattr(getattr(exc.__cause__, "response", None), "status_code", None)
            if status == 403:
                return ConnectorError("auth", "The client ID or client secret was refused.")
            return ConnectorError("auth", f"The token endpoint at {host} did not issue a token"
                                  + (f" (HTTP {status})." if status else "."))
        if stage == "auth":  # the token endpoint answered, but not with a token
            return ConnectorError("auth", f"The token endpoint at {host} did not issue a token.")
        detail = sanitize(_firebolt_error(exc), secrets)
        suffix = f" The server said: {detail}" if detail else ""
        messages = {
            "database": f"The database '{self.database}' does not exist or the service account cannot use it.",
            "engine": f"The engine '{self.engine}' does not exist, is not running, or the service account "
                      "cannot use it.",
            "version": f"The engine '{self.engine}' did not answer a query.",
            "schema": self._schema_missing(),
            "catalogue": "The catalogue query failed.",
        }
        return ConnectorError(stage, messages.get(self.step, f"Connection failed at stage {stage}.") + suffix)


def _nullable(value: Any) -> bool:
    return value is True or value == 1 or str(value).upper() in ("YES", "TRUE", "1")


def _certificate_error(exc: BaseException) -> str:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or "not trusted")
        seen = seen.__cause__ or seen.__context__
    return ""


def _firebolt_error(exc: BaseException) -> str:
    """The first description of Firebolt's structured (JSON) error, if that is what the engine answered."""
    errors: Any = None
    if isinstance(exc, FireboltStructuredError):
        errors = exc.errors
    elif isinstance(exc, OperationalError):  # HTTP 500: "Error executing query:\n<body>"
        body = str(exc).partition("\n")[2]
        try:
            errors = json.loads(body).get("errors")
        except (ValueError, AttributeError):
            return ""
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("description") or "")
    return ""


class FireboltConnector(SessionConnector):
    """Stages: resolve, tcp, [tls] (the API endpoint), auth (token, account), database (database,
    engine), introspect."""

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        result = self.run(config, introspect=True)
        if not result.ok or result.tables is None:
            raise ConnectorError(result.stage or "introspect", result.message)
        return result.tables

    def run(self, config: ConnectionConfig, *, introspect: bool) -> TestResult:
        seconds = float(config.connect_timeout)
        tables: list[TableInfo] | None = None
        with StageRunner(config.secrets) as runner, egress_scope(seconds) as scope:
            endpoint = _endpoint(runner, config)
            reach_http(runner, endpoint, seconds, scope)
            session = _Session(config, endpoint, scope)
            try:
                def bounded(stage: str, fn: Callable[[], T], limit: float) -> Callable[[], T]:
                    def call() -> T:
                        try:
                            return call_bounded(fn, limit, scope)
                        except Exception as exc:
                            raise session.failure(exc, stage, limit, config.secrets) from None
                    return call

                url, params = runner.run("auth", bounded("auth", session.system_engine, seconds),
                                         "The service account received a token.")
                runner.server_version = runner.run("database", bounded(
                    "database", lambda: session.open(url, params), seconds))
                if introspect:
                    limit = float(config.query_timeout)
                    tables = runner.run("introspect", bounded(
                        "introspect", lambda: session.catalogue(limit), limit + 1))
            finally:
                session.close()
        result = runner.result()
        result.tables = tables if result.ok else None
        return result


def _endpoint(runner: StageRunner, config: ConnectionConfig) -> Endpoint:
    """The API endpoint (``endpoint_url`` or Firebolt's); a malformed one, or an account name that is
    not one path segment of the engine URL lookup, fails stage resolve before any packet."""
    try:
        if not ACCOUNT_NAME.fullmatch(str(config.connection.get("account_name") or "")):
            raise ConnectorError("resolve", "The account name may contain only letters, digits, '.', '_' and '-'.")
        return parse_endpoint(str(config.connection.get("endpoint_url") or DEFAULT_ENDPOINT))
    except ConnectorError as exc:
        failure = exc

    def fail() -> Endpoint:
        raise failure

    return runner.run("resolve", fail)
