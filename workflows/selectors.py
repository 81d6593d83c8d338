"""Reads of workflows, their data sources and nodes, scoped to the caller: the API, the admin, the
services and the compat adapters use these rather than building querysets of their own.

Lookups take an id or a qualified reference (``workflows.references``). Another organization's
object answers 404 (``NotFound``) exactly like an unknown one. Writes stay in ``workflows.services``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any, TypeVar, cast

from django.db import connection
from django.db.models import Field, IntegerField, Model, Prefetch, QuerySet
from django.db.models.expressions import RawSQL

from core.errors import ApiError, InvalidRequest, NotFound
from core.numbers import parse_ascii_int
from datasources.models import DataSource, SchemaSnapshot
from datasources.selectors import CompiledLookup, actor_name_annotations
from organizations.actors import Actor
from organizations.models import Organization
from workflows.models import Node, NodeInput, Workflow, WorkflowDataSource
from workflows.references import (
    CURRENT,
    InvalidReference,
    SourceReference,
    TableReference,
    escape_name,
    name_key,
    parse_source_reference,
    parse_table_reference,
    parse_workflow_reference,
    render_table,
    render_workflow,
)

M = TypeVar("M", bound=Model)

# --- references ------------------------------------------------------------------------------------


def bad_reference(field: str, exc: InvalidReference) -> InvalidRequest:
    """A 400 naming the field and the part of the reference that is wrong."""
    return InvalidRequest(f"Malformed reference in '{field}': the {exc.part} is wrong.", errors={field: [str(exc)]})


def check_org(actor: Actor, ref: SourceReference, field: str, what: str) -> None:
    """Another organization's slug answers 404, exactly like an unknown name."""
    if ref.org != actor.organization.slug.lower():
        raise NotFound(f"No such {what} in your organization.", errors={field: [f"No such {what}."]})


def pick(items: Iterable[M], ref: SourceReference, *, field: str, what: str, in_path: bool = False) -> M:
    """The one object whose reference id (wins) or escaped name matches ``ref``; 404 otherwise.

    Names are kept unique after escaping (``workflows.services``, ``datasources.services``), but rows
    written before that rule may share one: then the one spelled exactly as given is meant (as for
    tables), and a name that still matches several is ambiguous: 400 in a request body (the value sent
    is invalid), 404 in a path (it names no one object: ``workflows.paths``)."""
    if ref.reference_id is not None:
        found = [o for o in items if getattr(o, "reference_id", None) == ref.reference_id]
    else:
        key = name_key(ref.name)
        found = [o for o in items if name_key(o.name) == key]  # type: ignore[attr-defined]
        exact = [o for o in found if o.name == ref.name]  # type: ignore[attr-defined]
        if len(found) > 1 and len(exact) == 1:
            found = exact
    if not found:
        raise NotFound(f"No such {what} in your organization.", errors={field: [f"No such {what}."]})
    if len(found) > 1:
        raise ambiguous(ref, [(o.name, getattr(o, "reference_id", "")) for o in found],  # type: ignore[attr-defined]
                        field=field, what=what, in_path=in_path)
    return found[0]


def ambiguous(ref: SourceReference, found: list[tuple[str, str]], *, field: str, what: str,
              in_path: bool) -> ApiError:
    """``ref``'s name matches several objects (``found``: their names and reference ids)."""
    ids = ", ".join(f"'{name}' ({ref.org}.{escape_name(name).lower()}:{reference_id})" for name, reference_id in found)
    if in_path:
        return NotFound(f"The name '{ref.name}' is ambiguous: it names several {what}s ({ids}); use the reference "
                        "id or the id.", errors={field: [f"Ambiguous: {ids}."]})
    return InvalidRequest(f"The name '{ref.name}' matches several {what}s; add the reference id.",
                          errors={field: [f"Ambiguous: {', '.join(reference_id for _, reference_id in found)}."]})


def by_pk(qs: QuerySet[M], pk: int) -> M | None:
    """The row with this primary key, or None: ``.first()`` without its ORDER BY, which costs
    more to compile than the lookup itself on an annotated queryset."""
    return next(iter(qs.filter(pk=pk).order_by()[:1]), None)


