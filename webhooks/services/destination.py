"""A webhook URL as a destination under the data sources' egress policy.

http(s) only, no user info; the host is resolved once and every address checked (link-local and
metadata addresses never, loopback and private ones only inside DATASOURCE_ALLOWED_NETWORKS) when a
webhook is created or its URL changes, and again before every delivery, which then connects to that
one checked address (the host name kept for TLS and ``Host``)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from datasources.connectors.base import ConnectorError
from datasources.connectors.egress import check_host_syntax, resolve_checked

MAX_URL_LENGTH = 2048


class InvalidUrl(ValueError):
    """Not an http(s) URL we can deliver to (the message says why)."""


class DestinationRefused(Exception):
    """The host does not resolve, or resolves to an address the egress policy refuses."""

    def __init__(self, url: str) -> None:
        super().__init__(f"The destination {redact(url)} is not allowed: its host does not resolve or resolves to "
                         "an address the egress policy refuses.")


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower case, no brackets
    port: int
    request_target: str  # path and query, as sent on the request line

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == (443 if self.tls else 80) else f"{name}:{self.port}"


@dataclass(frozen=True)
class Destination:
    target: Target
    address: str  # the checked IP literal to connect to


def parse(url: str) -> Target:
    """Validate the URL's form (no resolution); ``InvalidUrl`` says what is wrong."""
    text = (url or "").strip() if isinstance(url, str) else ""
    if not text:
        raise InvalidUrl("A URL is required.")
    if len(text) > MAX_URL_LENGTH:
        raise InvalidUrl(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in text):
        raise InvalidUrl("The URL contains spaces or control characters.")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidUrl("The URL is not valid.") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidUrl("The URL must be an http:// or https:// URL with a host name.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidUrl("The URL must not carry a user name or password.")
    scheme = parts.scheme.lower()
    port = (443 if scheme == "https" else 80) if port is None else port
    try:
        host = check_host_syntax(parts.hostname, port).rstrip(".").lower()
    except ConnectorError as exc:
        raise InvalidUrl(exc.message) from None
    path = parts.path or "/"
    return Target(scheme, host, port, path + (f"?{parts.query}" if parts.query else ""))


def redact(url: str) -> str:
    """``scheme://host:port/path``: what logs and error texts may show (no user info, no query)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an invalid URL)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}{parts.path}"


def check(url: str, timeout: float) -> Destination:
    """Parse, resolve once and check every address; ``DestinationRefused`` (nothing sent) otherwise."""
    target = parse(url)
    try:
        address = resolve_checked(target.host, target.port, timeout)
    except ConnectorError:
        raise DestinationRefused(url) from None
    return Destination(target, address)
