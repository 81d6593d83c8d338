"""Short stable reference ids (like ``xje9``), unique per model."""

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
