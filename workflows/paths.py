"""Path segments name objects: a segment that cannot name one answers 404, like an unknown one.

A segment is an id (ASCII digits) or a reference (``workflows.references``). A malformed one is not
a bad *request* (the URL simply names nothing), so it is ``NOT_FOUND``, as DRF answers for a
non-numeric primary key; ``errors`` still says what is wrong with it. References in request bodies
stay 400: there the client sent a value that is invalid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from core.errors import NotFound
from core.numbers import is_ascii_digits
from workflows.references import (
    InvalidReference,
    parse_source_reference,
    parse_table_reference,
    parse_workflow_reference,
)

# kind -> (what is not found, parser, whether an id is accepted)
KINDS: dict[str, tuple[str, Callable[[str], Any], bool]] = {
    "workflow": ("Workflow", parse_workflow_reference, True),
    "data_source": ("Workflow data source", parse_source_reference, True),
    "node": ("Node", parse_table_reference, True),
    "table": ("Table", parse_table_reference, False),
}


def is_id(text: str) -> bool:
    return is_ascii_digits(text)


def check_path(values: Mapping[str, Any], kinds: Mapping[str, str] | None = None) -> None:
    """404 for the first path value that is neither an id nor a well-formed reference.

    ``values`` are the view's URL kwargs; ``kinds`` maps a kwarg name to its kind when they differ
    (``{"workflowReference": "workflow"}``).
    """
    kinds = kinds or {name: name for name in KINDS}
    for name, kind in kinds.items():
        value = values.get(name)
        if value is None:
            continue
        what, parse, ids = KINDS[kind]
        text = str(value)
        if ids and is_id(text):
            continue
        try:
            parse(text)
        except InvalidReference as exc:
            accepted = "an id or a reference" if ids else "a reference"
            raise NotFound(f"{what} not found: '{name}' is not {accepted} ({exc.part}: {exc.problem})",
                           errors={name: [f"Not {accepted}: {exc.part}: {exc.problem}"]}) from None
