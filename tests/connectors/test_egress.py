"""Egress policy: internal and metadata addresses are refused before any packet is sent."""

import ipaddress
import json
import socket
import struct
import threading

import pytest

from datasources.connectors import (
    ConnectionConfig,
    ConnectorError,
    EgressBlocked,
    get_connector,
    resolve_checked,
)
from datasources.connectors.egress import is_blocked

SECRET = "Tr0ub4dor-and-3"
METADATA = [
    "169.254.169.254",
    "[fe80::1]",
    "fe80::1",
    "::ffff:169.254.169.254",
    "fd00:ec2::254",
    "100.100.100.200",
    "2002:a9fe:a9fe::1",  # 6to4 embedding of 169.254.169.254
    "64:ff9b::a9fe:a9fe",  # NAT64 embedding of 169.254.169.254
    "::169.254.169.254",  # deprecated IPv4-compatible form
]
INTERNAL = [
    "127.0.0.1",
    "localhost",
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "017700000001",
    "127.1",
    "::1",
    "[::1]",
    "::ffff:127.0.0.1",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",
    "fc00::1",
    "0.0.0.0",
    "::",
    "224.0.0.1",
    "255.255.255.255",
    "240.0.0.1",
]


@pytest.fixture(autouse=True)
def no_allowed_networks(settings):
    settings.DATASOURCE_ALLOWED_NETWORKS = []


@pytest.mark.parametrize("host", METADATA + INTERNAL)
def test_blocked_by_default_looks_like_a_failed_connect(host):
    with pytest.raises(EgressBlocked) as caught:
        resolve_checked(host, 5432, timeout=2)
    assert caught.value.stage == "tcp"
    assert caught.value.message == f"Could not connect to the server at {host}:5432."


@pytest.mark.parametrize(
    "host",
    [
        "/var/run/postgresql",
        "@abstract",
        "a,b",
        "db1,db2:5432",
        "",
        "   ",
        "a b",
        "db\n",
        "db\x00",
        "x" * 254,
        "host/path",
    ],
)
def test_malformed_hosts_rejected_before_resolution(host):
    with pytest.raises(ConnectorError) as caught:
        resolve_checked(host, 5432, timeout=2)
    assert not isinstance(caught.value, EgressBlocked)
    assert caught.value.stage == "resolve"


@pytest.mark.parametrize("port", [0, 65536, -1, True])
def test_invalid_port_rejected(port):
    with pytest.raises(ConnectorError) as caught:
        resolve_checked("8.8.8.8", port, timeout=2)
    assert caught.value.stage == "resolve"


def test_unresolvable_name_fails_at_resolve():
    with pytest.raises(ConnectorError) as caught:
        resolve_checked("no-such-host.invalid", 5432, timeout=3)
    assert caught.value.stage == "resolve"
    assert not isinstance(caught.value, EgressBlocked)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
    ],
)
def test_loopback_allowed_when_configured(settings, host, expected):
    settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert resolve_checked(host, 5432, timeout=2) == expected


def test_localhost_allowed_when_configured(settings):
    settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    assert ipaddress.ip_address(resolve_checked("localhost", 5432, timeout=2)).is_loopback


def test_allowing_one_network_does_not_open_others(settings):
    settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    for host in ("10.0.0.1", "::1", "192.168.0.1"):
        with pytest.raises(EgressBlocked):
            resolve_checked(host, 5432, timeout=2)


@pytest.mark.parametrize("host", METADATA)
def test_metadata_blocked_even_when_everything_is_allowed(settings, host):
    settings.DATASOURCE_ALLOWED_NETWORKS = ["0.0.0.0/0", "::/0"]
    with pytest.raises(EgressBlocked):
        resolve_checked(host, 80, timeout=2)


def test_everything_allowed_opens_private_ranges(settings):
    settings.DATASOURCE_ALLOWED_NETWORKS = ["0.0.0.0/0", "::/0"]
    assert resolve_checked("10.0.0.1", 5432, timeout=2) == "10.0.0.1"
    assert resolve_checked("::1", 5432, timeout=2) == "::1"


