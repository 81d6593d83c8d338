"""The plain fields of a data-source write: one definition of each rule and each default.

Every entry point reads these specs: the services validate raw bodies with ``validate`` (so a
management command or a shell call gets the same 400 as the API), the API's write serializer is
built from them (``datasources.api.serializers``: same bounds, help texts and required flags in the
OpenAPI document), the model's validators and defaults come from them, and the admin form sends its
values through the services. Connection settings and secrets are the catalogue's (per type).

Messages are worded as DRF words them, so a body refused here reads exactly as the API refuses it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.deconstruct import deconstructible

from core.errors import InvalidRequest
from datasources.catalogue import TYPE_CHOICES

Kind = Literal["string", "integer", "boolean", "choice", "list", "object", "map", "group"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

#: The message of every refused body (the API's, for its serializer's refusals).
INVALID = "The request is invalid."
REQUIRED = "This field is required."
NULL = "This field may not be null."
BLANK = "This field may not be blank."
NOT_A_STRING = "Not a valid string."
NOT_AN_INTEGER = "A valid integer is required."
NOT_A_BOOLEAN = "Must be a valid boolean."
NOT_AN_OBJECT = "Expected a JSON object."
NOT_A_CHOICE = '"{input}" is not a valid choice.'
NOT_A_LIST = 'Expected a list of items but got type "{input_type}".'
NOT_A_DICT = 'Expected a dictionary of items but got type "{input_type}".'
TOO_LONG = "Ensure this field has no more than {max_length} characters."
TOO_SHORT = "Ensure this field has at least {min_length} characters."
TOO_MANY = "Ensure this field has no more than {max_length} elements."
TOO_FEW = "Ensure this field has at least {min_length} elements."
TOO_BIG = "Ensure this value is less than or equal to {max_value}."
TOO_SMALL = "Ensure this value is greater than or equal to {min_value}."
OFF_OR_AT_LEAST = "Ensure this value is 0 (off) or greater than or equal to {min_value}."
TOO_LARGE_JSON = "Too large: at most {max_bytes} bytes of JSON."
NOT_JSON = "Value must be valid JSON."
NUL = "Null characters are not allowed."
SURROGATE = "Surrogate characters are not allowed: U+{code_point:X}."
NOT_UNIQUE = "Tags must be unique."
NAME_BLANK = "The name cannot be blank."
READ_ONLY_FIELD = "This field is read-only."
UNKNOWN_FIELD = "Unknown field."
NO_DATA = "No data provided"


@dataclass(frozen=True)
class FieldSpec:
    """One writable field: its kind, bounds, default and nullability.

    ``required``: on create and PUT (a PATCH never requires). ``nullable``: ``null`` is accepted
    (it resets the field to ``default`` when it has one, clears it otherwise). ``min_length`` /
    ``max_length`` count characters of a string, items of a list. ``item``: the spec of each item
    of a list or value of a map; ``fields``: the members of a group (a nested object)."""

    name: str
    kind: Kind
    required: bool = False
    nullable: bool = False
    blank: bool = False
    trim: bool = True
    min_length: int | None = None
    max_length: int | None = None
    min_value: int | None = None
    max_value: int | None = None
    max_bytes: int | None = None
    choices: tuple[str, ...] = ()
    unique: bool = False
    item: FieldSpec | None = None
    fields: tuple[FieldSpec, ...] = ()
    default: Any = MISSING
    help: str = ""
    write_only: bool = False
    #: An integer's floor besides 0, named by a setting: 0 passes (``off``), 1 up to the setting's value
    #: are refused (a health-check interval: ``HEALTH_CHECK_MIN_INTERVAL``, which tests may lower).
    floor_setting: str | None = None

    def floor(self) -> int | None:
        """The current floor (``floor_setting``'s value), or None."""
        return int(getattr(settings, self.floor_setting)) if self.floor_setting else None

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING

    def default_value(self) -> Any:
        """A fresh copy of the default (lists and objects are never shared)."""
        return copy.deepcopy(self.default)


def _optional_int(name: str, low: int, high: int, default: int) -> FieldSpec:
    return FieldSpec(name, "integer", nullable=True, min_value=low, max_value=high, default=default)


def _tenancy_string(name: str) -> FieldSpec:
    return FieldSpec(name, "string", nullable=True, blank=True, max_length=255)


NAME = FieldSpec("name", "string", required=True, min_length=1, max_length=255)
TYPE = FieldSpec("type", "choice", choices=tuple(key for key, _label in TYPE_CHOICES))
DESCRIPTION = FieldSpec("description", "string", nullable=True, blank=True, max_length=10_000, default="")
WORKSPACE = FieldSpec("workspace", "integer", nullable=True, min_value=1)
CONNECTION = FieldSpec("connection", "object", max_bytes=200_000)
#: Secret values: ``""`` passes here (``blank``), the catalogue decides per type whether it may be empty
#: (``SecretField.allow_empty``: a password the server may accept empty) or is refused as blank.
CREDENTIALS = FieldSpec(
    "credentials", "map", write_only=True,
    item=FieldSpec("value", "string", nullable=True, blank=True, trim=False, max_length=100_000),
)
CONNECTION_POOL_SIZE = _optional_int("connection_pool_size", 1, 100, 5)
CONNECTION_TIMEOUT = _optional_int("connection_timeout", 1, 300, 30)
QUERY_TIMEOUT = _optional_int("query_timeout", 1, 86_400, 300)
MAX_RETRIES = _optional_int("max_retries", 0, 10, 3)
SCHEMA_AUTO_REFRESH = FieldSpec("schema_auto_refresh", "boolean", nullable=True, default=False)
SCHEMA_REFRESH_INTERVAL = _optional_int("schema_refresh_interval", 60, 2_592_000, 86_400)
#: Seconds between scheduled health checks (``datasources.services.health``); ``null`` follows the
#: organization's default, ``0`` turns them off for this source. Never needs a connection test.
HEALTH_CHECK_INTERVAL = FieldSpec(
    "health_check_interval", "integer", nullable=True, min_value=0, max_value=2_592_000, default=None,
    floor_setting="HEALTH_CHECK_MIN_INTERVAL",
    help="Seconds between scheduled health checks: `null` follows the organization's default "
         "(`GET /api/v1/health-settings/`), `0` turns them off for this source, otherwise at least "
         "HEALTH_CHECK_MIN_INTERVAL (60 by default) and at most 2592000 (30 days).",
)
TAG = FieldSpec("tag", "string", min_length=1, max_length=64)
TAGS = FieldSpec("tags", "list", nullable=True, max_length=50, unique=True, item=TAG, default=[])
METADATA = FieldSpec("metadata", "object", nullable=True, max_bytes=16_384, default={})
CONNECTION_STRING = FieldSpec(
    "connection_string", "string", trim=False, max_length=4096, write_only=True,
    help="Write-only: parsed into `connection` and `credentials`, never stored or returned. What it sets wins "
         "over the same field in `connection`; a password in `credentials` wins over one in the string.",
)
TENANCY_LEVEL = FieldSpec("level", "choice", required=True, choices=("TABLE", "DATABASE"))
TENANCY_FIELDS: tuple[FieldSpec, ...] = (
    TENANCY_LEVEL,
    FieldSpec("client_column_type", "choice", nullable=True, choices=("NUMBER", "STRING")),
    _tenancy_string("schema"),
    _tenancy_string("table"),
    _tenancy_string("client_column"),
    _tenancy_string("primary_key_column"),
)
TENANCY_SETTINGS = FieldSpec("tenancy_settings", "group", nullable=True, fields=TENANCY_FIELDS)

#: Every writable field of a data-source body, in the API's order.
FIELDS: tuple[FieldSpec, ...] = (
    NAME, TYPE, DESCRIPTION, WORKSPACE, CONNECTION, CREDENTIALS, CONNECTION_POOL_SIZE, CONNECTION_TIMEOUT,
    QUERY_TIMEOUT, MAX_RETRIES, SCHEMA_AUTO_REFRESH, SCHEMA_REFRESH_INTERVAL, HEALTH_CHECK_INTERVAL, TAGS, METADATA,
    CONNECTION_STRING, TENANCY_SETTINGS,
)
BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}
#: Keys of the representation a body may not write (refused by name, "This field is read-only.").
READ_ONLY = frozenset(
    {
        "id", "reference_id", "organization", "credentials_set", "status", "is_fully_configured",
        "last_test", "schema", "health", "version", "created_at", "created_by", "updated_at", "updated_by",
    }
)
OPERATIONAL = (
    CONNECTION_POOL_SIZE, CONNECTION_TIMEOUT, QUERY_TIMEOUT, MAX_RETRIES, SCHEMA_AUTO_REFRESH,
    SCHEMA_REFRESH_INTERVAL, HEALTH_CHECK_INTERVAL,
)
#: The operational fields and their defaults (``null`` on PATCH, or omission on PUT, resets to these).
OPERATIONAL_DEFAULTS: dict[str, Any] = {f.name: f.default for f in OPERATIONAL}
#: Every plain field with a default, in the order the services apply them.
PLAIN_DEFAULTS: dict[str, Any] = {f.name: f.default for f in (DESCRIPTION, TAGS, METADATA, *OPERATIONAL)}


