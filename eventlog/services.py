"""Publishing events: one outbox row in the caller's transaction, listeners told after commit."""

from __future__ import annotations

import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone

from core import write_batch
from eventlog import listeners
from eventlog.catalogue import is_known
from eventlog.models import Event

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_event_id() -> str:
    """``msg_`` and 26 random characters (130 bits): unique without a lookup. Five bits of one
    ``randbits`` per character (26 ``secrets.choice`` calls cost more than the rest of publishing)."""
    bits = secrets.randbits(130)
    return "msg_" + "".join(_ALPHABET[(bits >> shift) & 31] for shift in range(0, 130, 5))


def publish(*, organization_id: int, type: str, data: dict[str, Any]) -> Event:
    """Write one event to the outbox inside the current transaction (none for a change that rolls
    back) and tell the listeners once it commits. ``data`` must hold no secret value. Inside a
    ``write_batch()`` (PostgreSQL) its INSERT is queued: no ``pk`` until the block ends."""
    if not is_known(type):
        raise ValueError(f"unknown event type {type!r}")
    event = Event(organization_id=organization_id, public_id=new_event_id(), type=type, data=data,
                  occurred_at=timezone.now())
    if write_batch.active():
        write_batch.queue_insert(event)
    else:
        event.save(force_insert=True)
    transaction.on_commit(lambda: listeners.notify(organization_id))
    return event


def envelope(event: Event) -> dict[str, Any]:
    """The delivered body (Standard Webhooks' suggested shape): ``type``, ``timestamp``, ``data``,
    plus the event's ``id`` so a receiver can de-duplicate without reading headers."""
    return {
        "id": event.public_id,
        "type": event.type,
        "timestamp": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "data": event.data,
    }
