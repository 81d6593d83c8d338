"""RFC 7396 JSON Merge Patch and a dotted-path diff, used for PATCH and for audit records."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

#: An object key written as ``.key`` in a path; any other (a '.', '[', ']' or '"' in it, or empty) is
#: written ``["key"]`` (JSON-quoted), so that ``metadata.x.y`` (nested) and ``metadata["x.y"]`` differ.
_PLAIN_KEY = re.compile(r'[^.\[\]"]+')


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


def member_path(prefix: str, key: str) -> str:
    """``prefix.key``, or ``prefix["key"]`` for a key a dotted path would misread (``_PLAIN_KEY``)."""
    return f"{prefix}.{key}" if _PLAIN_KEY.fullmatch(key) else f"{prefix}[{json.dumps(key, ensure_ascii=False)}]"


def diff_paths(old: Any, new: Any, prefix: str) -> dict[str, dict[str, Any]]:
    """{"prefix.a.b": {"old": x, "new": y}} for every leaf that differs (objects recurse; a key with a
    '.' is written ``prefix["a.b"]``, see ``member_path``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: dict[str, dict[str, Any]] = {}
        for key in sorted(set(old) | set(new)):
            out.update(diff_paths(old.get(key), new.get(key), member_path(prefix, str(key))))
        return out
    if old == new:
        return {}
    return {prefix: {"old": old, "new": new}}
