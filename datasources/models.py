"""Data sources, their encrypted credentials and their cached schema snapshots."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from core.models import Tracked
from datasources import fields as rules
from organizations.models import ApiToken, Organization, Workspace


class DataSourceStatus(models.TextChoices):
    PENDING = "pending", "Not tested yet"
    ACTIVE = "active", "Active"
    ERROR = "error", "Error"
    #: moved without its stored secrets (withheld from the new destination): its credentials must be
    #: updated (tested at the new destination) before it is tested, refreshed or used again
    CREDENTIALS_REQUIRED = "credentials_required", "Credentials required (moved without its secrets)"


class SchemaStatus(models.TextChoices):
    NONE = "none", "Not cached"
    PENDING = "pending", "Pending"
    REFRESHING = "refreshing", "Refreshing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class HealthState(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    HEALTHY = "healthy", "Healthy"
    FAILING = "failing", "Failing"


class DataSource(Tracked):
    """A connection to a customer's database or files. ``connection`` holds non-secret settings,
    validated against the type catalogue; secrets live in ``Credential`` rows, encrypted.

    Plain fields carry the rules and defaults of ``datasources.fields`` (``full_clean`` checks them);
    the write services apply the same rules to every body before anything is saved."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="data_sources")
    workspace = models.ForeignKey(
        Workspace, null=True, blank=True, on_delete=models.SET_NULL, related_name="data_sources"
    )
    reference_id = models.CharField(max_length=16, unique=True, editable=False)
    name = models.CharField(max_length=rules.NAME.max_length, validators=[rules.validate_name])
    type = models.CharField(max_length=32)
    description = models.TextField(blank=True, default=rules.DESCRIPTION.default,
                                   validators=[rules.validate_description])
    connection = models.JSONField(default=dict, blank=True)

    connection_pool_size = models.PositiveIntegerField(
        default=rules.CONNECTION_POOL_SIZE.default, validators=[rules.RangeOf("connection_pool_size")]
    )
    connection_timeout = models.PositiveIntegerField(
        default=rules.CONNECTION_TIMEOUT.default, validators=[rules.RangeOf("connection_timeout")]
    )
    query_timeout = models.PositiveIntegerField(
        default=rules.QUERY_TIMEOUT.default, validators=[rules.RangeOf("query_timeout")]
    )
    max_retries = models.PositiveIntegerField(
        default=rules.MAX_RETRIES.default, validators=[rules.RangeOf("max_retries")]
    )
    schema_auto_refresh = models.BooleanField(default=rules.SCHEMA_AUTO_REFRESH.default)
    schema_refresh_interval = models.PositiveIntegerField(
        default=rules.SCHEMA_REFRESH_INTERVAL.default, validators=[rules.RangeOf("schema_refresh_interval")]
    )

    health_check_interval = models.PositiveIntegerField(
        null=True, blank=True, default=rules.HEALTH_CHECK_INTERVAL.default,
        validators=[rules.RangeOf("health_check_interval")],
        help_text="Seconds between health checks; empty follows the organization's default, 0 turns them off.",
    )

    tags = models.JSONField(default=list, blank=True, validators=[rules.validate_tags])
    metadata = models.JSONField(default=dict, blank=True, validators=[rules.validate_metadata])

    status = models.CharField(max_length=32, choices=DataSourceStatus.choices, default=DataSourceStatus.PENDING)
    last_test = models.JSONField(null=True, blank=True)
    schema_status = models.CharField(max_length=16, choices=SchemaStatus.choices, default=SchemaStatus.NONE)
    schema_error = models.TextField(blank=True, default="")
    schema_refreshed_at = models.DateTimeField(null=True, blank=True)
    schema_version = models.PositiveIntegerField(null=True, blank=True)
    schema_status_at = models.DateTimeField(null=True, blank=True, help_text="When schema_status last changed.")
    schema_checked_at = models.DateTimeField(null=True, blank=True, help_text="When a refresh last finished.")
    schema_claim = models.CharField(max_length=32, blank=True, default="", editable=False)
    schema_table_count = models.PositiveIntegerField(null=True, blank=True)
    # Health monitoring (datasources.services.health): the state machine and the check's claim.
    health_state = models.CharField(max_length=16, choices=HealthState.choices, default=HealthState.UNKNOWN)
    health_since = models.DateTimeField(null=True, blank=True, help_text="When health_state last changed.")
    health_checked_at = models.DateTimeField(null=True, blank=True, help_text="When a health check last finished.")
    health_failures = models.PositiveIntegerField(default=0, help_text="Consecutive failed health checks.")
    health_claim = models.CharField(max_length=32, blank=True, default="", editable=False)
    health_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint("organization", Lower("name"), name="uniq_datasource_name_per_org"),
        ]
        # Issue 18 (100,000 sources): the list's filters by organization and type/status/health, its
        # pages in id order per organization, and the scheduler ticks' candidates (partial: only the
        # sources a tick can pick). The tag (GIN, jsonb_path_ops) and name-search (pg_trgm on
        # UPPER(name)) indexes are PostgreSQL's own: migration 0008 makes them there only.
        indexes = [models.Index(fields=["organization", "type"]), models.Index(fields=["organization", "status"]),
                   models.Index(fields=["organization", "health_state"], name="ds_org_health_state"),
                   models.Index(fields=["organization", "id"], name="ds_org_id"),
                   models.Index(fields=["schema_checked_at"], name="ds_refresh_due",
                                condition=models.Q(schema_auto_refresh=True)),
                   models.Index(fields=["health_checked_at"], name="ds_health_own_due",
                                condition=models.Q(health_check_interval__gt=0)),
                   models.Index(fields=["organization", "health_checked_at"], name="ds_health_org_due",
                                condition=models.Q(health_check_interval__isnull=True))]

    def __str__(self) -> str:
        return self.name


