"""The organization page's member and workspace rows are part of what it showed: a page opened before
someone else changed a role, added or removed a member, or changed a workspace is refused ("changed by
someone else": reload), and nothing of it is saved. A stale page used to put back each role it showed,
re-granting one revoked meanwhile, in an audited ``update`` by whoever saved the stale page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from organizations.actors import Actor
from organizations.models import AuditEvent, Membership, Organization, Role, Workspace
from organizations.services import remove_membership, set_membership
from tests.support.admin_forms import organization_page_data

STALE = "was changed by someone else since you opened it"


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def url(org):
    return reverse("admin:organizations_organization_change", args=[org.pk])


def _snapshot(org) -> tuple:
    org = Organization.objects.get(pk=org.pk)
    return (org.name, sorted(Membership.objects.filter(organization=org).values_list("user__username", "role")),
            sorted(Workspace.objects.filter(organization=org).values_list("name", flat=True)))


def _refused(response) -> bool:
    return response.status_code == 200 and STALE in response.content.decode()


def test_a_stale_organization_page_does_not_regrant_a_role_revoked_meanwhile(admin_client, url, org, owner, editor):
    """The auditor's steps: tab B opens the page, tab A demotes the editor on the member's own page, tab B
    saves a new name. Refused; the editor stays a viewer; tab B records nothing."""
    stale = organization_page_data(admin_client.get(url))
    membership = Membership.objects.get(user=editor)
    demoted = admin_client.post(reverse("admin:organizations_membership_change", args=[membership.pk]),
                                {"role": Role.VIEWER})
    assert demoted.status_code == 302
    before, events = _snapshot(org), AuditEvent.objects.count()
    response = admin_client.post(url, {**stale, "name": "Acme Inc"})
    assert _refused(response)
    assert _snapshot(org) == before
    assert Membership.objects.get(pk=membership.pk).role == Role.VIEWER
    assert AuditEvent.objects.count() == events
    fresh = organization_page_data(admin_client.get(url))  # reloaded: the name change applies alone
    assert admin_client.post(url, {**fresh, "name": "Acme Inc"}).status_code == 302
    assert _snapshot(org) == ("Acme Inc", [("editor", "viewer"), ("owner", "owner")], [])


@pytest.mark.parametrize("meanwhile", ["member added", "member removed", "workspace renamed", "workspace added",
                                       "workspace removed"])
def test_a_stale_organization_page_is_refused_after_any_row_changed(admin_client, url, org, owner, editor, viewer,
                                                                     django_user_model, meanwhile):
    workspace = Workspace.objects.create(organization=org, name="Team")
    stale = organization_page_data(admin_client.get(url))
    system = Actor.system(org)
    if meanwhile == "member added":
        set_membership(actor=system, organization=org, user=django_user_model.objects.create_user("newcomer"),
                       role=Role.VIEWER)
    elif meanwhile == "member removed":
        remove_membership(actor=system, membership=Membership.objects.get(user=viewer))
    elif meanwhile == "workspace renamed":
        Workspace.objects.filter(pk=workspace.pk).update(name="Analysts")
    elif meanwhile == "workspace added":
        Workspace.objects.create(organization=org, name="Other")
    else:
        workspace.delete()
    before, events = _snapshot(org), AuditEvent.objects.count()
    assert _refused(admin_client.post(url, {**stale, "name": "Acme Inc"}))
    assert _snapshot(org) == before and AuditEvent.objects.count() == events


def test_an_organization_admins_stale_row_is_refused_as_the_superusers(client, url, org, owner, editor,
                                                                     django_user_model):
    """An admin-role member (the auditor's ``orgadm``) edits the page; the owner revokes a role meanwhile."""
    from django.contrib.auth.models import Permission

    orgadm = django_user_model.objects.create_user("orgadm", is_staff=True)
    orgadm.user_permissions.set(Permission.objects.filter(codename__in=[
        "view_organization", "change_organization", "view_membership", "change_membership", "add_membership",
        "delete_membership", "view_workspace", "change_workspace", "add_workspace", "delete_workspace"]))
    Membership.objects.create(organization=org, user=orgadm, role=Role.ADMIN)
    client.force_login(orgadm)
    stale = organization_page_data(client.get(url))
    set_membership(actor=Actor.for_member(org, owner), organization=org, user=editor, role=Role.VIEWER)
    assert _refused(client.post(url, {**stale, "name": "Acme Inc"}))
    assert Membership.objects.get(user=editor).role == Role.VIEWER
    assert not AuditEvent.objects.filter(actor_repr="user:orgadm").exists()


def test_an_unchanged_page_still_saves_its_own_row_changes(admin_client, url, org, owner, editor):
    page = admin_client.get(url)
    membership = Membership.objects.get(user=editor)
    response = admin_client.post(url, organization_page_data(page, {membership.pk: {"role": Role.VIEWER}}))
    assert response.status_code == 302
    assert Membership.objects.get(pk=membership.pk).role == Role.VIEWER


# --- a role change saved while the stale page is being saved ----------------------------------------


@pytest.mark.parametrize("beside", ["role change", "member removal", "workspace rename", "workspace deletion"])
def test_a_page_saved_beside_another_change_waits_for_it_and_is_refused(transactional_db, org, owner, editor,
                                                                        django_user_model, monkeypatch, beside):
    """PostgreSQL row locks, played as in ``tests/workflows/test_integrity_races``: a member's or a
    workspace's own page is held inside its transaction (after its audit event); the stale organization
    page saved meanwhile must wait for the organization's lock rather than read the rows around it, then
    finds the change and is refused. Without the lock the page's check read the rows before the change,
    and could re-read them after its commit: a revoked role put back, a renamed workspace named back."""
    import threading

    from django.db import connection
    from django.test import Client

    from organizations import audit
    from tests.workflows.test_integrity_races import HELD, _start, _waits_for_a_lock

    if connection.vendor != "postgresql":
        pytest.skip("set DATABASE_URL to a PostgreSQL database to run concurrency tests")
    workspace = Workspace.objects.create(organization=org, name="Team")
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    writer, stale_page = Client(), Client()
    writer.force_login(root)
    stale_page.force_login(root)
    url = reverse("admin:organizations_organization_change", args=[org.pk])
    stale = organization_page_data(stale_page.get(url))
    membership = Membership.objects.get(user=editor)
    change, expected = {
        "role change": (lambda: writer.post(reverse("admin:organizations_membership_change", args=[membership.pk]),
                                            {"role": Role.VIEWER}), [("editor", "viewer"), ("owner", "owner")]),
        "member removal": (lambda: writer.post(reverse("admin:organizations_membership_delete",
                                                       args=[membership.pk]), {"post": "yes"}), [("owner", "owner")]),
        "workspace rename": (lambda: writer.post(reverse("admin:organizations_workspace_change", args=[workspace.pk]),
                                                 {"name": "Analysts"}), ["Analysts"]),
        "workspace deletion": (lambda: writer.post(reverse("admin:organizations_workspace_changelist"), {
            "action": "delete_selected", "_selected_action": [workspace.pk], "post": "yes"}), []),
    }[beside]
    reached, released, real = threading.Event(), threading.Event(), audit.record

    def record(*args, **kwargs):
        event = real(*args, **kwargs)
        if threading.current_thread().name == HELD and not reached.is_set():
            reached.set()
            assert released.wait(30), "never released"
        return event

    monkeypatch.setattr(audit, "record", record)
    held, first = _start(HELD, change)
    assert reached.wait(10), "the change never reached its audit event"
    other, second = _start("second", lambda: stale_page.post(url, {**stale, "name": "Acme Inc"}))
    try:
        assert _waits_for_a_lock(other), "the organization page did not wait for the change's lock"
    finally:
        released.set()
        held.join(20)
        other.join(20)
    assert first[0].status_code == 302
    assert _refused(second[0])
    name, members, workspaces = _snapshot(org)
    assert name == "Acme" and (members if "member" in beside or "role" in beside else workspaces) == expected
