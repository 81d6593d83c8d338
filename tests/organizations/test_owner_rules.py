"""The owner role's rules (``organizations.services.check_owner_rules``), in the services and on the
admin's pages: only an owner grants or takes away the owner role, and an organization that has an
owner keeps one. A refusal changes nothing and records nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from organizations.actors import Actor
from organizations.models import AuditEvent, Membership, Role
from organizations.services import remove_membership, set_membership
from tests.support.admin_forms import form_data, organization_page_data

MEMBER_PERMS = ["view_membership", "change_membership", "add_membership", "delete_membership",
                "view_organization", "change_organization"]


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


def _member(django_user_model, org, name: str, role: str, *, staff: bool = False):
    user = django_user_model.objects.create_user(name, password="pw", is_staff=staff)
    if staff:
        user.user_permissions.add(*Permission.objects.filter(codename__in=MEMBER_PERMS))
    Membership.objects.create(organization=org, user=user, role=role)
    return user


def _roles(org) -> dict[str, str]:
    return dict(Membership.objects.filter(organization=org).values_list("user__username", "role"))


# --- the services -------------------------------------------------------------------------------------


def test_an_admin_may_not_grant_or_take_away_the_owner_role(org, owner, django_user_model):
    admin_user = _member(django_user_model, org, "adm", Role.ADMIN)
    actor = Actor.for_member(org, admin_user)
    newcomer = django_user_model.objects.create_user("newcomer")
    before, events = _roles(org), AuditEvent.objects.count()
    for call in (lambda: set_membership(actor=actor, organization=org, user=admin_user, role=Role.OWNER),
                 lambda: set_membership(actor=actor, organization=org, user=newcomer, role=Role.OWNER),
                 lambda: set_membership(actor=actor, organization=org, user=owner, role=Role.VIEWER),
                 lambda: remove_membership(actor=actor, membership=Membership.objects.get(user=owner))):
        with pytest.raises(PermissionDenied, match="Only an owner of 'acme'"):
            call()
    assert (_roles(org), AuditEvent.objects.count()) == (before, events)
    set_membership(actor=actor, organization=org, user=newcomer, role=Role.EDITOR)  # other roles: as before
    assert _roles(org)["newcomer"] == Role.EDITOR


def test_the_last_owner_stays_until_another_member_is_owner(org, owner, editor):
    actor = Actor.for_member(org, owner)
    for call in (lambda: set_membership(actor=actor, organization=org, user=owner, role=Role.ADMIN),
                 lambda: remove_membership(actor=actor, membership=Membership.objects.get(user=owner)),
                 lambda: remove_membership(actor=Actor.system(org), membership=Membership.objects.get(user=owner))):
        with pytest.raises(ValidationError, match="'acme' would have no owner left"):
            call()
    assert _roles(org) == {"owner": Role.OWNER, "editor": Role.EDITOR}
    set_membership(actor=actor, organization=org, user=editor, role=Role.OWNER)
    set_membership(actor=Actor.for_member(org, editor), organization=org, user=owner, role=Role.VIEWER)
    assert _roles(org) == {"owner": Role.VIEWER, "editor": Role.OWNER}
    assert [e.changes["role"] for e in AuditEvent.objects.filter(action="update").order_by("pk")] == [
        {"old": "editor", "new": "owner"}, {"old": "owner", "new": "viewer"}]


# --- the admin ----------------------------------------------------------------------------------------


def test_the_member_page_refuses_on_the_role_field(client, org, owner, django_user_model):
    admin_user = _member(django_user_model, org, "adm", Role.ADMIN, staff=True)
    client.force_login(admin_user)
    mine = Membership.objects.get(user=admin_user)
    url = reverse("admin:organizations_membership_change", args=[mine.pk])
    refused = client.post(url, {**form_data(client.get(url)), "role": Role.OWNER})
    assert refused.status_code == 200
    assert "Only an owner of &#x27;acme&#x27; may grant" in refused.content.decode()
    newcomer = django_user_model.objects.create_user("newcomer")
    added = client.post(reverse("admin:organizations_membership_add"),
                        {"organization": org.pk, "user": newcomer.pk, "role": Role.OWNER})
    assert added.status_code == 200 and "Only an owner" in added.content.decode()
    assert _roles(org) == {"owner": Role.OWNER, "adm": Role.ADMIN}
    assert not AuditEvent.objects.filter(target_type="organizations.membership").exists()


def test_removing_the_last_owner_is_refused_on_the_delete_page_and_by_the_bulk_action(client, org, django_user_model):
    me = _member(django_user_model, org, "me", Role.OWNER, staff=True)
    client.force_login(me)
    mine = Membership.objects.get(user=me)
    url = reverse("admin:organizations_membership_delete", args=[mine.pk])
    page = client.get(url).content.decode()
    assert "Cannot delete" in page and "would have no owner left" in page
    assert client.post(url, {"post": "yes"}).status_code == 200
    bulk = client.post(reverse("admin:organizations_membership_changelist"),
                       {"action": "delete_selected", "_selected_action": [mine.pk], "post": "yes"})
    assert "would have no owner left" in bulk.content.decode()
    assert _roles(org) == {"me": Role.OWNER}


def test_the_organization_page_hands_ownership_over_in_one_save(client, org, owner, editor, django_user_model):
    me = _member(django_user_model, org, "me", Role.OWNER, staff=True)
    client.force_login(me)
    url = reverse("admin:organizations_organization_change", args=[org.pk])
    pks = dict(Membership.objects.filter(organization=org).values_list("user__username", "pk"))
    # every owner away at once: refused, nothing changed
    data = organization_page_data(client.get(url), {pks["owner"]: {"DELETE": "on"}, pks["me"]: {"role": Role.ADMIN}})
    refused = client.post(url, data)
    assert refused.status_code == 200 and "would have no owner left" in refused.content.decode()
    assert _roles(org) == {"owner": Role.OWNER, "editor": Role.EDITOR, "me": Role.OWNER}
    # the editor made owner while both owners step down: granted first, then taken
    data = organization_page_data(client.get(url), {pks["editor"]: {"role": Role.OWNER},
                                                    pks["owner"]: {"DELETE": "on"}, pks["me"]: {"role": Role.ADMIN}})
    assert client.post(url, data).status_code == 302
    assert _roles(org) == {"editor": Role.OWNER, "me": Role.ADMIN}
    # now an admin: the owner role is out of reach on this page too
    data = organization_page_data(client.get(url), {pks["me"]: {"role": Role.OWNER}})
    assert "Only an owner" in client.post(url, data).content.decode()
    assert _roles(org) == {"editor": Role.OWNER, "me": Role.ADMIN}
