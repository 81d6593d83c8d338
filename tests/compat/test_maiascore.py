"""maiascore (seed 004) drop-in: PUT /datasources/{id} in JSON, XML and form encoding."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from rest_framework.test import APIClient

from tests.support.state import stored_state

URL = "/api/v1/data-sources/"
MAIA = "/compat/maiascore/datasources/"
SEED_BODY = {  # the seed's request body, verbatim (placeholders included)
    "driver": "mysql", "host": "string", "username": "string", "password": "string", "database": "string",
    "port": "string", "ssl": True, "keyfile": "string", "certificate": "string", "sslCA": "string", "ssh": True,
    "sshHost": "string", "sshUsername": "string", "sshPassword": "string", "sshPort": "string",
    "sshIdentity": "string", "sshTunneling": True,
}
SEED_XML = """<?xml version="1.0" encoding="utf-8"?>
<item>
  <driver>mysql</driver>
  <host>string</host>
  <username>string</username>
  <password>string</password>
  <database>string</database>
  <port>string</port>
  <ssl>true</ssl>
  <keyfile>string</keyfile>
  <certificate>string</certificate>
  <sslCA>string</sslCA>
  <ssh>true</ssh>
  <sshHost>string</sshHost>
  <sshUsername>string</sshUsername>
  <sshPassword>string</sshPassword>
  <sshPort>string</sshPort>
  <sshIdentity>string</sshIdentity>
  <sshTunneling>true</sshTunneling>
</item>
"""
SEED_CURL_DATA = ('{"driver":"mysql","host":"string","username":"string","password":"string","database":"string",'
                  '"port":"string","ssl":true,"keyfile":"string","certificate":"string","sslCA":"string","ssh":true,'
                  '"sshHost":"string","sshUsername":"string","sshPassword":"string","sshPort":"string",'
                  '"sshIdentity":"string","sshTunneling":true}')
FORM = "application/x-www-form-urlencoded"
RESPONSE_KEYS = {"id", "driver", "host", "username", "database", "port", "ssl", "keyfile", "certificate", "sslCA",
                 "ssh", "sshHost", "sshUsername", "sshPort", "sshTunneling", "published_at", "created_by",
                 "updated_by", "password", "sshPassword", "sshIdentity"}
SECRET_KEYS = {"password", "keyfile", "sshPassword", "sshIdentity"}


def xml(values: dict) -> str:
    def text(v):
        return str(v).lower() if isinstance(v, bool) else str(v)
    return "<item>" + "".join(f"<{k}>{text(v)}</{k}>" for k, v in values.items()) + "</item>"


def encodings(values: dict) -> list[tuple[str, str]]:
    """(content type, body) of the same fields in each encoding the seed documents."""
    form = urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in values.items()})
    return [("application/json", json.dumps(values)), ("application/xml", xml(values)), (FORM, form),
            (FORM, json.dumps(values, separators=(",", ":")))]


@pytest.fixture
def mysql_source(api):
    response = api.post(f"{URL}?test_connection=false", {
        "name": "Shop MySQL", "type": "mysql", "connection": {"host": "mysql.example.com", "username": "shop"},
        "credentials": {"password": "stored-pw"}}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def pg_source(api, pg_source_data, allow_loopback):
    response = api.post(URL, pg_source_data, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def put(client, ref, content_type: str, body: str):
    return client.generic("PUT", f"{MAIA}{ref}", body.encode(), content_type=content_type)


def assert_error(response, status: int) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert body["code"] == status and body["message"]
    return body


def real_body(cluster, **changes) -> dict:
    return {"driver": "postgres", "host": cluster.host, "username": cluster.user, "password": cluster.password,
            "database": cluster.database, "port": str(cluster.port), "ssl": False, "ssh": False,
            "sshTunneling": False, **changes}


# --- the seed's examples ---------------------------------------------------------------------------


@pytest.mark.parametrize("content_type,body", [("application/json", json.dumps(SEED_BODY)),
                                               ("application/xml", SEED_XML), (FORM, SEED_CURL_DATA),
                                               (FORM, urlencode({k: str(v).lower() if isinstance(v, bool) else v
                                                                 for k, v in SEED_BODY.items()}))])
def test_seed_example_verbatim_in_every_encoding(api, mysql_source, content_type, body):
    """The seed's body holds placeholders ("string" for ports and PEM values): each is named, nothing changes."""
    before = stored_state(mysql_source["id"])
    error = assert_error(put(api, mysql_source["id"], content_type, body), 400)
    assert {"port", "sshPort", "keyfile", "certificate", "sslCA"} <= error["errors"].keys()
    assert "port" in error["message"]
    assert "string" not in json.dumps(error["errors"].get("password", []))
    assert stored_state(mysql_source["id"]) == before


def test_seed_fields_update_and_test_a_real_connection(api, pg_source, pg_password_server):
    cluster = pg_password_server
    for content_type, body in encodings(real_body(cluster, database="template1")):
        response = put(api, pg_source["id"], content_type, body)
        assert response.status_code == 200, (content_type, response.json())
        data = response.json()
        assert data.keys() == RESPONSE_KEYS - SECRET_KEYS  # secrets are never echoed
        assert cluster.password not in response.content.decode()
        assert data == {**data, "id": str(pg_source["id"]), "driver": "postgres", "host": cluster.host,
                        "port": str(cluster.port), "database": "template1", "username": cluster.user,
                        "ssl": False, "ssh": False, "sshTunneling": False, "certificate": None, "sslCA": None,
                        "created_by": "token:t", "updated_by": "token:t"}
        assert data["published_at"] == pg_source["created_at"]
    core = api.get(f"{URL}{pg_source['id']}/").json()
    assert core["connection"]["database"] == "template1" and core["last_test"]["ok"]


