"""Revisions: every applied create or update stores the source's full configuration and its secrets
(encrypted like the source's) as they were after the change, restorable through the normal update.

Writing one inside the change's transaction: secrets are re-encrypted only when the change set or
cleared one (else the previous revision's ciphertext is kept: it is bound to the source, not to the
revision). On PostgreSQL a change that leaves the secrets alone is one ``INSERT ... SELECT`` that
numbers the revision and copies the previous one's sealed secrets (and its tenancy settings, when
the change left those alone) in the database; otherwise two statements (the previous revision, the
new one). Inside the write's ``write_batch()`` the statement is queued and runs in one with the
audit event's and the outbox event's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.db import connection
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from core import write_batch
from core.errors import NotFound
from core.numbers import path_id
from datasources import crypto
from datasources.models import DataSource, DataSourceRevision, TrashedDataSource
from datasources.services import tenancy
from datasources.services.credentials import load_secrets, secret_names
from datasources.services.merge import diff_paths
from datasources.services.plan import PLAIN_DEFAULTS, UNCHANGED, Plan
from organizations.actors import Actor
from organizations.models import AuditEvent, Organization

#: The associated-data field of a revision's (or the trash's) encrypted secrets.
SECRETS_FIELD = "revision-secrets"


def config_of(ds: DataSource, tenancy_settings: Any = UNCHANGED) -> dict[str, Any]:
    """The writable configuration as a PUT body would carry it, without credentials."""
    settings = tenancy.current(ds) if tenancy_settings is UNCHANGED else tenancy_settings
    return {
        "name": ds.name,
        "workspace": ds.workspace_id,
        "connection": copy.deepcopy(ds.connection),
        **{key: copy.deepcopy(getattr(ds, key)) for key in PLAIN_DEFAULTS},
        "tenancy_settings": settings,
    }


def seal(data_source_id: int, secrets: dict[str, str]) -> tuple[str, str]:
    """(key_id, ciphertext) of a set of secrets, bound to the data source; empty for none."""
    if not secrets:
        return "", ""
    return crypto.encrypt(json.dumps(secrets, sort_keys=True), row_id=data_source_id, field=SECRETS_FIELD)


def unseal(data_source_id: int, key_id: str, ciphertext: str) -> dict[str, str]:
    if not ciphertext:
        return {}
    return json.loads(crypto.decrypt(key_id, ciphertext, row_id=data_source_id, field=SECRETS_FIELD))


def record(ds: DataSource, plan: Plan, actor: Actor, event: AuditEvent, action: str) -> DataSourceRevision:
    """Store the state after an applied change (call inside its transaction, after the save). Inside a
    ``write_batch()`` (PostgreSQL) its INSERT is queued after ``event``'s: the returned revision is
    complete once the block ends."""
    if not plan.secrets and connection.vendor == "postgresql":
        if write_batch.active():
            return _queue_after_previous(ds, plan, event, action)
        revision = _record_after_previous(ds, plan, event, action)
        if revision is not None:
            return revision
    return _record_read_previous(ds, plan, event, action)


def _record_read_previous(ds: DataSource, plan: Plan, event: AuditEvent, action: str) -> DataSourceRevision:
    """Two statements: the previous revision, then the new one (queued inside a batch)."""
    previous = (DataSourceRevision.objects.filter(data_source_id=ds.pk).order_by("-number")
                .values("number", "config", "key_id", "ciphertext", "secret_names").first())
    if previous is not None and not plan.secrets:
        key_id, ciphertext, names = previous["key_id"], previous["ciphertext"], previous["secret_names"]
    else:
        secrets = plan.secrets_after if plan.secrets_loaded else load_secrets(ds)
        key_id, ciphertext = seal(ds.pk, secrets)
        names = sorted(secrets)
    if plan.tenancy is not UNCHANGED:
        settings = plan.tenancy
    elif previous is not None:
        settings = previous["config"].get("tenancy_settings")
    else:
        settings = UNCHANGED
    revision = DataSourceRevision(
        organization_id=ds.organization_id, data_source_id=ds.pk,
        number=(previous["number"] + 1) if previous else 1, action=action,
        actor_user_id=event.actor_user_id, actor_token_id=event.actor_token_id, actor_repr=event.actor_repr,
        audit_event=event, changed=sorted(plan.changes), secrets_changed=sorted(plan.secrets),
        config=config_of(ds, settings), secret_names=names, key_id=key_id, ciphertext=ciphertext,
    )
    if write_batch.active():
        write_batch.queue_insert(revision)
    else:
        revision.save(force_insert=True)
    return revision


#: One statement: the next number, the previous revision's sealed secrets and (when ``%(keep_tenancy)s``)
#: its tenancy settings, read where they are written. No row when the source has no revision yet.
#: (The table is DataSourceRevision's; ``test_query_counts`` runs this on PostgreSQL.)
_INSERT_AFTER_PREVIOUS = """
INSERT INTO datasources_datasourcerevision (organization_id, data_source_id, number, action, created_at, actor_user_id,
    actor_token_id, actor_repr, audit_event_id, changed, secrets_changed, config, secret_names, key_id, ciphertext)
