"""A protocol stand-in for Google's OAuth 2.0 token endpoint and the BigQuery REST API v2.

One threaded ``http.server`` on 127.0.0.1 (ephemeral port, optionally over TLS) answers what google-auth and
google-cloud-bigquery send, in Google's own shapes:

- ``POST /token``: tests/support/google_oauth.py's token endpoint, granting a BigQuery or cloud-platform
  ``scope``.
- ``GET /bigquery/v2/projects/{p}/datasets`` (datasets.list, ``maxResults``) and
  ``GET /bigquery/v2/projects/{p}/datasets/{d}`` (datasets.get): 404 ``notFound`` for an unknown
  project or dataset.
- ``POST /bigquery/v2/projects/{p}/queries`` (jobs.query): the connector's catalogue query, i.e.
  SQL reading ```p`.`region-<loc>`.INFORMATION_SCHEMA.COLUMNS`` (every dataset of that location)
  or ```p`.`<dataset>`.INFORMATION_SCHEMA.COLUMNS``, with the INT64 parameters ``@max_tables`` and
  ``@max_columns`` applied as the SQL would. Rows come in BigQuery's JSON row format
  (``{"f": [{"v": ...}]}``) with a ``schema``, paged by ``maxResults`` (at most ``page_rows``);
  ``pageToken`` when more rows follow. Other SQL: 400 ``invalidQuery``.
- ``GET /bigquery/v2/projects/{p}/queries/{jobId}`` (jobs.getQueryResults: ``pageToken``,
  ``startIndex``, ``maxResults``), ``GET /bigquery/v2/projects/{p}/jobs/{jobId}`` (jobs.get) and
  ``POST .../jobs/{jobId}/cancel``, which the client uses when results span several pages.
- ``HEAD`` anything: 404 (the connector's reachability probe only needs an HTTP answer).

Every API call needs ``Authorization: Bearer <a token this server issued>`` (else 401
``UNAUTHENTICATED``). ``requests`` records each (method, path) received, ``tokens`` each token issued.
"""

from __future__ import annotations

import json
import re
import secrets
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, parse_qs

from tests.support.google_oauth import ApiError, GoogleStandIn, serve

SCOPES = ("https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/cloud-platform")
API = re.compile(r"^/bigquery/v2/projects/(?P<p>[^/]+)(?P<rest>/.*)?$")
SOURCE = re.compile(r"FROM\s+`(?P<p>[^`]+)`\.`(?P<src>[^`]+)`\.INFORMATION_SCHEMA\.COLUMNS\b", re.I)
FIELDS = (("table_schema", "STRING"), ("table_name", "STRING"), ("table_type", "STRING"),
          ("column_name", "STRING"), ("data_type", "STRING"), ("is_nullable", "STRING"),
          ("ordinal_position", "INT64"))

Column = tuple[str, str, bool]  # name, data type, nullable


@dataclass
class Table:
    columns: list[Column]
    table_type: str = "BASE TABLE"  # or VIEW, MATERIALIZED VIEW, ...


@dataclass
class Dataset:
    tables: dict[str, Table]
    location: str = "US"