# --- workflows -------------------------------------------------------------------------------------


def workflows_for_actor(actor: Actor) -> QuerySet[Workflow]:
    """The caller's organization's workflows with what their representation reads (the list and
    GET; search and ordering are the view's ``search_fields`` and ``ordering_fields``)."""
    return Workflow.objects.filter(organization=actor.organization).select_related(
        "organization", "created_by", "updated_by", "created_by_token", "updated_by_token"
    )


def _one(qs: Any, field: str) -> Any:
    obj = qs.first()
    if obj is None:
        raise NotFound("Workflow not found.", errors={field: ["No such workflow."]})
    return obj


def workflow_for_actor(
    actor: Actor, lookup: Any, *, for_update: bool = False, field: str = "workflow", in_path: bool = True
) -> Workflow:
    """The caller's organization's workflow by id or qualified reference; 404 otherwise (a
    malformed reference is a 400 naming ``field``). A name several workflows share (rows older than
    the rule that keeps names unique after escaping) means the one spelled exactly as given; else it
    is ambiguous: 404 in a path, 400 in a request body (``in_path=False``)."""
    qs = Workflow.objects.filter(organization=actor.organization).select_related("organization")
    if for_update:
        qs = qs.select_for_update(of=("self",))
    text = str(lookup)
    pk = parse_ascii_int(text)
    if pk is not None:
        lookup_by_pk = _WORKFLOW_LOCKED if for_update else _WORKFLOW_BY_PK
        workflow = lookup_by_pk.fetch(organization_id=actor.organization.pk, pk=pk)
        if workflow is None:
            raise NotFound("Workflow not found.")
        return workflow
    try:
        ref = parse_workflow_reference(text)
    except InvalidReference as exc:
        raise bad_reference(field, exc) from None
    check_org(actor, ref, field, "workflow")
    if ref.reference_id is not None:  # the id wins over the name
        return _one(qs.filter(reference_id=ref.reference_id), field)
    candidates = Workflow.objects.filter(organization=actor.organization).only("id", "name", "reference_id")
    return _one(qs.filter(pk=pick(candidates, ref, field=field, what="workflow", in_path=in_path).pk), field)


def workflow_name_taken(organization: Organization | int, name: str, *, exclude_pk: Any = None) -> str | None:
    """The name of another workflow of the organization that references would not tell from
    ``name`` (the same once escaped, in any case: ``Ventes été`` and ``ventes-été``), or None."""
    key = name_key(name)
    names = Workflow.objects.filter(organization=organization).exclude(pk=exclude_pk).values_list("name", flat=True)
    return next((other for other in names if name_key(other) == key), None)


def _qualified(workflows: Any) -> list[str]:
    return sorted({render_workflow(w.organization.slug, w.name, w.reference_id) for w in workflows})


def dependants_of_workflow(workflow: Workflow) -> list[str]:
    """Qualified references of the other workflows that read this workflow's output tables."""
    users = Workflow.objects.filter(data_sources__source_workflow=workflow).select_related("organization")
    return _qualified(users.exclude(pk=workflow.pk).distinct())


def dependants_of_data_source(data_source: DataSource) -> list[str]:
    """Qualified references of the workflows using this data source (answer 409 before deleting it)."""
    users = Workflow.objects.filter(data_sources__source_data_source=data_source).select_related("organization")
    return _qualified(users.distinct())


# --- workflow data sources -------------------------------------------------------------------------

#: What a representation reads of the data source a workflow data source points at.
_SOURCE_FIELDS = {"id", "organization", "reference_id", "name", "type", "schema_version"}


@cache
def _renderable() -> QuerySet[WorkflowDataSource]:
    unread = [f"source_data_source__{f.name}" for f in DataSource._meta.concrete_fields if f.name not in _SOURCE_FIELDS]
    return (
        WorkflowDataSource.objects.select_related("workflow__organization", "source_data_source", "source_workflow")
        .defer(*unread)  # its connection, secrets' metadata, test result...: loaded only if ever touched
        .annotate(**actor_name_annotations(WorkflowDataSource))  # SQL text: no per-request compile of subqueries
    )


