"""Admin security (issue 12, part 2), as an operator reaches it: staff users with specific
permissions and roles, acting through the admin's pages, actions and custom views, and the
management commands.

- Acting admin actions ("Test connection", "Refresh schema", "Revoke selected tokens", the
  repoint view) need the model's *change* permission and the role the API requires (a ``viewer``
  cannot write); otherwise 403 or refusal, and nothing happens: no test, no refresh, no revoke,
  no audit event.
- Non-superusers see and change only their organizations' objects; tokens and memberships need
  the owner or admin role there.
- Token and membership changes are audited (actor, target, changes; never the raw token or hash).
- ``seed_demo`` is idempotent and never re-activates a revoked token.
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.urls import reverse
from rest_framework.test import APIClient

from datasources.models import DataSource, SchemaSnapshot
from datasources.services.datasources import create_data_source
from organizations.actors import Actor
from organizations.models import ALL_SCOPES, ApiToken, AuditEvent, Membership, Organization, Role
from organizations.services import create_token
from tests.support.admin_forms import organization_page_data
from tests.support.workflows import change_schema, shop_flow
from workflows.models import NodeInput, WorkflowDataSource

DS_CHANGELIST = "admin:datasources_datasource_changelist"
TOKEN_CHANGELIST = "admin:organizations_apitoken_changelist"
ACTING = [  # (changelist, action, model)
    (DS_CHANGELIST, "test_connection", "datasource"),
    (DS_CHANGELIST, "refresh_schema_action", "datasource"),
    (TOKEN_CHANGELIST, "revoke_selected", "apitoken"),
]


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def staff(client, django_user_model):
    """``staff(perms, {org: role})``: a logged-in staff user with exactly these model permissions."""
    counter = iter(range(1000))

    def make(perms: list[str], roles: dict | None = None):
        user = django_user_model.objects.create_user(f"staff{next(counter)}", password="pw", is_staff=True)
        for codename in perms:
            user.user_permissions.add(Permission.objects.get(codename=codename))
        for organization, role in (roles or {}).items():
            Membership.objects.create(organization=organization, user=user, role=role)
        client.force_login(user)
        return user

    return make


@pytest.fixture
def root(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return user


@pytest.fixture
def source(org, sqlite_file):
    """A tested SQLite source of ``org`` with its schema cached (version 1)."""
    data = {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}
    return create_data_source(actor=Actor(organization=org, is_system=True), data=data).data_source


@pytest.fixture
def token(org):
    return create_token(organization=org, name="deploy", scopes=["datasource.read"])[0]


def _target(changelist, source, token):
    return source if changelist == DS_CHANGELIST else token


def _state(source, token) -> tuple:
    """Everything an acting action could change, and the audit trail."""
    source = DataSource.objects.get(pk=source.pk)
    token = ApiToken.objects.get(pk=token.pk)
    events = list(AuditEvent.objects.order_by("pk").values_list("pk", flat=True))
    return (source.last_test, source.status, source.schema_checked_at, SchemaSnapshot.objects.count(),
            token.revoked_at, events)


def _offered(client, changelist) -> list[str]:
    response = client.get(reverse(changelist))
    assert response.status_code == 200
    form = response.context["action_form"]  # None when no action is offered at all
    return [name for name, _label in form.fields["action"].choices] if form is not None else []


def _refused(response) -> bool:
    """A forged action the user is not offered, or one on an object they may not change: 403."""
    return response.status_code == 403


# --- acting actions need the change permission and a writing role ----------------------------------


@pytest.mark.parametrize("changelist,action,model", ACTING)
def test_view_only_staff_cannot_run_acting_actions(client, staff, org, source, token, changelist, action, model):
    """The view permission only, although an owner of the organization: not offered, a forged
    POST is refused, and nothing is tested, refreshed, revoked or audited."""
    staff([f"view_{model}"], {org: Role.OWNER})
    assert action not in _offered(client, changelist)
    before = _state(source, token)
    response = client.post(reverse(changelist), {"action": action,
                                                 "_selected_action": [_target(changelist, source, token).pk]})
    assert _refused(response), response.status_code
    assert _state(source, token) == before


@pytest.mark.parametrize("changelist,action,model", ACTING)
def test_change_permission_with_a_viewer_role_is_refused(client, staff, org, source, token, changelist, action,
                                                         model):
    """The change permission, but the organization role that cannot write (viewer): refused, and
    nothing happens. The same user with the role the API requires runs it."""
    user = staff([f"view_{model}", f"change_{model}"], {org: Role.VIEWER})
    before = _state(source, token)
    response = client.post(reverse(changelist), {"action": action,
                                                 "_selected_action": [_target(changelist, source, token).pk]})
    assert _refused(response), response.status_code
    assert _state(source, token) == before
    Membership.objects.filter(user=user).update(role=Role.EDITOR if model == "datasource" else Role.ADMIN)
    response = client.post(reverse(changelist), {"action": action,
                                                 "_selected_action": [_target(changelist, source, token).pk]})
    assert response.status_code == 302 and _state(source, token) != before


@pytest.mark.parametrize("action", ["test_connection", "refresh_schema_action"])
def test_a_writer_elsewhere_is_refused_403_on_a_source_where_they_only_view(client, staff, org, other_org, source,
                                                                          token, action):
    """An editor of another organization sees the action, but not for this organization's source."""
    staff(["view_datasource", "change_datasource"], {org: Role.VIEWER, other_org: Role.EDITOR})
    assert action in _offered(client, DS_CHANGELIST)
    before = _state(source, token)
    response = client.post(reverse(DS_CHANGELIST), {"action": action, "_selected_action": [source.pk]})
    assert response.status_code == 403
    assert _state(source, token) == before