@dataclass
class BigQueryStandIn(GoogleStandIn):
    """Projects -> datasets -> tables, the service accounts it trusts, and what clients sent."""

    projects: dict[str, dict[str, Dataset]] = field(default_factory=dict)
    scopes: tuple[str, ...] = SCOPES
    page_rows: int = 20_000
    requests: list[tuple[str, str]] = field(default_factory=list)
    _jobs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def api_requests(self, method: str = "", prefix: str = "/bigquery/") -> list[tuple[str, str]]:
        return [r for r in self.requests if r[1].startswith(prefix) and (not method or r[0] == method)]

    def record(self, method: str, parts: SplitResult) -> None:
        with self._lock:
            self.requests.append((method, parts.path))

    def answer(self, method: str, parts: SplitResult, body: bytes, authorization: str) -> dict[str, Any]:
        if method == "HEAD":
            raise ApiError(404, "notFound", "Not found.")
        self.bearer(authorization, "required")
        return self.api(method, parts.path, parse_qs(parts.query), json.loads(body) if body else {})

    def error(self, exc: ApiError) -> dict[str, Any]:
        statuses = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND"}
        return {"error": {"code": exc.status, "message": exc.message, "status": statuses.get(exc.status, ""),
                          "errors": [{"message": exc.message, "domain": "global", "reason": exc.reason}]}}

    # --- BigQuery REST v2 -------------------------------------------------------------------------

    def api(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
        match = API.match(path)
        if not match:
            raise ApiError(404, "notFound", f"Not found: {path}")
        project, rest = match["p"], match["rest"] or ""
        datasets = self.projects.get(project)
        if datasets is None:
            raise ApiError(404, "notFound", f"Not found: Project {project}")
        parts = rest.strip("/").split("/")
        if method == "GET" and parts == ["datasets"]:
            limit = int(query.get("maxResults", ["50"])[0])
            return {"kind": "bigquery#datasetList", "etag": "standin",
                    "datasets": [_dataset(project, name, ds) for name, ds in sorted(datasets.items())[:limit]]}
        if method == "GET" and len(parts) == 2 and parts[0] == "datasets":
            if parts[1] not in datasets:
                raise ApiError(404, "notFound", f"Not found: Dataset {project}:{parts[1]}")
            return _dataset(project, parts[1], datasets[parts[1]])
        if method == "POST" and parts == ["queries"]:
            return self._query(project, datasets, body)
        if method == "GET" and len(parts) == 2 and parts[0] in ("queries", "jobs"):
            job = self._jobs.get(parts[1])
            if job is None:
                raise ApiError(404, "notFound", f"Not found: Job {project}:{parts[1]}")
            return self._page(job, query) if parts[0] == "queries" else _job_resource(job)
        if method == "POST" and len(parts) == 3 and parts[0] == "jobs" and parts[2] == "cancel":
            job = self._jobs.get(parts[1])
            if job is None:
                raise ApiError(404, "notFound", f"Not found: Job {project}:{parts[1]}")
            return {"kind": "bigquery#jobCancelResponse", "job": _job_resource(job)}
        raise ApiError(400, "badRequest", f"The stand-in does not answer {method} {rest}.")

    def _query(self, project: str, datasets: dict[str, Dataset], body: dict[str, Any]) -> dict[str, Any]:
        sql = str(body.get("query", ""))
        source = SOURCE.search(sql)
        if body.get("useLegacySql") is not False or not source or source["p"] != project:
            raise ApiError(400, "invalidQuery", "Syntax error: the stand-in answers only the catalogue query.")
        params = {p["name"]: int(p["parameterValue"]["value"]) for p in body.get("queryParameters", [])
                  if p.get("parameterType", {}).get("type") == "INT64"}
        location = str(body.get("location") or "US")
        src = source["src"]
        if src.lower().startswith("region-"):
            if src[len("region-"):].lower() != location.lower():
                raise ApiError(400, "invalidQuery", f"Region {src} does not match the query location {location}.")
            chosen = {n: d for n, d in datasets.items() if d.location.lower() == location.lower()}
        elif src in datasets and datasets[src].location.lower() == location.lower():
            chosen = {src: datasets[src]}
        else:
            raise ApiError(404, "notFound", f"Not found: Dataset {project}:{src} was not found in location {location}")
        rows = _rows(chosen, params.get("max_tables", 1 << 62), params.get("max_columns", 1 << 62))
        job: dict[str, Any] = {"project": project, "id": f"job_{secrets.token_hex(12)}", "location": location.upper(),
               "rows": rows, "sql": sql}
        with self._lock:
            self._jobs[job["id"]] = job
        page = self._page(job, {"maxResults": [str(body["maxResults"])]} if "maxResults" in body else {})
        return {**page, "kind": "bigquery#queryResponse", "queryId": job["id"]}

    def _page(self, job: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
        start = int(query.get("pageToken", query.get("startIndex", ["0"]))[0])
        size = min(int(query.get("maxResults", [str(self.page_rows)])[0]), self.page_rows)
        rows = job["rows"][start:start + size]
        page: dict[str, Any] = {
            "kind": "bigquery#getQueryResultsResponse", "etag": "standin", "jobComplete": True,
            "jobReference": {"projectId": job["project"], "jobId": job["id"], "location": job["location"]},
            "schema": {"fields": [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in FIELDS]},
            "totalRows": str(len(job["rows"])), "totalBytesProcessed": "0", "cacheHit": False,
            "rows": [{"f": [{"v": v} for v in row]} for row in rows],
        }
        if start + len(rows) < len(job["rows"]):
            page["pageToken"] = str(start + len(rows))
        return page


def _dataset(project: str, name: str, ds: Dataset) -> dict[str, Any]:
    return {"kind": "bigquery#dataset", "id": f"{project}:{name}", "location": ds.location, "type": "DEFAULT",
            "datasetReference": {"projectId": project, "datasetId": name},
            "creationTime": "1700000000000", "lastModifiedTime": "1700000000000"}


def _job_resource(job: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "bigquery#job", "id": f"{job['project']}:{job['location']}.{job['id']}",
            "jobReference": {"projectId": job["project"], "jobId": job["id"], "location": job["location"]},
            "configuration": {"jobType": "QUERY", "query": {"query": job["sql"], "useLegacySql": False}},
            "status": {"state": "DONE"},
            "statistics": {"creationTime": "1700000000000", "startTime": "1700000000000",
                           "endTime": "1700000000001", "query": {"totalBytesProcessed": "0", "cacheHit": False,
                                                                 "statementType": "SELECT"}}}


def _rows(datasets: dict[str, Dataset], max_tables: int, max_columns: int) -> list[list[str]]:
    """What the catalogue query yields: ordered by dataset, table, ordinal, both bounds applied."""
    rows: list[list[str]] = []
    tables = sorted((name, tname, table) for name, ds in datasets.items() for tname, table in ds.tables.items())
    for schema, name, table in tables[:max_tables]:
        for ordinal, (column, data_type, nullable) in enumerate(table.columns[:max_columns], start=1):
            rows.append([schema, name, table.table_type, column, data_type, "YES" if nullable else "NO",
                         str(ordinal)])
    return rows


def serve_bigquery(standin: BigQueryStandIn,
                   tls: tuple[str, str] | None = None) -> AbstractContextManager[BigQueryStandIn]:
    """Run ``standin`` on 127.0.0.1 (ephemeral port) in a thread until the block ends; over TLS with
    ``tls`` = (certificate PEM, key PEM)."""
    return serve(standin, tls, "bigquery-standin")