def renderable_workflow_data_sources() -> QuerySet[WorkflowDataSource]:
    """Workflow data sources with what their representation reads, in one statement (the annotated
    queryset is built once per process: resolving its subqueries costs more than running them).
    Not scoped: filter it by a workflow already resolved for the caller, or re-read a written row."""
    return _renderable().all()


def workflow_data_sources_of(workflow: Workflow) -> QuerySet[WorkflowDataSource]:
    """A workflow's data sources, ready to render (``workflow`` comes from ``workflow_for_actor``)."""
    return renderable_workflow_data_sources().filter(workflow=workflow)


@cache
def _locked_renderable() -> QuerySet[WorkflowDataSource]:
    """The renderable queryset locking the row (only it) and reading beside it the id of the schema
    snapshot its source is at (``_snapshot_id``: its pinned version, or the newest; None for a
    workflow source or a source without one), so that a repoint reads both sources' tables at once.
    SQL text naming the table itself, like the actor names: never use it as a subquery."""
    meta, snapshots = WorkflowDataSource._meta, SchemaSnapshot._meta
    table, quote = meta.db_table, connection.ops.quote_name
    source, version = (quote(str(cast("Field", meta.get_field(name)).column))
                       for name in ("source_data_source", "source_version"))
    snapshot_sql = (
        f"SELECT s.id FROM {quote(snapshots.db_table)} s WHERE s.data_source_id = {quote(table)}.{source}"  # noqa: S608  # nosec B608
        f" AND ({quote(table)}.{version} IS NULL OR s.version = {quote(table)}.{version})"
        " ORDER BY s.version DESC LIMIT 1"
    )
    snapshot_id = RawSQL(f"({snapshot_sql})", (), output_field=IntegerField())  # noqa: S611  # nosec B611
    return _renderable().annotate(_snapshot_id=snapshot_id).select_for_update(of=("self",))


#: The hot lookups by id, compiled once per connection (``datasources.selectors.CompiledLookup``).
_WORKFLOW_BY_PK = CompiledLookup(
    lambda organization_id, pk: Workflow.objects.filter(organization_id=organization_id, pk=pk)
    .select_related("organization").order_by(), "organization_id", "pk")
_WORKFLOW_LOCKED = CompiledLookup(
    lambda organization_id, pk: Workflow.objects.filter(organization_id=organization_id, pk=pk)
    .select_related("organization").select_for_update(of=("self",)).order_by(), "organization_id", "pk")
_WDS_BY_PK = CompiledLookup(
    lambda workflow_id, pk: _renderable().filter(workflow_id=workflow_id, pk=pk).order_by(), "workflow_id", "pk")
_WDS_LOCKED = CompiledLookup(
    lambda workflow_id, pk: _locked_renderable().filter(workflow_id=workflow_id, pk=pk).order_by(), "workflow_id", "pk")
#: The GET's one statement: the caller's organization's workflow and its data source, all it renders.
_WDS_IN_ORG = CompiledLookup(
    lambda organization_id, workflow_id, pk: _renderable()
    .filter(workflow__organization_id=organization_id, workflow_id=workflow_id, pk=pk).order_by(),
    "organization_id", "workflow_id", "pk")


def renderable_workflow_data_source_for_actor(actor: Actor, workflow: Any, lookup: Any) -> WorkflowDataSource:
    """The caller's organization's workflow's data source, ready to render: by ids in one statement
    (another organization's workflow, or a data source of another workflow, finds nothing); by
    references, or when nothing was found, through ``workflow_for_actor`` and
    ``workflow_data_source_for_actor`` (their 404s and 400s)."""
    workflow_id, pk = parse_ascii_int(str(workflow)), parse_ascii_int(str(lookup))
    if workflow_id is not None and pk is not None:
        found = _WDS_IN_ORG.fetch(organization_id=actor.organization.pk, workflow_id=workflow_id, pk=pk)
        if found is not None:
            return found
    return workflow_data_source_for_actor(actor, workflow_for_actor(actor, workflow), lookup)


