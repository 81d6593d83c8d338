"""Body parsers of the seed adapters: JSON, XML (maiascore; parsed safely) and form encoding that may
carry JSON (maiascore). Every one applies the rules of ``core.parsers`` (size, depth, strings,
numbers); a refused field is named as the seed's body names it (never renamed to a core path)."""

from __future__ import annotations

from typing import Any

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from core import parsers as core

MAX_DEPTH = 8


class _SeedNames:
    """Re-raise a refused body as the seed adapters' own 400: its paths are the body's, as sent."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)  # type: ignore[misc]
        except core.BodyRejected as exc:
            from datasources.compat.common import SeedInvalidRequest  # common imports this module

            raise SeedInvalidRequest(exc.message, errors=exc.errors) from None


class JSONParser(_SeedNames, core.JSONParser):
    pass


class MergePatchJSONParser(_SeedNames, core.MergePatchJSONParser):
    pass


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


class _XMLParser(BaseParser):
    """``<item>`` with one child element per field. A DOCTYPE (DTD), entity declarations and
    external references are refused (defusedxml with ``forbid_dtd``, ``forbid_entities`` and
    ``forbid_external``)."""

    media_type = "application/xml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        raw = core.read_bounded(stream)
        try:
            root = SafeET.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        except DefusedXmlException as exc:
            refused = type(exc).__name__
            raise ParseError(f"XML with a DOCTYPE, DTD or entity declarations is refused ({refused}).") from None
        except (SafeET.ParseError, ValueError) as exc:
            raise ParseError(f"XML parse error: {exc.__class__.__name__}.") from None
        value = _element(root)
        return core.clean_parsed(value if isinstance(value, dict) else {})


class XMLParser(_SeedNames, _XMLParser):
    pass


class TextXMLParser(XMLParser):
    media_type = "text/xml"


class _FormOrJSONParser(BaseParser):
    """``application/x-www-form-urlencoded``: key=value pairs, or a JSON object sent with that type
    (as the seed's own curl, Node, Python and PHP snippets do)."""

    media_type = "application/x-www-form-urlencoded"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        raw = core.read_bounded(stream)
        encoding = core.request_charset(parser_context)
        if raw.lstrip().startswith(b"{"):
            return core.loads(raw, encoding)
        return core.parse_form(raw, encoding)


class FormOrJSONParser(_SeedNames, _FormOrJSONParser):
    pass


#: what every seed adapter accepts unless it says otherwise (the core API's media types)
SEED_PARSERS = [JSONParser, MergePatchJSONParser]
