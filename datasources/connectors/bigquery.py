"""BigQuery connector on google-cloud-bigquery (REST v2 over requests, the token from google-auth).

Credentials come only from the uploaded service-account JSON (``from_service_account_info``): never
Application Default Credentials, the metadata server, ``GOOGLE_APPLICATION_CREDENTIALS``, proxy or
netrc settings, mTLS client certificates found on the machine, ``BIGQUERY_EMULATOR_HOST`` or the
regional-access-boundary lookup (a background thread outside the egress scope). Two endpoints are
reached, both through the egress policy, resolved once in the resolve stage and pinned: the API
(``endpoint_url``, default https://bigquery.googleapis.com) and the key's ``token_uri`` (default
https://oauth2.googleapis.com/token). Each must be https unless its checked address is a
non-public one that DATASOURCE_ALLOWED_NETWORKS admits (an operator's private network, loopback in
the tests): the signed grant and the access token are bearer secrets. Redirects are refused, driver
retries are off and every driver call runs under ``call_bounded``.

Stages: resolve, tcp, tls (https) for the API via ``reach_http``; auth = the JWT-bearer token
exchange; database = the project (datasets.list, one item) or the dataset (datasets.get, and its
location); introspection = one query job on INFORMATION_SCHEMA.COLUMNS joined with TABLES (the
dataset's, or ``region-<location>`` for every dataset of the project there), bounded by
MAX_TABLES / MAX_COLUMNS in the SQL itself.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from google.api_core import exceptions as api_errors
from google.api_core.retry import Retry
from google.auth import exceptions as auth_errors
from google.auth.transport.requests import AuthorizedSession, Request
from google.cloud import bigquery
from google.oauth2 import service_account

from .base import (
    MAX_COLUMNS,
    MAX_TABLES,
    ColumnInfo,
    ConnectionConfig,
    ConnectorError,
    SessionConnector,
    StageResult,
    StageRunner,
    TableInfo,
    TestResult,
    sanitize,
)
from .egress import connect_failed_message, resolve_checked
from .guard import EgressScope, TimedOut, call_bounded, egress_scope
from .http_stages import Endpoint, check_transport, parse_endpoint, reach_http

T = TypeVar("T")
DEFAULT_ENDPOINT = "https://bigquery.googleapis.com"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
SCOPES = ("https://www.googleapis.com/auth/bigquery",)
NO_RETRY = Retry(predicate=lambda _exc: False)  # the driver retries nothing: call_bounded bounds each stage
PROJECT_ID = re.compile(r"^(?:[a-z][a-z0-9.-]{0,62}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
DATASET_ID = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
LOCATION = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,62}$")
VIEW_TYPES = ("VIEW", "MATERIALIZED VIEW")
CATALOGUE_SQL = """
SELECT c.table_schema, c.table_name, t.table_type, c.column_name, c.data_type, c.is_nullable,
       c.ordinal_position
FROM {source}.INFORMATION_SCHEMA.COLUMNS AS c
JOIN {source}.INFORMATION_SCHEMA.TABLES AS t
  ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.ordinal_position <= @max_columns AND c.is_hidden = 'NO'
QUALIFY DENSE_RANK() OVER (ORDER BY c.table_schema, c.table_name) <= @max_tables
ORDER BY c.table_schema, c.table_name, c.ordinal_position
"""

# google-auth logs request headers (the bearer token) and token-endpoint bodies at DEBUG.
logging.getLogger("google.auth.transport.requests").setLevel(logging.INFO)


class _Credentials(service_account.Credentials):
    """The uploaded key alone: no regional-access-boundary lookup (an environment variable turns it on,
    and it runs in a background thread, outside the egress scope)."""

    def _is_regional_access_boundary_lookup_required(self) -> bool:
        return False


class _NoRetries(requests.adapters.HTTPAdapter):
    """No retries; a subclass, so google-auth never mounts an mTLS adapter with a local certificate."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)


class _BoundedRequest(Request):
    """google-auth's transport with our timeout on every token request (its default is 120 s)."""

    def __init__(self, session: requests.Session, timeout: float):
        super().__init__(session)
        self.timeout = timeout

    def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                 timeout: Any = None, **kwargs: Any) -> Any:
        return super().__call__(url, method, body, headers, timeout=(self.timeout, self.timeout), **kwargs)


