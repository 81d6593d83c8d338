"""MongoDB fields inferred from sampled documents, read straight from their raw BSON.

A field's type is the BSON types seen (MongoDB's ``$type`` names, by frequency: "int|long" when mixed);
nested documents give dotted paths down to FIELD_DEPTH levels, arrays are "array"; a field is nullable
when missing from a sampled document or null there; at most MAX_COLUMNS fields per collection, in the
order first seen. A malformed document contributes the fields read before the damage.
"""

from __future__ import annotations

import struct
from collections import Counter
from contextlib import suppress

from .base import MAX_COLUMNS, ColumnInfo

FIELD_DEPTH = 4  # nested documents become dotted paths down to a.b.c.d
BSON_TYPES = {1: "double", 2: "string", 3: "object", 4: "array", 5: "binData", 6: "undefined", 7: "objectId",
              8: "bool", 9: "date", 10: "null", 11: "regex", 12: "dbPointer", 13: "javascript", 14: "symbol",
              15: "javascriptWithScope", 16: "int", 17: "timestamp", 18: "long", 19: "decimal", 255: "minKey",
              127: "maxKey"}
FIXED_SIZES = {1: 8, 6: 0, 7: 12, 8: 1, 9: 8, 10: 0, 16: 4, 17: 8, 18: 8, 19: 16, 255: 0, 127: 0}


def _walk(data: bytes, pos: int, end: int, prefix: str, depth: int, out: dict[str, str]) -> None:
    """path -> BSON type of each element of the document body ``data[pos:end]``; stops at anything malformed."""
    while pos < end:
        kind = data[pos]
        name_end = data.index(b"\0", pos + 1, end)
        path = prefix + data[pos + 1 : name_end].decode("utf-8", "replace")
        pos = name_end + 1
        if kind in FIXED_SIZES:
            size = FIXED_SIZES[kind]
        elif kind in (2, 13, 14, 5, 12):
            size = 4 + struct.unpack_from("<i", data, pos)[0] + {5: 1, 12: 12}.get(kind, 0)
        elif kind in (3, 4, 15):
            size = struct.unpack_from("<i", data, pos)[0]
        elif kind == 11:
            size = data.index(b"\0", data.index(b"\0", pos, end) + 1, end) + 1 - pos
        else:
            return
        if size < 0 or pos + size > end:
            return
        out.setdefault(path, BSON_TYPES[kind])
        if kind == 3 and depth < FIELD_DEPTH and size >= 5:
            _walk(data, pos + 4, pos + size - 1, path + ".", depth + 1, out)
        pos += size


def fields(docs: list[bytes]) -> list[ColumnInfo]:
    """Columns of a sample: first-seen order, types by frequency, nullable when missing or null somewhere."""
    kinds: dict[str, Counter[str]] = {}
    for raw in docs:
        found: dict[str, str] = {}
        with suppress(ValueError, IndexError, struct.error):
            _walk(raw, 4, len(raw) - 1, "", 1, found)
        for path, kind in found.items():
            if path in kinds or len(kinds) < MAX_COLUMNS:
                kinds.setdefault(path, Counter())[kind] += 1
    columns = []
    for ordinal, (path, seen) in enumerate(kinds.items(), 1):
        types = [kind for kind, _ in seen.most_common() if kind != "null"] or ["null"]
        columns.append(ColumnInfo(path, "|".join(types), sum(seen.values()) < len(docs) or "null" in seen, ordinal))
    return columns
