"""Every request example of the Databrain seed (``shared/seeds/002_8dab7127c7f43c71.txt``, "Update
Datasource"), replayed over HTTP against the running app (``tests.support.live``), with the documented
response shape asserted.

What the seed shows:

- one request example, a curl command, and its response ``{"name": "production-postgres"}``. The stored
  seed text keeps the "Examples" heading but not its code block (lost when the page was turned into
  text); the command below is the one on the page the seed was taken from
  (docs.usedatabrain.com, Datasource APIs, Update Datasource), character for character. That page
  shows no JS, Python or PHP example;
- the endpoint ``PUT https://api.usedatabrain.com/api/v2/datasource``, or ``<SELF_HOSTED_URL>/api/v2/datasource``
  self-hosted: here ``<this app>/compat/databrain`` plays the base URL;
- the response: the datasource's ``name``; "Error field, null when successful. Not included in
  successful responses."; the error codes table.

The command is run with curl itself (``shutil.which("curl")``; else the same method, URL, headers and
body bytes with urllib). Placeholders replaced by real values: the base URL (this app on loopback), the
service token ``dbn_live_abc123...`` (an organization API token with ``datasource.write``), the host
``new-db.example.com:5432`` (resolved, for the app only, to a loopback address forwarding to the
PostgreSQL cluster fixture ``pg_password_server``, where the role ``dbuser`` / ``newpassword`` and the
database ``analytics`` exist) and the datasource ``production-postgres`` (created first through the
native API: the example updates an existing one). Everything else is sent as written.

The error table's rows that a client can cause are then replayed as the same command with the one
change that causes each (the token left as the placeholder, another name, a wrong password...), and
their shape asserted: ``{"error": {"code": <the table's code>, "message": ...}}`` with the table's
HTTP status. INTERNAL_SERVER_ERROR is not replayed (no request causes it on purpose).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from datasources.connectors import ConnectorError
from datasources.connectors.postgresql import PostgresConnector
from tests.compat.test_databrain import admin_sql, ensure_database
from tests.support.forwarding import served_as
from tests.support.live import live_http_server
from tests.support.state import stored_state

URL = "/api/v1/data-sources/"
#: The seed's request example, as its page shows it.
SEED_CURL = """curl --request PUT \\
  --url https://api.usedatabrain.com/api/v2/datasource \\
  --header 'Authorization: Bearer dbn_live_abc123...' \\
  --header 'Content-Type: application/json' \\
  --data '{
    "datasourceType": "postgres",
    "credentials": {
      "name": "production-postgres",
      "host": "new-db.example.com",
      "port": 5432,
      "username": "dbuser",
      "password": "newpassword",
      "database": "analytics",
      "schema": "public"
    }
  }'"""
#: Its documented response.
SEED_RESPONSE = """{
  "name": "production-postgres"
}"""
SEED_BASE_URL = "https://api.usedatabrain.com"
SEED_TOKEN = "dbn_live_abc123..."
ERROR_CODES = {  # the seed's error table: code -> HTTP status
    "INVALID_REQUEST_BODY": 400, "DATASOURCE_NAME_ERROR": 400, "CREDENTIAL_TEST_FAILED": 400,
    "AUTHENTICATION_ERROR": 401, "SCHEMA_CACHE_FAILED": 500, "DATASOURCE_NOT_FOUND": 404,
    "TENANCY_SETTINGS_CREATE_FAILED": 500, "TENANCY_SETTINGS_UPDATE_FAILED": 500, "INTERNAL_SERVER_ERROR": 500,
}


@pytest.fixture
def server(transactional_db, settings):
    with live_http_server(settings) as live:
        yield live
        # curl exits once it has the answer, maybe before the server's request thread has finished
        # (closing its database connection): stopping the server under it fails that thread.
        httpd = live.server.thread.httpd
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
                getattr(getattr(thread, "_target", None), "__self__", None) is httpd
                for thread in threading.enumerate()):
            time.sleep(0.01)


@pytest.fixture
def world(server, api, pg_source_data, pg_password_server, monkeypatch) -> dict[str, Any]:
    """The datasource the example updates, the role and database it moves to, and its host name."""
    cluster = pg_password_server
    admin_sql(cluster, [
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbuser') THEN "
        "CREATE ROLE dbuser LOGIN PASSWORD 'newpassword'; END IF; END $$"])
    ensure_database(cluster, "analytics", owner="dbuser")
    admin_sql(cluster, ["CREATE TABLE IF NOT EXISTS public.events (id integer, kind text)"], dbname="analytics")
    created = api.post(URL, {**pg_source_data, "name": "production-postgres"}, format="json")
    assert created.status_code == 201, created.json()
    with served_as(monkeypatch, "new-db.example.com", 5432, cluster):
        yield {"id": created.json()["id"], "token": api.raw_token}


