"""Create, update and delete nodes: their inputs (tables of the workflow's sources) and output table."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from core.errors import ApiError, Conflict, InvalidRequest, PreconditionFailed
from core.references import new_reference_id
from datasources.services import audit
from organizations.actors import Actor
from workflows.mapping import Table, named
from workflows.models import Node, NodeInput, Workflow
from workflows.references import InvalidReference, escape_name, name_key, parse_table_reference, render_table
from workflows.selectors import node_for
from workflows.services.common import (
    etag_matches,
    get_workflow,
    get_workflow_data_source,
    lock_organization,
    stamp,
)
from workflows.services.sources import tables_of, target_of

#: A workflow's node by id or by ``name[:reference_id]``; 404 otherwise.
get_node = node_for


def _resolve_inputs(actor: Actor, wf: Workflow, inputs: list[dict[str, Any]]) -> list[tuple[int, Table]]:
    """Each input -> (workflow data source id, table), checked against the source's current tables."""
    resolved: dict[tuple[int, str], Table] = {}
    tables: dict[int, tuple[dict[str, Table], dict[str, list[Table]]]] = {}
    errors: dict[str, list[str]] = {}
    for i, item in enumerate(inputs):
        try:
            wds = get_workflow_data_source(actor, wf, item["data_source"], field=f"inputs.{i}.data_source",
                                           in_path=False)
        except ApiError as exc:
            errors[f"inputs.{i}.data_source"] = [exc.message]
            continue
        if wds.pk not in tables:
            by_ref: dict[str, Table] = {}
            by_name: dict[str, list[Table]] = {}
            for t in tables_of(target_of(wds)):
                by_ref[t.table.reference_id] = t.table
                by_name.setdefault(name_key(t.table.name), []).append(t.table)
            tables[wds.pk] = (by_ref, by_name)
        by_ref, by_name = tables[wds.pk]
        try:
            ref = parse_table_reference(item["table"])
        except InvalidReference as exc:
            errors[f"inputs.{i}.table"] = [str(exc)]
            continue
        if ref.reference_id is not None:  # the id wins over the name
            found = [by_ref[ref.reference_id]] if ref.reference_id in by_ref else []
        else:
            found = named(by_name, ref.name)
        if len(found) != 1:
            problem = "names several tables; add the reference id" if found else "is not a table of this source"
            errors[f"inputs.{i}.table"] = [f"'{item['table']}' {problem}."]
            continue
        resolved[(wds.pk, found[0].reference_id)] = found[0]
    if errors:
        raise InvalidRequest("Some inputs do not name a table of one of the workflow's data sources.", errors=errors)
    return [(wds_id, table) for (wds_id, _), table in resolved.items()]


def _readers_elsewhere(node: Node) -> list[str]:
    rows = NodeInput.objects.filter(
        workflow_data_source__source_workflow_id=node.workflow_id, table_reference_id=node.reference_id
    ).values_list("node__workflow__name", "node__name")
    return sorted({f"{w} / {n}" for w, n in rows})


def _check_output(wf: Workflow, node: Node, output: dict[str, Any] | None) -> None:
    if output is None:
        readers = _readers_elsewhere(node) if node.pk and node.output_table_name else []
        if readers:
            raise Conflict(
                f"Other workflows read this node's output table: {', '.join(readers)}.",
                errors={"output_table": readers},
            )
        return
    if not output.get("name"):
        raise InvalidRequest("An output table needs a name.", errors={"output_table.name": ["This field is required."]})
    key = name_key(output["name"])
    others = Node.objects.filter(workflow=wf).exclude(pk=node.pk).exclude(output_table_name="")
    if any(name_key(n) == key for n in others.values_list("output_table_name", flat=True)):
        raise Conflict(
            "Another node of this workflow already outputs a table with this name.",
            errors={"output_table.name": ["Already an output table of this workflow."]},
        )


def _state(node: Node, inputs: list[tuple[int, str, str]]) -> dict[str, Any]:
    """What an audit event compares: name, kind, inputs and output table."""
    return {
        "name": node.name,
        "kind": node.kind,
        "inputs": [f"{ds}:{render_table(name, ref)}" for ds, ref, name in sorted(inputs)],
        "output_table": {"name": node.output_table_name, "columns": node.output_columns}
        if node.output_table_name
        else None,
    }


