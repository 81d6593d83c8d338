"""Body parsers of the maiascore adapter beyond JSON: XML (parsed safely) and form encoding that may
carry JSON. Every one applies the rules of ``core.parsers`` (size, depth, strings, numbers); a
refused field is named as the seed's body names it (``core.compat.SeedNames``). Form pairs and XML
elements come back as :class:`TextFields`: every value is text there, unlike JSON's typed values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from core import parsers as core
from core.compat import SeedNames

MAX_DEPTH = 8


class TextFields(dict[str, Any]):
    """A body whose values are all text (form pairs, XML elements): ``"true"`` and ``""`` are what was
    typed, and there is no ``null``. A JSON body (also one sent with the form type) is a plain dict."""


def local_name(tag: str) -> str:
    """An element's name without its namespace: ``{http://x}driver`` (``<driver>`` under a default
    ``xmlns="http://x"``, or ``<a:driver>``) -> ``driver``."""
    return tag.rpartition("}")[2]


def _element(node: Any, depth: int = 0, verbatim: frozenset[str] = frozenset()) -> Any:
    """<item><a>1</a><b/></item> -> {"a": "1", "b": ""}; nested elements become objects. Names are
    taken without their namespace (``local_name``), whatever namespace the document declares. A leaf's
    text is stripped, except in the elements named in ``verbatim``: a password " pw " stays " pw ",
    and "<password> </password>" stays whitespace (refused) instead of becoming the empty password."""
    if depth > MAX_DEPTH:
        raise ParseError("XML is nested too deeply.")
    children = list(node)
    if not children:
        text = node.text or ""
        return text if local_name(node.tag) in verbatim else text.strip()
    out: dict[str, Any] = {}
    for child in children:
        name = local_name(child.tag)
        if name in out:
            raise ParseError(f"XML element <{name}> appears more than once.")
        out[name] = _element(child, depth + 1, verbatim)
    return out


class _XMLParser(BaseParser):
    """``<item>`` with one child element per field. A DOCTYPE (DTD), entity declarations and
    external references are refused (defusedxml with ``forbid_dtd``, ``forbid_entities`` and
    ``forbid_external``). An empty element (``<password/>`` or ``<password></password>``) is the
    empty string; an absent one is absent. Namespaces are dropped from element names (a default
    ``xmlns`` or prefixes: ``<a:host>`` is ``host``). ``verbatim``: the fields whose text is kept as sent."""

    media_type = "application/xml"
    verbatim: frozenset[str] = frozenset()

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        raw = core.read_bounded(stream)
        try:
            root = SafeET.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        except DefusedXmlException as exc:
            refused = type(exc).__name__
            raise ParseError(f"XML with a DOCTYPE, DTD or entity declarations is refused ({refused}).") from None
        except (SafeET.ParseError, ValueError) as exc:
            raise ParseError(f"XML parse error: {exc.__class__.__name__}.") from None
        value = _element(root, verbatim=self.verbatim)
        return TextFields(core.clean_parsed(value if isinstance(value, dict) else {}))


class XMLParser(SeedNames, _XMLParser):
    #: maiascore's password fields: compared by the server character for character
    verbatim = frozenset({"password", "sshPassword"})


class TextXMLParser(XMLParser):
    media_type = "text/xml"


class _FormOrJSONParser(BaseParser):
    """``application/x-www-form-urlencoded``: key=value pairs, or a JSON object sent with that type
    (as the seed's own curl, Node, Python and PHP snippets do). ``password=`` (present, empty) is the
    empty string; a key not sent is absent. Form pairs cannot say ``null``: they are ``TextFields``,
    the JSON object a plain dict."""

    media_type = "application/x-www-form-urlencoded"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        raw = core.read_bounded(stream)
        encoding = core.request_charset(parser_context)
        if raw.lstrip().startswith(b"{"):
            return core.loads(raw, encoding)
        return TextFields(core.parse_form(raw, encoding))


class FormOrJSONParser(SeedNames, _FormOrJSONParser):
    pass
