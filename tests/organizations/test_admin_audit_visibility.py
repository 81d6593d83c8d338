"""Audit events about objects whose admin is restricted to some roles (API tokens, memberships, webhooks:
owner or admin, README "Security") are shown only to those roles: a viewer or editor who sees "0 api
tokens" used to read every token's name, prefix, scopes, user and revocation in Audit events. The list,
its count, its filters, its search and the detail page leave them out; events about what every member
may see (data sources, the organization, workspaces) stay visible to every member, and a data source's
event made by a token does not show that token's prefix to them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from datasources.services.datasources import create_data_source
from organizations import audit
from organizations.actors import Actor
from organizations.models import ApiToken, AuditEvent, Membership, Role
from organizations.services import create_token, revoke_token, set_membership, update_token
from webhooks.models import Webhook

CHANGELIST = "admin:organizations_auditevent_changelist"
HIDDEN_TYPES = {"organizations.apitoken", "organizations.membership", "webhooks.webhook"}


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def trail(org, sqlite_file, django_user_model):
    """Events of every kind in ``org``: a token created, narrowed and revoked, a member added and
    promoted, a webhook created, a data source created by a token acting for no user."""
    system = Actor.system(org)
    token, _raw = create_token(organization=org, name="deploy-secretive", scopes=["datasource.read",
                                                                                  "datasource.write"])
    update_token(actor=system, token=token, scopes=["datasource.read"])
    revoke_token(actor=system, token=token)
    newcomer = django_user_model.objects.create_user("newcomer")
    set_membership(actor=system, organization=org, user=newcomer, role=Role.VIEWER)
    set_membership(actor=system, organization=org, user=newcomer, role=Role.EDITOR)
    webhook = Webhook.objects.create(organization=org, url="https://hooks.example.com/x", events=[])
    audit.record(actor=system, action="create", target=webhook, changes={"url": {"old": None, "new": "hooks"}})
    writer = create_token(organization=org, name="writer", scopes=["datasource.write", "datasource.read"])[0]
    data = {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}
    source = create_data_source(actor=Actor(organization=org, token=writer, scopes=frozenset(writer.scopes)),
                                data=data).data_source
    return {"token": token, "writer": writer, "source": source}


@pytest.fixture
def member(client, django_user_model):
    """``member({org: role})``: a signed-in staff user who may view audit events, with these roles."""

    def make(roles: dict):
        user = django_user_model.objects.create_user(f"m{len(roles)}{next(iter(roles.values()))}", is_staff=True)
        user.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
        for organization, role in roles.items():
            Membership.objects.create(organization=organization, user=user, role=role)
        client.force_login(user)
        return user

    return make


def _listed(client, **params) -> list[AuditEvent]:
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
def test_viewers_and_editors_see_no_event_about_tokens_memberships_or_webhooks(client, member, org, trail, role):
    member({org: role})
    page = client.get(reverse(CHANGELIST))
    shown = {e.target_type for e in page.context["cl"].result_list}
    assert shown and not shown & HIDDEN_TYPES
    assert "datasources.datasource" in shown
    visible = AuditEvent.objects.exclude(target_type__in=HIDDEN_TYPES).count()
    assert page.context["cl"].result_count == page.context["cl"].full_result_count == visible
    html = page.content.decode()
    for text in ("deploy-secretive", trail["token"].prefix, trail["writer"].prefix, "newcomer", "apitoken",
                 "membership", "webhooks.webhook", "revoke"):
        assert text not in html, text  # not in a row, a filter choice or a count
    for target_type in HIDDEN_TYPES:
        assert _listed(client, target_type=target_type) == []
    assert _listed(client, q="deploy-secretive") == []
    assert _listed(client, action="revoke") == []
    for event in AuditEvent.objects.filter(target_type__in=HIDDEN_TYPES):
        assert client.get(reverse("admin:organizations_auditevent_change", args=[event.pk])).status_code == 302


def test_a_token_made_data_source_event_does_not_show_the_tokens_prefix_to_a_viewer(client, member, org, trail):
    member({org: Role.VIEWER})
    event = AuditEvent.objects.get(target_type="datasources.datasource", action="create")
    page = client.get(reverse("admin:organizations_auditevent_change", args=[event.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "token:writer" in html  # the actor, as the API's data-source history names it
    assert trail["writer"].prefix not in html


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owners_and_admins_see_them(client, member, org, trail, role):
    member({org: role})
    assert {e.target_type for e in _listed(client)} >= HIDDEN_TYPES
    assert len(_listed(client, target_type="organizations.apitoken")) == 4  # deploy: 3, writer: 1
    event = AuditEvent.objects.get(target_type="datasources.datasource", action="create")
    page = client.get(reverse("admin:organizations_auditevent_change", args=[event.pk])).content.decode()
    assert trail["writer"].prefix in page


def test_the_role_counts_in_each_organization(client, member, org, other_org, trail):
    """An admin elsewhere sees that organization's token events, not this one's."""
    create_token(organization=other_org, name="theirs", scopes=["datasource.read"])
    member({org: Role.VIEWER, other_org: Role.ADMIN})
    tokens = _listed(client, target_type="organizations.apitoken")
    assert [(e.organization_id, e.target_repr.split(" ")[0]) for e in tokens] == [(other_org.pk, "theirs")]
    assert {e.organization_id for e in _listed(client)} == {org.pk, other_org.pk}


def test_superusers_see_every_event(admin_client, org, trail):
    assert len(_listed(admin_client)) == AuditEvent.objects.count()
    assert ApiToken.objects.filter(organization=org).count() == 2