class HealthOutcome(models.TextChoices):
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"


class HealthCheck(models.Model):
    """One scheduled (or admin-run) health check of a data source; the newest HEALTH_HISTORY_SIZE
    per source are kept. ``message`` is the connector's cleaned text, cut short: never a secret."""

    data_source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="health_checks")
    checked_at = models.DateTimeField()
    outcome = models.CharField(max_length=8, choices=HealthOutcome.choices)
    stage = models.CharField(max_length=32, blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    code = models.CharField(max_length=64, blank=True, default="")
    message = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["data_source", "-checked_at"], name="healthcheck_ds_checked")]

    def __str__(self) -> str:
        return f"{self.data_source_id} {self.outcome} at {self.checked_at:%Y-%m-%d %H:%M:%S}"


class Credential(models.Model):
    """One encrypted secret of a data source (a password, a key, a token...)."""

    data_source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="credentials")
    field = models.CharField(max_length=64)
    key_id = models.CharField(max_length=64)
    ciphertext = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["data_source", "field"], name="uniq_credential_field")]

    def __str__(self) -> str:
        return f"{self.data_source_id}:{self.field}"


class PendingCredentials(models.Model):
    """Credentials a writer sent that the current destination refused (test stage ``auth`` or
    ``database``): kept, encrypted, for that same writer's next move of the source within
    ``expires_at``. Nothing active uses them; see ``datasources.services.pending``.

    ``ciphertext`` holds the whole body (secrets and user name), bound to the data source and to
    the writer (user and token) by the encryption's associated data; ``names`` are names only."""

    data_source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="pending_credentials")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="+")
    token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    names = models.JSONField(default=list, help_text="What was sent, by name only (secrets and `username`).")
    stage = models.CharField(max_length=16, help_text="The stage the current destination refused them at.")
    key_id = models.CharField(max_length=64)
    ciphertext = models.TextField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["data_source", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.data_source_id}: pending {', '.join(self.names)}"


class SchemaSnapshot(models.Model):
    """One version of a data source's introspected schema; a new one only when it changed."""

    data_source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="snapshots")
    version = models.PositiveIntegerField()
    fingerprint = models.CharField(max_length=64)
    table_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["data_source", "version"], name="uniq_snapshot_version")]

    def __str__(self) -> str:
        return f"{self.data_source_id} v{self.version}"


