"""A repoint's read of the node inputs (``workflows.services.repoint_reads``): PostgreSQL sums them up
per table in SQL, elsewhere every row is read; both give the same tables, readers, names and counts,
and a rewrite that would leave a node reading one table twice deletes the later input either way."""

from __future__ import annotations

from django.db import connection

from tests.support.workflows import WF, add_node, add_source, create_source, create_workflow, node_tables, tables
from workflows.models import Node, NodeInput, WorkflowDataSource
from workflows.services import repoint_reads

SHOP = "CREATE TABLE a (id INT); CREATE TABLE b (id INT); CREATE TABLE c (id INT);"


def _flow(api) -> tuple[dict, dict, dict]:
    source = create_source(api, "Shop", "shop.db", SHOP)
    workflow = create_workflow(api, "Flow")
    wds = add_source(api, workflow, source_data_source="acme.shop:v1")
    add_node(api, workflow, "first", [(wds, "b"), (wds, "a")])
    add_node(api, workflow, "second", [(wds, "a"), (wds, "c")])
    add_node(api, workflow, "third", [(wds, "c")])
    return source, workflow, wds


def _repeat(wds: dict, node: str, table_ref: str, name: str) -> None:
    """A node reading a table a second time, under another stored name (the API never writes it)."""
    NodeInput.objects.create(node=Node.objects.get(name=node), workflow_data_source_id=wds["id"],
                             table_reference_id=table_ref, table_name=name)


def test_both_reads_sum_up_the_inputs_alike(api):
    source, workflow, wds = _flow(api)
    _repeat(wds, "second", tables(api, source, 1)["c"], "old_c")
    found = repoint_reads.read_inputs(wds["id"])
    assert [t.name for t in found.tables] == ["b", "a", "c"]  # by first input, named by it
    assert {ref: [n["name"] for n in nodes] for ref, nodes in found.readers.items()} == {
        t.reference_id: names for t, names in zip(found.tables, [["first"], ["first", "second"],
                                                                ["second", "third"]], strict=True)}
    c = found.tables[2].reference_id
    assert (found.names[c], found.counts[c], len(found.node_ids())) == ({"c", "old_c"}, 3, 3)
    assert set(found.readers[c][0]) == {"id", "reference_id", "name"}
    rows = repoint_reads._rows(wds["id"])
    assert (found.tables, found.readers, found.names, found.counts) == (rows.tables, rows.readers, rows.names,
                                                                       rows.counts)
    if connection.vendor == "postgresql":
        assert found.rows is None and found.repeats  # summed up in SQL: a node reads c twice
        assert found.duplicates({t.reference_id: t for t in found.tables}) is None
    assert len(rows.duplicates({t.reference_id: t for t in rows.tables}) or []) == 1


def test_a_write_reads_node_ids_only(api):
    """PostgreSQL: a write's read leaves out the nodes' rows (``named=False``: each table's readers by
    id only; the audit names them from the UPDATE of their versions); elsewhere the rows name them."""
    source, workflow, wds = _flow(api)
    _repeat(wds, "second", tables(api, source, 1)["c"], "old_c")
    named, unnamed = repoint_reads.read_inputs(wds["id"]), repoint_reads.read_inputs(wds["id"], named=False)
    assert (unnamed.tables, unnamed.names, unnamed.counts) == (named.tables, named.names, named.counts)
    assert unnamed.ids == named.ids == {ref: [n["id"] for n in nodes] for ref, nodes in named.readers.items()}
    assert unnamed.node_ids() == named.node_ids() and len(named.node_ids()) == 3
    assert unnamed.repeats == named.repeats
    if connection.vendor == "postgresql":
        assert not unnamed.named and unnamed.readers == {} and unnamed.repeats  # "second" reads c twice
        assert unnamed.ids[unnamed.tables[2].reference_id] == [Node.objects.get(name=n).pk for n in ("second", "third")]
    else:
        assert unnamed.named and unnamed.readers == named.readers


def test_a_table_read_twice_by_a_node_is_listed_once_and_left_read_once(api):
    source, workflow, wds = _flow(api)
    v1 = tables(api, source, 1)
    _repeat(wds, "second", v1["c"], "c")
    url = f"{WF}{workflow['id']}/data-sources/{wds['id']}/"
    body = {"source_data_source": "acme.shop:v1", "mapped_tables": {"c": "b"}}
    plan = api.patch(f"{url}?dry_run=true", body, format="json").json()
    by_old = {t["old"]["name"]: t for t in plan["tables"]}
    assert [n["name"] for n in by_old["c"]["nodes"]] == ["second", "third"]
    assert (plan["nodes_affected"], plan["inputs_rewritten"]) == (3, 3)
    # b and c both map onto b: the plan says so ("first" read b only; "second" read a and c)
    assert [(m["new"]["name"], [o["name"] for o in m["old"]]) for m in plan["merged_tables"]] == [("b", ["b", "c"])]
    assert api.patch(f"{url}?dry_run=true", {"source_data_source": "acme.shop:v1"},
                     format="json").json()["merged_tables"] == []
    assert api.patch(url, body, format="json").status_code == 200
    reads = {node: sorted(ref.split(":")[0] for ref in refs) for node, refs in node_tables(api, workflow).items()}
    assert reads == {"first": ["a", "b"], "second": ["a", "b"], "third": ["b"]}
    assert NodeInput.objects.filter(workflow_data_source_id=wds["id"]).count() == 5


def test_every_reader_gets_a_new_version_and_no_other_node(api):
    _, workflow, wds = _flow(api)
    other_workflow = create_workflow(api, "Other")
    other = add_source(api, other_workflow, source_data_source="acme.shop:v1")
    add_node(api, other_workflow, "elsewhere", [(other, "a")])
    before = dict(Node.objects.values_list("name", "version"))
    body = {"source_data_source": "acme.shop:v1", "mapped_tables": {"a": "b"}}
    assert api.patch(f"{WF}{workflow['id']}/data-sources/{wds['id']}/", body, format="json").status_code == 200
    after = dict(Node.objects.values_list("name", "version"))
    assert {name: after[name] - before[name] for name in before} == {"first": 1, "second": 1, "third": 1,
                                                                     "elsewhere": 0}
    assert WorkflowDataSource.objects.get(pk=wds["id"]).version == 2


def test_a_data_source_no_node_reads_repoints_alone(api):
    create_source(api, "Shop", "shop.db", SHOP)
    create_source(api, "Mall", "mall.db", SHOP)
    workflow = create_workflow(api, "Flow")
    wds = add_source(api, workflow, source_data_source="acme.shop:v1")
    response = api.patch(f"{WF}{workflow['id']}/data-sources/{wds['id']}/", {"source_data_source": "acme.mall:v1"},
                         format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["source"]["name"], response.json()["version"]) == ("Mall", 2)
