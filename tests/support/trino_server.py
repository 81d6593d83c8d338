"""A Trino coordinator stand-in: the client REST protocol (``/v1/statement`` + ``nextUri``) on 127.0.0.1.

It answers what the real ``trino`` Python client (0.340.0) sends, over HTTP or HTTPS (``tls``: a
server certificate from ``tests.support.certs``; the handshake runs in the connection's thread):

- ``HEAD /`` and ``GET /``: 303 to ``/ui/``, as a coordinator does (proof of an HTTP server).
- ``POST /v1/statement``, the body is the SQL. ``X-Trino-User`` is required (400 without);
  ``X-Trino-Catalog`` / ``X-Trino-Schema`` are recorded. With a ``password`` every ``/v1/`` request
  needs ``Authorization: Basic`` for it (401 with ``WWW-Authenticate: Basic realm="Trino"``
  otherwise). Answer: QueryResults JSON in state QUEUED: ``id``, ``infoUri``, ``stats`` and
  ``nextUri`` = ``<base>/v1/statement/queued/<id>/<slug>/1``.
- ``GET /v1/statement/queued|executing/<id>/<slug>/<token>``: the next page: ``columns`` (name,
  type, typeSignature), ``data`` (at most ``page_rows`` rows), ``stats.state`` RUNNING with a
  ``nextUri`` (``.../executing/<id>/<slug>/<token+1>``) while rows remain, FINISHED without one on
  the last page; a failed statement: state FAILED and ``error`` {message, errorCode, errorName,
  errorType, errorLocation}. Unknown query or token: 404.
- ``DELETE`` on a ``nextUri``: 204, the query is cancelled (its id recorded in ``cancelled``).
- Anything else: 404.

SQL answered (the connector's statements, recognised by pattern; any other fails NOT_SUPPORTED):

- ``SELECT version()``: one varchar row, ``version``.
- ``SELECT schema_name FROM "<catalog>".information_schema.schemata WHERE schema_name = '<schema>'``:
  that schema's row if it exists.
- ``SELECT ... FROM "<catalog>".information_schema.tables ... JOIN "<catalog>".information_schema.columns
  ... WHERE t.table_schema = '<schema>' ...``: one row per column (a column-less table: one row with
  NULLs) as table_name, table_type, column_name, data_type, is_nullable, by table then ordinal.
- A statement naming an unknown catalog fails CATALOG_NOT_FOUND (USER_ERROR), as Trino's does.

Hostile coordinators: ``next_host`` (``"169.254.169.254"``, ``"http://127.0.0.1:8080"``) makes every
``nextUri`` point elsewhere; ``spool_to`` (a URL) answers every page as a spooled segment at that URL (the spooling
protocol's ``data`` object {encoding, segments [{type "spooled", uri, ackUri, metadata}]}) though the
client never asked for it. Records: ``statements`` (SQL of each POST), ``requests`` (method, path, headers),
``cancelled``. Start with ``with TrinoServer(...) as server:`` (ephemeral port, daemon threads).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.certs import Issued

IDENT = r'"((?:[^"]|"")+)"'
LITERAL = r"'((?:[^']|'')*)'"
SCHEMATA = re.compile(rf"FROM\s+{IDENT}\.information_schema\.schemata\s+WHERE\s+schema_name\s*=\s*{LITERAL}", re.I)
COLUMNS = re.compile(rf"FROM\s+{IDENT}\.information_schema\.tables\b.*table_schema\s*=\s*{LITERAL}", re.I | re.S)
VERSION = re.compile(r"^\s*SELECT\s+version\(\)\s*$", re.I)
PATH = re.compile(r"^/v1/statement/(queued|executing)/([\w-]+)/(\w+)/(\d+)$")


@dataclass
class Table:
    """A table (``BASE TABLE``) or view (``VIEW``) with (name, Trino type, nullable) columns."""

    name: str
    columns: list[tuple[str, str, bool]] = field(default_factory=list)
    kind: str = "BASE TABLE"


Catalogs = dict[str, dict[str, list[Table]]]  # catalog -> schema -> tables


@dataclass
class _Query:
    id: str
    slug: str
    sql: str
    token: int = 1
    columns: list[dict[str, Any]] | None = None
    rows: list[list[Any]] | None = None
    error: dict[str, Any] | None = None
    sent: int = 0


def _column(name: str) -> dict[str, Any]:
    signature = {"rawType": "varchar", "arguments": [{"kind": "LONG", "value": 2147483647}]}
    return {"name": name, "type": "varchar", "typeSignature": signature}


def _unquote(text: str, quote: str) -> str:
    return text.replace(quote * 2, quote)


def _error(name: str, message: str, code: int = 1) -> dict[str, Any]:
    return {"message": message, "errorCode": code, "errorName": name, "errorType": "USER_ERROR",
            "errorLocation": {"lineNumber": 1, "columnNumber": 1}, "failureInfo": {"type": "TrinoException"}}


class TrinoServer:
    """The stand-in; ``catalogs`` is what it serves, ``password`` what Basic auth must carry."""

    def __init__(self, catalogs: Catalogs, password: str = "", tls: Issued | None = None, page_rows: int = 500,
                 version: str = "468", next_host: str = "", spool_to: str = ""):
        self.catalogs = catalogs
        self.password = password
        self.page_rows = page_rows
        self.version = version
        self.next_host = next_host
        self.spool_to = spool_to
        self.statements: list[str] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.cancelled: list[str] = []
        self.queries: dict[str, _Query] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="trino-standin-")
        self.context: ssl.SSLContext | None = None
        if tls is not None:
            cert, key = Path(self._tmp.name, "cert.pem"), Path(self._tmp.name, "key.pem")
            cert.write_text(tls.cert_pem)
            key.write_text(tls.key_pem)
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(str(cert), str(key))
        self.httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self.host, self.port = "127.0.0.1", self.httpd.server_address[1]
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="trino-standin", daemon=True)

    def __enter__(self) -> TrinoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._tmp.cleanup()

    # --- the statements ---------------------------------------------------------------------------

    def run(self, sql: str) -> tuple[list[dict[str, Any]], list[list[Any]]] | dict[str, Any]:
        """Columns and rows of ``sql``, or an error object."""
        if VERSION.match(sql):
            return [_column("_col0")], [[self.version]]
        if found := SCHEMATA.search(sql):
            catalog, schema = _unquote(found.group(1), '"'), _unquote(found.group(2), "'")
            if catalog not in self.catalogs:
                return _error("CATALOG_NOT_FOUND", f"line 1:27: Catalog '{catalog}' not found", 44)
            return [_column("schema_name")], [[schema]] if schema in self.catalogs[catalog] else []
        if found := COLUMNS.search(sql):
            catalog, schema = _unquote(found.group(1), '"'), _unquote(found.group(2), "'")
            if catalog not in self.catalogs:
                return _error("CATALOG_NOT_FOUND", f"line 1:90: Catalog '{catalog}' not found", 44)
            rows: list[list[Any]] = []
            for table in sorted(self.catalogs[catalog].get(schema, []), key=lambda t: t.name):
                for name, data_type, nullable in table.columns:
                    rows.append([table.name, table.kind, name, data_type, "YES" if nullable else "NO"])
                if not table.columns:
                    rows.append([table.name, table.kind, None, None, None])
            names = ("table_name", "table_type", "column_name", "data_type", "is_nullable")
            return [_column(n) for n in names], rows
        return _error("NOT_SUPPORTED", "The stand-in does not answer this statement.", 13)

    def base_url(self, handler: BaseHTTPRequestHandler) -> str:
        if self.next_host:
            return self.next_host if "://" in self.next_host else f"{self.scheme}://{self.next_host}"
        return f"{self.scheme}://{handler.headers.get('Host') or f'{self.host}:{self.port}'}"

    def results(self, query: _Query, base: str, state: str, data: list[list[Any]] | None = None,
                next_uri: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": query.id, "infoUri": f"{base}/ui/query.html?{query.id}",
            "stats": {"state": state, "queued": state == "QUEUED", "scheduled": state != "QUEUED", "nodes": 1,
                      "totalSplits": 0, "completedSplits": 0, "processedRows": 0, "processedBytes": 0,
                      "elapsedTimeMillis": 0, "queuedTimeMillis": 0, "cpuTimeMillis": 0, "wallTimeMillis": 0},
            "warnings": [],
        }
        if next_uri:
            body["nextUri"] = next_uri
        if query.columns is not None:
            body["columns"] = query.columns
        if data and self.spool_to:
            segment = {"type": "spooled", "uri": self.spool_to, "ackUri": self.spool_to, "headers": {},
                       "metadata": {"segmentSize": 1, "rowsCount": len(data), "rowOffset": 0}}
            body["data"] = {"encoding": "json", "segments": [segment]}
        elif data:
            body["data"] = data
        if query.error is not None:
            body["error"] = query.error
        return body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], standin: TrinoServer):
        self.standin = standin
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake in this connection's own thread: a silent client cannot stall the others."""
        context = self.standin.context
        if context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(10)
        try:
            wrapped = context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections end
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall between them
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def standin(self) -> TrinoServer:
        return self.server.standin

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None and not isinstance(body, bytes):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _record(self) -> bool:
        """Record the request; answer 401 and return False when the password is wrong or missing."""
        self.standin.requests.append((self.command, self.path, dict(self.headers.items())))
        if not self.path.startswith("/v1/") or not self.standin.password:
            return True
        expected = "Basic " + base64.b64encode(f"{self.headers.get('X-Trino-User', '')}:"
                                               f"{self.standin.password}".encode()).decode()
        if secrets.compare_digest(self.headers.get("Authorization", ""), expected):
            return True
        self._send(401, b"Unauthorized", {"WWW-Authenticate": 'Basic realm="Trino"', "Content-Type": "text/plain"})
        return False

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._record():
            return
        if self.path == "/":
            self._send(303, b"", {"Location": "/ui/"})
            return
        found = PATH.match(self.path)
        query = self.standin.queries.get(found.group(2)) if found else None
        if found is None or query is None or found.group(3) != query.slug or int(found.group(4)) != query.token:
            self._send(404, b"Query not found", {"Content-Type": "text/plain"})
            return
        base = self.standin.base_url(self)
        if query.columns is None and query.error is None:
            outcome = self.standin.run(query.sql)
            if isinstance(outcome, dict):
                query.error = outcome
            else:
                query.columns, query.rows = outcome
        if query.error is not None:
            self._send(200, self.standin.results(query, base, "FAILED"))
            return
        rows = query.rows or []
        page = rows[query.sent:query.sent + self.standin.page_rows]
        query.sent += len(page)
        query.token += 1
        more = query.sent < len(rows)
        next_uri = f"{base}/v1/statement/executing/{query.id}/{query.slug}/{query.token}" if more else None
        self._send(200, self.standin.results(query, base, "RUNNING" if more else "FINISHED", page, next_uri))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        sql = self.rfile.read(length).decode("utf-8", "replace")
        if not self._record():
            return
        if self.path != "/v1/statement":
            self._send(404, b"Not found", {"Content-Type": "text/plain"})
            return
        if not self.headers.get("X-Trino-User"):
            self._send(400, b"User must be set", {"Content-Type": "text/plain"})
            return
        with self.standin._lock:
            number = next(self.standin._ids)
        query = _Query(f"20250101_000000_{number:05d}_stand", secrets.token_hex(8), sql)
        self.standin.queries[query.id] = query
        self.standin.statements.append(sql)
        base = self.standin.base_url(self)
        next_uri = f"{base}/v1/statement/queued/{query.id}/{query.slug}/1"
        self._send(200, self.standin.results(query, base, "QUEUED", None, next_uri))

    def do_DELETE(self) -> None:
        if not self._record():
            return
        found = PATH.match(self.path)
        if found is None or found.group(2) not in self.standin.queries:
            self._send(404, b"Query not found", {"Content-Type": "text/plain"})
            return
        self.standin.cancelled.append(found.group(2))
        self._send(204)
