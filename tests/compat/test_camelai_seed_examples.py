"""Every request of the camelAI seed (``shared/seeds/003_2fabb51db21a32d2.txt``), replayed over HTTP
against the running app (``tests.support.live``), each as its own test, with the documented response
shape asserted.

The seed is one OpenAPI operation and no code sample (no curl, JavaScript, Python or PHP example):
``PATCH /api/v1/sources/{id}/`` (``sources_partial_update``) with an optional JSON body
``PatchedSourcePartialUpdateRequest`` (``account_name``, optional, at least one character) and bearer
``ApiKeyAuth``, answering 200 ``Connection`` (``id`` integer, ``account_name``, ``type`` one of 15
values, ``created_at`` date-time, ``is_fully_configured`` boolean; all required) or 404
``NotFoundResponsePartialUpdate`` (``detail``). Its request, with the placeholders filled in (``{id}``
a real source, the API key a real token; the server ``https://api.camelai.com`` becomes this app's
``/compat/camelai`` on loopback), is replayed:

1. over plain HTTP as the operation describes it: a rename of a PostgreSQL source (the password
   cluster) and of a MySQL source (a user with a password and a database created on the MariaDB server
   for this module, dropped afterwards), each created with a real connection test; the partial update
   with an empty object and with no body at all (the request body is optional); an id that names
   nothing, and one of another organization (404);
2. through a client generated from the seed's own OpenAPI document (openapi-python-client; the text is
   kept below and checked against the seed): its typed models parse every answer;
3. for every value of ``Connection.type``: a source of each catalogue type that camelAI names (saved
   untested: a rename does not connect to anything), renamed through the adapter.

Not replayed: "Fetch the complete documentation index at https://camelai.com/docs/llms.txt" (the
documentation site's own index, not a request of the API).
"""

from __future__ import annotations

import datetime
import http.client
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import yaml

from datasources.compat.camelai import TYPES
from tests.conftest import require_service
from tests.datasources.test_catalogue import MINIMAL
from tests.support.live import LiveHTTPServer, live_http_server
from tests.support.state import stored_state

SEED = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "003_2fabb51db21a32d2.txt"
PREFIX = "/compat/camelai"
URL = "/api/v1/data-sources/"
PACKAGE = "camelai_seed_client"

#: The seed's OpenAPI document, verbatim (the ````yaml block of the seed).
SEED_OPENAPI = r'''openapi: 3.0.3
info:
  title: camelAI API
  version: 1.0.0 (v1)
  description: API for camelAI - AI-powered data analytics platform
servers:
  - url: https://api.camelai.com
    description: camelAI API server
security: []
paths:
  /api/v1/sources/{id}/:
    patch:
      tags:
        - sources
      summary: Partial update data source
      description: Partially update a data source connection.
      operationId: sources_partial_update
      parameters:
        - in: path
          name: id
          schema:
            type: string
          required: true
      requestBody:
        content:
          application/json:
            schema:
              $ref: '#/components/schemas/PatchedSourcePartialUpdateRequest'
      responses:
        '200':
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Connection'
          description: ''
        '404':
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/NotFoundResponsePartialUpdate'
          description: ''
      security:
        - ApiKeyAuth: []
components:
  schemas:
    PatchedSourcePartialUpdateRequest:
      type: object
      properties:
        account_name:
          type: string
          minLength: 1
          description: New display name for the connection
    Connection:
      type: object
      description: Serializer for Connection model.
      properties:
        id:
          type: integer
          readOnly: true
        account_name:
          type: string
          maxLength: 255
        type:
          enum:
            - SUPABASE
            - POSTGRES
            - MYSQL
            - BIGQUERY
            - DATABRICKS
            - FILE
            - MOTHERDUCK
            - CLICKHOUSE
            - MONGODB
            - MIXPANEL
            - SINGLESTORE
            - GOOGLE_SHEETS
            - MSSQL
            - SNOWFLAKE
            - MCP
          type: string
          description: |-
            * `SUPABASE` - Supabase
            * `POSTGRES` - Postgres
            * `MYSQL` - MySQL
            * `BIGQUERY` - BigQuery
            * `DATABRICKS` - Databricks
            * `FILE` - File Upload
            * `MOTHERDUCK` - MotherDuck
            * `CLICKHOUSE` - ClickHouse
            * `MONGODB` - MongoDB
            * `MIXPANEL` - Mixpanel
            * `SINGLESTORE` - SingleStore
            * `GOOGLE_SHEETS` - Google Sheets
            * `MSSQL` - SQL Server
            * `SNOWFLAKE` - Snowflake
            * `MCP` - MCP
          x-spec-enum-id: 6a5026fde128fdd3
        created_at:
          type: string
          format: date-time
          readOnly: true
        is_fully_configured:
          type: boolean
          readOnly: true
      required:
        - account_name
        - created_at
        - id
        - is_fully_configured
        - type
    NotFoundResponsePartialUpdate:
      type: object
      properties:
        detail:
          type: string
          description: Not found error message
      required:
        - detail
  securitySchemes:
    ApiKeyAuth:
      type: http
      scheme: bearer
      description: API key authentication using Bearer scheme
'''
DOCUMENT: dict[str, Any] = yaml.safe_load(SEED_OPENAPI)
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
OPERATION: dict[str, Any] = DOCUMENT["paths"]["/api/v1/sources/{id}/"]["patch"]
#: Connection: every property is required
CONNECTION_KEYS = set(SCHEMAS["Connection"]["required"])
SEED_TYPES = tuple(SCHEMAS["Connection"]["properties"]["type"]["enum"])
PG_MYSQL = ("postgresql", "mysql")


