"""Google service accounts for the BigQuery and Google Sheets tests: the stand-ins' common part and the keys.

``GoogleStandIn`` is Google's OAuth 2.0 token endpoint, which a stand-in (tests/support/bigquery_server.py,
tests/support/sheets_server.py) extends with its API; ``serve`` runs one on 127.0.0.1 (ephemeral port,
optionally over TLS) in a threaded ``http.server``:

- ``POST /token`` (form ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>``): the
  assertion must be an RS256 JWT whose signature verifies with the public key registered for its ``iss``
  (the service account's ``client_email``), with ``aud`` = Google's token URL, one of the stand-in's
  ``scopes`` and a live ``exp``. Answers ``{"access_token", "expires_in", "token_type"}``; otherwise 400
  ``{"error": "invalid_grant", "error_description": ...}`` (``unsupported_grant_type``, ``invalid_scope``).
- anything else goes to the stand-in's ``answer``, which checks ``Authorization: Bearer <a token this
  server issued>`` with ``bearer``; its ``ApiError``s are rendered by its ``error``.

``tokens`` holds each token issued. The keys: ``new_key`` (an RSA key and its PKCS#8 PEM),
``service_account_json`` (a key file as Google issues it), ``canary`` (a line of the PEM that must never
show), ``google_config`` (a connection to a stand-in with such a key) and ``black_hole`` (a port that
accepts connections and never answers). ``ServiceAccountTests``:
the tests of the service-account part (auth, the token_uri's egress, the environment, secrets) that
tests/connectors/test_bigquery.py and test_google_sheets.py both run.
"""

from __future__ import annotations

import base64
import json
import logging
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
from typing import Any, TypeVar
from urllib.parse import SplitResult, parse_qs, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from datasources.connectors import ConnectionConfig, ConnectorError, TestResult, get_connector
from tests.support.certs import make_bundle
from tests.support.contract import BLOCKED_IP, URL, Contract, connect_attempts, run_contract

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AUDIENCE = "https://oauth2.googleapis.com/token"  # google-auth's ``aud`` whatever the token_uri
KEY_ID = "5f1c0a2e9d7b4c3a8e6f0b1d2c3e4f5a6b7c8d9e"  # the key files' private_key_id
S = TypeVar("S", bound="GoogleStandIn")


class ApiError(Exception):
    """An error answer: HTTP ``status``, Google's ``reason`` and ``message``."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@dataclass
class GoogleStandIn:
    """The token endpoint: the service accounts it trusts, the scopes it grants, the tokens it issued."""

    public_keys: dict[str, rsa.RSAPublicKey] = field(default_factory=dict)  # client_email -> key
    scopes: tuple[str, ...] = ()  # a grant must ask for one of these
    tokens: set[str] = field(default_factory=set)
    port: int = 0
    scheme: str = "http"
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

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
        if not set(str(claims.get("scope", "")).split()) & set(self.scopes):
            raise ApiError(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        token = f"ya29.standin-{secrets.token_urlsafe(24)}"
        with self._lock:
            self.tokens.add(token)
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def bearer(self, authorization: str, reason: str) -> None:
        """401 ``reason`` unless ``authorization`` carries a token this stand-in issued."""
        if not authorization.startswith("Bearer ") or authorization[len("Bearer "):] not in self.tokens:
            raise ApiError(401, reason, "Request is missing required authentication credential. "
                                        "Expected OAuth 2 access token.")

    # --- what a stand-in adds ---------------------------------------------------------------------

    def record(self, method: str, parts: SplitResult) -> None:
        """Note a request received (before it is answered)."""

    def answer(self, method: str, parts: SplitResult, body: bytes, authorization: str) -> dict[str, Any]:
        """An API request (anything but ``POST /token``): the JSON answer, or raise ``ApiError``."""
        raise ApiError(404, "NOT_FOUND", "Not found.")

    def error(self, exc: ApiError) -> dict[str, Any]:
        """An API error document."""
        return {"error": {"code": exc.status, "message": exc.message}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body: no Nagle delay

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read ``requests`` instead
        pass

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self) -> None:
        standin = self.server.standin
        parts = urlsplit(self.path)
        standin.record(self.command, parts)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            if parts.path == "/token" and self.command == "POST":
                self._answer(200, standin.grant(parse_qs(raw.decode())))
                return
            self._answer(200, standin.answer(self.command, parts, raw, self.headers.get("Authorization", "")))
        except ApiError as exc:
            if parts.path == "/token":
                self._answer(exc.status, {"error": exc.reason, "error_description": exc.message})
            else:
                self._answer(exc.status, standin.error(exc))

    do_GET = do_POST = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: GoogleStandIn

    def handle_error(self, request: Any, client_address: Any) -> None:  # refused TLS handshakes: expected
        pass


@contextmanager
def serve(standin: S, tls: tuple[str, str] | None = None, name: str = "google-standin") -> Iterator[S]:
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
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=name, daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()


# --- keys -----------------------------------------------------------------------------------------


def new_key() -> tuple[rsa.RSAPrivateKey, str]:
    """A fresh 2048-bit RSA key and its PKCS#8 PEM (what a key file's private_key holds)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return key, pem


