"""Databricks connector on the SQL Statement Execution REST API 2.0, spoken with ``requests``.

Why not databricks-sql-connector: it speaks Thrift, pulls in heavy dependencies, and brings its
own retry and OAuth machinery that would have to be pinned and disabled; the statement API is
three JSON endpoints (execute, poll, fetch a result chunk) we can bound and scrub ourselves.

Every call goes to the endpoint checked by the egress policy (``reach_http`` pins the address in
the scope; the session may reach no other host), never follows a redirect (a 3xx is a failure
saying "redirected"), never reads proxies or ``.netrc`` from the environment, and never retries.
Statements run with ``disposition INLINE`` / ``format JSON_ARRAY``; a statement still PENDING or
RUNNING when its stage's time is up is cancelled. Introspection is one statement on
``<catalog>.information_schema`` (tables joined with columns), whatever the number of tables.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

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
from .egress import resolve_checked
from .guard import EgressScope, bounded_stage, egress_scope
from .http_stages import USER_AGENT, Endpoint, check_transport, parse_endpoint, reach_http

STATEMENTS = "/api/2.0/sql/statements"
#: ``/sql/1.0/warehouses/<id>`` (``endpoints`` is the older name of the same path): the id is the last segment.
WAREHOUSE_PATH = re.compile(r"^/?sql/1\.0/(?:warehouses|endpoints)/([A-Za-z0-9]{1,64})/?$")
UNFINISHED = ("PENDING", "RUNNING")
NOT_FOUND = ("SCHEMA_NOT_FOUND", "CATALOG_NOT_FOUND", "NO_SUCH_CATALOG", "ENDPOINT_NOT_FOUND")
VIEW_TYPES = ("VIEW", "MATERIALIZED_VIEW")
BYTE_LIMIT = 20 * 1024 * 1024  # INLINE results abort past 25 MiB; truncated at this size instead
MAX_CHUNKS = 1000  # result chunks followed for one statement
CANCEL_RESERVE = 0.5  # seconds of a stage kept for cancelling a statement that did not finish
INTROSPECT_SQL = """
WITH t AS (
  SELECT table_schema, table_name, table_type FROM {catalog}.information_schema.tables
  WHERE table_schema = :schema ORDER BY table_name LIMIT {max_tables}
)
SELECT t.table_name, t.table_type, c.column_name, c.full_data_type, c.is_nullable, c.ordinal_position
FROM t LEFT JOIN {catalog}.information_schema.columns AS c
  ON c.table_schema = t.table_schema AND c.table_name = t.table_name AND c.ordinal_position < {max_columns}