# --- the server, the request ------------------------------------------------------------------------


@pytest.fixture
def server(transactional_db, settings) -> Iterator[LiveHTTPServer]:
    with live_http_server(settings) as live:
        yield live


def patch(server: LiveHTTPServer, ref: Any, token: str | None, body: bytes | None) -> tuple[int, Any]:
    """The operation as the seed describes it: PATCH with a JSON body (or none: it is optional) and a
    bearer API key."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request("PATCH", f"{PREFIX}/api/v1/sources/{ref}/", body, headers)
        response = conn.getresponse()
        assert response.headers.get_content_type() == "application/json"
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def rename(name: str) -> bytes:
    return json.dumps({"account_name": name}).encode()


def assert_connection(data: Any, source: dict, name: str, camel_type: str) -> None:
    """The seed's ``Connection``: its five required properties, each of its documented type."""
    assert set(data) == CONNECTION_KEYS, data
    assert type(data["id"]) is int and data["id"] == source["id"]
    assert data["account_name"] == name
    assert data["type"] == camel_type and data["type"] in SEED_TYPES
    created = datetime.datetime.fromisoformat(data["created_at"])
    assert created.tzinfo is not None and data["created_at"] == source["created_at"]
    assert data["is_fully_configured"] is True


def assert_not_found(status: int, data: Any) -> None:
    """``NotFoundResponsePartialUpdate``: ``detail``, a string, required."""
    assert status == 404, data
    assert set(data) == set(SCHEMAS["NotFoundResponsePartialUpdate"]["required"]) == {"detail"}, data
    assert isinstance(data["detail"], str) and data["detail"]


# --- real sources: PostgreSQL (password cluster), MySQL (MariaDB) -----------------------------------


@pytest.fixture(scope="module")
def mariadb_account() -> Iterator[dict[str, Any]]:
    """A database with a table and a user with a password on the MariaDB server (dropped afterwards)."""
    require_service("127.0.0.1", 3306, "MariaDB")
    name, password = f"camel_{uuid.uuid4().hex[:8]}", f"Camel-pw-{uuid.uuid4().hex[:8]}"
    hosts = ("%", "127.0.0.1", "localhost")
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True, connect_timeout=3)
    with admin, admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        try:
            for host in hosts:
                cur.execute(f"CREATE USER '{name}'@'{host.replace('%', '%%')}' IDENTIFIED BY %s", (password,))
                cur.execute(f"GRANT ALL ON `{name}`.* TO '{name}'@'{host}'")
            cur.execute(f"CREATE TABLE `{name}`.orders (id INT PRIMARY KEY, amount DECIMAL(10, 2))")
            yield {"host": "127.0.0.1", "port": 3306, "username": name, "database": name, "password": password}
        finally:
            for host in hosts:
                cur.execute(f"DROP USER IF EXISTS '{name}'@'{host}'")
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def real_source(request, server, api, pg_password_server, mariadb_account) -> dict:
    """The source of the parametrized type, created through the native API with a real connection test."""
    if request.param == "postgresql":
        c = pg_password_server
        connection = {"host": c.host, "port": c.port, "database": c.database, "username": c.user}
        password = c.password
    else:
        account = dict(mariadb_account)
        password = account.pop("password")
        connection = account
    body = {"name": f"Warehouse {request.param}", "type": request.param,
            "connection": {**connection, "ssl": {"mode": "disable"}}, "credentials": {"password": password}}
    response = api.post(URL, body, format="json")
    assert response.status_code == 201 and response.json()["last_test"]["ok"], response.json()
    return response.json()


