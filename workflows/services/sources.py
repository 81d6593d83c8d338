"""What a workflow data source points at: resolving targets, their tables, cycles, representations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import BooleanField, IntegerField, QuerySet, Subquery
from django.db.models.expressions import RawSQL

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
NOT_READ = -1  # a Target's snapshot id that was not read with it (ids are positive)
#: What the services and representations read of a target data source.
SOURCE_FIELDS = ("id", "organization", "reference_id", "name", "type", "schema_version")


@dataclass(frozen=True)
class Target:
    """A source: a data source at a version (None = current), maybe a sample, or a workflow."""

    data_source: DataSource | None = None
    version: int | None = None
    is_sample: bool = False
    workflow: Workflow | None = None
    #: A data source's schema snapshot at ``version`` (the newest for None), when read with it:
    #: None when it has none, NOT_READ when it was not read (``tables_of`` then looks it up).
    snapshot_id: int | None = field(default=NOT_READ, compare=False)

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
    """The current target of a workflow data source (with its snapshot id when it was read beside
    the row: ``workflows.selectors``' locked read)."""
    return Target(
        data_source=wds.source_data_source,
        version=wds.source_version,
        is_sample=wds.is_sample,
        workflow=wds.source_workflow,
        snapshot_id=getattr(wds, "_snapshot_id", NOT_READ) if wds.source_data_source_id else NOT_READ,
    )


def _read_beside(
    sources: QuerySet[DataSource], version: int | None, sample: bool, duplicate_of: WorkflowDataSource | None
) -> QuerySet[DataSource]:
    """Each source with ``_snapshot_id``, the id of its snapshot at ``version`` (the newest for None),
    and with ``duplicate_of``, ``_duplicate``: whether another data source of that workflow points at it
    (at that version, sample or not). SQL text (the ORM's Subquery and Exists cost more to build than
    to run) naming the data-source table itself: never use the queryset as a subquery."""
    quote = connection.ops.quote_name
    ds = quote(DataSource._meta.db_table)
    pinned = " AND s.version = %s" if version is not None else ""
    snapshot = (f"(SELECT s.id FROM {quote(SchemaSnapshot._meta.db_table)} s WHERE s.data_source_id = {ds}.id"  # noqa: S608  # nosec B608
                f"{pinned} ORDER BY s.version DESC LIMIT 1)")
    beside = {"_snapshot_id": RawSQL(snapshot, [version] if pinned else [], output_field=IntegerField())}  # noqa: S611  # nosec B611
    if duplicate_of is not None:
        same = "w.source_version = %s" if version is not None else "w.source_version IS NULL"
        duplicate = (f"EXISTS (SELECT 1 FROM {quote(WorkflowDataSource._meta.db_table)} w WHERE w.workflow_id = %s"  # noqa: S608  # nosec B608
                     f" AND w.id <> %s AND w.source_data_source_id = {ds}.id AND {same} AND w.is_sample = %s)")
        params = [duplicate_of.workflow_id, duplicate_of.pk, *([version] if version is not None else []), sample]
        beside["_duplicate"] = RawSQL(duplicate, params, output_field=BooleanField())  # noqa: S611  # nosec B611
    return sources.only(*SOURCE_FIELDS).annotate(**beside)


def resolve_target(
    actor: Actor, *, source_data_source: str | None, source_workflow: str | None,
    duplicate_of: WorkflowDataSource | None = None, lock: bool = False,
) -> Target:
    """Parse and resolve the one given qualified reference to a Target of the caller's organization.
    A data source is read with its snapshot's id and, with ``duplicate_of``, ``_duplicate`` in the same
    statement (``_read_beside``); with ``lock`` (inside a write's transaction, after the workflow's
    lock) that statement also locks its row, so that it cannot be deleted until the write commits (a
    deletion that came first is waited for, and the source is then not found). A workflow needs no
    lock of its own: its deletion takes the organization's lock, which such a write holds."""
    if (source_data_source is None) == (source_workflow is None):
        message = "Give exactly one of source_data_source and source_workflow."
        raise InvalidRequest(message, errors={"source_data_source": [message], "source_workflow": [message]})
    if source_workflow is not None:
        try:
            parse_workflow_reference(source_workflow)
        except InvalidReference as exc:
            raise bad_reference("source_workflow", exc) from None
        return Target(workflow=get_workflow(actor, source_workflow, field="source_workflow", in_path=False))
    assert source_data_source is not None
    try:
        ref = parse_source_reference(source_data_source)
    except InvalidReference as exc:
        raise bad_reference("source_data_source", exc) from None
    check_org(actor, ref, "source_data_source", "data source")
    version = None if ref.version in (None, CURRENT) else int(ref.version)
    sources = DataSource.objects.filter(organization=actor.organization)
    if ref.reference_id is not None:  # one statement
        candidates = _read_beside(sources.filter(reference_id=ref.reference_id), version, ref.sample, duplicate_of)
        data_source = pick(_locked(candidates, lock), ref, field="source_data_source", what="data source")
    else:  # every name of the organization, then the one picked
        found = pick(sources.only("id", "name", "reference_id"), ref, field="source_data_source", what="data source")
        read = _locked(_read_beside(sources.filter(pk=found.pk), version, ref.sample, duplicate_of), lock)
        if not read:  # deleted since its name was read
            raise NotFound("No such data source in your organization.",
                           errors={"source_data_source": ["No such data source."]})
        data_source = read[0]
    snapshot_id = data_source._snapshot_id  # type: ignore[attr-defined]
    if version is not None and snapshot_id is None:
        latest = data_source.schema_version
        raise InvalidRequest(
            f"Data source '{data_source.name}' has no schema version {version}.",
            errors={"source_data_source": [f"No version {version}; the latest is {latest or 'none'}."]},
        )
    return Target(data_source=data_source, version=version, is_sample=ref.sample, snapshot_id=snapshot_id)


def _locked(sources: QuerySet[DataSource], lock: bool) -> list[DataSource]:
    """The rows of ``sources``; with ``lock``, locked ``FOR KEY SHARE`` on PostgreSQL: their deletion
    (``FOR UPDATE``, then ``DELETE``) waits for the write's COMMIT and then sees its new dependant,
    while other writes that only point at them (a repoint of another workflow onto the same source,
    a foreign-key check) share the lock and run side by side. ``FOR NO KEY UPDATE``, taken before,
    made two repoints onto one source wait for each other (the 10-node repoint at 0.43x of its floor).
    Django's ORM has no ``FOR KEY SHARE``: the queryset's own SQL gets the clause."""
    if not lock:
        return list(sources)
    if connection.vendor != "postgresql":
        return list(sources.select_for_update(of=("self",)))
    sql, params = sources.query.sql_with_params()
    table = connection.ops.quote_name(DataSource._meta.db_table)
    return list(DataSource.objects.raw(f"{sql} FOR KEY SHARE OF {table}", params))  # nosec B611


def _display_names(rows: list[tuple[str, str, str, Any]]) -> dict[str, str]:
    """Table names as referenced: the bare name, or ``schema.name`` when the name (as compared: escaped,
    in any case) is also a table's in another schema. Names that collide within one schema stay bare
    (qualifying them would not tell them apart): the exact spelling or the reference id picks one."""
    schemas: dict[str, set[str]] = {}
    for _, schema, name, _ in rows:
        schemas.setdefault(name_key(name), set()).add(schema)
    return {
        ref: (f"{schema}.{name}" if len(schemas[name_key(name)]) > 1 and schema else name)
        for ref, schema, name, _ in rows
    }


def _snapshot_id(target: Target) -> int | None | Subquery:
    """The id of the schema snapshot a data-source target reads (its pinned version, or the newest):
    the one read with the target, else a subquery (the tables are then still read in one statement)."""
    assert target.data_source is not None
    if target.snapshot_id != NOT_READ:
        return target.snapshot_id
    snapshots = SchemaSnapshot.objects.filter(data_source=target.data_source)
    if target.version is not None:
        snapshots = snapshots.filter(version=target.version)
    return Subquery(snapshots.order_by("-version").values("id")[:1])


def _workflow_tables(workflow: Workflow) -> list[SourceTable]:
    outputs = (
        Node.objects.filter(workflow=workflow)
        .exclude(output_table_name="")
        .values_list("reference_id", "output_table_name", "output_columns")
    )
    return [SourceTable(Table(ref, name), columns or []) for ref, name, columns in outputs]


def _snapshot_tables(rows: list[tuple[str, str, str, Any]]) -> list[SourceTable]:
    names = _display_names(rows)
    return [SourceTable(Table(ref, names[ref]), columns or []) for ref, _, _, columns in rows]


def tables_of(target: Target) -> list[SourceTable]:
    """Every table the target offers: a snapshot's tables, or a workflow's output tables."""
    if target.workflow is not None:
        return _workflow_tables(target.workflow)
    snapshot_id = _snapshot_id(target)
    if snapshot_id is None:  # read with the target: it has no snapshot
        return []
    rows = SchemaTable.objects.filter(snapshot_id=snapshot_id).values_list(
        "reference_id", "schema", "name", "columns"
    )
    return _snapshot_tables(list(rows))


def tables_of_both(old: Target, new: Target) -> tuple[list[SourceTable], list[SourceTable]]:
    """The tables of two targets; of two data sources' snapshots whose ids were read with them, in
    one statement (a repoint's old and new source)."""
    ids = [t.snapshot_id for t in (old, new) if t.workflow is None and t.snapshot_id != NOT_READ]
    if len(ids) < 2:
        return tables_of(old), tables_of(new)
    by_snapshot: dict[int, list[tuple[str, str, str, Any]]] = {}
    rows = SchemaTable.objects.filter(snapshot_id__in=[i for i in ids if i is not None]).values_list(
        "snapshot_id", "reference_id", "schema", "name", "columns"
    )
    for snapshot, ref, schema, name, columns in rows:
        by_snapshot.setdefault(snapshot, []).append((ref, schema, name, columns))
    old_rows, new_rows = (by_snapshot.get(i, []) if i is not None else [] for i in ids)
    return _snapshot_tables(old_rows), _snapshot_tables(new_rows)


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
