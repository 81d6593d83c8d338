"""What the AWS connectors' tests (test_athena.py, test_s3.py) share: loopback stand-ins (a closed port,
an HTTP server for a handler, a stalling endpoint, a connection recorder), an environment poisoned with
every AWS_* knob botocore would read, the contract on moto, and the log and timing checks.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.contract import BLOCKED_IP, Contract
from tests.support.moto_server import Keys

EMULATOR_LOGGERS = ("moto", "werkzeug")  # the AWS side's logs (moto logs request headers at DEBUG)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_message(url: str) -> str:
    """The connectors' one message for a port nothing AWS-shaped answers on, for ``http://host:port``."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return f"Could not connect to the server at {host}:{int(port)}."


def never_contacted(attempts: list[Any], ip: str = BLOCKED_IP) -> bool:
    """No connection attempt (``connect_attempts``) went to ``ip``."""
    return not [a for a in attempts if isinstance(a, tuple) and a and a[0] == ip]


def aws_contract(type_key: str, connection: dict[str, Any], canary: str, tables: set[str],
                 patch: dict[str, Any]) -> Contract:
    """The contract of an AWS connector on moto: the secret access key is the canary; unreachable is a
    closed loopback port, blocked the metadata address, both as endpoint_url."""
    return Contract(
        type_key=type_key,
        connection=connection,
        credentials={"secret_access_key": canary},
        tables=tables,
        patch=patch,
        wrong_credentials={"secret_access_key": "wrong-secret-access-key"},
        unreachable={"endpoint_url": f"http://127.0.0.1:{closed_port()}"},
        blocked={"endpoint_url": f"http://{BLOCKED_IP}"},
        canary=canary,
        stages=("resolve", "tcp", "auth", "database"),
    )


def assert_logs_carry_no_secret(caplog: Any, canary: str) -> None:
    """Neither the canary nor a signed request header in our log records; botocore and boto3 at WARNING."""
    ours = [r for r in caplog.records if not r.name.startswith(EMULATOR_LOGGERS)]
    text = "\n".join(r.getMessage() for r in ours)
    assert canary not in caplog.text and canary not in text
    assert "Signature=" not in text and "Credential=" not in text  # no request headers
    assert not [r for r in ours if r.name.startswith(("botocore", "boto3")) and r.levelno < logging.WARNING]


# --- the environment is never consulted --------------------------------------------------------


@contextmanager
def listener() -> Iterator[list[object]]:
    """A loopback port that records every connection (stands for a proxy, IMDS, a configured endpoint)."""
    seen: list[object] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, address = server.accept()
            except OSError:
                continue
            seen.append(address)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    seen.append(server.getsockname()[1])  # seen[0]: the port
    try:
        yield seen
    finally:
        stop.set()
        thread.join(2)
        server.close()


def poison_environment(monkeypatch: Any, tmp_path: Any, port: int, keys: Keys) -> None:
    """Every AWS_* knob botocore would read, pointed at the recorder or at the *right* keys."""
    aws = tmp_path / ".aws"
    aws.mkdir()
    trap = f"http://127.0.0.1:{port}"
    (aws / "config").write_text(f"[default]\nregion = eu-west-1\nendpoint_url = {trap}\nca_bundle = /nonexistent\n"
                                f"[profile absent]\nendpoint_url = {trap}\n")
    (aws / "credentials").write_text(f"[default]\naws_access_key_id = {keys.access_key_id}\n"
                                     f"aws_secret_access_key = {keys.secret_access_key}\n")
    env = {
        "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(aws / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"), "AWS_PROFILE": "absent",
        "AWS_DEFAULT_PROFILE": "absent", "AWS_ACCESS_KEY_ID": keys.access_key_id,
        "AWS_SECRET_ACCESS_KEY": keys.secret_access_key, "AWS_SESSION_TOKEN": "session-token",
        "AWS_ENDPOINT_URL": trap, "AWS_ENDPOINT_URL_GLUE": trap, "AWS_ENDPOINT_URL_STS": trap,
        "AWS_ENDPOINT_URL_S3": trap,
        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1", "AWS_CA_BUNDLE": "/nonexistent",
        "REQUESTS_CA_BUNDLE": "/nonexistent", "AWS_DATA_PATH": str(tmp_path),
        "HTTP_PROXY": trap, "HTTPS_PROXY": trap, "http_proxy": trap, "https_proxy": trap, "NO_PROXY": "",
        "no_proxy": "", "AWS_EC2_METADATA_SERVICE_ENDPOINT": trap, "AWS_EC2_METADATA_DISABLED": "false",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{trap}/creds", "AWS_MAX_ATTEMPTS": "5", "AWS_RETRY_MODE": "legacy",
        "AWS_USE_FIPS_ENDPOINT": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def environment_ignored(monkeypatch: Any, tmp_path: Any, admin: Keys, connector: Any, right: Any,
                        wrong: Any) -> list[Any]:
    """With the environment poisoned (``admin``'s valid keys in it and in the files): ``right`` (a
    ConnectionConfig) tests and introspects, ``wrong`` (a wrong secret) still fails at auth, and the
    recorder is never contacted. Returns what ``connector.introspect(right)`` listed."""
    with listener() as seen:
        poison_environment(monkeypatch, tmp_path, int(seen[0]), admin)  # valid keys in env and files
        passed = connector.test_and_introspect(right)
        failed = connector.test(wrong)
        introspected = connector.introspect(right)
    assert passed.ok and passed.tables, passed
    assert failed.stage == "auth"  # the environment's valid keys were not used instead
    assert seen[1:] == []  # no proxy, IMDS, container endpoint or configured endpoint was contacted
    return list(introspected)


# --- loopback stand-ins: redirects, stalls ------------------------------------------------------


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a loopback port; yields its ``http://127.0.0.1:port``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(BaseHTTPRequestHandler):
    """A stand-in that logs no request line."""

    def log_message(self, *args: object) -> None:
        pass


class Stall(QuietHandler):
    """Answers the HEAD probe, then never answers an API call (GET or POST)."""

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _stall(self) -> None:
        time.sleep(8)

    do_GET = do_POST = _stall


def assert_stall_reads_as_closed(test: Callable[[str], Any], timeout: float) -> None:
    """``test(endpoint_url)`` (a connection test with connect timeout ``timeout``) against ``Stall``
    fails at tcp, like a closed port, within the timeout and a second."""
    with http_server(Stall) as stalling:
        start = time.monotonic()
        result = test(stalling)
        elapsed = time.monotonic() - start
    assert elapsed < timeout + 1, elapsed
    assert (result.stage, result.message) == ("tcp", closed_message(stalling))
