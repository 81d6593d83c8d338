"""A stand-in for a Databricks workspace's SQL Statement Execution REST API 2.0 (threaded http.server).

It answers what the connector sends, with Databricks' JSON shapes:

- ``HEAD /`` and ``GET /``: 200 (the HTTP probe of stage tcp).
- ``POST /api/2.0/sql/statements`` {statement, warehouse_id, catalog?, schema?, parameters?, wait_timeout,
  on_wait_timeout, disposition, format, byte_limit?}: checks the Bearer token (none: 401
  ``UNAUTHENTICATED``; wrong: 403 ``PERMISSION_DENIED``), the warehouse id (unknown: 404 ``NOT_FOUND``),
  ``disposition INLINE`` / ``format JSON_ARRAY`` and ``wait_timeout`` 0s or 5s..50s (else 400
  ``INVALID_PARAMETER_VALUE``). Answers ``{statement_id, status: {state}, manifest: {format, schema:
  {column_count, columns}, total_chunk_count, total_row_count, truncated}, result: {chunk_index,
  row_offset, row_count, data_array, next_chunk_index?, next_chunk_internal_link?}}``; a statement is
  ``PENDING`` first when ``pending_polls`` > 0 (or forever with ``hang``). An unknown catalog or schema
  makes it ``FAILED`` with ``status.error`` {error_code BAD_REQUEST, message "[CATALOG_NOT_FOUND] ..." /
  "[SCHEMA_NOT_FOUND] ..."}.
- ``GET /api/2.0/sql/statements/{id}``: the statement, ``RUNNING`` for ``pending_polls`` polls.
- ``GET /api/2.0/sql/statements/{id}/result/chunks/{n}``: the ``result`` object of chunk n
  (``chunk_rows`` rows a chunk; 0: one chunk).
- ``POST /api/2.0/sql/statements/{id}/cancel``: ``{}``; the statement becomes ``CANCELED``.
- With ``redirect_to`` set, every POST is answered ``302 Location: <redirect_to>``.

Statements understood: ``SELECT 1``; ``SELECT current_catalog(), current_schema()``; the connector's
introspection query on ```<catalog>`.information_schema.tables`` joined with ``columns`` (honours its
``LIMIT n`` on tables, ``ordinal_position < n`` on 0-based column positions and the ``:schema``
parameter; views are ``VIEW``, tables ``MANAGED``). Anything else is ``FAILED`` (PARSE_SYNTAX_ERROR).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API = "/api/2.0/sql/statements"
Column = tuple[str, str, bool]  # name, full data type, nullable


@dataclass
class Table:
    columns: list[Column]
    view: bool = False


@dataclass
class Workspace:
    """What the stand-in serves, and what it saw."""

    token: str
    warehouse_id: str = "abc123def456"
    catalogs: dict[str, dict[str, dict[str, Table]]] = field(default_factory=dict)  # catalog -> schema -> tables
    default_catalog: str = "main"
    default_schema: str = "default"
    pending_polls: int = 0
    hang: bool = False
    chunk_rows: int = 0
    redirect_to: str = ""
    echo_token: bool = False  # a hostile server: error messages repeat the Authorization header
    statements: list[dict[str, Any]] = field(default_factory=list)  # every accepted POST body
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    cancelled: list[str] = field(default_factory=list)
    _running: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)


def _failed(code: str, message: str) -> dict[str, Any]:
    return {"state": "FAILED", "error": {"error_code": code, "message": message}}


def _result(columns: list[str], rows: list[list[Any]], chunk_rows: int) -> tuple[dict, list[dict]]:
    size = chunk_rows or max(len(rows), 1)
    chunks = [rows[i:i + size] for i in range(0, len(rows), size)] or [[]]
    results = []
    for index, data in enumerate(chunks):
        result: dict[str, Any] = {"chunk_index": index, "row_offset": index * size, "row_count": len(data),
                                  "data_array": data}
        if index + 1 < len(chunks):
            result["next_chunk_index"] = index + 1
        results.append(result)
    manifest = {
        "format": "JSON_ARRAY",
        "schema": {"column_count": len(columns), "columns": [
            {"name": name, "type_name": "STRING", "type_text": "STRING", "position": i}
            for i, name in enumerate(columns)]},
        "total_chunk_count": len(chunks), "total_row_count": len(rows), "truncated": False,
        "chunks": [{"chunk_index": r["chunk_index"], "row_offset": r["row_offset"], "row_count": r["row_count"]}
                   for r in results],
    }
    return manifest, results


def execute(ws: Workspace, body: dict[str, Any]) -> dict[str, Any]:
    """Run one statement against the table map: ``{status, manifest?, chunks?}``."""
    catalog = body.get("catalog") or ws.default_catalog
    schema = body.get("schema") or ws.default_schema
    params = {p.get("name"): p.get("value") for p in body.get("parameters") or []}
    suffix = f" (token {ws.token})" if ws.echo_token else ""
    if catalog not in ws.catalogs:
        return {"status": _failed("BAD_REQUEST", f"[CATALOG_NOT_FOUND] The catalog `{catalog}` cannot be found."
                                                  f"{suffix}")}
    if schema not in ws.catalogs[catalog]:
        return {"status": _failed("BAD_REQUEST", f"[SCHEMA_NOT_FOUND] The schema `{catalog}`.`{schema}` cannot "
                                                  f"be found. Verify the spelling.{suffix}")}
    sql = " ".join(str(body.get("statement") or "").split())
    if re.fullmatch(r"(?i)select 1", sql):
        columns, rows = ["1"], [["1"]]
    elif re.fullmatch(r"(?i)select current_catalog\(\), current_schema\(\)", sql):
        columns, rows = ["current_catalog()", "current_schema()"], [[catalog, schema]]
    elif (found := re.search(r"(?i)from `((?:[^`]|``)+)`\.information_schema\.tables", sql)) and params.get("schema"):
        limit = int(re.search(r"(?i)limit (\d+)", sql).group(1))  # type: ignore[union-attr]
        bound = int(re.search(r"ordinal_position < (\d+)", sql).group(1))  # type: ignore[union-attr]
        tables = ws.catalogs.get(found.group(1).replace("``", "`"), {}).get(str(params["schema"]), {})
        columns = ["table_name", "table_type", "column_name", "full_data_type", "is_nullable", "ordinal_position"]
        rows = []
        for name in sorted(tables)[:limit]:
            table = tables[name]
            kind = "VIEW" if table.view else "MANAGED"
            described = [[name, kind, c, t, "YES" if n else "NO", str(i)]
                         for i, (c, t, n) in enumerate(table.columns) if i < bound]
            rows.extend(described or [[name, kind, None, None, None, None]])
    else:
        return {"status": _failed("BAD_REQUEST", f"[PARSE_SYNTAX_ERROR] Syntax error in: {sql[:40]}")}
    manifest, chunks = _result(columns, rows, ws.chunk_rows)
    return {"status": {"state": "SUCCEEDED"}, "manifest": manifest, "chunks": chunks}


def _public(statement_id: str, record: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {"statement_id": statement_id, "status": record["status"]}
    if record["status"]["state"] == "SUCCEEDED":
        answer["manifest"] = record["manifest"]
        answer["result"] = record["chunks"][0]
    return answer


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall between them

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, code: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body if body is not None else {}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _authorized(self) -> bool:
        ws = self.server.workspace
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Bearer "):
            self._send(401, {"error_code": "UNAUTHENTICATED", "message": "No access token was given."})
            return False
        if header[len("Bearer "):] != ws.token:
            echo = f" {header}" if ws.echo_token else ""
            self._send(403, {"error_code": "PERMISSION_DENIED", "message": f"Invalid access token.{echo}"})
            return False
        return True

    def do_HEAD(self) -> None:
        self.server.workspace.requests.append(("HEAD", self.path))
        self._send(200)

    def do_GET(self) -> None:
        ws = self.server.workspace
        ws.requests.append(("GET", self.path))
        if not self.path.startswith(API):
            return self._send(200, {})
        if not self._authorized():
            return None
        match = re.fullmatch(rf"{API}/([\w-]+)(?:/result/chunks/(\d+))?", self.path)
        record = ws._running.get(match.group(1)) if match else None
        if match is None or record is None:
            return self._send(404, {"error_code": "NOT_FOUND", "message": "No such statement."})
        with ws._lock:
            if record["status"]["state"] in ("PENDING", "RUNNING") and not ws.hang:
                record["polls"] -= 1
                if record["polls"] < 0:
                    record.update(execute(ws, record["body"]))
                else:
                    record["status"] = {"state": "RUNNING"}
        if match.group(2) is not None:
            chunks = record.get("chunks") or []
            index = int(match.group(2))
            if index >= len(chunks):
                return self._send(404, {"error_code": "NOT_FOUND", "message": "No such chunk."})
            return self._send(200, chunks[index])
        return self._send(200, _public(match.group(1), record))

    def do_POST(self) -> None:
        ws = self.server.workspace
        ws.requests.append(("POST", self.path))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if ws.redirect_to:
            return self._send(302, {}, {"Location": ws.redirect_to})
        if not self._authorized():
            return None
        cancel = re.fullmatch(rf"{API}/([\w-]+)/cancel", self.path)
        if cancel:
            ws.cancelled.append(cancel.group(1))
            record = ws._running.get(cancel.group(1))
            if record is not None:
                record["status"] = {"state": "CANCELED"}
            return self._send(200, {})
        if self.path != API:
            return self._send(404, {"error_code": "NOT_FOUND", "message": "No such endpoint."})
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._send(400, {"error_code": "MALFORMED_REQUEST", "message": "Invalid JSON."})
        if body.get("warehouse_id") != ws.warehouse_id:
            return self._send(404, {"error_code": "NOT_FOUND",
                                    "message": f"SQL warehouse {body.get('warehouse_id')} does not exist."})
        wait = str(body.get("wait_timeout") or "10s")
        valid = body.get("disposition") == "INLINE" and body.get("format") == "JSON_ARRAY" and (
            re.fullmatch(r"(\d+)s", wait) and (wait == "0s" or 5 <= int(wait[:-1]) <= 50))
        if not valid:
            return self._send(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid parameters."})
        ws.statements.append(body)
        statement_id = str(uuid.uuid4())
        record: dict[str, Any] = {"body": body, "polls": ws.pending_polls, "status": {"state": "PENDING"}}
        if not ws.hang and ws.pending_polls <= 0:
            record.update(execute(ws, body))
        ws._running[statement_id] = record
        return self._send(200, _public(statement_id, record))


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, workspace: Workspace):
        super().__init__(("127.0.0.1", 0), Handler)
        self.workspace = workspace


@contextmanager
def serve(workspace: Workspace) -> Iterator[str]:
    """Run the stand-in on an ephemeral loopback port; yields its base URL."""
    server = Server(workspace)
    thread = threading.Thread(target=server.serve_forever, name="databricks-stand-in", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
