"""The impact report of a dry run (issue 19): what a change would break, before it is applied."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from datasources.models import DataSource
from tests.support.workflows import add_node, add_source, create_source, create_workflow, sqlite_db

DS = "/api/v1/data-sources/"
SHOP = ("CREATE TABLE orders (id INTEGER, customer_id INTEGER, total REAL);"
        "CREATE TABLE keep (id INTEGER, label TEXT); CREATE TABLE spare (id INTEGER);")
#: The new target: no `orders`, `keep.label` retyped, `spare` as before.
OTHER = "CREATE TABLE keep (id INTEGER, label INTEGER); CREATE TABLE spare (id INTEGER);"


@pytest.fixture
def shop(api):
    source = create_source(api, "Shop", "shop.db", SHOP)
    sqlite_db("other.db", OTHER)
    flow = create_workflow(api, "Flow")
    wds = add_source(api, flow, source_data_source="acme.shop")
    add_node(api, flow, "totals", [(wds, "orders")], output={"name": "order_totals"})
    add_node(api, flow, "labels", [(wds, "keep")])
    calm = create_workflow(api, "Calm")
    add_node(api, calm, "spare_reader", [(add_source(api, calm, source_data_source="acme.shop"), "spare")])
    return {"source": source, "flow": flow, "calm": calm}


def dry_run(api, source, body):
    response = api.patch(f"{DS}{source['id']}/?dry_run=true", body, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.mark.django_db
def test_a_dry_run_lists_the_workflows_a_new_target_breaks_and_changes_nothing(api, shop):
    before = DataSource.objects.get(pk=shop["source"]["id"])
    body = dry_run(api, shop["source"], {"connection": {"path": "other.db"}})
    assert body["dry_run"] is True and body["test"]["ok"] is True
    impact = body["impact"]
    assert impact["schema_compared"] is True and impact["breaking"] is True
    assert impact["counts"] == {"workflows": 2, "workflows_broken": 1, "nodes": 3, "output_tables": 1,
                                "tables_read": 3, "tables_missing": 1, "tables_changed": 1}
    by_name = {w["name"]: w for w in impact["workflows"]}
    flow = by_name["Flow"]
    assert flow["breaks"] is True and flow["id"] == shop["flow"]["id"]
    tables = {t["name"]: t for t in flow["tables"]}
    assert tables["orders"]["status"] == "missing"
    assert tables["keep"]["status"] == "changed"
    assert tables["keep"]["columns_type_changed"] == [{"name": "label", "old": "TEXT", "new": "INTEGER"}]
    assert {n["name"]: n["output_table"] for n in flow["nodes"]} == {"totals": "order_totals", "labels": None}
    assert by_name["Calm"]["breaks"] is False and by_name["Calm"]["tables"][0]["status"] == "ok"
    assert impact["schedule"]["recached_after_apply"] is True and impact["truncated"] is False
    after = DataSource.objects.get(pk=shop["source"]["id"])
    assert (after.connection, after.version) == (before.connection, before.version)


@pytest.mark.django_db
def test_tenancy_settings_the_new_target_breaks_are_reported(api, shop):
    settings = {"level": "TABLE", "client_column_type": "NUMBER", "schema": "main", "table": "orders",
                "client_column": "customer_id", "primary_key_column": "id"}
    assert api.put(f"{DS}{shop['source']['id']}/tenancy/", settings, format="json").status_code == 200
    tenancy = dry_run(api, shop["source"], {"connection": {"path": "other.db"}})["impact"]["tenancy"]
    assert tenancy["breaks"] is True and "tenancy_settings.table" in tenancy["errors"]
    sqlite_db("copy.db", SHOP)
    same = dry_run(api, shop["source"], {"connection": {"path": "copy.db"}})["impact"]
    assert same["tenancy"] == {"level": "TABLE", "checked": True, "breaks": False, "errors": {}}
    assert same["breaking"] is False and same["counts"]["workflows_broken"] == 0


@pytest.mark.django_db
def test_without_a_connection_change_nothing_is_compared_but_schedule_changes_are_listed(api, shop):
    impact = dry_run(api, shop["source"], {"schema_refresh_interval": 7200, "schema_auto_refresh": True})["impact"]
    assert impact["schema_compared"] is False and impact["breaking"] is False
    assert {t["status"] for w in impact["workflows"] for t in w["tables"]} == {"unchecked"}
    assert impact["schedule"]["changes"]["schema_refresh_interval"]["new"] == 7200
    assert impact["schedule"]["recached_after_apply"] is False


@pytest.mark.django_db
def test_the_report_costs_the_same_statements_for_one_workflow_or_thirty(api, shop):
    def statements() -> int:
        with CaptureQueriesContext(connection) as queries:
            dry_run(api, shop["source"], {"connection": {"path": "other.db"}})
        return len(queries)

    few = statements()
    wds = add_source(api, shop["flow"], source_data_source="acme.shop:v1")
    for i in range(28):
        flow = create_workflow(api, f"More {i}")
        add_node(api, flow, "n", [(add_source(api, flow, source_data_source="acme.shop"), "orders")])
    add_node(api, shop["flow"], "pinned", [(wds, "keep")])
    many = statements()
    assert many == few
    body = dry_run(api, shop["source"], {"connection": {"path": "other.db"}})
    assert body["impact"]["counts"]["workflows"] == 30
