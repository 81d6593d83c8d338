"""Databrain (seed 002): ``PUT /api/v2/datasource``, the source named by ``credentials.name``.

The credential structure of the type must be complete (the seed's contract, see ``databrain_types``);
values are then validated, tested, applied and the schema re-cached by the update service.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.compat import ErrorShape, Extra, Field, IfAny, SeedInvalidRequest, SeedRequest, Slot, Table, parse
from core.errors import NotFound
from core.serializers import JSONObjectField, StrictCharField
from datasources import selectors
from datasources.compat import (
    common,
    databrain_openapi,  # noqa: F401 - registers the request schema extension
)
from datasources.compat.databrain_types import SPECS, TYPES, to_native
from datasources.models import DataSource
from datasources.services.connection import SchemaCacheFailed
from organizations.authentication import require_actor

TAG = "compat: databrain"
CODES = (
    "INVALID_REQUEST_BODY", "DATASOURCE_NAME_ERROR", "CREDENTIAL_TEST_FAILED", "AUTHENTICATION_ERROR",
    "FORBIDDEN", "SCHEMA_CACHE_FAILED", "DATASOURCE_NOT_FOUND", "TENANCY_SETTINGS_CREATE_FAILED",
    "TENANCY_SETTINGS_UPDATE_FAILED", "CONFLICT", "PRECONDITION_FAILED", "RATE_LIMITED", "METHOD_NOT_ALLOWED",
    "INTERNAL_SERVER_ERROR",
)
#: ``{"error": {code, message}}``; native codes Databrain lacks become its nearest (others keep their name)
ERRORS = ErrorShape(
    {"error": {"code": Slot.CODE, "message": Slot.MESSAGE, "errors": IfAny(Slot.ERRORS), "stage": Extra("stage")}},
    codes={
        "NOT_FOUND": "DATASOURCE_NOT_FOUND",
        "CONNECTOR_UNAVAILABLE": "CREDENTIAL_TEST_FAILED",
        "CREDENTIALS_REQUIRED": "INVALID_REQUEST_BODY",
        "UNSUPPORTED_MEDIA_TYPE": "INVALID_REQUEST_BODY",
        "NOT_ACCEPTABLE": "INVALID_REQUEST_BODY",
        "TENANCY_SETTINGS_INVALID": "TENANCY_SETTINGS_CREATE_FAILED",  # UPDATE_FAILED over existing settings
    },
)
#: ``tenancySettings`` over the native ``tenancy_settings``
TENANCY = Table(
    (
        Field("tenancyLevel", "tenancy_settings.level"),
        Field("clientColumnType", "tenancy_settings.client_column_type"),
        Field("schemaName", "tenancy_settings.schema"),
        Field("tableName", "tenancy_settings.table"),
        Field("clientColumn", "tenancy_settings.client_column"),
        Field("primaryKeyColumn", "tenancy_settings.primary_key_column"),
    ),
    at="tenancySettings",
    names={"tenancy_settings": "tenancySettings"},
)


class DatasourceNameError(SeedInvalidRequest):
    code = "DATASOURCE_NAME_ERROR"
    status_code = 400


@extend_schema_field({"type": "object", "description": "The credential structure of `datasourceType`."})
class DatabrainCredentialsField(JSONObjectField):
    """The type's credential structure, with ``name`` identifying the source."""


#: the fields that only tenancyLevel TABLE takes
TABLE_ONLY = ("clientColumnType", "schemaName", "tableName", "clientColumn", "primaryKeyColumn")
NOT_WITH_DATABASE = "Only with tenancyLevel TABLE: leave it out (or null) with DATABASE."


class DatabrainTenancySettingsSerializer(SeedRequest):
    """Optional: omitted (or null) keeps the current settings. TABLE needs every other field; DATABASE
    takes none of them (each one sent with a value is refused by name, never dropped)."""

    tenancyLevel = serializers.ChoiceField(choices=[("TABLE", "Table mapping"), ("DATABASE", "Database per client")])
    clientColumnType = serializers.ChoiceField(
        choices=[("NUMBER", "Numeric client id"), ("STRING", "Text client id")], required=False, allow_null=True,
        help_text="Required when tenancyLevel is TABLE.",
    )
    schemaName = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=255,
                                 help_text="Required when tenancyLevel is TABLE.")
    tableName = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=255,
                                help_text="Required when tenancyLevel is TABLE.")
    clientColumn = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=255,
                                   help_text="Required when tenancyLevel is TABLE.")
    primaryKeyColumn = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=255,
                                       help_text="Required when tenancyLevel is TABLE.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """A TABLE field with a value under DATABASE is refused by name: the value would be dropped
        (DATABASE keeps no table fields), and nothing sent is ignored silently. ``null`` and ``""``
        carry no value and pass."""
        if attrs.get("tenancyLevel") == "DATABASE":
            given = [name for name in TABLE_ONLY if attrs.get(name) not in (None, "")]
            if given:
                raise serializers.ValidationError({name: [NOT_WITH_DATABASE] for name in given})
        return attrs


class DatabrainTenancySettingsExtension(OpenApiSerializerExtension):
    """The tenancy settings' request schema says that DATABASE takes no TABLE field with a value."""

    target_class = "datasources.compat.databrain.DatabrainTenancySettingsSerializer"
    priority = 1  # over the SeedRequest extension (unknown keys refused: said here too)

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        if direction == "request":
            schema["not"] = {
                "required": ["tenancyLevel"], "properties": {"tenancyLevel": {"enum": ["DATABASE"]}},
                "anyOf": [{"required": [name], "properties": {name: {"not": {"enum": [None, ""]}}}}
                          for name in TABLE_ONLY],
                "description": "With tenancyLevel DATABASE, the TABLE fields are left out, null or empty.",
            }
        return schema


