"""Authentication, organization isolation and the scope/role matrix."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from organizations.models import ApiToken
from tests.support.state import stored_state

URL = "/api/v1/data-sources/"


@pytest.fixture
def source(api, sqlite_file):
    response = api.post(URL, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    assert response.status_code == 201
    return response.json()


ENDPOINTS = [
    ("get", "{id}/", None),
    ("patch", "{id}/", {"description": "pwned"}),
    ("put", "{id}/", {"name": "pwned", "connection": {"path": "shop.db"}}),
    ("delete", "{id}/", None),
    ("get", "{id}/history/", None),
    ("post", "{id}/test/", None),
    ("post", "{id}/sync/", None),
    ("get", "{id}/schema/", None),
]


@pytest.mark.parametrize("method,path,body", ENDPOINTS)
def test_other_organizations_object_is_404_and_unchanged(other_api, source, method, path, body):
    before = stored_state(source["id"])
    response = getattr(other_api, method)(URL + path.format(id=source["id"]), body, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    missing = getattr(other_api, method)(URL + path.format(id=999999), body, format="json")
    assert missing.status_code == 404
    assert missing.json()["message"] == response.json()["message"]
    assert stored_state(source["id"]) == before


def test_list_shows_only_own_organization(api, other_api, source):
    assert [d["id"] for d in api.get(URL).json()["results"]] == [source["id"]]
    assert other_api.get(URL).json()["results"] == []


def test_missing_bad_expired_and_revoked_tokens_are_401(org, source):
    anon = APIClient()
    assert anon.get(URL).status_code == 401
    assert anon.get(URL).json()["code"] == "AUTHENTICATION_ERROR"
    anon.credentials(HTTP_AUTHORIZATION="Bearer dsp_nope")
    assert anon.get(URL).status_code == 401
    from tests.conftest import client_for

    client = client_for(org)
    token = ApiToken.objects.get(token_hash__isnull=False, name="t", organization=org, revoked_at=None,
                                 last_used_at=None)
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save()
    assert client.get(URL).status_code == 401
    token.expires_at = None
    token.revoked_at = timezone.now()
    token.save()
    assert client.get(URL).status_code == 401


def test_token_records_last_use_and_stores_only_a_hash(org, source):
    from tests.conftest import client_for

    client = client_for(org, ["datasource.read"])
    token = ApiToken.objects.order_by("-id").first()
    assert client.raw_token not in str(ApiToken.objects.filter(pk=token.pk).values().first())
    assert client.get(URL).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


WRITE_CALLS = [
    ("patch", "{id}/", {"description": "x"}),
    ("post", "{id}/test/", None),
    ("delete", "{id}/", None),
]


@pytest.mark.parametrize(
    "scopes,can_read,can_write",
    [
        (["datasource.read"], True, False),
        (["datasource.write"], False, True),
        (["datasource.read", "datasource.write"], True, True),
        (["workflow.read", "workflow.write"], False, False),
    ],
)
def test_scope_matrix(org, source, scopes, can_read, can_write):
    from tests.conftest import client_for

    client = client_for(org, scopes)
    assert client.get(URL).status_code == (200 if can_read else 403)
    assert client.get(f"{URL}{source['id']}/").status_code == (200 if can_read else 403)
    assert client.get("/api/v1/data-source-types/").status_code == (200 if can_read else 403)
    for method, path, body in WRITE_CALLS[:2]:
        response = getattr(client, method)(URL + path.format(id=source["id"]), body, format="json")
        assert response.status_code == (200 if can_write else 403), (method, path)
        if not can_write:
            assert response.json()["code"] == "FORBIDDEN"


@pytest.mark.parametrize("role,can_write", [("owner", True), ("admin", True), ("editor", True), ("viewer", False)])
def test_role_limits_user_tokens(org, source, django_user_model, role, can_write):
    from organizations.models import Membership
    from tests.conftest import client_for

    user = django_user_model.objects.create_user(username=f"u-{role}", password="x")
    Membership.objects.create(organization=org, user=user, role=role)
    client = client_for(org, ["datasource.read", "datasource.write"], username=user.username)
    assert client.get(f"{URL}{source['id']}/").status_code == 200
    before = stored_state(source["id"])
    response = client.patch(f"{URL}{source['id']}/", {"description": "by " + role}, format="json")
    assert response.status_code == (200 if can_write else 403)
    if not can_write:
        assert stored_state(source["id"]) == before


def test_user_token_stops_working_when_the_user_is_deactivated_or_leaves(org, source, django_user_model):
    from organizations.models import Membership
    from tests.conftest import client_for

    user = django_user_model.objects.create_user(username="leaver", password="x")
    membership = Membership.objects.create(organization=org, user=user, role="editor")
    client = client_for(org, ["datasource.read"], username=user.username)
    ok = client.get(f"{URL}{source['id']}/")
    assert ok.status_code == 200
    assert ok.json()["name"] == source["name"]
    user.is_active = False
    user.save()
    refused = client.get(f"{URL}{source['id']}/")
    assert refused.status_code == 401 and refused.json()["code"] == "AUTHENTICATION_ERROR"
    user.is_active = True
    user.save()
    membership.delete()
    assert client.get(f"{URL}{source['id']}/").status_code == 401


def test_session_login_reaches_the_browsable_api(client, owner, source):
    client.force_login(owner)
    response = client.get(URL, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"Shop" in response.content


def test_logged_in_user_without_membership_is_403(client, django_user_model, source):
    user = django_user_model.objects.create_user(username="lonely", password="x")
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"


def test_unknown_api_url_is_json_404_with_request_id(api):
    response = api.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert response["X-Request-ID"]


def test_incoming_request_id_is_echoed(api, source):
    response = api.get(f"{URL}{source['id']}/", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
