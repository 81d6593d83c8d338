"""Short references name one object: names are unique as references compare them (escaped, in any case).

``Demo SQLite`` and ``demo-sqlite`` are one name in ``acme.demo_sqlite``: creating or renaming a data
source, workflow or node to a name another has that way is a 409 naming the other (API and admin,
one service). Rows older than that rule may still share a name: the exact spelling picks one (as
for tables); a name that still matches several is ambiguous, a 404 saying so in a path and a 400 in
a body.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from datasources.models import DataSource
from organizations.models import Membership, Role
from tests.support.admin_forms import form_data
from tests.support.workflows import WF, add_node, add_source, create_source, create_workflow
from workflows.models import Node, Workflow

DS = "/api/v1/data-sources/"
EMPTY_INLINES = {"data_sources-TOTAL_FORMS": 0, "data_sources-INITIAL_FORMS": 0,
                 "nodes-TOTAL_FORMS": 0, "nodes-INITIAL_FORMS": 0}


@pytest.fixture
def demo(api):
    return create_source(api, "Demo SQLite", "demo.db", "CREATE TABLE items (id INTEGER);")


def _sqlite(name: str, path: str = "demo.db") -> dict:
    return {"name": name, "type": "sqlite", "connection": {"path": path}}


# --- refused: create and rename ----------------------------------------------------------------------


def test_a_data_source_name_that_escapes_to_anothers_is_a_409_naming_it(api, demo):
    taken = api.post(DS, _sqlite("demo-sqlite"), format="json")
    assert taken.status_code == 409 and taken.json()["code"] == "CONFLICT"
    assert "'Demo SQLite'" in taken.json()["message"] and "demo_sqlite" in taken.json()["message"]
    assert "'Demo SQLite'" in taken.json()["errors"]["name"][0]
    same_case = api.post(DS, _sqlite("DEMO SQLITE"), format="json")
    assert same_case.status_code == 409 and same_case.json()["errors"]["name"] == [
        "A data source with this name already exists."]
    other = create_source(api, "Other", "other.db", "CREATE TABLE t (id INTEGER);")
    renamed = api.patch(f"{DS}{other['id']}/", {"name": "demo__SQLite"}, format="json")
    assert renamed.status_code == 409 and "'Demo SQLite'" in renamed.json()["message"]
    assert DataSource.objects.get(pk=other["id"]).name == "Other"
    own = api.patch(f"{DS}{demo['id']}/", {"name": "demo-sqlite"}, format="json")  # its own name, respelled
    assert own.status_code == 200 and own.json()["name"] == "demo-sqlite"


def test_a_workflow_name_that_escapes_to_anothers_is_a_409_naming_it(api):
    ventes = create_workflow(api, "Ventes été")
    taken = api.post(WF, {"name": "ventes-été"}, format="json")
    assert taken.status_code == 409 and "'Ventes été'" in taken.json()["message"]
    assert "ventes_été" in taken.json()["errors"]["name"][0]
    other = create_workflow(api, "Autre")
    for method in (api.patch, api.put):
        renamed = method(f"{WF}{other['id']}/", {"name": "VENTES  ÉTÉ"}, format="json")
        assert renamed.status_code == 409 and "'Ventes été'" in renamed.json()["message"], method
    assert Workflow.objects.get(pk=other["id"]).name == "Autre"
    assert api.patch(f"{WF}{ventes['id']}/", {"name": "ventes-été"}, format="json").status_code == 200


def test_a_node_name_that_escapes_to_anothers_in_its_workflow_is_a_409(api):
    flow = create_workflow(api, "Flow")
    add_node(api, flow, "Order audit", [])
    taken = api.post(f"{WF}{flow['id']}/nodes/", {"name": "order-audit"}, format="json")
    assert taken.status_code == 409 and "'Order audit'" in taken.json()["message"]
    other = add_node(api, flow, "Other", [])
    renamed = api.patch(f"{WF}{flow['id']}/nodes/{other['id']}/", {"name": "ORDER_AUDIT"}, format="json")
    assert renamed.status_code == 409
    assert add_node(api, create_workflow(api, "Elsewhere"), "order-audit", [])  # another workflow's name


@pytest.fixture
def operator(admin_user, org):
    Membership.objects.create(organization=org, user=admin_user, role=Role.OWNER)
    return admin_user


def test_the_admin_refuses_the_same_names_through_the_same_services(admin_client, operator, org, api, demo):
    create_workflow(api, "Ventes été")
    response = admin_client.post(reverse("admin:workflows_workflow_add"),
                                 {"organization": org.pk, "name": "ventes-été", "description": "", **EMPTY_INLINES})
    assert response.status_code == 200
    assert "'Ventes été'" in response.context["adminform"].form.errors["name"][0]
    url = reverse("admin:datasources_datasource_add") + "?type=sqlite"
    data = form_data(admin_client.get(url))
    data.update(name="demo-sqlite", organization=org.pk, connection__path="demo.db")
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "'Demo SQLite'" in response.context["adminform"].form.errors["name"][0]
    assert Workflow.objects.count() == 1 and DataSource.objects.count() == 1


# --- rows that already share a name (written before the rule) -----------------------------------------


def _respell(model, pk: int, name: str) -> None:
    """What an older release let through: a name another has once escaped."""
    model.objects.filter(pk=pk).update(name=name)


def test_a_workflow_path_means_the_exact_spelling_else_it_is_a_404_saying_ambiguous(api):
    ventes = create_workflow(api, "Ventes été")
    other = create_workflow(api, "Autre")
    _respell(Workflow, other["id"], "ventes-été")
    exact = api.get(f"{WF}acme.Ventes%20%C3%A9t%C3%A9/")
    assert exact.status_code == 200 and exact.json()["id"] == ventes["id"]
    assert api.get(f"{WF}acme.ventes-%C3%A9t%C3%A9/").json()["id"] == other["id"]
    ambiguous = api.get(f"{WF}acme.ventes_%C3%A9t%C3%A9/")
    assert ambiguous.status_code == 404 and ambiguous.json()["code"] == "NOT_FOUND"
    message = ambiguous.json()["message"]
    assert "ambiguous" in message and "reference id" in message
    assert ventes["reference_id"] in message and other["reference_id"] in message
    assert api.get(f"{WF}acme.ventes_%C3%A9t%C3%A9:{other['reference_id']}/").json()["id"] == other["id"]
    # Its own description can still change (the name is not rewritten); a body naming both is a 400.
    assert api.patch(f"{WF}{other['id']}/", {"description": "kept"}, format="json").status_code == 200
    reader = create_workflow(api, "Reader")
    in_body = api.post(f"{WF}{reader['id']}/data-sources/", {"source_workflow": "acme.ventes_été"}, format="json")
    assert in_body.status_code == 400 and "source_workflow" in in_body.json()["errors"]
    assert add_source(api, reader, source_workflow="acme.Ventes été")["source"]["id"] == ventes["id"]


def test_a_data_source_reference_means_the_exact_spelling_else_it_is_ambiguous(api, demo):
    other = create_source(api, "Other", "other.db", "CREATE TABLE items (id INTEGER);")
    _respell(DataSource, other["id"], "demo-sqlite")
    flow = create_workflow(api, "Flow")
    ambiguous = api.post(f"{WF}{flow['id']}/data-sources/", {"source_data_source": "acme.demo_sqlite"}, format="json")
    assert ambiguous.status_code == 400 and "source_data_source" in ambiguous.json()["errors"]
    exact = add_source(api, flow, source_data_source="acme.Demo SQLite")
    respelled = add_source(api, flow, source_data_source="acme.demo-sqlite")
    assert (exact["source"]["id"], respelled["source"]["id"]) == (demo["id"], other["id"])
    # The workflow's data sources by their source's name: the same rule.
    assert api.get(f"{WF}{flow['id']}/data-sources/acme.Demo%20SQLite/").json()["id"] == exact["id"]
    assert api.get(f"{WF}{flow['id']}/data-sources/acme.demo-sqlite/").json()["id"] == respelled["id"]
    in_path = api.get(f"{WF}{flow['id']}/data-sources/acme.demo_sqlite/")
    assert in_path.status_code == 404 and "ambiguous" in in_path.json()["message"]
    assert demo["reference_id"] in in_path.json()["message"] and other["reference_id"] in in_path.json()["message"]
    node = api.post(f"{WF}{flow['id']}/nodes/", {"name": "n", "inputs": [
        {"data_source": "acme.demo_sqlite", "table": "items"}]}, format="json")
    assert node.status_code == 400 and "inputs.0.data_source" in node.json()["errors"]
    read = add_node(api, flow, "n", [])
    by_exact = api.patch(f"{WF}{flow['id']}/nodes/{read['id']}/", {"inputs": [
        {"data_source": "acme.Demo SQLite", "table": "items"}]}, format="json")
    assert by_exact.status_code == 200 and by_exact.json()["inputs"][0]["data_source"]["id"] == exact["id"]


def test_a_node_path_means_the_exact_spelling_else_it_is_a_404_saying_ambiguous(api):
    flow = create_workflow(api, "Flow")
    audit = add_node(api, flow, "Order audit", [])
    other = add_node(api, flow, "Other", [])
    _respell(Node, other["id"], "order-audit")
    nodes = f"{WF}{flow['id']}/nodes/"
    assert api.get(f"{nodes}Order%20audit/").json()["id"] == audit["id"]
    assert api.get(f"{nodes}order-audit/").json()["id"] == other["id"]
    ambiguous = api.delete(f"{nodes}order_audit/")
    assert ambiguous.status_code == 404 and "ambiguous" in ambiguous.json()["message"]
    assert Node.objects.count() == 2
