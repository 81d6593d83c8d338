"""The source-type catalogue engine: field declarations, validation and schema export.

The per-type data lives in ``catalogue_types*.py``; this module only knows how to read it.
Pure Python (no Django imports) so it can be used from serializers, the admin and tests alike.

Error dictionaries are keyed by dotted paths (``connection.ssh_tunnel.host``,
``credentials.password``). Secret *values* never appear in any message produced here.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from functools import lru_cache
from typing import Any

FIELD_KINDS = frozenset({"string", "text", "integer", "boolean", "enum", "object", "pem", "string_list"})
SECRET_KINDS = frozenset({"password", "pem", "json", "token"})
DEFAULT_MAX_LENGTH = {"string": 1000, "text": 100_000, "pem": 100_000, "string_list": 1000}
SECRET_MAX_LENGTH = 100_000
PEM_MARKER = "-----BEGIN"

REQUIRED = "This field is required."
BLANK = "This field may not be blank."
UNKNOWN = "Unknown field."

#: How a connection field bears on where or how the stored secrets travel (``Field.transit``).
#: The update service refuses a change of such a field, for non-admins, unless the secrets that
#: would travel the changed hop are resent in the same request.
ENDPOINT = "endpoint"  # any change sends the secrets elsewhere: host, port, URL, account, region, CA pin
PROTECTION = "protection"  # a change to a weaker value (``Field.strength``, weakest first) lowers TLS
TRANSITS = frozenset({"", ENDPOINT, PROTECTION})
#: Hops a secret travels: the database's own, or the SSH bastion's (``SecretField.hop``). The
#: connection object named ``TUNNEL_FIELD`` describes the SSH hop.
DATABASE_HOP, SSH_HOP = "database", "ssh"
TUNNEL_FIELD = "ssh_tunnel"


def _fmt(value: Any) -> str:
    return json.dumps(value) if value is None or isinstance(value, bool) else str(value)


def _same(a: Any, b: Any) -> bool:
    """Equality that does not confuse True with 1 or False with 0."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Condition:
    """A test on the value at a dotted ``path`` of the (normalized) connection dict."""

    path: str
    in_: tuple[Any, ...] = ()
    not_in: tuple[Any, ...] = ()

    def holds(self, connection: dict) -> bool:
        value = _lookup(connection, self.path)
        if self.in_ and not any(_same(value, v) for v in self.in_):
            return False
        return not any(_same(value, v) for v in self.not_in)

    def describe(self) -> str:
        parts = []
        for values, verb in ((self.in_, "is"), (self.not_in, "is not")):
            if tuple(values) == (None,) and verb == "is not":
                parts.append(f"{self.path} is set")
            elif len(values) == 1:
                parts.append(f"{self.path} {verb} {_fmt(values[0])}")
            elif values:
                parts.append(f"{self.path} {verb} one of {', '.join(_fmt(v) for v in values)}")
        return " and ".join(parts) or "always"

    def as_dict(self) -> dict:
        return {"path": self.path, "in": list(self.in_), "not_in": list(self.not_in),
                "description": self.describe()}


def _cond(condition: Condition | None) -> dict | None:
    return condition.as_dict() if condition else None


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    label: str = ""
    required: bool = False
    required_when: Condition | None = None
    default: Any = None
    choices: tuple[str, ...] = ()
    min_value: int | None = None
    max_value: int | None = None
    max_length: int | None = None
    fields: tuple[Field, ...] = ()
    help: str = ""
    affects_connection: bool = True
    pattern: str = ""  # regex searched in string values (JSON Schema ``pattern`` semantics)
    pattern_message: str = ""  # what to say when the pattern does not match
    transit: str = ""  # ENDPOINT or PROTECTION: the field steers where or how secrets travel
    strength: tuple[Any, ...] = ()  # with PROTECTION: the values from weakest to strongest

    def __post_init__(self) -> None:
        if self.kind not in FIELD_KINDS:
            raise ValueError(f"{self.name}: unknown field kind {self.kind!r}")
        if self.transit not in TRANSITS or (self.transit == PROTECTION) != bool(self.strength):
            raise ValueError(f"{self.name}: transit {self.transit!r} with strength {self.strength!r}")
        if self.kind == "enum" and not self.choices:
            raise ValueError(f"{self.name}: enum field without choices")
        if self.kind == "enum" and self.default is not None and self.default not in self.choices:
            raise ValueError(f"{self.name}: default not among choices")
        if self.kind == "object" and not self.fields:
            raise ValueError(f"{self.name}: object field without fields")
        if not self.label:
            object.__setattr__(self, "label", _label(self.name))
        if self.max_length is None and self.kind in DEFAULT_MAX_LENGTH:
            object.__setattr__(self, "max_length", DEFAULT_MAX_LENGTH[self.kind])

    @property
    def has_default(self) -> bool:
        return self.default is not None

    def as_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "label": self.label, "required": self.required,
            "required_when": _cond(self.required_when), "default": copy.deepcopy(self.default),
            "choices": list(self.choices), "min_value": self.min_value, "max_value": self.max_value,
            "max_length": self.max_length, "pattern": self.pattern or None, "help": self.help,
            "affects_connection": self.affects_connection, "transit": self.transit or None,
            "fields": [f.as_dict() for f in self.fields],
        }


