"""SSH tunnels against a real sshd (tests/support/sshd.py) to the password-auth PostgreSQL cluster."""

import json
import logging
import socket
import threading
import time
import uuid

import psycopg
import pytest
from psycopg import sql

from datasources.connectors import ConnectionConfig, ConnectorError, get_connector
from datasources.connectors import postgresql as pg_module
from datasources.connectors.ssh import KEY_ENCRYPTED, KEY_UNREADABLE, SSHTunnel
from tests.support.sshd import PASSPHRASE, keygen_fingerprint, serve_sshd

GOOD_STAGES = ["resolve", "tcp", "ssh", "auth", "database"]


@pytest.fixture(scope="module")
def sshd():
    yield from serve_sshd()


@pytest.fixture
def tunnels(monkeypatch):
    """Every SSHTunnel the PostgreSQL connector opens, to inspect after the test."""
    made: list[SSHTunnel] = []

    class Recording(SSHTunnel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(pg_module, "SSHTunnel", Recording)
    return made


def tunnelled(sshd, cluster, key="ed25519", fingerprint=None, secrets=None, **connection):
    """A tunnelled PostgreSQL config: the bastion reaches the cluster on its 127.0.0.1 port."""
    ssh = {"enabled": True, "host": sshd.host, "port": sshd.port, "username": sshd.user,
           "host_key_fingerprint": fingerprint}
    settings = {"host": cluster.host, "port": cluster.port, "database": cluster.database,
                "username": cluster.user, "schema": "", "ssl": {"mode": "disable"}, "ssh_tunnel": ssh}
    settings.update(connection)
    if secrets is None:
        secrets = {"ssh_private_key": sshd.keys[key]}
    return ConnectionConfig("postgresql", settings, {"password": cluster.password, **secrets}, connect_timeout=5)


def stage_names(result):
    return [s.name for s in result.stages]


def assert_failed_at_ssh(result, message):
    assert (result.ok, result.stage, result.message) == (False, "ssh", message)
    assert [(s.name, s.ok) for s in result.stages] == [("resolve", True), ("tcp", True), ("ssh", False)]


def test_tunnel_passes_and_records_the_host_key(sshd, pg_password_server, allow_loopback, tunnels, monkeypatch,
                                                record_property):
    def no_egress_for_the_db(*args):  # the bastion resolves the database host, not us
        raise AssertionError(f"database host checked against our egress policy: {args}")

    monkeypatch.setattr(pg_module, "resolve_checked", no_egress_for_the_db)
    result = get_connector("postgresql").test(tunnelled(sshd, pg_password_server))
    assert result.ok, result.message
    assert stage_names(result) == GOOD_STAGES
    assert result.server_version.startswith("PostgreSQL")
    assert result.ssh_host_key_fingerprint == keygen_fingerprint(sshd.host_key_pub)
    assert result.as_dict()["ssh_host_key_fingerprint"] == result.ssh_host_key_fingerprint
    assert result.ssh_host_key_fingerprint in result.stages[2].message
    record_property("stages", json.dumps([(s.name, s.duration_ms) for s in result.stages]))
    # the forwarder is gone with the test: its port is closed and its threads have ended
    (tunnel,) = tunnels
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", tunnel.local_port), timeout=1).close()
    assert not [t for t in threading.enumerate() if t.name.startswith("ssh-forward")]


def test_introspection_through_the_tunnel(sshd, pg_password_server, allow_loopback):
    c = pg_password_server
    schema = f"tunnel_{uuid.uuid4().hex[:8]}"
    admin = dict(host=c.host, port=c.port, dbname=c.database, user=c.user, password=c.password, autocommit=True)
    with psycopg.connect(**admin) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {s}; CREATE TABLE {s}.hidden (id int NOT NULL, note text)").format(
            s=sql.Identifier(schema)))
    try:
        tables = get_connector("postgresql").introspect(tunnelled(sshd, c, schema=schema))
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    assert [(t.schema, t.name, t.kind) for t in tables] == [(schema, "hidden", "table")]
    assert [(col.name, col.nullable) for col in tables[0].columns] == [("id", False), ("note", True)]


@pytest.mark.parametrize("hash_name", ["sha256", "md5"])
def test_pinned_fingerprint_that_matches(sshd, pg_password_server, allow_loopback, hash_name):
    pinned = keygen_fingerprint(sshd.host_key_pub, hash_name)
    result = get_connector("postgresql").test(tunnelled(sshd, pg_password_server, fingerprint=pinned))
    assert result.ok, result.message
    assert result.ssh_host_key_fingerprint is None  # already pinned: nothing to record