def test_invalid_allowed_entries_are_ignored(settings):
    settings.DATASOURCE_ALLOWED_NETWORKS = ["not-a-network", "127.0.0.0/8"]
    assert resolve_checked("127.0.0.1", 5432, timeout=2) == "127.0.0.1"
    with pytest.raises(EgressBlocked):
        resolve_checked("10.0.0.1", 5432, timeout=2)


def test_public_addresses_pass():
    assert resolve_checked("8.8.8.8", 5432, timeout=2) == "8.8.8.8"
    assert not is_blocked("2606:4700:4700::1111", [])
    assert not is_blocked("64:ff9b::808:808", [])  # NAT64 of 8.8.8.8


def _pg_config(host: str, port: int) -> ConnectionConfig:
    return ConnectionConfig(
        type_key="postgresql",
        connection={
            "host": host,
            "port": port,
            "database": "postgres",
            "username": "postgres",
            "ssl": {"mode": "prefer"},
        },
        secrets={"password": SECRET},
        connect_timeout=2,
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "::ffff:127.0.0.1"])
def test_blocked_listener_sees_no_connection_attempt(host):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    try:
        result = get_connector("postgresql").test(_pg_config(host, port))
        assert not result.ok
        assert result.stage == "tcp"
        assert result.message == f"Could not connect to the server at {host}:{port}."
        with pytest.raises(TimeoutError):
            listener.accept()  # the kernel would have queued any attempt, even unaccepted
    finally:
        listener.close()


def test_blocked_and_closed_port_are_indistinguishable(settings):
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there any more

    blocked = get_connector("postgresql").test(_pg_config("127.0.0.1", port))
    settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    closed = get_connector("postgresql").test(_pg_config("127.0.0.1", port))

    for result in (blocked, closed):
        assert (result.ok, result.stage, result.message) == (
            False,
            "tcp",
            f"Could not connect to the server at 127.0.0.1:{port}.",
        )
    shape = [[(s.name, s.ok, s.message) for s in r.stages] for r in (blocked, closed)]
    assert shape[0] == shape[1]
    assert set(blocked.as_dict()) == set(closed.as_dict())


def _hostile_server(listener: socket.socket, seen: list) -> None:
    """Speak just enough PostgreSQL to ask for a cleartext password, and keep whatever comes back."""
    while True:
        conn, _ = listener.accept()
        head = conn.recv(8)
        length, code = struct.unpack("!ii", head) if len(head) == 8 else (0, 0)
        if code == 80877103:  # SSLRequest: no TLS here
            conn.sendall(b"N")
            head = conn.recv(8)
            length, code = struct.unpack("!ii", head) if len(head) == 8 else (0, 0)
        if length:
            break
        conn.close()  # the connector's probe: it hangs up after the answer to SSLRequest
    with conn:
        conn.recv(length - 8)  # rest of the startup packet
        conn.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
        conn.settimeout(5)
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
        seen.append(answer)


@pytest.mark.parametrize("mode", ["disable", "prefer"])
def test_hostile_server_asking_for_a_cleartext_password_gets_nothing(settings, mode):
    """Without a verified TLS certificate the password is never sent in clear, whatever the server asks."""
    settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(5)
    seen: list[bytes] = []
    server = threading.Thread(target=_hostile_server, args=(listener, seen), daemon=True)
    server.start()
    try:
        config = _pg_config("127.0.0.1", listener.getsockname()[1])
        config.connection["ssl"] = {"mode": mode}
        result = get_connector("postgresql").test(config)
    finally:
        server.join(10)
        listener.close()
    assert len(seen) == 1 and SECRET.encode() not in seen[0]  # the server asked, and got no password
    assert (result.ok, result.stage) == (False, "auth")
    assert "clear text" in result.message and "not sent" in result.message
    assert SECRET not in json.dumps(result.as_dict())
