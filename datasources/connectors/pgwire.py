"""PostgreSQL wire helpers: raw TCP/TLS probes, private libpq SSL files, cleaned error messages.

Messages are built here from error categories; raw driver text is only ever used sanitized,
as a last resort, so no secret value can be echoed back to a client.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from .base import ConnectionConfig, ConnectorError, sanitize
from .egress import connect_failed_message

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
TLS_REQUIRED = ("require", "verify-ca", "verify-full")
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
VERIFY_CA_NEEDS_CA = "SSL mode 'verify-ca' needs a CA certificate."


def tcp_connect(ip: str, port: int, timeout: float, host: str) -> socket.socket:
    """Open a raw TCP connection to the checked ``ip``; failures read like a closed port."""
    family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((ip, port))
    except OSError:
        sock.close()
        raise ConnectorError("tcp", connect_failed_message(host, port)) from None
    return sock


def tls_probe(sock: socket.socket, ssl: dict) -> None:
    """Check the SSL settings, then ask whether the server accepts TLS (SSLRequest); no credentials sent."""
    if ssl.get("mode") == "verify-ca" and not ssl.get("ca_certificate"):
        raise ConnectorError("tls", VERIFY_CA_NEEDS_CA)
    try:
        sock.sendall(SSL_REQUEST)
        answer = sock.recv(1)
    except TimeoutError:
        raise ConnectorError("tls", "The server did not answer the SSL request in time.") from None
    except OSError:
        raise ConnectorError("tls", "The server closed the connection during the SSL request.") from None
    if answer == b"N":
        raise ConnectorError("tls", "The server does not support SSL, but the SSL mode requires it.")
    if answer != b"S":
        raise ConnectorError("tls", "The server did not answer the SSL request like a PostgreSQL server.")


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
