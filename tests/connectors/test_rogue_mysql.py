"""A rogue MySQL server on a loopback port: it must never get a local file, nor a clear-text password.

The fake server speaks just enough of the protocol (handshake v10, optional TLS, auth, OK packets, a
one-row result set) and answers a chosen query with a LOAD DATA LOCAL INFILE request (0xFB + file).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import struct
import threading

import pymysql
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from datasources.connectors import ConnectionConfig, ConnectorError, get_connector
from datasources.connectors.mysqlwire import LOCAL_FILE_REFUSED, SafeConnection

CLIENT_LOCAL_FILES, CLIENT_SSL = 1 << 7, 1 << 11
CAPS = 1 | 4 | 8 | (1 << 9) | (1 << 13) | (1 << 15) | (1 << 19) | CLIENT_LOCAL_FILES  # 4.1 protocol, plugin auth
OK = b"\x00\x00\x00\x02\x00\x00\x00"
EOF = b"\xfe\x00\x00\x02\x00"
PASSWORD = "rogue-target-pw-123"
SECRET_MARKER = b"TOP-SECRET-FILE-CONTENT"


def _lenenc(data: bytes) -> bytes:
    return bytes([len(data)]) + data


def _version_result() -> list[bytes]:
    coldef = b"".join(_lenenc(x) for x in (b"def", b"", b"", b"", b"VERSION()", b""))
    coldef += b"\x0c" + struct.pack("<HIBHB", 33, 255, 0xFD, 0, 0) + b"\0\0"
    return [b"\x01", coldef, EOF, _lenenc(b"5.7.99-rogue"), EOF]


class RogueServer:
    """Serves connections on 127.0.0.1; answers query number ``infile_at`` with a LOCAL INFILE request."""

    def __init__(self, infile_at=0, filename=b"/etc/passwd", tls=None, auth_switch=None):
        self.infile_at, self.filename, self.tls, self.auth_switch = infile_at, filename, tls, auth_switch
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.listener.settimeout(0.1)
        self.stopped = threading.Event()
        self._sessions: list[dict] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            session = {"received": b"", "after_request": None, "client_flags": None, "tls": False,
                       "done": threading.Event()}  # fmt: skip
            self._sessions.append(session)
            try:
                self._handle(conn, session)
            except (OSError, ValueError):
                pass
            finally:
                conn.close()
                session["done"].set()

    @property
    def sessions(self) -> list[dict]:
        """Sessions so far, once each has finished (the client hung up or the exchange ended)."""
        for session in self._sessions:
            assert session["done"].wait(10), "a rogue server session did not finish"
        return self._sessions

    def close(self):
        self.stopped.set()
        self.thread.join(10)
        self.listener.close()

    def _send(self, conn, seq, payload):
        conn.sendall(len(payload).to_bytes(3, "little") + bytes([seq % 256]) + payload)

    def _recv(self, conn, session):
        header = self._exact(conn, 4, session)
        if header is None:
            return None
        return self._exact(conn, int.from_bytes(header[:3], "little"), session)

    def _exact(self, conn, size, session):
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
            session["received"] += chunk
        return data

    def _handle(self, conn, session):
        conn.settimeout(5)
        caps = CAPS | (CLIENT_SSL if self.tls else 0)
        greeting = b"\x0a5.7.99-rogue\0" + struct.pack("<I", 7) + b"abcdefgh\0" + struct.pack("<H", caps & 0xFFFF)
        greeting += b"\x21" + struct.pack("<HH", 2, caps >> 16) + b"\x15" + b"\0" * 10 + b"ijklmnopqrst\0"
        greeting += b"mysql_native_password\0"
        self._send(conn, 0, greeting)
        response = self._recv(conn, session)
        seq = 2
        if response is not None and len(response) == 32 and self.tls:
            conn = self.tls.wrap_socket(conn, server_side=True)
            session["tls"] = True
            response, seq = self._recv(conn, session), 3
        if response is None:
            return
        session["client_flags"] = struct.unpack("<I", response[:4])[0]
        if self.auth_switch:
            self._send(conn, seq, b"\xfe" + self.auth_switch + b"\0" + b"x" * 20 + b"\0")
            if self._recv(conn, session) is None:
                return
            seq += 2
        self._send(conn, seq, OK)
        queries = 0
        while (command := self._recv(conn, session)) is not None:
            if command[:1] != b"\x03":
                self._send(conn, 1, OK)
                continue
            if queries == self.infile_at:
                self._send(conn, 1, b"\xfb" + self.filename)
                start = len(session["received"])
                try:  # a client that sends a file ends it with an empty packet; ours just hangs up
                    while self._recv(conn, session) not in (None, b""):
                        pass
                except OSError:
                    pass
                session["after_request"] = session["received"][start:]
                return
            version = command[1:].upper().startswith(b"SELECT VERSION")
            replies = _version_result() if version else [OK]
            for number, payload in enumerate(replies, start=1):
                self._send(conn, number, payload)
            queries += 1


@pytest.fixture
def rogue(settings):
    settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    servers = []

    def start(**kwargs):
        servers.append(RogueServer(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _config(port, connect_timeout=5, **connection):
    settings = {"host": "127.0.0.1", "port": port, "username": "victim", "ssl": {"mode": "disable"}, **connection}
    return ConnectionConfig("mysql", settings, {"password": PASSWORD}, connect_timeout=connect_timeout)


def _assert_nothing_sent(session):
    assert session["after_request"] == b""  # not a byte after the request: no file, no empty packet
    assert b"root:" not in session["received"] and SECRET_MARKER not in session["received"]
    assert not session["client_flags"] & CLIENT_LOCAL_FILES


def _packets(data):
    while data:
        size = int.from_bytes(data[:3], "little")
        yield data[4 : 4 + size]
        data = data[4 + size :]


def test_connection_test_refuses_local_infile(rogue):
    server = rogue(infile_at=1)  # SET NAMES answered, then SELECT VERSION() gets the file request
    result = get_connector("mysql").test(_config(server.port))
    assert (result.ok, result.stage, result.message) == (False, "database", LOCAL_FILE_REFUSED)
    assert [(s.name, s.ok) for s in result.stages] == [
        ("resolve", True), ("tcp", True), ("auth", True), ("database", False)
    ]  # fmt: skip
    assert PASSWORD not in json.dumps(result.as_dict())
    _assert_nothing_sent(server.sessions[0])


def test_request_answering_set_names_gets_no_file(rogue):
    """PyMySQL reads the reply to its login-time SET NAMES as a bare packet: a file request there is ignored."""
    server = rogue(infile_at=0)
    result = get_connector("mysql").test(_config(server.port, connect_timeout=1))
    assert not result.ok
    session = server.sessions[0]
    assert b"root:" not in session["received"] and not session["client_flags"] & CLIENT_LOCAL_FILES
    assert all(p[:1] in (b"\x01", b"\x03") for p in _packets(session["after_request"]))  # commands only


def test_introspection_refuses_local_infile(rogue):
    server = rogue(infile_at=2)  # SET NAMES, SELECT VERSION(), then the catalogue query
    with pytest.raises(ConnectorError) as caught:
        get_connector("mariadb").introspect(_config(server.port))
    assert (caught.value.stage, caught.value.message) == ("introspect", LOCAL_FILE_REFUSED)
    _assert_nothing_sent(server.sessions[0])


@pytest.mark.parametrize("client", [SafeConnection, pymysql.Connection])
def test_local_infile_true_is_ignored_by_safe_connection_only(rogue, tmp_path, client):
    """Ours sends nothing even when asked to allow it; plain PyMySQL (the control) does send the file."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET_MARKER)
    server = rogue(infile_at=1, filename=str(secret).encode())
    conn = client(host="127.0.0.1", port=server.port, user="u", password="p", autocommit=True, local_infile=True)
    with pytest.raises((RuntimeError, pymysql.Error)):
        conn.query("SELECT 1")
    conn._force_close()
    if client is SafeConnection:
        _assert_nothing_sent(server.sessions[0])
    else:
        assert SECRET_MARKER in server.sessions[0]["after_request"]


