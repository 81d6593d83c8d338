"""Qualified references (pure functions, no database).

- data source as a source: ``org.source_name[:reference_id][:sample][:vN|:current]``
- workflow:                ``org.workflow_name[:reference_id]``
- table:                   ``table_name[:reference_id]``

Names compare case-insensitively after escaping: every character that is not a letter, digit or
underscore becomes ``_`` and runs of ``_`` collapse. A reference id wins over a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from core.references import escape_name, name_key

__all__ = [
    "CURRENT", "SAMPLE", "InvalidReference", "SourceReference", "TableReference", "Version", "escape_name",
    "name_key", "parse_source_reference", "parse_table_reference", "parse_workflow_reference", "render_source",
    "render_table", "render_workflow",
]

_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,63}")
_REFERENCE_ID = re.compile(r"[a-z0-9]{1,16}")
_VERSION = re.compile(r"v([0-9]+)")
CURRENT: Literal["current"] = "current"
SAMPLE = "sample"

Version = int | Literal["current"] | None


class InvalidReference(ValueError):
    """A malformed reference; ``part`` says which part is wrong."""

    def __init__(self, text: str, part: str, problem: str) -> None:
        self.text, self.part, self.problem = text, part, problem
        super().__init__(f"Invalid reference '{text}': {part}: {problem}")


@dataclass(frozen=True)
class SourceReference:
    """A parsed ``org.name[:reference_id][:sample][:vN|:current]``; version None means "not given"."""

    org: str
    name: str
    reference_id: str | None = None
    sample: bool = False
    version: Version = None


@dataclass(frozen=True)
class TableReference:
    """A parsed ``name[:reference_id]``."""

    name: str
    reference_id: str | None = None


def _is_version(token: str) -> bool:
    return token == CURRENT or _VERSION.fullmatch(token) is not None


def _version(text: str, token: str) -> Version:
    if token == CURRENT:
        return CURRENT
    number = int(token[1:])
    if not 1 <= number < 10**9:
        raise InvalidReference(text, "version", f"'{token}' is not a version: versions are v1, v2, ... or current.")
    return number


def _split_name(text: str, rest: str) -> tuple[str, list[str]]:
    name, *suffixes = rest.split(":")
    if not name.strip():
        raise InvalidReference(text, "name", "The name is empty.")
    for i, token in enumerate(suffixes, start=1):
        if not token:
            raise InvalidReference(text, f"suffix {i}", "Empty part after ':'.")
    return name.strip(), [s.lower() for s in suffixes]


def _split_org(text: str) -> tuple[str, str]:
    if not isinstance(text, str) or not text.strip():
        raise InvalidReference(str(text), "reference", "The reference is empty.")
    org, sep, rest = text.strip().partition(".")
    if not sep:
        raise InvalidReference(text, "organization", "Expected 'organization.name', e.g. 'acme.sales_db'.")
    if not _SLUG.fullmatch(org):
        raise InvalidReference(text, "organization", f"'{org}' is not an organization slug.")
    return org.lower(), rest


def parse_source_reference(text: str) -> SourceReference:
    """Parse a data-source reference. ``name:v234`` is version 234; write ``name:v234:current`` for that id."""
    org, rest = _split_org(text)
    name, tokens = _split_name(text, rest)
    reference_id: str | None = None
    sample = False
    version: Version = None
    stage = 0  # parts come in order: reference id (0), sample (1), version (2); 3 = done
    for i, token in enumerate(tokens, start=1):
        # A version-like token right after the name is a reference id when a version follows it.
        version_like = _is_version(token) and not (
            i == 1 and token != CURRENT and any(_is_version(t) for t in tokens[1:])
        )
        if token == SAMPLE:
            if stage > 1:
                raise InvalidReference(text, "sample", "'sample' must come once, before the version.")
            sample, stage = True, 2
        elif version_like:
            if stage > 2:
                raise InvalidReference(text, "version", "Only one version (vN or current) may be given.")
            version, stage = _version(text, token), 3
        elif _REFERENCE_ID.fullmatch(token):
            if stage > 0:
                raise InvalidReference(text, "reference id", "The reference id must come right after the name.")
            reference_id, stage = token, 1
        else:
            raise InvalidReference(
                text, f"suffix {i}", f"'{token}' is not a reference id, 'sample', or a version (vN or current)."
            )
    return SourceReference(org=org, name=name, reference_id=reference_id, sample=sample, version=version)


def parse_workflow_reference(text: str) -> SourceReference:
    """Parse ``org.workflow_name[:reference_id]`` (no sample, no version)."""
    ref = parse_source_reference(text)
    if ref.sample:
        raise InvalidReference(text, "sample", "A workflow reference takes no 'sample'.")
    if ref.version is not None:
        raise InvalidReference(text, "version", "A workflow reference takes no version.")
    return ref


def parse_table_reference(text: str) -> TableReference:
    """Parse ``table_name[:reference_id]``."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidReference(str(text), "reference", "The table reference is empty.")
    name, sep, ref = text.strip().rpartition(":")
    if not sep:
        return TableReference(name=text.strip())
    if not name.strip():
        raise InvalidReference(text, "name", "The table name is empty.")
    if ":" in name:
        raise InvalidReference(text, "reference id", "A table reference is 'name' or 'name:reference_id'.")
    if not _REFERENCE_ID.fullmatch(ref.lower()):
        raise InvalidReference(text, "reference id", f"'{ref}' is not a reference id (letters and digits).")
    return TableReference(name=name.strip(), reference_id=ref.lower())


def render_source(org: str, name: str, reference_id: str, *, sample: bool = False, version: Version = None) -> str:
    """``org.name:ref[:sample]:vN|:current`` (always with the version, so the reference is exact)."""
    parts = [f"{org}.{escape_name(name).lower()}", reference_id]
    if sample:
        parts.append("sample")
    parts.append(CURRENT if version in (None, CURRENT) else f"v{version}")
    return ":".join(parts)


def render_workflow(org: str, name: str, reference_id: str) -> str:
    """``org.name:ref``."""
    return f"{org}.{escape_name(name).lower()}:{reference_id}"


def render_table(name: str, reference_id: str) -> str:
    """``name:ref`` with the name escaped."""
    return f"{escape_name(name).lower()}:{reference_id}"
