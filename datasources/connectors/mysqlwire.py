"""MySQL wire helpers: a hardened PyMySQL client, TLS contexts from PEM text, cleaned error messages.

The client can never send a local file (``LOAD DATA LOCAL INFILE``) whatever a server asks, nor a
clear-text password over an unencrypted connection. Messages are built here from error codes; raw
server text is only ever used sanitized, as a last resort.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pymysql.connections import Connection
from pymysql.constants import CLIENT, CR

from .base import ConnectionConfig, ConnectorError, sanitize
from .reach import Deadline, NotTheServer, connect_and_greet, peek

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
TLS_REQUIRED = ("require", "verify-ca", "verify-full")
VERIFY_CA_NEEDS_CA = "SSL mode 'verify-ca' needs a CA certificate."
NO_SSL = "The server does not support SSL, but the SSL mode requires it."
LOCAL_FILE_REFUSED = "The server asked for a local file (LOAD DATA LOCAL INFILE); this client never sends files."
CLEAR_TEXT_PLUGINS = (b"mysql_clear_password", b"dialog")
DB_ERRORS = (1044, 1049)  # access denied to database, unknown database
MAX_GREETING = 1024  # a real handshake is about 80-120 bytes


class SafeConnection(Connection):
    """PyMySQL connection that never sends local files nor clear-text passwords without TLS."""

    @property
    def _local_infile(self) -> bool:  # read by PyMySQL before it would answer a LOAD LOCAL request
        return False

    @_local_infile.setter
    def _local_infile(self, value: bool) -> None:
        """Ignored: local files are never enabled, whatever the caller passes."""

    def _request_authentication(self) -> None:
        self.client_flag &= ~CLIENT.LOCAL_FILES  # never advertise the capability either
        super()._request_authentication()

    def _process_auth(self, plugin_name: bytes, auth_packet: object, handler: object = None) -> object:
        if plugin_name in CLEAR_TEXT_PLUGINS and not self._secure:
            raise ClearTextRefused()
        return super()._process_auth(plugin_name, auth_packet, handler)

    @property
    def transport(self) -> socket.socket:
        """The socket in use (the TLS socket once encryption is on)."""
        return self._sock

    def set_timeouts(self, seconds: float) -> None:
        """Per-read and per-write socket timeouts for the following queries."""
        self._read_timeout = self._write_timeout = seconds

    def finish(self) -> None:
        """Close politely (COM_QUIT) if still open."""
        if self.open:
            self.close()

    def abort(self) -> None:
        """Close the socket without sending anything more (used after a protocol error)."""
        self._closed = True
        self._force_close()


class ClearTextRefused(Exception):
    """The server asked for the password in clear text over an unencrypted connection."""


def _greeting(data: bytes) -> bool | None:
    """Judge for the first packet of a MySQL server: a handshake v10, or an error packet.

    Packet header: 3-byte length, sequence id 0. Handshake v10: 0x0a, a printable version
    string ending in NUL, connection id (4), auth data (8), a NUL filler, capabilities (2).
    Error: 0xff, a 2-byte code, a printable message.
    """
    if len(data) >= 4 and (data[3] != 0 or not 0 < int.from_bytes(data[:3], "little") <= MAX_GREETING):
        return False
    if len(data) >= 5 and data[4] not in (0x0A, 0xFF):
        return False
    if len(data) < 4 or len(data) < 4 + int.from_bytes(data[:3], "little"):
        return None
    payload = data[4 : 4 + int.from_bytes(data[:3], "little")]
    if len(data) > 4 + len(payload):
        return False  # a server sends nothing more before the client answers
    if payload[0] == 0xFF:
        code = struct.unpack("<H", payload[1:3])[0] if len(payload) >= 3 else 0
        return 1000 <= code < 20000 and _printable(payload[3:])
    end = payload.find(b"\0", 1)
    return 1 < end <= 64 and _printable(payload[1:end]) and len(payload) >= end + 16 and payload[end + 13] == 0


def _printable(text: bytes) -> bool:
    try:
        return text.decode().isprintable()
    except UnicodeDecodeError:
        return False


def open_server(ip: str, port: int, timeout: float, host: str) -> socket.socket:
    """Stage tcp: connect and wait for the server's greeting (left unread for the driver).

    Until a valid handshake (or error packet) has come, every failure reads like a closed port.
    """
    sock, _ = connect_and_greet(ip, port, timeout, host, lambda s, d: peek(s, d, _greeting))
    return sock


def peek_greeting(sock: socket.socket, timeout: float) -> int:
    """Capability flags from the server greeting, read without consuming it."""
    try:
        data = peek(sock, Deadline(timeout), _greeting)
    except NotTheServer:
        raise ConnectorError("tls", "The server closed the connection before its greeting.") from None
    payload = data[4:]
    if payload[:1] == b"\xff":
        raise ConnectorError("tls", greeting_error(struct.unpack("<H", payload[1:3])[0]))
    end = payload.find(b"\0", 1)
    return struct.unpack("<H", payload[end + 14 : end + 16])[0]


def greeting_error(code: int) -> str:
    """Message for an error packet sent instead of a greeting."""
    if code == 1129:
        return "The server has blocked this client after too many connection errors."
    if code in (1040, 1203):
        return "The server has no free connection slots."
    if code == 1130:
        return "The server does not accept connections from this client."
    return f"The server refused the connection (error {code})."


def tls_check(sock: socket.socket, timeout: float) -> None:
    """TLS stage: the server must offer SSL in its greeting; nothing is sent to it."""
    if not peek_greeting(sock, timeout) & CLIENT.SSL:
        raise ConnectorError("tls", NO_SSL)


def tls_context(ssl_settings: dict, secrets: dict[str, str]) -> ssl.SSLContext | None:
    """SSL context for the mode (None for 'disable'); PEM texts are never taken as paths."""
    mode = ssl_settings.get("mode") or "prefer"
    if mode not in SSL_MODES:
        raise ConnectorError("tls", "Unsupported SSL mode.")
    if mode == "disable":
        return None
    ca = ssl_settings.get("ca_certificate") or ""
    if mode == "verify-ca" and not ca:
        raise ConnectorError("tls", VERIFY_CA_NEEDS_CA)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT  # servers' self-generated CAs are often not strict
    # require verifies the chain when a CA is given (like libpq); verify-full also checks the host name.
    verify = mode in ("verify-ca", "verify-full") or (mode == "require" and bool(ca))
    ctx.check_hostname = mode == "verify-full"
    ctx.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    if verify:
        try:
            if ca:
                ctx.load_verify_locations(cadata=ca)
            else:
                ctx.load_default_certs()
        except (ssl.SSLError, ValueError):
            raise ConnectorError("tls", "The CA certificate is not a valid PEM certificate.") from None
    if ssl_settings.get("client_certificate"):
        load_client_cert(ctx, ssl_settings["client_certificate"], secrets.get("ssl_client_key") or "")
    return ctx


def _write_private(directory: Path, name: str, content: str) -> str:
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content if content.endswith("\n") else content + "\n")
    return str(path)


def load_client_cert(ctx: ssl.SSLContext, cert: str, key: str) -> None:
    """Load a client certificate and key via 0600 files in a private temp dir, removed at once."""
    with tempfile.TemporaryDirectory(prefix="mysqltls-") as tmp:
        certfile = _write_private(Path(tmp), "client.crt", cert)
        keyfile = _write_private(Path(tmp), "client.key", key) if key else None
        try:  # a callable password: an encrypted key fails instead of prompting on a terminal
            ctx.load_cert_chain(certfile, keyfile, password=lambda: b"")
        except (ssl.SSLError, OSError, ValueError):
            raise ConnectorError(
                "tls", "The client certificate or key is not valid PEM, or they do not match."
            ) from None


def apply_tls(conn: SafeConnection, mode: str, ctx: ssl.SSLContext | None) -> None:
    """Set PyMySQL's TLS state for ``mode``: off, opportunistic (allow/prefer) or required."""
    conn.ssl = ctx is not None
    conn._ssl_required = mode in TLS_REQUIRED
    conn.ctx = ctx