@dataclass(frozen=True)
class SecretField:
    name: str
    label: str = ""
    kind: str = "password"
    required: bool = False
    required_when: Condition | None = None
    help: str = ""
    hop: str = DATABASE_HOP  # the hop this secret travels: the database's, or the SSH bastion's

    def __post_init__(self) -> None:
        if self.kind not in SECRET_KINDS:
            raise ValueError(f"{self.name}: unknown secret kind {self.kind!r}")
        if self.hop not in (DATABASE_HOP, SSH_HOP):
            raise ValueError(f"{self.name}: unknown hop {self.hop!r}")
        if not self.label:
            object.__setattr__(self, "label", _label(self.name))

    def as_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "kind": self.kind, "required": self.required,
                "required_when": _cond(self.required_when), "help": self.help, "hop": self.hop}


@dataclass(frozen=True)
class OneOfSecrets:
    """At least one of ``names`` must be set (when ``when`` holds, or always)."""

    names: tuple[str, ...]
    when: Condition | None = None

    def message(self) -> str:
        msg = f"One of {', '.join(self.names)} is required"
        return f"{msg} when {self.when.describe()}." if self.when else f"{msg}."

    def as_dict(self) -> dict:
        return {"names": list(self.names), "when": _cond(self.when), "description": self.message()}


ExtraCheck = Callable[[dict], dict[str, list[str]]]