def canary(pem: str) -> str:
    return pem.splitlines()[5]  # 64 characters from the middle of the private key


def service_account_json(pem: str, token_uri: str, email: str, project: str = "acme-analytics",
                         **extra: str) -> str:
    """A service-account key file as Google issues it."""
    return json.dumps({
        "type": "service_account", "project_id": project, "private_key_id": KEY_ID, "private_key": pem,
        "client_email": email, "client_id": "104857600000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com", **extra,
    })


def google_config(type_key: str, email: str, defaults: dict[str, str], standin: GoogleStandIn, pem: str, *,
                  token_uri: str = "", timeout: int = 3, **connection: str) -> ConnectionConfig:
    """A connection of ``type_key`` to ``standin`` (its URL, then ``defaults`` and ``connection``) with a key
    file for ``email`` whose token_uri is the stand-in's unless ``token_uri`` is given."""
    secrets = {"service_account_json": service_account_json(pem, token_uri or standin.token_uri, email)}
    return ConnectionConfig(type_key, {"endpoint_url": standin.url, **defaults, **connection}, secrets,
                            connect_timeout=timeout, query_timeout=10)


@contextmanager
def black_hole() -> Iterator[str]:
    """An http:// URL whose port accepts TCP connections (the kernel does) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


# --- the tests both Google connectors pass ---------------------------------------------------------


class ServiceAccountTests:
    """The service account's part of a Google connector, tested once for both: a test module subclasses
    this as ``TestServiceAccount``, sets the class attributes and ``config``, and provides the fixtures
    ``standin`` (its stand-in, serving, the "right" key registered) and ``keys`` ("right" and "wrong": an
    RSA key and its PEM)."""

    type_key = ""
    missing: dict[str, Any] = {}  # connection settings naming what the API does not have (stage database)
    contract_tables: set[str] = set()  # the tables the contract's data source lists
    contract_patch: dict[str, str] = {}  # a connection change the contract applies (and tests again)

    def config(self, standin: Any, pem: str, *, token_uri: str = "", timeout: int = 3,
               **connection: str) -> ConnectionConfig:
        raise NotImplementedError

    def check_schema(self, tables: list[dict[str, Any]]) -> None:
        """The contract's cached schema (``tables`` of the schema endpoint), as the connector reads it."""

    def check(self, config: ConnectionConfig) -> TestResult:
        return get_connector(self.type_key).test(config)

    @pytest.fixture
    def silent(self) -> Iterator[str]:
        with black_hole() as url:
            yield url

    def test_contract(self, api, allow_loopback, caplog, standin, keys, silent):
        """The data-source contract through the native API (tests/support/contract.py)."""
        right, wrong = self.config(standin, keys["right"][1]), self.config(standin, keys["wrong"][1])
        contract = Contract(
            type_key=self.type_key, connection=right.connection, credentials=right.secrets,
            tables=self.contract_tables, patch=self.contract_patch, wrong_credentials=wrong.secrets,
            unreachable={"endpoint_url": silent}, blocked={"endpoint_url": f"http://{BLOCKED_IP}"},
            canary=canary(keys["right"][1]), stages=("resolve", "tcp", "auth", "database"), connection_timeout=3,
        )
        final = run_contract(api, contract, caplog)
        assert final["connection"]["endpoint_url"] == standin.url
        self.check_schema(api.get(f"{URL}{final['id']}/schema/").json()["tables"])
        for token in standin.tokens:  # the access tokens issued never reach a response, a log or the audit
            assert token not in caplog.text and token not in json.dumps(final)

    def test_wrong_key_fails_at_auth(self, allow_loopback, standin, keys):
        result = self.check(self.config(standin, keys["wrong"][1]))
        assert (result.stage, result.ok) == ("auth", False)
        assert "invalid_grant" in result.message and "Invalid JWT Signature" in result.message
        assert not standin.api_requests()  # refused before any API call

    def test_not_a_service_account_key_fails_at_auth(self, allow_loopback, standin, keys):
        config = self.config(standin, keys["right"][1])
        user = {"type": "authorized_user", "refresh_token": "1//0abc", "token_uri": standin.token_uri}
        config.secrets = {"service_account_json": json.dumps(user)}
        result = self.check(config)
        assert result.stage == "auth" and "service-account key" in result.message
        assert all(r[0] == "HEAD" for r in standin.requests)

    def test_unreadable_private_key_fails_at_auth(self, allow_loopback, standin):
        pem = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
        result = self.check(self.config(standin, pem))
        assert (result.stage, result.message) == ("auth", "The service account's private key could not be read.")
        assert not [r for r in standin.requests if r[:2] == ("POST", "/token")]

    def test_black_holed_endpoint_fails_at_tcp_within_the_timeout(self, allow_loopback, standin, keys, silent):
        start = time.monotonic()
        result = self.check(self.config(standin, keys["right"][1], endpoint_url=silent, timeout=2))
        assert time.monotonic() - start < 2 + 1
        port = silent.rsplit(":", 1)[1]
        assert (result.stage, result.message) == ("tcp", f"Could not connect to the server at 127.0.0.1:{port}.")

    def test_black_holed_token_endpoint_fails_at_tcp_within_the_timeout(self, allow_loopback, standin, keys, silent):
        start = time.monotonic()
        result = self.check(self.config(standin, keys["right"][1], token_uri=f"{silent}/token", timeout=2))
        assert time.monotonic() - start < 2 + 1
        assert result.stage == "tcp" and "Could not connect to the server at 127.0.0.1" in result.message

    def test_untrusted_api_certificate_fails_at_tls(self, allow_loopback, standin, keys):
        bundle = make_bundle()  # a CA the system does not trust
        with serve(type(standin)(), tls=(bundle.server.cert_pem, bundle.server.key_pem)) as secure:
            result = self.check(self.config(standin, keys["right"][1], endpoint_url=secure.url))
        assert [(s.name, s.ok) for s in result.stages] == [("resolve", True), ("tcp", True), ("tls", False)]
        assert "certificate could not be verified" in result.message
        assert not standin.requests and all(r[0] == "HEAD" for r in secure.requests)  # no token asked, none sent

    def test_untrusted_token_endpoint_certificate_fails_at_tls(self, allow_loopback, standin, keys):
        bundle = make_bundle()
        token_server = type(standin)(public_keys=dict(standin.public_keys))
        with serve(token_server, tls=(bundle.server.cert_pem, bundle.server.key_pem)) as secure:
            result = self.check(self.config(standin, keys["right"][1], token_uri=secure.token_uri))
        assert (result.stage, result.message) == ("tls", "The token endpoint's certificate could not be verified.")
        assert not secure.requests and not secure.tokens  # the signed grant never left

    # --- egress: the token_uri inside the secret ----------------------------------------------------

    def test_token_uri_at_the_metadata_address_is_refused_without_a_connection(self, allow_loopback, standin, keys):
        with connect_attempts() as attempts:
            result = self.check(self.config(standin, keys["right"][1],
                                            token_uri=f"http://{BLOCKED_IP}/computeMetadata/v1/token"))
        assert (result.stage, result.message) == ("tcp", f"Could not connect to the server at {BLOCKED_IP}:80.")
        assert not [a for a in attempts if isinstance(a, tuple) and a[0] == BLOCKED_IP]
        assert not standin.requests  # nothing sent anywhere: refused while resolving

    def test_plain_http_token_uri_to_a_public_address_is_refused(self, allow_loopback, standin, keys):
        with connect_attempts() as attempts:
            result = self.check(self.config(standin, keys["right"][1], token_uri="http://8.8.8.8/token"))
        assert result.stage == "tls" and "token_uri must use https://" in result.message
        assert not [a for a in attempts if isinstance(a, tuple) and a[0] == "8.8.8.8"]

    def test_loopback_token_uri_needs_the_operator_allowance(self, settings, standin, keys):
        settings.DATASOURCE_ALLOWED_NETWORKS = []
        with connect_attempts() as attempts:  # the API at Google's own (default) endpoint
            result = self.check(self.config(standin, keys["right"][1], endpoint_url=""))
        port = standin.port
        assert (result.stage, result.message) == ("tcp", f"Could not connect to the server at 127.0.0.1:{port}.")
        assert not attempts and not standin.requests

    def test_environment_credentials_and_overrides_are_ignored(self, allow_loopback, standin, keys, monkeypatch,
                                                               tmp_path):
        """ADC files, the metadata host, emulator hosts and proxies from the environment play no part."""
        adc = tmp_path / "adc.json"
        adc.write_text(service_account_json(keys["wrong"][1], f"http://{BLOCKED_IP}/token", "adc@example.com"))
        for name, value in {"GOOGLE_APPLICATION_CREDENTIALS": str(adc), "GCE_METADATA_HOST": BLOCKED_IP,
                            "GCE_METADATA_IP": BLOCKED_IP, "BIGQUERY_EMULATOR_HOST": f"{BLOCKED_IP}:80",
                            "GOOGLE_CLOUD_UNIVERSE_DOMAIN": "evil.example", "HTTP_PROXY": f"http://{BLOCKED_IP}:3128",
                            "HTTPS_PROXY": f"http://{BLOCKED_IP}:3128", "GOOGLE_API_USE_CLIENT_CERTIFICATE": "true",
                            "GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED": "true"}.items():
            monkeypatch.setenv(name, value)
        with connect_attempts() as attempts:
            result = get_connector(self.type_key).test_and_introspect(self.config(standin, keys["right"][1]))
        assert result.ok and result.tables, result
        assert not [a for a in attempts if isinstance(a, tuple) and a[0] == BLOCKED_IP]

    def test_introspect_failure_names_the_stage(self, allow_loopback, standin, keys):
        with pytest.raises(ConnectorError) as failed:
            get_connector(self.type_key).introspect(self.config(standin, keys["wrong"][1]))
        assert failed.value.stage == "auth"

    # --- secrets ------------------------------------------------------------------------------------

    def test_no_secret_material_in_messages_or_logs(self, allow_loopback, standin, keys, caplog, silent, monkeypatch):
        google = logging.getLogger("google")  # google-auth keeps its loggers quiet unless "google" is configured
        monkeypatch.setattr(google, "propagate", True)
        caplog.set_level(logging.DEBUG)
        caplog.set_level(logging.DEBUG, logger="google")  # restored by caplog at the end
        right, wrong = keys["right"][1], keys["wrong"][1]
        results = [
            get_connector(self.type_key).test_and_introspect(self.config(standin, right)),
            self.check(self.config(standin, wrong)), self.check(self.config(standin, right, **self.missing)),
            self.check(self.config(standin, right, endpoint_url=silent, timeout=1)),
            self.check(self.config(standin, right, token_uri=f"http://{BLOCKED_IP}/token")),
        ]
        assert results[0].ok and standin.tokens
        assert results[2].stage == "database"
        records = "".join(repr(vars(r)) for r in caplog.records)  # extras too (google-auth logs headers there)
        rendered = json.dumps([r.as_dict() for r in results]) + repr(results) + caplog.text + records
        for pem in (right, wrong):
            for line in pem.splitlines()[1:-1]:
                assert line not in rendered
        for token in standin.tokens:
            assert token not in rendered
        assert KEY_ID not in rendered  # private_key_id