def test_clear_text_password_refused_without_tls(rogue):
    server = rogue(auth_switch=b"mysql_clear_password")
    result = get_connector("mysql").test(_config(server.port))
    assert (result.ok, result.stage) == (False, "auth")
    assert "clear text" in result.message
    assert PASSWORD.encode() not in server.sessions[0]["received"]


# ----------------------------------------------------------------------------------------- TLS


def _cert(subject, issuer_key, key, issuer=None, ca=False, sans=()):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(key.public_key())
    builder = builder.serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
    builder = builder.not_valid_after(now + datetime.timedelta(days=1))
    builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca_key, other_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    ca = _cert("Test CA", ca_key, ca_key, ca=True)
    other_ca = _cert("Other CA", other_key, other_key, ca=True)
    ip_san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = _cert("db", ca_key, server_key, issuer=ca.subject, sans=ip_san)
    wrong_name = _cert("db", ca_key, server_key, issuer=ca.subject, sans=[x509.DNSName("db.example.test")])
    client = _cert("victim", ca_key, client_key, issuer=ca.subject)
    folder = tmp_path_factory.mktemp("pki")

    def server_ctx(cert, require_client=False):
        (folder / "s.crt").write_text(_pem(cert))
        (folder / "s.key").write_text(_pem(server_key))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(folder / "s.crt", folder / "s.key")
        if require_client:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=_pem(ca))
        return ctx

    return {
        "ca": _pem(ca), "other_ca": _pem(other_ca), "client": _pem(client), "client_key": _pem(client_key),
        "server": server_ctx(server), "wrong_name": server_ctx(wrong_name),
        "mtls": server_ctx(server, require_client=True),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("server_ctx", "ssl_settings", "stage", "message"),
    [
        ("server", {"mode": "verify-full", "ca_certificate": "ca"}, "database", LOCAL_FILE_REFUSED),
        ("server", {"mode": "verify-ca", "ca_certificate": "ca"}, "database", LOCAL_FILE_REFUSED),
        ("server", {"mode": "require"}, "database", LOCAL_FILE_REFUSED),
        ("server", {"mode": "prefer"}, "database", LOCAL_FILE_REFUSED),
        ("wrong_name", {"mode": "verify-ca", "ca_certificate": "ca"}, "database", LOCAL_FILE_REFUSED),
        ("wrong_name", {"mode": "verify-full", "ca_certificate": "ca"}, "tls",
         "The server certificate does not match host '127.0.0.1'."),
        ("server", {"mode": "verify-ca", "ca_certificate": "other_ca"}, "tls", None),
        ("server", {"mode": "verify-full"}, "tls", None),  # system CAs do not know the test CA
        ("server", {"mode": "verify-ca", "ca_certificate": "not a pem"}, "tls",
         "The CA certificate is not a valid PEM certificate."),
        (None, {"mode": "require"}, "tls", "The server does not support SSL, but the SSL mode requires it."),
    ],
)  # fmt: skip
def test_tls_modes(rogue, pki, server_ctx, ssl_settings, stage, message):
    ssl_settings = {k: pki.get(v, v) if k == "ca_certificate" else v for k, v in ssl_settings.items()}
    server = rogue(infile_at=1, tls=pki[server_ctx] if server_ctx else None)
    result = get_connector("mysql").test(_config(server.port, ssl=ssl_settings))
    assert (result.ok, result.stage) == (False, stage), result.message
    if message:
        assert result.message == message
    names = [s.name for s in result.stages]
    assert names.count("tls") == (1 if ssl_settings["mode"] in ("require", "verify-ca", "verify-full") else 0)
    if stage == "database":
        assert server.sessions[0]["tls"]
        assert PASSWORD.encode() not in server.sessions[0]["received"]


def test_client_certificate_from_pem_contents(rogue, pki):
    server = rogue(infile_at=1, tls=pki["mtls"])
    ssl_settings = {"mode": "verify-full", "ca_certificate": pki["ca"], "client_certificate": pki["client"]}
    config = _config(server.port, ssl=ssl_settings)
    config.secrets["ssl_client_key"] = pki["client_key"]
    result = get_connector("mysql").test(config)
    assert (result.ok, result.stage, result.message) == (False, "database", LOCAL_FILE_REFUSED)
    assert "BEGIN" not in json.dumps(result.as_dict())
    config.secrets.pop("ssl_client_key")
    config.connection["ssl"]["client_certificate"] = pki["other_ca"]  # a certificate without its key
    assert get_connector("mysql").test(config).stage == "tls"
