"""Redivis's reference syntax and vocabulary over the native ones (seed 000).

Redivis writes a dataset reference ``owner.name[:referenceId][:sample][:version]`` with the version
``v1_0`` (its escaped tag ``v1.0``), ``current`` or ``next``. Here a data source plays the dataset and
its schema versions are whole numbers, so:

- ``v1_0``, ``v1.0`` and the native ``v1`` all name schema version 1; a minor version (``v1_1``) does
  not exist here and is refused by name;
- ``current`` (or no version) follows the newest schema version, as natively;
- ``next`` (Redivis: the unreleased version being edited) names the newest schema version, pinned:
  every schema version here is released when it is cached, so the newest one is what a client asking
  for ``next`` can get; a source with no schema version yet has no ``next`` (400).

A dataSource (a workflow data source) is found by its ``id`` (the reference id this adapter returns
in ``id`` and at the end of ``uri``/``url``), by the qualified reference of its current source
dataset or workflow, or by the internal integer id. On this path the ``id`` wins over the integer.

Error texts are rendered in the seed's words: its field names (``sourceDataset``...), ``dataSource``
for a workflow data source and ``dataset`` for a data source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from core.compat import SeedInvalidRequest
from core.errors import NotFound
from core.numbers import is_ascii_digits, parse_ascii_int
from datasources.models import DataSource
from organizations.actors import Actor
from workflows.models import Workflow, WorkflowDataSource
from workflows.references import (
    CURRENT,
    InvalidReference,
    SourceReference,
    name_key,
    parse_source_reference,
    parse_workflow_reference,
    render_source,
    render_workflow,
)
from workflows.selectors import by_pk, check_org, pick, workflow_data_sources_of

NEXT = "next"
PATH_FIELD = "dataSourceReference"
#: Redivis's version tag, escaped (``v1_0``) or not (``v1.0``)
_TAG = re.compile(r"v([0-9]{1,9})[._]([0-9]{1,9})")
#: a dataSource's ``id`` as this adapter renders it (a reference id: no dot, unlike a qualified reference)
_ID = re.compile(r"[a-z0-9]{1,16}")
VERSIONS = "v1_0, v2_0, ... (or v1.0, v1), current or next"


@dataclass(frozen=True)
class DatasetReference:
    """A parsed Redivis dataset (or workflow) reference: ``ref.version`` is None for ``next``."""

    ref: SourceReference
    next: bool
    native: str  # the same reference in the native syntax (``next`` read as ``current``)


def _problem(problem: str) -> str:
    """A native parser's problem in Redivis's version words."""
    return (problem.replace("versions are v1, v2, ... or current", f"versions are {VERSIONS}")
            .replace("(vN or current)", "(e.g. v1_0, current or next)"))


def parse_dataset(text: Any) -> DatasetReference:
    """``owner.name[:referenceId][:sample][:v1_0|:v1.0|:v1|:current|:next]``; raises ``InvalidReference``
    (with the text as sent) when it is malformed."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidReference(str(text), "reference", "The reference is empty.")
    head, *tokens = text.strip().split(":")
    tags: set[int] = set()  # positions of Redivis's own version spellings (never a reference id)
    is_next = False
    native_tokens = []
    for i, token in enumerate(tokens, start=1):
        low = token.lower()
        tag = _TAG.fullmatch(low)
        if tag:
            major, minor = int(tag[1]), int(tag[2])
            if minor != 0:
                raise InvalidReference(text, "version", f"'{token}' is not a version here: a source's versions are "
                                                        "whole numbers (v1_0, v2_0, ...), with no minor versions.")
            native_tokens.append(f"v{major}")
            tags.add(i)
        elif low == NEXT:
            native_tokens.append(CURRENT)
            tags.add(i)
            is_next = True
        else:
            native_tokens.append(token)
    native = ":".join([head, *native_tokens])
    try:
        ref = parse_source_reference(native)
    except InvalidReference as exc:
        raise InvalidReference(text, exc.part, _problem(exc.problem)) from None
    if ref.reference_id is not None and 1 in tags:  # v1_0:v2_0 read natively as "v1:v2" (reference id v1)
        raise InvalidReference(text, "version", "Only one version (e.g. v1_0, current or next) may be given.")
    if is_next:
        ref = replace(ref, version=None)
    return DatasetReference(ref, is_next, native)


def parse_workflow(text: Any) -> SourceReference:
    """``owner.name[:referenceId]``; ``InvalidReference`` with the text as sent."""
    try:
        return parse_workflow_reference(text)
    except InvalidReference as exc:
        raise InvalidReference(str(text), exc.part, _problem(exc.problem)) from None


