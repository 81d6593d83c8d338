"""Helpers (not tests) for tests that read the served OpenAPI document."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

METHODS = ("get", "put", "post", "patch", "delete")
_CACHE: dict[str, dict] = {}


def served_doc(client: Any) -> dict:
    """The document /api/schema/ serves (read once per process), as a copy the caller may change."""
    if "doc" not in _CACHE:
        response = client.get("/api/schema/?format=json")
        assert response.status_code == 200
        _CACHE["doc"] = response.json()
    return copy.deepcopy(_CACHE["doc"])


def operations(doc: dict, prefix: str = "") -> Iterator[tuple[str, str, dict]]:
    """(path, method, operation) of every operation whose path starts with ``prefix``."""
    for path, item in doc["paths"].items():
        if path.startswith(prefix):
            for method in METHODS:
                if method in item:
                    yield path, method, item[method]
