"""Rivergen (seed 001) drop-in: PATCH /api/v1/data-sources/{id} and its credentials update."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from datasources.models import DataSource
from datasources.services.credentials import load_secrets
from tests.datasources.test_empty_password import mariadb_no_password, mysql_body  # noqa: F401
from tests.support.forwarding import served_as
from tests.support.state import stored_state

URL = "/api/v1/data-sources/"
RG = "/compat/rivergen/api/v1/data-sources/"
CURL_BODY = {"name": "Updated PostgreSQL", "connection_pool_size": 10}  # the seed's curl example
REQUEST_BODY = {  # the seed's "Request Body" example
    "name": "Updated PostgreSQL",
    "description": "Updated description",
    "host": "newhost.example.com",
    "port": 5433,
    "connection_pool_size": 10,
    "connection_timeout": 60,
    "tags": ["updated", "production"],
}
DOCUMENTED_DATA_KEYS = {
    "id", "organization_id", "workspace_id", "name", "type", "description", "host", "port", "database_name",
    "schema_name", "connection_pool_size", "connection_timeout", "query_timeout", "max_retries", "status",
    "tags", "updated_at", "updated_by_user_id",
}


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def pg_source(api, pg_source_data, allow_loopback):
    body = {**pg_source_data, "description": "orig", "tags": ["a"]}
    response = api.post(URL, body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def assert_error(response, status: int, code: str, reason: str | None = None) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert body["success"] is False and body["data"] is None and body["message"]
    assert body["error"]["code"] == code
    if reason:
        assert body["error"]["reason"] == reason
    return body


# --- the seed's examples ----------------------------------------------------------------------------


def test_curl_example_verbatim(api, pg_source):
    response = api.patch(f"{RG}{pg_source['id']}", CURL_BODY, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True and body["message"] == "Data source updated successfully"
    data = body["data"]
    assert DOCUMENTED_DATA_KEYS <= data.keys()
    assert (data["name"], data["connection_pool_size"], data["type"]) == ("Updated PostgreSQL", 10, "postgresql")
    assert (data["description"], data["tags"], data["database_name"], data["schema_name"]) == (
        "orig", ["a"], pg_source["connection"]["database"], "public")
    assert data["updated_by_user_id"] is None  # a token acting for no user
    assert response["ETag"]
    core = api.get(f"{URL}{pg_source['id']}/").json()
    assert (core["name"], core["connection_pool_size"], core["connection"]) == (
        "Updated PostgreSQL", 10, pg_source["connection"])


def test_request_body_example_verbatim(api, pg_source, pg_password_server, monkeypatch):
    with served_as(monkeypatch, "newhost.example.com", 5433, pg_password_server):
        response = api.patch(f"{RG}{pg_source['id']}", REQUEST_BODY, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    for key, value in REQUEST_BODY.items():
        assert data[key] == value, key
    assert data["status"] == "active"
    core = api.get(f"{URL}{pg_source['id']}/").json()
    assert core["last_test"]["ok"] and core["schema"]["status"] == "ready"


def test_updated_by_user_id_is_the_tokens_user(org, owner, make_client, pg_source):
    client = make_client(org, username=owner.username)
    response = client.patch(f"{RG}{pg_source['id']}", {"description": "by a user"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["data"]["updated_by_user_id"] == owner.pk


# --- flat fields and their rules --------------------------------------------------------------------


def test_flat_fields_map_onto_the_connection(api, pg_source):
    url = f"{RG}{pg_source['id']}"
    response = api.patch(url, {"use_ssh_tunnel": True, "ssh_port": 2222}, format="json")
    body = assert_error(response, 400, "BAD_REQUEST", "INVALID_REQUEST_BODY")
    assert {"ssh_host", "ssh_username"} <= body["error"]["details"].keys()
    response = api.patch(url, {"schema_name": "nope"}, format="json")
    body = assert_error(response, 400, "BAD_REQUEST", "CREDENTIAL_TEST_FAILED")
    assert body["error"]["stage"] == "database"
    ok = api.patch(url, {"schema_name": "public", "query_timeout": 120, "schema_auto_refresh": True,
                         "metadata": {"team": "bi"}, "ssh_local_port": 6000}, format="json")
    assert ok.status_code == 200, ok.json()
    data = ok.json()["data"]
    assert (data["query_timeout"], data["schema_auto_refresh"], data["metadata"]) == (120, True, {"team": "bi"})
    assert data["ssh_local_port"] == 6000  # stored (advisory) and echoed
    assert api.get(f"{URL}{pg_source['id']}/").json()["connection"]["ssh_tunnel"]["local_port"] == 6000


@pytest.mark.parametrize(
    "body,field",
    [
        ({"connection_pool_size": 0}, "connection_pool_size"),  # the main API's range
        ({"port": "5433"}, "port"),
        ({"name": ""}, "name"),
        ({"file_path": "shop.db"}, "file_path"),  # not a field of a PostgreSQL source
        ({"ssh_local_port": 70000}, "ssh_local_port"),
        ({"credentials": {"password": "x"}}, "credentials"),  # not a Rivergen field
    ],
)
def test_invalid_fields_are_named(api, pg_source, body, field):
    before = stored_state(pg_source["id"])
    response = api.patch(f"{RG}{pg_source['id']}", body, format="json")
    assert field in assert_error(response, 400, "BAD_REQUEST")["error"]["details"]
    assert stored_state(pg_source["id"]) == before


def test_core_rule_egress_policy_applies(api, pg_source, allow_loopback):
    """The main API's egress policy: a cloud metadata address is refused, nothing changes."""
    before = stored_state(pg_source["id"])
    response = api.patch(f"{RG}{pg_source['id']}", {"host": "169.254.169.254"}, format="json")
    body = assert_error(response, 400, "BAD_REQUEST", "CREDENTIAL_TEST_FAILED")
    assert body["error"]["stage"] == "tcp"
    assert stored_state(pg_source["id"]) == before


