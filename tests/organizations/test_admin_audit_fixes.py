"""Organization admin findings of the outside-in audit: API tokens, organizations and workspaces."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from organizations.models import ApiToken, AuditEvent, Workspace
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
