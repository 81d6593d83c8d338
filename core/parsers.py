"""Hardened request-body parsing: one set of rules for every JSON, merge-patch, form and XML body.

Every parser reads at most ``REQUEST_BODY_MAX_BYTES`` (413 ``PAYLOAD_TOO_LARGE`` beyond; the
``BodyLimitMiddleware`` already refused a larger Content-Length before anything read the body),
then hands what it parsed to :func:`clean_parsed`, which refuses with a 400 that names each field
(dotted path: ``metadata.a.b``, ``tags.0``, ``name``):

- nesting of objects/arrays deeper than ``REQUEST_JSON_MAX_DEPTH`` (default 64) levels;
- in any string, keys included: NUL (PostgreSQL text cannot store it), lone UTF-16 surrogates
  (``"\\ud800"``) and bytes that are not valid in the body's charset (UTF-8 by default);
- numbers that are not finite (``NaN``, ``Infinity``, ``-Infinity``, ``1e309``) or integers outside
  the signed 64-bit range.

Nothing the parsers refuse reaches a serializer, a service or the database.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from core.errors import ApiError, ErrorCode, InvalidRequest

DEFAULT_BODY_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_JSON_MAX_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_FORM_FIELDS = 200
#: at most this many fields are named in one error (a hostile body may hold millions)
MAX_NAMED_ERRORS = 20

NUL_MESSAGE = "Must not contain NUL characters (U+0000)."
TEXT_MESSAGE = "Must be valid UTF-8 text: no lone surrogates (U+D800 to U+DFFF), no invalid bytes."
FINITE_MESSAGE = "Must be a finite number: NaN, Infinity and values beyond the float range are refused."
INT_MESSAGE = f"Integers must fit in 64 bits ({INT64_MIN} to {INT64_MAX})."


def body_max_bytes() -> int:
    return int(getattr(settings, "REQUEST_BODY_MAX_BYTES", DEFAULT_BODY_MAX_BYTES))


def json_max_depth() -> int:
    return int(getattr(settings, "REQUEST_JSON_MAX_DEPTH", DEFAULT_JSON_MAX_DEPTH))


class PayloadTooLarge(ApiError):
    code = ErrorCode.PAYLOAD_TOO_LARGE
    status_code = 413

    def __init__(self, limit: int | None = None) -> None:
        limit = body_max_bytes() if limit is None else limit
        super().__init__(f"The request body is larger than {limit} bytes.", extra={"max_bytes": limit})


class BodyRejected(InvalidRequest):
    """A parsed body holds values no field may take (see the module docstring); ``errors`` names them."""


class _Refused:
    """A number the JSON decoder met that no field may hold; :func:`clean_parsed` names its path."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _parse_int(text: str) -> int | _Refused:
    if len(text.lstrip("-")) > 19:  # also spares int() a 4,300-digit conversion
        return _Refused(INT_MESSAGE)
    value = int(text)
    return value if INT64_MIN <= value <= INT64_MAX else _Refused(INT_MESSAGE)


def _parse_float(text: str) -> float | _Refused:
    value = float(text)
    return value if math.isfinite(value) else _Refused(FINITE_MESSAGE)


def _parse_constant(text: str) -> _Refused:  # NaN, Infinity, -Infinity
    return _Refused(FINITE_MESSAGE)


def read_bounded(stream: Any, limit: int | None = None) -> bytes:
    """The whole body, never reading more than ``limit`` + 1 bytes (413 when it is longer)."""
    limit = body_max_bytes() if limit is None else limit
    if stream is None:
        return b""
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(limit)
    return raw


def _decode(raw: bytes, encoding: str) -> str:
    """Bytes invalid in ``encoding`` become lone surrogates (``surrogateescape``), so that the string
    they land in is named by :func:`clean_parsed` instead of failing the whole body anonymously."""
    try:
        return raw.decode(encoding, "surrogateescape")
    except LookupError:
        raise ParseError(f"Unknown charset '{encoding}'.") from None