ORDER BY t.table_name, c.ordinal_position
"""

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """The workspace to reach and what to select there."""

    endpoint: Endpoint
    warehouse_id: str
    catalog: str
    schema: str

    @property
    def base_url(self) -> str:
        return self.endpoint.base_url + self.endpoint.path


def settings_of(config: ConnectionConfig) -> Settings:
    """Endpoint (``endpoint_url`` or ``https://<host>``) and warehouse id; ``ConnectorError`` at stage resolve."""
    c = config.connection
    url = (c.get("endpoint_url") or "").strip() or (c.get("host") or "").strip()
    if not url:
        raise ConnectorError("resolve", "A workspace host name is required.")
    endpoint = parse_endpoint(url)
    match = WAREHOUSE_PATH.match((c.get("http_path") or "").strip())
    if not match:
        raise ConnectorError("resolve", "The HTTP path must be a SQL warehouse path, '/sql/1.0/warehouses/<id>' "
                                        "(clusters are not supported by the statement API).")
    schema = (c.get("schema") or "").strip()
    if not schema:
        raise ConnectorError("resolve", "A schema is required.")
    return Settings(endpoint, match.group(1), (c.get("catalog") or "").strip(), schema)


@dataclass
class Rows:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


class Workspace:
    """One session with the workspace: token, no redirects, no environment, no retries."""

    def __init__(self, settings: Settings, config: ConnectionConfig, scope: EgressScope):
        self.settings = settings
        self.secrets = config.secrets
        self.connect_timeout = float(config.connect_timeout)
        self.scope = scope
        self.statements = 0
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies, no .netrc credentials, no CA bundle from the environment
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, HTTPAdapter(max_retries=0))
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})

    def close(self) -> None:
        self.session.close()

    def _token(self) -> str:
        token = (self.secrets.get("token") or "").strip()
        if not token:
            raise ConnectorError("auth", "An access token is required.")
        if any(ord(ch) < 33 or ord(ch) == 127 for ch in token):
            raise ConnectorError("auth", "The access token contains invalid characters.")
        return token

    def _call(self, method: str, path: str, stage: str, deadline: float, body: Any = None) -> dict[str, Any]:
        """One request; every failure is a ``ConnectorError`` with our own message."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ConnectorError(stage, "The workspace did not answer in time.")
        try:
            response = self.session.request(
                method, self.settings.base_url + path, json=body, allow_redirects=False,
                headers={"Authorization": f"Bearer {self._token()}"},
                timeout=(min(self.connect_timeout, remaining), remaining),
            )
        except requests.Timeout:
            raise ConnectorError(stage, "The workspace did not answer in time.") from None
        except requests.TooManyRedirects:
            raise ConnectorError(stage, "The workspace redirected the request; redirects are not followed.") from None
        except requests.RequestException:
            blocked = self.scope.blocked_error()
            raise blocked or ConnectorError(stage, "The connection to the workspace failed.") from None
        return self._answer(response, stage)

    def _answer(self, response: requests.Response, stage: str) -> dict[str, Any]:
        code = response.status_code
        if 300 <= code < 400:
            raise ConnectorError(stage, f"The workspace redirected the request (HTTP {code}); redirects are not "
                                        "followed: check the host or endpoint URL.")
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {}
        detail = self._detail(data)
        if code in (401, 403):
            raise ConnectorError("auth", f"The workspace refused the access token (HTTP {code}).{detail}")
        if code == 404 and data.get("error_code") in ("NOT_FOUND", "RESOURCE_DOES_NOT_EXIST"):
            raise ConnectorError("database", f"The SQL warehouse '{self.settings.warehouse_id}' was not found."
                                             f"{detail}")
        if code != 200:
            raise ConnectorError(stage, f"The workspace answered HTTP {code}.{detail}")
        if not data.get("statement_id") and "data_array" not in data and "chunk_index" not in data:
            raise ConnectorError(stage, "The endpoint does not answer like the Databricks statement API.")
        return data

    def _detail(self, error: dict[str, Any]) -> str:
        text = " ".join(str(error.get(key) or "") for key in ("error_code", "message")).strip()
        cleaned = sanitize(text, self.secrets)
        return f" {cleaned}" if cleaned else ""

    def run(self, statement: str, stage: str, seconds: float, parameters: dict[str, str] | None = None,
            scoped: bool = True) -> Rows:
        """Execute one statement and wait for it (polling, then cancelling at the deadline)."""
        deadline = time.monotonic() + seconds
        wait = int(seconds - CANCEL_RESERVE - 1)
        body: dict[str, Any] = {
            "statement": statement, "warehouse_id": self.settings.warehouse_id,
            "wait_timeout": f"{min(wait, 50)}s" if wait >= 5 else "0s",  # the API takes 0 or 5..50 seconds
            "on_wait_timeout": "CANCEL", "disposition": "INLINE", "format": "JSON_ARRAY", "byte_limit": BYTE_LIMIT,
        }
        if scoped:
            body["schema"] = self.settings.schema
            if self.settings.catalog:
                body["catalog"] = self.settings.catalog
        if parameters:
            body["parameters"] = [{"name": k, "value": v, "type": "STRING"} for k, v in parameters.items()]
        self.statements += 1
        answer = self._call("POST", STATEMENTS, stage, deadline - CANCEL_RESERVE, body)
        statement_id = str(answer.get("statement_id") or "")
        pause = 0.05
        while _state(answer) in UNFINISHED:
            left = deadline - CANCEL_RESERVE - time.monotonic()
            if left < 0.1:
                self._cancel(statement_id, deadline)
                raise ConnectorError(stage, f"The statement did not finish within {seconds:g} seconds "
                                            "(the SQL warehouse may be starting).")
            time.sleep(min(pause, left / 2))
            pause = min(pause * 2, 1.0)
            answer = self._call("GET", f"{STATEMENTS}/{_safe(statement_id)}", stage, deadline - CANCEL_RESERVE)
        return self._rows(answer, statement_id, stage, deadline)

    def _cancel(self, statement_id: str, deadline: float) -> None:
        if statement_id:
            try:
                self._call("POST", f"{STATEMENTS}/{_safe(statement_id)}/cancel", "auth", deadline)
            except ConnectorError:
                pass  # best effort: on_wait_timeout=CANCEL and the warehouse's own limits remain

    def _rows(self, answer: dict[str, Any], statement_id: str, stage: str, deadline: float) -> Rows:
        state = _state(answer)
        if state == "FAILED":
            error = (answer.get("status") or {}).get("error") or {}
            detail = self._detail(error)
            if stage == "introspect":
                raise ConnectorError(stage, f"The information_schema query failed (introspection needs a Unity "
                                            f"Catalog catalog).{detail}")
            if error.get("error_code") == "NOT_FOUND" or any(m in detail.upper() for m in NOT_FOUND):
                raise ConnectorError("database", f"The catalog or schema was not found.{detail}")
            raise ConnectorError(stage, f"The statement failed.{detail}")
        if state != "SUCCEEDED":
            raise ConnectorError(stage, f"The statement ended as {sanitize(state, {}) or 'unknown'}.")
        manifest = answer.get("manifest") or {}
        columns = [str(c.get("name")) for c in (manifest.get("schema") or {}).get("columns") or []]
        result = answer.get("result") or {}
        rows = list(result.get("data_array") or [])
        truncated = bool(manifest.get("truncated"))
        for count in range(MAX_CHUNKS + 1):
            following = result.get("next_chunk_index")
            if following is None:
                break
            if count == MAX_CHUNKS or not isinstance(following, int):
                truncated = True
                break
            path = f"{STATEMENTS}/{_safe(statement_id)}/result/chunks/{following}"
            result = self._call("GET", path, stage, deadline)
            rows.extend(result.get("data_array") or [])
        if not all(isinstance(row, list) for row in rows):
            raise ConnectorError(stage, "The workspace answered rows of an unexpected shape.")
        return Rows(columns, rows, truncated)

    def check_token(self) -> None:
        """``SELECT 1`` on the warehouse, no catalog or schema: proves the token and the warehouse."""
        rows = self.run("SELECT 1", "auth", self.connect_timeout, scoped=False).rows
        if not rows or str(rows[0][0]) != "1":
            raise ConnectorError("auth", "The workspace did not answer SELECT 1.")

    def check_scope(self, stage: str = "database") -> tuple[str, str]:
        """The catalog and schema the warehouse selected for the configured ones."""
        rows = self.run("SELECT current_catalog(), current_schema()", stage, self.connect_timeout).rows
        if not rows or len(rows[0]) < 2:
            raise ConnectorError(stage, "The workspace did not report its current catalog and schema.")
        catalog, schema = str(rows[0][0]), str(rows[0][1])
        if schema.lower() != self.settings.schema.lower():
            raise ConnectorError("database", f"The schema '{self.settings.schema}' could not be selected.")
        return catalog, schema

    def tables(self, catalog: str, schema: str, seconds: float) -> list[TableInfo]:
        """Tables and views with columns: one statement, at most MAX_TABLES tables of MAX_COLUMNS columns."""
        sql = INTROSPECT_SQL.format(catalog=_quote(catalog), max_tables=MAX_TABLES, max_columns=MAX_COLUMNS)
        result = self.run(sql, "introspect", seconds, parameters={"schema": schema})
        tables: dict[str, TableInfo] = {}
        if any(len(row) != 6 for row in result.rows):
            raise ConnectorError("introspect", "The workspace answered rows of an unexpected shape.")
        for name, table_type, column, data_type, nullable, _ordinal in result.rows:
            table = tables.get(name)
            if table is None:
                kind = "view" if str(table_type).upper() in VIEW_TYPES else "table"
                table = tables[name] = TableInfo(schema=schema, name=str(name), kind=kind, columns=[])
            if column is not None:
                ordinal = len(table.columns) + 1
                table.columns.append(ColumnInfo(str(column), str(data_type), str(nullable).upper() == "YES", ordinal))
        found = list(tables.values())
        return found[:-1] if result.truncated and len(found) > 1 else found  # the last one may be incomplete


def _state(answer: dict[str, Any]) -> str:
    return str((answer.get("status") or {}).get("state") or "")


def _safe(statement_id: str) -> str:
    """A statement id as a path segment (the server's value, never a path of its choosing)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", statement_id):
        raise ConnectorError("auth", "The workspace answered an invalid statement id.")
    return statement_id


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def _bounded(fn: Callable[[], T], seconds: float, stage: str) -> Callable[[], T]:
    return bounded_stage(fn, seconds, stage, "The workspace")


@contextmanager
def _workspace(settings: Settings, config: ConnectionConfig) -> Iterator[tuple[Workspace, EgressScope]]:
    with egress_scope(config.connect_timeout, only=(settings.endpoint.host,)) as scope:
        workspace = Workspace(settings, config, scope)
        try:
            yield workspace, scope
        finally:
            workspace.close()


class DatabricksConnector(SessionConnector):
    """Stages: resolve, tcp, tls (https), auth (SELECT 1), database (catalog and schema), [introspect]."""

    def run(self, config: ConnectionConfig, *, introspect: bool) -> TestResult:
        tables: list[TableInfo] | None = None
        timeout = float(config.connect_timeout)
        with StageRunner(config.secrets) as runner:
            try:
                settings = settings_of(config)
            except ConnectorError as exc:
                runner.stop("resolve", exc)
            with _workspace(settings, config) as (workspace, scope):
                reach_http(runner, settings.endpoint, timeout, scope)
                runner.run("auth", _bounded(workspace.check_token, timeout, "auth"))
                catalog, schema = runner.run("database", _bounded(workspace.check_scope, timeout, "database"))
                runner.server_version = f"Databricks SQL warehouse {settings.warehouse_id}"
                if introspect:
                    seconds = float(config.query_timeout)
                    read = _bounded(lambda: workspace.tables(catalog, schema, seconds), seconds, "introspect")
                    tables = runner.optional("introspect", read, lambda found: f"{len(found)} tables and views.")
        result = runner.result()
        result.tables = tables if result.ok else None
        return result

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """Tables and views with columns of the configured schema; raises ``ConnectorError``."""
        settings = settings_of(config)
        seconds = float(config.query_timeout)
        with _workspace(settings, config) as (workspace, scope):
            host, port = settings.endpoint.host, settings.endpoint.port
            address = resolve_checked(host, port, float(config.connect_timeout))
            check_transport(settings.endpoint, address)  # a refresh re-checks what the test checked
            scope.pin(host, address)
            catalog, schema = _bounded(lambda: workspace.check_scope("introspect"), workspace.connect_timeout,
                                       "introspect")()
            return _bounded(lambda: workspace.tables(catalog, schema, seconds), seconds, "introspect")()
