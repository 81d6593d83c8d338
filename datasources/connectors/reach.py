"""Reaching a server: a TCP connection plus proof that the peer speaks the expected protocol.

Until the peer has answered validly in its own protocol (a PostgreSQL answer to SSLRequest, a
MySQL handshake, an SSH version banner), every failure reads exactly like a closed port: stage
``tcp``, "Could not connect to the server at host:port.". A refused connection, a black-holed
address, a silent listener, an HTTP or TLS server, garbage and an immediate hang-up are thus
indistinguishable from a blocked address, so connection tests cannot be used to scan ports.
The TCP connect and the wait for the greeting share one deadline of ``timeout`` seconds.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from .base import ConnectorError
from .egress import connect_failed_message

PEEK_LIMIT = 16384  # bytes of greeting looked at; more without a verdict is not a greeting
POLL = 0.01  # seconds between peeks while a greeting is incomplete

T = TypeVar("T")

#: A judge looks at the bytes received so far: True (valid), False (invalid), None (need more).
Judge = Callable[[bytes], bool | None]


class Deadline:
    """A point in time a few operations share."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())


class NotTheServer(Exception):
    """The peer did not answer like the expected server (closed, silent, or wrong protocol)."""


def unreachable(host: str, port: int) -> ConnectorError:
    """The one failure for every peer that never proved to be the server."""
    return ConnectorError("tcp", connect_failed_message(host, port))


def tcp_connect(ip: str, port: int, timeout: float, host: str) -> socket.socket:
    """Open a TCP connection to the checked ``ip``; failures read like a closed port."""
    family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(max(timeout, 0.001))
    try:
        sock.connect((ip, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        sock.close()
        raise unreachable(host, port) from None
    return sock


def peek(sock: socket.socket, deadline: Deadline, judge: Judge) -> bytes:
    """Wait, without consuming anything, until ``judge`` accepts what the peer sent.

    Raises ``NotTheServer`` when the peer closes, stays silent past the deadline, or sends
    something the judge refuses (or too much without a verdict).
    """
    while True:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise NotTheServer("no greeting in time")
        sock.settimeout(remaining)
        try:
            data = sock.recv(PEEK_LIMIT, socket.MSG_PEEK)
        except OSError:  # timeout, reset
            raise NotTheServer("no greeting") from None
        if not data:
            raise NotTheServer("closed")
        verdict = judge(data)
        if verdict:
            return data
        if verdict is False or len(data) >= PEEK_LIMIT:
            raise NotTheServer("not the expected protocol")
        time.sleep(min(POLL, deadline.remaining()))


def take(sock: socket.socket, size: int) -> bytes:
    """Consume ``size`` bytes already seen with ``peek``."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise NotTheServer("closed")
        data += chunk
    return data


def connect_and_greet(
    ip: str, port: int, timeout: float, host: str, greet: Callable[[socket.socket, Deadline], T]
) -> tuple[socket.socket, T]:
    """TCP connect, then ``greet(sock, deadline)`` within the same ``timeout``; closed-port shape on failure.

    Returns the open socket and what ``greet`` returned (the caller owns the socket).
    """
    deadline = Deadline(timeout)
    sock = tcp_connect(ip, port, timeout, host)
    try:
        return sock, greet(sock, deadline)
    except (NotTheServer, OSError):
        sock.close()
        raise unreachable(host, port) from None
    except BaseException:
        sock.close()
        raise


def ssh_banner(data: bytes) -> bool | None:
    """Judge for an SSH server's identification (RFC 4253 4.2): ``SSH-2.0-...`` or ``SSH-1.99-...``.

    Other lines may come first (as the RFC allows); a line starting ``SSH-`` with any other
    protocol version is refused.
    """
    *lines, _partial = data.split(b"\n")
    for line in lines:
        if line.startswith(b"SSH-"):
            return line.startswith((b"SSH-2.0-", b"SSH-1.99-")) and b"\0" not in line
    if len(lines) >= 100:  # paramiko reads at most 100 lines before the banner
        return False
    return None
