"""The admin: workflows with their data sources and nodes inline; repoint with a dry-run preview."""

from __future__ import annotations

import pytest
from django.urls import reverse

from organizations.models import AuditEvent
from tests.support.workflows import add_source, change_schema, create_workflow, shop_flow
from workflows.models import NodeInput, Workflow, WorkflowDataSource


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def flow(api):
    return shop_flow(api)


def test_the_workflow_page_shows_data_sources_and_nodes_inline(admin_client, flow):
    page = admin_client.get(reverse("admin:workflows_workflow_change", args=[flow["workflow"]["id"]]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "acme.shop:" in html and "n1" in html and "Repoint" in html


def test_repoint_previews_the_plan_then_applies_it_with_the_same_service(admin_client, api, flow):
    v2 = change_schema(api, flow["source"], "shop.db", "ALTER TABLE old_table RENAME TO new_table;")
    url = reverse("admin:workflows_workflowdatasource_repoint", args=[flow["wds"]["id"]])
    assert admin_client.get(url).status_code == 200
    refused = admin_client.post(url, {"source_data_source": f"acme.shop:v{v2}", "_preview": "1"})
    assert refused.status_code == 200 and "repoint-error" in refused.content.decode()
    assert "old_table" in refused.content.decode()
    body = {"source_data_source": f"acme.shop:v{v2}", "mapped_tables": '{"old_table": "new_table"}'}
    preview = admin_client.post(url, {**body, "_preview": "1"})
    assert preview.status_code == 200 and "repoint-plan" in preview.content.decode()
    assert "Merged" not in preview.content.decode()
    onto_keep = admin_client.post(url, {"source_data_source": f"acme.shop:v{v2}",
                                        "mapped_tables": '{"old_table": "keep"}', "_preview": "1"}).content.decode()
    assert "<strong>Merged:</strong>" in onto_keep and "all map to <code>keep:" in onto_keep
    assert WorkflowDataSource.objects.get().version == 1
    applied = admin_client.post(url, {**body, "_apply": "1"})
    assert applied.status_code == 302
    assert set(NodeInput.objects.values_list("table_name", flat=True)) == {"new_table", "keep"}
    assert AuditEvent.objects.get(action="repoint").actor_repr == "user:root"


def test_deleting_a_workflow_that_is_a_source_is_refused(admin_client, api, flow):
    downstream = create_workflow(api, "Down")
    add_source(api, downstream, source_workflow="acme.flow")
    url = reverse("admin:workflows_workflow_delete", args=[flow["workflow"]["id"]])
    assert "Still a source" in admin_client.get(url, follow=True).content.decode()
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302 and Workflow.objects.filter(pk=flow["workflow"]["id"]).exists()


def test_adding_and_renaming_a_workflow_goes_through_the_service(admin_client, org):
    add = admin_client.post(reverse("admin:workflows_workflow_add"),
                            {"organization": org.pk, "name": "Made in admin", "description": "",
                             "data_sources-TOTAL_FORMS": 0, "data_sources-INITIAL_FORMS": 0,
                             "nodes-TOTAL_FORMS": 0, "nodes-INITIAL_FORMS": 0})
    assert add.status_code == 302, add.content.decode()[:3000]
    wf = Workflow.objects.get(name="Made in admin")
    assert wf.reference_id and AuditEvent.objects.filter(action="create", target_id=wf.pk).exists()
    dup = admin_client.post(reverse("admin:workflows_workflow_add"),
                            {"organization": org.pk, "name": "MADE IN ADMIN", "description": "",
                             "data_sources-TOTAL_FORMS": 0, "data_sources-INITIAL_FORMS": 0,
                             "nodes-TOTAL_FORMS": 0, "nodes-INITIAL_FORMS": 0})
    assert dup.status_code == 200 and Workflow.objects.count() == 1
