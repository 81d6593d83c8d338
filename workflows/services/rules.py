"""The rules of a workflow's plain fields, defined once (``datasources.fields`` specs): the services
apply them to raw bodies and the API's write serializer is built from them."""

from __future__ import annotations

from typing import Any

from datasources.fields import FieldSpec, validate_fields

NAME = FieldSpec("name", "string", required=True, min_length=1, max_length=255)
DESCRIPTION = FieldSpec("description", "string", nullable=True, blank=True, max_length=10_000, default="")
#: Every writable field of a workflow body, in the API's order.
WORKFLOW_FIELDS: tuple[FieldSpec, ...] = (NAME, DESCRIPTION)
#: Keys of the representation a body may not write (refused by name, "This field is read-only.").
WORKFLOW_READ_ONLY = frozenset(
    {"kind", "id", "reference_id", "reference", "url", "organization", "version", "created_at", "created_by",
     "updated_at", "updated_by"}
)
#: Plain fields and what PUT (omitted) or ``null`` resets them to.
WORKFLOW_DEFAULTS: dict[str, Any] = {f.name: (f.default if f.has_default else None) for f in WORKFLOW_FIELDS}


def validate_workflow(data: Any, *, partial: bool) -> dict[str, Any]:
    """A workflow create/PUT (``partial=False``) or PATCH body: the API's 400s for any caller."""
    return validate_fields(WORKFLOW_FIELDS, data, partial=partial, read_only=WORKFLOW_READ_ONLY)