@pytest.fixture
def flow(api):
    shop = shop_flow(api)
    source, wds = shop["source"], shop["wds"]
    version = change_schema(api, source, "shop.db", "ALTER TABLE old_table RENAME TO new_table;")
    url = reverse("admin:workflows_workflowdatasource_repoint", args=[wds["id"]])
    body = {"source_data_source": f"acme.shop:v{version}", "mapped_tables": '{"old_table": "new_table"}',
            "_apply": "1"}
    return {"url": url, "body": body, "wds": wds}


def _repoint_state():
    return (list(WorkflowDataSource.objects.values_list("version", "source_version")),
            sorted(NodeInput.objects.values_list("table_name", flat=True)),
            AuditEvent.objects.filter(action="repoint").count())


def test_repoint_view_needs_the_change_permission_and_a_writing_role(client, staff, org, flow):
    """View permission only (an owner), then the change permission with a viewer role: 403 on the
    page, the preview and the apply, and nothing changes. An editor with the permission applies.
    (The view-only refusal already held before issue 12; the viewer-role one did not.)"""
    user = staff(["view_workflowdatasource"], {org: Role.OWNER})
    before = _repoint_state()
    for perms, role in ((["view_workflowdatasource"], Role.OWNER),
                        (["view_workflowdatasource", "change_workflowdatasource"], Role.VIEWER)):
        user.user_permissions.set(Permission.objects.filter(codename__in=perms))
        Membership.objects.filter(user=user).update(role=role)
        user = type(user).objects.get(pk=user.pk)  # no cached permissions
        client.force_login(user)
        assert client.get(flow["url"]).status_code == 403, (perms, role)
        assert client.post(flow["url"], {**flow["body"], "_preview": "1"}).status_code == 403, (perms, role)
        assert client.post(flow["url"], flow["body"]).status_code == 403, (perms, role)
        assert _repoint_state() == before
    Membership.objects.filter(user=user).update(role=Role.EDITOR)
    assert client.post(flow["url"], flow["body"]).status_code == 302
    assert sorted(NodeInput.objects.values_list("table_name", flat=True)) == ["keep", "new_table"]
    assert AuditEvent.objects.get(action="repoint").actor_repr == f"user:{user.username}"


