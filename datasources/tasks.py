"""Background schema refreshes: on demand, after connection changes, and on a schedule."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, IntegerField, Q, Value
from django.db.models.functions import Cast
from django.db.models.lookups import GreaterThanOrEqual
from django.utils import timezone

from datasources.models import DataSource, DataSourceStatus, SchemaStatus
from datasources.services import deletion, health, pending, revisions
from datasources.services.connection import STALE_CLAIM, refresh_schema

logger = logging.getLogger(__name__)


def enqueue_refresh(data_source_id: int) -> None:
    """Mark the source `pending` and queue a refresh."""
    DataSource.objects.filter(pk=data_source_id).exclude(schema_status=SchemaStatus.REFRESHING).update(
        schema_status=SchemaStatus.PENDING, schema_status_at=timezone.now()
    )
    refresh_schema_task.delay(data_source_id)


@shared_task(bind=True, name="datasources.refresh_schema", acks_late=True)
def refresh_schema_task(self, data_source_id: int) -> str:
    """Refresh one source; retry with exponential backoff up to its ``max_retries``, then fail."""
    ds = DataSource.objects.filter(pk=data_source_id).first()
    if ds is None:
        return "gone"
    retries = self.request.retries or 0
    last_try = retries >= ds.max_retries
    outcome = refresh_schema(data_source=ds, final=last_try)
    if outcome.busy:
        return "busy"
    if outcome.credentials_required:  # moved without its secrets: nothing to try, nor to retry
        return "credentials_required"
    if outcome.ok:
        DataSource.objects.filter(pk=ds.pk, status=DataSourceStatus.ERROR).update(status=DataSourceStatus.ACTIVE)
        return "ready"
    if not last_try:
        countdown = settings.SCHEMA_REFRESH_RETRY_BASE_SECONDS * (2**retries)
        raise self.retry(countdown=countdown, max_retries=ds.max_retries)
    # Credentials that keep failing: the source is in error until a refresh or test succeeds (unless it
    # was moved without its secrets meanwhile: it keeps saying so).
    DataSource.objects.filter(pk=ds.pk).exclude(status=DataSourceStatus.CREDENTIALS_REQUIRED).update(
        status=DataSourceStatus.ERROR)
    logger.warning("schema refresh of data source %s failed after %s retries", ds.pk, retries)
    return "failed"


def due_data_sources(now=None):
    """Sources with auto-refresh on whose last refresh is at least their interval old (not those
    waiting for their credentials: a refresh would have none to connect with).

    One query, the same on SQLite and PostgreSQL: the age of the last refresh (``now`` minus
    ``schema_checked_at``, a duration) is compared with the interval as a duration. SQLite has no
    interval type: Django computes both in microseconds there, but refuses to multiply a
    ``PositiveIntegerField`` by a duration, hence the cast to a plain integer first.
    """
    now = now or timezone.now()
    interval = ExpressionWrapper(
        Cast("schema_refresh_interval", IntegerField()) * Value(timedelta(seconds=1)), output_field=DurationField()
    )
    age = ExpressionWrapper(Value(now, output_field=DateTimeField()) - F("schema_checked_at"),
                            output_field=DurationField())
    busy = Q(schema_status__in=[SchemaStatus.PENDING, SchemaStatus.REFRESHING]) & Q(
        schema_status_at__gte=now - STALE_CLAIM
    )
    return (
        DataSource.objects.filter(schema_auto_refresh=True)
        .exclude(status=DataSourceStatus.CREDENTIALS_REQUIRED)
        .exclude(busy)
        .alias(age=age, interval=interval)
        .filter(Q(schema_checked_at__isnull=True) | Q(age__gte=F("interval")))
        .values_list("id", flat=True)
    )


@shared_task(name="datasources.schema_refresh_tick")
def schema_refresh_tick() -> int:
    """Celery beat's periodic tick: queue a refresh for every due source (once: marked pending), and
    forget expired pending credentials."""
    now = timezone.now()
    pending.purge_expired(now)
    ids = list(due_data_sources(now))
    if ids:
        DataSource.objects.filter(pk__in=ids).update(schema_status=SchemaStatus.PENDING, schema_status_at=now)
        for data_source_id in ids:
            refresh_schema_task.delay(data_source_id)
    return len(ids)


# --- health checks (datasources.services.health) ----------------------------------------------------


def due_health_checks(now=None):
    """Ids of the sources whose health check is due, in one statement (the same on SQLite and
    PostgreSQL): the effective interval (the source's, else its organization's) is on (> 0), the
    source was never checked or its last check is at least that old, no live claim holds it (a running
    or queued check), and it is not waiting for its credentials.

    A union of the two ways a source gets its interval, so that each side reads only its candidates
    through a partial index (``ds_health_own_due``: an interval of its own; ``ds_health_org_due``:
    none, in an organization whose default is on) instead of every source of every organization."""
    now = now or timezone.now()
    base = DataSource.objects.order_by().exclude(status=DataSourceStatus.CREDENTIALS_REQUIRED).filter(
        health.claimable(now))
    own = base.filter(health_check_interval__gt=0)
    inherited = base.filter(health_check_interval__isnull=True, organization__health_check_interval__gt=0)
    return own.filter(_health_due(now, "health_check_interval")).values_list("id", flat=True).union(
        inherited.filter(_health_due(now, "organization__health_check_interval")).values_list("id", flat=True),
        all=True,  # disjoint sides (an interval of its own or none)
    )


def _health_due(now, interval_field: str) -> Q:
    """Never checked, or the last check is at least ``interval_field`` seconds old (compared as
    durations, as ``due_data_sources`` does: the same on SQLite and PostgreSQL)."""
    interval = ExpressionWrapper(Cast(interval_field, IntegerField()) * Value(timedelta(seconds=1)),
                                 output_field=DurationField())
    age = ExpressionWrapper(Value(now, output_field=DateTimeField()) - F("health_checked_at"),
                            output_field=DurationField())
    return Q(health_checked_at__isnull=True) | Q(GreaterThanOrEqual(age, interval))


@shared_task(name="datasources.health_check", acks_late=True)
def health_check_task(data_source_id: int) -> str:
    """One source's health check (``health.run_health_check``); never retried: the next is scheduled."""
    return health.run_health_check(data_source_id).result


@shared_task(name="datasources.health_check_tick")
def health_check_tick() -> int:
    """Celery beat's periodic tick: queue a check of every due source, marked queued so that the next
    tick does not queue it again (two statements, however many sources are due)."""
    now = timezone.now()
    ids = list(due_health_checks(now))
    if ids:
        health.mark_queued(ids, now)
        for data_source_id in ids:
            health_check_task.delay(data_source_id)
    return len(ids)


@shared_task(name="datasources.purge_revisions_and_trash")
def purge_revisions_and_trash() -> dict[str, int]:
    """Daily: revisions past their organization's retention, and trashed sources past their window."""
    return {"revisions": revisions.prune(), "trashed": deletion.purge_expired()}
