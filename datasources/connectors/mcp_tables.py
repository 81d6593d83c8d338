"""An MCP server's tools and resources as tables of the schema cache.

One table per tool in schema ``tools`` (columns: the input schema's top-level properties with their JSON
types, nullable unless required, at most MAX_COLUMNS), one per resource in schema ``resources`` (named by its
URI; one ``content`` column typed with its MIME type). Names are cut to the schema cache's length.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types

from .base import MAX_COLUMNS, ColumnInfo, TableInfo

NAME_MAX = 255  # the schema cache's name length


def json_type(schema: Any) -> tuple[str, bool]:
    """A property's JSON type for the schema cache (``string``, ``array<integer>``, ``string|number``), and
    whether it admits null."""
    if not isinstance(schema, dict):
        return "any", True
    declared = schema.get("type")
    names = [declared] if isinstance(declared, str) else [n for n in declared if isinstance(n, str)] \
        if isinstance(declared, list) else []
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if not names and isinstance(options, list):
            names = [o["type"] for o in options[:16] if isinstance(o, dict) and isinstance(o.get("type"), str)]
    nullable = "null" in names
    kinds = [n for n in dict.fromkeys(names) if n != "null"]
    if kinds == ["array"] and isinstance(schema.get("items"), dict) and isinstance(schema["items"].get("type"), str):
        return f"array<{schema['items']['type']}>"[:64], nullable
    return ("|".join(kinds) or "any")[:64], nullable


def tool_table(tool: types.Tool) -> TableInfo:
    """A tool as a table of schema ``tools``: its input schema's top-level properties are the columns."""
    schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
    properties = schema.get("properties")
    listed = schema.get("required")
    required = listed if isinstance(listed, list) else []
    columns: list[ColumnInfo] = []
    for name, prop in (properties.items() if isinstance(properties, dict) else []):
        if len(columns) >= MAX_COLUMNS:
            break
        data_type, nullable = json_type(prop)
        columns.append(ColumnInfo(str(name)[:NAME_MAX], data_type, nullable or name not in required, len(columns) + 1))
    return TableInfo(schema="tools", name=tool.name[:NAME_MAX], kind="table", columns=columns)


def resource_table(resource: types.Resource) -> TableInfo:
    """A resource as a table of schema ``resources`` named by its URI: one ``content`` column of its MIME type."""
    mime = (resource.mime_type or "unknown")[:64]
    return TableInfo(schema="resources", name=str(resource.uri)[:NAME_MAX], kind="table",
                     columns=[ColumnInfo("content", mime, False, 1)])