@dataclass(frozen=True)
class SourceType:
    key: str
    label: str
    family: str
    connector: str
    driver_extra: str
    fields: tuple[Field, ...]
    secrets: tuple[SecretField, ...]
    secret_rules: tuple[OneOfSecrets, ...] = ()
    file_based: bool = False
    # Cross-field rules run on the normalized connection; they return errors keyed by paths
    # relative to the connection (e.g. ``{"disable_auth": ["..."]}``).
    extra_checks: tuple[ExtraCheck, ...] = dc_field(default=(), compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        secrets = [s.name for s in self.secrets]
        if len(set(names)) != len(names) or len(set(secrets)) != len(secrets):
            raise ValueError(f"{self.key}: duplicate field or secret name")
        for rule in self.secret_rules:
            if not set(rule.names) <= set(secrets):
                raise ValueError(f"{self.key}: secret rule names an undeclared secret")

    def field(self, name: str) -> Field | None:
        """The connection field called ``name``; a dotted name reaches into objects (``ssl.mode``)."""
        found: Field | None = None
        fields = self.fields
        for part in name.split("."):
            found = next((f for f in fields if f.name == part), None)
            if found is None:
                return None
            fields = found.fields
        return found

    def secret(self, name: str) -> SecretField | None:
        return next((s for s in self.secrets if s.name == name), None)

    def secret_names(self) -> set[str]:
        return {s.name for s in self.secrets}

    def transit_fields(self) -> dict[str, Field]:
        """Dotted path -> field, for every field that steers where or how secrets travel."""
        found: dict[str, Field] = {}
        stack = [("", f) for f in self.fields]
        while stack:
            prefix, f = stack.pop()
            path = prefix + f.name
            if f.transit:
                found[path] = f
            stack.extend((path + ".", child) for child in f.fields)
        return found

    def as_dict(self) -> dict:
        """The JSON-able description served by the type-catalogue endpoint."""
        return {
            "key": self.key, "label": self.label, "family": self.family, "connector": self.connector,
            "driver_extra": self.driver_extra, "file_based": self.file_based,
            "connection_fields": [f.as_dict() for f in self.fields],
            "secret_fields": [s.as_dict() for s in self.secrets],
            "secret_rules": [r.as_dict() for r in self.secret_rules],
        }


class ConfigInvalid(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("Invalid configuration: " + ", ".join(sorted(errors)))


# --- catalogue (built lazily so catalogue_types may import this module first) -----------------

CATALOGUE: dict[str, SourceType]
TYPE_CHOICES: list[tuple[str, str]]
_BUILT: dict[str, Any] = {}


def _build() -> dict[str, Any]:
    if not _BUILT:
        from datasources.catalogue_types import TYPES

        catalogue = {t.key: t for t in TYPES}
        if len(catalogue) != len(TYPES):
            raise ValueError("duplicate source type key")
        _BUILT["CATALOGUE"] = catalogue
        _BUILT["TYPE_CHOICES"] = [(t.key, t.label) for t in TYPES]
    return _BUILT


def __getattr__(name: str) -> Any:
    if name in ("CATALOGUE", "TYPE_CHOICES"):
        return _build()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_type(key: str) -> SourceType:
    """The catalogue entry for ``key``; ``KeyError`` if there is none."""
    return _build()["CATALOGUE"][key]


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
    if f.pattern and not re.search(f.pattern, value):
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
            if f.has_default:
                out[f.name] = copy.deepcopy(f.default)
            continue
        message = _value_error(f, value)
        if message:
            _add(errors, path, message)
        else:
            out[f.name] = copy.deepcopy(value)
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


def normalize_connection(source_type: SourceType, connection: Any) -> dict:
    """Validate a complete connection dict for the type; return it with defaults applied.

    ``None`` values count as absent. Object fields are always present in the result.
    Raises ``ConfigInvalid`` with every error found.
    """
    if not isinstance(connection, dict):
        raise ConfigInvalid({"connection": ["Must be an object."]})
    errors: dict[str, list[str]] = {}
    out = _coerce(source_type.fields, connection, "connection", errors)
    _require(source_type.fields, out, out, "connection", errors)
    for check in source_type.extra_checks:
        for key, messages in check(out).items():
            for message in messages:
                _add(errors, f"connection.{key}", message)
    if errors:
        raise ConfigInvalid(errors)
    return out


def connection_defaults(source_type: SourceType) -> dict:
    """The connection made of defaults only (not necessarily valid: required fields missing)."""
    return _coerce(source_type.fields, {}, "connection", {})


# --- secrets -------------------------------------------------------------------------------------


def _secret_error(kind: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return "Must be a string."
    if not value.strip():
        return BLANK
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
    """Check secret values being written (``None`` = clear). Messages never echo a value."""
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
        message = _secret_error(secret.kind, value)
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


def is_fully_configured(source_type: SourceType, connection: dict, present: set[str]) -> bool:
    """Whether the stored connection and secrets pass the type's rules (rendered on every read:
    memoized on the connection's JSON, since many rows share few shapes)."""
    return _fully_configured(source_type.key, json.dumps(connection, sort_keys=True), frozenset(present))


@lru_cache(maxsize=4096)
def _fully_configured(key: str, connection_json: str, present: frozenset[str]) -> bool:
    source_type = get_type(key)
    try:
        normalized = normalize_connection(source_type, json.loads(connection_json))
        check_required_secrets(source_type, normalized, set(present))
    except ConfigInvalid:
        return False
    return True


# --- OpenAPI 3.0 export --------------------------------------------------------------------------


def _field_schema(f: Field, partial: bool) -> dict:
    schema: dict[str, Any]
    if f.kind == "object":
        schema = _object_schema(f.fields, partial)
    elif f.kind == "integer":
        schema = {"type": "integer"}
        if f.min_value is not None:
            schema["minimum"] = f.min_value
        if f.max_value is not None:
            schema["maximum"] = f.max_value
    elif f.kind == "boolean":
        schema = {"type": "boolean"}
    elif f.kind == "enum":
        schema = {"type": "string", "enum": list(f.choices)}
    elif f.kind == "string_list":
        schema = {"type": "array", "items": {"type": "string", "maxLength": f.max_length}}
    else:
        schema = {"type": "string", "maxLength": f.max_length}
        if f.kind == "pem":
            schema["pattern"] = PEM_MARKER
        elif f.pattern:
            schema["pattern"] = f.pattern
        if f.required:
            schema["minLength"] = 1
    schema["title"] = f.label
    description = [f.help] if f.help else []
    if f.required_when is not None:
        description.append(f"Required when {f.required_when.describe()}.")
    if description:
        schema["description"] = " ".join(description)
    if f.has_default:
        schema["default"] = copy.deepcopy(f.default)
    if partial and not f.required:
        schema["nullable"] = True
        if "enum" in schema:
            schema["enum"].append(None)
    return schema


def _object_schema(fields: tuple[Field, ...], partial: bool) -> dict:
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {f.name: _field_schema(f, partial) for f in fields},
    }
    required = [f.name for f in fields if f.required and not f.has_default]
    if required and not partial:
        schema["required"] = required
    return schema


def connection_openapi_schema(source_type: SourceType, *, partial: bool = False) -> dict:
    """OpenAPI 3.0 schema of ``connection`` for the type (``partial``: merge-patch shape)."""
    schema = _object_schema(source_type.fields, partial)
    schema["title"] = f"{source_type.label} connection"
    return schema


def credentials_openapi_schema(source_type: SourceType) -> dict:
    """OpenAPI 3.0 schema of the write-only ``credentials`` object for the type."""
    properties = {}
    for s in source_type.secrets:
        prop: dict[str, Any] = {"type": "string", "nullable": True, "writeOnly": True,
                                "minLength": 1, "maxLength": SECRET_MAX_LENGTH, "title": s.label,
                                "format": "password" if s.kind in ("password", "token") else s.kind}
        description = [s.help] if s.help else []
        if s.required:
            description.append("Required.")
        elif s.required_when is not None:
            description.append(f"Required when {s.required_when.describe()}.")
        if description:
            prop["description"] = " ".join(description)
        properties[s.name] = prop
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "title": f"{source_type.label} credentials"}
