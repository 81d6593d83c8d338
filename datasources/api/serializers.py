"""Request and response shapes for /api/v1/data-sources/. Semantics live in the services."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.serializers import (
    JSONObjectField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from datasources.api.representation import data_source_dict, secret_names
from datasources.catalogue import TYPE_CHOICES, get_type, is_fully_configured
from datasources.models import DataSource
from datasources.services import tenancy
from organizations.models import AuditEvent
from organizations.tracking import actor_of

READ_ONLY = frozenset(
    {
        "id", "reference_id", "organization", "credentials_set", "status", "is_fully_configured",
        "last_test", "schema", "version", "created_at", "created_by", "updated_at", "updated_by",
    }
)
MAX_TAGS = 50


class TagsField(serializers.ListField):
    child = StrictCharField(min_length=1, max_length=64)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=MAX_TAGS, allow_null=True, **kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        value = super().to_internal_value(data)
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Tags must be unique.")
        return value


class SecretValuesField(serializers.DictField):
    """{secret_name: "value" | null}; write-only, never rendered."""

    child = StrictCharField(allow_null=True, trim_whitespace=False, max_length=100_000)


class TenancySettingsSerializer(StrictSerializer):
    """Databrain's tenancySettings: TABLE needs every field, DATABASE none."""

    level = serializers.ChoiceField(choices=["TABLE", "DATABASE"])
    client_column_type = serializers.ChoiceField(choices=["NUMBER", "STRING"], allow_null=True, required=False)
    schema = StrictCharField(max_length=255, allow_blank=True, allow_null=True, required=False)
    table = StrictCharField(max_length=255, allow_blank=True, allow_null=True, required=False)
    client_column = StrictCharField(max_length=255, allow_blank=True, allow_null=True, required=False)
    primary_key_column = StrictCharField(max_length=255, allow_blank=True, allow_null=True, required=False)


class PatchedTenancySettingsSerializer(TenancySettingsSerializer):
    level = serializers.ChoiceField(choices=["TABLE", "DATABASE"], required=False)


class DataSourceWriteSerializer(StrictSerializer):
    """Shape of create, PUT and PATCH bodies. On PATCH every field is optional; ``null``
    resets an operational field to its default and clears an optional one."""

    read_only_names = READ_ONLY

    name = StrictCharField(min_length=1, max_length=255)
    type = serializers.ChoiceField(choices=TYPE_CHOICES, required=False)
    description = StrictCharField(allow_blank=True, allow_null=True, max_length=10_000, required=False)
    workspace = StrictIntegerField(allow_null=True, required=False, min_value=1)
    connection = JSONObjectField(max_bytes=200_000, required=False, allow_null=False)
    credentials = SecretValuesField(required=False, write_only=True)
    connection_pool_size = StrictIntegerField(min_value=1, max_value=100, allow_null=True, required=False)
    connection_timeout = StrictIntegerField(min_value=1, max_value=300, allow_null=True, required=False)
    query_timeout = StrictIntegerField(min_value=1, max_value=86_400, allow_null=True, required=False)
    max_retries = StrictIntegerField(min_value=0, max_value=10, allow_null=True, required=False)
    schema_auto_refresh = StrictBooleanField(allow_null=True, required=False)
    schema_refresh_interval = StrictIntegerField(min_value=60, max_value=2_592_000, allow_null=True, required=False)
    tags = TagsField(required=False)
    metadata = JSONObjectField(max_bytes=16_384, allow_null=True, required=False)
    connection_string = StrictCharField(
        required=False, write_only=True, max_length=4096, trim_whitespace=False,
        help_text="Write-only: parsed into `connection` and `credentials`, never stored or returned.",
    )
    tenancy_settings = TenancySettingsSerializer(required=False, allow_null=True)

    def validate_name(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The name cannot be blank.")
        return value.strip()


class SchemaSummarySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["none", "pending", "refreshing", "ready", "failed"])
    version = serializers.IntegerField(allow_null=True)
    refreshed_at = serializers.DateTimeField(allow_null=True)
    status_changed_at = serializers.DateTimeField(allow_null=True)
    table_count = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


class DataSourceSerializer(serializers.ModelSerializer):
    """The representation. Secrets never appear: ``credentials_set`` names the ones that are set."""

    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    workspace = serializers.IntegerField(source="workspace_id", allow_null=True, read_only=True)
    connection = serializers.DictField(read_only=True)
    credentials_set = serializers.SerializerMethodField()
    is_fully_configured = serializers.SerializerMethodField()
    last_test = serializers.DictField(allow_null=True, read_only=True)
    schema = serializers.SerializerMethodField()
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    metadata = serializers.DictField(read_only=True)
    tenancy_settings = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    updated_by = serializers.SerializerMethodField()

    class Meta:
        model = DataSource
        fields = [
            "id", "reference_id", "organization", "workspace", "name", "type", "description",
            "connection", "credentials_set", "connection_pool_size", "connection_timeout",
            "query_timeout", "max_retries", "schema_auto_refresh", "schema_refresh_interval",
            "tags", "metadata", "tenancy_settings", "status", "is_fully_configured", "last_test", "schema", "version",
            "created_at", "created_by", "updated_at", "updated_by",
        ]
        read_only_fields = fields

    def to_representation(self, instance: DataSource) -> dict[str, Any]:
        return data_source_dict(instance)  # the same dict as the declared fields, built in one pass

    # DRF's field-by-field rendering (``serializers.ModelSerializer.to_representation``) uses these;
    # tests/test_representation.py holds it equal to ``data_source_dict``.
    def get_credentials_set(self, obj: DataSource) -> list[str]:
        return secret_names(obj)

    def get_is_fully_configured(self, obj: DataSource) -> bool:
        return is_fully_configured(get_type(obj.type), obj.connection, set(secret_names(obj)))

    def get_schema(self, obj: DataSource) -> dict[str, Any]:
        return SchemaSummarySerializer(
            {"status": obj.schema_status, "version": obj.schema_version, "refreshed_at": obj.schema_refreshed_at,
             "status_changed_at": obj.schema_status_at, "table_count": obj.schema_table_count,
             "error": obj.schema_error}
        ).data

    def get_tenancy_settings(self, obj: DataSource) -> dict[str, Any] | None:
        return tenancy.current(obj)

    def get_created_by(self, obj: DataSource) -> dict[str, Any] | None:
        return actor_of(obj, "created")

    def get_updated_by(self, obj: DataSource) -> dict[str, Any] | None:
        return actor_of(obj, "updated")


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_repr")

    class Meta:
        model = AuditEvent
        fields = ["id", "action", "actor", "changes", "detail", "request_id", "created_at"]