def command(server: Any, token: str, *, edit: tuple[str, str] | None = None) -> list[str]:
    """The seed's command with its placeholders replaced (and, for an error row, one more change)."""
    text = SEED_CURL.replace(SEED_BASE_URL, f"{server.url}/compat/databrain")
    if token:
        text = text.replace(SEED_TOKEN, token)
    if edit:
        assert text.count(edit[0]) == 1, edit
        text = text.replace(*edit)
    return shlex.split(text.replace("\\\n", " "))


def run(argv: list[str]) -> tuple[int, str, str]:
    """Send the command: (status, Content-Type, body text)."""
    assert argv[0] == "curl"
    curl = shutil.which("curl")
    if curl:
        marker = "\n--status-and-type--"
        done = subprocess.run(
            [curl, "--silent", "--show-error", "--noproxy", "*", "--max-time", "60",
             "--write-out", marker + "%{http_code} %{content_type}", *argv[1:]],
            capture_output=True, text=True, timeout=90, check=False)
        assert done.returncode == 0, done.stderr
        body, _, tail = done.stdout.rpartition(marker)
        status, _, content_type = tail.partition(" ")
        return int(status), content_type, body
    options: dict[str, Any] = {"headers": {}}
    args = iter(argv[1:])
    for arg in args:
        if arg == "--request":
            options["method"] = next(args)
        elif arg == "--url":
            options["url"] = next(args)
        elif arg == "--header":
            name, _, value = next(args).partition(": ")
            options["headers"][name] = value
        elif arg == "--data":
            options["data"] = next(args).encode()
        else:
            raise AssertionError(f"unexpected curl argument {arg!r}")
    request = urllib.request.Request(options["url"], data=options.get("data"), method=options["method"],
                                     headers=options["headers"])
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=60) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def assert_error(status: int, content_type: str, text: str, code: str) -> dict[str, Any]:
    """The error table's row: its HTTP status, and ``{"error": {"code", "message"}}``."""
    body = json.loads(text)
    assert status == ERROR_CODES[code] or (code.startswith("TENANCY_") and status == 400), (status, body)
    assert content_type.startswith("application/json")
    assert list(body) == ["error"] and body["error"]["code"] == code and body["error"]["message"], body
    return dict(body["error"])


# --- the request example ----------------------------------------------------------------------------


def test_the_curl_example_verbatim(server, world, api):
    version = api.get(f"{URL}{world['id']}/").json()["schema"]["version"]
    status, content_type, text = run(command(server, world["token"]))
    assert status == 200, text
    assert content_type.startswith("application/json")
    assert json.loads(text) == json.loads(SEED_RESPONSE)  # the name, and no "error" key on success
    core = api.get(f"{URL}{world['id']}/").json()
    assert {k: core["connection"][k] for k in ("host", "port", "username", "database", "schema")} == {
        "host": "new-db.example.com", "port": 5432, "username": "dbuser", "database": "analytics",
        "schema": "public"}
    assert core["last_test"]["ok"]  # "validates the new credentials, tests the connection"
    assert core["schema"]["status"] == "ready" and core["schema"]["version"] > version  # "re-cached"
    assert "events" in {t["name"] for t in api.get(f"{URL}{world['id']}/schema/").json()["tables"]}


# --- the error table, each row from the example with one change ----------------------------------------


@pytest.mark.parametrize(("code", "edit"), [
    ("INVALID_REQUEST_BODY", (',\n      "schema": "public"', "")),  # a required field missing
    ("DATASOURCE_NAME_ERROR", ('"name": "production-postgres"', '"name": "Production-Postgres"')),
    ("DATASOURCE_NOT_FOUND", ('"name": "production-postgres"', '"name": "staging-postgres"')),
    ("CREDENTIAL_TEST_FAILED", ('"password": "newpassword"', '"password": "wrongpassword"')),
    ("TENANCY_SETTINGS_CREATE_FAILED", ('\n  }\'', ',\n    "tenancySettings": {"tenancyLevel": "TABLE"}\n  }\'')),
])
def test_error_rows_change_nothing(server, world, code, edit):
    before = stored_state(world["id"])
    error = assert_error(*run(command(server, world["token"], edit=edit)), code)
    if code == "CREDENTIAL_TEST_FAILED":
        assert error["stage"] == "auth" and "wrongpassword" not in json.dumps(error)
    assert stored_state(world["id"]) == before


def test_authentication_error_with_the_placeholder_token(server, world):
    before = stored_state(world["id"])
    assert_error(*run(command(server, "")), "AUTHENTICATION_ERROR")  # "Bearer dbn_live_abc123..." as written
    assert stored_state(world["id"]) == before


def test_schema_cache_failed(server, world, api, monkeypatch):
    def broken(self, conn, config):
        raise ConnectorError("introspect", "catalog query failed")

    monkeypatch.setattr(PostgresConnector, "_introspect_rows", broken)
    assert_error(*run(command(server, world["token"])), "SCHEMA_CACHE_FAILED")
    core = api.get(f"{URL}{world['id']}/").json()  # applied (tested); only the cache failed
    assert core["connection"]["host"] == "new-db.example.com" and core["schema"]["status"] == "failed"