def _bad(field: str, exc: InvalidReference) -> SeedInvalidRequest:
    return SeedInvalidRequest(f"Malformed reference in '{field}': the {exc.part} is wrong.",
                              errors={field: [f"Invalid reference '{exc.text}': {exc.part}: {exc.problem}"]})


# --- request bodies ---------------------------------------------------------------------------------


def native_source(actor: Actor, text: str, field: str = "sourceDataset") -> str:
    """A ``sourceDataset`` as the repoint service reads it; ``next`` resolved to the newest version (400
    naming ``field`` when malformed, 404 when no such dataset, 400 when it has no version yet)."""
    try:
        parsed = parse_dataset(text)
    except InvalidReference as exc:
        raise _bad(field, exc) from None
    if not parsed.next:
        return parsed.native
    ref = parsed.ref
    check_org(actor, ref, field, "dataset")
    sources = DataSource.objects.filter(organization=actor.organization).only(
        "id", "name", "reference_id", "schema_version")
    if ref.reference_id is not None:
        sources = sources.filter(reference_id=ref.reference_id)
    found = pick(sources, ref, field=field, what="dataset")
    if found.schema_version is None:
        raise SeedInvalidRequest(f"Dataset '{found.name}' has no version yet, so no 'next' version.",
                                 errors={field: ["No version yet: refresh the source's schema first."]})
    return render_source(ref.org, found.name, found.reference_id, sample=ref.sample, version=found.schema_version)


def native_workflow(text: str, field: str = "sourceWorkflow") -> str:
    """A ``sourceWorkflow`` checked in Redivis's words (400 naming ``field`` when malformed)."""
    try:
        parse_workflow(text)
    except InvalidReference as exc:
        raise _bad(field, exc) from None
    return text


# --- the path ----------------------------------------------------------------------------------------


def _is_id(text: str) -> bool:
    return _ID.fullmatch(text.lower()) is not None


def check_data_source_path(text: str) -> None:
    """404 when ``dataSourceReference`` is neither an id nor a well-formed qualified reference."""
    if _is_id(text):
        return
    try:
        parse_dataset(text)
    except InvalidReference as exc:
        raise NotFound(
            f"dataSource not found: '{PATH_FIELD}' is neither a dataSource's id nor a qualified reference to its "
            f"source ({exc.part}: {exc.problem})",
            errors={PATH_FIELD: [f"Not an id or a qualified reference: {exc.part}: {exc.problem}"]},
        ) from None


def _at_version(wds: WorkflowDataSource, parsed: DatasetReference) -> bool:
    if parsed.next:  # pinned at its dataset's newest version
        source = wds.source_data_source
        return source is not None and wds.source_version is not None and wds.source_version == source.schema_version
    version = parsed.ref.version
    if version is None:
        return True
    return wds.source_workflow_id is None and wds.source_version == (None if version == CURRENT else version)


def find_data_source(actor: Actor, workflow: Workflow, text: str) -> WorkflowDataSource:
    """The workflow's dataSource named by ``text`` (its id, the qualified reference of its current source,
    or the internal integer id); 404 otherwise, 400 when a reference matches several."""
    qs = workflow_data_sources_of(workflow)
    value = str(text).strip()
    if _is_id(value):
        found = next(iter(qs.filter(reference_id=value.lower()).order_by()[:1]), None)
        if found is None and is_ascii_digits(value):
            found = by_pk(qs, parse_ascii_int(value) or 0)
        if found is None:
            raise NotFound("dataSource not found.",
                           errors={PATH_FIELD: ["No dataSource of this workflow has this id."]})
        return found
    check_data_source_path(value)
    parsed = parse_dataset(value)
    ref = parsed.ref
    check_org(actor, ref, PATH_FIELD, "dataSource")
    key = name_key(ref.name)
    matches = []
    for wds in qs:
        source = wds.source_data_source or wds.source_workflow
        assert source is not None  # a check constraint: exactly one of the two is set
        if ref.reference_id is not None and source.reference_id != ref.reference_id:
            continue
        if ref.reference_id is None and name_key(source.name) != key:
            continue
        if (ref.sample and not wds.is_sample) or not _at_version(wds, parsed):
            continue
        matches.append(wds)
    if not matches:
        raise NotFound("dataSource not found.",
                       errors={PATH_FIELD: ["No dataSource of this workflow reads this source."]})
    if len({_source_of(m) for m in matches}) > 1:  # older sources named alike: the exact spelling
        matches = [m for m in matches if _source_of(m).name == ref.name] or matches
    if len(matches) > 1 and not ref.sample:  # without ':sample', Redivis means the dataset itself
        matches = [m for m in matches if not m.is_sample] or matches
    if len(matches) > 1:
        raise SeedInvalidRequest(
            "Several dataSources of this workflow match; use the dataSource's id or add the version.",
            errors={PATH_FIELD: [f"Matches the dataSources {', '.join(m.reference_id for m in matches)}."]},
        )
    return matches[0]