def _harden(session: requests.Session) -> requests.Session:
    session.trust_env = False  # no proxy, netrc or CA-bundle settings from the environment
    session.max_redirects = 0  # a redirect fails instead of being followed
    for prefix in ("http://", "https://"):
        session.mount(prefix, _NoRetries())
    return session


@dataclass(frozen=True)
class _Plan:
    """What one test reaches, read from the configuration (no network yet)."""

    endpoint: Endpoint
    token: Endpoint
    token_uri: str
    project: str
    location: str
    dataset: str
    info: dict[str, Any]

    @property
    def api_endpoint(self) -> str:
        return self.endpoint.base_url + self.endpoint.path


def _info(config: ConnectionConfig) -> dict[str, Any]:
    try:
        info = json.loads(config.secrets.get("service_account_json") or "")
    except (ValueError, RecursionError):
        return {}
    return info if isinstance(info, dict) else {}


def _masks(config: ConnectionConfig) -> dict[str, str]:
    """Secret values to scrub from driver text: the JSON, and the key as it reads once decoded."""
    info = _info(config)
    masks = dict(config.secrets)
    for name in ("private_key", "private_key_id"):
        if isinstance(info.get(name), str) and info[name]:
            masks[name] = info[name]
    return masks


def _plan(config: ConnectionConfig) -> _Plan:
    c = config.connection
    info = _info(config)
    token_uri = info.get("token_uri") or DEFAULT_TOKEN_URI
    if not isinstance(token_uri, str):
        raise ConnectorError("resolve", "The service account's token_uri is not a URL.")
    try:
        token = parse_endpoint(token_uri)
    except ConnectorError as exc:
        raise ConnectorError("resolve", f"The service account's token_uri: {exc.message}") from None
    return _Plan(parse_endpoint(c.get("endpoint_url") or DEFAULT_ENDPOINT), token, token_uri,
                 str(c.get("project_id") or ""), str(c.get("location") or "US"), str(c.get("dataset_id") or ""),
                 info)


def _merge_resolve(stages: list[StageResult]) -> None:
    """The token host's and the API host's lookups are one resolve stage."""
    same = [s for s in stages if s.name == "resolve"]
    if len(same) > 1 and all(s.ok for s in same):
        same[0].duration_ms = round(sum(s.duration_ms for s in same), 2)
        stages[:] = [s for s in stages if s.name != "resolve" or s is same[0]]