def _save(node: Node, *, named: bool) -> None:
    """Save; a new name (``named``) unless another node of the workflow has it as references compare
    names (escaped, in any case), so that a node's path ``nodes/{name}/`` names one node."""
    conflict = Conflict("A node with this name already exists in this workflow.", errors={"name": ["Taken."]})
    if named:
        key = name_key(node.name)
        names = Node.objects.filter(workflow_id=node.workflow_id).exclude(pk=node.pk).values_list("name", flat=True)
        other = next((n for n in names if name_key(n) == key), None)
        if other is not None and other.lower() != node.name.lower():
            escaped = escape_name(node.name).lower()
            raise Conflict(f"Node '{other}' of this workflow already has this name as references read it "
                           f"('{escaped}': case, spaces and punctuation aside): choose another name.",
                           errors={"name": [f"References would not tell it from node '{other}' ({escaped})."]})
        if other is not None:
            raise conflict
    try:
        with transaction.atomic():
            node.save()
    except IntegrityError as exc:
        raise conflict from exc


def _write(actor: Actor, wf: Workflow, node: Node, data: dict[str, Any]) -> dict[str, Any]:
    created = node.pk is None
    stored = [] if created else list(
        node.inputs.values_list("workflow_data_source_id", "table_reference_id", "table_name")
    )
    before = {} if created else _state(node, stored)
    old_output = node.output_table_name
    inputs = _resolve_inputs(actor, wf, data["inputs"]) if "inputs" in data else None
    if "name" in data:
        node.name = data["name"]
    if data.get("kind"):
        node.kind = data["kind"]
    if "output_table" in data:
        output = data["output_table"]
        if output is not None and node.output_table_name:
            output = {"name": node.output_table_name, "columns": node.output_columns, **output}
        _check_output(wf, node, output)
        node.output_table_name = output["name"] if output else ""
        node.output_columns = list(output.get("columns") or []) if output else []
    rows = stored if inputs is None else [(d, t.reference_id, t.name) for d, t in inputs]
    changes = {k: {"old": before.get(k), "new": v} for k, v in _state(node, rows).items() if before.get(k) != v}
    if not changes:
        return changes
    if old_output and node.output_table_name and node.output_table_name != old_output:
        # Downstream workflows hold the table by id and name: keep the name they show current.
        NodeInput.objects.filter(
            workflow_data_source__source_workflow_id=wf.pk, table_reference_id=node.reference_id
        ).update(table_name=node.output_table_name)
    stamp(node, actor, created=created)
    if not created:
        node.version += 1
    _save(node, named="name" in changes)
    if inputs is not None:
        NodeInput.objects.filter(node=node).delete()
        NodeInput.objects.bulk_create(
            [NodeInput(node=node, workflow_data_source_id=d, table_reference_id=t.reference_id, table_name=t.name)
             for d, t in inputs]
        )
    return changes


def create_node(*, actor: Actor, workflow: Any, data: dict[str, Any]) -> Node:
    """Create a node reading tables of the workflow's data sources.

    Node writes lock the organization, then the workflow (``lock_organization``): an input may name
    an output table of another workflow, whose deletion (``delete_node``, ``update_node`` removing
    it) checks for readers elsewhere. Both hold the organization's lock while they read and write, so
    one sees what the other committed: the table is gone (400) or its new reader is there (409)."""
    with transaction.atomic():
        lock_organization(actor)
        wf = get_workflow(actor, workflow, for_update=True)
        node = Node(workflow=wf, reference_id=new_reference_id(Node))
        changes = _write(actor, wf, node, {"inputs": [], **data})
        audit.record(actor=actor, action="create", target=node, changes=changes)
    return node


def update_node(
    *, actor: Actor, workflow: Any, node: Any, data: dict[str, Any], if_match: str | None = None
) -> Node:
    """PATCH a node: only what was sent; ``inputs`` replaces the list; ``output_table`` merges (null removes).
    Locks as ``create_node`` does (its inputs and output table concern other workflows too)."""
    with transaction.atomic():
        lock_organization(actor)
        wf = get_workflow(actor, workflow, for_update=True)
        current = get_node(wf, node, for_update=True)
        if not etag_matches(current, if_match):
            raise PreconditionFailed()
        changes = _write(actor, wf, current, data)
        if changes:
            audit.record(actor=actor, action="update", target=current, changes=changes)
    return current


def delete_node(*, actor: Actor, workflow: Any, node: Any, if_match: str | None = None) -> None:
    """Delete a node unless other workflows read its output table (409 naming them). Locks as
    ``create_node`` does, so no reader is being added meanwhile."""
    with transaction.atomic():
        lock_organization(actor)
        wf = get_workflow(actor, workflow, for_update=True)
        current = get_node(wf, node, for_update=True)
        if not etag_matches(current, if_match):
            raise PreconditionFailed()
        _check_output(wf, current, None)
        audit.record(actor=actor, action="delete", target=current, changes={"name": {"old": current.name, "new": None}})
        current.delete()
