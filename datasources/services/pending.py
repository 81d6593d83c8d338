"""Pending credentials: what a writer sent that the current destination refused, kept for that
writer's next move of the source (the credentials-first order of a two-step move, ``moves``).

A credentials update by a writer the destination rule binds is tested against the current
destination. When the server answers but refuses them (stage ``auth`` or ``database``), they may be
meant for the destination the writer is about to move the source to: they are kept here,
encrypted like stored secrets (AES-GCM, bound to the data source *and* to the writer: user and
token), for ``TTL``. Nothing active uses them: only that same writer's next move (``moves``) tests
them, at the new destination. They are deleted when used, when the source's credentials are
updated by anyone, when they expire (on the next read, and by the scheduler's tick), and with the
source. Names only ever leave this module; values only to the connection test of that move.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from datasources import crypto
from datasources.models import DataSource, PendingCredentials
from datasources.services import audit
from organizations.actors import Actor

#: how long pending credentials wait for their writer's move
TTL = timedelta(hours=1)
#: the stages at which the server answered and refused the credentials themselves
KEEP_STAGES = frozenset({"auth", "database"})


@dataclass(frozen=True)
class Pending:
    data: dict[str, Any]  # the native body: {"credentials": {...}, "connection": {"username": ...}}
    names: list[str]
    stage: str
    created_at: datetime
    expires_at: datetime

    @property
    def secrets(self) -> dict[str, Any]:
        return dict(self.data.get("credentials") or {})


def _writer(actor: Actor) -> tuple[int | None, int | None]:
    user_id = getattr(actor.user, "pk", None)
    return user_id, (actor.token.pk if actor.token is not None else None)


def _by_writer(user_id: int | None, token_id: int | None) -> dict[str, Any]:
    """Lookups for exactly this writer (a missing user or token is NULL, never "any")."""
    return {**({"user_id": user_id} if user_id is not None else {"user__isnull": True}),
            **({"token_id": token_id} if token_id is not None else {"token__isnull": True})}


def _aad_field(user_id: int | None, token_id: int | None) -> str:
    """Binds the ciphertext to its writer: a row edited to name another writer does not decrypt."""
    return f"pending-credentials:user={user_id or '-'}:token={token_id or '-'}"


def names_of(data: dict[str, Any]) -> list[str]:
    names = set((data.get("credentials") or {}).keys())
    names.update((data.get("connection") or {}).keys())
    return sorted(names)


def sends_a_secret(data: dict[str, Any]) -> bool:
    """Whether a credentials body sets a secret (a value, ``""`` included), not only clears or renames."""
    return any(value is not None for value in (data.get("credentials") or {}).values())


def keep(*, actor: Actor, data_source: DataSource, data: dict[str, Any], stage: str) -> Pending:
    """Keep ``data`` for ``actor``'s next move (replacing what they kept before); audited by name."""
    user_id, token_id = _writer(actor)
    now = timezone.now()
    key_id, ciphertext = crypto.encrypt(json.dumps(data), row_id=data_source.pk,
                                        field=_aad_field(user_id, token_id))
    names = names_of(data)
    with transaction.atomic():
        PendingCredentials.objects.filter(data_source=data_source, **_by_writer(user_id, token_id)).delete()
        row = PendingCredentials.objects.create(
            data_source=data_source, user_id=user_id, token_id=token_id, names=names, stage=stage,
            key_id=key_id, ciphertext=ciphertext, created_at=now, expires_at=now + TTL,
        )
        audit.record(actor=actor, action="pending_credentials", target=data_source,
                     detail={"names": names, "stage": stage, "expires_at": row.expires_at.isoformat(),
                             "outcome": "kept"})
    return Pending(data, names, stage, row.created_at, row.expires_at)


def for_actor(actor: Actor, data_source: DataSource) -> Pending | None:
    """``actor``'s own pending credentials for this source, if any are still valid."""
    now = timezone.now()
    PendingCredentials.objects.filter(data_source=data_source, expires_at__lte=now).delete()
    user_id, token_id = _writer(actor)
    row = (PendingCredentials.objects.filter(data_source=data_source, expires_at__gt=now,
                                             **_by_writer(user_id, token_id))
           .order_by("-created_at").first())
    if row is None:
        return None
    try:
        plain = crypto.decrypt(row.key_id, row.ciphertext, row_id=data_source.pk,
                               field=_aad_field(user_id, token_id))
        data = json.loads(plain)
    except (crypto.DecryptionError, ValueError):
        row.delete()  # a key rotated away, or a row tampered with: nothing to use
        return None
    return Pending(data, list(row.names), row.stage, row.created_at, row.expires_at)


def clear(data_source: DataSource) -> int:
    """Forget every writer's pending credentials for this source."""
    return PendingCredentials.objects.filter(data_source=data_source).delete()[0]


def purge_expired(now: datetime | None = None) -> int:
    return PendingCredentials.objects.filter(expires_at__lte=now or timezone.now()).delete()[0]