# --- the text replayed is the seed's -------------------------------------------------------------------


def test_the_replayed_text_is_the_seeds():
    if not SEED.is_file():
        pytest.skip(f"the seed document is not at {SEED}")
    blocks = re.findall(r"````yaml ([^\n]*)\n(.*?)\n````", SEED.read_text(), re.S)
    assert blocks == [("https://api.camelai.com/api/schema/ patch /api/v1/sources/{id}/", SEED_OPENAPI)]
    assert OPERATION["operationId"] == "sources_partial_update" and set(OPERATION["responses"]) == {"200", "404"}
    assert "required" not in OPERATION["requestBody"] and OPERATION["security"] == [{"ApiKeyAuth": []}]


# --- 1. the operation over HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize("real_source", PG_MYSQL, indirect=True)
def test_rename(server, api, real_source):
    status, data = patch(server, real_source["id"], api.raw_token, rename("Sales DB"))
    assert status == 200, data
    assert_connection(data, real_source, "Sales DB", TYPES[real_source["type"]])
    core = api.get(f"{URL}{real_source['id']}/").json()
    assert core["name"] == "Sales DB" and core["connection"] == real_source["connection"]
    assert core["version"] == real_source["version"] + 1 and core["last_test"] == real_source["last_test"]


@pytest.mark.parametrize("real_source", PG_MYSQL, indirect=True)
@pytest.mark.parametrize("body", [b"{}", None], ids=["empty-object", "no-body"])
def test_partial_update_without_account_name_changes_nothing(server, api, real_source, body):
    """``PatchedSourcePartialUpdateRequest`` has no required property, and the body itself is optional."""
    before = stored_state(real_source["id"])
    status, data = patch(server, real_source["id"], api.raw_token, body)
    assert status == 200, data
    assert_connection(data, real_source, real_source["name"], TYPES[real_source["type"]])
    assert stored_state(real_source["id"]) == before


@pytest.mark.parametrize("real_source", ["postgresql"], indirect=True)
def test_not_found(server, api, other_api, real_source):
    for token, ref in ((api.raw_token, "999999"), (api.raw_token, "not-an-id"), (api.raw_token, "%7Bid%7D"),
                       (other_api.raw_token, real_source["id"])):  # another organization's source
        assert_not_found(*patch(server, ref, token, rename("x")))
    assert api.get(f"{URL}{real_source['id']}/").json()["name"] == real_source["name"]


@pytest.mark.parametrize("real_source", ["postgresql"], indirect=True)
def test_account_name_has_at_least_one_character(server, api, real_source):
    """``minLength: 1``: the empty name is refused (DRF's shape: ``detail`` and the field's messages)."""
    status, data = patch(server, real_source["id"], api.raw_token, rename(""))
    assert status == 400 and data["detail"] and data["account_name"], data


@pytest.mark.parametrize("real_source", ["postgresql"], indirect=True)
def test_the_api_key_is_a_bearer_token(server, api, make_client, org, real_source):
    """``ApiKeyAuth`` (http bearer). The seed documents no answer without a valid key: it is DRF's 401
    ``{"detail": ...}``; a key without ``datasource.write`` is 403 ``{"detail": ...}``."""
    for token in (None, "not-a-key"):
        status, data = patch(server, real_source["id"], token, rename("x"))
        assert status == 401 and list(data) == ["detail"], data
    reader = make_client(org, ["datasource.read"])
    status, data = patch(server, real_source["id"], reader.raw_token, rename("x"))
    assert status == 403 and list(data) == ["detail"], data


# --- 2. a client generated from the seed's OpenAPI document -----------------------------------------------


