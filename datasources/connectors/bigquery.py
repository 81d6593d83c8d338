"""BigQuery connector on google-cloud-bigquery (REST v2 over requests, the token from google-auth).

The service account and its rules come from google_service_account.py: the uploaded key alone, two
endpoints (the API, ``endpoint_url`` or https://bigquery.googleapis.com, and the key's ``token_uri``)
resolved once through the egress policy and pinned, no redirects; ``BIGQUERY_EMULATOR_HOST`` plays no
part either. Driver retries are off and every driver call runs under ``call_bounded``.

Stages: resolve, tcp, tls (https) for the API via ``reach_http``; auth = the JWT-bearer token
exchange; database = the project (datasets.list, one item) or the dataset (datasets.get, and its
location); introspection = one query job on INFORMATION_SCHEMA.COLUMNS joined with TABLES (the
dataset's, or ``region-<location>`` for every dataset of the project there), bounded by
MAX_TABLES / MAX_COLUMNS in the SQL itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from google.api_core import exceptions as api_errors
from google.api_core.retry import Retry
from google.auth.transport.requests import AuthorizedSession
from google.cloud import bigquery

from .base import MAX_COLUMNS, MAX_TABLES, ColumnInfo, ConnectionConfig, ConnectorError, TableInfo, sanitize
from .google_service_account import Plan, ServiceAccountConnector, Session, harden, plan_fields
from .guard import EgressScope, TimedOut, call_bounded

T = TypeVar("T")
DEFAULT_ENDPOINT = "https://bigquery.googleapis.com"
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


@dataclass(frozen=True)
class _Plan(Plan):
    """The service account's plan, and the project, location and dataset."""

    project: str
    location: str
    dataset: str

    @property
    def api_endpoint(self) -> str:
        return self.endpoint.base_url + self.endpoint.path


def _api_error(exc: api_errors.GoogleAPICallError) -> bool:
    """Whether the answer is a Google API error document (the peer proved it speaks the API)."""
    response = getattr(exc, "response", None)
    try:
        body = response.json() if response is not None else None
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), dict)


class _Session(Session[_Plan]):
    """One test's egress scope, credentials and client; every driver call goes through ``call``."""

    def __init__(self, plan: _Plan, config: ConnectionConfig, masks: dict[str, str], scope: EgressScope):
        super().__init__(plan, config, masks, scope)
        self.client: bigquery.Client | None = None

    def call(self, stage: str, fn: Callable[[], T], seconds: float, missing: str = "") -> T:
        """``fn`` bounded by ``seconds``. Until the API has answered like the API, a failure reads like a
        closed port (stage tcp); then API errors fail ``stage`` (401: auth; 404: ``missing`` if given)."""
        try:
            value = call_bounded(fn, seconds + 0.5, self.scope)
        except api_errors.GoogleAPICallError as exc:
            if not _api_error(exc):
                raise self.unreachable(self.plan.endpoint) from None
            self.proven = True
            if isinstance(exc, api_errors.Unauthorized):
                raise ConnectorError("auth", "The BigQuery API refused the service account's access token.") from None
            if missing and isinstance(exc, api_errors.NotFound):
                raise ConnectorError(stage, missing) from None
            detail = sanitize(str(getattr(exc, "message", "") or ""), self.masks) or type(exc).__name__
            raise ConnectorError(stage, f"BigQuery refused the request: {detail}") from None
        except (requests.RequestException, TimedOut, OSError, ValueError) as exc:
            if not self.proven or self.scope.blocked_error():
                raise self.unreachable(self.plan.endpoint) from None
            if isinstance(exc, TimedOut):
                raise ConnectorError(stage, f"BigQuery did not answer within {seconds:g} seconds.") from None
            raise ConnectorError(stage, "The connection to BigQuery failed.") from None
        self.proven = True
        return value

    def authenticate(self) -> None:
        """The token exchange; builds the client on success."""
        credentials = self.exchange(SCOPES)
        session = AuthorizedSession(credentials, refresh_status_codes=(), max_refresh_attempts=0,
                                    refresh_timeout=self.timeout, auth_request=self.token_request)
        self.client = bigquery.Client(project=self.plan.project, credentials=credentials, location=self.plan.location,
                                      _http=harden(session),
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
        super().close()


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


class BigQueryConnector(ServiceAccountConnector[_Plan]):
    """Stages: resolve, tcp, tls (https), auth, database; introspection over the tested session."""

    def plan(self, config: ConnectionConfig) -> _Plan:
        c = config.connection
        return _Plan(*plan_fields(config, DEFAULT_ENDPOINT), str(c.get("project_id") or ""),
                     str(c.get("location") or "US"), str(c.get("dataset_id") or ""))

    def session(self, plan: _Plan, config: ConnectionConfig, masks: dict[str, str], scope: EgressScope) -> _Session:
        return _Session(plan, config, masks, scope)
