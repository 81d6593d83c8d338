"""Every request example of the Rivergen seed (``shared/seeds/001_b0d4bcf5d50a5112.txt``, "Update Data
Source"), replayed over HTTP against the running app (``tests.support.live``) and a real password-auth
PostgreSQL cluster (``pg_password_server``), with the documented response shape asserted.

What the seed shows, and where each is replayed:

- the ``curl`` example (the seed's only code example; it has no JS, Python or PHP one), its body sent
  character for character, with ``https://api.rivergen.com`` -> the live server plus this product's prefix
  ``/compat/rivergen``, ``1`` -> the data source's id and ``<access_token>`` -> a real token;
- the documented "Request Body" example, sent character for character: it moves the source to
  ``newhost.example.com:5433`` (served by the real cluster on a loopback address) without a password.
  An organization owner's move is tested with the stored password and answers the documented
  "Success (200)" response value for value; an editor's move withholds the stored password
  (``credentials_required``) and the related "Update Credentials" endpoint the seed names completes it;
- the headers table (``Authorization: Bearer``, ``Content-Type: application/json``), the path parameter
  (an integer id), every field of the parameters table, each "Error Codes" row (400 BAD_REQUEST, 401
  UNAUTHORIZED, 403 FORBIDDEN, 404 NOT_FOUND) and each "Features" line (partial updates, organization
  scope, ``updated_at``/``updated_by_user_id`` set automatically).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import psycopg
import pytest

from datasources.models import DataSource
from datasources.services.credentials import write_secrets
from organizations.models import ALL_SCOPES, Membership, Role, Workspace
from organizations.services import create_token
from tests.conftest import require_service
from tests.support.forwarding import served_as
from tests.support.live import live_http_server

PREFIX = "/compat/rivergen"
#: the curl example's -d argument, character for character
CURL_BODY = '''{
"name": "Updated PostgreSQL",
"connection_pool_size": 10
}'''
#: the "Request Body" example, character for character
REQUEST_BODY = '''{
"name": "Updated PostgreSQL",
"description": "Updated description",
"host": "newhost.example.com",
"port": 5433,
"connection_pool_size": 10,
"connection_timeout": 60,
"tags": ["updated", "production"]
}'''
#: the "Success (200)" example's data, as documented
DOCUMENTED_DATA = {
    "id": 1, "organization_id": 1, "workspace_id": 1, "name": "Updated PostgreSQL", "type": "postgresql",
    "description": "Updated description", "host": "newhost.example.com", "port": 5433,
    "database_name": "production", "schema_name": "public", "connection_pool_size": 10, "connection_timeout": 60,
    "query_timeout": 300, "max_retries": 3, "status": "active", "tags": ["updated", "production"],
    "updated_at": "2024-12-01T11:00:00Z", "updated_by_user_id": 1,
}
#: fields whose documented values are examples of server-assigned ones (checked by type)
ASSIGNED = {"id", "organization_id", "workspace_id", "updated_at", "updated_by_user_id"}
ERROR_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND"}


@pytest.fixture
def server(transactional_db, settings):
    with live_http_server(settings) as live:
        yield live


@pytest.fixture
def production(pg_password_server):
    """The seed's database name, ``production``, on the real cluster."""
    c = pg_password_server
    with psycopg.connect(host=c.host, port=c.port, dbname=c.database, user=c.user, password=c.password,
                         autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'production'").fetchone():
            conn.execute("CREATE DATABASE production")
    return "production"


@pytest.fixture
def world(server, org, owner, editor, pg_password_server, production, make_client):
    """A PostgreSQL source in a workspace, as the seed's example has it: database ``production``,
    schema ``public``, query timeout 300, max retries 3; its password stored and tested."""
    c = pg_password_server
    workspace = Workspace.objects.create(organization=org, name="Main")
    api = make_client(org)
    body = {"name": "PostgreSQL", "type": "postgresql", "workspace": workspace.pk, "description": "Production",
            "query_timeout": 300, "max_retries": 3, "tags": ["production"],
            "connection": {"host": c.host, "port": c.port, "database": production, "schema": "public",
                           "username": c.user, "ssl": {"mode": "disable"}},
            "credentials": {"password": c.password}}
    response = api.post("/api/v1/data-sources/", body, format="json")
    assert response.status_code == 201, response.json()
    tokens = {role: create_token(organization=org, name=role, scopes=scopes, username=user.username)[1]
              for role, user, scopes in (("owner", owner, list(ALL_SCOPES)), ("editor", editor,
                                                                   "datasource.read,datasource.write"))}
    return {"id": response.json()["id"], "workspace": workspace.pk, "cluster": c, **tokens}


def send(server, method: str, path: str, body: str | None, token: str | None,
         content_type: str | None = "application/json") -> tuple[int, dict[str, str], Any]:
    """One HTTP request as a Rivergen client sends it (the curl example's headers)."""
    request = urllib.request.Request(server.url + PREFIX + path, method=method,
                                     data=None if body is None else body.encode())
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def assert_success(status: int, body: dict, message: str | None = "Data source updated successfully") -> dict:
    """The documented success envelope: ``success``, ``data`` with every documented key, ``message``."""
    assert status == 200, body
    assert set(body) == {"success", "data", "message"} and body["success"] is True, body
    if message is not None:
        assert body["message"] == message
    data = body["data"]
    assert set(DOCUMENTED_DATA) <= set(data), set(DOCUMENTED_DATA) - set(data)
    for key in ("id", "organization_id", "workspace_id", "port", "connection_pool_size", "connection_timeout",
                "query_timeout", "max_retries"):
        assert isinstance(data[key], int), key
    assert isinstance(data["updated_at"], str) and data["updated_at"].endswith("Z")
    assert data["updated_by_user_id"] is None or isinstance(data["updated_by_user_id"], int)
    assert isinstance(data["tags"], list) and all(isinstance(t, str) for t in data["tags"])
    return data


def assert_error(status: int, body: dict, expected: int) -> dict:
    """The adapter's error envelope, its ``error.code`` the seed's code for the status."""
    assert status == expected, body
    assert set(body) == {"success", "data", "message", "error"}, body
    assert (body["success"], body["data"]) == (False, None) and body["message"]
    assert body["error"]["code"] == ERROR_CODES[expected]
    return body["error"]


# --- the curl example -------------------------------------------------------------------------------


def test_curl_example(server, world, owner):
    status, head, body = send(server, "PATCH", f"/api/v1/data-sources/{world['id']}", CURL_BODY, world["owner"])
    data = assert_success(status, body)
    assert (data["name"], data["connection_pool_size"]) == ("Updated PostgreSQL", 10)
    # partial update: nothing else changed
    assert (data["description"], data["tags"], data["database_name"], data["query_timeout"]) == (
        "Production", ["production"], "production", 300)
    assert (data["id"], data["workspace_id"], data["updated_by_user_id"]) == (world["id"], world["workspace"],
                                                                              owner.pk)
    assert data["status"] == "active" and head["ETag"]


# --- the Request Body example ----------------------------------------------------------------------


def test_request_body_example_by_an_owner_matches_the_documented_response(server, world, owner, org, monkeypatch):
    with served_as(monkeypatch, "newhost.example.com", 5433, world["cluster"]):
        status, _, body = send(server, "PATCH", f"/api/v1/data-sources/{world['id']}", REQUEST_BODY, world["owner"])
    data = assert_success(status, body)
    for key, documented in DOCUMENTED_DATA.items():
        if key not in ASSIGNED:
            assert data[key] == documented, key
    assert (data["id"], data["organization_id"], data["workspace_id"], data["updated_by_user_id"]) == (
        world["id"], org.pk, world["workspace"], owner.pk)
    ds = DataSource.objects.get(pk=world["id"])
    assert ds.last_test["ok"] and ds.schema_status == "ready"  # tested at the new host, schema re-cached


def test_request_body_example_by_an_editor_then_update_credentials(server, world, editor, monkeypatch):
    url = f"/api/v1/data-sources/{world['id']}"
    with served_as(monkeypatch, "newhost.example.com", 5433, world["cluster"]):
        status, _, body = send(server, "PATCH", url, REQUEST_BODY, world["editor"])
        data = assert_success(status, body, message=None)
        assert (data["host"], data["port"], data["status"]) == ("newhost.example.com", 5433, "credentials_required")
        assert body["message"].startswith("Data source updated successfully.")
        assert f"PATCH /api/v1/data-sources/{world['id']}/credentials" in body["message"]
        assert data["credentials_set"] == [] and data["updated_by_user_id"] == editor.pk
        # the related endpoint the seed names: Update Credentials, tested at the new host
        password = json.dumps({"password": world["cluster"].password})
        status, _, body = send(server, "PATCH", f"{url}/credentials", password, world["editor"])
    data = assert_success(status, body, message="Credentials updated successfully")
    for key, documented in DOCUMENTED_DATA.items():
        if key not in ASSIGNED:
            assert data[key] == documented, key
    assert world["cluster"].password not in json.dumps(body)


def test_update_credentials_first_then_the_request_body_example(server, world, monkeypatch):
    """The other order. The source's current host is another server (the local PostgreSQL on 5432, where the
    cluster's user does not exist): it refuses the credentials at stage auth, so they wait for the editor's
    move, which is tested with them at newhost.example.com."""
    require_service("127.0.0.1", 5432, "PostgreSQL")
    ds = DataSource.objects.get(pk=world["id"])
    DataSource.objects.filter(pk=ds.pk).update(connection={**ds.connection, "port": 5432})
    write_secrets(ds, {"password": "the-old-servers-password"})
    url, c = f"/api/v1/data-sources/{world['id']}", world["cluster"]
    status, _, body = send(server, "PATCH", f"{url}/credentials", json.dumps({"password": "not-" + c.password}),
                           world["editor"])
    data = assert_success(status, body, message=None)
    assert "did not work at the current destination" in body["message"] and data["port"] == 5432
    with served_as(monkeypatch, "newhost.example.com", 5433, c):  # wrong there too: refused, nothing changes
        status, _, failed = send(server, "PATCH", url, REQUEST_BODY, world["editor"])
    error = assert_error(status, failed, 400)
    assert (error["reason"], error["stage"]) == ("CREDENTIAL_TEST_FAILED", "auth")
    assert DataSource.objects.get(pk=ds.pk).connection["port"] == 5432
    status, _, body = send(server, "PATCH", f"{url}/credentials", json.dumps({"password": c.password}),
                           world["editor"])
    assert_success(status, body, message=None)
    assert "did not work at the current destination" in body["message"]  # the new host's: kept again
    with served_as(monkeypatch, "newhost.example.com", 5433, c):
        status, _, body = send(server, "PATCH", url, REQUEST_BODY, world["editor"])
    data = assert_success(status, body, message=None)
    assert body["message"].startswith("Data source updated successfully with the credentials you sent at")
    for key, documented in DOCUMENTED_DATA.items():
        if key not in ASSIGNED:
            assert data[key] == documented, key


# --- every field of the parameters table -----------------------------------------------------------

FIELDS = [
    ("name", "Renamed"), ("description", "Described"), ("host", "localhost"), ("database_name", "production"),
    ("schema_name", "public"), ("use_ssh_tunnel", False), ("ssh_host", "bastion.example.com"),
    ("ssh_port", 2222), ("ssh_username", "tunnel"), ("ssh_local_port", 40000), ("connection_pool_size", 10),
    ("connection_timeout", 60), ("query_timeout", 120), ("max_retries", 5), ("schema_auto_refresh", True),
    ("schema_refresh_interval", 7200), ("metadata", {"team": "bi"}), ("tags", ["updated", "production"]),
]


@pytest.mark.parametrize(("field", "value"), FIELDS, ids=[f for f, _ in FIELDS])
def test_every_documented_field(server, world, field, value):
    status, _, body = send(server, "PATCH", f"/api/v1/data-sources/{world['id']}", json.dumps({field: value}),
                           world["owner"])
    data = assert_success(status, body)
    assert data[field] == value


def test_port_and_connection_string(server, world):
    c = world["cluster"]
    url = f"/api/v1/data-sources/{world['id']}"
    status, _, body = send(server, "PATCH", url, json.dumps({"port": c.port}), world["owner"])
    assert assert_success(status, body)["port"] == c.port
    dsn = f"postgresql://{c.user}:{c.password}@127.0.0.1:{c.port}/production?sslmode=disable"
    status, _, body = send(server, "PATCH", url, json.dumps({"connection_string": dsn}), world["owner"])
    data = assert_success(status, body)
    assert "connection_string" not in data and c.password not in json.dumps(body)  # write-only


def test_file_path_is_not_a_field_of_a_database_source(server, world):
    status, _, body = send(server, "PATCH", f"/api/v1/data-sources/{world['id']}",
                           json.dumps({"file_path": "exports/orders.csv"}), world["owner"])
    assert "file_path" in assert_error(status, body, 400)["details"]


# --- headers, path parameter, error codes, features ----------------------------------------------------


def test_400_bad_request(server, world):
    status, _, body = send(server, "PATCH", f"/api/v1/data-sources/{world['id']}", '{"port": "5433"}',
                           world["owner"])
    assert "port" in assert_error(status, body, 400)["details"]
    status, _, body = send(server, "PATCH", f"/api/v1/data-sources/{world['id']}", '{"name": ', world["owner"])
    assert_error(status, body, 400)


def test_401_unauthorized(server, world):
    for token in (None, "dsp_not-a-token"):
        status, head, body = send(server, "PATCH", f"/api/v1/data-sources/{world['id']}", CURL_BODY, token)
        assert_error(status, body, 401)
        assert head.get("WWW-Authenticate", "").startswith("Bearer")


def test_403_forbidden_when_not_a_member_of_any_organization(server, world, editor):
    Membership.objects.filter(user=editor).delete()
    status, head, body = send(server, "PATCH", f"/api/v1/data-sources/{world['id']}", CURL_BODY, world["editor"])
    assert_error(status, body, 403)
    assert body["message"] == "You are not a member of any organization." and "WWW-Authenticate" not in head


def test_404_not_found(server, world, other_org, django_user_model):
    for ref in ("999999", "not-an-id"):
        status, _, body = send(server, "PATCH", f"/api/v1/data-sources/{ref}", CURL_BODY, world["owner"])
        assert_error(status, body, 404)
    stranger = django_user_model.objects.create_user(username="stranger", password="pw-stranger")
    Membership.objects.create(organization=other_org, user=stranger, role=Role.OWNER)
    _, theirs = create_token(organization=other_org, name="theirs", scopes=list(ALL_SCOPES), username="stranger")
    status, _, body = send(server, "PATCH", f"/api/v1/data-sources/{world['id']}", CURL_BODY, theirs)
    assert_error(status, body, 404)  # organization-scoped: another organization's source does not exist


def test_content_type_is_required(server, world):
    status, _, body = send(server, "PATCH", f"/api/v1/data-sources/{world['id']}", CURL_BODY, world["owner"],
                           content_type="text/plain")
    assert status == 415 and body["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE", body


def test_updated_at_and_updated_by_user_id_are_set_automatically(server, world, editor):
    before = DataSource.objects.get(pk=world["id"])
    status, _, body = send(server, "PATCH", f"/api/v1/data-sources/{world['id']}", '{"description": "x"}',
                           world["editor"])
    data = assert_success(status, body)
    assert data["updated_by_user_id"] == editor.pk
    assert data["updated_at"] > before.updated_at.isoformat().replace("+00:00", "Z")
