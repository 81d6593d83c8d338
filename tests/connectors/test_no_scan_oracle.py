"""No port-scanning oracle: until a peer has proved to be the database (or SSH) server, every failure
looks exactly like a closed port: stage ``tcp``, "Could not connect to the server at host:port.",
stages [resolve ok, tcp failed], within the timeout plus a second.

Fake peers on loopback: silent, HTTP (answering, or talking first), TLS alerts, an SSH banner,
garbage, an immediate hang-up, answers that merely start like the protocol; plus a closed port,
a blocked address (10.255.0.1: refused before any packet) and, when Linux can be made to drop
SYNs (a listener with a full accept queue), a black hole. The connector-level matrix runs
concurrently so the one-second timeouts do not add up.
"""

from __future__ import annotations

import re
import select
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import override_settings

from datasources.connectors import ConnectionConfig, ConnectorError, get_connector
from datasources.connectors.mysqlwire import _greeting
from datasources.connectors.pgwire import _ssl_answer
from datasources.connectors.reach import ssh_banner

URL = "/api/v1/data-sources/"
TIMEOUT = 1
BLOCKED = "10.255.0.1"  # private: refused by the egress policy, so no packet is ever sent to it
HTTP_REPLY = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
HANDSHAKE = b"\x0a8.0.36\0" + struct.pack("<I", 7) + b"abcdefgh\0" + struct.pack("<HBHH", 0xF7FF, 33, 2, 0x81FF)
HANDSHAKE += b"\x15" + b"\0" * 10 + b"ijklmnopqrst\0mysql_native_password\0"
MYSQL_GREETING = len(HANDSHAKE).to_bytes(3, "little") + b"\0" + HANDSHAKE

# behaviour -> (bytes sent on accept, bytes sent once the client has sent something, close afterwards)
BEHAVIOURS = {
    "silent": (b"", None, False),
    "closes": (b"", None, True),
    "http": (b"", HTTP_REPLY, True),
    "http_first": (HTTP_REPLY, None, False),
    "tls_alert": (b"", b"\x15\x03\x03\x00\x02\x02\x28", True),
    "garbage": (bytes(range(256)) * 4, None, False),
    "ssh_banner": (b"SSH-2.0-OpenSSH_9.6\r\n", None, False),
    "n_then_text": (b"", b"NOT FOUND\r\n", False),  # starts like PostgreSQL's 'N'
    "lone_n": (b"", b"N", False),  # PostgreSQL's answer: not a MySQL or SSH greeting
    "old_ssh": (b"SSH-1.5-ancient\r\n", None, False),
    "mysql_bad_seq": (MYSQL_GREETING[:3] + b"\x01" + HANDSHAKE, None, False),
    "mysql_cut": (MYSQL_GREETING[:20], None, True),
}