# --- validation ------------------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, *messages: str) -> None:
        super().__init__(*messages)
        self.messages = list(messages)


def _is_blank(spec: FieldSpec, data: Any) -> bool:
    if isinstance(data, str):
        return data == "" or (spec.trim and data.strip() == "")
    return False


def _string(spec: FieldSpec, data: Any) -> str:
    if _is_blank(spec, data):
        if not spec.blank:
            raise _Invalid(BLANK)
        return ""
    if not isinstance(data, str):
        raise _Invalid(NOT_A_STRING)
    value = data.strip() if spec.trim else data
    messages = []
    if spec.max_length is not None and len(value) > spec.max_length:
        messages.append(TOO_LONG.format(max_length=spec.max_length))
    if spec.min_length is not None and len(value) < spec.min_length:
        messages.append(TOO_SHORT.format(min_length=spec.min_length))
    if "\x00" in value:
        messages.append(NUL)
    surrogate = next((ch for ch in value if 0xD800 <= ord(ch) <= 0xDFFF), None)
    if surrogate is not None:
        messages.append(SURROGATE.format(code_point=ord(surrogate)))
    if messages:
        raise _Invalid(*messages)
    return value


def _integer(spec: FieldSpec, data: Any) -> int:
    if isinstance(data, bool) or not isinstance(data, int):
        raise _Invalid(NOT_AN_INTEGER)
    try:
        str(data)  # beyond Python's digit limit: refused like any other non-integer
    except ValueError:
        raise _Invalid(NOT_AN_INTEGER) from None
    if spec.max_value is not None and data > spec.max_value:
        raise _Invalid(TOO_BIG.format(max_value=spec.max_value))
    if spec.min_value is not None and data < spec.min_value:
        raise _Invalid(TOO_SMALL.format(min_value=spec.min_value))
    floor = spec.floor()
    if floor is not None and 0 < data < floor:
        raise _Invalid(OFF_OR_AT_LEAST.format(min_value=floor))
    return data


