"""Repointing a workflow data source (Redivis's dataSource PATCH): table remapping end to end."""

from __future__ import annotations

import pytest

from datasources.models import SchemaTable
from organizations.models import AuditEvent
from tests.support.workflows import (
    WF,
    add_node,
    add_source,
    change_schema,
    create_source,
    create_workflow,
    node_tables,
    tables,
    wds_url,
)
from workflows.models import NodeInput, WorkflowDataSource

SHOP = "CREATE TABLE old_table (id INTEGER, v TEXT); CREATE TABLE keep (id INTEGER); CREATE TABLE spare (id INT);"


@pytest.fixture
def shop(api):
    """Data source "Shop" v1, a workflow reading it, node n1 reads old_table and keep, n2 reads keep."""
    source = create_source(api, "Shop", "shop.db", SHOP)
    workflow = create_workflow(api, "Flow")
    wds = add_source(api, workflow, source_data_source="acme.shop:v1")
    add_node(api, workflow, "n1", [(wds, "old_table"), (wds, "keep")])
    add_node(api, workflow, "n2", [(wds, "keep")])
    return {"source": source, "workflow": workflow, "wds": wds, "v1": tables(api, source, 1)}


def test_the_seed_example_renames_a_table_end_to_end(api, shop):
    v2 = change_schema(api, shop["source"], "shop.db", "ALTER TABLE old_table RENAME TO new_table;")
    new = tables(api, shop["source"], v2)
    old_ref, new_ref = shop["v1"]["old_table"], new["new_table"]
    url = wds_url(shop["workflow"], shop["wds"])
    etag = api.get(url)["ETag"]
    body = {"source_data_source": f"acme.shop:v{v2}", "mapped_tables": {f"old_table:{old_ref}": f"new_table:{new_ref}"}}
    response = api.patch(url, body, format="json", HTTP_IF_MATCH=etag)
    assert response.status_code == 200, response.json()
    data = response.json()
    ds = shop["source"]
    assert data["kind"] == "dataSource" and data["id"] == shop["wds"]["id"]
    assert data["reference"] == f"acme.shop:{ds['reference_id']}:v2" and data["url"] == url
    assert data["is_sample"] is False and data["created_at"] and data["updated_at"]
    assert data["source"]["type"] == "data_source" and data["source"]["version"] == 2
    assert data["workflow"]["id"] == shop["workflow"]["id"]
    assert response["ETag"] != etag
    assert node_tables(api, shop["workflow"])["n1"] == [f"new_table:{new_ref}", f"keep:{shop['v1']['keep']}"]
    event = AuditEvent.objects.get(action="repoint")
    assert event.target_type == "workflows.workflowdatasource"
    matched = {t["old"]["reference_id"]: t["matched_by"] for t in event.detail["plan"]["tables"]}
    assert matched == {old_ref: "explicit", shop["v1"]["keep"]: "reference_id"}


