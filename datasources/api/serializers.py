"""Request and response shapes for /api/v1/data-sources/. Semantics live in the services."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from datasources.api.representation import data_source_dict, secret_names
from datasources.catalogue import get_type, is_fully_configured
from datasources.models import DataSource, HealthState
from datasources.services import tenancy
from organizations.models import AuditEvent, Organization
from organizations.tracking import actor_of


class SchemaSummarySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["none", "pending", "refreshing", "ready", "failed"])
    version = serializers.IntegerField(allow_null=True)
    refreshed_at = serializers.DateTimeField(allow_null=True)
    status_changed_at = serializers.DateTimeField(allow_null=True)
    table_count = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


class HealthSummarySerializer(serializers.Serializer):
    """The source's health (``GET .../health/`` has the history): kept on the row, no extra query."""

    state = serializers.ChoiceField(choices=HealthState.choices)
    since = serializers.DateTimeField(allow_null=True, help_text="When the state last changed.")
    checked_at = serializers.DateTimeField(allow_null=True, help_text="When a health check last finished.")


class DataSourceSerializer(serializers.ModelSerializer):
    """The representation. Secrets never appear: ``credentials_set`` names the ones that are set."""

    organization: serializers.SlugRelatedField[Organization] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    workspace = serializers.IntegerField(source="workspace_id", allow_null=True, read_only=True)
    connection = serializers.DictField(read_only=True)
    credentials_set = serializers.SerializerMethodField()
    is_fully_configured = serializers.SerializerMethodField()
    last_test = serializers.DictField(allow_null=True, read_only=True)
    schema = serializers.SerializerMethodField()
    health_check_interval = serializers.IntegerField(read_only=True, allow_null=True)  # the rule: the request's
    health = serializers.SerializerMethodField()
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
            "query_timeout", "max_retries", "schema_auto_refresh", "schema_refresh_interval", "health_check_interval",
            "tags", "metadata", "tenancy_settings", "status", "is_fully_configured", "last_test", "schema", "health",
            "version",
            "created_at", "created_by", "updated_at", "updated_by",
        ]
        read_only_fields = fields

    def to_representation(self, instance: DataSource) -> dict[str, Any]:
        return data_source_dict(instance)  # the same dict as the declared fields, built in one pass

    # DRF's field-by-field rendering (``serializers.ModelSerializer.to_representation``) uses these;
    # tests/datasources/test_representation.py holds it equal to ``data_source_dict``.
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

    def get_health(self, obj: DataSource) -> dict[str, Any]:
        return HealthSummarySerializer(
            {"state": obj.health_state, "since": obj.health_since, "checked_at": obj.health_checked_at}).data

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
