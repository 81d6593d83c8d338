"""The data-source events, as written to the outbox (``eventlog.services.publish``).

Every payload names the source by id, reference id, name and type, the actor by its label, and
changes by field name only: never a value of ``connection`` or a secret.
"""

from __future__ import annotations

from typing import Any

from datasources.connectors import TestResult
from datasources.models import DataSource
from eventlog.services import publish
from organizations.actors import Actor

#: Lists in a payload are cut to this many entries (``truncated`` says so), whatever the schema's size.
MAX_LISTED = 100


def source_ref(ds: DataSource) -> dict[str, Any]:
    return {"id": ds.pk, "reference_id": ds.reference_id, "name": ds.name, "type": ds.type}


def _publish(ds: DataSource, type_: str, actor: Actor | None, **data: Any) -> None:
    payload = {"data_source": source_ref(ds), **data}
    if actor is not None:
        payload["actor"] = actor.label
    publish(organization_id=ds.organization_id, type=type_, data=payload)


def created(ds: DataSource, actor: Actor, changed: list[str]) -> None:
    _publish(ds, "data_source.created", actor, changed=sorted(changed), status=ds.status)


def updated(ds: DataSource, actor: Actor, changed: list[str], method: str, restored_revision: int | None = None,
            ) -> None:
    extra = {"restored_revision": restored_revision} if restored_revision is not None else {}
    _publish(ds, "data_source.updated", actor, changed=sorted(changed), method=method.upper(), version=ds.version,
             status=ds.status, **extra)


def deleted(ds: DataSource, actor: Actor | None, *, purged: bool) -> None:
    """``purged``: gone for good (deleted with ``purge``, or purged from the trash later: by a caller,
    or by the trash's window with no actor); else in the trash (restorable: a ``data_source.created``
    with ``restored``)."""
    _publish(ds, "data_source.deleted", actor, purged=purged)


def restored(ds: DataSource, actor: Actor) -> None:
    """Back from the trash: a creation, with ``restored`` true."""
    _publish(ds, "data_source.created", actor, changed=[], status=ds.status, restored=True)


def test_failed(ds: DataSource, actor: Actor, test: TestResult, trigger: str, code: str | None) -> None:
    """``trigger``: what asked for the test (``test``, ``patch``, ``put``, a dry run's method)."""
    _publish(ds, "data_source.test_failed", actor, trigger=trigger, stage=test.stage, code=code or "",
             duration_ms=test.duration_ms)


def _cut(items: list[Any]) -> list[Any]:
    return items[:MAX_LISTED]


def schema_changed(ds: DataSource, diff: dict[str, Any], affected: list[dict[str, Any]],
                   tenancy: dict[str, Any] | None = None) -> None:
    """A new snapshot: the diff (each list cut to ``MAX_LISTED``, with the full counts), the
    workflows reading a removed or changed table, and whether the tenancy settings still fit."""
    lists = ("tables_added", "tables_removed", "tables_changed")
    counts = {f"{key}_count": len(diff[key]) for key in lists}
    truncated = any(len(diff[key]) > MAX_LISTED for key in lists) or len(affected) > MAX_LISTED
    _publish(
        ds, "data_source.schema_changed", None,
        from_version=diff["from_version"], to_version=diff["to_version"],
        **{key: _cut(diff[key]) for key in lists}, **counts,
        affected_workflows=_cut(affected), affected_workflows_count=len(affected), truncated=truncated,
        tenancy=tenancy,
    )
