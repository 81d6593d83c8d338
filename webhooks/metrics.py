"""Webhook metrics: attempts by outcome, their duration, and the delivery lag read at scrape time
(registered in ``WebhooksConfig.ready``).

- ``controlplane_webhook_deliveries_total{outcome}``: delivery attempts, ``succeeded`` or ``failed``
  (refused by the egress policy included).
- ``controlplane_webhook_delivery_duration_seconds{outcome}``: time of one attempt.
- ``controlplane_webhook_delivery_lag_seconds``: age of the oldest due delivery not yet made (or of
  the oldest event not yet fanned out), 0 when none.
"""

from __future__ import annotations

from django.db import DatabaseError
from django.db.models import Min
from django.utils import timezone
from prometheus_client import Counter, Histogram

from core.metrics import NAMESPACE, SLOW_BUCKETS, register_scrape_gauge
from eventlog.models import Event
from webhooks.models import Delivery, DeliveryStatus

DELIVERIES = Counter("webhook_deliveries", "Webhook delivery attempts, by outcome (succeeded, failed).",
                     ["outcome"], namespace=NAMESPACE)
DELIVERY_DURATION = Histogram("webhook_delivery_duration_seconds", "Time one webhook delivery attempt took.",
                              ["outcome"], namespace=NAMESPACE, buckets=SLOW_BUCKETS)


def observe_attempt(succeeded: bool, seconds: float) -> None:
    outcome = "succeeded" if succeeded else "failed"
    DELIVERIES.labels(outcome=outcome).inc()
    DELIVERY_DURATION.labels(outcome=outcome).observe(seconds)


def delivery_lag_seconds() -> float | None:
    """Age of the oldest due, undelivered delivery or undispatched event; ``None`` (no sample) while
    the database cannot be read."""
    now = timezone.now()
    try:
        due = Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now).aggregate(
            oldest=Min("next_attempt_at"))["oldest"]
        undispatched = Event.objects.filter(dispatched_at__isnull=True).aggregate(oldest=Min("occurred_at"))["oldest"]
    except DatabaseError:
        return None
    oldest = min((t for t in (due, undispatched) if t is not None), default=None)
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0


def register() -> None:
    register_scrape_gauge("webhook_delivery_lag_seconds",
                          "Age of the oldest due webhook delivery not made, or event not fanned out (0 when none).",
                          delivery_lag_seconds)
