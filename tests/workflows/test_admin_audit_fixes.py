"""Workflow admin findings of the outside-in audit: the repoint page's mapped_tables parses JSON by
the API's rules and checks entries with the API's own field."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.support.workflows import add_node, add_source, change_schema, create_source, create_workflow
from workflows.models import NodeInput, WorkflowDataSource


@pytest.fixture
def flow(api):
    source = create_source(api, "Shop", "shop.db", "CREATE TABLE old_table (id INT); CREATE TABLE keep (id INT);")
    workflow = create_workflow(api, "Flow")
    wds = add_source(api, workflow, source_data_source="acme.shop:v1")
    add_node(api, workflow, "n1", [(wds, "old_table"), (wds, "keep")])
    return {"source": source, "workflow": workflow, "wds": wds}


@pytest.mark.parametrize(("mapped", "message"), [
    ('{"\\ud800": "new_table"}', "Key: Must be valid UTF-8 text"),
    ('{"old_table": "\\ud800"}', "old_table: Must be valid UTF-8 text"),
    ('{"old_table": "new\\u0000table"}', "old_table: Must not contain NUL characters"),
    ('{"old_table": 1e400}', "old_table: Must be a finite number"),
    ('{"old_table": 1}', "old_table: Not a valid string."),
    ('{"old_table": ""}', "old_table: This field may not be blank."),
    ('{"old_table": "' + "x" * 601 + '"}', "old_table: Ensure this field has no more than 600 characters."),
    ('["old_table"]', "Expected a JSON object of strings."),
])
def test_repoint_mapped_tables_refuses_what_the_api_refuses(admin_client, api, flow, mapped, message):
    v2 = change_schema(api, flow["source"], "shop.db", "ALTER TABLE old_table RENAME TO new_table;")
    url = reverse("admin:workflows_workflowdatasource_repoint", args=[flow["wds"]["id"]])
    for button in ("_preview", "_apply"):
        response = admin_client.post(url, {"source_data_source": f"acme.shop:v{v2}", "mapped_tables": mapped,
                                           button: "1"})
        assert response.status_code == 200
        assert message in " ".join(response.context["form"].errors.get("mapped_tables", []))
    assert WorkflowDataSource.objects.get().version == 1
    assert set(NodeInput.objects.values_list("table_name", flat=True)) == {"old_table", "keep"}


def test_repoint_mapped_tables_accepts_what_the_api_accepts(admin_client, api, flow):
    v2 = change_schema(api, flow["source"], "shop.db", "ALTER TABLE old_table RENAME TO new_table;")
    url = reverse("admin:workflows_workflowdatasource_repoint", args=[flow["wds"]["id"]])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"source_data_source": f"acme.shop:v{v2}",
                                       "mapped_tables": '{"old_table": "new_table"}', "_apply": "1"})
    assert response.status_code == 302
    assert set(NodeInput.objects.values_list("table_name", flat=True)) == {"new_table", "keep"}