def _certificate_refused(exc: BaseException) -> bool:
    """Whether a transport failure was our refusal of the peer's certificate (requests wraps it twice)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _api_error(exc: api_errors.GoogleAPICallError) -> bool:
    """Whether the answer is a Google API error document (the peer proved it speaks the API)."""
    response = getattr(exc, "response", None)
    try:
        body = response.json() if response is not None else None
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), dict)


class _Session:
    """One test's egress scope, credentials and client; every driver call goes through ``call``."""

    def __init__(self, plan: _Plan, config: ConnectionConfig, masks: dict[str, str], scope: EgressScope):
        self.plan, self.config, self.masks, self.scope = plan, config, masks, scope
        self.timeout = float(config.connect_timeout)
        self.client: bigquery.Client | None = None
        self.token_session = _harden(requests.Session())
        self.proven = False  # the API has answered like the BigQuery API

    def _unreachable(self, endpoint: Endpoint) -> ConnectorError:
        return self.scope.blocked_error() or ConnectorError("tcp", connect_failed_message(endpoint.host, endpoint.port))

    def call(self, stage: str, fn: Callable[[], T], seconds: float, missing: str = "") -> T:
        """``fn`` bounded by ``seconds``. Until the API has answered like the API, a failure reads like a
        closed port (stage tcp); then API errors fail ``stage`` (401: auth; 404: ``missing`` if given)."""
        try:
            value = call_bounded(fn, seconds + 0.5, self.scope)
        except api_errors.GoogleAPICallError as exc:
            if not _api_error(exc):
                raise self._unreachable(self.plan.endpoint) from None
            self.proven = True
            if isinstance(exc, api_errors.Unauthorized):
                raise ConnectorError("auth", "The BigQuery API refused the service account's access token.") from None
            if missing and isinstance(exc, api_errors.NotFound):
                raise ConnectorError(stage, missing) from None
            detail = sanitize(str(getattr(exc, "message", "") or ""), self.masks) or type(exc).__name__
            raise ConnectorError(stage, f"BigQuery refused the request: {detail}") from None
        except (requests.RequestException, TimedOut, OSError, ValueError) as exc:
            if not self.proven or self.scope.blocked_error():
                raise self._unreachable(self.plan.endpoint) from None
            if isinstance(exc, TimedOut):
                raise ConnectorError(stage, f"BigQuery did not answer within {seconds:g} seconds.") from None
            raise ConnectorError(stage, "The connection to BigQuery failed.") from None
        self.proven = True
        return value

    def resolve_token_host(self) -> None:
        token = self.plan.token
        ip = resolve_checked(token.host, token.port, self.timeout)
        check_transport(token, ip, "service account's token_uri")
        self.scope.pin(token.host, ip)

    def check_transports(self) -> None:
        """Both endpoints again, at the addresses now pinned (the same host may have been looked up twice)."""
        for what, endpoint in (("service account's token_uri", self.plan.token), ("endpoint URL", self.plan.endpoint)):
            check_transport(endpoint, self.scope.pins[endpoint.host.lower()], what)

    def authenticate(self) -> None:
        """The token exchange (a JWT signed with the key); builds the client on success."""
        info = self.plan.info
        if info.get("type") != "service_account" or not info.get("client_email") or not info.get("private_key"):
            raise ConnectorError("auth", "The credentials must be a service-account key file (type "
                                         "'service_account' with client_email and private_key).")
        try:  # bounded too: checking an outsized RSA key takes a while
            credentials = call_bounded(lambda: _Credentials.from_service_account_info(
                {**info, "token_uri": self.plan.token_uri}, scopes=list(SCOPES)), self.timeout, self.scope)
        except (ValueError, TypeError, KeyError, TimedOut):
            raise ConnectorError("auth", "The service account's private key could not be read.") from None
        bounded = _BoundedRequest(self.token_session, self.timeout)
        try:
            call_bounded(lambda: credentials.refresh(bounded), self.timeout + 0.5, self.scope)
        except auth_errors.RefreshError as exc:
            answer = exc.args[1] if len(exc.args) > 1 else None
            if not (isinstance(answer, dict) and answer.get("error")):
                raise self._unreachable(self.plan.token) from None  # not an OAuth server's answer
            detail = sanitize(f"{answer.get('error')}: {answer.get('error_description') or ''}", self.masks)
            raise ConnectorError("auth", f"The token endpoint refused the service account ({detail}).") from None
        except (auth_errors.TransportError, requests.RequestException, TimedOut, OSError) as exc:
            if _certificate_refused(exc):
                raise ConnectorError("tls", "The token endpoint's certificate could not be verified.") from None
            raise self._unreachable(self.plan.token) from None
        self.masks["access_token"] = str(credentials.token)
        session = AuthorizedSession(credentials, refresh_status_codes=(), max_refresh_attempts=0,
                                    refresh_timeout=self.timeout, auth_request=bounded)
        self.client = bigquery.Client(project=self.plan.project, credentials=credentials, location=self.plan.location,
                                      _http=_harden(session),
                                      client_options={"api_endpoint": self.plan.api_endpoint})

    def check_database(self) -> None:
        """The project (one datasets.list item), or the dataset and its location."""
        plan, client = self.plan, self._client()
        if not PROJECT_ID.match(plan.project):
            raise ConnectorError("database", "The project ID is not a valid BigQuery project ID.")
        if not LOCATION.match(plan.location):
            raise ConnectorError("database", "The location is not a valid BigQuery location (e.g. US, EU).")
        if plan.dataset and not DATASET_ID.match(plan.dataset):
            raise ConnectorError("database", "The dataset ID may hold only letters, digits and underscores.")
        if not plan.dataset:
            self.call("database", lambda: next(iter(client.list_datasets(
                plan.project, max_results=1, retry=NO_RETRY, timeout=self.timeout)), None), self.timeout,
                missing=f"Project '{plan.project}' was not found or the service account may not see it.")
            return
        ref = bigquery.DatasetReference(plan.project, plan.dataset)
        dataset = self.call("database", lambda: client.get_dataset(ref, retry=NO_RETRY, timeout=self.timeout),
                            self.timeout, missing=f"Dataset '{plan.dataset}' was not found in project "
                                                  f"'{plan.project}' or the service account may not see it.")
        if (dataset.location or "").lower() != plan.location.lower():
            raise ConnectorError("database", f"Dataset '{plan.dataset}' is in location {dataset.location}, "
                                             f"not {plan.location}: set the location to match.")

    def catalogue(self) -> list[TableInfo]:
        """One query job over INFORMATION_SCHEMA (COLUMNS joined with TABLES), bounded in SQL."""
        plan, client = self.plan, self._client()
        scope = plan.dataset or f"region-{plan.location.lower()}"
        sql = CATALOGUE_SQL.format(source=f"`{plan.project}`.`{scope}`")
        job_config = bigquery.QueryJobConfig(query_parameters=[
            bigquery.ScalarQueryParameter("max_tables", "INT64", MAX_TABLES),
            bigquery.ScalarQueryParameter("max_columns", "INT64", MAX_COLUMNS),
        ])
        seconds = float(self.config.query_timeout)

        def run() -> list[TableInfo]:
            rows = client.query_and_wait(sql, job_config=job_config, location=plan.location, api_timeout=seconds,
                                         wait_timeout=seconds, retry=NO_RETRY, job_retry=NO_RETRY)
            return _tables(rows)

        return self.call("introspect", run, seconds)

    def _client(self) -> bigquery.Client:
        if self.client is None:
            raise ConnectorError("auth", "Not authenticated.")
        return self.client

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.token_session.close()


