"""OpenAPI descriptions for the data-source endpoints (kept out of the views).

The per-type shapes come from the type catalogue: for every type ``<T>`` (``Postgresql``,
``GoogleSheets``...) the ``postprocess_datasource_schema`` hook emits ``<T>Connection``,
``Patched<T>Connection``, ``<T>Credentials``, ``<T>DataSourceRequest`` and ``<T>DataSource``,
and turns ``DataSourceRequest`` and ``DataSource`` into unions discriminated by ``type``.
"""

from __future__ import annotations

import copy
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view

from config import openapi as oa
from config.errors import ErrorCode as C
from datasources import catalogue, connection_strings
from datasources.api.serializers import (
    AuditEventSerializer,
    DataSourceSerializer,
    DataSourceWriteSerializer,
    SchemaSummarySerializer,
    TenancySettingsSerializer,
)

ref, nullable_ref, error_response = oa.ref, oa.nullable_ref, oa.error_response
SCHEMAS = oa.SCHEMAS
_obj, _array = oa.object_schema, oa.array_schema
TAGS, TYPE_TAGS = ["data-sources"], ["data-source-types"]
CONNECTION_STRING_TYPES = frozenset(getattr(connection_strings, "SUPPORTED", ()))


def component_prefix(type_key: str) -> str:
    """``google_sheets`` -> ``GoogleSheets``: the stable component-name prefix of a type."""
    return "".join(part[:1].upper() + part[1:] for part in type_key.split("_"))


# --- serializer extensions -----------------------------------------------------------------------


class DataSourceWriteExtension(OpenApiSerializerExtension):
    """Name the write serializer's components ``DataSourceRequest`` / ``PatchedDataSourceRequest``."""

    target_class = "datasources.api.serializers.DataSourceWriteSerializer"

    def get_name(self, auto_schema: Any, direction: str) -> str:
        return "DataSource"

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return auto_schema._map_serializer(self.target, direction, bypass_extensions=True)


class DataSourceRepresentationExtension(OpenApiSerializerExtension):
    """Give the representation's method fields their real shapes."""

    target_class = "datasources.api.serializers.DataSourceSerializer"

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        props = schema["properties"]
        summary = auto_schema.resolve_serializer(SchemaSummarySerializer, direction).ref
        props["schema"] = {"allOf": [summary], "readOnly": True}
        for name in ("created_by", "updated_by"):
            props[name] = nullable_ref("Actor", readOnly=True, description="Null when the actor was deleted.")
        props["last_test"] = nullable_ref("TestResult", readOnly=True,
                                          description="The last connection test; null before the first.")
        props["credentials_set"]["description"] = "Names of the secrets that are set (never their values)."
        if "tenancy_settings" in props:
            props["tenancy_settings"] = nullable_ref("TenancySettings", readOnly=True,
                                                     description="Null when the source has no tenancy settings.")
        return schema


# --- hand-written components ---------------------------------------------------------------------


S, B, I, DT = oa.STRING, oa.BOOLEAN, oa.INTEGER, oa.DATE_TIME  # noqa: E741
NS, NI = {**S, "nullable": True}, {**I, "nullable": True}
ACTOR = {"type": "object", "required": ["kind", "id", "name"], "description": "Who made a change.",
         "properties": {"kind": {"type": "string", "enum": ["user", "token"]}, "id": I, "name": S}}


