"""Deleting data sources: into the trash (restorable for DATASOURCE_TRASH_DAYS) or for good.

A deleted source leaves a ``TrashedDataSource``: its configuration and its secrets (encrypted, bound
to its id), its id and reference id. Restoring re-creates it with the same id (and reference id,
unless a new source took it meanwhile), untested (`pending`), its revisions and audit trail still
attached; its schema is cached again by a refresh. Purging (at once, from the trash, or when the
window ends) deletes the trashed copy and every revision: no secret of it is left.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import Conflict, NotFound, PreconditionFailed
from core.numbers import path_id
from core.references import name_key, new_reference_id
from datasources import dependants
from datasources.models import DataSource, DataSourceRevision, DataSourceStatus, TrashedDataSource
from datasources.services import audit, outbox, refresh_queue, revisions, tenancy
from datasources.services.connection import refresh_schema
from datasources.services.credentials import load_secrets, write_secrets
from datasources.services.datasources import etag_matches, get_data_source
from datasources.services.plan import Plan
from organizations.actors import Actor
from organizations.locks import lock_organization

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def dependants_of(ds: DataSource) -> list[str]:
    """Qualified names of what still reads this data source (the workflows, which register
    themselves in ``datasources.dependants``: data sources never import the apps built on them)."""
    return dependants.dependants_of(ds)


def delete_data_source(*, actor: Actor, data_source_id: Any, if_match: str | None = None,
                       purge: bool = False) -> None:
    """Delete (409 while a workflow still reads it) into the trash, or for good with ``purge``;
    recorded in the audit trail and as a ``data_source.deleted`` event."""
    with transaction.atomic():
        ds = get_data_source(actor, data_source_id, for_update=True)
        if not etag_matches(ds, if_match):
            raise PreconditionFailed()
        names = dependants_of(ds)
        if names:
            raise Conflict(f"The data source is still a source of: {', '.join(names)}.",
                           errors={"dependants": names})
        audit.record(actor=actor, action="delete", target=ds, changes={"name": {"old": ds.name, "new": None}},
                     detail={"purged": purge})
        outbox.deleted(ds, actor, purged=purge)
        if purge:
            DataSourceRevision.objects.filter(data_source_id=ds.pk).delete()
        else:
            _to_trash(ds, actor)
        ds.delete()


def _to_trash(ds: DataSource, actor: Actor) -> TrashedDataSource:
    secrets = load_secrets(ds)
    key_id, ciphertext = revisions.seal(ds.pk, secrets)
    now = timezone.now()
    return TrashedDataSource.objects.create(
        organization_id=ds.organization_id, data_source_id=ds.pk, reference_id=ds.reference_id, name=ds.name,
        type=ds.type, config=revisions.config_of(ds), secret_names=sorted(secrets), key_id=key_id,
        ciphertext=ciphertext, created_at=ds.created_at, version=ds.version, deleted_at=now, deleted_by=actor.label,
        purge_after=now + timedelta(days=settings.DATASOURCE_TRASH_DAYS),
    )


def trash_for_actor(actor: Actor):
    """The organization's trash, without what is past its window (``purge_after``): between the window's
    end and the daily purge an expired entry is neither listed nor restorable."""
    return TrashedDataSource.objects.filter(organization=actor.organization,
                                            purge_after__gt=timezone.now()).order_by("-deleted_at")


def trashed_for_actor(actor: Actor, pk: Any, *, for_update: bool = False) -> TrashedDataSource:
    wanted = path_id(pk)
    qs = trash_for_actor(actor).filter(data_source_id=wanted)
    found = (qs.select_for_update() if for_update else qs).first() if wanted and 0 < wanted < 2**63 else None
    if found is None:
        raise NotFound("No such data source in your organization's trash.")
    return found


def restore_from_trash(*, actor: Actor, data_source_id: Any) -> DataSource:
    """Re-create the source as it was deleted (same id), `pending` until tested; 409 when its name is
    taken by another source now."""
    with transaction.atomic():
        lock_organization(actor)  # names unique as references compare them: checked serialised
        trashed = trashed_for_actor(actor, data_source_id, for_update=True)
        config = trashed.config
        key = name_key(trashed.name)  # as names are unique: the way references compare them
        names = DataSource.objects.filter(organization=actor.organization).values_list("name", flat=True)
        if any(name_key(name) == key for name in names):
            raise Conflict("A data source with this name exists now: rename it first, then restore.",
                           errors={"name": ["A data source with this name already exists."]})
        reference = trashed.reference_id
        if DataSource.objects.filter(reference_id=reference).exists():
            reference = new_reference_id(DataSource)  # no workflow can hold it: a used source is never deleted
        user = cast("User | None", actor.user if getattr(actor.user, "pk", None) else None)
        ds = DataSource(
            pk=trashed.data_source_id, organization_id=trashed.organization_id, reference_id=reference,
            type=trashed.type, name=config["name"], workspace_id=config.get("workspace"),
            connection=config["connection"], status=DataSourceStatus.PENDING, version=trashed.version + 1,
            created_by=user, created_by_token=actor.token, updated_by=user, updated_by_token=actor.token,
            **{key: value for key, value in config.items()
               if key not in ("name", "workspace", "connection", "tenancy_settings")},
        )
        if ds.workspace_id is not None and not ds.organization.workspaces.filter(pk=ds.workspace_id).exists():
            ds.workspace_id = None  # the workspace was deleted meanwhile
        try:
            ds.save(force_insert=True)
        except IntegrityError as exc:
            raise Conflict("The data source could not be restored: its name or id is taken.") from exc
        DataSource.objects.filter(pk=ds.pk).update(created_at=trashed.created_at)
        secrets = revisions.unseal(ds.pk, trashed.key_id, trashed.ciphertext)
        if secrets:
            write_secrets(ds, dict(secrets))
        if config.get("tenancy_settings"):
            tenancy.write(ds, config["tenancy_settings"])
        event = audit.record(actor=actor, action="undelete", target=ds, changes={"name": {"old": None,
                             "new": ds.name}}, detail={"deleted_at": trashed.deleted_at.isoformat()})
        _record_undelete(ds, actor, event, secrets)
        outbox.restored(ds, actor)
        trashed.delete()
    if settings.SCHEMA_REFRESH_ASYNC:
        refresh_queue.enqueue_refresh(ds.pk)
    else:  # inline, as after a connection change: the answer shows the schema cached again (or why not)
        refresh_schema(data_source=ds)
    return ds


def _record_undelete(ds: DataSource, actor: Actor, event: Any, secrets: dict[str, str]) -> None:
    plan = Plan(values={}, secrets={}, secrets_after=secrets, changes={}, connection_changed=False)
    revisions.record(ds, plan, actor, event, "undelete")


def _gone(trashed: TrashedDataSource) -> DataSource:
    """The purged source as its audit record and event name it (it has no row any more)."""
    return DataSource(pk=trashed.data_source_id, organization_id=trashed.organization_id,
                      reference_id=trashed.reference_id, name=trashed.name, type=trashed.type)


def purge_from_trash(*, actor: Actor, data_source_id: Any) -> None:
    """Delete the trashed copy and every revision of the source: nothing of it is left."""
    with transaction.atomic():
        lock_organization(actor)  # names unique as references compare them: checked serialised
        trashed = trashed_for_actor(actor, data_source_id, for_update=True)
        gone = _gone(trashed)
        audit.record(actor=actor, action="purge", target=gone, changes={"name": {"old": trashed.name, "new": None}})
        outbox.deleted(gone, actor, purged=True)
        DataSourceRevision.objects.filter(data_source_id=trashed.data_source_id).delete()
        trashed.delete()


def purge_expired(now=None) -> int:
    """The trash's window: purge every trashed source past ``purge_after`` (the daily task)."""
    now = now or timezone.now()
    rows = list(TrashedDataSource.objects.filter(purge_after__lte=now).only(
        "data_source_id", "organization_id", "reference_id", "name", "type"))
    expired = [row.data_source_id for row in rows]
    if expired:
        with transaction.atomic():
            for row in rows:
                outbox.deleted(_gone(row), None, purged=True)
            DataSourceRevision.objects.filter(data_source_id__in=expired).delete()
            TrashedDataSource.objects.filter(data_source_id__in=expired).delete()
    return len(expired)
