"""DRF shapes of the data-source write bodies, built from the field specs of ``datasources.fields``.

They translate shape only (the rules are the specs', applied by the services); the API and the
compat adapters both describe their bodies with them.
"""

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
from datasources.catalogue import TYPE_CHOICES

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


class FlooredIntegerField(StrictIntegerField):
    """An integer that is 0 (off) or at least the spec's floor setting (a health-check interval):
    the services refuse the values between; the OpenAPI document says so (``openapi_docs``)."""

    def __init__(self, spec: fields.FieldSpec, **kwargs: Any) -> None:
        self.spec = spec
        super().__init__(**kwargs)


def _integer(spec: fields.FieldSpec, **kwargs: Any) -> StrictIntegerField:
    for bound in ("min_value", "max_value"):
        if getattr(spec, bound) is not None:
            kwargs[bound] = getattr(spec, bound)
    if spec.floor_setting:
        return FlooredIntegerField(spec, **kwargs)
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
        """Every spec's field; for a partial body only those of the keys it holds (the others would be
        skipped: building them was a tenth of a plain PATCH's CPU time). The unknown and read-only
        keys are told apart by name all the same (``StrictSerializer``)."""
        specs = self.specs
        body = getattr(self, "initial_data", None)
        if self.partial and isinstance(body, dict):
            specs = tuple(spec for spec in specs if spec.name in body)
        return {
            spec.name: build_field(spec, required=spec.required and spec.name not in self.optional)
            for spec in specs
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