SELECT %(org)s, %(ds)s, prev.number + 1, %(action)s, %(now)s, %(user)s, %(token)s, %(repr)s, %(event)s,
    %(changed)s::jsonb, '[]'::jsonb,
    CASE WHEN %(keep_tenancy)s
         THEN jsonb_set(%(config)s::jsonb, '{tenancy_settings}', COALESCE(prev.config -> 'tenancy_settings', 'null'))
         ELSE %(config)s::jsonb END,
    prev.secret_names, prev.key_id, prev.ciphertext
FROM (SELECT number, config, secret_names, key_id, ciphertext FROM datasources_datasourcerevision
      WHERE data_source_id = %(ds)s ORDER BY number DESC LIMIT 1) prev
RETURNING id, number, secret_names, key_id, ciphertext, config
"""
_RETURNED = ("id", "number", "secret_names", "key_id", "ciphertext", "config")


def _after_previous_params(ds: DataSource, plan: Plan, event: AuditEvent, action: str) -> dict[str, Any]:
    keep_tenancy = plan.tenancy is UNCHANGED
    return {
        "org": ds.organization_id, "ds": ds.pk, "action": action, "now": timezone.now(),
        "user": event.actor_user_id, "token": event.actor_token_id, "repr": event.actor_repr,
        "event": write_batch.ref_or_pk(event), "changed": json.dumps(sorted(plan.changes)),
        "keep_tenancy": keep_tenancy, "config": json.dumps(config_of(ds, None if keep_tenancy else plan.tenancy)),
    }


def _unsaved(params: dict[str, Any], event: AuditEvent) -> DataSourceRevision:
    """The revision ``_INSERT_AFTER_PREVIOUS`` writes with ``params``, before its RETURNING values."""
    return DataSourceRevision(
        organization_id=params["org"], data_source_id=params["ds"], action=params["action"],
        created_at=params["now"], actor_user_id=params["user"], actor_token_id=params["token"],
        actor_repr=params["repr"], audit_event=event, changed=json.loads(params["changed"]), secrets_changed=[],
    )


def _returned(revision: DataSourceRevision, row: Sequence[Any], event: AuditEvent) -> DataSourceRevision:
    """Fill in what the statement read from the previous revision (JSON columns as text or decoded)."""
    pk, number, names, key_id, ciphertext, stored_config = row
    revision.pk, revision.number, revision.key_id, revision.ciphertext = pk, number, key_id, ciphertext
    revision.audit_event_id = event.pk
    revision.config = stored_config if isinstance(stored_config, dict) else json.loads(stored_config)
    revision.secret_names = names if isinstance(names, list) else json.loads(names)
    revision._state.adding = False
    return revision


def _record_after_previous(ds: DataSource, plan: Plan, event: AuditEvent, action: str) -> DataSourceRevision | None:
    """A change that left the secrets alone, after an earlier revision (PostgreSQL): one statement.
    None when the source has no revision yet (the caller then writes the first one)."""
    params = _after_previous_params(ds, plan, event, action)
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_AFTER_PREVIOUS, params)
        row = cursor.fetchone()
    return None if row is None else _returned(_unsaved(params, event), row, event)


def _queue_after_previous(ds: DataSource, plan: Plan, event: AuditEvent, action: str) -> DataSourceRevision:
    """``_record_after_previous`` queued in the write's batch (its audit event's id read there too);
    a source without a revision yet gets its first one after the batch has run."""
    params = _after_previous_params(ds, plan, event, action)
    revision = _unsaved(params, event)

    def written(rows: write_batch.Rows) -> None:
        if rows:
            row = rows[0]
            _returned(revision, [row[key] for key in _RETURNED], event)
            return
        first = _record_read_previous(ds, plan, event, action)
        for f in DataSourceRevision._meta.concrete_fields:
            setattr(revision, f.attname, getattr(first, f.attname))
        revision._state.adding = False

    write_batch.queue(_INSERT_AFTER_PREVIOUS, params, on_rows=written)
    return revision


def revisions_of(ds: DataSource):
    return DataSourceRevision.objects.filter(data_source_id=ds.pk).order_by("-number")


def revision_of(ds: DataSource, number: Any) -> DataSourceRevision:
    wanted = path_id(number)
    revision = revisions_of(ds).filter(number=wanted).first() if wanted and 0 < wanted < 2**63 else None
    if revision is None:
        raise NotFound("No such revision of this data source.")
    return revision


def diff_against_current(ds: DataSource, revision: DataSourceRevision) -> dict[str, Any]:
    """What restoring ``revision`` would change: dotted paths with the current (``old``) and the
    revision's (``new``) values; secrets by name only (``changed``, ``set``, ``cleared``)."""
    current = config_of(ds)
    changes: dict[str, Any] = {}
    for key in sorted(set(current) | set(revision.config)):
        old, new = current.get(key), revision.config.get(key)
        if key in ("connection", "metadata", "tenancy_settings") and isinstance(old, dict) and isinstance(new, dict):
            changes.update(diff_paths(old, new, key))
        elif old != new:
            changes[key] = {"old": old, "new": new}
    now = load_secrets(ds)
    then = unseal(ds.pk, revision.key_id, revision.ciphertext)
    for name in sorted(set(now) | set(then)):
        if name not in then:
            changes[f"credentials.{name}"] = "cleared"
        elif name not in now:
            changes[f"credentials.{name}"] = "set"
        elif now[name] != then[name]:
            changes[f"credentials.{name}"] = "changed"
    return changes


