"""The egress policy for drivers that resolve and connect on their own (HTTP clients, TDS, ...).

A third-party driver opens its own sockets, follows redirects and reads endpoints out of uploaded
credentials (a service-account JSON's ``token_uri``). Rather than trusting each driver to be
handed the checked address, a connector runs the driver inside ``egress_scope``: while the scope
is active in the calling thread, every ``socket.getaddrinfo`` / ``gethostbyname`` of that thread
goes through the policy. Each host name is resolved once per scope, every address is checked,
and only the one checked address is returned, so the driver connects to it while keeping the
host name for TLS/SNI and ``Host``. A refused name or address fails the lookup before any packet
leaves: zero connection attempts, and a redirect to an unchecked address cannot be followed.

``call_bounded`` runs a driver call in a worker thread that carries the same scope and gives
up after ``seconds``: drivers with retry loops or long defaults cannot hold a test past its
``connection_timeout``. Threads outside a scope resolve as usual.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .base import ConnectorError
from .egress import _allowed_networks, _getaddrinfo, check_host_syntax, connect_failed_message, is_blocked

T = TypeVar("T")
logger = logging.getLogger(__name__)

_state = threading.local()
_install_lock = threading.Lock()
_real_getaddrinfo = socket.getaddrinfo
_real_gethostbyname = socket.gethostbyname
_real_gethostbyname_ex = socket.gethostbyname_ex


class EgressRefused(socket.gaierror):
    """A lookup refused by the policy; drivers see a failed name lookup, connectors see ``refused``."""


@dataclass
class EgressScope:
    """The names one connection test may reach, each resolved once and checked."""

    timeout: float
    pins: dict[str, str] = field(default_factory=dict)  # host name -> the one checked address
    refused: list[tuple[str, int]] = field(default_factory=list)  # (host, port) lookups refused
    lookups: list[str] = field(default_factory=list)  # every name asked for, in order
    #: Optional allow-list of host names and literals (lower case); others are refused unless pinned
    #: (a driver that only ever needs the configured endpoint cannot be steered elsewhere).
    only: frozenset[str] = frozenset()
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def pin(self, host: str, address: str) -> None:
        """Record an address the connector checked itself (``resolve_checked``)."""
        with self._lock:
            self.pins[_norm(host)] = address

    def address_for(self, host: str, port: int) -> str:
        """The checked address of ``host``; raises ``EgressRefused`` when the policy refuses it."""
        name = _norm(host)
        self.lookups.append(name)
        with self._lock:
            if name in self.pins:
                return self.pins[name]
        if self.only and name not in self.only:
            return self._refuse(host, port)
        try:
            check_host_syntax(name, port or 443)
        except ConnectorError:
            return self._refuse(host, port)
        if _literal(name):
            addresses = [name]
        else:
            try:
                addresses = _getaddrinfo(name, port or 443, self.timeout)
            except ConnectorError:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        allowed = _allowed_networks()
        if any(is_blocked(address, allowed) for address in addresses):
            return self._refuse(host, port)
        with self._lock:
            return self.pins.setdefault(name, addresses[0])

    def _refuse(self, host: str, port: int) -> str:
        self.refused.append((str(host), int(port or 0)))
        raise EgressRefused(socket.EAI_NONAME, "refused by the egress policy")

    def blocked_error(self) -> ConnectorError | None:
        """The closed-port-shaped failure for the first refused lookup, if any."""
        if not self.refused:
            return None
        host, port = self.refused[0]
        return ConnectorError("tcp", connect_failed_message(host, port))


def _norm(host: Any) -> str:
    text = host.decode("idna") if isinstance(host, bytes) else str(host)
    text = text.strip().rstrip(".").lower()
    return text[1:-1] if text.startswith("[") and text.endswith("]") else text


def _literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _port(value: Any) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return {"https": 443, "http": 80}.get(str(value), 0)


def _guarded_getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list[Any]:
    scope: EgressScope | None = getattr(_state, "scope", None)
    if scope is None:
        return _real_getaddrinfo(host, port, family, type, proto, flags)
    address = scope.address_for("localhost" if host is None else host, _port(port))  # None means loopback
    return _real_getaddrinfo(address, port, family, type, proto, flags | socket.AI_NUMERICHOST)


def _guarded_gethostbyname(host: str) -> str:
    scope: EgressScope | None = getattr(_state, "scope", None)
    if scope is None:
        return _real_gethostbyname(host)
    return scope.address_for(host, 0)


def _guarded_gethostbyname_ex(host: str) -> tuple[str, list[str], list[str]]:
    scope: EgressScope | None = getattr(_state, "scope", None)
    if scope is None:
        return _real_gethostbyname_ex(host)
    return host, [], [scope.address_for(host, 0)]


def install() -> None:
    """Route this process's name lookups through the scope of the calling thread (idempotent)."""
    with _install_lock:
        if socket.getaddrinfo is not _guarded_getaddrinfo:
            socket.getaddrinfo = _guarded_getaddrinfo
            socket.gethostbyname = _guarded_gethostbyname
            socket.gethostbyname_ex = _guarded_gethostbyname_ex


@contextmanager
def egress_scope(timeout: float, only: tuple[str, ...] = ()) -> Iterator[EgressScope]:
    """Apply the egress policy to every lookup the current thread makes until the block ends."""
    install()
    scope = EgressScope(timeout=max(float(timeout), 0.1), only=frozenset(_norm(h) for h in only))
    previous = getattr(_state, "scope", None)
    _state.scope = scope
    try:
        yield scope
    finally:
        _state.scope = previous


def current_scope() -> EgressScope | None:
    return getattr(_state, "scope", None)


class TimedOut(Exception):
    """A bounded driver call did not finish in time (the call is abandoned in its thread)."""


def call_bounded(
    fn: Callable[[], T], seconds: float, scope: EgressScope | None = None, late: Callable[[T], object] | None = None
) -> T:
    """Run ``fn`` in a daemon thread under ``scope`` (default: the caller's); ``TimedOut`` after ``seconds``.

    The abandoned call keeps running until the driver's own timeout ends it; its result is handed
    to ``late`` (e.g. closing a session that logged in after the test gave up), else dropped.
    """
    scope = scope or current_scope()
    box: dict[str, Any] = {}
    lock = threading.Lock()

    def target() -> None:
        _state.scope = scope
        try:
            value = fn()
        except BaseException as exc:  # handed back to the caller's thread
            with lock:
                box["error"] = exc
            return
        with lock:
            box["value"] = value
            abandoned = box.get("abandoned", False)
        if abandoned and late is not None:
            try:
                late(value)
            except Exception as exc:  # best effort: the caller is gone
                logger.info("Closing a late connector result failed: %s", type(exc).__name__)

    worker = threading.Thread(target=target, name="connector-call", daemon=True)
    worker.start()
    worker.join(max(seconds, 0.05))
    with lock:
        finished = "value" in box or "error" in box
        if not finished:
            box["abandoned"] = True
    if not finished:
        raise TimedOut(f"no answer within {seconds:g} seconds")
    if "error" in box:
        raise box["error"]
    return box["value"]


def bounded_stage(fn: Callable[[], T], seconds: float, stage: str, who: str) -> Callable[[], T]:
    """``fn`` as a stage body: bounded by ``call_bounded`` (abandoned a second after its own
    deadline), a timeout failing ``stage`` with "<who> did not answer within N seconds."."""

    def run() -> T:
        try:
            return call_bounded(fn, seconds + 1)
        except TimedOut:
            raise ConnectorError(stage, f"{who} did not answer within {seconds:g} seconds.") from None

    return run
