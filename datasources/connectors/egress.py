"""Egress policy: resolve a user-supplied host once and refuse internal or metadata addresses.

Checked before any packet is sent to the host. A refused address fails exactly like a closed
port (stage ``tcp``, same message), so tests cannot be used to map the internal network.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Iterable
from typing import Any, cast

from django.conf import settings

from .base import ConnectorError

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Never reachable, whatever DATASOURCE_ALLOWED_NETWORKS says: link-local and cloud metadata.
ALWAYS_BLOCKED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local, AWS/GCP/Azure/OCI metadata
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
    )
)
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
MAX_HOST_LENGTH = 253


def connect_failed_message(host: str, port: int) -> str:
    """The one message for refused, timed-out and blocked connections alike."""
    return f"Could not connect to the server at {host}:{port}."


class EgressBlocked(ConnectorError):
    """The host resolves to an address outside the egress policy; looks like a failed connect."""

    def __init__(self, host: str, port: int):
        super().__init__("tcp", connect_failed_message(host, port))


def _allowed_networks() -> list[IPNetwork]:
    networks = []
    for entry in getattr(settings, "DATASOURCE_ALLOWED_NETWORKS", None) or []:
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            logger.warning("Ignoring invalid DATASOURCE_ALLOWED_NETWORKS entry %r", entry)
    return networks


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses carried inside IPv6 transition forms (compatible, 6to4, Teredo)."""
    found = []
    if ip.sixtofour:
        found.append(ip.sixtofour)
    if ip.teredo:
        found.extend(ip.teredo)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _default_blocked(ip: IPAddress) -> bool:
    """Loopback, private, shared, unspecified, multicast, reserved: not the public internet."""
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_link_local
    )


def is_blocked(address: str | IPAddress, allowed: Iterable[IPNetwork] | None = None) -> bool:
    """Whether connecting to ``address`` is refused by the egress policy."""
    ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
    allowed = list(_allowed_networks() if allowed is None else allowed)
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:  # ::ffff:a.b.c.d is judged as the IPv4 address it is
            candidates = [ip.ipv4_mapped]
        elif ip in NAT64_PREFIX:  # 64:ff9b::a.b.c.d is translated to that IPv4 address
            candidates = [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
        else:
            candidates.extend(_embedded_ipv4(ip))
    for candidate in candidates:
        if any(candidate in net for net in ALWAYS_BLOCKED if net.version == candidate.version):
            return True
        if _default_blocked(candidate) and not any(
            candidate in net for net in allowed if net.version == candidate.version
        ):
            return True
    return False


def check_host_syntax(host: str, port: int) -> str:
    """Validate a host string; returns it without IPv6 brackets. Raises ``ConnectorError``."""
    if not isinstance(host, str) or not host.strip():
        raise ConnectorError("resolve", "A host name is required.")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if len(host) > MAX_HOST_LENGTH:
        raise ConnectorError("resolve", "The host name is too long.")
    if host.startswith(("/", "@")):
        raise ConnectorError("resolve", "Unix socket paths are not allowed; give a host name or IP address.")
    if "," in host:
        raise ConnectorError("resolve", "Give a single host, not a list of hosts.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in host) or "/" in host:
        raise ConnectorError("resolve", "The host name contains invalid characters.")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConnectorError("resolve", "The port must be between 1 and 65535.")
    return host


def _getaddrinfo(host: str, port: int, timeout: float) -> list[str]:
    """``socket.getaddrinfo`` bounded by ``timeout`` (the lookup runs in a daemon thread)."""
    box: dict[str, object] = {}

    def lookup() -> None:
        try:
            box["value"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError) as exc:
            box["error"] = exc

    worker = threading.Thread(target=lookup, name="egress-resolve", daemon=True)
    worker.start()
    worker.join(max(timeout, 0.1))
    if worker.is_alive():
        raise ConnectorError("resolve", f"Could not resolve host '{host}' within {timeout:g} seconds.")
    if "error" in box or not box.get("value"):
        raise ConnectorError("resolve", f"Could not resolve host '{host}'.")
    addresses: list[str] = []
    results = cast("list[tuple[Any, ...]]", box["value"])  # getaddrinfo's 5-tuples (checked non-empty above)
    for _family, _type, _proto, _canon, sockaddr in results:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in addresses:
            addresses.append(address)
    return addresses


def resolve_checked(host: str, port: int, timeout: float) -> str:
    """Resolve ``host`` once, check every address, and return one IP literal to connect to.

    Raises ``ConnectorError`` (stage ``resolve``) for invalid or unresolvable hosts and
    ``EgressBlocked`` (stage ``tcp``, connect-failure message) when any address is refused.
    """
    name = check_host_syntax(host, port)
    addresses = _getaddrinfo(name, port, timeout)
    allowed = _allowed_networks()
    for address in addresses:
        if is_blocked(address, allowed):
            logger.info("Egress policy refused a connection to %s:%s", host, port)
            raise EgressBlocked(host, port)
    return addresses[0]
