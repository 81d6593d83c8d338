"""Mixpanel connector on Mixpanel's documented REST APIs, spoken with ``requests``.

Why requests and no SDK: Mixpanel's Python SDK only sends data (track, import); reading a project
is three documented GET endpoints with service-account HTTP Basic auth, which we bound and scrub
ourselves.

Hosts (data residency; the ``servers`` of Mixpanel's OpenAPI specs, ``https://{regionAndDomain}.com``
with ``mixpanel``, ``eu.mixpanel`` or ``in.mixpanel``):

======  =================================  =================================================
region  Query API                          App API (identity ``/me``, Lexicon Schemas API)
======  =================================  =================================================
US      https://mixpanel.com/api/query     https://mixpanel.com/api/app
EU      https://eu.mixpanel.com/api/query  https://eu.mixpanel.com/api/app
IN      https://in.mixpanel.com/api/query  https://in.mixpanel.com/api/app
======  =================================  =================================================

``endpoint_url`` replaces ``https://<region host>`` (a proxy; the tests' stand-in); a path in it
prefixes ``/api/...``. Calls, each with ``Authorization: Basic base64(username:secret)``:

- auth: ``GET /api/app/me`` (the check Mixpanel documents for a service account);
- database: ``GET /api/query/events/names?project_id=N&type=general&limit=1`` (403/404: no access);
- introspect: ``GET /api/app/projects/N/schemas/event`` (Lexicon, "List for Entity"): one request.
  When Lexicon holds no event schema (or refuses the role), the Query API instead:
  ``GET /api/query/events/names`` (limit MAX_TABLES) and ``GET /api/query/events/properties/top``
  for the first ``FALLBACK_EVENTS`` events: at most ``2 + FALLBACK_EVENTS`` requests in all.

A table is one event of the project (schema ``events``); its columns are ``time`` and
``distinct_id``, which every Mixpanel event carries, then the event's properties with their
Lexicon types (all nullable: Mixpanel does not enforce properties); an event name longer than the
schema cache holds (255) is left out. The session never follows a redirect, never reads proxies
or ``.netrc``, never retries, and reaches only the checked host.
"""

from __future__ import annotations

import base64
import json
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

#: Data residency -> the API host Mixpanel documents for it (Query API and App API alike).
REGION_HOSTS = {"US": "mixpanel.com", "EU": "eu.mixpanel.com", "IN": "in.mixpanel.com"}
QUERY_API = "/api/query"
APP_API = "/api/app"
SCHEMA = "events"  # the schema name of every table: the project's events
FALLBACK_EVENTS = 10  # events whose properties the Query API fallback asks for (60 queries/hour per project)
SMALL_ANSWER = 4 * 1024 * 1024  # bytes read of an answer to a check
LARGE_ANSWER = 64 * 1024 * 1024  # bytes read of the Lexicon schemas or the event names
NAME_MAX = 255  # the schema cache's limit for a table name: longer event names are left out
IMPLICIT = (ColumnInfo("time", "datetime", False, 1), ColumnInfo("distinct_id", "string", True, 2))

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """The project to read and the host serving its data residency."""

    endpoint: Endpoint
    project_id: int
    region: str

    @property
    def base_url(self) -> str:
        e = self.endpoint
        host = f"[{e.host}]" if ":" in e.host else e.host
        default = (e.scheme, e.port) in (("https", 443), ("http", 80))
        return f"{e.scheme}://{host}{'' if default else f':{e.port}'}{e.path}"

    def query_url(self, path: str) -> str:
        return f"{self.base_url}{QUERY_API}{path}"

    def app_url(self, path: str) -> str:
        return f"{self.base_url}{APP_API}{path}"


def settings_of(config: ConnectionConfig) -> Settings:
    """Region host (or ``endpoint_url``) and project; ``ConnectorError`` at stage resolve."""
    c = config.connection
    region = str(c.get("region") or "US").strip().upper()
    if region not in REGION_HOSTS:
        raise ConnectorError("resolve", "The data residency region must be US, EU or IN.")
    project = c.get("project_id")
    if isinstance(project, bool) or not isinstance(project, int | str) or not str(project).strip().isdigit() \
            or int(project) < 1:
        raise ConnectorError("resolve", "The project ID must be a positive integer.")
    url = (c.get("endpoint_url") or "").strip() or f"https://{REGION_HOSTS[region]}"
    return Settings(parse_endpoint(url), int(project), region)


def _basic(config: ConnectionConfig) -> str:
    """The Basic credentials of the service account; ``ConnectorError`` at stage auth."""
    username = str(config.connection.get("username") or "").strip()
    secret = (config.secrets.get("service_account_secret") or "").strip()
    if not username or not secret:
        raise ConnectorError("auth", "A service account username and secret are required.")
    if ":" in username or any(ord(ch) < 32 or ord(ch) == 127 for ch in username + secret):
        raise ConnectorError("auth", "The service account username or secret contains invalid characters.")
    return base64.b64encode(f"{username}:{secret}".encode()).decode("ascii")