class DatabrainDatasourceUpdateSerializer(SeedRequest):
    """Update a datasource's credentials (the type's complete structure) and, optionally, tenancy settings."""

    datasourceType = serializers.ChoiceField(
        choices=[(name, name) for name in TYPES],
        error_messages={"invalid_choice": f'Unknown datasourceType "{{input}}": use one of {", ".join(TYPES)}.'},
        help_text="Must match the existing datasource type.",
    )
    credentials = DatabrainCredentialsField(max_bytes=200_000)
    tenancySettings = DatabrainTenancySettingsSerializer(required=False, allow_null=True)


class DatabrainDatasourceSerializer(serializers.Serializer):
    """Success: the datasource's name. Errors answer ``{"error": {"code", "message"}}`` instead."""

    name = serializers.CharField(help_text="The name of the updated datasource (same as credentials.name).")


class DatabrainErrorDetailSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=[(c, c) for c in CODES])
    message = serializers.CharField()
    # A declared field, not Serializer.errors (DRF's metaclass takes fields out of the class body; the stub can't tell).
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()), required=False,
        help_text="Messages per field (`credentials.host`...), when there are any.",
    )
    stage = serializers.CharField(required=False, allow_null=True,
                                  help_text="CREDENTIAL_TEST_FAILED only: the failing stage.")


class DatabrainErrorSerializer(serializers.Serializer):
    """Every Databrain error: ``{"error": {"code": ..., "message": ...}}``."""

    error = DatabrainErrorDetailSerializer()


def _errors() -> dict[int, OpenApiResponse]:
    described = {
        400: "INVALID_REQUEST_BODY (missing required fields, invalid credential structure, unknown "
             "datasourceType), DATASOURCE_NAME_ERROR (the name matches only in another letter case), "
             "CREDENTIAL_TEST_FAILED (connection test failed; nothing was changed), "
             "TENANCY_SETTINGS_CREATE_FAILED / TENANCY_SETTINGS_UPDATE_FAILED (invalid tenancy settings).",
        401: "AUTHENTICATION_ERROR: invalid or missing service token.",
        403: "FORBIDDEN: the token lacks `datasource.write` or the role cannot write.",
        404: "DATASOURCE_NOT_FOUND: no datasource of this name in your organization.",
        409: "CONFLICT: the datasource kept changing during the update.",
        412: "PRECONDITION_FAILED: If-Match does not match the current ETag.",
        415: "INVALID_REQUEST_BODY: the body must be application/json.",
        429: "RATE_LIMITED: too many connection tests.",
        500: "SCHEMA_CACHE_FAILED (the update was applied but the schema could not be cached), "
             "INTERNAL_SERVER_ERROR.",
    }
    return {code: OpenApiResponse(DatabrainErrorSerializer, description=text) for code, text in described.items()}


def _find(request: Request, name: Any) -> DataSource:
    """The organization's datasource with exactly this name."""
    if not isinstance(name, str) or not name.strip():
        raise SeedInvalidRequest("credentials.name is required: the name of the datasource to update.",
                                 errors={"credentials.name": ["This field is required."]})
    actor = require_actor(request)
    same = selectors.data_source_named(actor, name)
    if same is None:
        raise NotFound(f'Datasource "{name}" does not exist in your organization.')
    if same.name != name:
        raise DatasourceNameError(
            f'Datasource not found: no datasource is named exactly "{name}" (names must match as created).',
            errors={"credentials.name": ["Must match the existing datasource name exactly."]},
        )
    return same


class DatabrainDatasourceView(common.View):
    tables: tuple[Table, ...] = (TENANCY,)
    errors = ERRORS

    @extend_schema(
        operation_id="compat_databrain_update_datasource",
        summary="Update Datasource (Databrain)",
        description="Databrain-compatible update of a datasource's credentials (the complete structure of its "
                    "type) and, optionally, its tenancy settings. The new credentials are validated and tested "
                    "before they are applied; then the schema is re-cached. The datasource is the one whose "
                    "name is `credentials.name`.",
        tags=[TAG],
        request=DatabrainDatasourceUpdateSerializer,
        responses={200: DatabrainDatasourceSerializer, **_errors()},
    )
    def put(self, request: Request) -> Response:
        values = parse(DatabrainDatasourceUpdateSerializer, request.data)
        credentials = dict(values["credentials"])
        ds = _find(request, credentials.pop("name", None))
        source_type = values["datasourceType"]
        if TYPES[source_type] != ds.type:
            raise SeedInvalidRequest(
                f"datasourceType must match the existing datasource type ({_seed_type(ds.type)}).",
                errors={"datasourceType": ["Must match the existing datasource type."]},
            )
        self.tables = (TENANCY, SPECS[source_type])
        data = common.keep_ssl_mode(ds, to_native(source_type, credentials))
        if values.get("tenancySettings") is not None:
            data.update(TENANCY.to_native(values["tenancySettings"]))
            if selectors.has_tenancy_settings(ds):
                self.errors = ERRORS.with_codes(TENANCY_SETTINGS_INVALID="TENANCY_SETTINGS_UPDATE_FAILED")
        result = common.update(request, ds.pk, data, tenancy_replace=True, inline_refresh=True)
        if result.schema is not None and not result.schema.ok:
            raise SchemaCacheFailed(
                f"The datasource was updated but its schema could not be cached: {result.schema.error}",
                extra={"schema_version": result.schema.version},
            )
        return common.with_etag(Response({"name": result.data_source.name}), result.data_source)


def _seed_type(type_key: str) -> str:
    return next((name for name, key in TYPES.items() if key == type_key), f"{type_key}, which Databrain lacks")