def test_omitted_fields_return_to_defaults_and_secrets_are_kept(api, pg_source, pg_password_server):
    body = {k: v for k, v in real_body(pg_password_server).items() if k not in ("ssl", "password", "port")}
    body["port"] = pg_password_server.port  # a number is accepted too
    response = api.put(f"{MAIA}{pg_source['id']}", body, format="json")
    assert response.status_code == 200, response.json()
    core = api.get(f"{URL}{pg_source['id']}/").json()
    assert core["connection"]["ssl"]["mode"] == "prefer" and core["credentials_set"] == ["password"]


def test_wrong_password_fails_the_test_and_changes_nothing(api, pg_source, pg_password_server):
    before = stored_state(pg_source["id"])
    response = api.put(f"{MAIA}{pg_source['id']}", real_body(pg_password_server, password="nope-pw"), format="json")
    assert "stage 'auth'" in assert_error(response, 400)["message"]
    assert "nope-pw" not in response.content.decode()
    assert stored_state(pg_source["id"]) == before


def test_core_rule_egress_policy_applies(api, pg_source, pg_password_server):
    """The main API's egress policy: a cloud metadata address is refused, nothing changes."""
    before = stored_state(pg_source["id"])
    response = api.put(f"{MAIA}{pg_source['id']}", real_body(pg_password_server, host="169.254.169.254"),
                       format="json")
    assert "stage 'tcp'" in assert_error(response, 400)["message"]
    assert stored_state(pg_source["id"]) == before


# --- drivers ---------------------------------------------------------------------------------------


def test_driver_vocabulary(api, pg_source, pg_password_server, sqlite_file):
    ref = pg_source["id"]
    error = assert_error(api.put(f"{MAIA}{ref}", real_body(pg_password_server, driver="oracle"), format="json"), 400)
    assert 'Unknown driver "oracle"' in error["message"]
    error = assert_error(api.put(f"{MAIA}{ref}", real_body(pg_password_server, driver="mysql"), format="json"), 400)
    assert error["errors"] == {"driver": ["The type of a data source cannot be changed."]}
    ok = api.put(f"{MAIA}{ref}", real_body(pg_password_server, driver="postgresql"), format="json")
    assert ok.status_code == 200 and ok.json()["driver"] == "postgres"
    sqlite = api.post(URL, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    error = assert_error(api.put(f"{MAIA}{sqlite.json()['id']}", {"host": "x"}, format="json"), 400)
    assert "no maiascore driver" in error["message"]


# --- errors ----------------------------------------------------------------------------------------


def test_not_found_and_forbidden(api, other_api, pg_source, org, make_client):
    for client, ref in ((api, "%7Bid%7D"), (api, "999999"), (other_api, pg_source["id"])):
        assert_error(client.put(f"{MAIA}{ref}", SEED_BODY, format="json"), 404)
    response = APIClient().put(f"{MAIA}{pg_source['id']}", SEED_BODY, format="json")
    assert_error(response, 403)  # the seed: "Forbidden: this operation requires authentication"
    assert "WWW-Authenticate" not in response
    reader = make_client(org, ["datasource.read"])
    assert_error(reader.put(f"{MAIA}{pg_source['id']}", SEED_BODY, format="json"), 403)


@pytest.mark.parametrize("content_type,body", [
    ("application/xml", '<?xml version="1.0"?><!DOCTYPE item [<!ENTITY x "boom">]><item><host>&x;</host></item>'),
    ("application/xml", "<item><host>a</host"),
    (FORM, '{"host": '),
    ("text/plain", "host=a"),
])
def test_unsafe_or_malformed_bodies_are_refused(api, pg_source, content_type, body):
    before = stored_state(pg_source["id"])
    response = put(api, pg_source["id"], content_type, body)
    assert response.status_code in (400, 415)
    assert_error(response, response.status_code)
    assert stored_state(pg_source["id"]) == before


def test_ssh_flags_must_agree(api, pg_source, pg_password_server):
    body = real_body(pg_password_server, ssh=True, sshTunneling=False)
    assert "sshTunneling" in assert_error(api.put(f"{MAIA}{pg_source['id']}", body, format="json"), 400)["errors"]


def test_openapi_tag_and_encodings(client, db):
    doc = client.get("/api/schema/?format=json").json()
    op = doc["paths"]["/compat/maiascore/datasources/{id}"]["put"]
    assert op["tags"] == ["compat: maiascore"]
    # XML is accepted (tested above) but not in the schema: client generators cannot model it.
    assert op["requestBody"]["content"].keys() == {"application/json", FORM}
    assert "application/xml" in op["description"]
    props = doc["components"]["schemas"]["MaiascoreDatasource"]["properties"]
    assert not SECRET_KEYS & props.keys() and {"published_at", "created_by", "updated_by"} <= props.keys()