def test_reference_ids_win_over_names_in_keys_values_and_paths(api, shop):
    v2 = change_schema(api, shop["source"], "shop.db", "ALTER TABLE old_table RENAME TO new_table;")
    new = tables(api, shop["source"], v2)
    wf = shop["workflow"]
    # Names that disagree with the ids: the ids decide (workflow path, data source path, key, value).
    url = f"{WF}acme.not_the_name:{wf['reference_id']}/data-sources/acme.wrong:{shop['source']['reference_id']}:v1/"
    body = {"source_data_source": f"acme.whatever:{shop['source']['reference_id']}:v{v2}",
            "mapped_tables": {f"typo:{shop['v1']['old_table']}": f"spare:{new['new_table']}"}}
    response = api.patch(f"{url}?dry_run=true", body, format="json")
    assert response.status_code == 200, response.json()
    renamed = next(t for t in response.json()["tables"] if t["old"]["name"] == "old_table")
    assert renamed["new"]["reference_id"] == new["new_table"] and renamed["matched_by"] == "explicit"
    # A key whose id no node reads is refused even though its name matches.
    body["mapped_tables"] = {"old_table:zzzz": "new_table"}
    bad = api.patch(url, body, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_REQUEST_BODY"
    assert "mapped_tables.old_table:zzzz" in bad.json()["errors"]


def test_a_full_table_map_may_name_tables_nobody_reads_but_not_tables_that_do_not_exist(api, shop):
    """Redivis: only tables read downstream need a mapping, so a client may send a map of every table;
    an entry for a table of the source that no node reads is let be (its value still checked). A key
    naming no table of the source is a typo: 400."""
    v2 = change_schema(api, shop["source"], "shop.db", "ALTER TABLE old_table RENAME TO new_table;")
    url = wds_url(shop["workflow"], shop["wds"])
    full = {"old_table": "new_table", "keep": "keep", "spare": "spare"}  # nobody reads spare
    plan = api.patch(f"{url}?dry_run=true", {"source_data_source": f"acme.shop:v{v2}", "mapped_tables": full},
                     format="json")
    assert plan.status_code == 200, plan.json()
    assert sorted(t["old"]["name"] for t in plan.json()["tables"]) == ["keep", "old_table"]
    typo = api.patch(url, {"source_data_source": f"acme.shop:v{v2}", "mapped_tables": {**full, "spaer": "spare"}},
                     format="json")
    assert typo.status_code == 400
    assert typo.json()["errors"] == {"mapped_tables.spaer": ["The data source has no table with name 'spaer'."]}
    missing = api.patch(url, {"source_data_source": f"acme.shop:v{v2}",
                              "mapped_tables": {**full, "spare": "nowhere"}}, format="json")
    assert missing.status_code == 400 and "mapped_tables.spare" in missing.json()["errors"]
    assert WorkflowDataSource.objects.get(pk=shop["wds"]["id"]).version == 1  # nothing applied


def test_a_new_version_that_renames_nothing_maps_automatically(api, shop):
    v2 = change_schema(api, shop["source"], "shop.db", "ALTER TABLE keep ADD COLUMN note TEXT; CREATE TABLE t2 (x);")
    url = wds_url(shop["workflow"], shop["wds"])
    plan = api.patch(f"{url}?dry_run=true", {"source_data_source": f"acme.shop:v{v2}"}, format="json").json()
    assert {t["matched_by"] for t in plan["tables"]} == {"reference_id"}
    assert plan["inputs_rewritten"] == 0 and plan["nodes_affected"] == 2
    keep = next(t for t in plan["tables"] if t["old"]["name"] == "keep")
    assert keep["column_changes"] == {"added": ["note"], "removed": [], "changed": []}
    assert {n["name"] for n in keep["nodes"]} == {"n1", "n2"}
    response = api.patch(url, {"source_data_source": f"acme.shop:v{v2}"}, format="json")
    assert response.status_code == 200 and response.json()["source"]["version"] == v2


def test_a_dropped_table_that_a_node_reads_is_refused_and_nothing_changes(api, shop):
    v2 = change_schema(api, shop["source"], "shop.db", "DROP TABLE old_table;")
    url = wds_url(shop["workflow"], shop["wds"])
    before = list(NodeInput.objects.order_by("id").values_list("table_reference_id", "table_name"))
    response = api.patch(url, {"source_data_source": f"acme.shop:v{v2}"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "UNMAPPED_TABLES"
    assert [u["table"]["name"] for u in body["unmapped_tables"]] == ["old_table"]
    assert [n["name"] for n in body["unmapped_tables"][0]["nodes"]] == ["n1"]
    assert list(body["errors"]) == [f"mapped_tables.old_table:{shop['v1']['old_table']}"]
    assert list(NodeInput.objects.order_by("id").values_list("table_reference_id", "table_name")) == before
    assert WorkflowDataSource.objects.get().version == 1 and not AuditEvent.objects.filter(action="repoint")
    # The same with a mapping: applied.
    ok = api.patch(url, {"source_data_source": f"acme.shop:v{v2}", "mapped_tables": {"old_table": "spare"}},
                   format="json")
    assert ok.status_code == 200, ok.json()
    assert node_tables(api, shop["workflow"])["n1"][0] == f"spare:{shop['v1']['spare']}"


def test_a_dropped_table_that_nobody_reads_needs_no_mapping(api, shop):
    v2 = change_schema(api, shop["source"], "shop.db", "DROP TABLE spare;")
    response = api.patch(wds_url(shop["workflow"], shop["wds"]), {"source_data_source": f"acme.shop:v{v2}"},
                         format="json")
    assert response.status_code == 200, response.json()


def test_repoint_to_a_sample_follows_the_current_version(api, shop):
    response = api.patch(wds_url(shop["workflow"], shop["wds"]), {"source_data_source": "acme.shop:sample"},
                         format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["is_sample"] is True and data["source"]["version"] == "current"
    assert data["reference"].endswith(":sample:current")
    assert api.get(f"{WF}{shop['workflow']['id']}/data-sources/acme.shop:sample/").status_code == 200


def test_repoint_to_another_data_source_maps_by_name_not_by_foreign_ids(api, shop):
    other = create_source(api, "Warehouse", "wh.db", "CREATE TABLE OLD_TABLE (id INT); CREATE TABLE keep (id INT);"
                                                     "CREATE TABLE decoy (id INT);")
    # Reference ids are per source: a coincidence with another source's id must not map by id.
    SchemaTable.objects.filter(snapshot__data_source_id=other["id"], name="decoy").update(
        reference_id=shop["v1"]["keep"]
    )
    url = wds_url(shop["workflow"], shop["wds"])
    plan = api.patch(f"{url}?dry_run=true", {"source_data_source": "acme.warehouse"}, format="json").json()
    assert {t["old"]["name"]: (t["new"]["name"], t["matched_by"]) for t in plan["tables"]} == {
        "old_table": ("OLD_TABLE", "name"), "keep": ("keep", "name")}
    response = api.patch(url, {"source_data_source": "acme.warehouse"}, format="json")
    assert response.status_code == 200 and response.json()["source"]["id"] == other["id"]


def test_repoint_to_another_workflows_output_tables(api, shop):
    upstream = create_workflow(api, "Upstream")
    up_wds = add_source(api, upstream, source_data_source="acme.shop")
    producer = add_node(api, upstream, "clean", [(up_wds, "keep")],
                        output={"name": "clean_keep", "columns": [{"name": "id", "type": "INTEGER"}]})
    add_node(api, upstream, "also", [(up_wds, "old_table")], output={"name": "old_table", "columns": []})
    url = wds_url(shop["workflow"], shop["wds"])
    response = api.patch(url, {"source_workflow": "acme.upstream", "mapped_tables": {"keep": "clean_keep"}},
                         format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["source"]["type"] == "workflow" and response.json()["source_workflow"]
    reads = node_tables(api, shop["workflow"])
    assert reads["n2"] == [f"clean_keep:{producer['reference_id']}"]
    assert api.get(f"{WF}{upstream['id']}/tables/").json()["count"] == 2
    blocked = api.delete(f"{WF}{upstream['id']}/")
    assert blocked.status_code == 409 and blocked.json()["dependants"] == [shop["workflow"]["reference"]]


def test_cycles_are_refused(api, shop):
    a, b = shop["workflow"], create_workflow(api, "B")
    add_node(api, a, "out", [(shop["wds"], "keep")], output={"name": "out", "columns": []})
    b_wds = add_source(api, b, source_workflow=a["reference"])
    add_node(api, b, "b_out", [(b_wds, "out")], output={"name": "b_out", "columns": []})
    to_b = api.post(f"{WF}{a['id']}/data-sources/", {"source_workflow": "acme.b"}, format="json")
    assert to_b.status_code == 400 and "source_workflow" in to_b.json()["errors"]
    repoint = api.patch(wds_url(a, shop["wds"]), {"source_workflow": "acme.b", "mapped_tables": {}}, format="json")
    assert repoint.status_code == 400 and "cycle" in repoint.json()["errors"]["source_workflow"][0]
    itself = api.post(f"{WF}{a['id']}/data-sources/", {"source_workflow": a["reference"]}, format="json")
    assert itself.status_code == 400


def test_other_organizations_sources_are_404(api, other_api, shop):
    create_source(other_api, "Theirs", "theirs.db", "CREATE TABLE keep (id INT);")
    url = wds_url(shop["workflow"], shop["wds"])
    for body in ({"source_data_source": "globex.theirs"}, {"source_data_source": "acme.theirs"},
                 {"source_workflow": "globex.flow"}):
        response = api.patch(url, body, format="json")
        assert response.status_code == 404, body
    assert other_api.patch(url, {"source_data_source": "acme.shop"}, format="json").status_code == 404
    assert other_api.get(f"{WF}acme.flow/").status_code == 404


def test_swapping_two_tables_rewrites_both_in_one_statement(api, shop):
    url = wds_url(shop["workflow"], shop["wds"])
    body = {"source_data_source": "acme.shop:v1", "mapped_tables": {"old_table": "keep", "keep": "old_table"}}
    response = api.patch(url, body, format="json")
    assert response.status_code == 200, response.json()
    v1 = shop["v1"]
    assert node_tables(api, shop["workflow"]) == {"n1": [f"keep:{v1['keep']}", f"old_table:{v1['old_table']}"],
                                                 "n2": [f"old_table:{v1['old_table']}"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source_data_source": "acme.shop", "source_workflow": "acme.flow"}, "source_workflow"),
        ({"mapped_tables": {}}, "source_data_source"),
        ({"source_data_source": "shop"}, "source_data_source"),
        ({"source_data_source": "acme.shop:v0"}, "source_data_source"),
        ({"source_data_source": "acme.shop:v9"}, "source_data_source"),
        ({"source_data_source": "acme.shop", "mapped_tables": {"keep": "nope"}}, "mapped_tables.keep"),
        ({"source_data_source": "acme.shop", "mapped_tables": {"kepe": "keep"}}, "mapped_tables.kepe"),
        ({"source_data_source": "acme.shop", "sourceDataset": "x"}, "sourceDataset"),
    ],
)
def test_bad_requests_name_the_field(api, shop, body, field):
    response = api.patch(wds_url(shop["workflow"], shop["wds"]), body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "INVALID_REQUEST_BODY" and field in response.json()["errors"]


def test_stale_if_match_is_412_and_changes_nothing(api, shop):
    url = wds_url(shop["workflow"], shop["wds"])
    response = api.patch(url, {"source_data_source": "acme.shop:sample"}, format="json", HTTP_IF_MATCH='"1-99"')
    assert response.status_code == 412 and WorkflowDataSource.objects.get().is_sample is False


@pytest.mark.parametrize(
    ("scopes", "get", "patch"),
    [(["workflow.read"], 200, 403), (["datasource.read", "datasource.write"], 403, 403),
     (["workflow.read", "workflow.write"], 200, 200)],
)
def test_scope_matrix(make_client, org, shop, scopes, get, patch):
    client = make_client(org, scopes=scopes)
    url = wds_url(shop["workflow"], shop["wds"])
    assert client.get(url).status_code == get
    assert client.patch(url, {"source_data_source": "acme.shop:sample"}, format="json").status_code == patch


def test_a_viewer_cannot_repoint_even_with_the_write_scope(make_client, org, viewer, shop):
    client = make_client(org, scopes=["workflow.read", "workflow.write"], username="viewer")
    response = client.patch(wds_url(shop["workflow"], shop["wds"]), {"source_data_source": "acme.shop"},
                            format="json")
    assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN"


def test_names_that_escape_alike_in_one_schema_stay_bare_and_the_exact_spelling_picks_one(api):
    """'ORDER-ITEMS' and 'order items' both escape to order_items: a name that matches both is ambiguous
    (both offered), the exact spelling names one, and neither is renamed 'main.ORDER-ITEMS'."""
    create_source(api, "Old", "old.db", 'CREATE TABLE "Order Items" (id INTEGER);')
    new = create_source(api, "New", "new.db", 'CREATE TABLE "ORDER-ITEMS" (id INTEGER); '
                                              'CREATE TABLE "order items" (id INTEGER);')
    assert set(tables(api, new)) == {"ORDER-ITEMS", "order items"}
    workflow = create_workflow(api, "Flow")
    wds = add_source(api, workflow, source_data_source="acme.old")
    add_node(api, workflow, "n1", [(wds, "Order Items")])
    url = wds_url(workflow, wds)
    automatic = api.patch(f"{url}?dry_run=true", {"source_data_source": "acme.new"}, format="json")
    assert automatic.status_code == 400 and automatic.json()["code"] == "UNMAPPED_TABLES"
    (unmapped,) = automatic.json()["unmapped_tables"]
    assert unmapped["reason"] == "ambiguous"
    assert sorted(c["name"] for c in unmapped["candidates"]) == ["ORDER-ITEMS", "order items"]
    mapped = api.patch(url, {"source_data_source": "acme.new", "mapped_tables": {"Order Items": "ORDER-ITEMS"}},
                       format="json")
    assert mapped.status_code == 200, mapped.json()
    new_refs = tables(api, new)
    (n1,) = api.get(f"{WF}{workflow['id']}/nodes/").json()["results"]
    assert [(i["table"]["name"], i["table"]["reference_id"]) for i in n1["inputs"]] == [
        ("ORDER-ITEMS", new_refs["ORDER-ITEMS"])]
    other = add_node(api, workflow, "n2", [(wds, "order items")])  # the exact spelling names one
    assert [(i["table"]["name"], i["table"]["reference_id"]) for i in other["inputs"]] == [
        ("order items", new_refs["order items"])]
    ambiguous = api.post(f"{WF}{workflow['id']}/nodes/", {"name": "n3", "inputs": [
        {"data_source": wds["id"], "table": "Order_Items"}]}, format="json")
    assert ambiguous.status_code == 400 and "names several tables" in ambiguous.json()["errors"]["inputs.0.table"][0]


def test_a_name_is_qualified_by_its_schema_only_when_another_schema_has_it():
    from workflows.services.sources import _display_names

    rows = [("a1", "sales", "orders", None), ("a2", "archive", "Orders", None),
            ("b1", "sales", "ORDER-ITEMS", None), ("b2", "sales", "order items", None), ("c1", "sales", "keep", None)]
    assert _display_names(rows) == {"a1": "sales.orders", "a2": "archive.Orders", "b1": "ORDER-ITEMS",
                                    "b2": "order items", "c1": "keep"}
