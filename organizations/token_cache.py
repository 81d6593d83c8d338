"""An in-process cache of resolved API tokens, invalidated through Django's cache.

Every request resolves its bearer token; with this cache a token seen in the last
``TOKEN_CACHE_SECONDS`` (default 30) costs no SQL statement. Each process keeps a small LRU
(``TOKEN_CACHE_SIZE`` entries) of what the token resolved to: the token row, its organization's id,
slug and name, its user's id, username and flags, and the user's role there.

Invalidation is immediate, in every process: a *generation* is kept in Django's cache (one key,
a random value). Every entry records the generation read *before* the database read it was built
from, and is served only while the generation is unchanged. Any change that can make an entry
wrong (a token saved or deleted: revocation, scopes, name, expiry, organization; a membership
saved or deleted; a user saved or deleted: deactivation; an organization saved or deleted) sets a
new generation once its transaction commits (model signals: the services, the admin and the shell
all go through ``save``/``delete``). Expiry is checked against the cached ``expires_at`` on every
hit. A hit costs one cache read: an in-memory lookup with the local-memory cache, one Redis GET
with ``CACHE_URL=redis://...``. When the generation cannot be read (the shared cache is down),
nothing is served from the entries: the database decides.

With a process-local cache (locmem) the generation only reaches this process: gunicorn.conf.py
turns the token cache off when several workers run without a shared cache. A change made with
``QuerySet.update()`` or raw SQL sends no signal: call ``invalidate()`` after it.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from organizations.models import ApiToken, Membership, Organization

logger = logging.getLogger(__name__)

GENERATION_KEY = "organizations:token-cache:generation"
#: the token columns an entry keeps (all of them: a hit builds the whole row)
TOKEN_FIELDS = tuple(f.attname for f in ApiToken._meta.concrete_fields)


def in_model_order(model: Any, names: Iterable[str]) -> tuple[str, ...]:
    """``names`` in the order of ``model``'s columns: ``Model.from_db`` places a partial row's values
    by that order, whatever order the names are given in."""
    wanted = set(names)
    return tuple(f.attname for f in model._meta.concrete_fields if f.attname in wanted)


ORGANIZATION_FIELDS = in_model_order(Organization, ("id", "slug", "name"))  # others deferred: read if used
USER_FIELDS = ("id", "is_active", "is_staff", "is_superuser")  # and the USERNAME_FIELD


@dataclass
class Entry:
    """What one token resolved to, and when (``built_at``: time.monotonic())."""

    generation: str
    built_at: float
    token: tuple[Any, ...]  # TOKEN_FIELDS, in order
    organization: tuple[Any, ...]  # ORGANIZATION_FIELDS
    user: tuple[Any, ...] | None  # user_fields(), or None for an organization token
    role: str | None

    def expires_at(self) -> datetime | None:
        return self.token[TOKEN_FIELDS.index("expires_at")]


_entries: OrderedDict[str, Entry] = OrderedDict()
_lock = threading.Lock()


def seconds() -> float:
    return float(getattr(settings, "TOKEN_CACHE_SECONDS", 0) or 0)


def user_fields() -> tuple[str, ...]:
    """The user columns an entry keeps, in the user model's order (see ``in_model_order``)."""
    model = get_user_model()
    return in_model_order(model, (*USER_FIELDS, model.USERNAME_FIELD))


def current_generation() -> str | None:
    """The generation now, read before a database read; None when the cache is off or unreachable."""
    if seconds() <= 0:
        return None
    try:
        value = cache.get(GENERATION_KEY)
        if value is None:  # never set, evicted or flushed: a new one (no old entry can match it)
            cache.add(GENERATION_KEY, secrets.token_hex(16), timeout=None)
            value = cache.get(GENERATION_KEY)
    except Exception:  # the shared cache is down: the database decides, nothing is cached
        logger.warning("token cache: the generation could not be read", exc_info=True)
        return None
    return value if isinstance(value, str) else None


