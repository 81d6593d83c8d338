"""Webhook subscriptions, their deliveries (one per event and webhook) and each delivery attempt."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from core.models import Tracked
from eventlog.models import Event
from organizations.models import Organization


class Webhook(Tracked):
    """An organization's subscription: ``url`` receives the ``events`` types, signed with a secret
    stored encrypted (``secret_key_id``/``secret_ciphertext``, bound to this row) and never shown
    again after the response that created or rotated it.

    ``active_since``: events that occurred before it (before creation, or while the webhook was
    inactive) are not delivered to it."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=2048)
    description = models.CharField(max_length=255, blank=True, default="")
    events = models.JSONField(default=list, help_text="Event type keys (events.catalogue).")
    active = models.BooleanField(default=True)
    active_since = models.DateTimeField(null=True, blank=True)
    secret_key_id = models.CharField(max_length=64, editable=False)
    secret_ciphertext = models.TextField(editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["organization", "active"], name="webhook_org_active")]

    def __str__(self) -> str:
        return f"webhook {self.pk} ({self.organization_id})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERING = "delivering"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # given up (attempts exhausted, or the webhook was disabled)


class Delivery(models.Model):
    """One event to one webhook. ``claimed_until``: the worker sending it now holds it until then
    (a claim older than that is stale: its worker died and the sweep takes it over).
    ``attempts_allowed``: attempts in all before giving up (a redelivery allows one more)."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    attempts_allowed = models.PositiveIntegerField(default=1)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["webhook", "event"], name="uniq_delivery_webhook_event")]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="delivery_due"),
            models.Index(fields=["claimed_until"], condition=Q(status="delivering"), name="delivery_claimed"),
            models.Index(fields=["webhook", "-id"], name="delivery_webhook_newest"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} of event {self.event_id} to webhook {self.webhook_id}"


class AttemptOutcome(models.TextChoices):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"  # the egress policy refused the destination: nothing was sent


class DeliveryAttempt(models.Model):
    """One POST (or refusal). ``error`` never holds the secret nor the URL's user info or query."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.FloatField(default=0.0)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices)
    error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="uniq_attempt_number")]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"
