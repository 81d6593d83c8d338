"""The resolve, tcp and tls stages of connectors whose driver speaks HTTP(S).

``reach_http`` resolves the endpoint once through the egress policy, pins the checked address in
the scope the driver will run under, proves an HTTP server answers there (over TLS for https;
until it has, any failure reads like a closed port, so the test is no port scanner), and for
https verifies the certificate chain and host name as its own stage. The driver's calls that
follow connect to that same address.

An https endpoint whose server answers plain HTTP (the TLS handshake fails, a plain ``HEAD /`` on a new
connection gets an HTTP answer) fails at stage tls, saying so, like PostgreSQL's "The server does not
support SSL": the peer proved to be an HTTP server, which a plain http:// test would show as well.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from .base import ConnectorError, StageRunner
from .egress import check_host_syntax, is_blocked, resolve_checked
from .guard import EgressScope
from .reach import Deadline, NotTheServer, connect_and_greet, peek, unreachable

PLAIN_HTTP_REFUSED = ("The {what} must use https://: plain http, which would carry the credentials unencrypted, "
                      "is accepted only for private addresses that DATASOURCE_ALLOWED_NETWORKS opens.")

USER_AGENT = "datasource-control-plane"

NO_TLS = "The server does not support TLS (it answers plain HTTP), but https is required."


@dataclass(frozen=True)
class Endpoint:
    scheme: str  # "http" | "https"
    host: str
    port: int
    path: str = ""

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_endpoint(url: str, default_scheme: str = "https") -> Endpoint:
    """``https://host[:port][/path]`` or a bare host name; raises ``ConnectorError`` (stage resolve)."""
    text = (url or "").strip()
    if "://" not in text:
        text = f"{default_scheme}://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConnectorError("resolve", "The endpoint is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectorError("resolve", "The endpoint must be an http:// or https:// URL with a host name.")
    if parts.username or parts.password:
        raise ConnectorError("resolve", "The endpoint must not carry a user name or password.")
    port = (443 if parts.scheme == "https" else 80) if port is None else port
    host = check_host_syntax(parts.hostname, port).rstrip(".").lower()  # one spelling: pins, TLS, Host
    return Endpoint(parts.scheme, host, port, parts.path.rstrip("/"))


def _http_answer(data: bytes) -> bool | None:
    """Judge: the peer's first bytes are an HTTP/1.x status line."""
    if len(data) < 8:
        return None if b"HTTP/1."[: len(data)] == data[:7] else False
    return data.startswith(b"HTTP/1.")


def check_transport(endpoint: Endpoint, ip: str, what: str = "endpoint") -> None:
    """Credentials may travel over plain http only to a non-public address the operator opened."""
    if not endpoint.tls and not is_blocked(ip, []):
        raise ConnectorError("tls", PLAIN_HTTP_REFUSED.format(what=what))


def probe_http(endpoint: Endpoint, ip: str, timeout: float, context: ssl.SSLContext | None) -> None:
    """Connect to ``ip`` and send one HEAD request; only an HTTP answer proves the server is there."""

    def greet(sock: socket.socket, deadline: Deadline) -> bool:
        stream: socket.socket = sock
        if context is not None:
            sock.settimeout(max(deadline.remaining(), 0.001))
            try:
                stream = context.wrap_socket(sock, server_hostname=endpoint.host)
            except ssl.SSLCertVerificationError as exc:
                reason = exc.verify_message
                raise ConnectorError("tls", f"The server's certificate could not be verified: {reason}.") from None
            except (ssl.SSLError, OSError):
                if answers_plain_http(endpoint, ip, deadline):
                    raise ConnectorError("tls", NO_TLS) from None
                raise NotTheServer("no TLS") from None
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        request = f"HEAD / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\nConnection: close\r\n\r\n"
        stream.sendall(request.encode("ascii"))
        if context is None:
            peek(stream, deadline, _http_answer)
        else:  # MSG_PEEK is not available on TLS sockets: read the status line instead
            stream.settimeout(max(deadline.remaining(), 0.001))
            data = b""
            while _http_answer(data) is None:
                chunk = stream.recv(64)
                if not chunk:
                    raise NotTheServer("closed")
                data += chunk
            if not _http_answer(data):
                raise NotTheServer("not HTTP")
        stream.close()
        return True

    sock, _ = connect_and_greet(ip, endpoint.port, timeout, endpoint.host, greet)
    sock.close()


def answers_plain_http(endpoint: Endpoint, ip: str, deadline: Deadline) -> bool:
    """Whether a plain ``HEAD /`` on a new connection, within what is left of ``deadline``, gets an HTTP answer
    (the server behind a failed TLS handshake speaks plain HTTP)."""
    if deadline.remaining() <= 0:
        return False
    try:
        probe_http(endpoint, ip, deadline.remaining(), None)
    except ConnectorError:
        return False
    return True


def tls_context(ca_pem: str = "", verify: bool = True) -> ssl.SSLContext:
    """A new client context: the system CAs (or ``ca_pem`` alone), host name checked unless ``verify``
    is off. An unverified context loads no CA store (that alone costs ~20 ms)."""
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    except TypeError:  # a PEM with non-ASCII text: unreadable like any other bad PEM (callers catch ValueError)
        raise ValueError("The CA certificate is not ASCII PEM.") from None


def reach_http(
    runner: StageRunner, endpoint: Endpoint, timeout: float, scope: EgressScope, ca_pem: str = "",
    verify: bool = True, credentials: bool = True,
) -> str:
    """Stages resolve, tcp and (https) tls; returns the checked address, pinned in ``scope``.

    ``credentials``: secrets will travel to this endpoint, so plain http is refused (stage tls,
    before any packet) unless the address is a private one the operator opened.
    """
    ip = runner.run("resolve", lambda: resolve_checked(endpoint.host, endpoint.port, timeout))
    scope.pin(endpoint.host, ip)
    if not endpoint.tls:
        if credentials and not is_blocked(ip, []):  # a public address: fails before any packet
            runner.run("tls", lambda: check_transport(endpoint, ip))
        runner.run("tcp", lambda: probe_http(endpoint, ip, timeout, None))
        return ip
    runner.run("tcp", lambda: probe_http(endpoint, ip, timeout, tls_context(verify=False)))
    if verify:
        runner.run("tls", lambda: probe_http(endpoint, ip, timeout, tls_context(ca_pem)), "The certificate is valid.")
    return ip


__all__ = ["NO_TLS", "Endpoint", "answers_plain_http", "check_transport", "parse_endpoint", "probe_http", "reach_http",
           "tls_context", "unreachable"]
