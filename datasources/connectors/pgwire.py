"""PostgreSQL wire helpers: raw TCP/TLS probes, private libpq SSL files, cleaned error messages.

Messages are built here from error categories; raw driver text is only ever used sanitized,
as a last resort, so no secret value can be echoed back to a client.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from .base import ConnectionConfig, ConnectorError, sanitize
from .egress import connect_failed_message
from .reach import Deadline, connect_and_greet, peek, take

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
TLS_REQUIRED = ("require", "verify-ca", "verify-full")
TLS_VERIFIED = ("verify-ca", "verify-full")
CLEARTEXT_REFUSED = (
    "The server asked for the password in clear text over a connection whose TLS certificate is not "
    "verified; refused, the password was not sent. Use SSL mode verify-full (or verify-ca), or SCRAM "
    "authentication on the server."
)


def require_auth(ssl: dict) -> str:
    """libpq ``require_auth``: never GSS/SSPI, and no cleartext password unless TLS is verified."""
    return "!gss,!sspi" if (ssl.get("mode") or "prefer") in TLS_VERIFIED else "!gss,!sspi,!password"
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
VERIFY_CA_NEEDS_CA = "SSL mode 'verify-ca' needs a CA certificate."
MAX_ERROR_LENGTH = 30000  # libpq's limit for an error message before authentication


def _ssl_answer(data: bytes) -> bool | None:
    """Judge for the answer to SSLRequest: a lone 'S' or 'N', or a well-formed ErrorResponse."""
    if data[:1] in (b"S", b"N"):
        return len(data) == 1  # anything right behind the answer byte is not PostgreSQL
    if data[:1] != b"E":
        return False
    if len(data) < 5:
        return None
    length = struct.unpack("!i", data[1:5])[0]
    if not 5 < length <= MAX_ERROR_LENGTH:
        return False
    if len(data) < 1 + length:
        return None
    if len(data) > 1 + length:
        return False
    body = data[5 : 1 + length]
    fields = body[:-1].split(b"\0")
    return body.endswith(b"\0\0") and all(f[:1].isalpha() for f in fields[:-1]) and fields[-1] == b""


def _ask_ssl(sock: socket.socket, deadline: Deadline) -> bytes:
    sock.sendall(SSL_REQUEST)
    answer = peek(sock, deadline, _ssl_answer)
    take(sock, len(answer))  # read it: closing with unread data would reset the server's side
    if answer == b"S":
        _close_tls(sock, min(deadline.remaining(), 1.0))
    return answer[:1]


def _close_tls(sock: socket.socket, seconds: float) -> None:
    """Best effort: open and close TLS politely, so the server does not log a failed SSL handshake.

    Nothing is verified or sent inside the session; the verdict on TLS is the tls stage's (over the
    driver's own connection). Any failure here is ignored: the server has already answered validly.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        sock.settimeout(max(seconds, 0.01))
        with context.wrap_socket(sock, do_handshake_on_connect=True) as tls:
            tls.unwrap()
    except (OSError, ValueError):
        pass


def greet(ip: str, port: int, timeout: float, host: str) -> bytes:
    """Stage tcp: connect and send SSLRequest (no credentials); the server's answer, S, N or E.

    Until that answer has come, validly, every failure reads like a closed port.
    """
    sock, answer = connect_and_greet(ip, port, timeout, host, _ask_ssl)
    sock.close()  # the login goes over the driver's own connection
    return answer


def tls_verdict(answer: bytes, ssl: dict) -> None:
    """Stage tls (when the SSL mode requires TLS): the settings, and the server's answer to SSLRequest."""
    if ssl.get("mode") == "verify-ca" and not ssl.get("ca_certificate"):
        raise ConnectorError("tls", VERIFY_CA_NEEDS_CA)
    if answer == b"N":
        raise ConnectorError("tls", "The server does not support SSL, but the SSL mode requires it.")
    if answer != b"S":
        raise ConnectorError("tls", "The server refused the SSL request.")


def write_private(directory: Path, name: str, content: str) -> str:
    """Write PEM ``content`` to a new 0600 file in ``directory``; returns its path."""
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content if content.endswith("\n") else content + "\n")
    return str(path)


