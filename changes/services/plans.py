"""Saved change plans: a PATCH of one data source validated, tested and reported on (``impact``)
now, stored sealed, and applied later exactly as reviewed, through the normal update service.

Apply: 410 PLAN_EXPIRED when expired; 409 CONFLICT when the source's version moved since the plan
(nothing changed); else the update with ``If-Match`` of the planned version, which re-tests the
connection, locks, applies, audits and re-caches as any PATCH (a 412 there is this 409)."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from changes.models import ChangePlan, PlanStatus
from changes.services import common
from core.errors import Conflict, NotFound, PreconditionFailed
from datasources.models import DataSource
from datasources.services import revisions
from datasources.services.datasources import WriteOptions, WriteResult, get_data_source, update_data_source
from organizations import audit
from organizations.actors import Actor

PREFIX = "pln"


def _expire_due(qs: QuerySet[ChangePlan]) -> None:
    qs.filter(status=PlanStatus.OPEN, expires_at__lte=timezone.now()).update(status=PlanStatus.EXPIRED,
                                                                             **common.FORGOTTEN)


def open_plans(actor: Actor, data_source_id: Any) -> QuerySet[ChangePlan]:
    """The source's open plans that can still be applied (made against its current version), newest
    first (404 for another organization's source). A stale one is left out: its apply would be 409;
    ``plan_for`` still reads it (``stale: true``)."""
    ds = get_data_source(actor, data_source_id)
    _expire_due(ChangePlan.objects.filter(data_source=ds))
    return ChangePlan.objects.filter(data_source=ds, status=PlanStatus.OPEN, base_version=ds.version).order_by(
        "-created_at", "-id").select_related("data_source")


def plan_for(actor: Actor, data_source_id: Any, plan_id: Any) -> ChangePlan:
    """One plan of one of the caller's sources (any status), or 404."""
    ds = get_data_source(actor, data_source_id)
    plan = ChangePlan.objects.filter(data_source=ds, public_id=str(plan_id)).select_related("data_source").first()
    if plan is None:
        raise NotFound("No such plan of this data source.", errors={"plan_id": ["No such plan."]})
    if plan.status == PlanStatus.OPEN and plan.expires_at <= timezone.now():
        plan.status = PlanStatus.EXPIRED
        ChangePlan.objects.filter(pk=plan.pk, status=PlanStatus.OPEN).update(status=PlanStatus.EXPIRED,
                                                                             **common.FORGOTTEN)
    return plan


def create_plan(*, actor: Actor, data_source_id: Any, data: dict[str, Any]) -> ChangePlan:
    """Validate and test the PATCH as the write would (a dry run: changed fields, test, impact),
    then store it sealed. Nothing of the source changes; 400s as for PATCH."""
    ds = get_data_source(actor, data_source_id)
    result = update_data_source(actor=actor, data_source_id=ds.pk, data=data, mode="patch",
                                options=WriteOptions(dry_run=True))
    return _store(actor, ds, result, data, common.planned_diff(actor, ds, data), restores=None)


def create_restore_plan(*, actor: Actor, data_source_id: Any, number: Any) -> ChangePlan:
    """A plan of restoring revision ``number``: its PUT body (configuration and secrets) dry-run as the
    restore would be, its diff against now (secrets by name), stored sealed; applied as the restore."""
    ds = get_data_source(actor, data_source_id)
    revision = revisions.revision_of(ds, number)
    body = revisions.restore_body(ds, revision)
    result = update_data_source(actor=actor, data_source_id=ds.pk, data=body, mode="put",
                                options=WriteOptions(dry_run=True, restores=revision.number))
    changes = json.loads(json.dumps(revisions.diff_against_current(ds, revision), default=str))
    return _store(actor, ds, result, body, changes, restores=revision.number)


def _store(actor: Actor, ds: DataSource, result: WriteResult, body: dict[str, Any], changes: dict[str, Any], *,
           restores: int | None) -> ChangePlan:
    plan = ChangePlan(organization_id=ds.organization_id, data_source=ds, public_id=common.new_public_id(PREFIX),
                      base_version=ds.version, changed=result.changed, changes=changes, restores=restores,
                      touches_connection=common.touches_connection(result.changed),
                      test=result.test.as_dict() if result.test else None, impact=result.impact,
                      expires_at=common.expiry("CHANGE_PLAN_TTL_SECONDS"), **common.author_fields(actor))
    plan.key_id, plan.ciphertext = common.seal(ds.pk, plan.public_id, body)
    plan.save()
    detail = {"plan": plan.public_id, "version": ds.version, "expires_at": plan.expires_at.isoformat()}
    if restores is not None:
        detail["restores_revision"] = restores
    audit.record(actor=actor, action="plan_create", target=ds, changes=changes, detail=detail)
    return plan


def cancel_plan(*, actor: Actor, data_source_id: Any, plan_id: Any) -> ChangePlan:
    """The author or an owner/admin cancels an open plan (409 when it is no longer open)."""
    plan = plan_for(actor, data_source_id, plan_id)
    if not common.is_author(plan, actor) and not actor.is_org_admin:
        raise common.Forbidden("Only the author or an owner/admin may cancel this plan.")
    if plan.status != PlanStatus.OPEN:
        raise Conflict(f"The plan is {plan.status}: it cannot be cancelled.")
    now = timezone.now()
    if not ChangePlan.objects.filter(pk=plan.pk, status=PlanStatus.OPEN).update(
            status=PlanStatus.CANCELLED, cancelled_at=now, cancelled_by=actor.label[:255], **common.FORGOTTEN):
        raise Conflict("The plan is no longer open.")
    audit.record(actor=actor, action="plan_cancel", target=plan.data_source, detail={"plan": plan.public_id})
    plan.refresh_from_db()
    return plan


def _require_open(plan: ChangePlan) -> None:
    if plan.status == PlanStatus.EXPIRED:
        raise common.Expired(f"The plan expired at {plan.expires_at.isoformat()}: make a new one. Nothing was "
                             "changed.")
    if plan.status != PlanStatus.OPEN:
        raise Conflict(f"The plan is {plan.status}: it cannot be applied again.")


def _stale(ds: DataSource, plan: ChangePlan) -> Conflict:
    return Conflict(f"The data source changed since the plan was made (version {plan.base_version}, now "
                    f"{ds.version}): make a new plan. Nothing was changed.",
                    extra={"plan_version": plan.base_version, "current_version": ds.version})


def apply_plan(*, actor: Actor, data_source_id: Any, plan_id: Any) -> tuple[ChangePlan, WriteResult]:
    """Apply exactly the reviewed body; see the module's docstring."""
    plan = plan_for(actor, data_source_id, plan_id)
    common.check_may_apply(plan, actor, plan.touches_connection)
    _require_open(plan)
    ds = plan.data_source
    if ds.version != plan.base_version:
        raise _stale(ds, plan)
    body = common.unseal(ds.pk, plan.public_id, plan.key_id, plan.ciphertext)
    etag = f'"{ds.pk}-{plan.base_version}"'
    try:
        result = update_data_source(actor=actor, data_source_id=ds.pk, data=body,
                                    mode="patch" if plan.restores is None else "put",
                                    options=WriteOptions(if_match=etag, restores=plan.restores, reviewed=True))
    except PreconditionFailed:
        raise _stale(DataSource.objects.get(pk=ds.pk), plan) from None
    now = timezone.now()
    if not ChangePlan.objects.filter(pk=plan.pk, status=PlanStatus.OPEN).update(
            status=PlanStatus.APPLIED, applied_at=now, applied_by=actor.label[:255], **common.FORGOTTEN):
        raise Conflict("The plan was applied meanwhile.")
    audit.record(actor=actor, action="plan_apply", target=result.data_source, changes=plan.changes,
                 detail={"plan": plan.public_id, "version": result.data_source.version,
                         "test": result.test.as_dict() if result.test else None})
    plan.refresh_from_db()
    return plan, result
