"""camelAI (seed 003): ``PATCH /api/v1/sources/{id}/`` renames a source; answers its ``Connection``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.compat import Codec, ErrorShape, Field, SeedInvalidRequest, SeedRequest, Slot, Spread, Table, parse
from core.serializers import StrictCharField
from datasources.catalogue import get_type, is_fully_configured
from datasources.compat import common
from datasources.models import DataSource

TAG = "compat: camelai"

#: catalogue type key -> camelAI ``type`` (the seed's enum and labels)
TYPES: dict[str, str] = {
    "supabase": "SUPABASE", "postgresql": "POSTGRES", "mysql": "MYSQL", "bigquery": "BIGQUERY",
    "databricks": "DATABRICKS", "file": "FILE", "csv": "FILE", "motherduck": "MOTHERDUCK",
    "clickhouse": "CLICKHOUSE", "mongodb": "MONGODB", "mixpanel": "MIXPANEL", "singlestore": "SINGLESTORE",
    "google_sheets": "GOOGLE_SHEETS", "mssql": "MSSQL", "snowflake": "SNOWFLAKE", "mcp": "MCP",
}
LABELS: dict[str, str] = {
    "SUPABASE": "Supabase", "POSTGRES": "Postgres", "MYSQL": "MySQL", "BIGQUERY": "BigQuery",
    "DATABRICKS": "Databricks", "FILE": "File Upload", "MOTHERDUCK": "MotherDuck", "CLICKHOUSE": "ClickHouse",
    "MONGODB": "MongoDB", "MIXPANEL": "Mixpanel", "SINGLESTORE": "SingleStore", "GOOGLE_SHEETS": "Google Sheets",
    "MSSQL": "SQL Server", "SNOWFLAKE": "Snowflake", "MCP": "MCP",
}
#: camelAI ``type`` -> catalogue keys (FILE covers both file kinds)
CATALOGUE_TYPES: dict[str, tuple[str, ...]] = {
    camel: tuple(key for key, value in TYPES.items() if value == camel) for camel in LABELS
}


def camel_type(type_key: str) -> str:
    """The camelAI name of a catalogue type; 400 when camelAI has none."""
    try:
        return TYPES[type_key]
    except KeyError:
        raise SeedInvalidRequest(
            f"This data source's type '{type_key}' has no camelAI equivalent (camelAI knows "
            f"{', '.join(LABELS)}); update it with PATCH /api/v1/data-sources/{{id}}/ instead.",
            errors={"type": [f"'{type_key}' has no camelAI type."]},
        ) from None


#: camelAI's ``Connection`` over the native data source
TABLE = Table((
    Field("account_name", "name"),
    Field("type", "type", via=Codec(lambda camel: CATALOGUE_TYPES[camel][0], camel_type)),
))
#: DRF's shape: ``detail``, plus the messages of each invalid field under its name
ERRORS = ErrorShape({"detail": Slot.MESSAGE, Spread(Slot.ERRORS): None})


class CamelaiSourcePartialUpdateSerializer(SeedRequest):
    """Partially update a data source connection (unknown fields are refused by name)."""

    account_name = StrictCharField(min_length=1, max_length=255, required=False,
                                   help_text="New display name for the connection")


class CamelaiConnectionSerializer(serializers.Serializer):
    """Serializer for Connection model."""

    id = serializers.IntegerField(read_only=True)
    account_name = serializers.CharField(max_length=255)
    type = serializers.ChoiceField(choices=list(LABELS.items()))
    created_at = serializers.DateTimeField(read_only=True)
    is_fully_configured = serializers.BooleanField(read_only=True)


class CamelaiNotFoundSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Not found error message")


class CamelaiErrorSerializer(serializers.Serializer):
    """DRF-style: ``detail``, plus the messages of each invalid field under its name."""

    detail = serializers.CharField()
    account_name = serializers.ListField(child=serializers.CharField(), required=False)


def represent(ds: DataSource) -> dict[str, Any]:
    secrets = {c.field for c in ds.credentials.all()}
    return {
        "id": ds.pk,
        **TABLE.to_seed(common.native(ds)),
        "created_at": serializers.DateTimeField().to_representation(ds.created_at),
        "is_fully_configured": is_fully_configured(get_type(ds.type), ds.connection, secrets),
    }


def _error(text: str) -> OpenApiResponse:
    return OpenApiResponse(CamelaiErrorSerializer, description=text)


class CamelaiSourceView(common.View):
    tables = (TABLE,)
    errors = ERRORS

    @extend_schema(
        operation_id="compat_camelai_sources_partial_update",
        summary="Partial update data source (camelAI)",
        description="Partially update a data source connection.",
        tags=[TAG],
        parameters=[OpenApiParameter("id", str, OpenApiParameter.PATH)],
        request=CamelaiSourcePartialUpdateSerializer,
        responses={
            200: CamelaiConnectionSerializer,
            400: _error("Invalid body (`account_name` messages), or a type camelAI does not know."),
            401: _error("Missing or invalid API key."),
            403: _error("The key lacks `datasource.write` or its role cannot write."),
            404: OpenApiResponse(CamelaiNotFoundSerializer, description="Not found (also other organizations')."),
            409: _error("Another source of the organization has this name."),
            412: _error("If-Match does not match the current ETag."),
            415: _error("Unsupported Content-Type."),
            429: _error("Too many requests."),
            500: _error("Server error."),
        },
    )
    def patch(self, request: Request, id: str) -> Response:
        ds = common.fetch(request, id)
        camel_type(ds.type)  # a type camelAI cannot name is refused before anything changes
        body = parse(CamelaiSourcePartialUpdateSerializer, request.data)
        result = common.update(request, ds.pk, TABLE.to_native(body))
        ds = common.fetch(request, result.data_source.pk)
        return common.with_etag(Response(represent(ds)), ds)
