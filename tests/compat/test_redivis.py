"""Redivis (seed 000): the dataSource PATCH, sent as the seed documents it, over the repoint service."""

from __future__ import annotations

import pytest

from tests.support.workflows import (
    add_node,
    add_source,
    change_schema,
    create_source,
    create_workflow,
    node_tables,
    tables,
)
from workflows.models import NodeInput

SHOP = "CREATE TABLE old_table (id INTEGER, v TEXT); CREATE TABLE keep (id INTEGER);"
RV = "/compat/redivis/api/v1/workflows/"


@pytest.fixture
def shop(api):
    source = create_source(api, "Shop", "shop.db", SHOP)
    workflow = create_workflow(api, "Flow")
    wds = add_source(api, workflow, source_data_source="acme.shop:v1")
    add_node(api, workflow, "n1", [(wds, "old_table"), (wds, "keep")])
    return {"source": source, "workflow": workflow, "wds": wds, "v1": tables(api, source, 1)}


def test_the_seeds_mapped_tables_example_with_qualified_references(api, shop):
    v2 = change_schema(api, shop["source"], "shop.db", "ALTER TABLE old_table RENAME TO new_table;")
    old_ref, new_ref = shop["v1"]["old_table"], tables(api, shop["source"], v2)["new_table"]
    url = f"{RV}acme.flow/dataSources/acme.shop:v1"
    body = {"sourceDataset": f"acme.shop:v{v2}", "mappedTables": {f"old_table:{old_ref}": f"new_table:{new_ref}"}}
    response = api.patch(url, body, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert set(data) == {"kind", "uri", "id", "url", "createdAt", "updatedAt", "isSample", "sourceDataset",
                         "sourceWorkflow", "workflow"}
    assert data["kind"] == "dataSource" and data["isSample"] is False and data["sourceWorkflow"] is None
    assert data["sourceDataset"]["version"] == f"v{v2}"
    assert data["workflow"]["name"] == "Flow"
    assert node_tables(api, shop["workflow"])["n1"] == [f"new_table:{new_ref}", f"keep:{shop['v1']['keep']}"]
    # The dataSource can also be addressed by its id, as the seed allows.
    again = api.patch(f"{RV}acme.flow/dataSources/{shop['wds']['id']}", {"sourceDataset": f"acme.shop:v{v2}"},
                      format="json")
    assert again.status_code == 200, again.json()


def test_unmapped_tables_in_the_seeds_error_shape_and_nothing_changes(api, shop):
    v2 = change_schema(api, shop["source"], "shop.db", "DROP TABLE old_table;")
    before = list(NodeInput.objects.values_list("table_reference_id", "table_name"))
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1", {"sourceDataset": f"acme.shop:v{v2}"},
                         format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "UNMAPPED_TABLES" and error["code"] == 400
    assert any(key.startswith("mappedTables.") for key in error["errors"])
    assert list(NodeInput.objects.values_list("table_reference_id", "table_name")) == before


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "sourceDataset"),
        ({"sourceDataset": "acme.shop", "sourceWorkflow": "acme.flow"}, "sourceDataset"),
        ({"sourceDataset": "acme.shop", "unknown": 1}, "unknown"),
    ],
)
def test_bad_bodies_name_the_seeds_fields(api, shop, body, field):
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["errors"]


def test_scope_workflow_write_and_organization_boundary(make_client, org, other_api, shop):
    reader = make_client(org, ["workflow.read", "datasource.read"])
    url = f"{RV}acme.flow/dataSources/acme.shop:v1"
    assert reader.patch(url, {"sourceDataset": "acme.shop"}, format="json").status_code == 403
    response = other_api.patch(url, {"sourceDataset": "acme.shop"}, format="json")
    assert response.status_code == 404 and response.json()["error"]["status"] == "NOT_FOUND"


def test_core_rule_cross_organization_source_is_404(api, other_api, other_org, shop):
    create_source(other_api, "Theirs", "theirs.db", SHOP)
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1", {"sourceDataset": "globex.theirs"},
                         format="json")
    assert response.status_code == 404


def test_a_dry_run_asked_of_the_redivis_endpoint_is_refused_and_applies_nothing(api, shop):
    """Redivis has no dry run: a client asking for one must not get the change applied."""
    v2 = change_schema(api, shop["source"], "shop.db", "ALTER TABLE old_table RENAME TO new_table;")
    before = list(NodeInput.objects.values_list("table_reference_id", "table_name"))
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1?dry_run=true",
                         {"sourceDataset": f"acme.shop:v{v2}", "mappedTables": {"old_table": "new_table"}},
                         format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert "dry_run" in error["errors"] and "/api/v1/workflows/" in error["message"], error
    assert list(NodeInput.objects.values_list("table_reference_id", "table_name")) == before