def test_data_source_change_form_refuses_a_viewer_and_hides_other_organizations(client, staff, org, other_org,
                                                                               source):
    """Change permission with a viewer role: read-only page, a POST is 403; another organization's
    staff (an owner there) does not find the source at all."""
    url = reverse("admin:datasources_datasource_change", args=[source.pk])
    staff(["view_datasource", "change_datasource"], {org: Role.VIEWER})
    page = client.get(url)
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert client.post(url, {"name": "Renamed", "description": "x"}).status_code == 403
    staff(["view_datasource", "change_datasource", "delete_datasource"], {other_org: Role.OWNER})
    assert client.get(url).status_code == 302  # Django's answer for an object outside the queryset
    assert client.post(url, {"name": "Renamed"}).status_code == 302
    assert client.get(reverse(DS_CHANGELIST)).context["cl"].result_count == 0
    client.post(reverse(DS_CHANGELIST), {"action": "delete_selected", "_selected_action": [source.pk], "post": "yes"})
    assert DataSource.objects.get(pk=source.pk).name == "Shop"


# --- tokens and memberships are organization-scoped ------------------------------------------------


def test_token_admin_is_scoped_to_the_organizations_one_administers(client, staff, org, other_org, owner,
                                                                     outsider):
    mine = create_token(organization=org, name="mine", scopes=["datasource.read"])[0]
    theirs = create_token(organization=other_org, name="theirs", scopes=["datasource.read"])[0]
    me = staff(["view_apitoken", "change_apitoken", "add_apitoken"], {org: Role.ADMIN})
    listed = client.get(reverse(TOKEN_CHANGELIST))
    assert [t.name for t in listed.context["cl"].result_list] == ["mine"]
    assert "globex" not in listed.content.decode()  # not even in the organization filter
    assert client.get(reverse("admin:organizations_apitoken_change", args=[mine.pk])).status_code == 200
    assert client.get(reverse("admin:organizations_apitoken_change", args=[theirs.pk])).status_code == 302
    add = reverse("admin:organizations_apitoken_add")
    form = client.get(add).context["adminform"].form
    assert list(form.fields["organization"].queryset) == [org]
    assert list(form.fields["user"].queryset) == [me]  # a token acts for its creator or for no user
    forged = client.post(add, {"name": "forged", "organization": other_org.pk, "scopes": ["organization.admin"]})
    assert "organization" in forged.context["adminform"].form.errors
    assert not ApiToken.objects.filter(name="forged").exists()
    client.post(reverse(TOKEN_CHANGELIST), {"action": "revoke_selected", "_selected_action": [theirs.pk]})
    assert ApiToken.objects.get(pk=theirs.pk).revoked_at is None


def test_tokens_need_the_owner_or_admin_role(client, staff, org, token):
    staff(["view_apitoken", "change_apitoken", "add_apitoken"], {org: Role.EDITOR})
    assert client.get(reverse(TOKEN_CHANGELIST)).context["cl"].result_count == 0
    assert client.get(reverse("admin:organizations_apitoken_add")).status_code == 403
    response = client.post(reverse("admin:organizations_apitoken_add"),
                           {"name": "x", "organization": org.pk, "scopes": ["organization.admin"]})
    assert response.status_code == 403 and not ApiToken.objects.filter(name="x").exists()


def test_membership_admin_is_scoped_and_cannot_grant_elsewhere(client, staff, org, other_org, owner, outsider,
                                                                django_user_model):
    newcomer = django_user_model.objects.create_user("newcomer")
    theirs = Membership.objects.get(user=outsider)
    me = staff(["view_membership", "change_membership", "add_membership", "delete_membership"], {org: Role.ADMIN})
    listed = client.get(reverse("admin:organizations_membership_changelist")).context["cl"].result_list
    assert {m.organization_id for m in listed} == {org.pk}
    assert client.get(reverse("admin:organizations_membership_change", args=[theirs.pk])).status_code == 302
    add = reverse("admin:organizations_membership_add")
    assert list(client.get(add).context["adminform"].form.fields["organization"].queryset) == [org]
    client.post(add, {"organization": other_org.pk, "user": newcomer.pk, "role": "owner"})
    client.post(add, {"organization": other_org.pk, "user": me.pk, "role": "owner"})
    client.post(reverse("admin:organizations_membership_delete", args=[theirs.pk]), {"post": "yes"})
    assert set(Membership.objects.filter(organization=other_org).values_list("user__username", "role")) == {
        ("outsider", "owner")}


