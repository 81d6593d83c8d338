"""A Firebolt stand-in: the HTTP endpoints firebolt-sdk 1.19 calls for a client-credentials connection.

One threaded ``http.server`` on 127.0.0.1 (plain HTTP, or HTTPS with a test certificate) plays the
identity host, the API host and the engines (the connector requests the token from an IP-literal
endpoint itself). Answered:

- ``HEAD /`` -> 200 (the connector's reach probe).
- ``POST /oauth/token``, form ``client_id``, ``client_secret``, ``grant_type=client_credentials``,
  ``audience`` -> 200 ``{"access_token", "token_type": "Bearer", "expires_in"}``; a wrong client or
  secret -> 401 ``{"error": "access_denied", "error_description": "Unauthorized"}``.
- ``GET /web/v3/account/<account>/engineUrl`` (Bearer) -> 200 ``{"engineUrl": <system engine>}``
  (``engine_url``, default this server); unknown account -> 404; bad token -> 401.
- ``POST /?output_format=JSON_Compact[&database=..&engine=..]`` (Bearer), one SQL statement as the body:
  ``USE DATABASE "<db>"`` -> empty result and ``Firebolt-Update-Parameters: database=<db>``;
  ``USE ENGINE "<engine>"`` -> empty result and ``Firebolt-Update-Parameters: engine=<engine>``, or
  ``Firebolt-Update-Endpoint: <engine_endpoint>`` when that is set (the SDK keeps only the header's
  host and goes there over https on 443, so this server cannot move the session to its own port:
  the header is for pointing at a host the test expects to be refused);
  ``SELECT VERSION()`` -> one row;
  ``SELECT COUNT(*) FROM information_schema.schemata WHERE catalog_name = '<db>' AND schema_name = '<schema>'``
  -> one row, 1 when the database is this one and the schema exists (``public``, ``information_schema``,
  the schema of a table in ``tables``, or one of ``schemas``), else 0 (as Firebolt's view lists it);
  the catalogue query (``information_schema.columns`` joined with ``information_schema.tables``,
  filtered by ``table_catalog = '<db>'`` and optionally ``table_schema = '<schema>'``) -> one row per
  column of ``tables``; anything else, an unknown database or engine -> 500 with Firebolt's structured
  error body ``{"errors": [{"severity", "name", "description"}]}`` (the SDK's OperationalError).
  Results use the JSON_Compact format: ``{"meta": [{"name", "type"}], "data": [[...]], "rows",
  "statistics"}``.
- anything else -> 404.

Every request is recorded (method, path, query parameters, body with the secret masked), and so
is every path whose request carried the client secret anywhere (body, URL or headers).
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Column = tuple[str, str, bool]  # name, Firebolt type, nullable
ACCOUNT_PATH = re.compile(r"^/web/v3/account/([^/]+)/engineUrl$")
USE = re.compile(r'^\s*USE\s+(DATABASE|ENGINE)\s+"((?:[^"]|"")*)"\s*;?\s*$', re.I)
WHERE_VALUE = r"{column}\s*=\s*'((?:[^']|'')*)'"
STATISTICS = {"elapsed": 0.001, "rows_read": 0, "bytes_read": 0, "time_before_execution": 0.0,
              "time_to_execute": 0.001}


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    body: str


@dataclass
class FireboltStandIn:
    """What the stand-in accepts and serves; change the fields between requests to steer it."""

    client_id: str = "svc-client"
    client_secret: str = "s3cret-value"
    account: str = "acme"
    database: str = "shop"
    engine: str = "reporting"
    version: str = "4.21.7"
    tables: dict[str, list[Column]] = field(default_factory=dict)  # "schema.name" or "name" (public)
    views: set[str] = field(default_factory=set)
    schemas: set[str] = field(default_factory=set)  # schemas without tables (public and information_schema exist)
    engine_url: str = ""  # what the engine URL lookup returns (default: this server)
    engine_endpoint: str = ""  # sent as Firebolt-Update-Endpoint on USE ENGINE when set
    requests: list[Request] = field(default_factory=list)
    secret_seen_at: list[str] = field(default_factory=list)  # paths whose request carried the secret
    tokens: set[str] = field(default_factory=set)
    port: int = 0
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def queries(self, contains: str = "") -> list[str]:
        """SQL statements received (those containing ``contains``, case-insensitive)."""
        return [r.body for r in self.requests
                if r.method == "POST" and r.path != "/oauth/token" and contains.lower() in r.body.lower()]

    def rows(self, sql: str) -> list[list[Any]]:
        """The catalogue rows for the filters of ``sql``."""
        catalog = re.search(WHERE_VALUE.format(column=r"table_catalog"), sql, re.I)
        schema = re.search(WHERE_VALUE.format(column=r"c\.table_schema"), sql, re.I)
        if not catalog or catalog.group(1).replace("''", "'") != self.database:
            return []
        wanted = schema.group(1).replace("''", "'") if schema else None
        rows = []
        for key in sorted(self.tables, key=lambda k: _split(k)):
            table_schema, name = _split(key)
            if wanted is not None and table_schema != wanted:
                continue
            kind = "VIEW" if key in self.views else "BASE TABLE"
            for position, (column, data_type, nullable) in enumerate(self.tables[key], start=1):
                rows.append([table_schema, name, kind, column, data_type, "YES" if nullable else "NO", position])
        return rows


    def has_schema(self, sql: str) -> bool:
        """Whether the ``information_schema.schemata`` look-up of ``sql`` finds its schema in this database."""
        catalog = re.search(WHERE_VALUE.format(column=r"catalog_name"), sql, re.I)
        schema = re.search(WHERE_VALUE.format(column=r"schema_name"), sql, re.I)
        if not catalog or not schema or catalog.group(1).replace("''", "'") != self.database:
            return False
        known = {"public", "information_schema", *self.schemas, *(_split(key)[0] for key in self.tables)}
        return schema.group(1).replace("''", "'") in known


def _split(key: str) -> tuple[str, str]:
    schema, _, name = key.rpartition(".")
    return schema or "public", name


def _handler(state: FireboltStandIn, tls: ssl.SSLContext | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            if tls is not None:  # the handshake in the request's own thread
                self.request = tls.wrap_socket(self.request, server_side=True)
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _record(self, body: str) -> tuple[str, dict[str, str]]:
            parts = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            masked = body.replace(state.client_secret, "***") if state.client_secret else body
            if state.client_secret and (state.client_secret in body or state.client_secret in self.path
                                        or state.client_secret in str(self.headers)):
                state.secret_seen_at.append(parts.path)
            state.requests.append(Request(self.command, parts.path, params, masked))
            return parts.path, params

        def _bearer_ok(self) -> bool:
            header = self.headers.get("Authorization", "")
            return header.startswith("Bearer ") and header[7:] in state.tokens

        def _body(self) -> str:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length).decode() if length else ""

        def do_HEAD(self) -> None:
            self._record("")
            self._send(200)

        def do_GET(self) -> None:
            path, _ = self._record("")
            match = ACCOUNT_PATH.match(path)
            if not match:
                return self._send(404, {"error": "not found"})
            if not self._bearer_ok():
                return self._send(401, {"error": "unauthorized"})
            if match.group(1) != state.account:
                return self._send(404, {"error": "not found"})
            self._send(200, {"engineUrl": state.engine_url or state.url})

        def do_POST(self) -> None:
            body = self._body()
            path, params = self._record(body)
            if path == "/oauth/token":
                return self._token(body)
            if path != "/":
                return self._send(404, {"error": "not found"})
            if not self._bearer_ok():
                return self._send(401, {"error": "unauthorized"})
            if params.get("output_format") != "JSON_Compact":
                return self._error("Unsupported output format.")
            self._query(body, params)

        def _token(self, body: str) -> None:
            form = {k: v[-1] for k, v in parse_qs(body).items()}
            if form.get("grant_type") != "client_credentials":
                return self._send(400, {"error": "unsupported_grant_type"})
            if form.get("client_id") != state.client_id or form.get("client_secret") != state.client_secret:
                return self._send(401, {"error": "access_denied", "error_description": "Unauthorized"})
            token = secrets.token_urlsafe(24)
            state.tokens.add(token)
            self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 86400})

        def _query(self, sql: str, params: dict[str, str]) -> None:
            use = USE.match(sql)
            if use:
                kind, name = use.group(1).upper(), use.group(2).replace('""', '"')
                if kind == "DATABASE":
                    if name != state.database:
                        return self._error(f"Database '{name}' does not exist or not authorized.")
                    return self._result([], [], {"Firebolt-Update-Parameters": f"database={name}"})
                if name != state.engine:
                    return self._error(f"Engine '{name}' does not exist or not authorized.")
                if state.engine_endpoint:
                    return self._result([], [], {"Firebolt-Update-Endpoint": state.engine_endpoint})
                return self._result([], [], {"Firebolt-Update-Parameters": f"engine={name}"})
            if re.fullmatch(r"\s*SELECT\s+VERSION\(\)\s*;?\s*", sql, re.I):
                return self._result([("version()", "text")], [[state.version]])
            if "information_schema.schemata" in sql.lower():
                if params.get("database") != state.database:
                    return self._error("No database selected.")
                return self._result([("count(*)", "long")], [[1 if state.has_schema(sql) else 0]])
            if "information_schema.columns" in sql.lower():
                if params.get("database") != state.database:
                    return self._error("No database selected.")
                meta = [("table_schema", "text"), ("table_name", "text"), ("table_type", "text"),
                        ("column_name", "text"), ("data_type", "text"), ("is_nullable", "text"),
                        ("ordinal_position", "integer")]
                return self._result(meta, state.rows(sql))
            self._error("This stand-in does not run that statement.")

        def _result(self, meta: list[tuple[str, str]], data: list[list[Any]],
                    headers: dict[str, str] | None = None) -> None:
            self._send(200, {"meta": [{"name": n, "type": t} for n, t in meta], "data": data,
                             "rows": len(data), "statistics": STATISTICS}, headers)

        def _error(self, description: str) -> None:
            self._send(500, {"errors": [{"severity": "ERROR", "name": "QueryError", "description": description}]})

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # refused TLS handshakes and dropped clients are part of the tests


@contextmanager
def serve(state: FireboltStandIn, tls: ssl.SSLContext | None = None) -> Iterator[FireboltStandIn]:
    """Run the stand-in on an ephemeral loopback port in a thread (over TLS with ``tls``); yields ``state``."""
    server = _Server(("127.0.0.1", 0), _handler(state, tls))
    state.port = server.server_address[1]
    state.scheme = "https" if tls is not None else "http"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="firebolt-stand-in", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
