"""OpenAPI descriptions for the data-source endpoints (kept out of the views).

The per-type shapes come from the type catalogue: for every type ``<T>`` (``Postgresql``,
``GoogleSheets``...) the ``postprocess_datasource_schema`` hook emits ``<T>Connection``,
``Patched<T>Connection``, ``<T>Credentials``, ``<T>DataSourceRequest`` and ``<T>DataSource``,
and turns ``DataSourceRequest`` and ``DataSource`` into unions discriminated by ``type``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view

from core import openapi as oa
from core.errors import ErrorCode as C
from core.pagination import page_parameters
from datasources import catalogue, connection_strings
from datasources.api import openapi_rules as rules
from datasources.api.openapi_components import ACTOR, static_components
from datasources.api.serializers import (
    AuditEventSerializer,
    DataSourceSerializer,
    HealthSummarySerializer,
    SchemaSummarySerializer,
)
from datasources.shapes import DataSourceWriteSerializer, TenancySettingsSerializer

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

    target_class = "datasources.shapes.DataSourceWriteSerializer"

    def get_name(self, auto_schema: Any, direction: str) -> str:
        return "DataSource"

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return auto_schema._map_serializer(self.target, direction, bypass_extensions=True)


class TagsFieldExtension(OpenApiSerializerFieldExtension):
    """A repeated tag is refused ("Tags must be unique."), wherever tags are written (rivergen too)."""

    target_class = "datasources.shapes.TagsField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if direction == "request" and schema.get("type") == "array":
            schema["uniqueItems"] = True
        return schema


class FlooredIntegerFieldExtension(OpenApiSerializerFieldExtension):
    """0 (off), or from the floor setting's current value (HEALTH_CHECK_MIN_INTERVAL) up to the maximum."""

    target_class = "datasources.shapes.FlooredIntegerField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        spec = self.target.spec
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        # `not` rather than `anyOf` of 0 and the range: a nullable field's null must still pass.
        return {**schema, "not": {"type": "integer", "minimum": 1, "maximum": spec.floor() - 1}}


class DataSourceRepresentationExtension(OpenApiSerializerExtension):
    """Give the representation's method fields their real shapes."""

    target_class = "datasources.api.serializers.DataSourceSerializer"

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        props = schema["properties"]
        summary = auto_schema.resolve_serializer(SchemaSummarySerializer, direction).ref
        props["schema"] = {"allOf": [summary], "readOnly": True}
        health = auto_schema.resolve_serializer(HealthSummarySerializer, direction).ref
        props["health"] = {"allOf": [health], "readOnly": True,
                           "description": "Scheduled health checks' state (`GET .../health/` has the history)."}
        for name in ("created_by", "updated_by"):
            props[name] = nullable_ref("Actor", readOnly=True, description="Null when the actor was deleted.")
        props["last_test"] = nullable_ref("TestResult", readOnly=True, description=LAST_TEST_DESCRIPTION)
        props["credentials_set"]["description"] = "Names of the secrets that are set (never their values)."
        props["status"]["description"] = STATUS_DESCRIPTION
        if "tenancy_settings" in props:
            props["tenancy_settings"] = nullable_ref("TenancySettings", readOnly=True,
                                                     description="Null when the source has no tenancy settings.")
        return schema


LAST_TEST_DESCRIPTION = (
    "The last connection test; null before the first. A connection change saved without a test "
    "(`test_connection=false`) keeps it, so it then describes the configuration before that change (`status` is "
    "`pending` until the next test; `tested_at` is older than `updated_at`)."
)
STATUS_DESCRIPTION = (
    "`pending`: saved without a connection test. `active`: the last test (or tested change) passed. `error`: the "
    "last test or scheduled refresh failed. `credentials_required`: moved to a new destination by a writer who "
    "did not resend the stored secrets (Rivergen's two-step move): those secrets were withheld from the new "
    "destination and cleared; `POST .../test/` and `POST .../sync/` answer 400 `CREDENTIALS_REQUIRED` and "
    "scheduled refreshes skip it until its credentials are updated (tested at the new destination, which makes "
    "it `active` again)."
)


