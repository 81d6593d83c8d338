"""fakesnow's Snowflake emulator in server mode, with the login checks fakesnow leaves out.

fakesnow (DuckDB underneath) answers the REST routes snowflake-connector-python 4.x uses:

- ``POST /session/v1/login-request``: the login (body ``data.LOGIN_NAME``, ``data.PASSWORD`` or, for
  key-pair auth, ``data.AUTHENTICATOR = SNOWFLAKE_JWT`` with ``data.TOKEN``); answers a session token.
- ``POST /queries/v1/query-request``: one SQL statement (``sqlText``); answers rowtype + Arrow rowset.
- ``POST /queries/v1/abort-request``, ``POST /session`` (``?delete=true`` on close),
  ``POST /session/heartbeat``, ``GET /monitoring/queries/{id}``.

fakesnow accepts any password, so its login route is wrapped here: the body is checked first and a
wrong password gets Snowflake's own failure answer (HTTP 200, ``success: false``, code 390100
"Incorrect username or password was specified.", ``data.nextAction = RETRY_LOGIN``); a JWT that is
not signed by the user's registered public key, or whose ``iss``/``sub`` do not name
``ACCOUNT.USER[.SHA256:fingerprint]``, gets code 390144 "JWT token is invalid.". Every SQL text
received is recorded (``queries``) and every request path (``requests``), so tests can count what
the connector sent. ``serve_snowflake`` runs it with uvicorn on 127.0.0.1, an ephemeral port, in a
thread (optionally over TLS); ``run_sql`` sets up data in the same in-memory DuckDB.

fakesnow also runs ``USE ROLE`` and ``USE WAREHOUSE`` as no-ops (DuckDB has neither), so any name passes.
With ``roles`` / ``warehouses`` set, the query route refuses a ``USE`` of a name outside them as Snowflake
does (HTTP 200, ``success: false``): role, code 002003 "SQL compilation error: Role 'X' does not exist or
not authorized."; warehouse, code 002043 "SQL compilation error: Object does not exist, or operation cannot
be performed." (SQL state 02000). Unquoted names compare upper-cased, quoted ones as written. Databases
and schemas are fakesnow's own: a ``USE`` of one that does not exist fails there.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fakesnow.server as fake
import jwt
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

LOGIN_PATH = "/session/v1/login-request"
QUERY_PATH = "/queries/v1/query-request"


@dataclass
class SnowflakeServer:
    """Users the login accepts (password or public key) and what the connector sent."""

    host: str = "127.0.0.1"
    port: int = 0
    scheme: str = "http"
    passwords: dict[str, str] = field(default_factory=dict)  # user (upper case) -> password
    public_keys: dict[str, Any] = field(default_factory=dict)  # user (upper case) -> public key
    queries: list[str] = field(default_factory=list)  # SQL texts received, in order
    requests: list[str] = field(default_factory=list)  # "METHOD /path" of every request
    logins: list[dict[str, Any]] = field(default_factory=list)  # login bodies (``data``), secrets removed
    roles: set[str] | None = None  # the roles USE ROLE accepts (None: any, fakesnow's no-op)
    warehouses: set[str] | None = None  # the warehouses USE WAREHOUSE accepts (None: any)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def reset(self) -> None:
        self.queries.clear()
        self.requests.clear()
        self.logins.clear()


def _failure(code: str, message: str, method: str, user: str) -> JSONResponse:
    """The body Snowflake answers a refused login with (HTTP 200, ``success: false``)."""
    data = {"nextAction": "RETRY_LOGIN", "authnMethod": method, "loginName": user,
            "requestId": str(uuid.uuid4()), "signInOptions": {}, "errorCode": code}
    return JSONResponse({"data": data, "code": code, "message": message, "success": False, "headers": None})


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()  # starlette caches it: fakesnow's handler reads it again
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return json.loads(body)


USE_OBJECT = re.compile(r'^\s*USE\s+(ROLE|WAREHOUSE)\s+("(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*)\s*;?\s*$', re.I)


def _refused_use(server: SnowflakeServer, sql: str) -> JSONResponse | None:
    """Snowflake's error answer to a ``USE ROLE`` / ``USE WAREHOUSE`` of a name the server does not have."""
    match = USE_OBJECT.match(sql)
    if not match:
        return None
    kind, raw = match.group(1).upper(), match.group(2)
    name = raw[1:-1].replace('""', '"') if raw.startswith('"') else raw.upper()
    known = server.roles if kind == "ROLE" else server.warehouses
    if known is None or name in known:
        return None
    code, message = (("002003", f"SQL compilation error:\nRole '{name}' does not exist or not authorized.")
                     if kind == "ROLE" else
                     ("002043", "SQL compilation error:\nObject does not exist, or operation cannot be performed."))
    return JSONResponse({"data": {"errorCode": code, "sqlState": "02000"}, "code": code, "message": message,
                         "success": False})


