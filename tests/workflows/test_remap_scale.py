"""Repointing at scale: 10,000 nodes reading 1,000 tables in a bounded number of queries."""

from __future__ import annotations

from django.db import connection

from bench.scale import build
from tests.support.workflows import WF, add_node, add_source, create_source, create_workflow, node_tables
from workflows.models import NodeInput
from workflows.services import repoint_writes


def test_10000_nodes_reading_1000_tables_repoint_in_a_bounded_number_of_queries(
    api, org, django_assert_max_num_queries
):
    case = build(organization=org, nodes=10_000, tables=1_000)
    url = f"{WF}{case.workflow.pk}/data-sources/{case.wds.pk}/"
    # The token (first use: its lookup and its last use), the workflow, the data source, the new source
    # with its snapshot id and "already a data source?", the node inputs, the new and the old tables.
    with django_assert_max_num_queries(8):
        dry = api.patch(f"{url}?dry_run=true", case.body, format="json")
    assert dry.status_code == 200, dry.json()
    plan = dry.json()
    assert len(plan["tables"]) == 1_000 and plan["nodes_affected"] == 10_000
    assert plan["inputs_rewritten"] == (case.renamed + case.recreated) * 10
    kinds = [t["matched_by"] for t in plan["tables"]]
    assert (kinds.count("explicit"), kinds.count("name")) == (case.renamed, case.recreated)
    prefix = case.workflow.reference_id
    assert not NodeInput.objects.filter(table_reference_id__startswith=f"{prefix}s").exists()
    # Lock-first: SAVEPOINT (the test's transaction), the workflow and the data source locked (a
    # repoint onto a data source leaves the organization unlocked), the new source (locked), the node
    # inputs, both snapshots' tables in one; the nodes' versions (answering their reference ids on
    # PostgreSQL); then one CASE UPDATE of the inputs (1,000 tables: one chunk), the data source, the
    # audit and outbox INSERTs (one statement on PostgreSQL: core.write_batch); RELEASE.
    with django_assert_max_num_queries(9 if connection.vendor == "postgresql" else 12):
        applied = api.patch(url, case.body, format="json")
    assert applied.status_code == 200, applied.json()
    assert applied.json()["source"]["version"] == 2
    rewritten = NodeInput.objects.filter(table_reference_id__startswith=f"{prefix}s").count()
    assert rewritten == (case.renamed + case.recreated) * 10
    assert not NodeInput.objects.filter(table_reference_id__startswith="~").exists()
    first = NodeInput.objects.filter(node__name="node 00000").get()
    assert (first.table_reference_id, first.table_name) == (f"{prefix}s00000", "table_00000_v2")


def test_rotations_across_several_update_chunks_land_exactly(api, monkeypatch):
    monkeypatch.setattr(repoint_writes, "CHUNK", 1)  # three tables -> three statements per phase
    create_source(api, "Shop", "shop.db", "CREATE TABLE a (id INT); CREATE TABLE b (id INT); CREATE TABLE c (x);")
    workflow = create_workflow(api, "Flow")
    wds = add_source(api, workflow, source_data_source="acme.shop:v1")
    for name in "abc":
        add_node(api, workflow, f"reads_{name}", [(wds, name)])
    body = {"source_data_source": "acme.shop:v1", "mapped_tables": {"a": "b", "b": "c", "c": "a"}}
    response = api.patch(f"{WF}{workflow['id']}/data-sources/{wds['id']}/", body, format="json")
    assert response.status_code == 200, response.json()
    reads = {node: [ref.split(":")[0] for ref in refs] for node, refs in node_tables(api, workflow).items()}
    assert reads == {"reads_a": ["b"], "reads_b": ["c"], "reads_c": ["a"]}


def test_two_old_tables_mapped_onto_one_leave_a_single_input(api):
    create_source(api, "Shop", "shop.db", "CREATE TABLE a (id INT); CREATE TABLE b (id INT);")
    workflow = create_workflow(api, "Flow")
    wds = add_source(api, workflow, source_data_source="acme.shop:v1")
    add_node(api, workflow, "both", [(wds, "a"), (wds, "b")])
    body = {"source_data_source": "acme.shop:v1", "mapped_tables": {"b": "a"}}
    assert api.patch(f"{WF}{workflow['id']}/data-sources/{wds['id']}/", body, format="json").status_code == 200
    assert [ref.split(":")[0] for ref in node_tables(api, workflow)["both"]] == ["a"]