def restore_body(ds: DataSource, revision: DataSourceRevision) -> dict[str, Any]:
    """The PUT body that brings ``ds`` back to ``revision``: its configuration and its secrets, and
    a clear (``null``) for every secret set now that the revision did not have."""
    secrets: dict[str, str | None] = dict(unseal(ds.pk, revision.key_id, revision.ciphertext))
    for name in secret_names(ds) - set(secrets):
        secrets[name] = None
    body = copy.deepcopy(revision.config)
    settings = body.get("tenancy_settings")
    # Stored settings keep "" for the fields a level does not use; a body leaves them out.
    body["tenancy_settings"] = {k: v for k, v in settings.items() if v != ""} if settings else None
    body["credentials"] = secrets
    return body



def prune(now: Any = None) -> int:
    """Retention, per organization: keep each source's newest ``revisions_keep`` revisions, and none
    older than ``revisions_keep_days`` days except each source's newest. One ranking statement per
    distinct pair of settings (not per organization or source)."""
    now = now or timezone.now()
    deleted = 0
    for keep, days in Organization.objects.values_list("revisions_keep", "revisions_keep_days").distinct():
        orgs = Organization.objects.filter(revisions_keep=keep)
        orgs = orgs.filter(revisions_keep_days=days) if days else orgs.filter(revisions_keep_days__isnull=True)
        ranked = DataSourceRevision.objects.filter(organization__in=orgs).annotate(
            rank=Window(RowNumber(), partition_by=[F("data_source_id")], order_by=F("number").desc()))
        doomed = set(ranked.filter(rank__gt=keep).values_list("pk", flat=True))
        if days:
            doomed |= set(ranked.filter(rank__gt=1, created_at__lt=now - timedelta(days=days))
                          .values_list("pk", flat=True))
        ids = sorted(doomed)
        for start in range(0, len(ids), 1000):
            deleted += DataSourceRevision.objects.filter(pk__in=ids[start:start + 1000]).delete()[0]
    return deleted


def rotate_sealed(ring: crypto.Keyring) -> dict[str, int]:
    """Re-encrypt the sealed secrets of revisions and of the trash with the newest key
    (``rotate_encryption_key``); call inside a transaction."""
    def locate(row: DataSourceRevision | TrashedDataSource) -> tuple[str, str, int, str]:
        return row.key_id, row.ciphertext, row.data_source_id, SECRETS_FIELD

    revisions = DataSourceRevision.objects.select_for_update().exclude(ciphertext="")
    trashed = TrashedDataSource.objects.select_for_update().exclude(ciphertext="")
    parts = [
        crypto.rotate(revisions.iterator(), locate, lambda row, key_id, ciphertext: DataSourceRevision.objects
                      .filter(pk=row.pk).update(key_id=key_id, ciphertext=ciphertext), ring),
        crypto.rotate(trashed.iterator(), locate, lambda row, key_id, ciphertext: TrashedDataSource.objects
                      .filter(pk=row.pk).update(key_id=key_id, ciphertext=ciphertext), ring),
    ]
    return {key: parts[0][key] + parts[1][key] for key in parts[0]}
