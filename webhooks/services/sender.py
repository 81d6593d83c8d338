"""One POST to a checked destination: connects to the pinned address only (the host name kept for
TLS and ``Host``), never follows a redirect, bounded by the timeout. Error texts name the host and
port at most: never the URL's query, never a header value."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass

from datasources.connectors.guard import TimedOut, call_bounded, egress_scope
from webhooks.services.destination import Destination

USER_AGENT = "datasource-control-plane-webhooks/1"
MAX_READ = 64 * 1024  # of the answer's body: read (to end the exchange cleanly), never kept


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    error: str
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _connection(destination: Destination, timeout: float) -> http.client.HTTPConnection:
    target, address = destination.target, destination.address

    class Pinned(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.create_connection((address, target.port), timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    class PinnedTLS(http.client.HTTPSConnection):
        def connect(self) -> None:
            raw = socket.create_connection((address, target.port), timeout)
            self.sock = ssl.create_default_context().wrap_socket(raw, server_hostname=target.host)

    klass = PinnedTLS if target.tls else Pinned
    return klass(target.host, target.port, timeout=timeout)


def _post(destination: Destination, body: bytes, headers: dict[str, str], timeout: float) -> int:
    conn = _connection(destination, timeout)
    try:
        conn.putrequest("POST", destination.target.request_target, skip_host=True, skip_accept_encoding=True)
        all_headers = {"Host": destination.target.host_header, "User-Agent": USER_AGENT,
                       "Content-Type": "application/json", "Content-Length": str(len(body)),
                       "Connection": "close", **headers}
        for name, value in all_headers.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        response.read(MAX_READ)
        return response.status
    finally:
        conn.close()


def describe_failure(exc: BaseException, destination: Destination, timeout: float) -> str:
    where = f"{destination.target.host}:{destination.target.port}"
    if isinstance(exc, (TimedOut, TimeoutError, socket.timeout)):
        return f"No answer from {where} within {timeout:g} seconds."
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"The certificate of {where} could not be verified: {exc.verify_message}."
    if isinstance(exc, ssl.SSLError):
        return f"The TLS handshake with {where} failed."
    if isinstance(exc, http.client.HTTPException):
        return f"The answer from {where} was not valid HTTP."
    if isinstance(exc, socket.gaierror):
        return f"The egress policy refused a lookup while connecting to {where}."
    return f"Could not connect to {where}."


def send(destination: Destination, body: bytes, headers: dict[str, str], timeout: float) -> SendResult:
    """POST ``body``; 2xx is success, a 3xx is a failure (redirects are never followed)."""
    started = time.monotonic()
    with egress_scope(timeout, only=(destination.target.host, destination.address)) as scope:
        scope.pin(destination.target.host, destination.address)
        scope.pin(destination.address, destination.address)
        try:
            status = call_bounded(lambda: _post(destination, body, headers, timeout), timeout + 1)
        except Exception as exc:  # every failure is an attempt's outcome, described without secrets
            error = describe_failure(exc, destination, timeout)
            return SendResult(None, error, (time.monotonic() - started) * 1000)
    elapsed = (time.monotonic() - started) * 1000
    if 200 <= status < 300:
        return SendResult(status, "", elapsed)
    if 300 <= status < 400:
        return SendResult(status, f"HTTP {status}: redirects are not followed.", elapsed)
    return SendResult(status, f"HTTP {status}.", elapsed)
