"""Workflow admin findings of the outside-in audit: the repoint page's mapped_tables parses JSON by
the API's rules; the workflow form shows what the service refuses on its fields, with no success
message, and refuses a stale page."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from organizations.models import AuditEvent
from tests.support.workflows import change_schema, create_workflow, shop_flow
from workflows.models import NodeInput, Workflow, WorkflowDataSource


@pytest.fixture
def flow(api):
    return shop_flow(api)


@pytest.mark.parametrize(("mapped", "message"), [
    ('{"\\ud800": "new_table"}', "Key: Must be valid UTF-8 text"),
    ('{"old_table": "\\ud800"}', "old_table: Must be valid UTF-8 text"),
    ('{"old_table": "new\\u0000table"}', "old_table: Must not contain NUL characters"),
    ('{"old_table": 1e400}', "old_table: Must be a finite number"),
    ('{"old_table": 1}', "Expected a JSON object of strings."),
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


# --- the workflow form: the service's refusals are form errors -------------------------------------

EMPTY_INLINES = {"data_sources-TOTAL_FORMS": 0, "data_sources-INITIAL_FORMS": 0,
                 "nodes-TOTAL_FORMS": 0, "nodes-INITIAL_FORMS": 0}
TOO_LONG = "d" * 10_001


def _shown_messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_adding_a_workflow_the_service_refuses_shows_the_field_error_and_no_success(admin_client, org):
    response = admin_client.post(reverse("admin:workflows_workflow_add"),
                                 {"organization": org.pk, "name": "Long", "description": TOO_LONG, **EMPTY_INLINES})
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "10000" in " ".join(form.errors["description"])
    assert form["description"].value() == TOO_LONG  # the input is kept
    assert not any("success" in m for m in _shown_messages(response))
    assert not Workflow.objects.exists() and not AuditEvent.objects.filter(target_type="workflows.workflow").exists()


def test_changing_a_workflow_the_service_refuses_shows_the_field_error_and_no_success(admin_client, api):
    wf = create_workflow(api, "Flow")
    url = reverse("admin:workflows_workflow_change", args=[wf["id"]])
    response = admin_client.post(url, {"name": "Renamed", "description": TOO_LONG, **EMPTY_INLINES})
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "10000" in " ".join(form.errors["description"])
    assert form["name"].value() == "Renamed"
    assert not any("success" in m for m in _shown_messages(response))
    saved = Workflow.objects.get(pk=wf["id"])
    assert (saved.name, saved.description, saved.version) == ("Flow", "", 1)


def test_a_name_clash_is_the_services_error_on_the_name(admin_client, api, org):
    create_workflow(api, "Taken")
    response = admin_client.post(reverse("admin:workflows_workflow_add"),
                                 {"organization": org.pk, "name": "TAKEN", "description": "", **EMPTY_INLINES})
    assert "already exists" in " ".join(response.context["adminform"].form.errors["name"])
    assert Workflow.objects.count() == 1


def test_a_change_sends_only_what_changed(admin_client, api):
    wf = create_workflow(api, "Flow")
    url = reverse("admin:workflows_workflow_change", args=[wf["id"]])
    response = admin_client.post(url, {"name": "Renamed", "description": "", **EMPTY_INLINES})
    assert response.status_code == 302
    assert any("changed successfully" in m for m in _shown_messages(response))
    event = AuditEvent.objects.get(target_type="workflows.workflow", target_id=wf["id"], action="update")
    assert set(event.changes) == {"name"} and event.actor_repr == "user:admin"
    assert Workflow.objects.get(pk=wf["id"]).version == 2


# --- a stale workflow page is refused --------------------------------------------------------------


def _posted_back(response) -> dict:
    """What the browser posts back from the rendered change form, unchanged."""
    form = response.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    return {**{k: v for k, v in data.items() if v is not None}, **EMPTY_INLINES}


def test_a_stale_workflow_page_does_not_overwrite_a_change_made_meanwhile(admin_client, api):
    wf = create_workflow(api, "Flow")
    url = reverse("admin:workflows_workflow_change", args=[wf["id"]])
    data = _posted_back(admin_client.get(url))
    assert data["version_seen"] == 1
    assert api.patch(f"/api/v1/workflows/{wf['id']}/", {"description": "set by the API"},
                     format="json").status_code == 200
    response = admin_client.post(url, {**data, "name": "Renamed"})
    assert response.status_code == 200
    assert "changed by someone else" in " ".join(response.context["adminform"].form.non_field_errors())
    saved = Workflow.objects.get(pk=wf["id"])
    assert (saved.name, saved.description, saved.version) == ("Flow", "set by the API", 2)
    fresh = _posted_back(admin_client.get(url))
    assert admin_client.post(url, {**fresh, "name": "Renamed"}).status_code == 302
    saved.refresh_from_db()
    assert (saved.name, saved.description, saved.version) == ("Renamed", "set by the API", 3)
