"""MongoDB seeds: what a host may be, and the ``mongodb+srv`` seed list read with dnspython.

``srv``: the connector reads the SRV and TXT records itself with dnspython within the connection
timeout (``DNS_NAMESERVERS``/``DNS_PORT`` name the resolver; default: the system's), applies the
seed-list rule (targets share the name's parent domain) and checks every A/AAAA address of every
target: one blocked target refuses the list before any connection. pymongo gets the targets as plain
seeds (no ``mongodb+srv://``, so no lookups of its own). TXT may set ``replicaSet`` and ``authSource``
(the source's own values win). TLS is always on, as ``mongodb+srv`` implies (mongodb.py).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.resolver

from .base import ConnectorError
from .egress import EgressBlocked, is_blocked
from .reach import Deadline

logger = logging.getLogger("datasources.connectors.mongodb")  # the connector's logger, as in mongodb.py

MAX_SRV_HOSTS = 16
DNS_NAMESERVERS: tuple[str, ...] = ()  # the resolver of SRV/TXT lookups; empty: the system's (resolv.conf)
DNS_PORT = 53
HOST_NAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(\.(?!-)[a-z0-9_-]{1,63})*")


@dataclass(frozen=True)
class Seed:
    host: str  # the name pymongo connects to and TLS verifies
    port: int
    ip: str  # its checked address


def is_host(host: str) -> bool:
    """An IP literal or a DNS name (never a Unix socket path, which pymongo would open for ``*.sock``)."""
    with suppress(ValueError):
        return bool(ipaddress.ip_address(host))
    return bool(HOST_NAME.fullmatch(host)) and not host.endswith(".sock")


def _lookup(resolver: dns.resolver.Resolver, name: str, kind: str, deadline: Deadline) -> list[Any]:
    """Records of ``name`` (empty when there are none); raises ConnectorError (resolve) when DNS fails."""
    try:
        seconds = max(deadline.remaining(), 0.01)
        resolver.timeout = seconds
        return list(resolver.resolve(name, kind, lifetime=seconds, search=False))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.Timeout:
        raise ConnectorError("resolve", f"The DNS lookup of '{name}' ({kind}) did not finish in time.") from None
    except dns.exception.DNSException:
        raise ConnectorError("resolve", f"The DNS lookup of '{name}' ({kind}) failed.") from None


def _in_domain(host: str, target: str) -> bool:
    """The seed-list rule: a target shares the SRV name's parent domain (its name, for two labels or fewer)."""
    labels = host.split(".")
    parent = labels[1:] if len(labels) > 2 else labels
    return (target != host or len(labels) > 2) and target.split(".")[1:][-len(parent):] == parent


def seed_list(host: str, timeout: float) -> tuple[list[Seed], dict[str, str]]:
    """SRV targets (each address checked) and the TXT options of a ``mongodb+srv`` host."""
    with suppress(ValueError):
        ipaddress.ip_address(host)
        raise ConnectorError("resolve", "A DNS seed list (srv) needs a host name, not an IP address.")
    deadline = Deadline(timeout)
    try:
        resolver = dns.resolver.Resolver(configure=not DNS_NAMESERVERS)
    except dns.exception.DNSException:
        raise ConnectorError("resolve", "No DNS resolver is configured for the SRV lookup.") from None
    if DNS_NAMESERVERS:
        resolver.nameservers, resolver.port = list(DNS_NAMESERVERS), DNS_PORT
    records = _lookup(resolver, f"_mongodb._tcp.{host}", "SRV", deadline)
    if not records:
        raise ConnectorError("resolve", f"No SRV record _mongodb._tcp.{host} was found.")
    targets = list(dict.fromkeys((r.target.to_text(omit_final_dot=True).lower(), int(r.port)) for r in records))
    seeds = []
    for target, port in targets[:MAX_SRV_HOSTS]:
        if not is_host(target) or not _in_domain(host, target):
            raise ConnectorError("resolve", f"The SRV record names host '{target[:100]}', outside the domain of "
                                            f"'{host}'.")
        addresses = [r.to_text() for kind in ("A", "AAAA") for r in _lookup(resolver, target, kind, deadline)]
        if not addresses:
            raise ConnectorError("resolve", f"Could not resolve host '{target}'.")
        if any(is_blocked(address) for address in addresses):
            logger.info("Egress policy refused a connection to %s:%s (SRV target)", target, port)
            raise EgressBlocked(target, port)
        seeds.append(Seed(target, port, addresses[0]))
    texts = _lookup(resolver, host, "TXT", deadline)
    if len(texts) > 1:
        raise ConnectorError("resolve", f"'{host}' has more than one TXT record.")
    options: dict[str, str] = {}
    for part in b"".join(texts[0].strings).decode("utf-8", "replace").split("&") if texts else []:
        key, _, value = part.partition("=")
        if key.lower() in ("authsource", "replicaset"):
            options[key.lower()] = value
        elif key.lower() != "loadbalanced" or value.lower() != "false":
            raise ConnectorError("resolve", f"The TXT record of '{host}' sets an option other than "
                                            "replicaSet and authSource.")
    return seeds, options
