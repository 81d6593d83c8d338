"""A token that acts for a user is created only by that user (or a platform superuser, or the
``create_token`` command): an organization admin who minted a token acting for the owner could write
a connection change with their own token and apply it as "the owner" with that one, past the
four-eyes rule, and the audit trail would name the owner."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.urls import reverse

from organizations.actors import Actor
from organizations.models import ApiToken, AuditEvent, Membership, Role
from organizations.services import create_token

ADD = "admin:organizations_apitoken_add"
SCOPES = ["datasource.read", "datasource.write", "workflow.read", "workflow.write", "organization.admin"]


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def orgadm(client, org, owner, django_user_model):
    """A staff member with the admin role (not owner) and every token permission, signed in."""
    user = django_user_model.objects.create_user("orgadm", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_apitoken", "add_apitoken",
                                                                       "change_apitoken"]))
    Membership.objects.create(organization=org, user=user, role=Role.ADMIN)
    client.force_login(user)
    return user


def _add(client, org, user=None, name="acting for owner"):
    body = {"name": name, "organization": org.pk, "scopes": SCOPES}
    if user is not None:
        body["user"] = user.pk
    return client.post(reverse(ADD), body)


def test_an_organization_admin_cannot_mint_a_token_acting_for_the_owner(client, org, owner, orgadm):
    form = client.get(reverse(ADD)).context["adminform"].form
    assert list(form.fields["user"].queryset) == [orgadm]  # the owner is not offered
    events = AuditEvent.objects.count()
    response = _add(client, org, owner)
    assert response.status_code == 200
    assert "dsp_" not in response.content.decode()  # no token shown
    assert response.context["adminform"].form.errors["user"]
    assert not ApiToken.objects.filter(name="acting for owner").exists()
    assert AuditEvent.objects.count() == events


def test_the_admin_form_says_why_when_the_user_is_not_in_the_choices(client, org, owner, orgadm, monkeypatch):
    """The form's own check (the service's rule) names what may be created instead, even when the
    choices would allow the user (a superuser demoted since the page was opened, say)."""
    from organizations.admin.tokens import ApiTokenAdmin

    monkeypatch.setattr(ApiTokenAdmin, "formfield_for_foreignkey",
                        lambda self, db_field, request, **kw: super(ApiTokenAdmin, self).formfield_for_foreignkey(
                            db_field, request, **kw))
    response = _add(client, org, owner)
    assert response.status_code == 200
    (message,) = response.context["adminform"].form.errors["user"]
    assert "can be created only by 'owner'" in message and "acts for you, or for no user" in message
    assert not ApiToken.objects.filter(name="acting for owner").exists()


def test_an_organization_admin_mints_tokens_for_themself_or_for_no_user(client, org, orgadm):
    own = _add(client, org, orgadm, name="own")
    assert own.status_code == 200 and "dsp_" in own.content.decode()
    assert ApiToken.objects.get(name="own").user == orgadm
    unbound = _add(client, org, name="unbound")
    assert unbound.status_code == 200 and "dsp_" in unbound.content.decode()
    assert ApiToken.objects.get(name="unbound").user is None


def test_a_superuser_and_the_command_still_mint_for_any_member(client, org, owner, django_user_model, capsys):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    response = _add(client, org, owner, name="by root")
    assert response.status_code == 200 and "dsp_" in response.content.decode()
    assert ApiToken.objects.get(name="by root").user == owner
    call_command("create_token", org.slug, "--scopes", "datasource.read", "--user", owner.username, "--name", "cli")
    assert ApiToken.objects.get(name="cli").user == owner


def test_the_service_refuses_every_caller_but_the_user_a_superuser_and_the_system(org, owner, orgadm,
                                                                                 django_user_model):
    with pytest.raises(PermissionDenied, match="can be created only by 'owner'"):
        create_token(organization=org, name="x", scopes=SCOPES, username=owner.username,
                     actor=Actor.for_member(org, orgadm))
    # a token acting for no user, with organization.admin, is no one: it mints for no one either
    unbound = create_token(organization=org, name="unbound", scopes=SCOPES)[0]
    as_token = Actor(organization=org, token=unbound, scopes=frozenset(SCOPES))
    with pytest.raises(PermissionDenied):
        create_token(organization=org, name="x", scopes=SCOPES, username=orgadm.username, actor=as_token)
    # nor does a token of a superuser act as the platform's operator
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    Membership.objects.create(organization=org, user=root, role=Role.ADMIN)
    roots = create_token(organization=org, name="root's", scopes=SCOPES, username="root")[0]
    as_roots_token = Actor(organization=org, user=root, token=roots, role=Role.ADMIN, scopes=frozenset(SCOPES))
    with pytest.raises(PermissionDenied):
        create_token(organization=org, name="x", scopes=SCOPES, username=owner.username, actor=as_roots_token)
    assert not ApiToken.objects.filter(name="x").exists()
    mine = create_token(organization=org, name="mine", scopes=SCOPES, username=orgadm.username,
                        actor=Actor.for_member(org, orgadm))[0]
    assert mine.user == orgadm
    assert create_token(organization=org, name="by root", scopes=SCOPES, username=owner.username,
                        actor=Actor.for_member(org, root))[0].user == owner
    assert create_token(organization=org, name="system", scopes=SCOPES, username=owner.username)[0].user == owner
