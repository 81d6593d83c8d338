"""What a workflow data source points at: resolving targets, their tables, cycles, representations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Subquery

from core.errors import InvalidRequest, NotFound
from datasources.models import DataSource, SchemaSnapshot, SchemaTable
from organizations.actors import Actor
from workflows.mapping import Table
from workflows.models import Node, Workflow, WorkflowDataSource
from workflows.references import (
    CURRENT,
    InvalidReference,
    name_key,
    parse_source_reference,
    parse_workflow_reference,
    render_source,
    render_workflow,
)
from workflows.services.common import bad_reference, check_org, get_workflow, pick

MAX_DEPTH = 1000  # a workflow graph deeper than this is refused rather than walked forever


@dataclass(frozen=True)
class Target:
    """A source: a data source at a version (None = current), maybe a sample, or a workflow."""

    data_source: DataSource | None = None
    version: int | None = None
    is_sample: bool = False
    workflow: Workflow | None = None

    @property
    def lineage(self) -> tuple[str, int]:
        """Same lineage = same data source or same workflow: only then are table reference ids comparable."""
        if self.data_source is not None:
            return ("data_source", self.data_source.pk)
        assert self.workflow is not None
        return ("workflow", self.workflow.pk)

    @property
    def identity(self) -> tuple[Any, ...]:
        """Two workflow data sources with the same identity would be duplicates."""
        return (*self.lineage, self.version, self.is_sample)


@dataclass(frozen=True)
class SourceTable:
    """A table of a source with its columns."""

    table: Table
    columns: list[dict] = field(default_factory=list, hash=False, compare=False)


def target_of(wds: WorkflowDataSource) -> Target:
    """The current target of a workflow data source."""
    return Target(
        data_source=wds.source_data_source,
        version=wds.source_version,
        is_sample=wds.is_sample,
        workflow=wds.source_workflow,
    )


def resolve_target(actor: Actor, *, source_data_source: str | None, source_workflow: str | None) -> Target:
    """Parse and resolve the one given qualified reference to a Target of the caller's organization."""
    if (source_data_source is None) == (source_workflow is None):
        message = "Give exactly one of source_data_source and source_workflow."
        raise InvalidRequest(message, errors={"source_data_source": [message], "source_workflow": [message]})
    if source_workflow is not None:
        try:
            parse_workflow_reference(source_workflow)
        except InvalidReference as exc:
            raise bad_reference("source_workflow", exc) from None
        return Target(workflow=get_workflow(actor, source_workflow, field="source_workflow"))
    assert source_data_source is not None
    try:
        ref = parse_source_reference(source_data_source)
    except InvalidReference as exc:
        raise bad_reference("source_data_source", exc) from None
    check_org(actor, ref, "source_data_source", "data source")
    sources = DataSource.objects.filter(organization=actor.organization).only("id", "name", "reference_id")
    if ref.reference_id is not None:
        sources = sources.filter(reference_id=ref.reference_id)
    found = pick(sources, ref, field="source_data_source", what="data source")
    data_source = DataSource.objects.select_related("organization").get(pk=found.pk)
    version = None if ref.version in (None, CURRENT) else int(ref.version)
    if version is not None and not SchemaSnapshot.objects.filter(data_source=data_source, version=version).exists():
        latest = data_source.schema_version
        raise InvalidRequest(
            f"Data source '{data_source.name}' has no schema version {version}.",
            errors={"source_data_source": [f"No version {version}; the latest is {latest or 'none'}."]},
        )
    return Target(data_source=data_source, version=version, is_sample=ref.sample)


def _display_names(rows: list[tuple[str, str, str, Any]]) -> dict[str, str]:
    """Table names as referenced: the bare name, or ``schema.name`` when the name repeats across schemas."""
    counts: dict[str, int] = {}
    for _, _, name, _ in rows:
        counts[name_key(name)] = counts.get(name_key(name), 0) + 1
    return {
        ref: (f"{schema}.{name}" if counts[name_key(name)] > 1 and schema else name) for ref, schema, name, _ in rows
    }