def test_pinned_fingerprint_mismatch_fails_at_ssh(sshd, pg_password_server, allow_loopback):
    other = keygen_fingerprint(sshd.workdir / "user_stranger.pub")
    result = get_connector("postgresql").test(tunnelled(sshd, pg_password_server, fingerprint=other))
    seen = keygen_fingerprint(sshd.host_key_pub)
    assert_failed_at_ssh(
        result,
        f"The SSH host key of {sshd.host}:{sshd.port} does not match the pinned fingerprint: "
        f"expected {other}, got {seen}.",
    )
    assert result.ssh_host_key_fingerprint is None  # a mismatch must never replace the pin
    with pytest.raises(ConnectorError) as caught:
        get_connector("postgresql").introspect(tunnelled(sshd, pg_password_server, fingerprint=other))
    assert caught.value.stage == "ssh"


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ({"key": "stranger"}, "SSH authentication failed for user '{user}'."),
        ({"ssh_password": "not-the-Password"}, "SSH authentication failed for user '{user}'."),
        ({"key": "ed25519_passphrase"}, KEY_ENCRYPTED),
        ({"key": "ed25519_passphrase", "ssh_private_key_passphrase": "wrong-Passphrase"}, KEY_UNREADABLE),
        ({"ssh_private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nnonsense\n"}, KEY_UNREADABLE),
    ],
)
def test_ssh_authentication_failures(sshd, pg_password_server, allow_loopback, secrets, message):
    secrets = dict(secrets)
    if "key" in secrets:
        secrets["ssh_private_key"] = sshd.keys[secrets.pop("key")]
    result = get_connector("postgresql").test(tunnelled(sshd, pg_password_server, secrets=secrets))
    assert_failed_at_ssh(result, message.format(user=sshd.user))
    dumped = json.dumps(result.as_dict())
    assert all(value[5:30] not in dumped for value in secrets.values())


@pytest.mark.parametrize("key", ["rsa_pem", "ecdsa_pem", "ed25519_passphrase", "password"])
def test_key_formats_and_password(sshd, pg_password_server, allow_loopback, key, caplog):
    caplog.set_level(logging.DEBUG)
    if key == "password":
        secrets = {"ssh_password": sshd.password}
    else:
        secrets = {"ssh_private_key": sshd.keys[key], "ssh_private_key_passphrase": PASSPHRASE}
    result = get_connector("postgresql").test(tunnelled(sshd, pg_password_server, secrets=secrets))
    assert result.ok, result.message
    assert stage_names(result) == GOOD_STAGES
    for value in secrets.values():  # nothing secret reaches the logs, paramiko's included
        assert all(line not in caplog.text for line in value.splitlines() if len(line) > 8)
    assert not [r for r in caplog.records if r.name.startswith("paramiko") and r.levelno < logging.WARNING]


def test_blocked_ssh_host_looks_like_a_closed_port(sshd, pg_password_server, settings):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    refused = get_connector("postgresql").test(tunnelled(sshd, pg_password_server, ssh_tunnel={
        "enabled": True, "host": "127.0.0.1", "port": closed_port, "username": sshd.user}))
    time.sleep(0.3)
    before = sshd.connections()
    settings.DATASOURCE_ALLOWED_NETWORKS = []
    blocked = get_connector("postgresql").test(tunnelled(sshd, pg_password_server))
    time.sleep(0.3)
    assert sshd.connections() == before  # not a single packet reached sshd
    for result, port in ((refused, closed_port), (blocked, sshd.port)):
        assert (result.ok, result.stage) == (False, "tcp")
        assert result.message == f"Could not connect to the server at 127.0.0.1:{port}."
        assert [(s.name, s.ok) for s in result.stages] == [("resolve", True), ("tcp", False)]
    settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    assert get_connector("postgresql").test(tunnelled(sshd, pg_password_server)).ok
    time.sleep(0.3)
    assert sshd.connections() > before  # the log does count connections


@pytest.mark.parametrize("host", ["/var/run/postgresql", "db1,db2", "@abstract"])
def test_tunnelled_database_host_forms_still_refused(sshd, pg_password_server, allow_loopback, host):
    before = sshd.connections()
    result = get_connector("postgresql").test(tunnelled(sshd, pg_password_server, host=host))
    assert (result.ok, result.stage) == (False, "resolve")
    time.sleep(0.2)
    assert sshd.connections() == before


def test_unreachable_database_behind_the_bastion(sshd, pg_password_server, allow_loopback):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    result = get_connector("postgresql").test(tunnelled(sshd, pg_password_server, port=port))
    assert_failed_at_ssh(result, f"The SSH server could not connect to 127.0.0.1:{port}.")


def test_silent_ssh_server_times_out(sshd, pg_password_server, allow_loopback):
    with socket.socket() as silent:  # accepts TCP, never sends an SSH banner
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        config = tunnelled(sshd, pg_password_server)
        config.connection["ssh_tunnel"]["port"] = port
        config.connect_timeout = 1
        start = time.perf_counter()
        result = get_connector("postgresql").test(config)
    assert time.perf_counter() - start < 4
    # A peer that never proves it speaks SSH looks exactly like a closed port (no scanning oracle).
    assert (result.ok, result.stage, result.message) == (
        False, "tcp", f"Could not connect to the server at 127.0.0.1:{port}."
    )
    assert [(s.name, s.ok) for s in result.stages] == [("resolve", True), ("tcp", False)]


def test_key_loading_and_fingerprint_forms():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from datasources.connectors.ssh import fingerprint_matches, load_private_key

    pkcs8 = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    key = load_private_key(pkcs8, passphrase="not-needed")  # a needless passphrase is ignored
    assert key.get_name() == "ssh-ed25519"
    sha = key.fingerprint
    md5 = ":".join(f"{b:02x}" for b in key.get_fingerprint())
    for pinned in (sha, sha + "=", f"MD5:{md5}", f"md5:{md5.replace(':', '').upper()}"):
        assert fingerprint_matches(pinned, key)[0], pinned
    for pinned in ("SHA256:" + "A" * 43, "MD5:00", "SHA1:abc", "SHA256:!!"):
        assert not fingerprint_matches(pinned, key)[0], pinned
    with pytest.raises(ConnectorError) as caught:
        load_private_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    assert (caught.value.stage, caught.value.message) == ("ssh", KEY_UNREADABLE)