def _choice(spec: FieldSpec, data: Any) -> str:
    key = str(data) if isinstance(data, (str, int, float)) else None
    if key not in spec.choices:
        raise _Invalid(NOT_A_CHOICE.format(input=data))
    return key


def _object(spec: FieldSpec, data: Any) -> dict:
    if not isinstance(data, dict):
        raise _Invalid(NOT_AN_OBJECT)
    try:
        size = len(json.dumps(data))
    except (TypeError, ValueError):
        raise _Invalid(NOT_JSON) from None
    if spec.max_bytes is not None and size > spec.max_bytes:
        raise _Invalid(TOO_LARGE_JSON.format(max_bytes=spec.max_bytes))
    return data


def _list(spec: FieldSpec, data: Any, path: str, errors: dict[str, list[str]]) -> Any:
    if not isinstance(data, list):
        raise _Invalid(NOT_A_LIST.format(input_type=type(data).__name__))
    assert spec.item is not None
    values, bad = [], False
    for index, item in enumerate(data):
        try:
            values.append(_value(spec.item, item))
        except _Invalid as exc:
            errors[f"{path}.{index}"] = exc.messages
            bad = True
    if bad:
        return MISSING
    if spec.unique and len({repr(v) for v in values}) != len(values):
        raise _Invalid(NOT_UNIQUE)
    if spec.max_length is not None and len(values) > spec.max_length:
        raise _Invalid(TOO_MANY.format(max_length=spec.max_length))
    if spec.min_length is not None and len(values) < spec.min_length:
        raise _Invalid(TOO_FEW.format(min_length=spec.min_length))
    return values


def _map(spec: FieldSpec, data: Any, path: str, errors: dict[str, list[str]]) -> Any:
    if not isinstance(data, dict):
        raise _Invalid(NOT_A_DICT.format(input_type=type(data).__name__))
    assert spec.item is not None
    values: dict[str, Any] = {}
    bad = False
    for key, item in data.items():
        try:
            values[str(key)] = _value(spec.item, item)
        except _Invalid as exc:
            errors[f"{path}.{key}"] = exc.messages
            bad = True
    return MISSING if bad else values


def _value(spec: FieldSpec, data: Any) -> Any:
    """A scalar, or an object, or ``None`` where accepted (raises _Invalid)."""
    if data is None:
        if not spec.nullable:
            raise _Invalid(NULL)
        return None
    if spec.kind == "string":
        return _string(spec, data)
    if spec.kind == "integer":
        return _integer(spec, data)
    if spec.kind == "boolean":
        if not isinstance(data, bool):
            raise _Invalid(NOT_A_BOOLEAN)
        return data
    if spec.kind == "choice":
        return _choice(spec, data)
    if spec.kind == "object":
        return _object(spec, data)
    raise AssertionError(f"{spec.kind} is not a scalar kind")


