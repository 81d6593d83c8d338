"""Retention of plans and change sets: a daily beat task.

A plan or set that can no longer be applied keeps its reviewed summary (``changes``) but not the
sealed body that carried its secrets (``common.FORGOTTEN``); the services forget it at apply, cancel
and expiry, and this task catches what expired unseen. Plans and sets closed for longer than
CHANGES_RETENTION_DAYS are deleted (their audit records stay).
"""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from changes.models import ChangePlan, ChangeSet, ChangeSetItem, ChangeSetStatus, PlanStatus
from changes.services.common import FORGOTTEN


@shared_task(name="changes.purge")
def purge_changes() -> dict[str, int]:
    now = timezone.now()
    expired_plans = ChangePlan.objects.filter(status=PlanStatus.OPEN, expires_at__lte=now).update(
        status=PlanStatus.EXPIRED, **FORGOTTEN)
    ChangeSet.objects.filter(status__in=[ChangeSetStatus.OPEN, ChangeSetStatus.FAILED],
                             expires_at__lte=now).update(status=ChangeSetStatus.EXPIRED)
    closed = ~Q(change_set__status=ChangeSetStatus.OPEN)
    forgotten_items = ChangeSetItem.objects.filter(closed).exclude(**FORGOTTEN).update(**FORGOTTEN)
    cutoff = now - timedelta(days=settings.CHANGES_RETENTION_DAYS)
    deleted_plans, _ = ChangePlan.objects.exclude(status=PlanStatus.OPEN).filter(created_at__lt=cutoff).delete()
    old_sets = ChangeSet.objects.exclude(status=ChangeSetStatus.OPEN).filter(created_at__lt=cutoff)
    deleted_sets = old_sets.count()
    old_sets.delete()
    return {"expired_plans": expired_plans, "forgotten_items": forgotten_items, "deleted_plans": deleted_plans,
            "deleted_change_sets": deleted_sets}
