"""Reading a workflow data source: the statements it takes, that the shortcut renders the same as
the serializer, and that its one statement still answers 404 for what the caller cannot see."""

from __future__ import annotations

import json

from rest_framework.test import APIClient

from organizations.services import create_token
from tests.support.workflows import WF, add_node, add_source, change_schema, create_source, create_workflow
from workflows.api.representation import workflow_data_source_dict
from workflows.api.serializers import WorkflowDataSourceSerializer
from workflows.models import WorkflowDataSource
from workflows.selectors import renderable_workflow_data_sources

SCRIPT = "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT);"


def test_get_workflow_data_source_is_one_statement_and_renders_like_the_list(
    api, org, django_assert_num_queries
):
    create_source(api, "Shop", "shop.db", SCRIPT)
    flow = create_workflow(api, "Flow")
    wds = add_source(api, flow, source_data_source="acme.shop")
    add_node(api, flow, "Clean", [(wds, "items")])
    _, raw = create_token(organization=org, name="reader", scopes=["workflow.read"])
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    url = f"{WF}{flow['id']}/data-sources/{wds['id']}/"
    assert reader.get(url).status_code == 200  # records the token's last use, caches the token
    # One: the caller's organization's workflow joined to its data source and all it renders.
    with django_assert_num_queries(1):
        one = reader.get(url)
    assert one.status_code == 200
    listed = reader.get(f"{WF}{flow['id']}/data-sources/").json()["results"]
    assert [one.json()] == listed
    creator = one.json()["created_by"]
    assert creator["kind"] == "token" and creator["name"] == "t"  # the fixture token that added it
    assert one["ETag"] == f'"{wds["id"]}-{wds["version"]}"'


def test_the_one_statement_answers_404_for_what_the_caller_cannot_see(api, other_api):
    create_source(api, "Shop", "shop.db", SCRIPT)
    flow, other_flow = create_workflow(api, "Flow"), create_workflow(api, "Other")
    wds = add_source(api, flow, source_data_source="acme.shop")
    assert api.get(f"{WF}{flow['id']}/data-sources/{wds['id']}/").status_code == 200
    mismatched = api.get(f"{WF}{other_flow['id']}/data-sources/{wds['id']}/")
    assert (mismatched.status_code, mismatched.json()["message"]) == (404, "Workflow data source not found.")
    foreign = other_api.get(f"{WF}{flow['id']}/data-sources/{wds['id']}/")  # another organization's workflow
    assert (foreign.status_code, foreign.json()["message"]) == (404, "Workflow not found.")
    unknown = api.get(f"{WF}{flow['id']}/data-sources/{wds['id'] + 1000}/")
    assert (unknown.status_code, unknown.json()["message"]) == (404, "Workflow data source not found.")
    by_reference = api.get(f"{WF}{flow['id']}/data-sources/acme.shop/")  # references take the two lookups
    assert by_reference.status_code == 200 and by_reference.json()["id"] == wds["id"]


def test_the_direct_representation_equals_the_serializers(api, org):
    shop = create_source(api, "Shop", "shop.db", SCRIPT)
    change_schema(api, shop, "shop.db", "CREATE TABLE IF NOT EXISTS more (id INTEGER);")
    upstream, flow = create_workflow(api, "Upstream"), create_workflow(api, "Flow")
    add_source(api, flow, source_data_source="acme.shop")
    add_source(api, flow, source_data_source="acme.shop:v1")
    add_source(api, flow, source_data_source="acme.shop:sample")
    add_source(api, flow, source_workflow="acme.upstream")
    rows = list(renderable_workflow_data_sources().filter(workflow_id=flow["id"]))
    WorkflowDataSource.objects.filter(pk=rows[0].pk).update(updated_by_token=None)  # no actor at all
    rows = list(renderable_workflow_data_sources().filter(workflow_id=flow["id"]))
    assert len(rows) == 4 and upstream["id"] in {r.source_workflow_id for r in rows}
    for row in rows:
        direct, drf = workflow_data_source_dict(row), WorkflowDataSourceSerializer(row).data
        assert direct == drf
        assert json.dumps(direct) == json.dumps(drf)  # the same keys in the same order, the same text
