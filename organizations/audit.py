"""The one audit writer: every create, update, delete, test, token and membership change.

It lives in the organizations app (which owns ``AuditEvent``) so that every app can record
events without importing the data-source services; ``datasources.services.audit`` re-exports it.
"""

from __future__ import annotations

from typing import Any

from core import write_batch
from core.request_id import current_request_id
from organizations.actors import Actor
from organizations.models import AuditEvent


def record(
    *,
    actor: Actor,
    action: str,
    target: Any,
    changes: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one audit event. ``changes`` must already have secrets reduced to "changed"/"cleared".
    Inside a ``write_batch()`` (PostgreSQL) its INSERT is queued: no ``pk`` until the block ends
    (``write_batch.ref_or_pk``)."""
    event = AuditEvent(
        organization_id=target.organization_id,
        target_type=target._meta.label_lower,
        target_id=target.pk,
        target_repr=str(target)[:255],
        action=action,
        changes=changes or {},
        detail=detail or {},
        request_id=current_request_id() or "",
        **actor.audit_fields(),
    )
    if write_batch.active():
        write_batch.queue_insert(event)
    else:
        event.save(force_insert=True)
    return event
