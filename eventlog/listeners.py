"""Who is told, after commit, that events were published: a registry the apps built on events
fill at startup (``webhooks`` registers its dispatcher), so publishing never imports them."""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

#: Called after the publishing transaction commits, with the organization id of the new events.
Listener = Callable[[int], None]

_listeners: list[Listener] = []


def register(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def notify(organization_id: int) -> None:
    """Tell every listener; one failing (a broker down) never fails the change that committed: the
    events wait in the outbox for the next sweep."""
    for listener in _listeners:
        try:
            listener(organization_id)
        except Exception:
            logger.warning("event listener %s failed; the outbox sweep will pick the events up",
                           getattr(listener, "__qualname__", listener), exc_info=True)
