"""Repoint a workflow data source: plan the table mapping, then rewrite every node reference at once.

The plan is computed from one read of the data source's node inputs; applying it is a constant
number of statements whatever the number of nodes (``repoint_reads``: the read, summed up per table
on PostgreSQL; ``repoint_writes``: the readers' new versions, then the inputs rewritten in chunks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.errors import ApiError, Conflict, ErrorCode, InvalidRequest, PreconditionFailed
from core.write_batch import write_batch
from datasources.services import audit
from eventlog.services import publish
from organizations.actors import Actor
from workflows.mapping import MappingError, Match, Table, column_changes, plan_mapping
from workflows.models import Workflow, WorkflowDataSource
from workflows.services.common import etag_matches, get_workflow, get_workflow_data_source, lock_organization, stamp
from workflows.services.repoint_reads import Inputs, read_inputs
from workflows.services.repoint_writes import bump_readers, rewrite_inputs, write_repointed
from workflows.services.sources import (
    Target,
    check_no_cycle,
    ensure_org,
    resolve_target,
    source_reference,
    source_repr,
    tables_of,
    tables_of_both,
    target_of,
)


@dataclass
class RepointResult:
    """The data source after the change (or unchanged for a dry run) and the plan. A dry run's plan
    lists each table's nodes ({id, reference_id, name}); an applied one's may list node ids only
    (PostgreSQL: a write does not read the nodes' rows; its audit record names them by reference id)."""

    data_source: WorkflowDataSource
    plan: dict[str, Any]
    dry_run: bool = False
    changed: bool = True


@dataclass
class _Computed:
    plan: dict[str, Any]
    matches: list[Match]
    inputs: Inputs
    node_ids: list[int]  # the nodes reading the data source


def _table(table: Table) -> dict[str, str]:
    return {"name": table.name, "reference_id": table.reference_id, "reference": table.reference}


def _mapping_error(error: MappingError, readers: dict[str, list[dict[str, Any]]]) -> ApiError:
    unmapped = [
        {
            "table": _table(u.table),
            "reason": u.reason,
            "candidates": [_table(c) for c in u.candidates],
            "nodes": readers.get(u.table.reference_id, []),
        }
        for u in error.unmapped
    ]
    if error.bad_keys or error.bad_targets:
        errors = {f"mapped_tables.{key}": [why] for key, why in {**error.bad_keys, **error.bad_targets}.items()}
        return InvalidRequest(
            "Some mapped_tables entries do not match a table read downstream or a table of the new source.",
            errors=errors,
            extra={"unmapped_tables": unmapped} if unmapped else None,
        )
    errors = {}
    for u in error.unmapped:
        nodes = ", ".join(f"'{r['name']}'" for r in readers.get(u.table.reference_id, []))
        why = "names several tables" if u.reason == "ambiguous" else "has no table"
        errors[f"mapped_tables.{u.table.reference}"] = [
            f"Read by {nodes}; {why} in the new source. Map it in mapped_tables."
        ]
    listed = ", ".join(u.table.reference for u in error.unmapped)
    return ApiError(
        f"Tables read downstream have no table in the new source: {listed}.",
        code=ErrorCode.UNMAPPED_TABLES,
        errors=errors,
        extra={"unmapped_tables": unmapped},
    )


def compute_plan(wds: WorkflowDataSource, target: Target, mapped_tables: Mapping[str, str] | None, *,
                 named: bool = True) -> _Computed:
    """Map every table read downstream to the target's tables; raise 400s listing every problem.
    ``named=False`` (a write's): on PostgreSQL each table's ``nodes`` are node ids (``read_inputs``),
    which the audit names with the reference ids its UPDATE answers (``_compact``); a 400 names
    them all the same."""
    current = target_of(wds)
    inputs = read_inputs(wds.pk, named=named)
    readers = inputs.readers
    # The old source's tables only matter when tables are read (each must map: no match otherwise).
    # (Or when entries are given: a key may name a table of the old source nobody reads.)
    both = inputs.tables or mapped_tables
    old_tables, new_tables = tables_of_both(current, target) if both else (None, tables_of(target))
    try:
        matches = plan_mapping(
            inputs.tables,
            [t.table for t in new_tables],
            mapped_tables or {},
            match_reference_ids=current.lineage == target.lineage,
            current=[t.table for t in old_tables or []],
        )
    except MappingError as error:
        raise _mapping_error(error, readers if inputs.named else read_inputs(wds.pk).readers) from None
    old_columns = {t.table.reference_id: t.columns for t in old_tables or []}
    new_columns = {t.table.reference_id: t.columns for t in new_tables}
    org = wds.workflow.organization.slug
    tables, rewritten, node_ids = [], 0, inputs.node_ids()
    for match in sorted(matches, key=lambda m: (m.old.name.casefold(), m.old.reference_id)):
        ref = match.old.reference_id
        changed = match.new.reference_id != ref or inputs.names[ref] != {match.new.name}
        nodes = readers.get(ref, []) if inputs.named else inputs.ids.get(ref, [])
        rewritten += inputs.counts.get(ref, 0) if changed else 0
        tables.append(
            {
                "old": _table(match.old),
                "new": _table(match.new),
                "matched_by": match.matched_by,
                "reference_changed": changed,
                "nodes": nodes,
                "column_changes": column_changes(old_columns.get(ref), new_columns.get(match.new.reference_id, [])),
            }
        )
    plan = {
        "from": source_repr(current, org),
        "to": source_repr(target, org),
        "tables": tables,
        "merged_tables": _merged(matches),
        "nodes_affected": len(node_ids),
        "inputs_rewritten": rewritten,
    }
    return _Computed(plan, matches, inputs, node_ids)


def _merged(matches: list[Match]) -> list[dict[str, Any]]:
    """Tables read downstream that map onto one new table: a node that read several of them reads
    it once afterwards (its duplicate inputs are dropped), so the plan says so."""
    onto: dict[str, list[Match]] = {}
    for match in matches:
        onto.setdefault(match.new.reference_id, []).append(match)
    return [
        {"new": _table(group[0].new), "old": [_table(m.old) for m in sorted(group, key=lambda m: m.old.reference)]}
        for _, group in sorted(onto.items(), key=lambda item: item[1][0].new.reference)
        if len(group) > 1
    ]


def _check_duplicate(wds: WorkflowDataSource, target: Target) -> None:
    """409 when another data source of the workflow points at the target (a data source was read
    with the answer: ``resolve_target(duplicate_of=...)``)."""
    if target.workflow is not None:
        others = WorkflowDataSource.objects.filter(workflow_id=wds.workflow_id).exclude(pk=wds.pk)
        clash = others.filter(source_workflow=target.workflow).exists()
    else:
        clash = target.data_source._duplicate  # type: ignore[union-attr]
    if clash:
        raise Conflict(
            "This workflow already has a data source pointing at that source.",
            errors={"source_workflow" if target.workflow else "source_data_source": ["Already a data source."]},
        )


def _checked_target(
    actor: Actor, wf: Workflow, wds: WorkflowDataSource, source_data_source: str | None, source_workflow: str | None,
    *, lock: bool = False,
) -> Target:
    """The new source, checked: of the caller's organization, no cycle, not a duplicate. ``lock`` (a
    write's): a data source target's row is locked as it is read, so its deletion waits for the
    repoint and then sees it as a dependant (409), or came first and the repoint answers 404."""
    target = resolve_target(actor, source_data_source=source_data_source, source_workflow=source_workflow,
                            duplicate_of=wds, lock=lock)
    ensure_org(actor, target)
    check_no_cycle(wf, target)
    _check_duplicate(wds, target)
    return target


def repoint(
    *,
    actor: Actor,
    workflow: Any,
    data_source: Any,
    source_data_source: str | None = None,
    source_workflow: str | None = None,
    mapped_tables: Mapping[str, str] | None = None,
    dry_run: bool = False,
    if_match: str | None = None,
) -> RepointResult:
    """Point a workflow data source at a new source, remapping the tables its nodes read, atomically.

    A dry run reads without locks. A change locks first (no unlocked reads before), in the order
    every workflow write takes them: the organization when the new source is a workflow
    (``lock_organization``: it serialises cycle checks and that workflow's deletion), the workflow,
    the workflow data source, then a data source target as it is read (its deletion waits). A
    repoint onto a data source has nothing of another workflow to check, so it leaves the
    organization alone: repoints of different workflows run side by side. The checks then run in
    the same order as a dry run's, so the answers are the same: 404 workflow, 404 data source, 412,
    then the new source's 400/404/409s. The returned data source is the written instance, ready to
    render (no re-read)."""
    if dry_run:
        wf = get_workflow(actor, workflow)
        wds = get_workflow_data_source(actor, wf, data_source)
        if not etag_matches(wds, if_match):
            raise PreconditionFailed()
        target = _checked_target(actor, wf, wds, source_data_source, source_workflow)
        return RepointResult(wds, {"dry_run": True, **compute_plan(wds, target, mapped_tables).plan}, dry_run=True)
    with transaction.atomic():
        if source_data_source is None:  # a workflow (or no valid) target: cycle checks, its deletion
            lock_organization(actor)
        wf = get_workflow(actor, workflow, for_update=True)
        wds = get_workflow_data_source(actor, wf, data_source, for_update=True)
        if not etag_matches(wds, if_match):
            raise PreconditionFailed()
        target = _checked_target(actor, wf, wds, source_data_source, source_workflow, lock=True)
        computed = compute_plan(wds, target, mapped_tables, named=False)
        plan = {"dry_run": False, **computed.plan}
        if target_of(wds).identity == target.identity and not plan["inputs_rewritten"]:
            return RepointResult(wds, plan, changed=False)
        old_reference = source_reference(target_of(wds), wf.organization.slug)
        wds.source_data_source, wds.source_workflow = target.data_source, target.workflow
        wds.source_version, wds.is_sample = target.version, target.is_sample
        stamp(wds, actor)
        wds.version += 1
        wds.updated_at = timezone.now()
        _renamed_updater(wds, actor)
        reference_ids = bump_readers(wds, computed.node_ids)
        with write_batch(prepare=False):  # PostgreSQL: the other writes, audit and outbox in one statement
            by_old = {m.old.reference_id: m.new for m in computed.matches}
            rewrite_inputs(wds.pk, by_old, computed.inputs.names, computed.inputs.duplicates(by_old))
            write_repointed(wds)
            audit.record(
                actor=actor,
                action="repoint",
                target=wds,
                changes={"source": {"old": old_reference, "new": plan["to"]["reference"]}},
                detail={"plan": _compact(plan, None if computed.inputs.named else reference_ids)},
            )
            publish(organization_id=wf.organization_id, type="workflow.repointed", data=_event(wf, wds, plan, actor))
    return RepointResult(wds, plan)


def _renamed_updater(wds: WorkflowDataSource, actor: Actor) -> None:
    """The names the representation reads for who updated the row (read with it as annotations):
    now the actor's, as ``stamp`` set them."""
    wds._updated_by_token_name = actor.token.name if actor.token is not None else None  # type: ignore[attr-defined]
    user = actor.user
    wds._updated_by_user_name = (  # type: ignore[attr-defined]
        user.get_username() if user is not None and getattr(user, "pk", None) else None)


_SOURCE_KEYS = ("type", "id", "reference_id", "name", "reference")


def _event(wf: Workflow, wds: WorkflowDataSource, plan: dict[str, Any], actor: Actor) -> dict[str, Any]:
    """The ``workflow.repointed`` payload: references, names and counts (no connection detail)."""
    return {
        "workflow": {"id": wf.pk, "reference_id": wf.reference_id, "name": wf.name},
        "workflow_data_source": {"id": wds.pk, "reference_id": wds.reference_id},
        "from": {key: plan["from"].get(key) for key in _SOURCE_KEYS},
        "to": {key: plan["to"].get(key) for key in _SOURCE_KEYS},
        "tables_remapped": sum(1 for t in plan["tables"] if t["reference_changed"]),
        "nodes_affected": plan["nodes_affected"],
        "inputs_rewritten": plan["inputs_rewritten"],
        "actor": actor.label,
    }


def _compact(plan: dict[str, Any], reference_ids: dict[int, str] | None) -> dict[str, Any]:
    """The plan for the audit log: node reference ids instead of node objects (or of node ids, given
    ``reference_ids``: node id -> reference id)."""
    if reference_ids is None:
        tables = [{**t, "nodes": [n["reference_id"] for n in t["nodes"]]} for t in plan["tables"]]
    else:
        tables = [{**t, "nodes": [reference_ids[n] for n in t["nodes"]]} for t in plan["tables"]]
    return {**plan, "tables": tables}
