"""The seed-adapter engine: a seed product's API declared as a table over the native one.

An adapter is declared, not written. Its :class:`Table` lists each seed field with the native path
it maps to and a :class:`Codec` (the transform each way: ``"5432"`` <-> ``5432``, ``true`` <->
``"require"``); its :class:`ErrorShape` maps native error codes and statuses to the seed's and is
the template of the seed's error body. The engine translates bodies both ways, refuses what the
table does not name, and renders every native error in the seed's shape with the seed's field
names (the table read backwards). A seed keeps only the hooks it truly needs (``Table.before``).

Nothing here decides what is valid: the translated body goes to the services, which apply every
rule. This module imports no domain app, so data-source and workflow adapters both build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from core import parsers as core_parsers
from core.errors import InvalidRequest
from core.errors import exception_handler as core_exception_handler
from core.serializers import StrictSerializer

REQUIRED = "This field is required."
UNKNOWN = "Unknown field."
STRUCTURE = "Missing required fields or invalid credential structure."
CORE_KEYS = frozenset({"code", "message", "errors", "request_id"})

Transform = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


# --- dotted paths ----------------------------------------------------------------------------------


def get_path(data: Any, path: str) -> Any:
    """The value at a dotted path (``None`` when any part is missing)."""
    return lookup(data, path)[1]


def lookup(data: Any, path: str) -> tuple[bool, Any]:
    """(present, value) at a dotted path: a key sent as ``null`` is present, an omitted one is not."""
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return False, None
        data = data[part]
    return True, data


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def seed_path(path: str, names: Mapping[str, str]) -> str:
    """A native error path in the seed's vocabulary: the longest mapped prefix is renamed
    (a name of ``""`` drops the prefix)."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in names:
            return ".".join(p for p in (names[prefix], *parts[end:]) if p)
    return path


# --- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """A value's transform each way. ``to_native`` sees only non-null values and raises ``ValueError``
    (its message names the problem) for a value the seed refuses; ``to_seed`` sees the stored value,
    ``None`` when there is none."""

    to_native: Transform = _same
    to_seed: Transform = _same


SAME = Codec()


def choice(mapping: Mapping[Any, Any]) -> Codec:
    """One of the seed's values <-> the native value it stands for (anything else is refused)."""
    inverse = {native: seed for seed, native in mapping.items()}

    def to_native(value: Any) -> Any:
        if not isinstance(value, (str, int, float, bool)) or value not in mapping:  # a dict is not hashable
            raise ValueError(f"Must be one of: {', '.join(str(v) for v in mapping)}.")
        return mapping[value]

    return Codec(to_native, lambda value: inverse.get(value) if isinstance(value, (str, int, float, bool)) else None)


@dataclass(frozen=True)
class When:
    """A condition on another seed field of the same object."""

    field: str
    values: tuple[Any, ...]
    negate: bool = False

    def holds(self, body: Mapping[str, Any]) -> bool:
        return (body.get(self.field) in self.values) != self.negate

    def describe(self) -> str:
        values = " or ".join(f'"{v}"' if isinstance(v, str) else str(v).lower() for v in self.values)
        return f"{self.field} is {'not ' if self.negate else ''}{values}"


@dataclass(frozen=True)
class Field:
    """One seed field: its ``name`` (dotted within the table's object), the native ``target`` path,
    the transform each way, and what the seed requires of it. ``kind`` and ``help`` document it."""

    name: str
    target: str
    required: bool | When = False
    kind: str = "string"  # string, integer, boolean, or "a|b" for an enum
    via: Codec = SAME
    help: str = ""