@contextmanager
def deadline(sock: socket.socket, seconds: float) -> Iterator[dict[str, bool]]:
    """Client-side deadline over a whole exchange: shut the socket down when it passes."""
    state = {"fired": False}
    twin = socket.socket(fileno=os.dup(sock.fileno()))  # survives PyMySQL wrapping the socket in TLS

    def expire() -> None:
        state["fired"] = True
        try:
            twin.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield state
    finally:
        timer.cancel()
        twin.close()


def _code(exc: Exception) -> int:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


def _tls_error(original: ssl.SSLError, host: str) -> ConnectorError:
    reason = str(getattr(original, "verify_message", "") or original).lower()
    if "mismatch" in reason or "doesn't match" in reason:
        return ConnectorError("tls", f"The server certificate does not match host '{host}'.")
    return ConnectorError(
        "tls",
        "TLS negotiation failed: the server certificate could not be verified or the client certificate was refused.",
    )


def classify(
    exc: BaseException, config: ConnectionConfig, host: str, stage: str, seconds: float, timed_out: bool = False
) -> ConnectorError:
    """Turn a PyMySQL error into our own cleaned message at the right stage."""
    user = config.connection.get("username") or ""
    database = config.connection.get("database") or ""
    code = _code(exc)  # type: ignore[arg-type]
    original = getattr(exc, "original_exception", None)
    if isinstance(exc, ClearTextRefused):
        return ConnectorError("auth", "The server asked for the password in clear text without TLS; refused.")
    if isinstance(exc, RuntimeError) and "LOAD_LOCAL" in str(exc):
        return ConnectorError(stage, LOCAL_FILE_REFUSED)
    if isinstance(original, ssl.SSLError) or isinstance(exc, ssl.SSLError):
        return _tls_error(original if isinstance(original, ssl.SSLError) else exc, host)  # type: ignore[arg-type]
    if timed_out or isinstance(original, TimeoutError) or "timed out" in str(exc).lower():
        return ConnectorError(stage, f"The server did not answer within {seconds:g} seconds.")
    if code in (1045, 1698):
        return ConnectorError("auth", f"Authentication failed for user '{user}'.")
    if code in DB_ERRORS:
        return ConnectorError("database", f"Database '{database}' does not exist or is not accessible.")
    if code == CR.CR_SSL_CONNECTION_ERROR:
        return ConnectorError("tls", NO_SSL)
    if code == 3159:
        return ConnectorError("tls", "The server requires TLS: choose SSL mode 'require' or stricter.")
    if code in (1862, 1820):
        return ConnectorError("auth", f"The password of user '{user}' has expired.")
    if code in (1129, 1040, 1203, 1130):
        return ConnectorError("auth", greeting_error(code))
    if code in (1251, CR.CR_AUTH_PLUGIN_CANNOT_LOAD, CR.CR_AUTH_PLUGIN_ERR):
        return ConnectorError("auth", "The server asked for an authentication method this client does not support.")
    if code in (1142, 1143, 1227):
        return ConnectorError(stage, "Permission denied while reading the database catalogue.")
    if code in (CR.CR_SERVER_LOST, CR.CR_SERVER_GONE_ERROR, CR.CR_CONN_HOST_ERROR):
        return ConnectorError(stage, f"The server closed the connection during stage {stage}.")
    message = exc.args[1] if len(getattr(exc, "args", ())) > 1 else str(exc)
    detail = sanitize(str(message), config.secrets)
    return ConnectorError(stage, f"Connection failed at stage {stage}." + (f" {detail}" if detail else ""))
