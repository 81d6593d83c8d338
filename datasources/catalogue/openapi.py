"""OpenAPI 3.0 export of a source type's ``connection`` and ``credentials`` objects."""

from __future__ import annotations

import copy
from typing import Any

from datasources.catalogue.fields import PEM_MARKER, SECRET_MAX_LENGTH, Field, SourceType


def _field_schema(f: Field, partial: bool) -> dict:
    schema: dict[str, Any]
    if f.kind == "object":
        schema = _object_schema(f.fields, partial)
    elif f.kind == "integer":
        schema = {"type": "integer"}
        if f.min_value is not None:
            schema["minimum"] = f.min_value
        if f.max_value is not None:
            schema["maximum"] = f.max_value
    elif f.kind == "boolean":
        schema = {"type": "boolean"}
    elif f.kind == "enum":
        schema = {"type": "string", "enum": list(f.choices)}
    elif f.kind == "string_list":
        schema = {"type": "array", "items": {"type": "string", "maxLength": f.max_length}}
    else:
        schema = {"type": "string", "maxLength": f.max_length}
        if f.kind == "pem":
            schema["pattern"] = PEM_MARKER
        elif f.pattern:
            schema["pattern"] = f.pattern
        if f.required:
            schema["minLength"] = 1
    schema["title"] = f.label
    description = [f.help] if f.help else []
    if f.required_when is not None:
        description.append(f"Required when {f.required_when.describe()}.")
    description.extend(f.rules_text())
    if description:
        schema["description"] = " ".join(description)
    if f.has_default and not f.defaults_when:  # a default that follows other fields is said in words
        schema["default"] = copy.deepcopy(f.default)
    if partial and not f.required:
        schema["nullable"] = True
        if "enum" in schema:
            schema["enum"].append(None)
    return schema


def _object_schema(fields: tuple[Field, ...], partial: bool) -> dict:
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {f.name: _field_schema(f, partial) for f in fields},
    }
    required = [f.name for f in fields if f.required and not f.has_default]
    if required and not partial:
        schema["required"] = required
    return schema


def connection_openapi_schema(source_type: SourceType, *, partial: bool = False) -> dict:
    """OpenAPI 3.0 schema of ``connection`` for the type (``partial``: merge-patch shape)."""
    schema = _object_schema(source_type.fields, partial)
    schema["title"] = f"{source_type.label} connection"
    return schema


#: Matches the empty string only, the same in ECMA-262 and Python (``^$`` also matches "\n" in Python).
EMPTY = r"^(?![\s\S])"


def empty_or(pattern: str) -> str:
    """A pattern that also admits the exact empty string (a secret with ``allow_empty``)."""
    return f"{EMPTY}|{pattern}"


def credentials_openapi_schema(source_type: SourceType) -> dict:
    """OpenAPI 3.0 schema of the write-only ``credentials`` object for the type. A secret that may
    be empty (``allow_empty``) has ``minLength: 0``; the others ``minLength: 1``."""
    properties = {}
    for s in source_type.secrets:
        prop: dict[str, Any] = {"type": "string", "nullable": True, "writeOnly": True,
                                "minLength": 0 if s.allow_empty else 1, "maxLength": SECRET_MAX_LENGTH,
                                "title": s.label, "format": "password" if s.kind in ("password", "token") else s.kind}
        description = [s.help] if s.help else []
        if s.required:
            description.append("Required.")
        elif s.required_when is not None:
            description.append(f"Required when {s.required_when.describe()}.")
        if description:
            prop["description"] = " ".join(description)
        properties[s.name] = prop
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "title": f"{source_type.label} credentials"}
