"""Body parsers for maiascore's encodings: XML (parsed safely) and form encoding that may carry JSON."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

MAX_DEPTH = 8


def _charset(parser_context: dict | None) -> str:
    return str((parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET)


def _element(node: Any, depth: int = 0) -> Any:
    """<item><a>1</a><b/></item> -> {"a": "1", "b": ""}; nested elements become objects."""
    if depth > MAX_DEPTH:
        raise ParseError("XML is nested too deeply.")
    children = list(node)
    if not children:
        return (node.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        if child.tag in out:
            raise ParseError(f"XML element <{child.tag}> appears more than once.")
        out[child.tag] = _element(child, depth + 1)
    return out


class XMLParser(BaseParser):
    """``<item>`` with one child element per field; DTDs and entities are refused (defusedxml)."""

    media_type = "application/xml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        raw = stream.read() if stream is not None else b""
        try:
            root = SafeET.fromstring(raw)
        except (DefusedXmlException, SafeET.ParseError, ValueError) as exc:
            raise ParseError(f"XML parse error: {exc.__class__.__name__}.") from None
        value = _element(root)
        return value if isinstance(value, dict) else {}


class TextXMLParser(XMLParser):
    media_type = "text/xml"


class FormOrJSONParser(BaseParser):
    """``application/x-www-form-urlencoded``: key=value pairs, or a JSON object sent with that type
    (as the seed's own curl, Node, Python and PHP snippets do)."""

    media_type = "application/x-www-form-urlencoded"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(_charset(parser_context))
        except UnicodeDecodeError:
            raise ParseError("The body is not valid text in its charset.") from None
        if text.lstrip().startswith("{"):
            try:
                return json.loads(text)
            except ValueError as exc:
                raise ParseError(f"JSON parse error: {exc}") from None
        try:
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=200)
        except ValueError:
            raise ParseError("The form body is malformed.") from None
        out: dict[str, str] = {}
        for key, value in pairs:
            if key in out:
                raise ParseError(f"Form field '{key}' appears more than once.")
            out[key] = value
        return out
