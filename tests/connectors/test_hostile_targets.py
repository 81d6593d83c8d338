"""Hostile-target matrix: every blocked host form x every entry point is refused before any packet.

Loopback is *not* allowed here. A listener the test owns on 127.0.0.1:PORT (and [::1]:PORT when
IPv6 is available) must see zero connection attempts, whichever spelling of loopback, internal,
metadata, Unix-socket or host-list address was sent through create, PUT, PATCH, a dry run, the
test endpoint of a saved source, or as the SSH tunnel host; the stored row stays unchanged.
Each entry point runs every form in one test so the matrix stays fast.
"""

from __future__ import annotations

import socket

import pytest

from datasources.models import DataSource
from tests.support.state import stored_state

URL = "/api/v1/data-sources/"
HOSTS = [
    # loopback, however spelled
    "127.0.0.1", "localhost", "127.1", "2130706433", "0x7f000001", "0177.0.0.1",
    "[::1]", "::1", "::ffff:127.0.0.1", "::ffff:7f00:1",
    # unspecified (connects to the local host), link-local and cloud metadata
    "0.0.0.0", "::", "169.254.169.254", "fe80::1", "fd00:ec2::254", "::ffff:169.254.169.254",
    # private, shared, multicast
    "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "224.0.0.1",
    # Unix sockets and host lists
    "/var/run/postgresql", "@abstract", "a,b", "127.0.0.1,127.0.0.2",
]  # fmt: skip
SYNTAX = {"/var/run/postgresql", "@abstract", "a,b", "127.0.0.1,127.0.0.2"}  # refused before resolution
WRITE_TIME = {"@abstract"}  # a host holds no '@' (the catalogue's host rule): refused when written
STRINGS = [  # (type, connection string, refused by the parser)
    ("postgresql", "postgresql://u:p@127.0.0.1:{port}/d", False),
    ("postgresql", "postgresql://u:p@localhost:{port}/d?sslmode=disable", False),
    ("postgresql", "postgresql://u:p@127.0.0.1:{port}/d?host=/tmp", True),
    ("postgresql", "postgresql://u:p@127.0.0.1:{port}/d?sslrootcert=/etc/passwd", True),
    ("postgresql", "host=/tmp dbname=x", True),
    ("postgresql", "host=127.0.0.1 port={port} dbname=x user=u", False),
    ("mysql", "mysql://u:p@127.0.0.1:{port}/d", False),
    ("mysql", "mysql://u:p@127.0.0.1:{port}/d?local_infile=1", True),
]
#: label -> (code, failing stage): a blocked address fails like a closed port, malformed forms earlier
EXPECTED = {h: ("CREDENTIAL_TEST_FAILED", "resolve" if h in SYNTAX else "tcp") for h in HOSTS}
EXPECTED |= {h: ("INVALID_REQUEST_BODY", None) for h in WRITE_TIME}
EXPECTED |= {s: ("INVALID_REQUEST_BODY", None) if bad else ("CREDENTIAL_TEST_FAILED", "tcp") for _, s, bad in STRINGS}


class Listeners:
    """Sockets the test listens on (127.0.0.1:PORT and, if possible, [::1]:PORT), never accepting."""

    def __init__(self) -> None:
        v4 = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = v4.getsockname()[1]
        self.sockets = [v4]
        try:
            self.sockets.append(socket.create_server(("::1", self.port), family=socket.AF_INET6, backlog=64))
        except OSError:
            pass  # no IPv6 loopback here: the IPv4 listener still catches 0.0.0.0 and 127.x
        for sock in self.sockets:
            sock.setblocking(False)

    def attempts(self) -> int:
        """Connections made so far (the kernel queues every attempt, accepted or not)."""
        count = 0
        for sock in self.sockets:
            while True:
                try:
                    sock.accept()[0].close()
                except BlockingIOError:
                    break
                count += 1
        return count

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def listeners(settings):
    settings.DATASOURCE_ALLOWED_NETWORKS = []  # loopback is not allowed
    settings.DATASOURCE_TEST_RATE_PER_TOKEN = settings.DATASOURCE_TEST_RATE_PER_ORG = 10_000
    owned = Listeners()
    yield owned
    owned.close()


@pytest.fixture
def port(listeners):
    return listeners.port


def _connection(type_key: str, host: str, port: int) -> dict:
    return {"host": host, "port": port, "database": "d", "username": "u", "ssl": {"mode": "disable"}}


def _body(type_key: str, host: str, port: int, name: str = "Target") -> dict:
    return {"name": name, "type": type_key, "connection": _connection(type_key, host, port),
            "credentials": {"password": "pw-never-sent-1"}, "connection_timeout": 1}  # fmt: skip


def _refused(response, form: str, problems: list[str], context: str = "") -> None:
    """Refused as expected for ``form`` (a host form or a connection string)."""
    body = response.json()
    if (response.status_code, body.get("code"), body.get("stage")) != (400, *EXPECTED[form]):
        problems.append(f"{context}{form}: {response.status_code} {body}")


@pytest.fixture
def saved(api, port):
    """A PostgreSQL and a MySQL source saved untested, pointing at a harmless name on PORT."""
    made = {}
    for type_key in ("postgresql", "mysql"):
        body = _body(type_key, "db.example.com", port, name=f"Saved {type_key}")
        response = api.post(f"{URL}?test_connection=false", body, format="json")
        assert response.status_code == 201, response.json()
        made[type_key] = response.json()["id"]
    return made