def _request(base_request: dict, key: str, source_type: catalogue.SourceType, *, create: bool) -> dict[str, Any]:
    """``<T>DataSourceRequest`` (create) or ``<T>DataSourceReplaceRequest`` (PUT)."""
    p = component_prefix(key)
    request = copy.deepcopy(base_request)
    discriminator = {"type": "string", "enum": [key], "description": f"`{key}`: {source_type.label}."}
    request["properties"].update(type=discriminator, connection=ref(f"{p}Connection"),
                                 credentials=ref(f"{p}Credentials"))
    request["required"] = sorted(set(request.get("required", [])) | {"type"})
    violations = []
    with_string = key in CONNECTION_STRING_TYPES
    if with_string:
        # At least one of the two (said inside the one `not`, see schema_rules).
        neither = [{"not": {"required": ["connection"]}}, {"not": {"required": ["connection_string"]}}]
        violations.append({"allOf": neither})
    else:
        request["properties"].pop("connection_string", None)
        request["required"] = sorted({*request["required"], "connection"})
    secrets = rules.secrets_description(source_type)
    if create:
        violations += rules.secret_violations(source_type, connection_string=with_string)
        text = f"Writable fields of a {source_type.label} data source."
        if secrets:
            text += f" Secrets it needs in `credentials`: {secrets}" + (
                " (a `connection_string` may carry the password instead)." if with_string else ".")
    else:
        text = (f"PUT body of a {source_type.label} data source: omitted optional fields return to their defaults, "
                "omitted secrets are kept.")
        violations += rules.cleared_violations(source_type)
        if secrets:
            text += (f" The secrets it needs ({secrets}) must be set, in `credentials` or already stored (so "
                     "`null` cannot clear them).")
    if with_string:
        text += " Give `connection`, `connection_string`, or both."
    if violations:
        request["not"] = {"anyOf": violations}
    request["description"] = text
    return request