def _fingerprint(public_key: Any) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def _jwt_valid(token: str, account: str, user: str, public_key: Any) -> bool:
    """Snowflake's key-pair check: signed by the registered key, iss ACCOUNT.USER.SHA256:fp, sub ACCOUNT.USER."""
    try:
        claims = jwt.decode(token, public_key, algorithms=["RS256", "ES256", "ES384", "ES512"],
                            options={"require": ["iss", "sub", "iat", "exp"]})
    except jwt.PyJWTError:
        return False
    principal = f"{account.partition('.')[0].upper()}.{user}"
    return claims["sub"] == principal and claims["iss"] == f"{principal}.{_fingerprint(public_key)}"


def build_app(server: SnowflakeServer) -> Any:
    """fakesnow's routes, its login wrapped by the credential check, its query route by a recorder."""

    async def login(request: Request) -> Response:
        data = (await _json_body(request)).get("data") or {}
        user = str(data.get("LOGIN_NAME") or "").upper()
        server.logins.append({k: v for k, v in data.items() if k not in ("PASSWORD", "TOKEN")})
        if str(data.get("AUTHENTICATOR") or "").upper() == "SNOWFLAKE_JWT":
            key = server.public_keys.get(user)
            if key is None or not _jwt_valid(str(data.get("TOKEN") or ""), str(data.get("ACCOUNT_NAME")), user, key):
                return _failure("390144", f"JWT token is invalid. [{uuid.uuid4()}]", "KEY_PAIR", user)
        elif user not in server.passwords or data.get("PASSWORD") != server.passwords[user]:
            return _failure("390100", "Incorrect username or password was specified.", "USERNAME_PASSWORD", user)
        return await fake.login_request(request)

    async def query(request: Request) -> Response:
        sql = ""
        try:
            sql = str((await _json_body(request)).get("sqlText") or "")
            server.queries.append(sql)
        except (ValueError, OSError):
            pass
        return _refused_use(server, sql) or await fake.query_request(request)

    replaced = {LOGIN_PATH: login, QUERY_PATH: query}
    routes = [Route(r.path, replaced.get(r.path, r.endpoint), methods=list(r.methods or ()))
              for r in fake.routes]
    app = Starlette(routes=routes)

    async def recorded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            server.requests.append(f"{scope['method']} {scope['path']}")
        await app(scope, receive, send)

    return recorded


def run_sql(*statements: str) -> None:
    """Run statements (Snowflake SQL) on fakesnow's shared in-memory database, the one the server serves."""
    cur = fake.shared_fs.connect().cursor()
    try:
        for statement in statements:
            cur.execute(statement)
    finally:
        cur.close()


@contextmanager
def serve_snowflake(server: SnowflakeServer | None = None, tls: tuple[str, str] | None = None) -> Iterator[
        SnowflakeServer]:
    """Serve ``build_app`` with uvicorn on ``server.host`` (ephemeral port) in a thread; ``tls``: (cert, key) PEM."""
    import uvicorn

    server = server or SnowflakeServer()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets: no 40 ms ACK waits
    sock.bind((server.host, 0))
    server.port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="fakesnow-tls-") as tmp:
        options: dict[str, Any] = {}
        if tls:
            cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            cert.write_text(tls[0])
            key.write_text(tls[1])
            options = {"ssl_certfile": str(cert), "ssl_keyfile": str(key), "ssl_version": ssl.PROTOCOL_TLS_SERVER}
            server.scheme = "https"
        config = uvicorn.Config(build_app(server), log_level="warning", lifespan="off", **options)
        runner = uvicorn.Server(config)
        thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, name="fakesnow", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not runner.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not runner.started:
            raise RuntimeError("fakesnow's server did not start")
        try:
            yield server
        finally:
            runner.should_exit = True
            thread.join(10)
            sock.close()
