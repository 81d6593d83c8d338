"""moto's server (moto 5.2.6) on 127.0.0.1, an ephemeral port, in a thread: the AWS emulator of the
Athena connector's tests (STS, Glue, Athena, S3) and of the S3 connector's.

It is moto's own WSGI application (``DomainDispatcherApplication`` + ``create_backend_app``, served
as ``ThreadedMotoServer`` serves it) with four corrections where moto 5.2.6 answers unlike AWS (or
unlike what the botocore installed here, 1.44, sends), plus a request log:

- **Athena over REST.** botocore models Athena as ``rest-json`` (``GET /workgroups/{WorkGroup}``,
  ``POST /query-executions`` ...). moto's Athena ``urls.py`` only routes ``/`` (the old awsJson1.1
  ``POST /`` with ``X-Amz-Target``), so every Athena call answered 404 -- the routing by the
  signature's service name worked, the path did not match. A catch-all route on moto's Athena app
  sends those paths to moto's own ``AthenaResponse``, whose router already maps method + path to
  the operation from botocore's model: moto's backend answers, nothing is stood in.
- **Signatures are checked.** ``start()`` turns on moto's IAM authentication (``POST
  /moto-api/reset-auth`` with ``0``, i.e. ``INITIAL_NO_AUTH_ACTION_COUNT = 0``): every request must
  be SigV4-signed with an access key of an IAM user moto knows and allowed by its policy; a wrong
  secret answers ``SignatureDoesNotMatch``. moto hashes a request without body and query over its
  *headers* (``BaseResponse`` falls back to them as the "querystring"), so a correctly signed
  ``GET /workgroups/primary`` was refused: the Athena route uses an empty payload for those.
- **Glue GetTables pages.** moto returns every table in one answer and ignores ``MaxResults`` /
  ``NextToken``; AWS answers at most 100 tables a page. The server slices moto's answer
  (``MaxResults`` capped at 100, ``NextToken`` an offset), so a connector's page loop runs as on AWS.
- **Unsigned requests** are answered 403 ``MissingAuthenticationToken``, as AWS does; moto with
  IAM authentication on fails them with a 500 and a ``KeyError: 'HTTP_AUTHORIZATION'`` traceback
  (e.g. the connectors' ``HEAD /`` reachability probe).
- ``requests``: ``(service, operation)`` of every request (the signature's service; the
  ``X-Amz-Target`` operation, or method and path for REST calls), to count the calls a test made.
- ``tap()``: while the block runs, every request answered as a ``Served`` (method, path, Range
  header, body bytes sent), to check what a connector read.

``MotoServer.client(service)`` is a boto3 client for seeding, signed with the admin user's keys;
``create_user`` makes more IAM users (keys returned); ``reset()`` empties every backend and makes
a new admin. The ``moto_server`` fixture (one server per test session) resets it for each test;
import it with ``moto_session_server`` into the test module. moto's authentication switch is
process-wide: while the server runs, in-process ``mock_aws`` tests would be checked too; ``stop()``
turns it off again.
"""

from __future__ import annotations

import io
import json
import os
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

IN_CI = os.environ.get("CI") == "true"  # as tests/conftest.py (not imported: bench/ may use this module)
REGION = "us-east-1"
GLUE_PAGE = 100  # AWS Glue GetTables: MaxResults 1..100
UNSIGNED = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><ErrorResponse><Error><Code>MissingAuthenticationToken"
            b"</Code><Message>Request is missing Authentication Token</Message></Error></ErrorResponse>")
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str


@dataclass
class Served:
    """One request the server answered: its method, path and Range header, and the body bytes sent."""

    method: str
    path: str
    range: str
    bytes: int = 0


def _counted(body: Iterable[bytes], record: Served) -> Iterator[bytes]:
    """``body`` as sent, its length added to ``record``."""
    try:
        for chunk in body:
            record.bytes += len(chunk)
            yield chunk
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def _service(environ: dict[str, Any]) -> str:
    """The service named in the SigV4 credential scope (``Credential=AKIA/date/region/service/...``)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = auth.partition("Credential=")[2].partition(",")[0].split("/")
    return scope[3] if len(scope) == 5 else ""


def _operation(environ: dict[str, Any]) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    return target.rpartition(".")[2] if target else f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"


def _unsigned(environ: dict[str, Any]) -> bool:
    """A request without a signature (header or presigned query), not for moto's own API."""
    return ("HTTP_AUTHORIZATION" not in environ and "X-Amz-Signature" not in environ.get("QUERY_STRING", "")
            and not str(environ.get("PATH_INFO", "")).startswith("/moto-api"))


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
    return body