def workflow_data_source_for_actor(
    actor: Actor, workflow: Workflow, lookup: Any, *, for_update: bool = False, field: str = "data_source",
    in_path: bool = True,
) -> WorkflowDataSource:
    """A workflow's data source by id or by the qualified reference of its current source, with
    everything its representation reads (locked, when ``for_update``, with its snapshot id:
    ``_locked_renderable``); 404 otherwise. A name that several sources share (rows older than
    the rule that keeps names unique after escaping) means the one spelled exactly as given; else it
    is ambiguous (``pick``: 404 in a path, 400 in a body, ``in_path=False``)."""
    qs = _locked_renderable().filter(workflow=workflow) if for_update else workflow_data_sources_of(workflow)
    text = str(lookup)
    pk = parse_ascii_int(text)
    if pk is not None:
        found = (_WDS_LOCKED if for_update else _WDS_BY_PK).fetch(workflow_id=workflow.pk, pk=pk)
        if found is None:
            raise NotFound("Workflow data source not found.")
        return found
    try:
        ref = parse_source_reference(text)
    except InvalidReference as exc:
        raise bad_reference(field, exc) from None
    check_org(actor, ref, field, "workflow data source")
    key = name_key(ref.name)
    matches = []
    for wds in qs:
        source = wds.source_data_source or wds.source_workflow
        assert source is not None  # a check constraint: exactly one of the two is set
        if ref.reference_id is not None and source.reference_id != ref.reference_id:
            continue
        if ref.reference_id is None and name_key(source.name) != key:
            continue
        if ref.sample and not wds.is_sample:
            continue
        if ref.version is not None:
            if wds.source_workflow_id is not None:
                continue
            if wds.source_version != (None if ref.version == CURRENT else ref.version):
                continue
        matches.append(wds)
    if not matches:
        raise NotFound("Workflow data source not found.")
    if len({_source(m) for m in matches}) > 1:  # several sources by that name: the exact spelling, else none
        exact = [m for m in matches if _source(m).name == ref.name]
        if len({_source(m) for m in exact}) != 1:
            named = {(s.name, s.reference_id) for s in map(_source, matches)}
            raise ambiguous(ref, sorted(named), field=field, what="data source", in_path=in_path)
        matches = exact
    if len(matches) > 1:
        raise InvalidRequest(
            "Several data sources of this workflow match; use the id or add the version.",
            errors={field: [f"Matches ids {', '.join(str(m.pk) for m in matches)}."]},
        )
    return matches[0]


def _source(wds: WorkflowDataSource) -> DataSource | Workflow:
    """What a workflow data source points at: a data source (at any version) or a workflow."""
    source = wds.source_data_source or wds.source_workflow
    assert source is not None  # a check constraint: exactly one of the two is set
    return source


# --- nodes and output tables -----------------------------------------------------------------------


def nodes_for(workflow: Workflow) -> QuerySet[Node]:
    """A workflow's nodes with what their representation reads: the workflow, the actors, and the
    inputs with their sources prefetched (one statement for the nodes, one for all their inputs)."""
    inputs = NodeInput.objects.select_related(
        "workflow_data_source__source_data_source", "workflow_data_source__source_workflow"
    )
    return (
        Node.objects.filter(workflow=workflow)
        .select_related("workflow__organization", "created_by", "updated_by", "created_by_token", "updated_by_token")
        .prefetch_related(Prefetch("inputs", queryset=inputs))
    )


