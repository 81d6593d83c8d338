"""Saved change plans (one source, applied exactly as reviewed) and change sets (many sources,
tested together, applied all or nothing). Their bodies are stored encrypted, bound to the data
source and to the plan or set (``changes.services.sealing``); no other column holds a secret."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from datasources.models import DataSource
from organizations.models import ApiToken, Organization


class PlanStatus(models.TextChoices):
    OPEN = "open", "Open"
    APPLIED = "applied", "Applied"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


class ChangeSetStatus(models.TextChoices):
    OPEN = "open", "Open (every test passed)"
    FAILED = "failed", "Failed (an item failed; cannot be applied)"
    APPLIED = "applied", "Applied"
    EXPIRED = "expired", "Expired"


class Authored(models.Model):
    """Who made it and who applied it (labels kept when the user or token is gone)."""

    public_id = models.CharField(max_length=40, unique=True, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=255, help_text="The author's label (user or token).")
    created_by_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    created_by_token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    expires_at = models.DateTimeField()
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_by = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        abstract = True


class ChangePlan(Authored):
    """A reviewed PATCH of one data source: its body (sealed), what it changes, its test and impact."""

    data_source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="change_plans")
    status = models.CharField(max_length=16, choices=PlanStatus.choices, default=PlanStatus.OPEN)
    base_version = models.PositiveIntegerField(help_text="The source's version the plan was made against.")
    key_id = models.CharField(max_length=64, editable=False)
    ciphertext = models.TextField(editable=False)
    changed = models.JSONField(default=list, help_text="Changed field paths (secrets by name).")
    changes = models.JSONField(default=dict, help_text="The planned diff; secrets only as changed/cleared.")
    touches_connection = models.BooleanField(default=False)
    restores = models.PositiveIntegerField(null=True, blank=True, help_text=(
        "The revision this plan restores (its body is that revision's configuration and secrets, applied as "
        "a PUT and audited as a restore); null for a PATCH."))
    test = models.JSONField(null=True, blank=True)
    impact = models.JSONField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["data_source", "status", "-created_at"], name="plan_source_status")]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.status})"


class ChangeSet(Authored):
    """Several sources' PATCH bodies tested together; applied in one transaction or not at all."""

    status = models.CharField(max_length=16, choices=ChangeSetStatus.choices, default=ChangeSetStatus.OPEN)
    item_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.status})"


class ChangeSetItem(models.Model):
    change_set = models.ForeignKey(ChangeSet, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    #: the source (null once deleted: the set can no longer be applied); ``source_pk`` keeps its id
    data_source = models.ForeignKey(DataSource, null=True, on_delete=models.SET_NULL, related_name="+")
    source_pk = models.BigIntegerField()
    base_version = models.PositiveIntegerField()
    key_id = models.CharField(max_length=64, editable=False)
    ciphertext = models.TextField(editable=False)
    ok = models.BooleanField(default=False)
    changed = models.JSONField(default=list)
    changes = models.JSONField(default=dict)
    test = models.JSONField(null=True, blank=True)
    impact = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True, help_text="code, message, errors: why the item failed.")

    class Meta:
        ordering = ["change_set", "position"]
        constraints = [models.UniqueConstraint(fields=["change_set", "position"], name="uniq_change_set_position"),
                       models.UniqueConstraint(fields=["change_set", "source_pk"], name="uniq_change_set_source")]
        indexes = [models.Index(fields=["source_pk"], name="change_item_source")]  # forgotten when it is deleted

    def __str__(self) -> str:
        return f"{self.change_set_id}#{self.position}"