def test_editors_see_no_memberships_and_organizations_are_scoped(client, staff, org, other_org, owner):
    staff(["view_membership", "change_membership", "view_organization", "change_organization",
           "add_organization"], {org: Role.EDITOR})
    assert client.get(reverse("admin:organizations_membership_changelist")).context["cl"].result_count == 0
    orgs = client.get(reverse("admin:organizations_organization_changelist")).context["cl"].result_list
    assert [o.slug for o in orgs] == ["acme"]
    assert client.get(reverse("admin:organizations_organization_change", args=[other_org.pk])).status_code == 302
    page = client.get(reverse("admin:organizations_organization_change", args=[org.pk]))
    assert not page.context["has_change_permission"]  # an editor may not change the organization
    assert client.get(reverse("admin:organizations_organization_add")).status_code == 403


def test_audit_events_admin_is_scoped(client, staff, org, other_org, source, token, sqlite_file):
    data = {"name": "Elsewhere", "type": "sqlite", "connection": {"path": sqlite_file}}
    create_data_source(actor=Actor(organization=other_org, is_system=True), data=data)
    create_token(organization=other_org, name="elsewhere", scopes=["datasource.read"])
    staff(["view_auditevent"], {org: Role.VIEWER})
    response = client.get(reverse("admin:organizations_auditevent_changelist"))
    assert {e.organization_id for e in response.context["cl"].result_list} == {org.pk}
    html = response.content.decode()
    assert "Elsewhere" not in html and "elsewhere" not in html and "globex" not in html
    theirs = AuditEvent.objects.filter(organization=other_org).first()
    assert client.get(reverse("admin:organizations_auditevent_change", args=[theirs.pk])).status_code == 302


# --- audit events for tokens and memberships -------------------------------------------------------


def _events(target) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(target_type=target._meta.label_lower, target_id=target.pk)
                .order_by("pk"))


def test_token_create_scope_change_and_revoke_are_audited_without_the_token(client, root, org, owner):
    add = reverse("admin:organizations_apitoken_add")
    response = client.post(add, {"name": "deploy", "organization": org.pk, "user": owner.pk,
                                 "scopes": ["datasource.read"]})
    raw = re.search(r"dsp_[A-Za-z0-9_\-]+", response.content.decode()).group(0)
    token = ApiToken.objects.get(name="deploy")
    change = reverse("admin:organizations_apitoken_change", args=[token.pk])
    client.post(change, {"name": "deploy-2", "scopes": ["datasource.read", "datasource.write"],
                         "expires_at_0": "2099-01-01", "expires_at_1": "00:00:00"})
    client.post(reverse(TOKEN_CHANGELIST), {"action": "revoke_selected", "_selected_action": [token.pk]})
    created, updated, revoked = _events(token)
    assert (created.action, updated.action, revoked.action) == ("create", "update", "revoke")
    assert {e.actor_repr for e in (created, updated, revoked)} == {"user:root"}
    assert created.changes["name"] == {"old": None, "new": "deploy"}
    assert created.changes["scopes"] == {"old": None, "new": ["datasource.read"]}
    assert created.changes["user"] == {"old": None, "new": "owner"}
    assert updated.changes["scopes"] == {"old": ["datasource.read"], "new": ["datasource.read", "datasource.write"]}
    assert updated.changes["name"] == {"old": "deploy", "new": "deploy-2"}
    assert updated.changes["expires_at"]["old"] is None and updated.changes["expires_at"]["new"].startswith("2099")
    assert revoked.changes["revoked_at"]["old"] is None and revoked.changes["revoked_at"]["new"]
    token.refresh_from_db()
    for event in AuditEvent.objects.all():
        stored = json.dumps([event.changes, event.detail, event.target_repr, event.actor_repr])
        assert raw not in stored and token.token_hash not in stored
    # visible in the audit views, linked to the token
    listed = client.get(reverse("admin:organizations_auditevent_changelist"),
                        {"target_type": "organizations.apitoken", "target_id": token.pk})
    assert listed.context["cl"].result_count == 3
    assert f'href="{change}"' in listed.content.decode()
    assert client.get(reverse("admin:organizations_apitoken_history", args=[token.pk])).status_code == 302