def _snapshot_id(target: Target) -> Subquery:
    """The id of the schema snapshot a data-source target reads (its pinned version, or the newest),
    as a subquery: the tables are then read in one statement."""
    assert target.data_source is not None
    snapshots = SchemaSnapshot.objects.filter(data_source=target.data_source)
    if target.version is not None:
        snapshots = snapshots.filter(version=target.version)
    return Subquery(snapshots.order_by("-version").values("id")[:1])


def tables_of(target: Target) -> list[SourceTable]:
    """Every table the target offers: a snapshot's tables, or a workflow's output tables."""
    if target.workflow is not None:
        outputs = (
            Node.objects.filter(workflow=target.workflow)
            .exclude(output_table_name="")
            .values_list("reference_id", "output_table_name", "output_columns")
        )
        return [SourceTable(Table(ref, name), columns or []) for ref, name, columns in outputs]
    rows = list(
        SchemaTable.objects.filter(snapshot_id=_snapshot_id(target)).values_list(
            "reference_id", "schema", "name", "columns"
        )
    )
    names = _display_names(rows)
    return [SourceTable(Table(ref, names[ref]), columns or []) for ref, _, _, columns in rows]


def upstream_path(start: Workflow, goal_id: int) -> list[int] | None:
    """Workflow ids from ``start`` up through its sources to ``goal_id``, or None when unreachable."""
    parents: dict[int, int | None] = {start.pk: None}
    frontier = [start.pk]
    for _ in range(MAX_DEPTH):
        if goal_id in parents:
            path: list[int] = []
            node: int | None = goal_id
            while node is not None:
                path.append(node)
                node = parents[node]
            return list(reversed(path))
        if not frontier:
            return None
        edges = WorkflowDataSource.objects.filter(workflow_id__in=frontier, source_workflow__isnull=False)
        frontier = []
        for child, parent in edges.values_list("workflow_id", "source_workflow_id"):
            if parent not in parents:
                parents[parent] = child
                frontier.append(parent)
    raise InvalidRequest("The workflow graph is too deep.", errors={"source_workflow": ["Too many levels."]})


def check_no_cycle(workflow: Workflow, target: Target) -> None:
    """A workflow may not read itself, directly or through other workflows."""
    if target.workflow is None:
        return
    path = upstream_path(target.workflow, workflow.pk)
    if path is None:
        return
    names = dict(Workflow.objects.filter(pk__in=path).values_list("pk", "name"))
    chain = " → ".join([workflow.name, *(names[p] for p in path)])
    raise InvalidRequest(
        "A workflow cannot use itself as a source, directly or through other workflows.",
        errors={"source_workflow": [f"This would create a cycle: {chain}."]},
    )


def ensure_org(actor: Actor, target: Target) -> None:
    """Belt and braces: a target is always of the caller's organization."""
    source = target.data_source or target.workflow
    if source is None or source.organization_id != actor.organization.pk:
        raise NotFound("No such source in your organization.")


def source_reference(target: Target, org_slug: str) -> str:
    """The qualified reference of a target."""
    if target.workflow is not None:
        return render_workflow(org_slug, target.workflow.name, target.workflow.reference_id)
    assert target.data_source is not None
    ds = target.data_source
    return render_source(org_slug, ds.name, ds.reference_id, sample=target.is_sample, version=target.version)


def source_repr(target: Target, org_slug: str) -> dict[str, Any]:
    """The ``source`` object of a workflow data source's representation."""
    if target.workflow is not None:
        wf = target.workflow
        return {
            "type": "workflow",
            "id": wf.pk,
            "reference_id": wf.reference_id,
            "name": wf.name,
            "reference": source_reference(target, org_slug),
            "version": wf.version,
            "resolved_version": wf.version,
            "is_sample": False,
            "url": f"/api/v1/workflows/{wf.pk}/",
        }
    ds = target.data_source
    assert ds is not None
    return {
        "type": "data_source",
        "id": ds.pk,
        "reference_id": ds.reference_id,
        "name": ds.name,
        "reference": source_reference(target, org_slug),
        "version": CURRENT if target.version is None else target.version,
        "resolved_version": ds.schema_version if target.version is None else target.version,
        "is_sample": target.is_sample,
        "url": f"/api/v1/data-sources/{ds.pk}/",
    }
