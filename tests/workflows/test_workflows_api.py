"""Workflows, their data sources, nodes and output tables over the API (repointing: test_remap.py)."""

from __future__ import annotations

import pytest

from organizations.models import AuditEvent
from tests.support.workflows import WF, add_node, add_source, create_source, create_workflow, wds_url
from workflows.models import Workflow
from workflows.services import dependants_of_data_source

SHOP = "CREATE TABLE items (id INTEGER, name TEXT); CREATE TABLE buyers (id INTEGER);"


@pytest.fixture
def shop(api):
    return create_source(api, "Shop", "shop.db", SHOP)


def test_workflow_crud_with_lookup_by_id_or_qualified_reference(api):
    created = api.post(WF, {"name": "Sales Flow", "description": "d"}, format="json")
    assert created.status_code == 201 and created["Location"] == f"{WF}{created.json()['id']}/"
    wf = created.json()
    assert wf["kind"] == "workflow" and wf["reference"] == f"acme.sales_flow:{wf['reference_id']}"
    for lookup in (wf["id"], "acme.sales_flow", "acme.Sales-Flow", f"acme.renamed:{wf['reference_id']}"):
        got = api.get(f"{WF}{lookup}/")
        assert got.status_code == 200 and got.json()["id"] == wf["id"], lookup
    assert api.get(f"{WF}acme.nope/").status_code == 404
    malformed = api.get(f"{WF}no_org_part/")  # names nothing: 404, saying what is wrong with it
    assert malformed.status_code == 404 and "organization" in malformed.json()["errors"]["workflow"][0]
    etag = api.get(f"{WF}{wf['id']}/")["ETag"]
    patched = api.patch(f"{WF}{wf['id']}/", {"description": "new"}, format="json", HTTP_IF_MATCH=etag)
    assert patched.status_code == 200 and patched.json()["name"] == "Sales Flow" and patched["ETag"] != etag
    assert api.patch(f"{WF}{wf['id']}/", {"name": "x"}, format="json", HTTP_IF_MATCH=etag).status_code == 412
    put = api.put(f"{WF}{wf['id']}/", {"name": "Sales"}, format="json")
    assert put.status_code == 200 and put.json()["description"] == ""
    assert api.get(f"{WF}?search=sales").json()["count"] == 1
    assert api.delete(f"{WF}{wf['id']}/").status_code == 204
    assert not Workflow.objects.exists()
    events = AuditEvent.objects.filter(target_type="workflows.workflow").order_by("id")
    assert [e.action for e in events] == ["create", "update", "update", "delete"]


def test_names_are_unique_per_organization_case_insensitively(api, other_api):
    create_workflow(api, "Flow")
    duplicate = api.post(WF, {"name": "FLOW"}, format="json")
    assert duplicate.status_code == 409 and "name" in duplicate.json()["errors"]
    assert other_api.post(WF, {"name": "Flow"}, format="json").status_code == 201
    assert other_api.get(f"{WF}acme.flow/").status_code == 404


