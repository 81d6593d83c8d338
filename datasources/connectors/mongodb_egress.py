"""pymongo under the egress policy: ``CheckedPool`` runs each connection in an egress scope of its own.

pymongo connects from its own monitor threads, where the test thread's egress scope does not apply.
Every connection it opens, in any thread, is made by a pool whose class the client takes from
``_pool_class`` (pymongo's hook for deep customisation): ``CheckedPool`` runs each ``Pool.connect``
inside an egress scope of its own. There a host name resolves only to a checked address (the seeds'
addresses are pinned; a member announced in hello's ``hosts`` is resolved once, checked and pinned for
later connections), so TLS still verifies the host name itself (``tlsAllowInvalidHostnames`` is never
set). A refused member fails its lookup before any packet; a member announced as a Unix socket path
(pymongo opens ``*.sock`` hosts over AF_UNIX) is refused the same way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pymongo.synchronous.pool import Pool

from .base import ConnectorError
from .egress import connect_failed_message
from .guard import egress_scope
from .mongodb_srv import Seed, is_host

logger = logging.getLogger("datasources.connectors.mongodb")  # the connector's logger, as in mongodb.py

T = TypeVar("T")


class Egress:
    """The addresses pymongo's pools may connect to, shared by all of one test's threads."""

    def __init__(self, timeout: float, seeds: list[Seed]):
        self.timeout = timeout
        self.pins = {seed.host: seed.ip for seed in seeds}
        self.refused: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def connect(self, address: tuple[str, int | None], connect: Callable[[], T]) -> T:
        """Run one pool connection under an egress scope of its own (in whatever thread pymongo uses)."""
        host, port = str(address[0]), int(address[1] or 27017)
        if not is_host(host):
            self._refuse([(host, port)])
            raise OSError("refused by the egress policy")
        with egress_scope(self.timeout) as scope:
            with self._lock:
                pins = dict(self.pins)
            for name, ip in pins.items():
                scope.pin(name, ip)
            try:
                return connect()
            finally:
                with self._lock:
                    for name, ip in scope.pins.items():
                        self.pins.setdefault(name, ip)
                self._refuse(scope.refused)

    def _refuse(self, refused: list[tuple[str, int]]) -> None:
        for host, port in refused:
            logger.info("Egress policy refused a connection to %s:%s (announced by the server)", host[:255], port)
        with self._lock:
            self.refused.extend(refused)

    def pool_class(self) -> type[Pool]:
        egress = self

        class CheckedPool(Pool):
            def connect(self, *args: Any, **kwargs: Any) -> Any:
                return egress.connect(self.address, lambda: Pool.connect(self, *args, **kwargs))

        return CheckedPool

    def blocked_error(self) -> ConnectorError | None:
        with self._lock:
            if not self.refused:
                return None
            host, port = self.refused[0]
        return ConnectorError("tcp", connect_failed_message(host if is_host(host) else "?", port))
