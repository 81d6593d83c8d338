"""The outbox: events written in the transaction of the change that caused them."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from organizations.models import Organization


class Event(models.Model):
    """One event. ``public_id`` is the Standard Webhooks ``webhook-id`` (the same on every retry);
    ``dispatched_at`` is set once the event has been fanned out to the subscriptions of its
    organization (until then a sweep finds it: no event is lost when a process dies after commit)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="events")
    public_id = models.CharField(max_length=40, unique=True, editable=False)
    type = models.CharField(max_length=64)
    data = models.JSONField(default=dict)
    occurred_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["id"], condition=Q(dispatched_at__isnull=True), name="event_undispatched"),
            models.Index(fields=["organization", "type", "-id"], name="event_org_type"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"