class Peer:
    """A loopback listener that treats every connection the same way; counts connections."""

    def __init__(self, on_accept: bytes, on_data: bytes | None, close: bool):
        self.on_accept, self.on_data, self.close_after = on_accept, on_data, close
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                if not select.select([self.listener], [], [], 0.05)[0]:
                    continue
                conn, _ = self.listener.accept()
            except (OSError, ValueError):  # closed by shutdown()
                return
            self.connections += 1
            self.held.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.on_accept:
                conn.sendall(self.on_accept)
            if self.on_data is not None and select.select([conn], [], [], 5)[0] and conn.recv(4096):
                conn.sendall(self.on_data)
            if self.close_after:
                conn.close()
        except OSError:
            pass

    def shutdown(self) -> None:
        self.stop.set()
        self.listener.close()
        for conn in self.held:
            conn.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _black_hole() -> tuple[socket.socket | None, list[socket.socket]]:
    """A listener whose accept queue is full, so Linux drops further SYNs; (None, []) if that fails."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
        if not select.select([], [filler], [], 0.3)[1]:
            return listener, fillers  # this SYN got no answer: the next ones will not either
    listener.close()
    for filler in fillers:
        filler.close()
    return None, []


def _config(kind: str, host: str, port: int) -> ConnectionConfig:
    type_key = "mysql" if kind.startswith(("mysql", "ssh-mysql")) else "postgresql"
    mode = "require" if kind.endswith("require") else "prefer"
    connection = {"host": host, "port": port, "database": "d", "username": "u", "ssl": {"mode": mode}}
    secrets = {"password": "pw-never-sent-1"}
    if kind.startswith("ssh"):
        connection = {**connection, "host": "db.internal", "port": 5432,
                      "ssh_tunnel": {"enabled": True, "host": host, "port": port, "username": "tunnel"}}
        secrets["ssh_password"] = "ssh-pw-never-sent"
    return ConnectionConfig(type_key, connection, secrets, connect_timeout=TIMEOUT, query_timeout=TIMEOUT)


def _run(kind: str, method: str, host: str, port: int) -> tuple[object, float]:
    connector = get_connector(_config(kind, host, port).type_key)
    start = time.perf_counter()
    try:
        outcome: object = getattr(connector, method)(_config(kind, host, port))
    except ConnectorError as exc:
        outcome = exc
    return outcome, time.perf_counter() - start


KINDS = ["postgresql", "postgresql-require", "mysql", "mysql-require", "ssh", "ssh-mysql"]
TARGETS = ["closed", "blocked", "black_hole", *BEHAVIOURS]
VALID_FOR = {"ssh_banner": ("ssh", "ssh-mysql"), "lone_n": ("postgresql", "postgresql-require")}  # real greetings
CASES = [(k, m, t) for k in KINDS for m in ("test", "introspect") for t in TARGETS
         if (m == "test" or not k.endswith("require")) and k not in VALID_FOR.get(t, ())]  # fmt: skip


@pytest.fixture(scope="module")
def outcomes():
    """Every (kind, method, target) run once, concurrently: target -> (host, port), outcome, elapsed."""
    peers = {name: Peer(*behaviour) for name, behaviour in BEHAVIOURS.items()}
    hole, fillers = _black_hole()
    where = {name: ("127.0.0.1", peer.port) for name, peer in peers.items()}
    where |= {"closed": ("127.0.0.1", _closed_port()), "blocked": (BLOCKED, 5432)}
    if hole is not None:
        where["black_hole"] = hole.getsockname()
    cases = [c for c in CASES if c[2] in where]
    try:
        with override_settings(DATASOURCE_ALLOWED_NETWORKS=["127.0.0.0/8"]), ThreadPoolExecutor(len(cases)) as pool:
            futures = {c: pool.submit(_run, c[0], c[1], *where[c[2]]) for c in cases}
            results = {c: (where[c[2]], *f.result()) for c, f in futures.items()}
    finally:
        for peer in peers.values():
            peer.shutdown()
        for sock in [*fillers, *([hole] if hole else [])]:
            sock.close()
    return results


@pytest.mark.parametrize(("kind", "method", "target"), CASES, ids=["-".join(c) for c in CASES])
def test_every_non_server_looks_like_a_closed_port(outcomes, kind, method, target):
    if (kind, method, target) not in outcomes:
        pytest.skip("Linux did not drop SYNs for a full accept queue here")
    (host, port), outcome, elapsed = outcomes[(kind, method, target)]
    expected = f"Could not connect to the server at {host}:{port}."
    if method == "test":
        assert (outcome.ok, outcome.stage, outcome.message) == (False, "tcp", expected)
        assert [(s.name, s.ok) for s in outcome.stages] == [("resolve", True), ("tcp", False)]
        assert set(outcome.as_dict()) == {"ok", "stage", "message", "stages", "duration_ms", "server_version",
                                          "ssh_host_key_fingerprint"}  # fmt: skip
        assert outcome.server_version is None and outcome.ssh_host_key_fingerprint is None
    else:
        assert isinstance(outcome, ConnectorError)
        assert (outcome.stage, outcome.message) == ("tcp", expected)
    assert elapsed <= TIMEOUT + 1, f"{elapsed:.2f} s"


@pytest.mark.parametrize(
    ("answer", "kind", "stage", "message"),
    [
        (b"N", "postgresql-require", "tls", "The server does not support SSL, but the SSL mode requires it."),
        (b"N", "postgresql", "auth", "The server did not complete the login within 1 seconds."),
        (MYSQL_GREETING, "mysql", "auth", "The server did not answer within 1 seconds."),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "ssh", "ssh", "The server at 127.0.0.1:{port} did not complete an SSH handshake."),
    ],
    ids=["pg-N-require", "pg-N-then-silent", "mysql-greeting-then-silent", "ssh-banner-then-silent"],
)
def test_a_peer_that_proved_the_protocol_may_fail_later(settings, answer, kind, stage, message):
    settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    talks_first = not kind.startswith("postgresql")
    peer = Peer(answer if talks_first else b"", None if talks_first else answer, False)
    try:
        result = get_connector(_config(kind, "127.0.0.1", peer.port).type_key).test(
            _config(kind, "127.0.0.1", peer.port))
    finally:
        peer.shutdown()
    assert (result.ok, result.stage, result.message) == (False, stage, message.format(port=peer.port))
    assert [(s.name, s.ok) for s in result.stages][:2] == [("resolve", True), ("tcp", True)]


@pytest.mark.parametrize(
    ("data", "verdict"),
    [(b"S", True), (b"N", True), (b"E", None), (b"NO", False), (b"H", False), (b"SSH-2.0", False),
     (b"E" + struct.pack("!i", 16) + b"SFATAL\0M x\0\0", True), (b"E" + struct.pack("!i", 16) + b"SFATAL\0", None),
     (b"E" + struct.pack("!i", 10**6), False), (b"E" + struct.pack("!i", 9) + b"\x01ab\0\0", False)],
)  # fmt: skip
def test_postgresql_answer_judge(data, verdict):
    assert _ssl_answer(data) is verdict


@pytest.mark.parametrize(
    ("data", "verdict"),
    [(MYSQL_GREETING, True), (MYSQL_GREETING[:30], None), (MYSQL_GREETING + b"x", False),
     (b"\x05\0\0\0\xff\x69\x04ab", True), (b"\x04\0\0\0\xff\x01\x00a", False), (b"HTTP/1.1 400", False),
     (b"SSH-2.0-x\r\n", False), (b"\x03\0\0\0\x0axy", False), (b"N", None)],
)  # fmt: skip
def test_mysql_greeting_judge(data, verdict):
    assert _greeting(data) is verdict


@pytest.mark.parametrize(
    ("data", "verdict"),
    [(b"SSH-2.0-OpenSSH_9.6\r\n", True), (b"SSH-1.99-x\n", True), (b"hello\r\nSSH-2.0-x\r\n", True),
     (b"SSH-2.0-OpenSSH", None), (b"SSH-1.5-x\r\n", False), (b"HTTP/1.1 400\r\n", None),
     (b"x\n" * 100, False)],
)  # fmt: skip
def test_ssh_banner_judge(data, verdict):
    assert ssh_banner(data) is verdict


# ------------------------------------------------------------------------------------- API


def _body(type_key: str, host: str, port: int) -> dict:
    return {"name": f"{type_key} {host}:{port}", "type": type_key, "connection_timeout": TIMEOUT,
            "connection": {"host": host, "port": port, "database": "d", "username": "u", "ssl": {"mode": "prefer"}},
            "credentials": {"password": "pw-never-sent-1"}}  # fmt: skip


@pytest.fixture
def api_targets(allow_loopback):
    """blocked / closed / HTTP server (a real http.server) / silent: target -> (host, port)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    http = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    silent = Peer(b"", None, False)
    yield {"blocked": (BLOCKED, 5432), "closed": ("127.0.0.1", _closed_port()),
           "http": ("127.0.0.1", http.server_address[1]), "silent": ("127.0.0.1", silent.port)}  # fmt: skip
    http.shutdown()
    http.server_close()
    silent.shutdown()