def ssl_params(ssl: dict, secrets: dict[str, str], tmp: Path) -> dict[str, str]:
    """sslmode plus certificate files written privately to ``tmp`` (absent paths otherwise)."""
    mode = ssl.get("mode") or "prefer"
    if mode not in SSL_MODES:
        raise ConnectorError("tls", "Unsupported SSL mode.")
    params = {
        "sslmode": mode,
        "sslrootcert": str(tmp / "absent-root.crt"),
        "sslcert": str(tmp / "absent-client.crt"),
        "sslkey": str(tmp / "absent-client.key"),
        "sslcrl": str(tmp / "absent.crl"),
        "sslcrldir": str(tmp / "absent-crl"),
    }
    if ssl.get("ca_certificate"):
        params["sslrootcert"] = write_private(tmp, "root.crt", ssl["ca_certificate"])
    elif mode == "verify-full":
        params["sslrootcert"] = "system"
    elif mode == "verify-ca":
        raise ConnectorError("tls", VERIFY_CA_NEEDS_CA)
    if ssl.get("client_certificate"):
        params["sslcert"] = write_private(tmp, "client.crt", ssl["client_certificate"])
        if secrets.get("ssl_client_key"):
            params["sslkey"] = write_private(tmp, "client.key", secrets["ssl_client_key"])
    return params


def classify(exc: Exception, config: ConnectionConfig, host: str, port: int) -> ConnectorError:
    """Turn a psycopg connect error into our own message; raw text only sanitized, as a last resort."""
    text = str(exc)
    low = text.lower()
    c = config.connection
    user = c.get("username") or ""
    if 'database "' in low and "does not exist" in low:
        name = c.get("database") or user
        return ConnectorError("database", f"Database '{name}' does not exist or is not accessible.")
    if "requirement" in low and "cleartext password" in low:
        return ConnectorError("auth", CLEARTEXT_REFUSED)
    if "no pg_hba.conf entry" in low:
        return ConnectorError("auth", f"The server does not accept this client for user '{user}'.")
    auth_markers = (
        "authentication failed",
        "no password supplied",
        "password is required",
        'role "',
        "authentication method requirement",
        "scram",
        "password",
    )
    if any(m in low for m in auth_markers):
        return ConnectorError("auth", f"Authentication failed for user '{user}'.")
    if "does not support ssl" in low:
        return ConnectorError("tls", "The server does not support SSL, but the SSL mode requires it.")
    if "does not match host name" in low or "server certificate for" in low:
        return ConnectorError("tls", f"The server certificate does not match host '{host}'.")
    if "certificate" in low or "ssl" in low or "tls" in low:
        return ConnectorError(
            "tls",
            "TLS negotiation failed: the server certificate could not be verified "
            "or the client certificate was refused.",
        )
    if "timeout expired" in low:
        return ConnectorError(
            "auth", f"The server did not complete the login within {config.connect_timeout} seconds."
        )
    if "too many connections" in low or "connection slots" in low:
        return ConnectorError("auth", "The server has no free connection slots.")
    if "starting up" in low or "shutting down" in low or "recovery mode" in low:
        return ConnectorError("auth", "The database server is starting up or shutting down.")
    if "connection refused" in low or "could not connect" in low or "unreachable" in low:
        return ConnectorError("tcp", connect_failed_message(host, port))
    if "closed the connection unexpectedly" in low:
        return ConnectorError("auth", "The server closed the connection during login.")
    detail = sanitize(text.split("FATAL:", 1)[-1], config.secrets)
    return ConnectorError("auth", "Connection failed at stage auth." + (f" {detail}" if detail else ""))


@contextmanager
def watchdog(conn: psycopg.Connection, seconds: float) -> Iterator[dict[str, bool]]:
    """Client-side deadline: shut the socket down if the server stops answering."""
    state = {"fired": False}

    def expire() -> None:
        state["fired"] = True
        try:
            with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except (OSError, psycopg.Error):
            pass

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield state
    finally:
        timer.cancel()


def query_error(
    exc: psycopg.Error, stage: str, seconds: float, timed_out: bool, secrets: dict[str, str]
) -> ConnectorError:
    """A cleaned error for a failed query (timeout, permission, or sanitized first line)."""
    if timed_out or exc.sqlstate == "57014":
        return ConnectorError(stage, f"The server did not answer within {seconds:g} seconds.")
    if exc.sqlstate == "42501":
        return ConnectorError(stage, "Permission denied while reading the database catalogue.")
    detail = sanitize(str(exc), secrets)
    return ConnectorError(stage, f"Query failed at stage {stage}." + (f" {detail}" if detail else ""))