def _group(
    specs: Iterable[FieldSpec],
    data: Any,
    *,
    path: str,
    partial: bool,
    errors: dict[str, list[str]],
    read_only: frozenset[str] = frozenset(),
    optional: frozenset[str] = frozenset(),
) -> Any:
    """A nested object of fields: unknown and read-only keys are refused by name."""
    prefix = f"{path}." if path else ""
    if not isinstance(data, Mapping):
        errors[f"{prefix}non_field_errors"] = [NOT_AN_OBJECT]
        return MISSING
    specs = tuple(specs)
    writable = {f.name for f in specs}
    own: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    for f in specs:
        key = prefix + f.name
        if f.name not in data:
            if not partial and f.required and f.name not in optional:
                own[key] = [REQUIRED]
            continue
        raw = data[f.name]
        try:
            if raw is None or f.kind not in ("list", "map", "group"):
                value = _value(f, raw)
            elif f.kind == "list":
                value = _list(f, raw, key, own)
            elif f.kind == "map":
                value = _map(f, raw, key, own)
            else:
                value = _group(f.fields, raw, path=key, partial=partial, errors=own)
        except _Invalid as exc:
            own[key] = exc.messages
            continue
        if value is not MISSING:
            out[f.name] = value
    for name in data:
        if name not in writable:
            own[prefix + str(name)] = [READ_ONLY_FIELD if name in read_only else UNKNOWN_FIELD]
    errors.update(own)
    return MISSING if own else out


def validate_fields(
    specs: Iterable[FieldSpec], data: Any, *, partial: bool, read_only: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A body of ``specs`` (any app's), checked field by field as DRF checks a strict serializer of
    them: the cleaned values (strings trimmed), or ``InvalidRequest`` naming each refused field."""
    errors: dict[str, list[str]] = {}
    if data is None:
        raise InvalidRequest(INVALID, errors={"non_field_errors": [NO_DATA]})
    values = _group(specs, data, path="", partial=partial, errors=errors, read_only=read_only)
    if errors:
        raise InvalidRequest(INVALID, errors=errors)
    return dict(values)


def validate(data: Any, *, partial: bool) -> dict[str, Any]:
    """A data-source create/PUT (``partial=False``) or PATCH body: the cleaned values (names and
    strings trimmed as the API trims them), or ``InvalidRequest`` naming each field."""
    return validate_fields(FIELDS, data, partial=partial, read_only=READ_ONLY)


def validate_tenancy_settings(data: Any, *, partial: bool) -> dict[str, Any]:
    """A body of ``.../tenancy/`` on its own (PUT requires ``level``, PATCH does not); errors name
    its fields without the ``tenancy_settings.`` prefix, as that endpoint names them."""
    errors: dict[str, list[str]] = {}
    if data is None:
        raise InvalidRequest(INVALID, errors={"non_field_errors": [NO_DATA]})
    values = _group(TENANCY_FIELDS, data, path="", partial=False, errors=errors,
                    optional=frozenset({"level"}) if partial else frozenset())
    if errors:
        raise InvalidRequest(INVALID, errors=errors)
    return dict(values)


# --- model validators (``full_clean``) --------------------------------------------------------------


def _check(spec: FieldSpec, value: Any) -> None:
    errors: dict[str, list[str]] = {}
    _group((spec,), {spec.name: value}, path="", partial=False, errors=errors)
    messages = [m for path in errors for m in (errors[path] if path == spec.name
                                                 else [f"{path.removeprefix(spec.name + '.')}: {m}"
                                                       for m in errors[path]])]
    if messages:
        raise ValidationError(messages)


def validate_name(value: Any) -> None:
    """The name's rule on the model: 1 to 255 characters, not blank."""
    if isinstance(value, str) and not value.strip():
        raise ValidationError(NAME_BLANK)
    _check(NAME, value)


def validate_description(value: Any) -> None:
    _check(DESCRIPTION, value)


def validate_tags(value: Any) -> None:
    """The tags' rule on the model: at most 50 unique tags of 1 to 64 characters."""
    _check(TAGS, value)


def validate_metadata(value: Any) -> None:
    """The metadata's rule on the model: a JSON object of at most 16,384 bytes."""
    _check(METADATA, value)


@deconstructible
class RangeOf:
    """The bounds of an integer field, read from its spec by name (so migrations keep a name, not numbers)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, value: Any) -> None:
        spec = BY_NAME[self.name]
        if spec.min_value is not None:
            MinValueValidator(spec.min_value)(value)
        if spec.max_value is not None:
            MaxValueValidator(spec.max_value)(value)
        floor = spec.floor()
        if floor is not None and isinstance(value, int) and 0 < value < floor:
            raise ValidationError(OFF_OR_AT_LEAST.format(min_value=floor))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeOf) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)
