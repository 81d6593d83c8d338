"""Organization admin findings of the outside-in audit: API tokens, organizations and workspaces."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django import forms
from django.urls import reverse
from django.utils import timezone

from organizations.models import ApiToken, AuditEvent, Organization, Workspace
from organizations.services import create_token


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


def _token_change(admin_client, token: ApiToken, **changes: str):
    data = {"name": token.name, "scopes": token.scopes}
    if token.expires_at is not None:
        local = timezone.localtime(token.expires_at)
        data.update(expires_at_0=f"{local:%Y-%m-%d}", expires_at_1=f"{local:%H:%M:%S}")
    data.update(changes)
    return admin_client.post(reverse("admin:organizations_apitoken_change", args=[token.pk]), data)


# --- API tokens: a new expiry must be in the future ------------------------------------------------


def test_the_token_change_form_refuses_an_expiry_in_the_past(admin_client, org):
    token, _raw = create_token(organization=org, name="ci", scopes=["datasource.read"])
    response = _token_change(admin_client, token, expires_at_0="2020-01-01", expires_at_1="00:00:00")
    assert response.status_code == 200
    assert "The expiry must be in the future." in response.context["adminform"].form.errors["expires_at"]
    token.refresh_from_db()
    assert token.expires_at is None and token.is_active
    assert not AuditEvent.objects.filter(target_type="organizations.apitoken", action="update").exists()


def test_the_token_change_form_accepts_a_future_expiry(admin_client, org):
    token, _raw = create_token(organization=org, name="ci", scopes=["datasource.read"])
    response = _token_change(admin_client, token, expires_at_0="2099-01-01", expires_at_1="00:00:00")
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.expires_at.year == 2099


def test_an_expired_tokens_unchanged_expiry_is_kept_on_a_rename(admin_client, org):
    past = (timezone.now() - timedelta(days=3)).replace(microsecond=0)
    token, _raw = create_token(organization=org, name="old", scopes=["datasource.read"], expires_at=past)
    response = _token_change(admin_client, token, name="old (expired)")
    assert response.status_code == 302, response.context["adminform"].form.errors
    token.refresh_from_db()
    assert (token.name, token.expires_at) == ("old (expired)", past)


# --- workspaces stay in their organization ---------------------------------------------------------


def test_a_workspaces_organization_cannot_be_changed(admin_client, org, other_org):
    workspace = Workspace.objects.create(organization=org, name="Team")
    url = reverse("admin:organizations_workspace_change", args=[workspace.pk])
    page = admin_client.get(url)
    assert "organization" not in page.context["adminform"].form.fields
    response = admin_client.post(url, {"name": "Team 2", "organization": other_org.pk})
    assert response.status_code == 302
    workspace.refresh_from_db()
    assert (workspace.name, workspace.organization_id) == ("Team 2", org.pk)
    added = admin_client.post(reverse("admin:organizations_workspace_add"),
                              {"name": "Elsewhere", "organization": other_org.pk})
    assert added.status_code == 302
    assert Workspace.objects.get(name="Elsewhere").organization_id == other_org.pk


# --- organization and workspace saves are audited --------------------------------------------------


def _org_page_data(admin_client, org) -> dict:
    """What the organization change page posts back unchanged (its fields and inline rows)."""
    page = admin_client.get(reverse("admin:organizations_organization_change", args=[org.pk]))
    form = page.context["adminform"].form
    data: dict = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field, forms.BooleanField):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    for inline in page.context["inline_admin_formsets"]:
        fs = inline.formset
        data.update({f"{fs.prefix}-TOTAL_FORMS": fs.total_form_count(), f"{fs.prefix}-INITIAL_FORMS":
                     fs.initial_form_count(), f"{fs.prefix}-MIN_NUM_FORMS": 0, f"{fs.prefix}-MAX_NUM_FORMS": 1000})
        for i, row in enumerate(fs.forms):
            data[f"{fs.prefix}-{i}-id"] = row.instance.pk
            for name in ("user", "role", "name"):
                if name in row.fields:
                    data[f"{fs.prefix}-{i}-{name}"] = row[name].value()
    return data


def _events(target) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(target_type=target._meta.label_lower, target_id=target.pk).order_by("id"))


def test_organization_settings_changed_in_the_admin_are_audited(admin_client, org):
    url = reverse("admin:organizations_organization_change", args=[org.pk])
    unchanged = _org_page_data(admin_client, org)
    assert admin_client.post(url, unchanged).status_code == 302
    assert _events(org) == []  # nothing changed, nothing recorded
    data = {**unchanged, "name": "Acme Inc", "health_failure_threshold": 5, "health_check_interval": 3600,
            "revisions_keep": 20, "changes_need_second_person": "on"}
    assert admin_client.post(url, data).status_code == 302
    by_action = {e.action: e for e in _events(org)}
    assert set(by_action) == {"update", "update_health_settings"}
    assert by_action["update"].changes == {"name": {"old": "Acme", "new": "Acme Inc"},
                                           "revisions_keep": {"old": 50, "new": 20},
                                           "changes_need_second_person": {"old": False, "new": True}}
    assert by_action["update_health_settings"].changes == {
        "health_failure_threshold": {"old": 3, "new": 5}, "health_check_interval": {"old": None, "new": 3600}}
    assert {(e.organization_id, e.actor_repr) for e in by_action.values()} == {(org.pk, "user:admin")}
    org.refresh_from_db()
    assert (org.name, org.health_failure_threshold, org.health_check_interval, org.revisions_keep,
            org.changes_need_second_person) == ("Acme Inc", 5, 3600, 20, True)


def test_a_new_organization_is_audited(admin_client):
    response = admin_client.post(reverse("admin:organizations_organization_add"),
                                 {"slug": "initech", "name": "Initech", "health_failure_threshold": 3,
                                  "revisions_keep": 50, "revisions_keep_days": 90,
                                  "memberships-TOTAL_FORMS": 0, "memberships-INITIAL_FORMS": 0,
                                  "workspaces-TOTAL_FORMS": 0, "workspaces-INITIAL_FORMS": 0})
    assert response.status_code == 302, response.context["adminform"].form.errors
    (event,) = _events(Organization.objects.get(slug="initech"))
    assert event.action == "create" and event.changes["slug"] == {"old": None, "new": "initech"}


def test_workspace_saves_are_audited(admin_client, org):
    add = admin_client.post(reverse("admin:organizations_workspace_add"), {"name": "Team", "organization": org.pk})
    assert add.status_code == 302
    workspace = Workspace.objects.get(name="Team")
    change = reverse("admin:organizations_workspace_change", args=[workspace.pk])
    assert admin_client.post(change, {"name": "Team"}).status_code == 302  # unchanged: no event
    assert admin_client.post(change, {"name": "Analysts"}).status_code == 302
    assert admin_client.post(reverse("admin:organizations_workspace_delete", args=[workspace.pk]),
                             {"post": "yes"}).status_code == 302
    events = _events(workspace)
    assert [(e.action, e.changes) for e in events] == [
        ("create", {"name": {"old": None, "new": "Team"}}),
        ("update", {"name": {"old": "Team", "new": "Analysts"}}),
        ("delete", {"name": {"old": "Analysts", "new": None}}),
    ]
    assert {(e.organization_id, e.actor_repr) for e in events} == {(org.pk, "user:admin")}


def test_workspace_rows_of_the_organization_page_are_audited(admin_client, org):
    kept = Workspace.objects.create(organization=org, name="Kept")
    url = reverse("admin:organizations_organization_change", args=[org.pk])
    data = _org_page_data(admin_client, org)
    data.update({"workspaces-0-name": "Renamed", "workspaces-TOTAL_FORMS": 2, "workspaces-1-name": "New one"})
    assert admin_client.post(url, data).status_code == 302
    new = Workspace.objects.get(name="New one")
    assert [(e.action, e.changes) for e in _events(kept)] == [("update", {"name": {"old": "Kept", "new": "Renamed"}})]
    assert [(e.action, e.changes) for e in _events(new)] == [("create", {"name": {"old": None, "new": "New one"}})]
    data = _org_page_data(admin_client, org)
    index = next(i for i in range(2) if data[f"workspaces-{i}-id"] == kept.pk)
    data[f"workspaces-{index}-DELETE"] = "on"
    assert admin_client.post(url, data).status_code == 302
    assert [e.action for e in _events(kept)] == ["update", "delete"]
    assert not Workspace.objects.filter(pk=kept.pk).exists()
