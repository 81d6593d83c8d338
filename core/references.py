"""Short stable reference ids (like ``xje9``), unique per model, and how references compare names."""

import re
import secrets

ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o, 1/l


def new_reference_id(model, length: int = 4, field: str = "reference_id") -> str:
    """Random id; grows by one character after repeated collisions."""
    for attempt in range(20):
        size = length + attempt // 5
        candidate = "".join(secrets.choice(ALPHABET) for _ in range(size))
        if not model._default_manager.filter(**{field: candidate}).exists():
            return candidate
    raise RuntimeError("could not allocate a reference id")


def escape_name(name: str) -> str:
    """The seed's escaping: non-word characters become ``_``, runs of ``_`` collapse."""
    return re.sub(r"_+", "_", re.sub(r"[^\w]", "_", name))


def name_key(name: str) -> str:
    """What references compare names by: escaped and case-folded (``Demo SQLite``, ``demo-sqlite``
    and ``DEMO__SQLITE`` are one name). Names unique by this key per organization keep short
    references (``org.name``) unambiguous."""
    return escape_name(name).casefold()