def masks_of(config: ConnectionConfig) -> dict[str, str]:
    """Values never to show: the secrets and their Basic encoding (a server may echo the header)."""
    masks = dict(config.secrets)
    try:
        masks["_basic"] = _basic(config)
    except ConnectorError:
        pass
    return masks


class Project:
    """One session with Mixpanel for one project: Basic auth, no redirects, no environment, no retries."""

    def __init__(self, settings: Settings, config: ConnectionConfig, scope: EgressScope):
        self.settings = settings
        self.config = config
        self.masks = masks_of(config)
        self.connect_timeout = float(config.connect_timeout)
        self.scope = scope
        self.requests = 0
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies, no .netrc credentials, no CA bundle from the environment
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, HTTPAdapter(max_retries=0))
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})

    def close(self) -> None:
        self.session.close()

    def _get(self, url: str, stage: str, deadline: float, params: dict[str, Any] | None = None,
             limit: int = SMALL_ANSWER) -> tuple[int, Any]:
        """One GET: (status, parsed JSON or None); every failure is a ``ConnectorError`` of our own words."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ConnectorError(stage, "Mixpanel did not answer in time.")
        headers = {"Authorization": f"Basic {_basic(self.config)}"}
        try:
            self.requests += 1
            with self.session.get(url, params=params, headers=headers, allow_redirects=False, stream=True,
                                  timeout=(min(self.connect_timeout, remaining), remaining)) as response:
                code = response.status_code
                if 300 <= code < 400:
                    raise ConnectorError(stage, f"Mixpanel redirected the request (HTTP {code}); redirects are not "
                                                "followed: check the region or endpoint URL.")
                body = _read(response, limit, stage)
        except requests.Timeout:
            raise ConnectorError(stage, "Mixpanel did not answer in time.") from None
        except requests.RequestException:
            blocked = self.scope.blocked_error()
            raise blocked or ConnectorError(stage, "The connection to Mixpanel failed.") from None
        try:
            return code, json.loads(body)
        except ValueError:
            return code, None

    def _detail(self, data: Any) -> str:
        text = str(data.get("error") or "") if isinstance(data, dict) else ""
        cleaned = sanitize(text, self.masks)
        return f" {cleaned}" if cleaned else ""

    def _common(self, code: int, data: Any, stage: str) -> None:
        """Failures every call shares: refused credentials, rate limits, other errors."""
        detail = self._detail(data)
        if code == 401:
            raise ConnectorError("auth", f"The service account was refused (HTTP 401).{detail}")
        if code == 429:
            raise ConnectorError(stage, "Mixpanel's rate limit was reached (HTTP 429); try again later.")
        if code != 200:
            raise ConnectorError(stage, f"Mixpanel answered HTTP {code}.{detail}")

    def check_account(self) -> None:
        """``GET /api/app/me``: proves the service account, before any project is named."""
        code, data = self._get(self.settings.app_url("/me"), "auth", time.monotonic() + self.connect_timeout)
        if code == 403:
            raise ConnectorError("auth", f"The service account was refused (HTTP 403).{self._detail(data)}")
        self._common(code, data, "auth")
        if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
            raise ConnectorError("auth", "The endpoint does not answer like the Mixpanel API.")

    def event_names(self, stage: str, deadline: float, limit: int) -> list[str]:
        """The Query API's event names of the last 31 days (403/404: no access to the project)."""
        params = {"project_id": self.settings.project_id, "type": "general", "limit": limit}
        code, data = self._get(self.settings.query_url("/events/names"), stage, deadline, params, LARGE_ANSWER)
        project = self.settings.project_id
        if code in (403, 404):
            raise ConnectorError(stage, f"The service account has no access to project {project} in the "
                                        f"{self.settings.region} region (HTTP {code}).{self._detail(data)}")
        if code == 400:
            raise ConnectorError(stage, f"Mixpanel refused the query on project {project} (HTTP 400)."
                                        f"{self._detail(data)}")
        self._common(code, data, stage)
        if not isinstance(data, list):
            raise ConnectorError(stage, "The endpoint does not answer like the Mixpanel Query API.")
        return [name for name in data if isinstance(name, str)]

    def check_project(self) -> None:
        self.event_names("database", time.monotonic() + self.connect_timeout, 1)

    def tables(self, seconds: float) -> list[TableInfo]:
        """The project's events with their properties: one Lexicon request, else a bounded Query API fallback."""
        deadline = time.monotonic() + seconds
        path = f"/projects/{self.settings.project_id}/schemas/event"
        code, data = self._get(self.settings.app_url(path), "introspect", deadline, limit=LARGE_ANSWER)
        if code not in (403, 404):
            self._common(code, data, "introspect")
            if not isinstance(data, dict) or not isinstance(data.get("results"), list):
                raise ConnectorError("introspect", "The endpoint does not answer like the Lexicon Schemas API.")
            tables = _from_schemas(data["results"])
            if tables:
                return tables
        return self._from_query_api(deadline)

    def _from_query_api(self, deadline: float) -> list[TableInfo]:
        names = _unique(self.event_names("introspect", deadline, MAX_TABLES))[:MAX_TABLES]
        tables = [TableInfo(SCHEMA, name, "table", list(IMPLICIT)) for name in names]
        for table in tables[:FALLBACK_EVENTS]:
            params = {"project_id": self.settings.project_id, "event": table.name, "limit": MAX_COLUMNS}
            code, data = self._get(self.settings.query_url("/events/properties/top"), "introspect", deadline, params)
            self._common(code, data, "introspect")
            if not isinstance(data, dict):
                raise ConnectorError("introspect", "The endpoint does not answer like the Mixpanel Query API.")
            _add_columns(table, ((str(name), "unknown") for name in data))
        return tables