def catalogue_components(base_repr: dict, base_request: dict) -> dict[str, dict[str, Any]]:
    """Per-type components built from the catalogue and the serializers' common fields."""
    out: dict[str, dict[str, Any]] = {}
    for key, source_type in catalogue.CATALOGUE.items():
        p = component_prefix(key)
        out[f"{p}Connection"] = rules.refine_connection(
            rules.untitled(catalogue.connection_openapi_schema(source_type)), source_type, partial=False)
        out[f"Patched{p}Connection"] = rules.refine_connection(
            rules.untitled(catalogue.connection_openapi_schema(source_type, partial=True)), source_type, partial=True)
        out[f"{p}Credentials"] = rules.refine_credentials(
            rules.pem_patterns(rules.untitled(catalogue.credentials_openapi_schema(source_type))))
        out[f"{p}DataSourceRequest"] = _request(base_request, key, source_type, create=True)
        out[f"{p}DataSourceReplaceRequest"] = _request(base_request, key, source_type, create=False)

        representation = copy.deepcopy(base_repr)
        representation["properties"].update(
            type={"type": "string", "enum": [key], "description": f"`{key}`: {source_type.label}.", "readOnly": True},
            connection=ref(f"{p}Connection"))
        representation["description"] = f"A {source_type.label} data source. Secrets never appear."
        out[f"{p}DataSource"] = representation
    out.update(share_nested_objects(out))
    return out


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def share_nested_objects(out: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A nested connection object that several types share word for word (``ssh_tunnel``, ``ssl``) is
    one component they ``$ref`` (``SshTunnel``, ``PatchedSshTunnel``...) instead of a copy in each type's
    ``<T>Connection`` and ``Patched<T>Connection``. Named after the property, or after the family when
    the types of a property differ."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for key in catalogue.CATALOGUE:
        for patched in ("", "Patched"):
            for prop, sub in out[f"{patched}{component_prefix(key)}Connection"]["properties"].items():
                if sub.get("type") == "object" and "properties" in sub:
                    body = json.dumps({k: v for k, v in sub.items() if k != "nullable"}, sort_keys=True)
                    groups.setdefault((patched, prop, body), []).append(key)
    shared: dict[str, dict[str, Any]] = {}
    for (patched, prop, body), keys in groups.items():
        if len(keys) < 2:
            continue
        variants = [g for g, members in groups.items() if g[:2] == (patched, prop) and len(members) > 1]
        families = {catalogue.CATALOGUE[k].family for k in keys}
        prefix = "" if len(variants) == 1 else component_prefix(
            families.pop() if len(families) == 1 else keys[0])
        name = f"{patched}{prefix}{_camel(prop)}"
        assert name not in shared and name not in out, name
        shared[name] = json.loads(body)
        for key in keys:
            props = out[f"{patched}{component_prefix(key)}Connection"]["properties"]
            props[prop] = nullable_ref(name) if props[prop].get("nullable") else ref(name)
    return shared


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
    no_value = "Only for level TABLE: null (or left out) with level DATABASE."
    others = {k: ({"type": "string", "nullable": True, "enum": [None], "description": no_value} if "enum" in v
                  or "oneOf" in v else
                  {"type": "string", "nullable": True, "maxLength": 0,
                   "description": 'Only for level TABLE: null, "" or left out with level DATABASE.'})
              for k, v in base.get("properties", {}).items() if k != "level"}
    database = {
        "type": "object", "additionalProperties": False,
        "description": "Tenants are whole databases: the table fields take no value (a value is a 400 naming it; "
                       "stored empty).",
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


PATCH_CONNECTION_TEXT = ("Merged into the stored connection (RFC 7396): nested objects merge, `null` clears a field "
                         "or resets it to its default. Fields are those of the type.")
PATCH_CREDENTIALS_TEXT = ("Secrets of the type: a value replaces, `null` clears, omitted is kept; `\"\"` is an empty "
                          "password where the type's secret has `allow_empty` (refused elsewhere).")


def _free_form(one_of: list[dict[str, str]], description: str, **extra: Any) -> dict[str, Any]:
    """An object that is one of ``one_of`` (said inside ``not: {not: ...}``).

    The PATCH body that names no ``type`` cannot tell a client which type its ``connection`` is of:
    a plain ``anyOf`` of the per-type shapes made openapi-python-client decode any connection as the
    first one (Athena's, which dropped every other field and sent ``{}``). Code generators ignore
    ``not``, so they see a free-form object (kept as is), while validators still check the shapes.
    """
    return {"type": "object", "additionalProperties": {}, "not": {"not": {"anyOf": one_of}}, **extra,
            "description": description}


def patch_components(generic: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The PATCH body: ``PatchedDataSourceRequest``, a union of one member per type (``type`` required,
    the type's own connection and secrets) and ``PatchedUntypedDataSourceRequest`` (no ``type``).

    The members exclude each other (``type``: one value each, or absent), so a client decodes a body to
    the right one. PATCH shapes carry no ``default``: a generated model would send it, overwriting the
    stored value the caller never set.
    """
    out: dict[str, dict[str, Any]] = {}
    base = copy.deepcopy(generic)
    base["properties"].pop("type", None)
    base.pop("required", None)
    for key, source_type in catalogue.CATALOGUE.items():
        p = component_prefix(key)
        member = copy.deepcopy(base)
        member["properties"] = {
            "type": {"type": "string", "enum": [key], "description": f"`{key}`: {source_type.label}; it must be "
                                                                      "the data source's current type."},
            **member["properties"],
            "connection": ref(f"Patched{p}Connection"),
            "credentials": ref(f"{p}Credentials"),
        }
        if key not in CONNECTION_STRING_TYPES:
            member["properties"].pop("connection_string", None)
        member["required"] = ["type"]
        member["description"] = (f"Partial update of a {source_type.label} data source: only what is sent changes; "
                                 "`connection` is merged into the stored one.")
        out[f"Patched{p}DataSourceRequest"] = member
    untyped = copy.deepcopy(base)
    untyped["properties"]["connection"] = _free_form(_any_of("Connection", "Patched"), PATCH_CONNECTION_TEXT)
    untyped["properties"]["credentials"] = _free_form(_any_of("Credentials"), PATCH_CREDENTIALS_TEXT,
                                                      writeOnly=True)
    untyped["description"] = ("Partial update that does not name the `type`: only what is sent changes. "
                              "`connection` and `credentials` are checked against the data source's type by the "
                              "server; name the `type` to get its shapes.")
    out["PatchedUntypedDataSourceRequest"] = untyped
    names = [*(f"Patched{component_prefix(key)}DataSourceRequest" for key in catalogue.CATALOGUE),
             "PatchedUntypedDataSourceRequest"]
    out["PatchedDataSourceRequest"] = {
        "oneOf": [ref(name) for name in names],
        "description": "Partial update (JSON or JSON Merge Patch): only what is sent changes. Unknown or read-only "
                       "fields are rejected with 400. With `type` (the current one), the body has that type's "
                       "connection and secrets; without it, any type's.",
    }
    return out


def postprocess_datasource_schema(result: dict[str, Any], generator: Any = None, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (after the enum hook): the per-type unions."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    base_repr, base_request = schemas.get("DataSource"), schemas.get("DataSourceRequest")
    if base_repr is None or base_request is None:
        return result  # endpoints filtered out of this schema
    schemas.update(catalogue_components(base_repr, base_request))
    if "TenancySettingsRequest" in schemas and "oneOf" not in schemas["TenancySettingsRequest"]:
        schemas.update(tenancy_request_components(schemas["TenancySettingsRequest"]))
    schemas.update(static_components())
    schemas.setdefault("Actor", ACTOR)  # shared with other apps' representations
    schemas["DataSource"] = _union("DataSource", "A data source, shaped by its `type`.")
    schemas["DataSourceRequest"] = _union("DataSourceRequest", "Create body, shaped by `type`.")
    schemas["DataSourceReplaceRequest"] = _union(
        "DataSourceReplaceRequest",
        "Replace (PUT) body, shaped by `type`: every required field must be present, omitted optional fields "
        "return to their defaults, omitted secrets are kept, and `type` must equal the current type.",
    )
    put = result.get("paths", {}).get("/api/v1/data-sources/{id}/", {}).get("put", {})
    for media in put.get("requestBody", {}).get("content", {}).values():
        media["schema"] = ref("DataSourceReplaceRequest")
    patched = schemas.get("PatchedDataSourceRequest")
    if patched is not None:
        schemas.update(patch_components(patched))
    schemas.update(share_common_properties(schemas))
    return result


PER_TYPE_SUFFIXES = ("DataSourceRequest", "DataSourceReplaceRequest", "DataSource")
SHARED_MIN_CHARS = 60


def share_common_properties(schemas: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fields every per-type body and representation repeats (``tags``, ``tenancy_settings``,
    ``connection_pool_size``...) are components they ``$ref`` (``DataSourceTags``...), one per distinct
    shape (request and response shapes differ), instead of a copy in each of the 26 x 4 components."""
    members = [name for key in catalogue.CATALOGUE for name in
               (*(f"{component_prefix(key)}{suffix}" for suffix in PER_TYPE_SUFFIXES),
                f"Patched{component_prefix(key)}DataSourceRequest") if name in schemas]
    groups: dict[tuple[str, str], list[str]] = {}
    for name in members:
        for prop, sub in schemas[name].get("properties", {}).items():
            if prop in ("type", "connection", "credentials") or "$ref" in sub:
                continue
            body = json.dumps(sub, sort_keys=True, default=str)
            if len(body) >= SHARED_MIN_CHARS and "$ref" not in body:
                groups.setdefault((prop, body), []).append(name)
    shared: dict[str, dict[str, Any]] = {}
    for (prop, body), names in sorted(groups.items(), key=lambda g: (g[0][0], -len(g[1]), g[0][1])):
        if len(names) < 2:
            continue
        base = f"DataSource{_camel(prop)}"
        name = base
        while name in shared or name in schemas:
            name = f"{base}{len([n for n in shared if n.startswith(base)]) + 1}"
        shared[name] = json.loads(body)
        for member in names:
            schemas[member]["properties"][prop] = ref(name)
    return shared


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


PAGING = [OpenApiParameter(p["name"], p["schema"], OpenApiParameter.QUERY, description=p["description"])
          for p in page_parameters()]
WORKSPACE = OpenApiParameter("workspace", {"type": "integer", "minimum": 1}, OpenApiParameter.QUERY,
                             description="Workspace id (ASCII digits).")
TAG = OpenApiParameter("tag", {"type": "string", "minLength": 1}, OpenApiParameter.QUERY,
                       description="Only sources with this tag. Like every filter, an empty value is refused (400).")


def _version_param(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, {"type": "integer", "minimum": 1}, OpenApiParameter.QUERY, description=description)


VERSION = _version_param("version", "Snapshot version; the latest when omitted.")
TYPE_KEY = OpenApiParameter("id", str, OpenApiParameter.PATH, enum=list(catalogue.CATALOGUE),
                            description="Type key.")

#: Every 400 a data-source create answers (``datasources.services``): the body or a parameter
#: (``plan.build_plan``), its tenancy settings (``tenancy``), the connection test (``connection``).
CREATE_400_CODES = (C.INVALID_REQUEST_BODY, C.TENANCY_SETTINGS_INVALID, C.CREDENTIAL_TEST_FAILED,
                    C.CONNECTOR_UNAVAILABLE)
#: ...and an update's (PUT, PATCH, a restore, a plan or change set applied): a move of where stored secrets
#: travel without resending them (``destination``).
UPDATE_400_CODES = (*CREATE_400_CODES, C.CREDENTIALS_REQUIRED)
CREATE_400 = error_response(400, *CREATE_400_CODES, description=(
    "Invalid body or parameter, tenancy settings that break the rules or do not match the cached schema, or the "
    "connection test failed (or no test is available for the type here). Nothing was changed."))
WRITE_400 = error_response(400, *UPDATE_400_CODES, description=(
    "Invalid body or parameter, tenancy settings that break the rules or do not match the cached schema, the "
    "connection test failed (or no test is available for the type here), or the change moves where stored "
    "secrets travel without resending them (`errors` names each). Nothing was changed."))
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

# Fixed, realistic request examples: without them the docs UIs sample the schema, and Swagger UI draws
# a random string for every `pattern` (most strings here), different on every page load.
_PG_CONNECTION = {"host": "db.internal.example.com", "port": 5432, "database": "analytics",
                  "username": "reporting", "ssl": {"mode": "require"}}
CREATE_EXAMPLES = [
    OpenApiExample("PostgreSQL", request_only=True, value={
        "name": "Analytics replica", "type": "postgresql", "description": "Read replica of the analytics database.",
        "connection": _PG_CONNECTION, "credentials": {"password": "correct-horse-battery-staple"},
        "tags": ["analytics", "replica"]}),
    OpenApiExample("SQLite file", request_only=True, value={
        "name": "Shop archive", "type": "sqlite", "connection": {"path": "archive/shop.db", "read_only": True}}),
]
REPLACE_EXAMPLES = [
    OpenApiExample("PostgreSQL", request_only=True, value={
        "name": "Analytics replica", "type": "postgresql", "description": "Read replica of the analytics database.",
        "connection": {**_PG_CONNECTION, "database": "analytics_v2"}, "connection_pool_size": 10}),
]
PATCH_EXAMPLES = [
    OpenApiExample("Operational fields", request_only=True,
                   value={"description": "Nightly copy of the analytics database.", "connection_pool_size": 10}),
    OpenApiExample("One connection field", request_only=True,
                   value={"type": "postgresql", "connection": {"database": "analytics_v2"}}),
]
TENANCY_EXAMPLES = [
    OpenApiExample("Table", request_only=True, value={
        "level": "TABLE", "client_column_type": "NUMBER", "schema": "public", "table": "customers",
        "client_column": "tenant_id", "primary_key_column": "id"}),
    OpenApiExample("Database", request_only=True, value={"level": "DATABASE"}),
]

_DATASOURCE_DOCS = {
    "create": extend_schema(
        tags=TAGS, summary="Create a data source", request=JSON_BODY, examples=CREATE_EXAMPLES,
        description="Validated for its type and tested against the real database before it is saved; "
                    "then its schema is cached.",
        parameters=[DRY_RUN, TEST_CONNECTION, oa.etag_header(201), LOCATION],
        responses={201: OpenApiResponse(DataSourceSerializer, description="Created."), 200: DRY_RUN_200,
                   400: CREATE_400, 409: NAME_409, 415: MEDIA_415},
    ),
    "retrieve": extend_schema(tags=TAGS, summary="Get a data source", parameters=[oa.etag_header(200)],
                              responses={200: REPRESENTATION}),
    "update": extend_schema(
        tags=TAGS, summary="Replace a data source", request=JSON_BODY, examples=REPLACE_EXAMPLES,
        parameters=[oa.if_match_parameter(), DRY_RUN, TEST_CONNECTION, oa.etag_header(200)],
        responses={200: UPDATED, 400: WRITE_400, 409: NAME_409, 412: IF_MATCH_412, 415: MEDIA_415},
    ),
    "partial_update": extend_schema(
        tags=TAGS, summary="Update some fields of a data source", request=PATCH_BODY, examples=PATCH_EXAMPLES,
        description="A connection change is tested before it is applied, then the schema is refreshed.",
        parameters=[oa.if_match_parameter(), DRY_RUN, TEST_CONNECTION, oa.etag_header(200)],
        responses={200: UPDATED, 400: WRITE_400, 409: NAME_409, 412: IF_MATCH_412, 415: MEDIA_415},
    ),
    "destroy": extend_schema(
        tags=TAGS, summary="Delete a data source",
        description="Into the trash (`/api/v1/data-source-trash/`), restorable for DATASOURCE_TRASH_DAYS (default "
                    "30) with its secrets and revisions; `purge=true` (owners and admins) deletes it for good.",
        parameters=[oa.if_match_parameter(),
                    OpenApiParameter("purge", bool, OpenApiParameter.QUERY, default=False,
                                     description="Skip the trash: delete the source and its revisions for good.")],
        responses={204: OpenApiResponse(description="Deleted."), 412: IF_MATCH_412,
                   400: error_response(400, C.INVALID_REQUEST_BODY, description="`purge` is not true or false."),
                   403: error_response(403, C.FORBIDDEN, description="`purge=true` without the owner/admin role."),
                   409: error_response(409, C.CONFLICT, description="Workflows still read this data source.")},
    ),
    "history": extend_schema(
        tags=TAGS, operation_id="api_v1_data_sources_history_list", summary="Audit history of a data source",
        parameters=PAGING, filters=False,
        responses={200: OpenApiResponse(AuditEventSerializer(many=True), description="Newest first."),
                   400: error_response(400, C.INVALID_REQUEST_BODY, description="Invalid `page` or `page_size`."),
                   404: error_response(404, C.NOT_FOUND, description="No such data source, or invalid page.")},
    ),
    "test_connection": extend_schema(
        tags=TAGS, summary="Test the stored connection", request=None,
        description="The result is recorded as `last_test` (and `status`) whether it passes or fails; a failing "
        "test answers 400 `CREDENTIAL_TEST_FAILED` with the failing `stage` and the whole `test`.",
        responses={200: OpenApiResponse(ref("TestResult"), description="The test passed."),
                   400: error_response(400, C.INVALID_REQUEST_BODY, C.CREDENTIAL_TEST_FAILED, C.CONNECTOR_UNAVAILABLE,
                                       C.CREDENTIALS_REQUIRED,
                                       description="A body was sent (this action takes none; nothing is tried), the "
                                                   "test failed, or no test is available for this type here, "
                                                   "or the source is `credentials_required` (moved without its "
                                                   "secrets: update its credentials first; nothing is tried).")},
    ),
    "sync": extend_schema(
        tags=TAGS, summary="Refresh the cached schema", request=None, parameters=[oa.etag_header(200)],
        responses={200: REPRESENTATION,
                   400: error_response(400, C.INVALID_REQUEST_BODY, C.CONNECTOR_UNAVAILABLE, C.CREDENTIALS_REQUIRED,
                                       description="A body was sent (this action takes none; nothing is tried), no "
                                                   "connector can introspect this type here, or the source is "
                                                   "`credentials_required` (moved without its secrets: update its "
                                                   "credentials first; nothing is tried)."),
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
        tags=TAGS, operation_id="api_v1_data_sources_schema_versions_list", summary="List the cached schema versions",
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
            methods=[method], tags=TAGS, summary=summary, request=TenancySettingsSerializer, examples=TENANCY_EXAMPLES,
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


def _list_docs() -> Any:
    return extend_schema(
        tags=TAGS, summary="List data sources", parameters=[WORKSPACE, TAG],
        responses={200: OpenApiResponse(DataSourceSerializer(many=True), description="A page of data sources."),
                   400: error_response(400, C.INVALID_REQUEST_BODY,
                                       description="Invalid filter, ordering or paging value (an empty one too)."),
                   404: PAGE_404},
    )


def datasource_viewset(cls: type) -> type:
    return extend_schema_view(list=_list_docs(), **_DATASOURCE_DOCS)(cls)


def types_viewset(cls: type) -> type:
    return extend_schema_view(
        list=extend_schema(tags=TYPE_TAGS, summary="List the source types",
                           operation_id="api_v1_data_source_types_list",
                           responses={200: OpenApiResponse(ref("DataSourceType"), description="Every type.")}),
        retrieve=extend_schema(tags=TYPE_TAGS, summary="Get a source type", parameters=[TYPE_KEY],
                               responses={200: OpenApiResponse(ref("DataSourceType"), description="The type.")}),
    )(cls)