@pytest.fixture(scope="module")
def seed_client(tmp_path_factory) -> Any:
    """openapi-python-client's package for the seed's document (``--fail-on-warning``), imported."""
    generator = shutil.which("openapi-python-client", path=os.path.dirname(sys.executable)) or shutil.which(
        "openapi-python-client")
    if generator is None:
        message = "openapi-python-client is not installed (pip install openapi-python-client)"
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(message)
    tmp = tmp_path_factory.mktemp("camelai-client")
    (tmp / "seed.yaml").write_text(SEED_OPENAPI)
    (tmp / "config.yaml").write_text(f"project_name_override: {PACKAGE}\npackage_name_override: {PACKAGE}\n"
                                     "post_hooks: []\n")
    command = [generator, "generate", "--path", str(tmp / "seed.yaml"), "--config", str(tmp / "config.yaml"),
               "--meta", "none", "--output-path", str(tmp / PACKAGE), "--fail-on-warning"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(tmp))
    try:
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp))


def _mod(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


@pytest.mark.parametrize("real_source", PG_MYSQL, indirect=True)
def test_a_client_generated_from_the_seed(server, api, other_api, seed_client, real_source):
    operation, models = _mod("api.sources.sources_partial_update"), _mod("models")
    client = seed_client.AuthenticatedClient(base_url=server.url + PREFIX, token=api.raw_token,
                                             raise_on_unexpected_status=True)
    ref = str(real_source["id"])
    response = operation.sync_detailed(ref, client=client,
                                       body=models.PatchedSourcePartialUpdateRequest(account_name="Sales DB"))
    connection = response.parsed
    assert response.status_code == 200 and isinstance(connection, models.Connection), response.content
    assert connection.additional_properties == {}  # nothing beyond the seed's Connection
    assert (connection.id, connection.account_name) == (real_source["id"], "Sales DB")
    assert connection.type_ == models.ConnectionType(TYPES[real_source["type"]])
    assert isinstance(connection.created_at, datetime.datetime) and connection.is_fully_configured is True
    # the request body is optional: UNSET sends none
    unchanged = operation.sync_detailed(ref, client=client).parsed
    assert isinstance(unchanged, models.Connection) and unchanged.account_name == "Sales DB"
    for ref_, token in (("999999", api.raw_token), (ref, other_api.raw_token)):
        other = seed_client.AuthenticatedClient(base_url=server.url + PREFIX, token=token,
                                                raise_on_unexpected_status=True)
        missing = operation.sync_detailed(ref_, client=other, body=models.PatchedSourcePartialUpdateRequest(
            account_name="x"))
        assert missing.status_code == 404 and isinstance(missing.parsed, models.NotFoundResponsePartialUpdate)
        assert missing.parsed.detail and missing.parsed.additional_properties == {}


# --- 3. every value of Connection.type ------------------------------------------------------------------

_SERVICE_ACCOUNT = json.dumps({"type": "service_account", "project_id": "my-project", "client_email":
                               "reader@my-project.iam.gserviceaccount.com", "private_key_id": "1",
                               "private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
                               "token_uri": "https://oauth2.googleapis.com/token"})
#: the secrets each type requires, for a source saved untested
CREDENTIALS: dict[str, dict[str, str]] = {
    "supabase": {"password": "pw"}, "mssql": {"password": "pw"}, "snowflake": {"password": "pw"},
    "databricks": {"token": "dapi-token"}, "motherduck": {"token": "md-token"},
    "mixpanel": {"service_account_secret": "mp-secret"},
    "bigquery": {"service_account_json": _SERVICE_ACCOUNT}, "google_sheets": {"service_account_json": _SERVICE_ACCOUNT},
}


def test_every_type_of_the_seed_has_a_catalogue_type():
    assert set(TYPES.values()) == set(SEED_TYPES)


@pytest.mark.parametrize("type_key", sorted(TYPES))
def test_every_type_of_the_seed_reads_back(server, api, type_key):
    body = {"name": f"Source {type_key}", "type": type_key, "connection": MINIMAL[type_key],
            "credentials": CREDENTIALS.get(type_key, {})}
    created = api.post(f"{URL}?test_connection=false", body, format="json")
    assert created.status_code == 201, created.json()
    status, data = patch(server, created.json()["id"], api.raw_token, rename(f"Renamed {type_key}"))
    assert status == 200, data
    assert_connection(data, created.json(), f"Renamed {type_key}", TYPES[type_key])