def _read(response: requests.Response, limit: int, stage: str) -> bytes:
    data = bytearray()
    for chunk in response.iter_content(65536):
        data += chunk
        if len(data) > limit:
            raise ConnectorError(stage, f"Mixpanel's answer is larger than {limit // (1024 * 1024)} MiB.")
    return bytes(data)


def _unique(names: list[str]) -> list[str]:
    """Event names the schema cache can hold, each once, in the order given."""
    seen: dict[str, None] = {}
    for name in names:
        if 0 < len(name) <= NAME_MAX:
            seen.setdefault(name, None)
    return list(seen)


def column_type(spec: Any) -> str:
    """A Lexicon property's JSON-schema type (``string`` with a date format: ``datetime``)."""
    if not isinstance(spec, dict):
        return "unknown"
    declared = spec.get("type")
    kinds = [k for k in (declared if isinstance(declared, list) else [declared]) if isinstance(k, str) and k != "null"]
    if not kinds:
        return "unknown"
    if kinds == ["string"] and spec.get("format") in ("date-time", "date"):
        return "datetime"
    return "|".join(kinds)[:64]


def _add_columns(table: TableInfo, columns: Iterator[tuple[str, str]]) -> None:
    names = {c.name for c in table.columns}
    for name, data_type in columns:
        if len(table.columns) >= MAX_COLUMNS:
            return
        if name and name not in names:
            names.add(name)
            table.columns.append(ColumnInfo(name, data_type, True, len(table.columns) + 1))


def _from_schemas(entries: list[Any]) -> list[TableInfo]:
    tables: dict[str, TableInfo] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("entityType", "event") != "event":
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not _unique([name]) or name in tables:
            continue
        if len(tables) >= MAX_TABLES:
            break
        schema = entry.get("schemaJson")
        properties = schema.get("properties") if isinstance(schema, dict) else None
        table = tables[name] = TableInfo(SCHEMA, name, "table", list(IMPLICIT))
        if isinstance(properties, dict):
            _add_columns(table, ((str(key), column_type(spec)) for key, spec in properties.items()))
    return list(tables.values())


def _bounded(fn: Callable[[], T], seconds: float, stage: str) -> Callable[[], T]:
    return bounded_stage(fn, seconds, stage, "Mixpanel")


@contextmanager
def _project(settings: Settings, config: ConnectionConfig) -> Iterator[tuple[Project, EgressScope]]:
    with egress_scope(config.connect_timeout, only=(settings.endpoint.host,)) as scope:
        project = Project(settings, config, scope)
        try:
            yield project, scope
        finally:
            project.close()


class MixpanelConnector(SessionConnector):
    """Stages: resolve, tcp, tls (https), auth (``/me``), database (the project), [introspect]."""

    def run(self, config: ConnectionConfig, *, introspect: bool) -> TestResult:
        tables: list[TableInfo] | None = None
        timeout = float(config.connect_timeout)
        with StageRunner(masks_of(config)) as runner:
            try:
                settings = settings_of(config)
            except ConnectorError as exc:
                runner.stop("resolve", exc)
            with _project(settings, config) as (project, scope):
                reach_http(runner, settings.endpoint, timeout, scope)
                runner.run("auth", _bounded(project.check_account, timeout, "auth"))
                runner.run("database", _bounded(project.check_project, timeout, "database"))
                runner.server_version = f"Mixpanel project {settings.project_id} ({settings.region})"
                if introspect:
                    seconds = float(config.query_timeout)
                    read = _bounded(lambda: project.tables(seconds), seconds, "introspect")
                    tables = runner.optional("introspect", read, lambda found: f"{len(found)} events.")
        result = runner.result()
        result.tables = tables if result.ok else None
        return result

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """The project's events with their properties; raises ``ConnectorError``."""
        settings = settings_of(config)
        seconds = float(config.query_timeout)
        with _project(settings, config) as (project, scope):
            host, port = settings.endpoint.host, settings.endpoint.port
            address = resolve_checked(host, port, float(config.connect_timeout))
            check_transport(settings.endpoint, address)  # a refresh re-checks what the test checked
            scope.pin(host, address)
            return _bounded(lambda: project.tables(seconds), seconds, "introspect")()