def _tables(rows: Any) -> list[TableInfo]:
    tables: dict[tuple[str, str], TableInfo] = {}
    for schema, name, table_type, column, data_type, nullable, ordinal in rows:
        table = tables.get((schema, name))
        if table is None:
            if len(tables) >= MAX_TABLES:
                break
            kind = "view" if str(table_type).upper() in VIEW_TYPES else "table"
            table = tables[(schema, name)] = TableInfo(schema=schema, name=name, kind=kind, columns=[])
        if len(table.columns) < MAX_COLUMNS:
            position = int(ordinal) if ordinal is not None else len(table.columns) + 1
            table.columns.append(ColumnInfo(column, str(data_type), str(nullable).upper() == "YES", position))
    return list(tables.values())


class BigQueryConnector(SessionConnector):
    """Stages: resolve, tcp, tls (https), auth, database; introspection over the tested session."""

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        result = self.run(config, introspect=True, strict=True)
        if not result.ok or result.tables is None:
            raise ConnectorError(result.stage or "introspect", result.message)
        return result.tables

    def run(self, config: ConnectionConfig, *, introspect: bool, strict: bool = False) -> TestResult:
        masks = _masks(config)
        timeout = float(config.connect_timeout)
        tables: list[TableInfo] | None = None
        with StageRunner(masks) as runner:
            plan = runner.run("resolve", lambda: _plan(config))
            hosts = (plan.endpoint.host, plan.token.host)
            with egress_scope(timeout, only=hosts) as scope:
                session = _Session(plan, config, masks, scope)
                try:
                    try:
                        runner.run("resolve", session.resolve_token_host)
                        reach_http(runner, plan.endpoint, timeout, scope)
                        runner.run("resolve", session.check_transports)
                    finally:
                        _merge_resolve(runner.stages)
                    runner.run("auth", session.authenticate, "The service account key was accepted.")
                    runner.run("database", session.check_database)
                    if strict:
                        tables = runner.run("introspect", session.catalogue)
                    elif introspect:
                        try:
                            tables = session.catalogue()
                        except ConnectorError:
                            tables = None  # the refresh that follows tries again and records why
                finally:
                    session.close()
        result = runner.result()
        result.tables = tables if result.ok else None
        return result
