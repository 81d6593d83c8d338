"""Synthetic large workflows (bulk-inserted) for the scale test and ``bench/repoint.py``."""

from __future__ import annotations

from dataclasses import dataclass

from core.references import new_reference_id
from datasources.models import DataSource, SchemaSnapshot, SchemaStatus, SchemaTable
from organizations.models import Organization
from workflows.models import Node, NodeInput, Workflow, WorkflowDataSource

BATCH = 2000


@dataclass
class ScaleCase:
    """What was built, and the PATCH body that repoints v1 -> v2."""

    data_source: DataSource
    workflow: Workflow
    wds: WorkflowDataSource
    body: dict
    renamed: int
    recreated: int


def _columns(extra: bool) -> list[dict]:
    columns = [{"name": "id", "type": "INTEGER", "nullable": False, "ordinal": 1}]
    if extra:
        columns.append({"name": "note", "type": "TEXT", "nullable": True, "ordinal": 2})
    return columns


def build(*, organization: Organization, nodes: int = 10_000, tables: int = 1_000,
          renamed_share: float = 0.1, recreated_share: float = 0.45) -> ScaleCase:
    """A data source with schema v1 and v2, and a workflow whose ``nodes`` nodes read its ``tables`` tables."""
    # In v2 the first renamed_share of the tables are renamed (new id: needs an explicit mapping), the next
    # recreated_share are re-created under the same name (new id: mapped by name), the rest keep their id
    # (mapped by reference id) and gain a column: all three ways of matching, at scale.
    prefix = new_reference_id(Workflow)  # keeps the synthetic reference ids unique per build
    ds = DataSource.objects.create(
        organization=organization, name=f"scale {prefix}", type="sqlite", reference_id=new_reference_id(DataSource),
        connection={"path": f"{prefix}.db"}, schema_status=SchemaStatus.READY, schema_version=2,
    )
    v1 = SchemaSnapshot.objects.create(data_source=ds, version=1, fingerprint="v1", table_count=tables)
    v2 = SchemaSnapshot.objects.create(data_source=ds, version=2, fingerprint="v2", table_count=tables)
    renamed, recreated = int(tables * renamed_share), int(tables * recreated_share)
    old_rows, new_rows, mapped = [], [], {}
    for i in range(tables):
        old_ref, name = f"{prefix}r{i:05d}", f"table_{i:05d}"
        old_rows.append(
            SchemaTable(snapshot=v1, reference_id=old_ref, schema="main", name=name, columns=_columns(False))
        )
        if i < renamed:
            new_ref, new_name = f"{prefix}s{i:05d}", f"{name}_v2"
            mapped[f"{name}:{old_ref}"] = f"{new_name}:{new_ref}"
        elif i < renamed + recreated:
            new_ref, new_name = f"{prefix}s{i:05d}", name
        else:
            new_ref, new_name = old_ref, name
        new_rows.append(SchemaTable(snapshot=v2, reference_id=new_ref, schema="main", name=new_name,
                                    columns=_columns(i >= renamed + recreated)))
    SchemaTable.objects.bulk_create(old_rows + new_rows, batch_size=BATCH)
    workflow = Workflow.objects.create(organization=organization, name=f"scale {prefix}", reference_id=prefix)
    wds = WorkflowDataSource.objects.create(
        workflow=workflow, reference_id=new_reference_id(WorkflowDataSource), source_data_source=ds, source_version=1
    )
    Node.objects.bulk_create(
        [Node(workflow=workflow, reference_id=f"{prefix}n{i:05d}", name=f"node {i:05d}") for i in range(nodes)],
        batch_size=BATCH,
    )
    ids = list(Node.objects.filter(workflow=workflow).order_by("id").values_list("id", flat=True))
    NodeInput.objects.bulk_create(
        [
            NodeInput(node_id=node_id, workflow_data_source=wds, table_reference_id=f"{prefix}r{i % tables:05d}",
                      table_name=f"table_{i % tables:05d}")
            for i, node_id in enumerate(ids)
        ],
        batch_size=BATCH,
    )
    org = organization.slug
    body = {"source_data_source": f"{org}.{ds.name.replace(' ', '_')}:{ds.reference_id}:v2", "mapped_tables": mapped}
    return ScaleCase(ds, workflow, wds, body, renamed, recreated)