def request_charset(parser_context: Mapping[str, Any] | None) -> str:
    return str((parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET)


def loads(raw: bytes, encoding: str = "utf-8") -> Any:
    """JSON text -> Python, refusing what :func:`clean_parsed` refuses (400, fields named)."""
    text = _decode(raw, encoding)
    try:
        data = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except RecursionError:
        raise BodyRejected(f"The body is nested deeper than {json_max_depth()} levels.") from None
    except ValueError as exc:
        raise ParseError(f"JSON parse error - {exc}") from None
    return clean_parsed(data)


def display_key(key: Any) -> str:
    """A key as it can appear in a path of an error (NUL and surrogates escaped, never echoed raw)."""
    text = str(key)
    if text.isprintable() and not bad_text(text):
        return text
    return "".join(c if c.isprintable() and not bad_text(c) else f"\\u{ord(c):04x}" for c in text)


def bad_text(text: str) -> str | None:
    """The message for a string no field may hold, or None."""
    if "\x00" in text:
        return NUL_MESSAGE
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogate: from "\ud800" in JSON or an invalid byte (surrogateescape)
        return TEXT_MESSAGE
    return None


def _walk(data: Any, max_depth: int) -> Iterator[tuple[str, str]]:
    """(dotted path, message) for every refused key or value, depth first, without recursion."""
    stack: list[tuple[Any, tuple[str, ...], int]] = [(data, (), 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, (dict, list, tuple)):
            if depth >= max_depth:
                yield ".".join(path), f"Nested deeper than {max_depth} levels."
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            children = []
            for key, child in items:
                child_path = (*path, display_key(key))
                if isinstance(key, str) and (message := bad_text(key)):
                    yield ".".join(child_path), f"Key: {message}"
                children.append((child, child_path, depth + 1))
            stack.extend(reversed(children))
        elif isinstance(value, str):
            if message := bad_text(value):
                yield ".".join(path), message
        elif isinstance(value, _Refused):
            yield ".".join(path), value.message
        elif isinstance(value, float):
            if not math.isfinite(value):
                yield ".".join(path), FINITE_MESSAGE
        elif isinstance(value, int) and not isinstance(value, bool):
            if not INT64_MIN <= value <= INT64_MAX:
                yield ".".join(path), INT_MESSAGE


def clean_parsed(data: Any, *, max_depth: int | None = None) -> Any:
    """``data`` unchanged when every key and value may be stored; else a 400 naming the fields."""
    max_depth = json_max_depth() if max_depth is None else max_depth
    errors: dict[str, list[str]] = {}
    for path, message in _walk(data, max_depth):
        if len(errors) >= MAX_NAMED_ERRORS:
            break
        errors.setdefault(path or "non_field_errors", []).append(message)
    if errors:
        raise BodyRejected("The request body holds values that cannot be accepted.", errors=errors)
    return data


def parse_form(raw: bytes, encoding: str = "utf-8") -> dict[str, str]:
    """``application/x-www-form-urlencoded`` -> {key: value}: strict (a malformed pair, a repeated key
    or more than ``MAX_FORM_FIELDS`` fields is a 400), values checked by :func:`clean_parsed`."""
    if not raw:
        return {}
    pairs = raw.split(b"&")
    if len(pairs) > MAX_FORM_FIELDS:
        raise ParseError(f"The form body has more than {MAX_FORM_FIELDS} fields.")
    out: dict[str, str] = {}
    for pair in pairs:
        if b"=" not in pair:
            raise ParseError("The form body is malformed.")
        raw_key, raw_value = pair.split(b"=", 1)
        key = _decode(unquote_to_bytes(raw_key.replace(b"+", b" ")), encoding)
        value = _decode(unquote_to_bytes(raw_value.replace(b"+", b" ")), encoding)
        if key in out:
            raise ParseError(f"Form field '{display_key(key)}' appears more than once.")
        out[key] = value
    return clean_parsed(out)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the rules above (the DEFAULT_PARSER_CLASSES' JSON parser)."""

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        return loads(read_bounded(stream), request_charset(parser_context))


class MergePatchJSONParser(JSONParser):
    """RFC 7396 JSON Merge Patch bodies (application/merge-patch+json), parsed like JSON."""

    media_type = "application/merge-patch+json"