def test_core_rule_stored_password_never_follows_a_new_host(org, editor, make_client, pg_source,
                                                            pg_password_server):
    """The main API's rule: the stored password never follows a new destination on a writer's word. Through
    Rivergen the move is accepted withholding it (cleared, untested); a connection string carries its own."""
    client = make_client(org, ["datasource.read", "datasource.write"], username=editor.username)
    url = f"{RG}{pg_source['id']}"
    withheld = client.patch(url, {"host": "localhost"}, format="json")
    assert withheld.status_code == 200, withheld.json()
    assert withheld.json()["data"]["status"] == "credentials_required"
    assert load_secrets(DataSource.objects.get(pk=pg_source["id"])) == {}
    c = pg_password_server
    dsn = f"postgresql://{c.user}:{c.password}@localhost:{c.port}/{c.database}?sslmode=disable"
    moved = client.patch(url, {"connection_string": dsn}, format="json")
    assert moved.status_code == 200, moved.json()
    assert moved.json()["data"]["host"] == "localhost" and c.password not in moved.content.decode()
    assert moved.json()["data"]["status"] == "active"


# --- error codes ------------------------------------------------------------------------------------


def test_unauthorized(pg_source):
    response = APIClient().patch(f"{RG}{pg_source['id']}", CURL_BODY, format="json")
    assert_error(response, 401, "UNAUTHORIZED", "AUTHENTICATION_ERROR")
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer dsp_nope")
    assert_error(bad.patch(f"{RG}{pg_source['id']}", CURL_BODY, format="json"), 401, "UNAUTHORIZED")


def test_forbidden_when_not_a_member_of_any_organization(pg_source, django_user_model):
    client = APIClient()
    client.force_login(django_user_model.objects.create_user(username="loner", password="pw-loner"))
    body = assert_error(client.patch(f"{RG}{pg_source['id']}", CURL_BODY, format="json"), 403, "FORBIDDEN")
    assert "not a member of any organization" in body["message"]


def test_forbidden_without_write_scope(org, make_client, pg_source):
    reader = make_client(org, ["datasource.read"])
    assert_error(reader.patch(f"{RG}{pg_source['id']}", CURL_BODY, format="json"), 403, "FORBIDDEN")


def test_if_match(api, pg_source):
    url = f"{RG}{pg_source['id']}"
    etag = api.patch(url, {"description": "one"}, format="json")["ETag"]
    assert_error(api.patch(url, {"description": "two"}, format="json", HTTP_IF_MATCH='"0-0"'),
                 412, "PRECONDITION_FAILED")
    assert api.patch(url, {"description": "two"}, format="json", HTTP_IF_MATCH=etag).status_code == 200


@pytest.mark.parametrize("ref", ["999999", "abc", "other"])
def test_not_found(api, other_api, pg_source, ref):
    if ref == "other":
        api = other_api  # another organization's id answers 404 too
        ref = str(pg_source["id"])
    assert_error(api.patch(f"{RG}{ref}", CURL_BODY, format="json"), 404, "NOT_FOUND")


# --- credentials update -----------------------------------------------------------------------------