def test_unknown_and_read_only_fields_are_rejected_by_name(api):
    response = api.post(WF, {"name": "F", "version": 3, "colour": "red"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"version", "colour"}


def test_data_sources_add_list_get_and_delete(api, shop):
    wf = create_workflow(api, "Flow")
    wds = add_source(api, wf, source_data_source="acme.shop")
    assert wds["source"]["version"] == "current" and wds["source"]["resolved_version"] == 1
    pinned = add_source(api, wf, source_data_source=f"acme.shop:{shop['reference_id']}:v1")
    duplicate = api.post(f"{WF}{wf['id']}/data-sources/", {"source_data_source": "acme.shop:v1"}, format="json")
    assert duplicate.status_code == 409
    assert api.get(f"{WF}{wf['id']}/data-sources/").json()["count"] == 2
    # Lookup by the source's reference: ambiguous without the version, exact with it.
    assert api.get(f"{WF}{wf['id']}/data-sources/acme.shop/").status_code == 400
    assert api.get(f"{WF}{wf['id']}/data-sources/acme.shop:v1/").json()["id"] == pinned["id"]
    assert api.get(f"{WF}{wf['id']}/data-sources/acme.shop:current/").json()["id"] == wds["id"]
    add_node(api, wf, "reader", [(wds, "items")])
    in_use = api.delete(wds_url(wf, wds))
    assert in_use.status_code == 409 and in_use.json()["nodes"] == ["reader"]
    assert api.delete(wds_url(wf, pinned)).status_code == 204
    assert dependants_of_data_source_names(shop) == [wf["reference"]]


def dependants_of_data_source_names(source: dict) -> list[str]:
    from datasources.models import DataSource

    return dependants_of_data_source(DataSource.objects.get(pk=source["id"]))


def test_nodes_read_tables_by_reference_or_name_and_output_a_table(api, shop):
    wf = create_workflow(api, "Flow")
    wds = add_source(api, wf, source_data_source="acme.shop")
    schema = api.get(f"/api/v1/data-sources/{shop['id']}/schema/").json()
    items = next(t["reference_id"] for t in schema["tables"] if t["name"] == "items")
    body = {"name": "Clean", "kind": "notebook",
            "inputs": [{"data_source": wds["reference"], "table": f"wrong_name:{items}"},
                       {"data_source": wds["id"], "table": "BUYERS"}],
            "output_table": {"name": "clean items", "columns": [{"name": "id", "type": "int", "nullable": False}]}}
    created = api.post(f"{WF}{wf['id']}/nodes/", body, format="json")
    assert created.status_code == 201, created.json()
    node = created.json()
    assert [i["table"]["reference"] for i in node["inputs"]][0] == f"items:{items}"
    assert node["kind"] == "notebook" and node["output_table"]["reference"] == f"clean_items:{node['reference_id']}"
    bad = api.post(f"{WF}{wf['id']}/nodes/", {"name": "X", "inputs": [{"data_source": wds["id"], "table": "nope"},
                                                                      {"data_source": 999, "table": "items"}]},
                   format="json")
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"inputs.0.table", "inputs.1.data_source"}
    dup = api.post(f"{WF}{wf['id']}/nodes/", {"name": "clean"}, format="json")
    assert dup.status_code == 409
    url = f"{WF}{wf['id']}/nodes/{node['id']}/"
    assert api.get(f"{WF}{wf['id']}/nodes/Clean/").json()["id"] == node["id"]
    patched = api.patch(url, {"output_table": {"name": "renamed"}}, format="json", HTTP_IF_MATCH=created["ETag"])
    assert patched.status_code == 200 and patched.json()["output_table"]["columns"][0]["name"] == "id"
    assert api.patch(url, {"name": "Z"}, format="json", HTTP_IF_MATCH=created["ETag"]).status_code == 412
    tables = api.get(f"{WF}{wf['id']}/tables/").json()["results"]
    assert [t["name"] for t in tables] == ["renamed"]
    assert api.get(f"{WF}{wf['id']}/tables/renamed/").json()["node"]["id"] == node["id"]
    assert api.patch(url, {"output_table": None}, format="json").json()["output_table"] is None
    assert api.delete(url).status_code == 204


def test_output_tables_read_elsewhere_are_protected_and_renames_propagate(api, shop):
    up = create_workflow(api, "Up")
    up_wds = add_source(api, up, source_data_source="acme.shop")
    producer = add_node(api, up, "p", [(up_wds, "items")], output={"name": "out", "columns": []})
    down = create_workflow(api, "Down")
    down_wds = add_source(api, down, source_workflow="acme.up")
    add_node(api, down, "c", [(down_wds, "out")])
    url = f"{WF}{up['id']}/nodes/{producer['id']}/"
    assert api.patch(url, {"output_table": None}, format="json").status_code == 409
    assert api.delete(url).status_code == 409
    assert api.patch(url, {"output_table": {"name": "out2"}}, format="json").status_code == 200
    reads = api.get(f"{WF}{down['id']}/nodes/c/").json()["inputs"][0]["table"]
    assert reads == {"name": "out2", "reference_id": producer["reference_id"],
                     "reference": f"out2:{producer['reference_id']}"}
    blocked = api.delete(f"{WF}{up['id']}/")
    assert blocked.status_code == 409 and blocked.json()["code"] == "CONFLICT"
    assert blocked.json()["dependants"] == [down["reference"]]
    assert api.delete(f"{WF}{down['id']}/").status_code == 204
    assert api.delete(f"{WF}{up['id']}/").status_code == 204


