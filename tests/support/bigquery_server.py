"""A protocol stand-in for Google's OAuth 2.0 token endpoint and the BigQuery REST API v2.

One threaded ``http.server`` on 127.0.0.1 (ephemeral port, optionally over TLS) answers what google-auth and
google-cloud-bigquery send, in Google's own shapes:

- ``POST /token`` (form ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>``):
  the assertion must be an RS256 JWT whose signature verifies with the public key registered for
  its ``iss`` (the service account's ``client_email``), with ``aud`` = Google's token URL, a BigQuery
  or cloud-platform ``scope`` and a live ``exp``. Answers ``{"access_token", "expires_in",
  "token_type"}``; otherwise 400 ``{"error": "invalid_grant", "error_description": ...}``.
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

import base64
import json
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AUDIENCE = "https://oauth2.googleapis.com/token"  # google-auth's ``aud`` whatever the token_uri
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


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    def body(self) -> dict[str, Any]:
        statuses = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND"}
        return {"error": {"code": self.status, "message": self.message, "status": statuses.get(self.status, ""),
                          "errors": [{"message": self.message, "domain": "global", "reason": self.reason}]}}


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@dataclass
class BigQueryStandIn:
    """Projects -> datasets -> tables, the service accounts it trusts, and what clients sent."""

    projects: dict[str, dict[str, Dataset]] = field(default_factory=dict)
    public_keys: dict[str, rsa.RSAPublicKey] = field(default_factory=dict)  # client_email -> key
    page_rows: int = 20_000
    requests: list[tuple[str, str]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    port: int = 0
    scheme: str = "http"
    _jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def api_requests(self, method: str = "", prefix: str = "/bigquery/") -> list[tuple[str, str]]:
        return [r for r in self.requests if r[1].startswith(prefix) and (not method or r[0] == method)]

    # --- OAuth ------------------------------------------------------------------------------------

    def grant(self, form: dict[str, list[str]]) -> dict[str, Any]:
        def refuse(description: str) -> ApiError:
            return ApiError(400, "invalid_grant", description)

        if form.get("grant_type") != [JWT_BEARER] or len(form.get("assertion", [])) != 1:
            raise ApiError(400, "unsupported_grant_type", "Invalid grant_type.")
        try:
            head, body, signature = form["assertion"][0].split(".")
            header, claims = json.loads(_b64(head)), json.loads(_b64(body))
        except ValueError:
            raise refuse("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.") from None
        key = self.public_keys.get(str(claims.get("iss")))
        if header.get("alg") != "RS256" or key is None:
            raise refuse("Invalid JWT Signature.")
        try:
            key.verify(_b64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise refuse("Invalid JWT Signature.") from None
        now = time.time()
        if claims.get("aud") != AUDIENCE:
            raise refuse("Invalid JWT: Failed audience check.")
        if not now - 300 < float(claims.get("exp", 0)) <= now + 3900:
            raise refuse("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.")
        if not set(str(claims.get("scope", "")).split()) & set(SCOPES):
            raise ApiError(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        token = f"ya29.standin-{secrets.token_urlsafe(24)}"
        with self._lock:
            self.tokens.add(token)
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

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
        job = {"project": project, "id": f"job_{secrets.token_hex(12)}", "location": location.upper(),
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body: no Nagle delay

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read ``requests`` instead
        pass

    def _answer(self, status: int, payload: dict[str, Any] | None) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self) -> None:
        standin = self.server.standin
        parts = urlsplit(self.path)
        with standin._lock:
            standin.requests.append((self.command, parts.path))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            if self.command == "HEAD":
                raise ApiError(404, "notFound", "Not found.")
            if parts.path == "/token" and self.command == "POST":
                self._answer(200, standin.grant(parse_qs(raw.decode())))
                return
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[len("Bearer "):] not in standin.tokens:
                raise ApiError(401, "required", "Request is missing required authentication credential. "
                                                "Expected OAuth 2 access token.")
            body = json.loads(raw) if raw else {}
            self._answer(200, standin.api(self.command, parts.path, parse_qs(parts.query), body))
        except ApiError as exc:
            if parts.path == "/token":
                self._answer(exc.status, {"error": exc.reason, "error_description": exc.message})
            else:
                self._answer(exc.status, exc.body())

    do_GET = do_POST = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: BigQueryStandIn

    def handle_error(self, request: Any, client_address: Any) -> None:  # refused TLS handshakes: expected
        pass


@contextmanager
def serve_bigquery(standin: BigQueryStandIn, tls: tuple[str, str] | None = None) -> Iterator[BigQueryStandIn]:
    """Run ``standin`` on 127.0.0.1 (ephemeral port) in a thread until the block ends; over TLS with
    ``tls`` = (certificate PEM, key PEM)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.standin = standin
    standin.port = server.server_address[1]
    if tls:
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            cert.write_text(tls[0])
            key.write_text(tls[1])
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        standin.scheme = "https"
    thread = threading.Thread(target=server.serve_forever, name="bigquery-standin", daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