def test_a_revoked_token_stays_revoked_and_tokens_are_not_deleted(client, root, token):
    client.post(reverse(TOKEN_CHANGELIST), {"action": "revoke_selected", "_selected_action": [token.pk]})
    change = reverse("admin:organizations_apitoken_change", args=[token.pk])
    client.post(change, {"name": "deploy", "scopes": ["datasource.read"], "revoked_at_0": "", "revoked_at_1": ""})
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    assert client.post(reverse("admin:organizations_apitoken_delete", args=[token.pk]),
                       {"post": "yes"}).status_code == 403
    assert ApiToken.objects.filter(pk=token.pk).exists()
    assert [e.action for e in _events(token)] == ["create", "revoke"]


def test_membership_create_role_change_and_delete_are_audited(client, staff, org, owner, django_user_model):
    newcomer = django_user_model.objects.create_user("newcomer")
    staff(["view_membership", "change_membership", "add_membership", "delete_membership"], {org: Role.OWNER})
    client.post(reverse("admin:organizations_membership_add"),
                {"organization": org.pk, "user": newcomer.pk, "role": "viewer"})
    membership = Membership.objects.get(user=newcomer)
    client.post(reverse("admin:organizations_membership_change", args=[membership.pk]), {"role": "editor"})
    assert Membership.objects.get(pk=membership.pk).role == "editor"
    client.post(reverse("admin:organizations_membership_delete", args=[membership.pk]), {"post": "yes"})
    assert not Membership.objects.filter(user=newcomer).exists()
    created, changed, deleted = _events(membership)
    assert [e.action for e in (created, changed, deleted)] == ["create", "update", "delete"]
    assert {e.actor_repr for e in (created, changed, deleted)} == {"user:staff0"}
    assert created.changes == {"user": {"old": None, "new": "newcomer"}, "role": {"old": None, "new": "viewer"}}
    assert changed.changes == {"role": {"old": "viewer", "new": "editor"}}
    assert deleted.changes == {"user": {"old": "newcomer", "new": None}, "role": {"old": "editor", "new": None}}
    assert all(e.organization_id == org.pk for e in (created, changed, deleted))


def test_membership_role_change_on_the_organization_page_is_audited(client, root, org, owner, viewer):
    membership = Membership.objects.get(user=viewer)
    page = client.get(reverse("admin:organizations_organization_change", args=[org.pk]))
    data = organization_page_data(page, {membership.pk: {"role": "editor"}})
    assert client.post(reverse("admin:organizations_organization_change", args=[org.pk]), data).status_code == 302
    assert Membership.objects.get(pk=membership.pk).role == "editor"
    (event,) = _events(membership)
    assert (event.action, event.actor_repr, event.changes) == ("update", "user:root",
                                                               {"role": {"old": "viewer", "new": "editor"}})


# --- management commands -------------------------------------------------------------------------


def _run(capsys, *args) -> list[str]:
    call_command(*args)
    return capsys.readouterr().out.strip().splitlines()


def test_create_token_command_is_audited_as_the_system(db, capsys, org):
    raw = _run(capsys, "create_token", org.slug, "--scopes", "datasource.read,workflow.read", "--name", "ci")[-1]
    token = ApiToken.objects.get(name="ci")
    (event,) = _events(token)
    assert (event.action, event.actor_repr) == ("create", "system:create_token")
    assert event.changes["scopes"] == {"old": None, "new": ["datasource.read", "workflow.read"]}
    stored = json.dumps([event.changes, event.detail, event.target_repr])
    assert raw not in stored and token.token_hash not in stored