def _each_change(api, saved, changes, send) -> list[str]:
    """``send(url, body)`` for every (label, type, body); each refused and the stored row unchanged."""
    problems: list[str] = []
    for label, type_key, body in changes:
        pk = saved[type_key]
        before = stored_state(pk)
        _refused(send(f"{URL}{pk}/", body), label, problems)
        if stored_state(pk) != before:
            problems.append(f"{label}: the stored row changed")
    return problems


def _host_changes(port: int, full: bool) -> list:
    if full:
        return [(h, "postgresql", {"name": "Saved postgresql", **_body("postgresql", h, port)}) for h in HOSTS]
    return [(h, "postgresql", {"connection": {"host": h}}) for h in HOSTS]


def _string_changes(port: int, full: bool) -> list:
    return [(s, t, {**({"name": f"Saved {t}", "connection_timeout": 1} if full else {}),
                    "connection_string": s.format(port=port)})
            for t, s, _ in STRINGS]  # fmt: skip


def test_create(api, listeners, port):
    problems: list[str] = []
    for host in HOSTS:
        _refused(api.post(URL, _body("postgresql", host, port), format="json"), host, problems)
    for type_key, string, _ in STRINGS:
        body = {"name": "Target", "type": type_key, "connection_string": string.format(port=port),
                "connection_timeout": 1}
        _refused(api.post(URL, body, format="json"), string, problems)
    assert not problems
    assert not DataSource.objects.exists()
    assert listeners.attempts() == 0, "a blocked target was connected to"


def test_create_mysql(api, listeners, port):
    problems: list[str] = []
    for host in HOSTS:
        _refused(api.post(URL, _body("mysql", host, port), format="json"), host, problems)
    assert not problems
    assert not DataSource.objects.exists()
    assert listeners.attempts() == 0, "a blocked target was connected to"


def test_put(api, listeners, port, saved):
    changes = _host_changes(port, full=True) + _string_changes(port, full=True)
    assert not _each_change(api, saved, changes, lambda url, body: api.put(url, body, format="json"))
    assert listeners.attempts() == 0, "a blocked target was connected to"


def test_patch(api, listeners, port, saved):
    changes = _host_changes(port, full=False) + _string_changes(port, full=False)
    assert not _each_change(api, saved, changes, lambda url, body: api.patch(url, body, format="json"))
    assert listeners.attempts() == 0, "a blocked target was connected to"


def test_patch_dry_run(api, listeners, port, saved):
    changes = _host_changes(port, full=False) + _string_changes(port, full=False)
    send = lambda url, body: api.patch(f"{url}?dry_run=true", body, format="json")  # noqa: E731
    assert not _each_change(api, saved, changes, send)
    assert listeners.attempts() == 0, "a blocked target was connected to"


def test_test_endpoint_of_a_source_saved_untested(api, listeners, port):
    problems: list[str] = []
    bodies = [(h, _body("postgresql", h, port, name=f"S{i}")) for i, h in enumerate(HOSTS)]
    bodies += [(s, {"name": f"C{i}", "type": t, "connection_string": s.format(port=port), "connection_timeout": 1})
               for i, (t, s, _) in enumerate(STRINGS)]  # fmt: skip
    for label, body in bodies:
        created = api.post(f"{URL}?test_connection=false", body, format="json")
        if created.status_code != 201:  # refused when saved: nothing left to test
            _refused(created, label, problems)
            continue
        pk = created.json()["id"]
        before = stored_state(pk)
        response = api.post(f"{URL}{pk}/test/")
        result = response.json().get("test", response.json())
        # the endpoint reports the test (200, ok false), or answers CREDENTIAL_TEST_FAILED
        if response.status_code not in (200, 400) or (result.get("ok"), result.get("stage")) != (
            False, EXPECTED[label][1]
        ):
            problems.append(f"{label}: {response.status_code} {response.json()}")
        after = stored_state(pk)
        for state in (before, after):  # the test records its result; the configuration stays
            for volatile in ("last_test", "status"):
                state["row"].pop(volatile)
        if after != before:
            problems.append(f"{label}: the stored configuration changed")
    assert not problems
    assert listeners.attempts() == 0, "a blocked target was connected to"


def _tunnel(host: str, port: int) -> dict:
    return {"enabled": True, "host": host, "port": port, "username": "tunnel"}


@pytest.mark.parametrize("secret", ["ssh_password", "ssh_private_key"])
def test_ssh_tunnel_host(api, listeners, port, saved, secret):
    value = "ssh-pw-never-sent" if secret == "ssh_password" else (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n")
    problems: list[str] = []
    for host in HOSTS:
        body = _body("postgresql", "db.internal", 5432)
        body["connection"]["ssh_tunnel"] = _tunnel(host, port)
        body["credentials"][secret] = value
        _refused(api.post(URL, body, format="json"), host, problems, "ssh host on create: ")
    assert not DataSource.objects.exclude(pk__in=saved.values()).exists()
    changes = [(h, "postgresql", {"connection": {"ssh_tunnel": _tunnel(h, port)},
                                             "credentials": {secret: value}}) for h in HOSTS]  # fmt: skip
    problems += _each_change(api, saved, changes, lambda url, body: api.patch(url, body, format="json"))
    assert not problems
    assert listeners.attempts() == 0, "a blocked target was connected to"
