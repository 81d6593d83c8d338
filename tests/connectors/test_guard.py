"""The egress scope drivers run under, the bounded call, and the HTTP reach stages."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from datasources.connectors import guard
from datasources.connectors.base import ConnectorError, StageRunner
from datasources.connectors.guard import EgressRefused, call_bounded, egress_scope
from datasources.connectors.http_stages import parse_endpoint, reach_http
from tests.support.certs import make_bundle
from tests.support.contract import BLOCKED_IP, connect_attempts


class _Handler(http.server.BaseHTTPRequestHandler):
    redirect_to = ""

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.end_headers()
            return
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def http_server(redirect_to: str = "", context: ssl.SSLContext | None = None) -> Iterator[int]:
    handler = type("Handler", (_Handler,), {"redirect_to": redirect_to})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_listener() -> Iterator[int]:
    """Accepts connections and never says a word (a black hole that completes the handshake)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_a_scope_pins_each_name_to_one_checked_address(allow_loopback):
    with egress_scope(2) as scope:
        first = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
        again = socket.getaddrinfo("localhost", 443)
    assert {info[4][0] for info in first + again} == {scope.pins["localhost"]}
    assert scope.lookups == ["localhost", "localhost"]


def test_refused_names_and_literals_fail_the_lookup_before_any_connect(settings):
    settings.DATASOURCE_ALLOWED_NETWORKS = []
    with connect_attempts() as attempts, egress_scope(2) as scope:
        for host in (BLOCKED_IP, "127.0.0.1", "localhost", "::1"):
            with pytest.raises(EgressRefused):
                socket.getaddrinfo(host, 80)
        with pytest.raises(EgressRefused):
            socket.gethostbyname("localhost")
        with pytest.raises(OSError):
            socket.create_connection((BLOCKED_IP, 80), timeout=1)
    assert attempts == []
    error = scope.blocked_error()
    assert error is not None and error.stage == "tcp"
    assert error.message == f"Could not connect to the server at {BLOCKED_IP}:80."


def test_other_threads_and_the_caller_after_the_block_resolve_as_usual(settings):
    settings.DATASOURCE_ALLOWED_NETWORKS = []
    seen: list[str] = []
    with egress_scope(2):
        worker = threading.Thread(target=lambda: seen.append(socket.getaddrinfo("127.0.0.1", 80)[0][4][0]))
        worker.start()
        worker.join()
    assert seen == ["127.0.0.1"]
    assert socket.getaddrinfo("127.0.0.1", 80)[0][4][0] == "127.0.0.1"


def test_only_limits_a_scope_to_the_named_hosts_and_what_was_pinned(allow_loopback):
    with egress_scope(2, only=("localhost",)) as scope:
        socket.getaddrinfo("localhost", 80)
        scope.pin("example.test", "127.0.0.2")
        assert socket.getaddrinfo("example.test", 80)[0][4][0] == "127.0.0.2"
        for other in ("localhost.localdomain", "127.0.0.1", "::1"):  # literals too: nothing else is reachable
            with pytest.raises(EgressRefused):
                socket.getaddrinfo(other, 80)


def test_a_lookup_without_a_host_is_loopback_and_judged_so(settings):
    settings.DATASOURCE_ALLOWED_NETWORKS = []
    with connect_attempts() as attempts, egress_scope(2) as scope:
        with pytest.raises(OSError):
            socket.create_connection((None, 1), timeout=1)
    assert attempts == [] and scope.refused == [("localhost", 1)]


def test_a_redirect_to_a_blocked_address_is_never_followed(allow_loopback):
    with http_server(redirect_to=f"http://{BLOCKED_IP}/latest/meta-data/") as port:
        with connect_attempts() as attempts, egress_scope(2) as scope:
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{port}/", timeout=2)
    assert [a for a in attempts if a[0] == BLOCKED_IP] == []
    assert scope.refused == [(BLOCKED_IP, 80)]


def test_a_host_is_resolved_once_per_scope(allow_loopback, monkeypatch):
    calls: list[str] = []
    real = guard._getaddrinfo

    def counting(host: str, port: int, timeout: float) -> list[str]:
        calls.append(host)
        return real(host, port, timeout)

    monkeypatch.setattr(guard, "_getaddrinfo", counting)
    with http_server() as port, egress_scope(2):
        for _ in range(3):
            assert requests.get(f"http://localhost:{port}/", timeout=2).text == "hello"
    assert calls == ["localhost"]  # later lookups, by any client, get the address checked first


