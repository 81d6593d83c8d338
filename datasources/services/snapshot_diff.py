"""Differences between two schema snapshots: tables and columns added, removed, changed."""

from __future__ import annotations

from typing import Any

from datasources.models import SchemaSnapshot


def _tables(snapshot: SchemaSnapshot) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (t.schema, t.name): {"reference_id": t.reference_id, "kind": t.kind, "columns": t.columns}
        for t in snapshot.tables.all()
    }


def _label(key: tuple[str, str], info: dict[str, Any]) -> dict[str, Any]:
    return {"schema": key[0], "name": key[1], "reference_id": info["reference_id"], "kind": info["kind"]}


def _order(columns: list[dict[str, Any]], kept: Any) -> list[str]:
    """The names in ``kept`` (the columns both sides have), in ``columns``' order."""
    ranked = sorted(enumerate(columns), key=lambda item: (item[1].get("ordinal", item[0]), item[0]))
    return [c["name"] for _, c in ranked if c["name"] in kept]


def diff_snapshots(old: SchemaSnapshot, new: SchemaSnapshot) -> dict[str, Any]:
    """Compare by (schema, name); a column is compared on type and nullability; a changed table says
    its kind before (``old_kind``: a table that became a view) and whether the columns both sides have
    changed order (``columns_reordered``)."""
    before, after = _tables(old), _tables(new)
    changed = []
    for key in sorted(before.keys() & after.keys()):
        a = {c["name"]: c for c in before[key]["columns"]}
        b = {c["name"]: c for c in after[key]["columns"]}
        column_changes = [
            {
                "name": name,
                "old": {"type": a[name]["type"], "nullable": a[name]["nullable"]},
                "new": {"type": b[name]["type"], "nullable": b[name]["nullable"]},
            }
            for name in sorted(a.keys() & b.keys())
            if (a[name]["type"], a[name]["nullable"]) != (b[name]["type"], b[name]["nullable"])
        ]
        kind_changed = before[key]["kind"] != after[key]["kind"]
        reordered = _order(before[key]["columns"], b.keys()) != _order(after[key]["columns"], a.keys())
        if column_changes or a.keys() != b.keys() or kind_changed or reordered:
            changed.append(
                {
                    **_label(key, after[key]),
                    "old_kind": before[key]["kind"],
                    "columns_added": sorted(b.keys() - a.keys()),
                    "columns_removed": sorted(a.keys() - b.keys()),
                    "columns_changed": column_changes,
                    "columns_reordered": reordered,
                }
            )
    return {
        "from_version": old.version,
        "to_version": new.version,
        "tables_added": [_label(k, after[k]) for k in sorted(after.keys() - before.keys())],
        "tables_removed": [_label(k, before[k]) for k in sorted(before.keys() - after.keys())],
        "tables_changed": changed,
    }