def test_seed_demo_is_idempotent_and_never_reactivates_a_revoked_token(db, capsys, client):
    first = _run(capsys, "seed_demo")
    raw = first[-1].removeprefix("DEMO_TOKEN=")
    token = ApiToken.objects.get(organization__slug="demo")
    client.force_login(token.organization.memberships.get().user)  # the demo superuser
    client.post(reverse(TOKEN_CHANGELIST), {"action": "revoke_selected", "_selected_action": [token.pk]})
    revoked_at = ApiToken.objects.get(pk=token.pk).revoked_at
    assert revoked_at is not None
    events = AuditEvent.objects.count()
    second = _run(capsys, "seed_demo")
    third = _run(capsys, "seed_demo")
    assert second == third
    assert second[-1] == first[-1]  # the documented last line stays
    assert "Kept organization demo." in second
    assert any(line.startswith("Kept token 'demo token' (revoked at") and "left revoked" in line for line in second)
    assert "does not authenticate" in second[-2]
    assert ApiToken.objects.get(pk=token.pk).revoked_at == revoked_at
    assert ApiToken.objects.count() == 1 and Organization.objects.filter(slug="demo").count() == 1
    assert DataSource.objects.filter(organization__slug="demo").count() == 1
    assert AuditEvent.objects.count() == events  # nothing re-created, nothing re-granted
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/data-sources/").status_code == 401


def test_seed_demo_keeps_an_operators_scope_and_role_changes(db, capsys):
    first = _run(capsys, "seed_demo")
    token = ApiToken.objects.get(organization__slug="demo")
    ApiToken.objects.filter(pk=token.pk).update(scopes=["datasource.read"])
    Membership.objects.filter(organization__slug="demo").update(role=Role.ADMIN)
    second = _run(capsys, "seed_demo")
    assert second[-1] == first[-1]
    assert ApiToken.objects.get(pk=token.pk).scopes == ["datasource.read"]
    assert Membership.objects.get(organization__slug="demo").role == Role.ADMIN
    assert "Kept token 'demo token' (active, scopes datasource.read)." in second
    assert ALL_SCOPES != ["datasource.read"]


def _organization_of(obj) -> int:
    if isinstance(obj, Organization):
        return obj.pk
    for path in ("data_source", "workflow"):
        if hasattr(obj, f"{path}_id"):
            return getattr(obj, path).organization_id
    return obj.organization_id


def test_every_admin_page_loads_for_an_organization_admin_and_shows_only_their_organization(
        client, staff, org, other_org, source, token, owner, outsider, sqlite_file):
    from django.contrib import admin

    data = {"name": "Elsewhere", "type": "sqlite", "connection": {"path": sqlite_file}}
    create_data_source(actor=Actor(organization=other_org, is_system=True), data=data)
    create_token(organization=other_org, name="elsewhere", scopes=["datasource.read"])
    codenames = [p.codename for p in Permission.objects.filter(content_type__app_label__in=[
        "organizations", "datasources", "workflows"])]
    staff(codenames, {org: Role.ADMIN})
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        if info[0] not in ("organizations", "datasources", "workflows"):
            continue
        response = client.get(reverse("admin:{}_{}_changelist".format(*info)))
        assert response.status_code == 200, model
        request = response.wsgi_request
        for obj in response.context["cl"].result_list:
            assert _organization_of(obj) == org.pk, (model, obj)
            assert client.get(reverse("admin:{}_{}_change".format(*info), args=[obj.pk])).status_code == 200
        if model_admin.has_add_permission(request):
            assert client.get(reverse("admin:{}_{}_add".format(*info))).status_code == 200, model


def test_an_organization_slug_that_differs_only_in_case_is_a_form_error(client, root, org):
    """Workflow references and file folders name an organization by its slug, in any case: the admin's form
    (the model's constraint, which the database enforces too) refuses a second spelling."""
    response = client.post(reverse("admin:organizations_organization_add"),
                           {"slug": org.slug.upper(), "name": "Shadow", "health_failure_threshold": 3,
                            "revisions_keep": 50, "revisions_keep_days": 90})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert not Organization.objects.filter(slug=org.slug.upper()).exists()
    with pytest.raises(IntegrityError), transaction.atomic():
        Organization.objects.create(slug=org.slug.upper(), name="Shadow")