def node_for(workflow: Workflow, lookup: Any, *, for_update: bool = False) -> Node:
    """A workflow's node by id or by ``name[:reference_id]``; 404 otherwise."""
    qs = Node.objects.filter(workflow=workflow).select_related("workflow__organization")
    if for_update:
        qs = qs.select_for_update(of=("self",))
    text = str(lookup)
    pk = parse_ascii_int(text)
    if pk is not None:
        node = qs.filter(pk=pk).first()
    else:
        try:
            ref = parse_table_reference(text)
        except InvalidReference as exc:  # a path segment that names nothing (workflows.paths)
            raise NotFound(f"Node not found: the {exc.part} is wrong.", errors={"node": [str(exc)]}) from None
        if ref.reference_id is not None:
            node = qs.filter(reference_id=ref.reference_id).first()
        else:  # the name, escaped; among several (older rows), the exact spelling, else none
            key = name_key(ref.name)
            found = [n for n in qs if name_key(n.name) == key]
            if len(found) > 1:
                exact = [n for n in found if n.name == ref.name]
                if len(exact) != 1:
                    ids = ", ".join(f"'{n.name}' ({render_table(n.name, n.reference_id)})" for n in found)
                    raise NotFound(f"The name '{ref.name}' is ambiguous: it names several nodes ({ids}); use the "
                                   "reference id or the id.", errors={"node": [f"Ambiguous: {ids}."]})
                found = exact
            node = found[0] if found else None
    if node is None:
        raise NotFound("Node not found.")
    return node


def output_tables_of(workflow: Workflow) -> QuerySet[Node]:
    """The nodes of a workflow that output a table (what other workflows can read), by id."""
    return Node.objects.filter(workflow=workflow).exclude(output_table_name="").order_by("id")


def output_table(workflow: Workflow, ref: TableReference) -> Node:
    """The node outputting the table ``ref`` names (its reference id wins over the name); 404 otherwise."""
    for node in output_tables_of(workflow):
        if ref.reference_id == node.reference_id or (
            ref.reference_id is None and name_key(node.output_table_name) == name_key(ref.name)
        ):
            return node
    raise NotFound("Table not found.")


def first_rows_of(model: type[M], workflow: Workflow, limit: int) -> QuerySet[M]:
    """The first ``limit`` rows (by id) of a workflow's data sources or nodes: the admin's inlines."""
    first = model.objects.filter(workflow=workflow).order_by("pk").values_list("pk", flat=True)  # type: ignore[attr-defined]
    return model.objects.filter(pk__in=list(first[:limit]))  # type: ignore[attr-defined]


def readers_of_tables(data_source: DataSource, tables: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The workflows whose nodes read any of ``tables`` (reference id -> what changed) of
    ``data_source``, in one query: each with its nodes and the tables concerned (what changed)."""
    rows = (
        NodeInput.objects.filter(workflow_data_source__source_data_source=data_source,
                                 table_reference_id__in=list(tables))
        .order_by("workflow_data_source__workflow_id", "node_id", "table_reference_id")
        .values_list("workflow_data_source__workflow_id", "workflow_data_source__workflow__reference_id",
                     "workflow_data_source__workflow__name", "workflow_data_source__source_version",
                     "node__reference_id", "node__name", "table_reference_id")
    )
    found: dict[int, dict[str, Any]] = {}
    for wf_id, wf_ref, wf_name, pinned, node_ref, node_name, table_ref in rows:
        entry = found.setdefault(wf_id, {"id": wf_id, "reference_id": wf_ref, "name": wf_name,
                                         "source_version": pinned, "nodes": {}, "tables": {}})
        entry["nodes"][node_ref] = {"reference_id": node_ref, "name": node_name}
        entry["tables"][table_ref] = {"reference_id": table_ref, **tables[table_ref]}
    return [{**e, "nodes": list(e["nodes"].values()), "tables": list(e["tables"].values())} for e in found.values()]


def tables_read_from(data_source: DataSource) -> list[dict[str, Any]]:
    """Every (workflow, node, table) reading ``data_source``, in one query (the impact report)."""
    rows = (
        NodeInput.objects.filter(workflow_data_source__source_data_source=data_source)
        .order_by("workflow_data_source__workflow_id", "node_id", "id")
        .values_list("workflow_data_source__workflow_id", "workflow_data_source__workflow__reference_id",
                     "workflow_data_source__workflow__name", "node__reference_id", "node__name",
                     "node__output_table_name", "table_reference_id", "table_name")
    )
    keys = ("workflow_id", "workflow_reference_id", "workflow_name", "node_reference_id", "node_name",
            "output_table", "table_reference_id", "table_name")
    return [dict(zip(keys, row, strict=True)) for row in rows]