def _shape(response, host: str, port: int) -> tuple:
    """What a client sees, with the host:port it sent replaced by a placeholder."""
    body = response.json()
    result = body.get("test", body)  # 400 error body (with the test result in ``test``) or the test result
    message = body["message"]
    generic = re.sub(re.escape(f"{host}:{port}"), "HOST:PORT", message)
    assert f"{host}:{port}" in message
    return (response.status_code, body.get("code"), result["stage"], generic,
            [(s["name"], s["ok"]) for s in result["stages"]])  # fmt: skip


@pytest.mark.parametrize("type_key", ["postgresql", "mysql"])
def test_api_create_cannot_tell_blocked_closed_http_and_silent_apart(api, api_targets, type_key):
    shapes = {}
    for name, (host, port) in api_targets.items():
        response = api.post(URL, _body(type_key, host, port), format="json")
        shapes[name] = _shape(response, host, port)
    assert len(set(map(repr, shapes.values()))) == 1, shapes
    status, code, stage, message, stages = shapes["blocked"]
    assert (status, code, stage, stages) == (400, "CREDENTIAL_TEST_FAILED", "tcp", [("resolve", True), ("tcp", False)])
    assert message == ("Connection test failed at stage 'tcp': Could not connect to the server at HOST:PORT. "
                       "Nothing was changed.")  # fmt: skip


def test_api_test_endpoint_cannot_tell_them_apart(api, api_targets):
    shapes = {}
    for name, (host, port) in api_targets.items():
        created = api.post(f"{URL}?test_connection=false", _body("postgresql", host, port), format="json")
        assert created.status_code == 201, created.json()
        shapes[name] = _shape(api.post(f"{URL}{created.json()['id']}/test/"), host, port)
    assert len(set(map(repr, shapes.values()))) == 1, shapes
    status, code, stage, message, stages = shapes["blocked"]
    assert (status, code, stage, stages) == (400, "CREDENTIAL_TEST_FAILED", "tcp", [("resolve", True), ("tcp", False)])
    assert "Could not connect to the server at HOST:PORT." in message