def _page_glue_tables(app: Callable[..., Any], environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Run moto's GetTables and answer one page of it, as AWS does."""
    try:
        request = json.loads(_read_body(environ) or b"{}")
    except ValueError:
        request = {}
    size = max(1, min(int(request.get("MaxResults") or GLUE_PAGE), GLUE_PAGE))
    offset = int(request.get("NextToken") or 0)
    captured: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    body = b"".join(app(environ, capture))
    if not captured["status"].startswith("200"):
        start_response(captured["status"], captured["headers"])
        return [body]
    answer = json.loads(body)
    tables = answer.get("TableList") or []
    answer["TableList"] = tables[offset: offset + size]
    if offset + size < len(tables):
        answer["NextToken"] = str(offset + size)
    data = json.dumps(answer).encode()
    headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
    start_response(captured["status"], [*headers, ("Content-Length", str(len(data)))])
    return [data]


def _create_app(service: Any) -> Any:
    """moto's app for ``service``; Athena also answers its REST paths (see the module docstring)."""
    from moto.athena.responses import AthenaResponse
    from moto.moto_server.werkzeug_app import HTTP_METHODS, convert_to_flask_response, create_backend_app

    app = create_backend_app(service)
    if service == "athena":

        class AthenaRest(AthenaResponse):  # type: ignore[misc]
            def setup_class(self, request: Any, full_url: Any = None, headers: Any = None,
                            use_raw_body: Any = None) -> None:
                super().setup_class(request, full_url, headers, use_raw_body)
                if not self.raw_body and not self.parsed_url.query:
                    self.data = {}  # the signed payload is empty, not the headers

        app.add_url_rule("/<path:path>", endpoint="athena-rest", methods=HTTP_METHODS,
                         view_func=convert_to_flask_response(AthenaRest.dispatch))
    return app


@dataclass
class MotoServer:
    """moto's server on loopback with signature checks; ``client()`` seeds it as the admin user."""

    host: str = "127.0.0.1"
    region: str = REGION
    requests: list[tuple[str, str]] = field(default_factory=list)
    admin: Keys = Keys("", "")
    _server: Any = None
    _boto3: Any = None
    _clients: dict[tuple[str, Keys, str], Any] = field(default_factory=dict)
    _thread: threading.Thread | None = None
    _taps: list[list[Served]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @contextmanager
    def tap(self) -> Iterator[list[Served]]:
        """Every request answered while the block runs, in the order they came."""
        served: list[Served] = []
        self._taps.append(served)
        try:
            yield served
        finally:
            self._taps[:] = [t for t in self._taps if t is not served]  # by identity: lists compare by value

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        taps = list(self._taps)
        if not taps:
            return self._answer(environ, start_response)
        record = Served(environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("HTTP_RANGE", ""))
        for served in taps:
            served.append(record)
        return _counted(self._answer(environ, start_response), record)

    def _answer(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        service, operation = _service(environ), _operation(environ)
        self.requests.append((service, operation))
        if _unsigned(environ):
            start_response("403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(UNSIGNED)))])
            return [UNSIGNED]
        if service == "glue" and operation == "GetTables":
            return _page_glue_tables(self._moto, environ, start_response)
        return self._moto(environ, start_response)  # type: ignore[no-any-return]

    def start(self) -> MotoServer:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler
        from werkzeug.serving import make_server

        class Quiet(MotoRequestHandler):  # type: ignore[misc]
            def log(self, *args: Any) -> None:  # one line per request would drown the test logs
                pass

        self._moto = DomainDispatcherApplication(_create_app)
        self._server = make_server(self.host, 0, self._app, threaded=True, request_handler=Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        self.reset()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._set_auth(float("inf"))  # moto's settings are process-wide: leave them as found
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def _post(self, path: str, data: bytes = b"") -> bytes:
        request = urllib.request.Request(f"{self.endpoint_url}{path}", data=data, method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as answer:
            return bytes(answer.read())

    def _set_auth(self, free_requests: float) -> None:
        self._post("/moto-api/reset-auth", str(free_requests).encode())

    def reset(self) -> None:
        """Empty every backend, then make a fresh admin user (IAM auth stays on)."""
        self._set_auth(float("inf"))
        self._post("/moto-api/reset")
        self._clients.clear()
        self.admin = Keys("AKIAMOTOBOOTSTRAP000", "bootstrap")  # accepted while auth is off
        self.admin = self.create_user("admin")
        self._set_auth(0)
        self.requests.clear()

    def client(self, service: str, keys: Keys | None = None, region: str | None = None) -> Any:
        """A boto3 client for ``service`` on this server (admin keys unless given); made once, reused."""
        import boto3
        import botocore.session
        from botocore.config import Config

        keys = keys or self.admin
        cache_key = (service, keys, region or self.region)
        if cache_key not in self._clients:
            if self._boto3 is None:  # one session: botocore's models are parsed once
                self._boto3 = boto3.session.Session(botocore_session=botocore.session.Session())
            config = Config(retries={"total_max_attempts": 1}, proxies={}, s3={"addressing_style": "path"})
            self._clients[cache_key] = self._boto3.client(
                service, region_name=region or self.region, endpoint_url=self.endpoint_url, config=config,
                aws_access_key_id=keys.access_key_id, aws_secret_access_key=keys.secret_access_key)
        return self._clients[cache_key]

    def create_user(self, name: str, policy: dict[str, Any] | None = None, secret: str = "") -> Keys:
        """An IAM user with ``policy`` (default: everything allowed) and a new access key.

        ``secret``: the key's secret instead of moto's random one (a recognisable canary). IAM has no
        call for that, so it is set on moto's backend object: the server runs in this process.
        """
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="policy", PolicyDocument=json.dumps(policy or ALLOW_ALL))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        if secret:
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.iam.models import iam_backends

            user = iam_backends[DEFAULT_ACCOUNT_ID]["global"].get_user(name)
            next(k for k in user.access_keys if k.access_key_id == key["AccessKeyId"]).secret_access_key = secret
            return Keys(key["AccessKeyId"], secret)
        return Keys(key["AccessKeyId"], key["SecretAccessKey"])

    def count(self, service: str, operation: str) -> int:
        return sum(1 for s, o in self.requests if (s, o) == (service, operation))


def _start() -> MotoServer:
    try:
        return MotoServer().start()
    except ImportError as exc:  # moto[server] is a test dependency (requirements-connectors.txt)
        message = f"moto's server is not installed ({exc}): pip install 'moto[server]'."
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
        raise


@pytest.fixture(scope="session")
def moto_session_server() -> Iterator[MotoServer]:
    server = _start()
    yield server
    server.stop()


@pytest.fixture
def moto_server(moto_session_server: MotoServer) -> MotoServer:
    """The session's moto server, emptied (with a new admin user) for this test."""
    moto_session_server.reset()
    return moto_session_server