def test_call_bounded_returns_raises_and_gives_up(allow_loopback):
    with egress_scope(2) as scope:
        assert call_bounded(lambda: guard.current_scope(), 1) is scope  # the worker carries the scope
        with pytest.raises(ZeroDivisionError):
            call_bounded(lambda: 1 / 0, 1)
    start = time.monotonic()
    with pytest.raises(guard.TimedOut):
        call_bounded(lambda: time.sleep(5), 0.3)
    assert time.monotonic() - start < 1


def test_a_call_that_ends_after_the_caller_gave_up_is_handed_to_late():
    closed: list[str] = []
    finished = threading.Event()

    def slow_login() -> str:
        time.sleep(0.4)
        return "session"

    def close(session: str) -> None:
        closed.append(session)
        finished.set()

    with pytest.raises(guard.TimedOut):
        call_bounded(slow_login, 0.1, late=close)
    assert finished.wait(2) and closed == ["session"]
    assert call_bounded(lambda: "in time", 1, late=close) == "in time" and closed == ["session"]


# ----------------------------------------------------------------------------- HTTP reach stages


def _reach(url: str, ca_pem: str = "", timeout: float = 2) -> tuple[StageRunner, list[str]]:
    runner = StageRunner({})
    with runner, egress_scope(timeout) as scope:
        reach_http(runner, parse_endpoint(url), timeout, scope, ca_pem=ca_pem)
    result = runner.result()
    return runner, [f"{s.name}:{'ok' if s.ok else 'failed'}" for s in result.stages]


def test_reach_http_proves_an_http_server(allow_loopback):
    with http_server() as port:
        runner, stages = _reach(f"http://127.0.0.1:{port}")
    assert stages == ["resolve:ok", "tcp:ok"]


def test_reach_https_verifies_the_certificate_as_its_own_stage(allow_loopback):
    bundle = make_bundle()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with _cert_files(bundle) as (cert, key):
        context.load_cert_chain(cert, key)
    with http_server(context=context) as port:
        _, trusted = _reach(f"https://127.0.0.1:{port}", ca_pem=bundle.ca.cert_pem)
        runner, untrusted = _reach(f"https://127.0.0.1:{port}")
    assert trusted == ["resolve:ok", "tcp:ok", "tls:ok"]
    assert untrusted == ["resolve:ok", "tcp:ok", "tls:failed"]
    assert runner.failed is not None and "certificate could not be verified" in runner.failed.message


def test_silent_closed_and_non_http_peers_all_read_like_a_closed_port(allow_loopback):
    with silent_listener() as silent:
        start = time.monotonic()
        runner, stages = _reach(f"http://127.0.0.1:{silent}", timeout=1)
        assert time.monotonic() - start < 2
    assert stages == ["resolve:ok", "tcp:failed"]
    assert runner.failed is not None
    assert runner.failed.message == f"Could not connect to the server at 127.0.0.1:{silent}."
    ssh_like = socket.socket()
    ssh_like.bind(("127.0.0.1", 0))
    ssh_like.listen(1)
    port = ssh_like.getsockname()[1]

    def banner() -> None:
        conn, _ = ssh_like.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        time.sleep(0.5)
        conn.close()

    threading.Thread(target=banner, daemon=True).start()
    runner, stages = _reach(f"https://127.0.0.1:{port}", timeout=1)
    ssh_like.close()
    assert stages == ["resolve:ok", "tcp:failed"]


def test_reach_refuses_blocked_endpoints_without_connecting(settings):
    settings.DATASOURCE_ALLOWED_NETWORKS = []
    with connect_attempts() as attempts:
        runner, stages = _reach("https://127.0.0.1:9")
    assert stages == ["resolve:ok", "tcp:failed"] and attempts == []


@pytest.mark.parametrize("url", ["ftp://host", "https://user:pw@host", "https://", "https://host:99999",
                                 "http://host:0"])
def test_parse_endpoint_refuses_odd_urls(url):
    with pytest.raises(ConnectorError) as caught:
        parse_endpoint(url)
    assert caught.value.stage == "resolve" and "pw" not in caught.value.message


@contextmanager
def _cert_files(bundle) -> Iterator[tuple[str, str]]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert.write_text(bundle.server.cert_pem)
        key.write_text(bundle.server.key_pem)
        yield str(cert), str(key)


def test_plain_http_with_credentials_only_to_private_addresses_the_operator_opened(allow_loopback):
    with connect_attempts() as attempts:
        runner, stages = _reach("http://8.8.8.8:8080")
    assert stages == ["resolve:ok", "tls:failed"] and attempts == []
    assert runner.failed is not None and "must use https://" in runner.failed.message
    with http_server() as port:
        assert _reach(f"http://127.0.0.1:{port}")[1] == ["resolve:ok", "tcp:ok"]
