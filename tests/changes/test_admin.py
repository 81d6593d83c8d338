"""Change plans in the admin: read-only, the impact report readable, applied through the same
service (the same permission rules), scoped to the operator's organizations."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from changes.models import ChangePlan
from datasources.models import DataSource
from organizations.models import Membership, Role
from tests.support.workflows import add_node, add_source, create_source, create_workflow, sqlite_db

LIST = "/admin/changes/changeplan/"


@pytest.fixture
def plan(api):
    source = create_source(api, "Shop", "shop.db", "CREATE TABLE orders (id INTEGER);")
    sqlite_db("other.db", "CREATE TABLE keep (id INTEGER);")
    flow = create_workflow(api, "Flow <b>x</b>")
    add_node(api, flow, "totals", [(add_source(api, flow, source_data_source="acme.shop"), "orders")])
    response = api.post(f"/api/v1/data-sources/{source['id']}/plans/", {"connection": {"path": "other.db"}},
                        format="json")
    assert response.status_code == 201, response.json()
    return ChangePlan.objects.get(public_id=response.json()["id"])


def staff(django_user_model, org, username: str, role: str):
    user = django_user_model.objects.create_user(username=username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_changeplan", "change_changeplan"]))
    Membership.objects.create(organization=org, user=user, role=role)
    return user


@pytest.mark.django_db
def test_the_admin_shows_a_plan_with_its_impact_and_applies_it(admin_client, plan):
    listed = admin_client.get(LIST).content.decode()
    assert plan.public_id in listed
    page = admin_client.get(f"{LIST}{plan.pk}/change/").content.decode()
    assert "BREAKING" in page and "orders: missing" in page
    assert "Flow &lt;b&gt;x&lt;/b&gt;" in page and "Flow <b>x</b>" not in page  # names escaped
    assert "connection.path" in page and "name=\"_save\"" not in page  # read-only
    response = admin_client.post(LIST, {"action": "apply_selected", "_selected_action": [plan.pk]}, follow=True)
    assert f"Plan {plan.public_id} applied." in response.content.decode()
    plan.refresh_from_db()
    assert plan.status == "applied" and plan.applied_by.startswith("user:")
    assert DataSource.objects.get(pk=plan.data_source_id).connection["path"] == "other.db"


@pytest.mark.django_db
def test_the_admin_applies_with_the_api_rules_and_only_in_the_operators_organizations(
        client, org, other_org, plan, django_user_model):
    editor = staff(django_user_model, org, "ed", Role.EDITOR)  # may write, but is not the author nor an admin
    client.force_login(editor)
    response = client.post(LIST, {"action": "apply_selected", "_selected_action": [plan.pk]}, follow=True)
    assert "Only the author or an owner/admin" in response.content.decode()
    plan.refresh_from_db()
    assert plan.status == "open" and DataSource.objects.get(pk=plan.data_source_id).connection["path"] == "shop.db"
    stranger = staff(django_user_model, other_org, "gus", Role.OWNER)
    client.force_login(stranger)
    assert plan.public_id not in client.get(LIST).content.decode()
    assert client.get(f"{LIST}{plan.pk}/change/").status_code == 302  # a missing object: back to the index
    client.post(LIST, {"action": "apply_selected", "_selected_action": [plan.pk]})
    plan.refresh_from_db()
    assert plan.status == "open"
