"""OpenAPI for Databrain's ``PUT /api/v2/datasource``: one request shape per ``datasourceType``.

The body is a union discriminated by ``datasourceType``: each member carries that type's credential
structure, so a structure of another type is refused by the contract as it is by the server. Each
field also says what the catalogue will check once it is translated (not blank, PEM, patterns), and
the structure's "required when" rules are stated with ``not`` (as in ``datasources.api.openapi_rules``).
"""

from __future__ import annotations

import copy
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.plumbing import ResolvedComponent

from core.compat import SAME, Field, Table, When
from core.openapi import JSON_OBJECT, NOT_BLANK
from datasources import catalogue
from datasources.compat.databrain_types import SPECS, TYPES


def _catalogue_constraints(source_type: catalogue.SourceType, f: Field) -> dict[str, Any]:
    """What the catalogue checks of the value a Databrain field is translated into."""
    kind, _, name = f.target.partition(".")
    if kind == "credentials":
        secret = source_type.secret(name)
        if secret is not None and secret.kind == "pem":
            return {"pattern": catalogue.PEM_MARKER}
        if secret is not None and secret.kind == "json":
            return {"pattern": JSON_OBJECT, "format": "json"}
        if secret is not None and secret.allow_empty:
            return {"pattern": catalogue.empty_or(NOT_BLANK)}
        return {"pattern": NOT_BLANK}
    field = source_type.field(name)
    if field is None or f.via is not SAME or field.kind not in ("string", "text", "pem"):
        return {}
    if field.kind == "pem":
        return {"pattern": catalogue.PEM_MARKER}
    if field.pattern:
        return {"pattern": field.pattern}
    return {"pattern": NOT_BLANK} if field.required else {}


def _property(source_type: catalogue.SourceType, f: Field) -> dict[str, Any]:
    if "|" in f.kind:
        schema: dict[str, Any] = {"type": "string", "enum": f.kind.split("|")}
    elif f.kind == "integer":
        schema = {"type": "integer", "minimum": 1, "maximum": 65535}
    else:
        schema = {"type": f.kind, **(_catalogue_constraints(source_type, f) if f.kind == "string" else {})}
    notes = [f.help] if f.help else []
    if isinstance(f.required, When):
        notes.append(f"Required when {f.required.describe()}.")
    if f.target.startswith("credentials."):
        schema["writeOnly"] = True
        notes.append("Secret: never returned.")
        secret = source_type.secret(f.target.partition(".")[2])
        if secret is not None and secret.allow_empty:
            notes.append('`""` is an empty password (a server user without password).')
    if notes:
        schema["description"] = " ".join(notes)
    return schema


def _holds(when: When) -> dict[str, Any]:
    matches = {"required": [when.field], "properties": {when.field: {"enum": list(when.values)}}}
    return {"not": matches} if when.negate else matches


def _violations(source_type: catalogue.SourceType, spec: Table) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in spec:
        if isinstance(f.required, When):
            given = {"required": [f.name], "properties": {f.name: {"not": {"enum": [None]}}}}
            out.append({"allOf": [_holds(f.required), {"not": given}]})
    names = {f.target: f.name for f in spec}
    if any(check.__name__ == "_disable_auth_only_self_managed" for check in source_type.extra_checks):
        auth, server = names["connection.disable_auth"], names["connection.server_type"]
        out.append({"required": [auth], "properties": {auth: {"enum": [True]},
                                                       server: {"not": {"enum": ["self-managed"]}}}})
    return out


def credentials_schema(type_name: str) -> dict[str, Any]:
    """``credentials`` for one ``datasourceType``: ``name`` plus the type's complete structure."""
    spec, source_type = SPECS[type_name], catalogue.get_type(TYPES[type_name])
    schema: dict[str, Any] = {
        "type": "object",
        "description": f"The complete {type_name} credential structure (partial updates are not supported); "
                       "`name` must equal the existing datasource's name exactly.",
        "properties": {"name": {"type": "string", "minLength": 1},
                       **{f.name: _property(source_type, f) for f in spec}},
        "required": ["name", *[f.name for f in spec if f.required is True]],
        "additionalProperties": False,
    }
    violations = _violations(source_type, spec)
    if violations:
        schema["not"] = {"anyOf": violations, "description": "A field required by another field's value is missing."}
    return schema


def component_name(type_name: str) -> str:
    return f"Databrain{type_name[:1].upper()}{type_name[1:]}UpdateRequest"


class DatabrainUpdateExtension(OpenApiSerializerExtension):
    """``DatabrainDatasourceUpdateRequest``: the union of one component per ``datasourceType``."""

    target_class = "datasources.compat.databrain.DatabrainDatasourceUpdateSerializer"
    priority = 1  # over the SeedRequest extension (unknown keys refused: said on each member)

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        base = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction != "request":
            return base
        mapping = {}
        for type_name in SPECS:
            member = copy.deepcopy(base)
            member["properties"]["datasourceType"] = {
                "type": "string", "enum": [type_name],
                "description": "Must match the existing datasource type (it cannot change)."}
            member["properties"]["credentials"] = credentials_schema(type_name)
            member["additionalProperties"] = False
            member["description"] = f"Update a {type_name} datasource's credentials and, optionally, tenancy settings."
            component = ResolvedComponent(name=component_name(type_name), type=ResolvedComponent.SCHEMA,
                                          object=component_name(type_name), schema=member)
            auto_schema.registry.register_on_missing(component)
            mapping[type_name] = component.ref["$ref"]
        return {"oneOf": [{"$ref": ref} for ref in mapping.values()],
                "discriminator": {"propertyName": "datasourceType", "mapping": mapping},
                "description": base.get("description", "")}
