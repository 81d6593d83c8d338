"""Validation of a connection and of secrets against a source type's declarations.

Error dictionaries are keyed by dotted paths (``connection.ssh_tunnel.host``,
``credentials.password``). Secret *values* never appear in any message produced here.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from datasources.catalogue.checks import CHECKS
from datasources.catalogue.fields import (
    BLANK,
    PEM_MARKER,
    REQUIRED,
    SECRET_MAX_LENGTH,
    UNKNOWN,
    WHITESPACE_ONLY,
    ConfigInvalid,
    Field,
    SecretField,
    SourceType,
    _fmt,
    _same,
)

# --- connection validation ----------------------------------------------------------------------


def _add(errors: dict[str, list[str]], path: str, message: str) -> None:
    errors.setdefault(path, []).append(message)


def _value_error(f: Field, value: Any) -> str | None:
    """The message for a present (non-None) value of the wrong shape, else None."""
    kind = f.kind
    if kind == "boolean":
        return None if isinstance(value, bool) else "Must be a boolean."
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return "Must be an integer."
        if f.min_value is not None and value < f.min_value:
            return f"Ensure this value is greater than or equal to {f.min_value}."
        if f.max_value is not None and value > f.max_value:
            return f"Ensure this value is less than or equal to {f.max_value}."
        return None
    if kind == "enum":
        if not isinstance(value, str) or value not in f.choices:
            return f"Must be one of: {', '.join(f.choices)}."
        return None
    if kind == "string_list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "Must be a list of strings."
        return next((e for e in (_string_error(f, v) for v in value) if e), None)
    if not isinstance(value, str):
        return "Must be a string."
    return _string_error(f, value)


def _string_error(f: Field, value: str) -> str | None:
    if f.max_length is not None and len(value) > f.max_length:
        return f"Ensure this field has no more than {f.max_length} characters."
    if "\x00" in value:
        return "Null characters are not allowed."
    if f.kind == "pem" and PEM_MARKER not in value:
        return f"Must be PEM-encoded (a '{PEM_MARKER} ...' block)."
    # a required field's blank value is the required rule's to name ("may not be blank")
    if f.pattern and not (f.required and _is_blank(value)) and not re.search(f.pattern, value):
        return f.pattern_message or f"Must match the pattern {f.pattern}."
    return None


def _coerce(fields: tuple[Field, ...], data: dict, prefix: str, errors: dict[str, list[str]]) -> dict:
    """First pass: unknown keys, kinds, ranges, defaults. Invalid values are left out."""
    known = {f.name for f in fields}
    for key in data:
        if key not in known:
            _add(errors, f"{prefix}.{key}", UNKNOWN)
    out: dict[str, Any] = {}
    for f in fields:
        path = f"{prefix}.{f.name}"
        value = data.get(f.name)
        if f.kind == "object":
            if value is None:
                value = {}
            if not isinstance(value, dict):
                _add(errors, path, "Must be an object.")
                continue
            out[f.name] = _coerce(f.fields, value, path, errors)
            continue
        if value is None:
            if f.defaults_when:
                out[f.name] = _FOLLOWS  # its default depends on other fields: ``_follow_defaults``
            elif f.has_default:
                out[f.name] = copy.deepcopy(f.default)
            continue
        message = _value_error(f, value)
        if message:
            _add(errors, path, message)
        else:
            out[f.name] = copy.deepcopy(value)
    return out


_FOLLOWS = object()  # an absent value whose default follows other fields (``Field.defaults_when``)


def _follow_defaults(fields: tuple[Field, ...], out: dict, root: dict) -> None:
    """Fill the defaults that depend on other fields, once every other value is in ``root``."""
    for f in fields:
        value = out.get(f.name)
        if f.kind == "object" and isinstance(value, dict):
            _follow_defaults(f.fields, value, root)
        elif value is _FOLLOWS:
            out[f.name] = f.default_for(root)


def _coerce_all(fields: tuple[Field, ...], data: dict, errors: dict[str, list[str]]) -> dict:
    out = _coerce(fields, data, "connection", errors)
    _follow_defaults(fields, out, out)
    return out


def _is_blank(value: Any) -> bool:
    return (isinstance(value, str) and not value.strip()) or value == []


def _require(fields: tuple[Field, ...], out: dict, root: dict, prefix: str,
             errors: dict[str, list[str]]) -> None:
    """Second pass: required and required-when rules, evaluated on the normalized root."""
    for f in fields:
        path = f"{prefix}.{f.name}"
        if path in errors:
            continue
        value = out.get(f.name)
        if f.kind == "object":
            if isinstance(value, dict):
                _require(f.fields, value, root, path, errors)
            continue
        if value is not None and not _is_blank(value):
            continue
        if f.required:
            _add(errors, path, REQUIRED if value is None else BLANK)
        elif f.required_when is not None and f.required_when.holds(root):
            _add(errors, path, f"This field is required when {f.required_when.describe()}.")


def _check(fields: tuple[Field, ...], out: dict, root: dict, prefix: str, errors: dict[str, list[str]]) -> None:
    """Third pass: named checks and "only the default" rules, evaluated on the normalized root."""
    for f in fields:
        path = f"{prefix}.{f.name}"
        value = out.get(f.name)
        if path in errors or value is None:
            continue
        if f.kind == "object":
            if isinstance(value, dict):
                _check(f.fields, value, root, path, errors)
            continue
        if f.only_default_when is not None and f.only_default_when.holds(root) and not _same(value, f.default):
            _add(errors, path, f"Not used when {f.only_default_when.describe()}: send null or its default "
                               f"({_fmt(f.default)}).")
            continue
        for check in f.checks:
            if check.when is None or check.when.holds(root):
                message = None if _is_blank(value) else CHECKS[check.name].function(value)
                if message:
                    _add(errors, path, message)
                    break


def value_errors(source_type: SourceType, connection: dict) -> dict[str, list[str]]:
    """What the values sent say by themselves (the first pass: unknown keys, kinds, lengths, ranges,
    patterns), whatever else will come to override them (a connection string beside them)."""
    errors: dict[str, list[str]] = {}
    _coerce(source_type.fields, connection, "connection", errors)
    return errors


def normalize_connection(source_type: SourceType, connection: Any) -> dict:
    """Validate a complete connection dict for the type; return it with defaults applied.

    ``None`` values count as absent. Object fields are always present in the result.
    Raises ``ConfigInvalid`` with every error found.
    """
    if not isinstance(connection, dict):
        raise ConfigInvalid({"connection": ["Must be an object."]})
    errors: dict[str, list[str]] = {}
    out = _coerce_all(source_type.fields, connection, errors)
    _require(source_type.fields, out, out, "connection", errors)
    _check(source_type.fields, out, out, "connection", errors)
    for check in source_type.extra_checks:
        for key, messages in check(out).items():
            for message in messages:
                _add(errors, f"connection.{key}", message)
    if errors:
        raise ConfigInvalid(errors)
    return out


def connection_defaults(source_type: SourceType) -> dict:
    """The connection made of defaults only (not necessarily valid: required fields missing)."""
    return _coerce_all(source_type.fields, {}, {})


# --- secrets -------------------------------------------------------------------------------------


def _secret_error(secret: SecretField, value: Any) -> str | None:
    """The message for a secret value being written (not ``None``), else None. ``""`` is a value
    only where the secret allows it (``allow_empty``); whitespace alone never is."""
    if not isinstance(value, str):
        return "Must be a string."
    if value == "" and secret.allow_empty:
        return None
    if not value.strip():
        return WHITESPACE_ONLY if secret.allow_empty else BLANK
    kind = secret.kind
    if len(value) > SECRET_MAX_LENGTH:
        return f"Ensure this field has no more than {SECRET_MAX_LENGTH} characters."
    if "\x00" in value:
        return "Null characters are not allowed."
    if kind == "pem" and PEM_MARKER not in value:
        return f"Must be PEM-encoded (a '{PEM_MARKER} ...' block)."
    if kind == "json":
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return "Must be a valid JSON document."
        if not isinstance(parsed, dict):
            return "Must be a JSON object."
    return None


def validate_secret_values(source_type: SourceType, values: dict[str, Any]) -> None:
    """Check secret values being written (``None`` = clear; ``""`` only where ``allow_empty``).
    Messages never echo a value."""
    if not isinstance(values, dict):
        raise ConfigInvalid({"credentials": ["Must be an object."]})
    errors: dict[str, list[str]] = {}
    for name, value in values.items():
        path = f"credentials.{name}"
        secret = source_type.secret(name) if isinstance(name, str) else None
        if secret is None:
            _add(errors, path, UNKNOWN)
            continue
        if value is None:
            continue
        message = _secret_error(secret, value)
        if message:
            _add(errors, path, message)
    if errors:
        raise ConfigInvalid(errors)


def _secret_errors(source_type: SourceType, connection: dict, present: set[str]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for s in source_type.secrets:
        if s.name in present:
            continue
        if s.required:
            _add(errors, f"credentials.{s.name}", REQUIRED)
        elif s.required_when is not None and s.required_when.holds(connection):
            message = f"This field is required when {s.required_when.describe()}."
            _add(errors, f"credentials.{s.name}", message)
    for rule in source_type.secret_rules:
        if rule.when is not None and not rule.when.holds(connection):
            continue
        if not any(name in present for name in rule.names):
            for name in rule.names:
                _add(errors, f"credentials.{name}", rule.message())
    return errors


def check_required_secrets(source_type: SourceType, connection: dict, present: set[str]) -> None:
    """Raise ``ConfigInvalid`` if the secrets in ``present`` do not satisfy the type's rules."""
    errors = _secret_errors(source_type, connection, set(present))
    if errors:
        raise ConfigInvalid(errors)
