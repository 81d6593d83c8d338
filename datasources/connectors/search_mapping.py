"""Elasticsearch and OpenSearch mappings as tables of the schema cache.

A table is an index ("table"), an alias ("view": the union of its indices' fields) or a data stream ("table":
its write index's fields), schema ""; names starting with "." (system, hidden, backing indices) are skipped.
Columns: the mapping's fields as dotted paths with their types (objects flattened; a nested field listed itself,
type "nested", then its fields; multi-fields like ``title.keyword`` and runtime fields included), nullable.
At most MAX_TABLES tables, MAX_COLUMNS columns a table.
"""

from __future__ import annotations

from typing import Any

from .base import MAX_COLUMNS, MAX_TABLES, ColumnInfo, TableInfo

MAX_DEPTH = 32  # object levels followed in a mapping (Elasticsearch's own default limit is 20)


def flatten(properties: Any, prefix: str = "", depth: int = 0, out: list[tuple[str, str]] | None = None,
            ) -> list[tuple[str, str]]:
    """Mapping ``properties`` as (dotted path, type) pairs, at most MAX_COLUMNS."""
    out = [] if out is None else out
    if not isinstance(properties, dict) or depth > MAX_DEPTH:
        return out
    for name, spec in properties.items():
        if len(out) >= MAX_COLUMNS or not isinstance(spec, dict):
            continue
        path, kind, children = f"{prefix}{name}", spec.get("type"), spec.get("properties")
        if isinstance(children, dict) and kind in (None, "object", "nested"):
            if kind == "nested":
                out.append((path, "nested"))
            flatten(children, f"{path}.", depth + 1, out)
        else:
            out.append((path, str(kind or "object")))
        for sub, sub_spec in (spec.get("fields") or {}).items() if isinstance(spec.get("fields"), dict) else ():
            if isinstance(sub_spec, dict):
                out.append((f"{path}.{sub}", str(sub_spec.get("type") or "object")))
    return out[:MAX_COLUMNS]


def _fields(mappings: Any) -> list[tuple[str, str]]:
    if not isinstance(mappings, dict):
        return []
    found = flatten(mappings.get("properties"))
    runtime = mappings.get("runtime")
    for name, spec in runtime.items() if isinstance(runtime, dict) else ():
        if len(found) < MAX_COLUMNS and isinstance(spec, dict):
            found.append((str(name), str(spec.get("type") or "keyword")))
    return found


def build_tables(mapping: dict[str, Any], aliases: dict[str, Any], streams: dict[str, Any]) -> list[TableInfo]:
    """Indices, aliases and data streams (names without a leading ".") with their fields, MAX_TABLES at most."""
    fields = {name: _fields(entry.get("mappings")) for name, entry in mapping.items() if isinstance(entry, dict)}
    kinds: dict[str, tuple[str, list[str]]] = {n: ("table", [n]) for n in fields}
    for stream in streams.get("data_streams") or [] if isinstance(streams, dict) else []:
        if isinstance(stream, dict) and not stream.get("hidden") and not stream.get("system"):
            backing = [str(i.get("index_name")) for i in stream.get("indices") or [] if isinstance(i, dict)]
            kinds[str(stream.get("name"))] = ("table", backing[-1:])  # the write index
    for index, entry in aliases.items() if isinstance(aliases, dict) else ():
        listed = entry.get("aliases") if isinstance(entry, dict) else None
        for alias, info in listed.items() if isinstance(listed, dict) else ():
            if isinstance(info, dict) and info.get("is_hidden"):
                continue
            members = kinds.setdefault(alias, ("view", []))[1]
            members.extend(kinds[index][1] if index in kinds and kinds[index][0] == "table" else [index])
    tables = []
    for name in sorted(n for n in kinds if n and not n.startswith("."))[:MAX_TABLES]:
        kind, members = kinds[name]
        columns: dict[str, str] = {}
        for member in sorted(set(members)) if kind == "view" else members:
            for path, data_type in fields.get(member, []):
                if len(columns) < MAX_COLUMNS:
                    columns.setdefault(path, data_type)
        tables.append(TableInfo("", name, kind, [ColumnInfo(p, t, True, i) for i, (p, t) in
                                                 enumerate(columns.items(), 1)]))
    return tables