def static_components() -> dict[str, dict[str, Any]]:
    condition = _obj(path=S, **{"in": _array({}), "not_in": _array({})}, description=S)
    condition["description"] = "Holds when the value at `path` is in `in` (if given) and not in `not_in`."
    return {
        "CatalogueCondition": condition,
        "CatalogueField": _obj(
            name=S, kind={"type": "string", "enum": sorted(catalogue.FIELD_KINDS)}, label=S, required=B,
            required_when=nullable_ref("CatalogueCondition"), default={"nullable": True, "description": "Any."},
            choices=_array(S), min_value=NI, max_value=NI, max_length=NI, pattern=NS, help=S,
            affects_connection=B, fields=_array(ref("CatalogueField")),
        ),
        "CatalogueSecretField": _obj(
            name=S, label=S, kind={"type": "string", "enum": sorted(catalogue.SECRET_KINDS)}, required=B,
            required_when=nullable_ref("CatalogueCondition"), help=S,
        ),
        "CatalogueSecretRule": _obj(names=_array(S), when=nullable_ref("CatalogueCondition"), description=S),
        "DataSourceType": {
            **_obj(key={"type": "string", "enum": list(catalogue.CATALOGUE)}, label=S, family=S, connector=S,
                   driver_extra={**S, "description": "Optional driver its connection test needs; may be blank."},
                   file_based=B, connection_fields=_array(ref("CatalogueField")),
                   secret_fields=_array(ref("CatalogueSecretField")),
                   secret_rules=_array(ref("CatalogueSecretRule"))),
            "description": "A catalogue entry: everything a client needs to build a form for the type.",
        },
        "SchemaColumn": _obj(name=S, type=S, nullable=B, ordinal=I),
        "SchemaTable": _obj(reference_id={**S, "description": "Stable while (schema, name) persists."},
                            schema=S, name=S, kind={**S, "description": "`table` or `view`."},
                            columns=_array(ref("SchemaColumn"))),
        "SchemaSnapshot": _obj(version=I, created_at=DT, table_count=I, tables=_array(ref("SchemaTable"))),
        "SchemaCacheStatus": {"allOf": [ref("SchemaSummary"), _obj(checked_at={**DT, "nullable": True})]},
        "SchemaVersion": _obj(version=I, created_at=DT, table_count=I),
        "SchemaDiff": _obj(from_version=I, to_version=I, tables_added=_array(ref("SchemaTableLabel")),
                           tables_removed=_array(ref("SchemaTableLabel")),
                           tables_changed=_array(ref("SchemaTableChange"))),
        "SchemaTableLabel": _obj(schema=S, name=S, reference_id=S, kind=S),
        "SchemaTableChange": _obj(
            schema=S, name=S, reference_id=S, kind=S, columns_added=_array(S), columns_removed=_array(S),
            columns_changed=_array(_obj(name=S, old=_obj(type=S, nullable=B), new=_obj(type=S, nullable=B))),
        ),
        "TenancySettings": {
            **_obj(level={"type": "string", "enum": ["TABLE", "DATABASE"]},
                   client_column_type={"type": "string", "enum": ["NUMBER", "STRING", ""]},
                   schema=S, table=S, client_column=S, primary_key_column=S),
            "description": "How tenants are isolated. With `DATABASE` the other fields are empty strings.",
        },
        "DataSourceDryRun": {
            **_obj(
                dry_run={"type": "boolean", "enum": [True]},
                changed_fields=_array(S),
                test={**nullable_ref("TestResult"),
                      "description": "Null when nothing connection-related changed or the test was skipped."},
                data_source={"type": "object", "additionalProperties": {},
                             "description": "The representation as it would be after the change (shaped like "
                                            "DataSource; on create, server-assigned fields are null)."},
            ),
            "description": "Answer to `dry_run=true`: validated (and tested), nothing saved.",
        },
    }


