"""Reading a workflow data source: the statements it takes, and that the shortcut renders the same."""

from __future__ import annotations

from rest_framework.test import APIClient

from organizations.services import create_token
from tests.support.workflows import WF, add_node, add_source, create_source, create_workflow

SCRIPT = "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT);"


def test_get_workflow_data_source_is_two_statements_and_renders_like_the_list(
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
    with django_assert_num_queries(2):  # the workflow, the data source with all it renders
        one = reader.get(url)
    assert one.status_code == 200
    listed = reader.get(f"{WF}{flow['id']}/data-sources/").json()["results"]
    assert [one.json()] == listed
    creator = one.json()["created_by"]
    assert creator["kind"] == "token" and creator["name"] == "t"  # the fixture token that added it
    assert one["ETag"] == f'"{wds["id"]}-{wds["version"]}"'
