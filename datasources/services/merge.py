"""RFC 7396 JSON Merge Patch and a dotted-path diff, used for PATCH and for audit records."""

from __future__ import annotations

import copy
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply ``patch`` to ``target`` per RFC 7396: objects merge, ``null`` removes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def diff_paths(old: Any, new: Any, prefix: str) -> dict[str, dict[str, Any]]:
    """{"prefix.a.b": {"old": x, "new": y}} for every leaf that differs (objects recurse)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: dict[str, dict[str, Any]] = {}
        for key in sorted(set(old) | set(new)):
            out.update(diff_paths(old.get(key), new.get(key), f"{prefix}.{key}"))
        return out
    if old == new:
        return {}
    return {prefix: {"old": old, "new": new}}