@dataclass(frozen=True)
class Table:
    """A seed object as a table of fields over the native body.

    ``at``: where the object sits in the seed body (prefixes error names). ``replace``: native
    containers the seed replaces as a whole (PUT): every target under them that was not sent is
    reset (``null``). ``null_is_absent``: the seed means "not given" by ``null`` (else ``null`` clears).
    ``write_only``: native containers never read back (secrets). ``ignored``: seed fields accepted and
    dropped. ``names``: native error paths to rename beyond the fields' own (containers, hooks).
    ``before``: the seed's own rule applied to its body before the table reads it (the one hook).
    """

    fields: tuple[Field, ...]
    at: str = ""
    replace: tuple[str, ...] = ()
    null_is_absent: bool = False
    write_only: tuple[str, ...] = ()
    ignored: frozenset[str] = frozenset()
    names: Mapping[str, str] = field(default_factory=dict)
    before: Transform | None = None

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def seed_name(self, name: str) -> str:
        return f"{self.at}.{name}" if self.at else name

    def error_names(self) -> dict[str, str]:
        """Native error path -> the seed's name for it (the table read backwards)."""
        names = {f.target: self.seed_name(f.name) for f in self.fields}
        return {**names, **self.names}

    def covered(self) -> list[str]:
        """The targets a whole-object write resets when they are not sent."""
        return [f.target for f in self.fields if _under(f.target, self.replace)]

    def to_native(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The native body for a seed body. Refuses (400, every field named as the seed names it) a
        key the table does not know, a missing required field and a value a codec refuses."""
        values = dict(self.before(dict(body)) if self.before else body)
        known = {f.name.split(".")[0] for f in self.fields} | self.ignored
        errors: dict[str, list[str]] = {self.seed_name(key): [UNKNOWN] for key in values if key not in known}
        native: dict[str, Any] = {}
        for target in self.covered():
            set_path(native, target, None)
        for f in self.fields:
            present, value = lookup(values, f.name)
            if value is None:
                message = _missing(f, values)
                if message:
                    errors[self.seed_name(f.name)] = [message]
                elif present and not self.null_is_absent:
                    set_path(native, f.target, None)
                continue
            try:
                set_path(native, f.target, f.via.to_native(value))
            except ValueError as exc:
                errors[self.seed_name(f.name)] = [str(exc)]
        if errors:
            raise SeedInvalidRequest(STRUCTURE, errors=errors)
        return native

    def to_seed(self, native: Mapping[str, Any]) -> dict[str, Any]:
        """The seed's object for a native representation (write-only fields left out)."""
        out: dict[str, Any] = {}
        for f in self.fields:
            if not _under(f.target, self.write_only):
                set_path(out, f.name, f.via.to_seed(get_path(native, f.target)))
        return out


def _under(path: str, containers: Iterable[str]) -> bool:
    return any(path == container or path.startswith(f"{container}.") for container in containers)


def _missing(f: Field, body: Mapping[str, Any]) -> str | None:
    if f.required is True:
        return REQUIRED
    if isinstance(f.required, When) and f.required.holds(body):
        return f"This field is required when {f.required.describe()}."
    return None


def error_names(tables: Iterable[Table]) -> dict[str, str]:
    names: dict[str, str] = {}
    for table in tables:
        names.update(table.error_names())
    return names


# --- errors ----------------------------------------------------------------------------------------


@dataclass
class Failure:
    """A native error (code, message, per-field errors) with field paths already in the seed's names."""

    status: int
    code: str
    message: str
    errors: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def details(self) -> str:
        """The message followed by every field's messages (for shapes that carry a message only)."""
        parts = [f"{path}: {' '.join(messages)}" for path, messages in self.errors.items()]
        return f"{self.message} ({'; '.join(parts)})" if parts else self.message


class Slot(Enum):
    """What an error template is filled with."""

    STATUS = "the seed's HTTP status"
    CODE = "the seed's code (ErrorShape.codes / status_codes, else the native code)"
    NATIVE_CODE = "the native code"
    MESSAGE = "the native message"
    DETAILS = "the message followed by each field's messages"
    ERRORS = "messages per field, in the seed's names"
    EXTRA = "the native error's other members (stage, retry_after...)"


@dataclass(frozen=True)
class IfAny:
    """A slot left out of the body when it is empty."""

    slot: Slot


@dataclass(frozen=True)
class Extra:
    """One member of the native error's extras, left out when the error has none."""

    name: str


@dataclass(frozen=True)
class Spread:
    """As a template key: the slot's members merged into the enclosing object."""

    slot: Slot


_OMIT = object()


@dataclass(frozen=True)
class ErrorShape:
    """A seed's errors: native code -> seed code, status changes and the body's template."""

    template: Any
    codes: Mapping[str, str] = field(default_factory=dict)
    status_codes: Mapping[int, str] = field(default_factory=dict)  # consulted before ``codes``
    statuses: Mapping[int, int] = field(default_factory=dict)

    def with_codes(self, **codes: str) -> ErrorShape:
        return ErrorShape(self.template, {**self.codes, **codes}, self.status_codes, self.statuses)

    def render(self, failure: Failure) -> tuple[int, Any]:
        """(status, body) of a native error in the seed's shape."""
        status = self.statuses.get(failure.status, failure.status)
        code = self.status_codes.get(failure.status) or self.codes.get(failure.code, failure.code)
        slots = {
            Slot.STATUS: status, Slot.CODE: code, Slot.NATIVE_CODE: failure.code, Slot.MESSAGE: failure.message,
            Slot.DETAILS: failure.details(), Slot.ERRORS: failure.errors, Slot.EXTRA: failure.extra,
        }
        return status, _fill(self.template, slots, failure.extra)


def _fill(template: Any, slots: Mapping[Slot, Any], extra: Mapping[str, Any]) -> Any:
    if isinstance(template, Slot):
        return slots[template]
    if isinstance(template, IfAny):
        return slots[template.slot] or _OMIT
    if isinstance(template, Extra):
        return extra[template.name] if template.name in extra else _OMIT
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if isinstance(key, Spread):
                out.update(slots[key.slot])
                continue
            filled = _fill(value, slots, extra)
            if filled is not _OMIT:
                out[key] = filled
        return out
    return template


# --- requests --------------------------------------------------------------------------------------


class SeedRequest(StrictSerializer):
    """An adapter's request body: shapes only, unknown keys refused by name (documented as such)."""


class SeedRequestExtension(OpenApiSerializerExtension):
    """Document that seed request bodies refuse unknown properties (``additionalProperties: false``)."""

    target_class = SeedRequest
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        return schema


class SeedValidationError(ValidationError):
    """A body refused by an adapter's own serializer: its fields already carry the seed's names."""


class SeedInvalidRequest(InvalidRequest):
    """INVALID_REQUEST_BODY raised by an adapter, with fields already in the seed's names."""


def parse(serializer_class: type[Serializer], data: Any) -> dict[str, Any]:
    """The body validated by an adapter's (shape-only) serializer."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise SeedValidationError(serializer.errors)
    return dict(serializer.validated_data)


class SeedNames:
    """A parser mixin: a body refused by the core rules is the adapter's own 400, its paths as sent."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)  # type: ignore[misc]
        except core_parsers.BodyRejected as exc:
            raise SeedInvalidRequest(exc.message, errors=exc.errors) from None


class JSONParser(SeedNames, core_parsers.JSONParser):
    pass


class MergePatchJSONParser(SeedNames, core_parsers.MergePatchJSONParser):
    pass


#: what every seed adapter accepts unless it says otherwise (the core API's media types)
SEED_PARSERS: list[type[BaseParser]] = [JSONParser, MergePatchJSONParser]


# --- the view --------------------------------------------------------------------------------------


#: path prefix -> a view whose error shape answers an unknown path under that prefix
_SEED_PREFIXES: dict[str, Callable[..., Any]] = {}


def register_seed_prefix(prefix: str, view: type[APIView]) -> None:
    """An unknown path under ``prefix`` (``/compat/rivergen/``) answers 404 in ``view``'s seed shape."""
    _SEED_PREFIXES[prefix] = view.as_view()


def seed_view_for(path: str) -> Callable[..., Any] | None:
    return next((view for prefix, view in _SEED_PREFIXES.items() if path.startswith(prefix)), None)


class CompatView(APIView):
    """An APIView whose errors (401, 403, 404, 400, ...) come out in its seed's shape, with the
    seed's field names (its tables read backwards). A view may replace ``tables`` or ``errors`` per
    request (never mutate them in place)."""

    parser_classes = SEED_PARSERS
    tables: Sequence[Table] = ()
    errors: ErrorShape

    def get_exception_handler(self) -> Callable[[Exception, dict], Response | None]:
        return self.handle_error

    def handle_error(self, exc: Exception, context: dict) -> Response | None:
        response = core_exception_handler(exc, context)
        if response is None:
            return None
        body = response.data
        names = {} if isinstance(exc, (SeedValidationError, SeedInvalidRequest)) else error_names(self.tables)
        errors: dict[str, list[str]] = {}
        for path, messages in (body.get("errors") or {}).items():
            errors.setdefault(seed_path(path, names), []).extend(messages)
        failure = Failure(
            status=response.status_code,
            code=str(body.get("code")),
            message=str(body.get("message", "")),
            errors=errors,
            extra={k: v for k, v in body.items() if k not in CORE_KEYS},
        )
        status, response.data = self.errors.render(failure)
        if response.status_code == 401 and status != 401 and "WWW-Authenticate" in response:
            del response["WWW-Authenticate"]  # a challenge belongs to a 401 only
        response.status_code = status
        return response