def test_credentials_update(api, pg_source, pg_password_server):
    url = f"{RG}{pg_source['id']}/credentials"
    before = stored_state(pg_source["id"])
    wrong = api.patch(url, {"password": "not-the-password"}, format="json")
    assert assert_error(wrong, 400, "BAD_REQUEST", "CREDENTIAL_TEST_FAILED")["error"]["stage"] == "auth"
    assert "not-the-password" not in wrong.content.decode()
    assert stored_state(pg_source["id"]) == before
    secret = pg_password_server.password
    ok = api.patch(url, {"username": pg_password_server.user, "password": secret}, format="json")
    assert ok.status_code == 200, ok.json()
    assert ok.json()["message"] == "Credentials updated successfully"
    assert ok.json()["data"]["credentials_set"] == ["password"]
    assert secret not in ok.content.decode()


@pytest.mark.parametrize("body,field", [({"token": "x"}, "token"), ({"password": " "}, "password"),
                                        ({"password": 5}, "password"), ({"apikey": "x"}, "apikey")])
def test_credentials_fields_are_the_types(api, pg_source, body, field):
    response = api.patch(f"{RG}{pg_source['id']}/credentials", body, format="json")
    assert field in assert_error(response, 400, "BAD_REQUEST")["error"]["details"]


def test_openapi_tag(client, db):
    doc = client.get("/api/schema/?format=json").json()
    op = doc["paths"]["/compat/rivergen/api/v1/data-sources/{data_source_id}"]["patch"]
    assert op["tags"] == ["compat: rivergen"]
    assert op["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RivergenError"}
    assert "/compat/rivergen/api/v1/data-sources/{data_source_id}/credentials" in doc["paths"]


# --- an empty password (issue 16): "" is the empty password, omitted keeps, null clears --------------


def test_credentials_update_sets_an_empty_password_for_a_user_without_one(api, mariadb_no_password,  # noqa: F811
                                                                          allow_loopback):
    login = mariadb_no_password
    created = api.post(f"{URL}?test_connection=false", mysql_body(login, password="wrong-password"), format="json")
    pk = created.json()["id"]
    url = f"{RG}{pk}/credentials"
    before = stored_state(pk)
    for blank in (" ", "\t"):
        refused = api.patch(url, {"password": blank}, format="json")
        assert "password" in assert_error(refused, 400, "BAD_REQUEST")["error"]["details"]
    assert stored_state(pk) == before
    response = api.patch(url, {"password": ""}, format="json")  # tested with a real login first
    assert response.status_code == 200, response.json()
    assert response.json()["data"]["credentials_set"] == ["password"]
    assert response.json()["data"]["status"] == "active"
    assert load_secrets(DataSource.objects.get(pk=pk)) == {"password": ""}
    kept = api.patch(url, {"username": login.user}, format="json")  # no password: kept
    assert kept.status_code == 200 and load_secrets(DataSource.objects.get(pk=pk)) == {"password": ""}
    cleared = api.patch(url, {"password": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["data"]["credentials_set"] == []
    history = api.get(f"{URL}{pk}/history/").json()["results"]
    assert [e["changes"].get("credentials.password") for e in history[:2]] == ["cleared", "changed"]


def test_credentials_update_refuses_an_empty_password_where_one_is_required(api):
    body = {"name": "Warehouse", "type": "redshift", "connection": {"host": "h", "database": "d", "username": "u"},
            "credentials": {"password": "stored-pw"}}
    pk = api.post(f"{URL}?test_connection=false", body, format="json").json()["id"]
    before = stored_state(pk)
    response = api.patch(f"{RG}{pk}/credentials", {"password": ""}, format="json")
    assert assert_error(response, 400, "BAD_REQUEST")["error"]["details"] == {
        "password": ["This field may not be blank."]}
    ssh = api.patch(f"{RG}{pk}/credentials", {"ssh_password": ""}, format="json")
    assert "ssh_password" in assert_error(ssh, 400, "BAD_REQUEST")["error"]["details"]
    assert stored_state(pk) == before


@pytest.mark.django_db
def test_openapi_states_the_empty_password(client):
    from tests.core.test_openapi import assert_valid

    doc = client.get("/api/schema/?format=json").json()
    component = "PatchedRivergenCredentialsUpdateRequest"
    assert_valid(doc, component, {"password": ""})
    for body in ({"password": " "}, {"password": "\n"}, {"ssh_password": ""}, {"token": ""}):
        with pytest.raises(AssertionError):
            assert_valid(doc, component, body)
    help_text = doc["components"]["schemas"][component]["properties"]["password"]["description"]
    assert '""' in help_text and "mysql" in help_text
