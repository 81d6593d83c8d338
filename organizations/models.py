"""Tenancy and access: organizations, memberships, workspaces, API tokens, audit events."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

#: The longest health-check interval (30 days), as the data sources' own.
MAX_HEALTH_CHECK_INTERVAL = 2_592_000


def validate_health_check_interval(value: Any) -> None:
    """0 (off) or HEALTH_CHECK_MIN_INTERVAL up to 30 days (the data sources' own rule, worded alike)."""
    if value is None:
        return
    floor = int(settings.HEALTH_CHECK_MIN_INTERVAL)
    if value > MAX_HEALTH_CHECK_INTERVAL:
        raise ValidationError(f"Ensure this value is less than or equal to {MAX_HEALTH_CHECK_INTERVAL}.")
    if 0 < value < floor:
        raise ValidationError(f"Ensure this value is 0 (off) or greater than or equal to {floor}.")


class Organization(models.Model):
    """A tenant. Every other object belongs to exactly one."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    health_check_interval = models.PositiveIntegerField(
        null=True, blank=True, validators=[validate_health_check_interval],
        help_text="Seconds between health checks of the data sources that set no interval of their own; "
                  "empty or 0: off.",
    )
    health_failure_threshold = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Consecutive failed health checks that turn a data source 'failing'.",
    )
    revisions_keep = models.PositiveIntegerField(
        default=50, validators=[MinValueValidator(1), MaxValueValidator(10_000)],
        help_text="Revisions kept per data source (the newest); older ones are deleted daily.",
    )
    revisions_keep_days = models.PositiveIntegerField(
        null=True, blank=True, default=90, validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Days a revision is kept (the newest of each source always stays); empty: no age limit.",
    )
    changes_need_second_person = models.BooleanField(
        default=False,
        help_text="A saved plan to change a connection must be applied by an owner or admin other than its author.",
    )

    class Meta:
        ordering = ["slug"]
        constraints = [
            # Workflow references ("org.name") and file folders name an organization by its slug, compared
            # case-insensitively: two slugs may not differ only in case.
            models.UniqueConstraint(Lower("slug"), name="uniq_organization_slug_ci",
                                    violation_error_message="An organization with this slug (ignoring case) "
                                                            "already exists."),
        ]

    def __str__(self) -> str:
        return self.slug


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


WRITE_ROLES = {Role.OWNER, Role.ADMIN, Role.EDITOR}
ADMIN_ROLES = {Role.OWNER, Role.ADMIN}


class Membership(models.Model):
    """A user's role in an organization."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class Workspace(models.Model):
    """An optional grouping of data sources inside an organization."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="workspaces")
    name = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint("organization", Lower("name"), name="uniq_workspace_name_per_org")]

    def __str__(self) -> str:
        return self.name


class Scope(models.TextChoices):
    DATASOURCE_READ = "datasource.read"
    DATASOURCE_WRITE = "datasource.write"
    WORKFLOW_READ = "workflow.read"
    WORKFLOW_WRITE = "workflow.write"
    ORGANIZATION_ADMIN = "organization.admin"


ALL_SCOPES = [s.value for s in Scope]
TOKEN_PREFIX = "dsp_"  # noqa: S105 (a public prefix, not a secret)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def active(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A bearer token of an organization; only its SHA-256 is stored, the token is shown once."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="tokens")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text="When set, the token acts for this user and is limited by the user's role.",
    )
    name = models.CharField(max_length=255)
    prefix = models.CharField(max_length=16, editable=False, help_text="First characters, to recognise it.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    def set_token(self, raw: str) -> None:
        self.token_hash = hash_token(raw)
        self.prefix = raw[:10]

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()


class AuditEvent(models.Model):
    """Who changed what, when: old/new values for plain fields, "changed" for secrets."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="audit_events")
    target_type = models.CharField(max_length=64)
    target_id = models.BigIntegerField()
    target_repr = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=32)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_repr = models.CharField(max_length=255, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id} by {self.actor_repr}"
