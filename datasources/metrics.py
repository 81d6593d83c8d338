"""The data sources' scrape-time metrics, registered with ``core.metrics`` at startup
(``DatasourcesConfig.ready``): core serves them, and knows no model."""

from __future__ import annotations

from django.db import DatabaseError
from django.db.models import Min
from django.utils import timezone

from core.metrics import register_scrape_gauge
from datasources.models import DataSource, SchemaStatus


def oldest_pending_refresh_seconds() -> float | None:
    """The queue's lag as the sources see it: the age of the oldest source queued for a schema
    refresh and not started (whichever process queued it), 0 when none; ``None`` (no sample)
    while the database cannot be read."""
    try:
        oldest = DataSource.objects.filter(schema_status=SchemaStatus.PENDING).aggregate(
            oldest=Min("schema_status_at"))["oldest"]
    except DatabaseError:
        return None
    return max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0


def register() -> None:
    register_scrape_gauge(
        "schema_refresh_oldest_pending_seconds",
        "Age of the oldest data source queued for a schema refresh and not started (0 when none).",
        oldest_pending_refresh_seconds,
    )