class SchemaTable(models.Model):
    """A table or view in a snapshot; ``reference_id`` persists while (schema, name) does."""

    snapshot = models.ForeignKey(SchemaSnapshot, on_delete=models.CASCADE, related_name="tables")
    reference_id = models.CharField(max_length=16)
    schema = models.CharField(max_length=255, blank=True)
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, default="table")
    columns = models.JSONField(default=list)

    class Meta:
        ordering = ["schema", "name"]
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "schema", "name"], name="uniq_table_in_snapshot"),
        ]
        indexes = [models.Index(fields=["snapshot", "reference_id"])]

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


class TenancyLevel(models.TextChoices):
    TABLE = "TABLE", "Table"
    DATABASE = "DATABASE", "Database"


class ClientColumnType(models.TextChoices):
    NUMBER = "NUMBER", "Number"
    STRING = "STRING", "String"


class TenancySettings(models.Model):
    """How tenants are isolated in a data source (Databrain's tenancySettings)."""

    data_source = models.OneToOneField(DataSource, on_delete=models.CASCADE, related_name="tenancy")
    level = models.CharField(max_length=16, choices=TenancyLevel.choices)
    client_column_type = models.CharField(max_length=16, choices=ClientColumnType.choices, blank=True, default="")
    schema = models.CharField(max_length=255, blank=True, default="")
    table = models.CharField(max_length=255, blank=True, default="")
    client_column = models.CharField(max_length=255, blank=True, default="")
    primary_key_column = models.CharField(max_length=255, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.data_source_id}: {self.level}"


class RevisionAction(models.TextChoices):
    CREATE = "create", "Created"
    UPDATE = "update", "Updated"
    RESTORE = "restore", "Restored a revision"
    UNDELETE = "undelete", "Restored from the trash"


class DataSourceRevision(models.Model):
    """The full configuration and the encrypted secrets of a data source as they were after one applied
    change: restorable (``datasources.services.revisions``).

    ``data_source_id`` is a plain column, not a foreign key: the revisions of a source in the trash stay
    with it and follow it back when it is restored; purging the source deletes them."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    data_source_id = models.BigIntegerField()
    number = models.PositiveIntegerField()
    action = models.CharField(max_length=16, choices=RevisionAction.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    actor_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    actor_token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_repr = models.CharField(max_length=255, blank=True)
    audit_event = models.ForeignKey("organizations.AuditEvent", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    changed = models.JSONField(default=list, help_text="The fields this change set (secrets by name).")
    secrets_changed = models.JSONField(default=list, help_text="Names of the secrets this change set or cleared.")
    config = models.JSONField(help_text="The writable configuration after the change (no secret).")
    secret_names = models.JSONField(default=list)
    key_id = models.CharField(max_length=64, blank=True)
    ciphertext = models.TextField(blank=True, help_text="The secrets after the change, encrypted (JSON).")

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["data_source_id", "number"], name="uniq_revision_number")]
        indexes = [models.Index(fields=["organization", "created_at"], name="revision_org_created")]

    def __str__(self) -> str:
        return f"{self.data_source_id} r{self.number}"


class TrashedDataSource(models.Model):
    """A deleted data source, restorable until ``purge_after`` (DATASOURCE_TRASH_DAYS): its configuration
    and encrypted secrets; restoring re-creates it with the same id and reference id."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    data_source_id = models.BigIntegerField(unique=True)
    reference_id = models.CharField(max_length=16)
    name = models.CharField(max_length=255)
    type = models.CharField(max_length=32)
    config = models.JSONField()
    secret_names = models.JSONField(default=list)
    key_id = models.CharField(max_length=64, blank=True)
    ciphertext = models.TextField(blank=True)
    created_at = models.DateTimeField(help_text="When the data source was created.")
    version = models.PositiveIntegerField(default=0, help_text="Its version when deleted: a restore continues "
                                          "from it, so an ETag or change set from before the deletion is stale.")
    deleted_at = models.DateTimeField()
    deleted_by = models.CharField(max_length=255, blank=True)
    purge_after = models.DateTimeField()

    class Meta:
        ordering = ["-deleted_at"]
        indexes = [models.Index(fields=["purge_after"], name="trash_purge_after")]

    def __str__(self) -> str:
        return f"{self.name} (deleted)"
