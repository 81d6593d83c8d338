"""The source-type catalogue: what each type's ``connection`` and ``credentials`` may hold.

The engine and the data are separate modules, and imports only go down:

- ``checks``: named value checks for the forms a pattern cannot say (``Field.checks``);
- ``fields``: the vocabulary (``Field``, ``SecretField``, ``OneOfSecrets``, ``Condition``, ``Check``,
  ``SourceType``, ``ConfigInvalid`` and the transit/hop constants);
- ``validation``: ``normalize_connection``, the secret checks; ``openapi``: the OpenAPI export;
- ``types_common``: building blocks shared by several types (host, port, SSL, SSH tunnel...);
  ``types_sql`` and ``types_cloud``: the per-type declarations;
- this module: ``CATALOGUE`` built from the declarations, ``get_type``, and the public names of
  the engine re-exported, so callers write ``from datasources import catalogue``.

Pure Python (no Django imports). A new type is a ``SourceType`` in ``types_sql`` or ``types_cloud``
(in the tuple for its place in the list clients see).
"""

from __future__ import annotations

import copy

from datasources.catalogue.fields import (
    BLANK,
    DATABASE_HOP,
    DEFAULT_MAX_LENGTH,
    ENDPOINT,
    FIELD_KINDS,
    PEM_MARKER,
    PROTECTION,
    REQUIRED,
    SECRET_KINDS,
    SECRET_MAX_LENGTH,
    SSH_HOP,
    TRANSITS,
    TUNNEL_FIELD,
    UNKNOWN,
    WHITESPACE_ONLY,
    Check,
    Condition,
    ConfigInvalid,
    ExtraCheck,
    Field,
    OneOfSecrets,
    SecretField,
    SourceType,
    _same,
)
from datasources.catalogue.openapi import EMPTY, connection_openapi_schema, credentials_openapi_schema, empty_or
from datasources.catalogue.types_cloud import CLOUD_TYPES, STORAGE_AND_SAAS_TYPES
from datasources.catalogue.types_sql import FILE_TYPES, SQL_TYPES
from datasources.catalogue.validation import (
    _is_blank,
    check_required_secrets,
    connection_defaults,
    normalize_connection,
    validate_secret_values,
    value_errors,
)

__all__ = [
    "BLANK", "CATALOGUE", "DATABASE_HOP", "DEFAULT_MAX_LENGTH", "EMPTY", "ENDPOINT", "FIELD_KINDS", "PEM_MARKER",
    "PROTECTION", "REQUIRED", "SECRET_KINDS", "SECRET_MAX_LENGTH", "SSH_HOP", "TRANSITS", "TUNNEL_FIELD",
    "TYPES", "TYPE_CHOICES", "UNKNOWN", "WHITESPACE_ONLY", "Check", "Condition", "ConfigInvalid", "ExtraCheck", "Field",
    "OneOfSecrets", "SecretField", "SourceType", "_is_blank", "_same", "check_required_secrets", "connection_defaults",
    "connection_openapi_schema", "credentials_openapi_schema", "empty_or", "get_type", "is_fully_configured",
    "normalize_connection", "validate_secret_values", "value_errors",
]

#: The source types, in the order clients see them.
TYPES: tuple[SourceType, ...] = (*SQL_TYPES, *CLOUD_TYPES, *FILE_TYPES, *STORAGE_AND_SAAS_TYPES)

CATALOGUE: dict[str, SourceType] = {t.key: t for t in TYPES}
if len(CATALOGUE) != len(TYPES):
    raise ValueError("duplicate source type key")
TYPE_CHOICES: list[tuple[str, str]] = [(t.key, t.label) for t in TYPES]


def get_type(key: str) -> SourceType:
    """The catalogue entry for ``key``; ``KeyError`` if there is none."""
    return CATALOGUE[key]


def is_fully_configured(source_type: SourceType, connection: dict, present: set[str]) -> bool:
    """Whether the stored connection and secrets pass the type's rules (rendered on every read:
    memoized on the connection's ``repr``, since many rows share few shapes; ``repr`` tells 1 from
    True and "1" as JSON does, and costs a fifth of ``json.dumps``: it was ~1 ms of a page of 50)."""
    key = (source_type.key, repr(connection), frozenset(present))
    known = _FULLY_CONFIGURED.get(key)
    if known is None:
        if len(_FULLY_CONFIGURED) >= _MEMO_SIZE:
            _FULLY_CONFIGURED.clear()
        known = _FULLY_CONFIGURED[key] = _fully_configured(source_type, copy.deepcopy(connection), present)
    return known


_MEMO_SIZE = 4096
_FULLY_CONFIGURED: dict[tuple[str, str, frozenset[str]], bool] = {}


def _fully_configured(source_type: SourceType, connection: dict, present: set[str]) -> bool:
    try:
        normalized = normalize_connection(source_type, connection)
        check_required_secrets(source_type, normalized, set(present))
    except ConfigInvalid:
        return False
    return True