def test_lists_use_a_bounded_number_of_queries(api, shop, django_assert_max_num_queries):
    wf = create_workflow(api, "Flow")
    wds = add_source(api, wf, source_data_source="acme.shop")
    for i in range(20):
        add_node(api, wf, f"n{i}", [(wds, "items"), (wds, "buyers")], output={"name": f"t{i}", "columns": []})
    with django_assert_max_num_queries(12):
        assert len(api.get(f"{WF}{wf['id']}/nodes/").json()["results"]) == 20
    with django_assert_max_num_queries(8):
        assert api.get(WF).status_code == 200


def test_the_openapi_schema_documents_every_workflow_endpoint(api):
    from openapi_spec_validator import validate

    schema = api.get("/api/schema/?format=json").json()
    validate(schema)
    paths = schema["paths"]
    base = "/api/v1/workflows/{workflow}/"
    for path in ("/api/v1/workflows/", base, f"{base}data-sources/", f"{base}data-sources/{{data_source}}/",
                 f"{base}nodes/", f"{base}nodes/{{node}}/", f"{base}tables/", f"{base}tables/{{table}}/"):
        assert path in paths, path
    patch = paths["/api/v1/workflows/{workflow}/data-sources/{data_source}/"]["patch"]
    assert {"200", "400", "403", "404", "409", "412"} <= set(patch["responses"])
    assert {p["name"] for p in patch["parameters"]} >= {"workflow", "data_source", "dry_run", "If-Match"}


def test_deleting_the_organization_removes_workflows_that_read_each_other(api, org, shop):
    up = create_workflow(api, "Up")
    add_source(api, up, source_data_source="acme.shop")
    down = create_workflow(api, "Down")
    add_source(api, down, source_workflow="acme.up")
    org.delete()
    assert not Workflow.objects.exists()


def test_a_data_source_in_use_cannot_be_deleted_behind_the_workflows_back(api, shop):
    from django.db.models import RestrictedError

    from datasources.models import DataSource

    wf = create_workflow(api, "Flow")
    add_source(api, wf, source_data_source="acme.shop")
    with pytest.raises(RestrictedError):
        DataSource.objects.get(pk=shop["id"]).delete()


def _json_schema(node):
    """OpenAPI 3.0 ``nullable`` -> JSON Schema null."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "discriminator")}
    if node.get("nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"]
        else:
            return {"anyOf": [{"type": "null"}, out]}
    return out


def test_real_payloads_match_the_documented_components(api, shop):
    import jsonschema

    doc = api.get("/api/schema/?format=json").json()
    schemas = _json_schema(doc["components"]["schemas"])

    def check(component, instance):
        root = {"components": {"schemas": schemas}, "$ref": f"#/components/schemas/{component}"}
        errors = list(jsonschema.Draft202012Validator(root).iter_errors(instance))
        assert not errors, [f"{component} {list(e.path)}: {e.message[:200]}" for e in errors]

    wf = create_workflow(api, "Flow")
    check("Workflow", wf)
    wds = add_source(api, wf, source_data_source="acme.shop:sample")
    check("WorkflowDataSource", wds)
    check("Node", add_node(api, wf, "n", [(wds, "items")], output={"name": "o", "columns": [{"name": "id"}]}))
    check("WorkflowTable", api.get(f"{WF}{wf['id']}/tables/o/").json())
    plan = api.patch(f"{wds_url(wf, wds)}?dry_run=true", {"source_data_source": "acme.shop"}, format="json").json()
    check("RepointPlan", plan)
    check("DataSourcePatchResult", plan)
    unmapped = create_source(api, "Empty", "empty.db", "CREATE TABLE other (id INT);")
    error = api.patch(wds_url(wf, wds), {"source_data_source": f"acme.empty:{unmapped['reference_id']}"},
                      format="json").json()
    assert error["code"] == "UNMAPPED_TABLES"
    op = doc["paths"]["/api/v1/workflows/{workflow}/data-sources/{data_source}/"]["patch"]
    documented = op["responses"]["400"]["content"]["application/json"]["schema"]
    root = {"components": {"schemas": schemas}, **_json_schema(documented)}
    assert not list(jsonschema.Draft202012Validator(root).iter_errors(error))


def test_an_output_table_without_a_name_is_400_not_500(api):
    from tests.support.workflows import create_workflow

    wf = create_workflow(api, "Named")
    response = api.post(f"/api/v1/workflows/{wf['id']}/nodes/", {"name": "n", "output_table": {}}, format="json")
    assert response.status_code == 400
    assert "output_table.name" in response.json()["errors"]