def lookup(token_hash: str, generation: str | None) -> Entry | None:
    """The live entry of ``token_hash``: built at this generation, younger than TOKEN_CACHE_SECONDS."""
    if generation is None:
        return None
    with _lock:
        entry = _entries.get(token_hash)
        if entry is None:
            return None
        if entry.generation != generation or time.monotonic() - entry.built_at >= seconds():
            del _entries[token_hash]
            return None
        _entries.move_to_end(token_hash)
        return entry


def store(token_hash: str, generation: str | None, token: ApiToken, role: str | None) -> None:
    """Keep what the database said about a valid token, tagged with the generation read before."""
    if generation is None:
        return
    user = token.user if token.user_id is not None else None
    entry = Entry(
        generation=generation,
        built_at=time.monotonic(),
        token=tuple(getattr(token, name) for name in TOKEN_FIELDS),
        organization=tuple(getattr(token.organization, name) for name in ORGANIZATION_FIELDS),
        user=None if user is None else tuple(getattr(user, name) for name in user_fields()),
        role=role,
    )
    limit = max(1, int(getattr(settings, "TOKEN_CACHE_SIZE", 1024)))
    with _lock:
        _entries[token_hash] = entry
        _entries.move_to_end(token_hash)
        while len(_entries) > limit:
            _entries.popitem(last=False)


def note_last_use(token_hash: str, when: datetime) -> None:
    """Record in the entry the ``last_used_at`` just written, so the next write waits a minute."""
    index = TOKEN_FIELDS.index("last_used_at")
    with _lock:
        entry = _entries.get(token_hash)
        if entry is not None:
            entry.token = (*entry.token[:index], when, *entry.token[index + 1:])


def build(entry: Entry) -> tuple[ApiToken, Organization, Any]:
    """Fresh model instances for one request (never shared between requests), without a statement."""
    organization = Organization.from_db("default", ORGANIZATION_FIELDS, entry.organization)
    token = ApiToken.from_db("default", TOKEN_FIELDS, entry.token)
    token.organization = organization
    user = None
    if entry.user is not None:
        user = get_user_model().from_db("default", user_fields(), entry.user)
        token.user = user
    return token, organization, user


def is_expired(entry: Entry, now: datetime | None = None) -> bool:
    expires_at = entry.expires_at()
    return expires_at is not None and expires_at <= (now or timezone.now())


def clear_local() -> None:
    with _lock:
        _entries.clear()


def invalidate() -> None:
    """A new generation now: every process's entries stop being served (this one's are dropped)."""
    clear_local()
    try:
        cache.set(GENERATION_KEY, secrets.token_hex(16), timeout=None)
    except Exception:  # nothing else can reach the other processes: their entries live out their TTL
        logger.error("token cache: the new generation could not be written; other processes may serve "
                     "a changed token for up to TOKEN_CACHE_SECONDS", exc_info=True)


def invalidate_on_commit(**_: Any) -> None:
    """Now, and again once the change is committed: between the two, another request may rebuild an
    entry from the row as committed before, at the new generation; the second one voids it. (Now
    as well: a change that is read inside its own transaction, as in a test, is seen at once.)"""
    invalidate()
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(invalidate)


def _on_save(sender: Any, instance: Any, created: bool = False, update_fields: Any = None, **_: Any) -> None:
    if created:  # a new row cannot make an entry wrong: entries exist only for tokens already valid
        return
    if sender is get_user_model() and update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a login
    invalidate_on_commit()


def connect_signals() -> None:
    """From OrganizationsConfig.ready(): every save and delete of what an entry is built from."""
    for model in (ApiToken, Membership, Organization, get_user_model()):
        post_save.connect(_on_save, sender=model, dispatch_uid=f"token-cache-save-{model._meta.label}")
        post_delete.connect(invalidate_on_commit, sender=model, dispatch_uid=f"token-cache-delete-{model._meta.label}")