def _untitled(schema: Any) -> Any:
    """A copy without ``title`` on object schemas: code generators name a model after its title, so
    ``PostgresqlConnection`` titled "PostgreSQL connection" became a class no ``$ref`` could find.
    The label moves to the description when there is none; nested objects are then named after
    their parent and property (``PostgresqlConnectionSsl``)."""
    if isinstance(schema, list):
        return [_untitled(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _untitled(value) for key, value in schema.items()}
    if out.get("type") == "object" and "title" in out:
        title = out.pop("title")
        out.setdefault("description", title)
    return out


def _pem_patterns(credentials: dict[str, Any]) -> dict[str, Any]:
    """PEM secrets (keys) must hold a ``-----BEGIN`` block, as the PEM connection fields already say."""
    for field in credentials.get("properties", {}).values():
        if field.get("format") == "pem":
            field.setdefault("pattern", "-----BEGIN")
    return credentials


def catalogue_components(base_repr: dict, base_request: dict) -> dict[str, dict[str, Any]]:
    """Per-type components built from the catalogue and the serializers' common fields."""
    out: dict[str, dict[str, Any]] = {}
    for key, source_type in catalogue.CATALOGUE.items():
        p = component_prefix(key)
        connection = _untitled(catalogue.connection_openapi_schema(source_type))
        out[f"{p}Connection"] = connection
        out[f"Patched{p}Connection"] = _untitled(catalogue.connection_openapi_schema(source_type, partial=True))
        out[f"{p}Credentials"] = _pem_patterns(_untitled(catalogue.credentials_openapi_schema(source_type)))
        discriminator = {"type": "string", "enum": [key], "description": f"`{key}`: {source_type.label}."}

        request = copy.deepcopy(base_request)
        request["properties"].update(type=discriminator, connection=ref(f"{p}Connection"),
                                     credentials=ref(f"{p}Credentials"))
        request["required"] = sorted(set(request.get("required", [])) | {"type"})
        if key in CONNECTION_STRING_TYPES:
            # At least one of the two. Said with `not` rather than a top-level `anyOf`, which code
            # generators read as "a union of two anonymous schemas" and so emit no model for the type.
            request["not"] = {"allOf": [{"not": {"required": ["connection"]}},
                                        {"not": {"required": ["connection_string"]}}],
                              "description": "Give `connection`, `connection_string`, or both."}
        else:
            request["properties"].pop("connection_string", None)
            request["required"] = sorted({*request["required"], "connection"})
        request["description"] = f"Writable fields of a {source_type.label} data source."
        out[f"{p}DataSourceRequest"] = request

        representation = copy.deepcopy(base_repr)
        representation["properties"].update(type={**discriminator, "readOnly": True},
                                            connection=ref(f"{p}Connection"))
        representation["description"] = f"A {source_type.label} data source. Secrets never appear."
        out[f"{p}DataSource"] = representation
    return out


TENANCY_TABLE_FIELDS = ("schema", "table", "client_column", "primary_key_column")


def tenancy_request_components(base: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``TenancySettingsRequest`` as a union on ``level``: TABLE needs every field, DATABASE none.

    One flat object could not say "required when level is TABLE", so schema-valid bodies were
    refused (``{"level": "TABLE"}``) and clients could not tell from the contract.
    """
    name = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\S"}
    table = {
        "type": "object", "additionalProperties": False,
        "description": "Tenants are the rows of one table, told apart by a client column: every field is "
                       "required, and the table and columns are checked against the cached schema.",
        "required": ["level", "client_column_type", *TENANCY_TABLE_FIELDS],
        "properties": {"level": {"type": "string", "enum": ["TABLE"]},
                       "client_column_type": {"type": "string", "enum": ["NUMBER", "STRING"]},
                       **{field: dict(name) for field in TENANCY_TABLE_FIELDS}},
    }
    others = {k: copy.deepcopy(v) for k, v in base.get("properties", {}).items() if k != "level"}
    database = {
        "type": "object", "additionalProperties": False,
        "description": "Tenants are whole databases: the other fields are ignored (stored empty).",
        "required": ["level"],
        "properties": {"level": {"type": "string", "enum": ["DATABASE"]}, **others},
    }
    union = {
        "oneOf": [ref("TableTenancySettingsRequest"), ref("DatabaseTenancySettingsRequest")],
        "discriminator": {"propertyName": "level",
                          "mapping": {"TABLE": SCHEMAS + "TableTenancySettingsRequest",
                                      "DATABASE": SCHEMAS + "DatabaseTenancySettingsRequest"}},
        "description": "Databrain's tenancySettings, shaped by `level`.",
    }
    return {"TableTenancySettingsRequest": table, "DatabaseTenancySettingsRequest": database,
            "TenancySettingsRequest": union}


def _union(suffix: str, description: str) -> dict[str, Any]:
    names = {key: f"{component_prefix(key)}{suffix}" for key in catalogue.CATALOGUE}
    return {
        "oneOf": [ref(name) for name in names.values()],
        "discriminator": {"propertyName": "type",
                          "mapping": {key: f"#/components/schemas/{name}" for key, name in names.items()}},
        "description": description,
    }


def _any_of(suffix: str, prefix: str = "") -> list[dict[str, str]]:
    return [ref(f"{prefix}{component_prefix(key)}{suffix}") for key in catalogue.CATALOGUE]


def postprocess_datasource_schema(result: dict[str, Any], generator: Any = None, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (after the enum hook): the per-type unions."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    base_repr, base_request = schemas.get("DataSource"), schemas.get("DataSourceRequest")
    if base_repr is None or base_request is None:
        return result  # endpoints filtered out of this schema
    for name in ("DataSourceRequest", "PatchedDataSourceRequest"):  # before the unions copy them
        tags = schemas.get(name, {}).get("properties", {}).get("tags")
        if isinstance(tags, dict) and tags.get("type") == "array":
            tags["uniqueItems"] = True  # a repeated tag is refused ("Tags must be unique.")
    schemas.update(catalogue_components(base_repr, base_request))
    if "TenancySettingsRequest" in schemas and "oneOf" not in schemas["TenancySettingsRequest"]:
        schemas.update(tenancy_request_components(schemas["TenancySettingsRequest"]))
    schemas.update(static_components())
    schemas.setdefault("Actor", ACTOR)  # shared with other apps' representations
    schemas["DataSource"] = _union("DataSource", "A data source, shaped by its `type`.")
    schemas["DataSourceRequest"] = _union(
        "DataSourceRequest",
        "Create or replace (PUT) body, shaped by `type`. On PUT every required field must be present, "
        "omitted optional fields return to their defaults, omitted secrets are kept, and `type` must "
        "equal the current type (it cannot change).",
    )
    patched = schemas.get("PatchedDataSourceRequest")
    if patched is not None:
        props = patched["properties"]
        props["connection"] = {
            "type": "object", "anyOf": _any_of("Connection", "Patched"),
            "description": "Merged into the stored connection (RFC 7396): nested objects merge, `null` "
                           "clears a field or resets it to its default. Fields are those of the type.",
        }
        props["credentials"] = {
            "type": "object", "writeOnly": True, "anyOf": _any_of("Credentials"),
            "description": "Secrets of the type: a value replaces, `null` clears, omitted is kept.",
        }
        patched["description"] = ("Partial update (JSON or JSON Merge Patch): only what is sent changes. "
                                  "Unknown or read-only fields are rejected with 400.")
    return result


# --- operations ------------------------------------------------------------------------------------

DRY_RUN = OpenApiParameter(
    "dry_run", bool, OpenApiParameter.QUERY, default=False,
    description="Validate and test, save nothing; answers 200 with a DataSourceDryRun.",
)
TEST_CONNECTION = OpenApiParameter(
    "test_connection", bool, OpenApiParameter.QUERY, default=True,
    description="Test a connection change against the real database before applying it. "
                "`false` skips the test (write scope required).",
)
LOCATION = OpenApiParameter("Location", str, OpenApiParameter.HEADER, response=[201],
                            description="URL of the new data source.")


def _ordering(fields: list[str]) -> OpenApiParameter:
    choices = [f"{sign}{field}" for field in fields for sign in ("", "-")]
    return OpenApiParameter("ordering", _array({"type": "string", "enum": choices}), OpenApiParameter.QUERY,
                            style="form", explode=False,
                            description="Comma-separated sort fields; `-` for descending. Default `id`.")


PAGE = OpenApiParameter("page", {"type": "integer", "minimum": 1}, OpenApiParameter.QUERY,
                        description="Page number (default 1).")
PAGE_SIZE = OpenApiParameter("page_size", {"type": "integer", "minimum": 1}, OpenApiParameter.QUERY,
                             description="Results per page (default 50; larger than 200 is capped at 200).")
WORKSPACE = OpenApiParameter("workspace", int, OpenApiParameter.QUERY, description="Workspace id.")


def _version_param(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, {"type": "integer", "minimum": 1}, OpenApiParameter.QUERY, description=description)


VERSION = _version_param("version", "Snapshot version; the latest when omitted.")
TYPE_KEY = OpenApiParameter("id", str, OpenApiParameter.PATH, enum=list(catalogue.CATALOGUE),
                            description="Type key.")

WRITE_400 = error_response(400, C.INVALID_REQUEST_BODY, C.CREDENTIAL_TEST_FAILED, C.CONNECTOR_UNAVAILABLE,
                           description="Invalid body or parameter, or the connection test failed "
                                       "(nothing was changed).")
NAME_409 = error_response(409, C.CONFLICT, description="Another data source of the organization has this name.")
IF_MATCH_412 = error_response(412, C.PRECONDITION_FAILED)
MEDIA_415 = error_response(415, C.UNSUPPORTED_MEDIA_TYPE)
PAGE_404 = error_response(404, C.NOT_FOUND, description="Invalid page.")
REPRESENTATION = OpenApiResponse(DataSourceSerializer, description="The data source.")
UPDATED = OpenApiResponse({"oneOf": [ref("DataSource"), ref("DataSourceDryRun")]},
                          description="The updated data source (a DataSourceDryRun with `dry_run=true`).")
DRY_RUN_200 = OpenApiResponse(ref("DataSourceDryRun"), description="`dry_run=true`: nothing was saved.")
JSON_BODY = {"application/json": DataSourceWriteSerializer}
PATCH_BODY = {"application/json": DataSourceWriteSerializer,
              "application/merge-patch+json": DataSourceWriteSerializer}

_DATASOURCE_DOCS = {
    "create": extend_schema(
        tags=TAGS, summary="Create a data source", request=JSON_BODY,
        description="Validated for its type and tested against the real database before it is saved; "
                    "then its schema is cached.",
        parameters=[DRY_RUN, TEST_CONNECTION, oa.etag_header(201), LOCATION],
        responses={201: OpenApiResponse(DataSourceSerializer, description="Created."), 200: DRY_RUN_200,
                   400: WRITE_400, 409: NAME_409, 415: MEDIA_415},
    ),
    "retrieve": extend_schema(tags=TAGS, summary="Get a data source", parameters=[oa.etag_header(200)],
                              responses={200: REPRESENTATION}),
    "update": extend_schema(
        tags=TAGS, summary="Replace a data source", request=JSON_BODY,
        parameters=[oa.if_match_parameter(), DRY_RUN, TEST_CONNECTION, oa.etag_header(200)],
        responses={200: UPDATED, 400: WRITE_400, 409: NAME_409, 412: IF_MATCH_412, 415: MEDIA_415},
    ),
    "partial_update": extend_schema(
        tags=TAGS, summary="Update some fields of a data source", request=PATCH_BODY,
        description="A connection change is tested before it is applied, then the schema is refreshed.",
        parameters=[oa.if_match_parameter(), DRY_RUN, TEST_CONNECTION, oa.etag_header(200)],
        responses={200: UPDATED, 400: WRITE_400, 409: NAME_409, 412: IF_MATCH_412, 415: MEDIA_415},
    ),
    "destroy": extend_schema(
        tags=TAGS, summary="Delete a data source", parameters=[oa.if_match_parameter()],
        responses={204: OpenApiResponse(description="Deleted."), 412: IF_MATCH_412,
                   409: error_response(409, C.CONFLICT, description="Workflows still read this data source.")},
    ),
    "history": extend_schema(
        tags=TAGS, operation_id="v1_data_sources_history_list", summary="Audit history of a data source",
        parameters=[PAGE, PAGE_SIZE], filters=False,
        responses={200: OpenApiResponse(AuditEventSerializer(many=True), description="Newest first."),
                   404: error_response(404, C.NOT_FOUND, description="No such data source, or invalid page.")},
    ),
    "test_connection": extend_schema(
        tags=TAGS, summary="Test the stored connection", request=None,
        description="The result is recorded as `last_test` (and `status`) whether it passes or fails; a failing "
        "test answers 400 `CREDENTIAL_TEST_FAILED` with the failing `stage` and the whole `test`.",
        responses={200: OpenApiResponse(ref("TestResult"), description="The test passed."),
                   400: error_response(400, C.CREDENTIAL_TEST_FAILED, C.CONNECTOR_UNAVAILABLE,
                                       description="The test failed, or no test is available for this type here.")},
    ),
    "sync": extend_schema(
        tags=TAGS, summary="Refresh the cached schema", request=None, parameters=[oa.etag_header(200)],
        responses={200: REPRESENTATION,
                   400: error_response(400, C.CONNECTOR_UNAVAILABLE,
                                       description="No connector can introspect this type here."),
                   409: error_response(409, C.CONFLICT, description="A refresh of this source is already running."),
                   500: error_response(500, C.SCHEMA_CACHE_FAILED, C.INTERNAL_SERVER_ERROR,
                                       description="The schema could not be cached.")},
    ),
    "schema_snapshot": extend_schema(
        tags=TAGS, summary="Get a cached schema snapshot", parameters=[VERSION],
        responses={200: OpenApiResponse(ref("SchemaSnapshot"), description="Tables and columns."),
                   400: error_response(400, C.INVALID_REQUEST_BODY, description="Invalid `version`."),
                   404: error_response(404, C.NOT_FOUND,
                                       description="No such data source, or no snapshot (with that version).")},
    ),
    "schema_status": extend_schema(
        tags=TAGS, summary="Get the schema cache's state",
        responses={200: OpenApiResponse(ref("SchemaCacheStatus"), description="Status, times and last error.")},
    ),
    "schema_versions": extend_schema(
        tags=TAGS, operation_id="v1_data_sources_schema_versions_list", summary="List the cached schema versions",
        responses={200: OpenApiResponse({"type": "array", "items": ref("SchemaVersion")},
                                        description="Newest first.")},
    ),
    "schema_diff": extend_schema(
        tags=TAGS, summary="Compare two schema versions",
        parameters=[_version_param("from", "Older version; default: the one before `to`."),
                    _version_param("to", "Newer version; default: the latest.")],
        responses={200: OpenApiResponse(ref("SchemaDiff"), description="Tables added, removed and changed."),
                   400: error_response(400, C.INVALID_REQUEST_BODY,
                                       description="Invalid version, or no earlier version to compare with."),
                   404: error_response(404, C.NOT_FOUND, description="No such data source or version.")},
    ),
    "tenancy": [
        extend_schema(methods=["GET"], tags=TAGS, summary="Get the tenancy settings", parameters=[oa.etag_header(200)],
                      responses={200: OpenApiResponse(ref("TenancySettings"), description="The settings."),
                                 404: error_response(404, C.NOT_FOUND,
                                                     description="No such data source, or no tenancy settings.")}),
        *[extend_schema(
            methods=[method], tags=TAGS, summary=summary, request=TenancySettingsSerializer,
            parameters=[oa.if_match_parameter(), oa.etag_header(200)],
            responses={200: OpenApiResponse(ref("TenancySettings"), description="The new settings."),
                       400: error_response(400, C.INVALID_REQUEST_BODY, "TENANCY_SETTINGS_INVALID",
                                           description="Invalid settings, or they do not match the cached schema."),
                       412: IF_MATCH_412, 415: MEDIA_415},
        ) for method, summary in (("PUT", "Replace the tenancy settings"), ("PATCH", "Update tenancy settings"))],
        extend_schema(methods=["DELETE"], tags=TAGS, summary="Remove the tenancy settings",
                      parameters=[oa.if_match_parameter()],
                      responses={204: OpenApiResponse(description="Removed."), 412: IF_MATCH_412,
                                 404: error_response(404, C.NOT_FOUND,
                                                     description="No such data source, or no tenancy settings.")}),
    ],
}


def _list_docs(ordering_fields: list[str]) -> Any:
    return extend_schema(
        tags=TAGS, summary="List data sources", parameters=[_ordering(ordering_fields), PAGE_SIZE, WORKSPACE],
        responses={200: OpenApiResponse(DataSourceSerializer(many=True), description="A page of data sources."),
                   400: error_response(400, C.INVALID_REQUEST_BODY, description="Invalid filter value."),
                   404: PAGE_404},
    )


def datasource_viewset(cls: type) -> type:
    ordering = list(getattr(cls, "ordering_fields", None) or [])
    return extend_schema_view(list=_list_docs(ordering), **_DATASOURCE_DOCS)(cls)


def types_viewset(cls: type) -> type:
    return extend_schema_view(
        list=extend_schema(tags=TYPE_TAGS, summary="List the source types", operation_id="v1_data_source_types_list",
                           responses={200: OpenApiResponse(ref("DataSourceType"), description="Every type.")}),
        retrieve=extend_schema(tags=TYPE_TAGS, summary="Get a source type", parameters=[TYPE_KEY],
                               responses={200: OpenApiResponse(ref("DataSourceType"), description="The type.")}),
    )(cls)
