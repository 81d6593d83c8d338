"""Outbox retention: events (and, by cascade, their webhook deliveries) older than
EVENTS_RETENTION_DAYS are deleted by a daily beat task."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from eventlog.models import Event

BATCH = 5000


@shared_task(name="eventlog.purge")
def purge_events() -> int:
    """Delete events past retention in batches (bounded statements and locks)."""
    cutoff = timezone.now() - timedelta(days=settings.EVENTS_RETENTION_DAYS)
    deleted = 0
    while True:
        ids = list(Event.objects.filter(occurred_at__lt=cutoff).order_by("id").values_list("id", flat=True)[:BATCH])
        if not ids:
            return deleted
        Event.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
