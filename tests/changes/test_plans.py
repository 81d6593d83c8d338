"""Saved change plans (issue 19, part 2), through the API against real sources: the impact a
reviewer sees, applied exactly as reviewed, refused when stale or expired, tested again at apply
time, and the four-eyes rule."""

from __future__ import annotations

import pytest

from changes.models import ChangePlan
from datasources.models import DataSource
from datasources.services.credentials import load_secrets
from organizations.models import AuditEvent, Membership, Role
from tests.datasources.test_revisions import server_password
from tests.support.workflows import add_node, add_source, create_source, create_workflow, sqlite_db

DS = "/api/v1/data-sources/"
SHOP = "CREATE TABLE orders (id INTEGER, total REAL); CREATE TABLE keep (id INTEGER);"
OTHER = "CREATE TABLE keep (id INTEGER);"  # the new target: no `orders`
NEW_PASSWORD = "n3w-Plan-pass"  # a test server's password


def plans_url(ds: dict) -> str:
    return f"{DS}{ds['id']}/plans/"


def make_plan(client, ds: dict, body: dict) -> dict:
    response = client.post(plans_url(ds), body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def apply(client, ds: dict, plan: dict):
    return client.post(f"{plans_url(ds)}{plan['id']}/apply/")


def state(ds: dict) -> tuple:
    row = DataSource.objects.get(pk=ds["id"])
    return row.version, row.connection, load_secrets(row)


@pytest.fixture
def shop(api):
    source = create_source(api, "Shop", "shop.db", SHOP)
    sqlite_db("other.db", OTHER)
    flow = create_workflow(api, "Flow")
    add_node(api, flow, "totals", [(add_source(api, flow, source_data_source="acme.shop"), "orders")])
    return source


@pytest.mark.django_db
def test_a_plan_reports_the_workflow_a_new_target_breaks_and_changes_nothing(api, shop):
    before = state(shop)
    plan = make_plan(api, shop, {"connection": {"path": "other.db"}})
    assert plan["id"].startswith("pln_") and plan["status"] == "open" and plan["version"] == before[0]
    assert plan["changed"] == ["connection.path"] and plan["touches_connection"] is True
    assert plan["changes"] == {"connection.path": {"old": "shop.db", "new": "other.db"}}
    assert plan["test"]["ok"] is True
    flow = plan["impact"]["workflows"][0]
    assert plan["impact"]["breaking"] is True and flow["name"] == "Flow" and flow["breaks"] is True
    assert {t["name"]: t["status"] for t in flow["tables"]} == {"orders": "missing"}
    assert state(shop) == before
    detail = api.get(f"{plans_url(shop)}{plan['id']}/").json()
    assert detail["impact"] == plan["impact"] and detail["created_by"] == "token:t"
    listed = api.get(plans_url(shop)).json()["results"]
    assert [p["id"] for p in listed] == [plan["id"]] and "impact" not in listed[0]
    applied = apply(api, shop, plan)
    assert applied.status_code == 200, applied.json()
    assert applied.json()["status"] == "applied" and applied.json()["data_source_after"]["connection"]["path"] == \
        "other.db"
    assert applied["ETag"] == f'"{shop["id"]}-{before[0] + 1}"'
    assert api.get(plans_url(shop)).json()["results"] == []  # no longer open
    again = apply(api, shop, plan)
    assert again.status_code == 409 and again.json()["code"] == "CONFLICT"


@pytest.mark.django_db
def test_a_stale_plan_is_a_409_and_changes_nothing(api, shop):
    plan = make_plan(api, shop, {"connection": {"path": "other.db"}, "description": "moved"})
    assert api.patch(f"{DS}{shop['id']}/", {"description": "someone else"}, format="json").status_code == 200
    before = state(shop)
    response = apply(api, shop, plan)
    assert response.status_code == 409 and response.json()["code"] == "CONFLICT", response.json()
    assert "changed since the plan" in response.json()["message"]
    assert state(shop) == before and DataSource.objects.get(pk=shop["id"]).description == "someone else"
    assert ChangePlan.objects.get(public_id=plan["id"]).status == "open"


@pytest.mark.django_db
def test_an_expired_plan_is_a_410(api, shop, settings):
    settings.CHANGE_PLAN_TTL_SECONDS = 0
    plan = make_plan(api, shop, {"connection": {"path": "other.db"}})
    before = state(shop)
    response = apply(api, shop, plan)
    assert response.status_code == 410 and response.json()["code"] == "PLAN_EXPIRED", response.json()
    assert state(shop) == before
    assert api.get(f"{plans_url(shop)}{plan['id']}/").json()["status"] == "expired"
    assert api.get(plans_url(shop)).json()["results"] == []


@pytest.mark.django_db
def test_a_plan_applies_exactly_the_reviewed_password_and_never_shows_it(
        api, admin_client, pg_source_data, pg_password_server, allow_loopback):
    cluster = pg_password_server
    ds = api.post(DS, pg_source_data, format="json").json()
    with server_password(cluster, NEW_PASSWORD):
        plan = make_plan(api, ds, {"credentials": {"password": NEW_PASSWORD}})
        assert plan["changes"] == {"credentials.password": "changed"} and plan["test"]["ok"] is True
        # The impact of a PostgreSQL change is read over the tested session (no second connection).
        assert plan["impact"]["schema_compared"] is True and plan["impact"]["breaking"] is False, plan["impact"]
        row = ChangePlan.objects.get(public_id=plan["id"])
        assert NEW_PASSWORD not in row.ciphertext
        applied = apply(api, ds, plan)
        assert applied.status_code == 200, applied.json()
        assert load_secrets(DataSource.objects.get(pk=ds["id"])) == {"password": NEW_PASSWORD}
        assert api.post(f"{DS}{ds['id']}/test/").status_code == 200  # the stored password works
        pages = [applied.content, api.get(f"{plans_url(ds)}{plan['id']}/").content,
                 admin_client.get(f"/admin/changes/changeplan/{row.pk}/change/").content,
                 admin_client.get("/admin/changes/changeplan/").content]
        for page in pages:
            assert NEW_PASSWORD not in page.decode()
        for event in AuditEvent.objects.filter(target_id=ds["id"]):
            assert NEW_PASSWORD not in str(event.changes) + str(event.detail)
        assert {"plan_create", "update", "plan_apply"} <= set(
            AuditEvent.objects.filter(target_id=ds["id"]).values_list("action", flat=True))


@pytest.mark.django_db
def test_apply_tests_again_and_a_changed_server_password_changes_nothing(
        api, pg_source_data, pg_password_server, allow_loopback):
    cluster = pg_password_server
    ds = api.post(DS, pg_source_data, format="json").json()
    with server_password(cluster, NEW_PASSWORD):
        plan = make_plan(api, ds, {"credentials": {"password": NEW_PASSWORD}})
    # The server is back on its old password: the plan's password no longer logs in.
    before = state(ds)
    response = apply(api, ds, plan)
    assert response.status_code == 400 and response.json()["code"] == "CREDENTIAL_TEST_FAILED", response.json()
    assert response.json()["stage"] == "auth" and NEW_PASSWORD not in response.content.decode()
    assert state(ds) == before and ChangePlan.objects.get(public_id=plan["id"]).status == "open"


def _member_client(make_client, org, django_user_model, username: str, role: str):
    user = django_user_model.objects.create_user(username=username, password="pw-" + username)
    Membership.objects.create(organization=org, user=user, role=role)
    return make_client(org, username=username)


@pytest.mark.django_db
def test_four_eyes_the_author_is_refused_and_another_admin_applies(org, shop, make_client, django_user_model):
    org.changes_need_second_person = True
    org.save()
    alice = _member_client(make_client, org, django_user_model, "alice", Role.ADMIN)
    bob = _member_client(make_client, org, django_user_model, "bob", Role.OWNER)
    eve = _member_client(make_client, org, django_user_model, "eve", Role.EDITOR)
    plan = make_plan(alice, shop, {"connection": {"path": "other.db"}})
    before = state(shop)
    for client in (alice, eve):  # the author (an admin), then an editor who is not the author
        response = apply(client, shop, plan)
        assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN", response.json()
    assert state(shop) == before
    assert apply(bob, shop, plan).status_code == 200
    assert ChangePlan.objects.get(public_id=plan["id"]).applied_by == "token:t (user:bob)"
    # Without the setting the author applies their own plan; an editor who is not the author still may not.
    org.changes_need_second_person = False
    org.save()
    mine = make_plan(eve, shop, {"description": "eve's"})
    theirs = make_plan(alice, shop, {"description": "alice's"})
    assert apply(eve, shop, theirs).status_code == 403
    assert apply(eve, shop, mine).status_code == 200


@pytest.mark.django_db
def test_four_eyes_holds_for_direct_writes_and_needs_a_user_as_second_person(api, org, shop, make_client,
                                                                             django_user_model):
    """With the setting on, a connection change is applied only from a plan or set another owner/admin
    user applies: a PATCH, PUT or restore of one by anyone (an owner's own token included) is 403,
    and a token acting for no user is nobody in particular, so it cannot be the second person."""
    for path in ("other.db", "shop.db"):  # revision 2 points elsewhere
        assert api.patch(f"{DS}{shop['id']}/", {"connection": {"path": path}}, format="json").status_code == 200
    org.changes_need_second_person = True
    org.save()
    bob = _member_client(make_client, org, django_user_model, "bob", Role.OWNER)
    before = state(shop)
    moved = {"connection": {"path": "other.db"}}
    for client, method, url, body in (
            (bob, "patch", f"{DS}{shop['id']}/", moved),
            (api, "patch", f"{DS}{shop['id']}/?test_connection=false", moved),
            (bob, "put", f"{DS}{shop['id']}/", {"name": "Shop", "type": "sqlite", "connection": {"path": "other.db"}}),
            (bob, "post", f"{DS}{shop['id']}/revisions/2/restore/", None)):
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN", response.json()
        assert "second person" in response.json()["message"] and "plan" in response.json()["message"]
    assert state(shop) == before
    # what is not a connection change, and dry runs (how plans are made), pass
    assert bob.patch(f"{DS}{shop['id']}/", {"description": "v3"}, format="json").status_code == 200
    assert bob.patch(f"{DS}{shop['id']}/?dry_run=true", moved, format="json").status_code == 200
    plan = make_plan(bob, shop, moved)
    nobody = make_client(org)  # every scope, organization.admin included, acting for no user
    response = apply(nobody, shop, plan)
    assert response.status_code == 403 and "acting for no user" in response.json()["message"]
    alice = _member_client(make_client, org, django_user_model, "alice", Role.ADMIN)
    assert apply(alice, shop, plan).status_code == 200
    assert DataSource.objects.get(pk=shop["id"]).connection["path"] == "other.db"


@pytest.mark.django_db
def test_a_plan_the_source_moved_past_is_left_out_of_the_list_and_marked_stale(api, shop):
    plan = make_plan(api, shop, {"description": "reviewed"})
    assert [p["id"] for p in api.get(plans_url(shop)).json()["results"]] == [plan["id"]]
    assert plan["stale"] is False
    assert api.patch(f"{DS}{shop['id']}/", {"tags": ["moved-on"]}, format="json").status_code == 200
    assert api.get(plans_url(shop)).json()["results"] == []
    detail = api.get(f"{plans_url(shop)}{plan['id']}/").json()
    assert (detail["status"], detail["stale"]) == ("open", True)
    assert apply(api, shop, plan).status_code == 409


@pytest.mark.django_db
def test_query_parameters_on_plan_and_set_writes_are_refused_not_ignored(api, shop):
    """?dry_run=true on a plan's create or apply was ignored: a client expecting a dry run got a stored plan
    (or an applied one)."""
    response = api.post(f"{plans_url(shop)}?dry_run=true", {"description": "x"}, format="json")
    assert response.status_code == 400 and response.json()["errors"] == {"dry_run": ["Unknown query parameter."]}
    assert not ChangePlan.objects.exists()
    plan = make_plan(api, shop, {"description": "x"})
    response = api.post(f"{plans_url(shop)}{plan['id']}/apply/?dry_run=true")
    assert response.status_code == 400 and ChangePlan.objects.get(public_id=plan["id"]).status == "open"
    response = api.post("/api/v1/change-sets/?test_connection=false",
                        {"items": [{"data_source": shop["id"], "changes": {"description": "y"}}]}, format="json")
    assert response.status_code == 400 and "test_connection" in response.json()["errors"]


@pytest.mark.django_db
def test_plans_need_a_writing_role_and_cancel_by_the_author(org, shop, make_client, django_user_model):
    viewer = _member_client(make_client, org, django_user_model, "vic", Role.VIEWER)
    assert viewer.post(plans_url(shop), {"description": "x"}, format="json").status_code == 403
    assert viewer.get(plans_url(shop)).status_code == 200
    editor = _member_client(make_client, org, django_user_model, "ed", Role.EDITOR)
    plan = make_plan(editor, shop, {"description": "x"})
    assert editor.delete(f"{plans_url(shop)}{plan['id']}/").status_code == 204
    response = apply(editor, shop, plan)
    assert response.status_code == 409 and "cancelled" in response.json()["message"]


@pytest.mark.django_db
def test_bad_bodies_are_400_like_patch_and_store_nothing(api, shop):
    response = api.post(plans_url(shop), {"connection_pool_size": 0}, format="json")
    assert response.status_code == 400 and "connection_pool_size" in response.json()["errors"]
    response = api.post(plans_url(shop), {"connection": {"path": "missing.db"}}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "CREDENTIAL_TEST_FAILED"
    assert not ChangePlan.objects.exists()
    assert api.post(f"{DS}999999/plans/", {"description": "x"}, format="json").status_code == 404


@pytest.mark.django_db
def test_another_organizations_plans_are_404(api, other_api, shop):
    plan = make_plan(api, shop, {"description": "x"})
    url = f"{plans_url(shop)}{plan['id']}/"
    assert other_api.get(plans_url(shop)).status_code == 404
    assert other_api.post(plans_url(shop), {"description": "y"}, format="json").status_code == 404
    assert other_api.get(url).status_code == 404
    assert other_api.post(url + "apply/").status_code == 404
    assert other_api.delete(url).status_code == 404
    mine = create_source(api, "Mine", "mine.db", SHOP)  # a plan under another source's path is no plan
    assert api.get(f"{DS}{mine['id']}/plans/{plan['id']}/").status_code == 404
    assert ChangePlan.objects.get(public_id=plan["id"]).status == "open"


@pytest.mark.django_db
def test_key_rotation_reseals_a_plan_which_still_applies(api, shop, settings):
    import base64
    import os

    from django.core.management import call_command

    plan = make_plan(api, shop, {"connection": {"path": "other.db"}})
    new_key = "k9:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    settings.ENCRYPTION_KEYS = [new_key, *settings.ENCRYPTION_KEYS]
    call_command("rotate_encryption_key")
    assert ChangePlan.objects.get(public_id=plan["id"]).key_id == "k9"
    settings.ENCRYPTION_KEYS = [new_key]  # the old key is gone: the plan's body still opens
    assert apply(api, shop, plan).status_code == 200
