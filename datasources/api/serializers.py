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
from datasources import fields
from datasources.api.representation import data_source_dict, secret_names
from datasources.catalogue import TYPE_CHOICES, get_type, is_fully_configured
from datasources.models import DataSource
from datasources.services import tenancy
from organizations.models import AuditEvent
from organizations.tracking import actor_of

READ_ONLY = fields.READ_ONLY
MAX_TAGS = fields.TAGS.max_length


def _char(spec: fields.FieldSpec, **kwargs: Any) -> StrictCharField:
    if spec.blank:
        kwargs["allow_blank"] = True
    if not spec.trim:
        kwargs["trim_whitespace"] = False
    for bound in ("min_length", "max_length"):
        if getattr(spec, bound) is not None:
            kwargs[bound] = getattr(spec, bound)
    return StrictCharField(**kwargs)


def _integer(spec: fields.FieldSpec, **kwargs: Any) -> StrictIntegerField:
    for bound in ("min_value", "max_value"):
        if getattr(spec, bound) is not None:
            kwargs[bound] = getattr(spec, bound)
    return StrictIntegerField(**kwargs)


class TagsField(serializers.ListField):
    """Tags (``datasources.fields.TAGS``): unique, each 1 to 64 characters."""

    def __init__(self, **kwargs: Any) -> None:
        assert fields.TAGS.item is not None
        super().__init__(child=_char(fields.TAGS.item), max_length=MAX_TAGS, allow_null=True, **kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        value = super().to_internal_value(data)
        if len(set(value)) != len(value):
            raise serializers.ValidationError(fields.NOT_UNIQUE)
        return value


class SecretValuesField(serializers.DictField):
    """{secret_name: "value" | null}; write-only, never rendered."""

    def __init__(self, **kwargs: Any) -> None:
        assert fields.CREDENTIALS.item is not None
        super().__init__(child=_char(fields.CREDENTIALS.item, allow_null=True), **kwargs)


def build_field(spec: fields.FieldSpec, *, required: bool | None = None) -> serializers.Field:
    """The DRF field of a spec: the same kind, bounds, nullability and help (its default stays the
    services' to apply: a serializer never fills one in)."""
    kwargs: dict[str, Any] = {}
    if not (spec.required if required is None else required):
        kwargs["required"] = False
    if spec.nullable:
        kwargs["allow_null"] = True
    if spec.write_only:
        kwargs["write_only"] = True
    if spec.help:
        kwargs["help_text"] = spec.help
    if spec.kind == "string":
        return _char(spec, **kwargs)
    if spec.kind == "integer":
        return _integer(spec, **kwargs)
    if spec.kind == "boolean":
        return StrictBooleanField(**kwargs)
    if spec.kind == "choice":
        choices = TYPE_CHOICES if spec is fields.TYPE else list(spec.choices)
        return serializers.ChoiceField(choices=choices, **kwargs)
    if spec.kind == "object":
        return JSONObjectField(max_bytes=spec.max_bytes or 16_384, **kwargs)
    if spec is fields.TAGS:
        kwargs.pop("allow_null")
        return TagsField(**kwargs)
    if spec is fields.CREDENTIALS:
        return SecretValuesField(**kwargs)
    if spec is fields.TENANCY_SETTINGS:
        return TenancySettingsSerializer(**kwargs)
    raise AssertionError(f"No DRF field for {spec.name}")


class SpecSerializer(StrictSerializer):
    """A body whose fields are built from ``datasources.fields`` specs (bounds, help, required flags):
    it translates shape; the rules are the specs', applied again by the services."""

    specs: tuple[fields.FieldSpec, ...] = ()
    optional: frozenset[str] = frozenset()

    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            spec.name: build_field(spec, required=spec.required and spec.name not in self.optional)
            for spec in self.specs
        }


class TenancySettingsSerializer(SpecSerializer):
    """Databrain's tenancySettings: TABLE needs every field, DATABASE none."""

    specs = fields.TENANCY_FIELDS


class PatchedTenancySettingsSerializer(TenancySettingsSerializer):
    optional = frozenset({"level"})


class DataSourceWriteSerializer(SpecSerializer):
    """Shape of create, PUT and PATCH bodies. On PATCH every field is optional; ``null``
    resets an operational field to its default and clears an optional one."""

    read_only_names = READ_ONLY
    specs = fields.FIELDS


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
