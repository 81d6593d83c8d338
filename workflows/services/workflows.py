"""Create, update and delete workflows (who depends on one: ``workflows.selectors``)."""

from __future__ import annotations

from typing import Any, Literal

from django.db import IntegrityError, transaction

from core.errors import Conflict, InvalidRequest, PreconditionFailed
from core.references import escape_name, new_reference_id
from datasources.services import audit
from organizations.actors import Actor
from workflows.models import Workflow
from workflows.selectors import dependants_of_data_source, dependants_of_workflow, workflow_name_taken
from workflows.services import rules
from workflows.services.common import etag_matches, get_workflow, lock_organization, stamp

__all__ = ["create_workflow", "delete_workflow", "dependants_of_data_source", "dependants_of_workflow",
           "update_workflow"]

FIELDS = rules.WORKFLOW_DEFAULTS  # defined once, with their rules, in workflows/services/rules.py


def _name_conflict(name: str, other: str | None) -> Conflict:
    """409 naming ``other``, the workflow that has ``name`` (as references compare names) already."""
    if other is None or other.lower() == name.lower():
        return Conflict(
            "A workflow with this name already exists in your organization" + (f": '{other}'." if other else "."),
            errors={"name": ["A workflow with this name already exists."]},
        )
    escaped = escape_name(name).lower()
    return Conflict(
        f"Workflow '{other}' already has this name as references read it ('{escaped}': case, spaces and "
        "punctuation aside): choose another name.",
        errors={"name": [f"References would not tell it from workflow '{other}' ({escaped})."]},
    )


def _save(workflow: Workflow, *, named: bool) -> None:
    """Save; a new name (``named``) unless another workflow of the organization has it as references
    compare names (escaped, in any case: ``workflows.references``), so that ``org.name`` names one
    workflow. The caller holds the organization's lock: two such names cannot pass this check at once."""
    other = workflow_name_taken(workflow.organization_id, workflow.name, exclude_pk=workflow.pk) if named else None
    if other is not None:
        raise _name_conflict(workflow.name, other)
    try:
        with transaction.atomic():
            workflow.save()
    except IntegrityError as exc:  # the database's own rule (case-insensitive), should the lock be bypassed
        raise _name_conflict(workflow.name, None) from exc


def create_workflow(*, actor: Actor, data: dict[str, Any]) -> Workflow:
    """Create a workflow and audit it."""
    data = rules.validate_workflow(data, partial=False)  # the field rules, whoever calls
    workflow = Workflow(
        organization=actor.organization, name=data["name"], description=data.get("description") or ""
    )
    with transaction.atomic():
        lock_organization(actor)  # its name is checked against the others' (``_save``)
        workflow.reference_id = new_reference_id(Workflow)
        stamp(workflow, actor, created=True)
        _save(workflow, named=True)
        changes = {"name": {"old": None, "new": workflow.name}}
        audit.record(actor=actor, action="create", target=workflow, changes=changes)
    return workflow


def update_workflow(
    *, actor: Actor, workflow: Any, data: dict[str, Any], mode: Literal["patch", "put"], if_match: str | None = None
) -> Workflow:
    """PATCH (only what was sent) or PUT (everything; omitted fields reset) a workflow."""
    try:
        data = rules.validate_workflow(data, partial=mode == "patch")  # the field rules, whoever calls
    except InvalidRequest:
        get_workflow(actor, workflow)  # an unknown workflow is a 404 before the body's 400, as in the API
        raise
    with transaction.atomic():
        # First, as every workflow write (a new name is checked against the others' under it, ``_save``).
        lock_organization(actor)
        wf = get_workflow(actor, workflow, for_update=True)
        if not etag_matches(wf, if_match):
            raise PreconditionFailed()
        changes = {}
        for key, default in FIELDS.items():
            if mode == "patch" and key not in data:
                continue
            value = data.get(key)
            new = default if value is None else value
            if new is not None and new != getattr(wf, key):
                changes[key] = {"old": getattr(wf, key), "new": new}
                setattr(wf, key, new)
        if not changes:
            return wf
        stamp(wf, actor)
        wf.version += 1
        _save(wf, named="name" in changes)
        audit.record(actor=actor, action="update", target=wf, changes=changes, detail={"method": mode.upper()})
    return wf


def delete_workflow(*, actor: Actor, workflow: Any, if_match: str | None = None) -> None:
    """Delete a workflow unless another workflow still reads it (409 naming them)."""
    with transaction.atomic():
        # The organization lock serialises this check against a concurrent "add it as a source".
        lock_organization(actor)
        wf = get_workflow(actor, workflow, for_update=True)
        if not etag_matches(wf, if_match):
            raise PreconditionFailed()
        dependants = dependants_of_workflow(wf)
        if dependants:
            raise Conflict(
                f"Workflow '{wf.name}' is still a source of: {', '.join(dependants)}.",
                errors={"dependants": dependants},
                extra={"dependants": dependants},
            )
        audit.record(actor=actor, action="delete", target=wf, changes={"name": {"old": wf.name, "new": None}})
        wf.delete()