def _source_of(wds: Any) -> Any:
    """The data source or workflow a dataSource reads (a check constraint: exactly one is set)."""
    return wds.source_data_source or wds.source_workflow


# --- rendering ----------------------------------------------------------------------------------------


def tag(version: int | None) -> str:
    """A schema version as Redivis's tag: ``v2.0``, or ``current`` when following the newest."""
    return CURRENT if version is None else f"v{version}.0"


def dataset_reference(org: str, source: DataSource, *, sample: bool, version: int | None) -> str:
    """``org.name:referenceId[:sample]:v2_0|:current`` (Redivis's escaped version)."""
    rendered = render_source(org, source.name, source.reference_id, sample=sample, version=version)
    return rendered if version is None else f"{rendered}_0"


def workflow_reference(workflow: Workflow) -> str:
    return render_workflow(workflow.organization.slug, workflow.name, workflow.reference_id)


# --- error vocabulary ---------------------------------------------------------------------------------

_Sub = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]


def _version_word(match: re.Match[str]) -> str:
    return "it has no version yet" if match[2] == "none" else f"the latest is v{match[2]}_0"


#: whole-message patterns (they keep the quoted names they carry)
_MESSAGES: list[_Sub] = [
    (re.compile(r"Data source '(.*)' has no schema version (\d+)\."), r"Dataset '\1' has no version v\2_0."),
    (re.compile(r"No version (\d+); the latest is (\d+|none)\."),
     lambda m: f"No version v{m[1]}_0; {_version_word(m)}."),
    (re.compile(r"'name:reference_id'"), "'name:referenceId'"),
]
#: native words -> the seed's, in order (specific phrases before the general nouns); never applied
#: inside a quoted value ('...'), which is the client's own text
_WORDS: list[_Sub] = [
    (re.compile(r"\bsource_data_source\b"), "sourceDataset"),
    (re.compile(r"\bsource_workflow\b"), "sourceWorkflow"),
    (re.compile(r"\bunmapped_tables\b"), "unmappedTables"),
    (re.compile(r"\bmapped_tables\b"), "mappedTables"),
    (re.compile(r"\breference_id\b"), "referenceId"),
    (re.compile(r"\{data_source\}"), "{id}"),
    (re.compile(r"Already a data source\."), "Already a dataSource of this workflow."),
    (re.compile(r"\b[Ww]orkflow data sources\b"), "dataSources"),
    (re.compile(r"\b[Ww]orkflow data source\b"), "dataSource"),
    (re.compile(r"\bhas a data source\b"), "has a dataSource"),
    (re.compile(r"\bfrom this data source\b"), "from this dataSource"),
    (re.compile(r"\bData sources\b"), "Datasets"),
    (re.compile(r"\bData source\b"), "Dataset"),
    (re.compile(r"\bdata sources\b"), "datasets"),
    (re.compile(r"\bdata source\b"), "dataset"),
]
_QUOTED = re.compile(r"('[^']*')")


def seed_words(text: str) -> str:
    """A native message in the seed's vocabulary (quoted values left as they are)."""
    for pattern, replacement in _MESSAGES:
        text = pattern.sub(replacement, text)
    parts = _QUOTED.split(text)
    for i in range(0, len(parts), 2):  # the even parts are outside quotes
        for pattern, replacement in _WORDS:
            parts[i] = pattern.sub(replacement, parts[i])
    return "".join(parts)


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camel_keys(value: Any) -> Any:
    """Every key of a native extra (``unmapped_tables``, ``reference_id``...) in camelCase."""
    if isinstance(value, dict):
        return {_camel(str(k)): camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


def seed_error(error: dict[str, Any]) -> dict[str, Any]:
    """A rendered ``{"code", "status", "message", "errors", ...extras}`` in the seed's vocabulary."""
    out: dict[str, Any] = {}
    for key, value in error.items():
        if key in ("code", "status"):
            out[key] = value
        elif key == "message":
            out[key] = seed_words(str(value))
        elif key == "errors" and isinstance(value, dict):
            out[key] = {k: [seed_words(str(m)) for m in messages] for k, messages in value.items()}
        else:
            out[_camel(key)] = camel_keys(value)
    return out
