"""A stored secret never follows a new destination on a writer's word alone (CREDENTIALS_REQUIRED)."""

from __future__ import annotations

import pytest

from tests.support.state import stored_state

URL = "/api/v1/data-sources/"


@pytest.fixture
def source(api, pg_source_data, allow_loopback):
    response = api.post(URL, pg_source_data, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def editor_api(org, editor, make_client):
    return make_client(org, ["datasource.read", "datasource.write"], username=editor.username)


@pytest.mark.parametrize("change", [{"host": "localhost"}, {"port": 5999}])
def test_editor_moving_the_destination_must_resend_secrets(editor_api, source, change):
    before = stored_state(source["id"])
    response = editor_api.patch(f"{URL}{source['id']}/?test_connection=false", {"connection": change}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "CREDENTIALS_REQUIRED"
    assert "credentials.password" in response.json()["errors"]
    assert stored_state(source["id"]) == before


def test_editor_moving_the_destination_with_the_secret_resent_is_fine(editor_api, source, pg_password_server):
    body = {"connection": {"host": "localhost"}, "credentials": {"password": pg_password_server.password}}
    response = editor_api.patch(f"{URL}{source['id']}/", body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["connection"]["host"] == "localhost"


def test_editor_changing_ssh_host_must_resend_ssh_and_database_secrets(editor_api, api, sqlite_file, source):
    tunnel = {"enabled": True, "host": "bastion.example.com", "username": "tunnel"}
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
    response = api.patch(f"{URL}{source['id']}/?test_connection=false",
                         {"connection": {"ssh_tunnel": tunnel}, "credentials": {"ssh_private_key": key}},
                         format="json")
    assert response.status_code == 200, response.json()
    moved = editor_api.patch(f"{URL}{source['id']}/?test_connection=false",
                             {"connection": {"ssh_tunnel": {"host": "evil.example.com"}}}, format="json")
    assert moved.status_code == 400
    # The database password would now travel through the new bastion too.
    assert set(moved.json()["errors"]) == {"credentials.ssh_private_key", "credentials.password"}


def test_owner_and_admin_token_may_move_the_destination(api, org, owner, make_client, source):
    """Scopes are the token's ceiling: an owner's token without organization.admin is held to the rule
    like any writer's; with it, it is the owner."""
    narrowed = make_client(org, ["datasource.read", "datasource.write"], username=owner.username)
    response = narrowed.patch(f"{URL}{source['id']}/?test_connection=false", {"connection": {"port": 5999}},
                              format="json")
    assert response.status_code == 400 and response.json()["code"] == "CREDENTIALS_REQUIRED"
    owner_api = make_client(org, ["datasource.read", "datasource.write", "organization.admin"],
                            username=owner.username)
    response = owner_api.patch(f"{URL}{source['id']}/?test_connection=false", {"connection": {"port": 5999}},
                               format="json")
    assert response.status_code == 200
    response = api.patch(f"{URL}{source['id']}/?test_connection=false", {"connection": {"port": 5998}},
                         format="json")
    assert response.status_code == 200, "an organization.admin token without a user is an admin"


def test_write_token_without_admin_scope_must_resend(org, make_client, source):
    writer = make_client(org, ["datasource.read", "datasource.write"])
    response = writer.patch(f"{URL}{source['id']}/?test_connection=false", {"connection": {"port": 5999}},
                            format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "CREDENTIALS_REQUIRED"


@pytest.mark.parametrize("type_key", ["elasticsearch", "opensearch"])
def test_switching_the_search_server_type_is_a_move(api, editor_api, type_key):
    """server_type picks which endpoint is used (cloud_id or server_url, the other stays stored): switching
    back to a stale server_url would send the password there, so a writer must resend it."""
    created = api.post(f"{URL}?test_connection=false", {
        "name": f"{type_key} search", "type": type_key,
        "connection": {"server_type": "self-managed", "server_url": "http://old-search.example.com:9200",
                       "username": "elastic"},
        "credentials": {"password": "first-password"}}, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    cloud = api.patch(f"{URL}{pk}/?test_connection=false", {
        "connection": {"server_type": "open-cloud", "cloud_id": "search.example.com"},
        "credentials": {"password": "cloud-password"}}, format="json")
    assert cloud.status_code == 200, cloud.json()
    assert cloud.json()["connection"]["server_url"] == "http://old-search.example.com:9200"  # still stored
    before = stored_state(pk)
    back = editor_api.patch(f"{URL}{pk}/?dry_run=true", {"connection": {"server_type": "self-managed"}},
                            format="json")
    assert back.status_code == 400 and back.json()["code"] == "CREDENTIALS_REQUIRED", back.json()
    assert "credentials.password" in back.json()["errors"]
    assert "cloud-password" not in back.content.decode()
    assert stored_state(pk) == before
