"""camelAI (seed 003) drop-in: PATCH /api/v1/sources/{id}/ answers the Connection representation."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from datasources.catalogue import CATALOGUE
from datasources.compat.camelai import CATALOGUE_TYPES, TYPES
from tests.support.state import stored_state

URL = "/api/v1/data-sources/"
CAMEL = "/compat/camelai/api/v1/sources/"
SEED_ENUM = ["SUPABASE", "POSTGRES", "MYSQL", "BIGQUERY", "DATABRICKS", "FILE", "MOTHERDUCK", "CLICKHOUSE",
             "MONGODB", "MIXPANEL", "SINGLESTORE", "GOOGLE_SHEETS", "MSSQL", "SNOWFLAKE", "MCP"]
CONNECTION_KEYS = {"id", "account_name", "type", "created_at", "is_fully_configured"}


@pytest.fixture
def pg_source(api, pg_source_data, allow_loopback):
    response = api.post(URL, pg_source_data, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def sqlite_source(api, sqlite_file):
    response = api.post(URL, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_rename_answers_the_connection(api, pg_source):
    response = api.patch(f"{CAMEL}{pg_source['id']}/", {"account_name": "Sales DB"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body.keys() == CONNECTION_KEYS
    assert body == {"id": pg_source["id"], "account_name": "Sales DB", "type": "POSTGRES",
                    "created_at": pg_source["created_at"], "is_fully_configured": True}
    core = api.get(f"{URL}{pg_source['id']}/").json()
    assert core["name"] == "Sales DB" and core["connection"] == pg_source["connection"]
    assert core["version"] == pg_source["version"] + 1


def test_empty_body_changes_nothing(api, pg_source):
    response = api.patch(f"{CAMEL}{pg_source['id']}/", {}, format="json")
    assert response.status_code == 200 and response.json()["account_name"] == pg_source["name"]


def test_file_sources_are_file(api, _file_root):
    with open(f"{_file_root}/sales.csv", "w") as fh:
        fh.write("id,amount\n1,2\n")
    created = api.post(f"{URL}?test_connection=false", {"name": "Sales", "type": "csv",
                                                         "connection": {"path": "sales.csv"}}, format="json")
    assert created.status_code == 201, created.json()
    response = api.patch(f"{CAMEL}{created.json()['id']}/", {"account_name": "Sales CSV"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["type"] == "FILE"


def test_not_found_detail(api, other_api, pg_source):
    for client, ref in ((api, "999999"), (api, "abc"), (other_api, pg_source["id"])):
        response = client.patch(f"{CAMEL}{ref}/", {"account_name": "x"}, format="json")
        assert response.status_code == 404
        assert list(response.json()) == ["detail"] and response.json()["detail"]


def test_type_without_a_camelai_name_is_a_clear_400(api, sqlite_source):
    before = stored_state(sqlite_source["id"])
    response = api.patch(f"{CAMEL}{sqlite_source['id']}/", {"account_name": "x"}, format="json")
    assert response.status_code == 400
    assert "no camelAI equivalent" in response.json()["detail"]
    assert stored_state(sqlite_source["id"]) == before


@pytest.mark.parametrize("body,field", [({"account_name": ""}, "account_name"),
                                        ({"account_name": "x" * 256}, "account_name"),
                                        ({"account_name": 5}, "account_name"),
                                        ({"type": "MYSQL"}, "type"), ({"name": "x"}, "name")])
def test_invalid_body(api, pg_source, body, field):
    response = api.patch(f"{CAMEL}{pg_source['id']}/", body, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] and field in response.json()


def test_core_rule_names_are_unique_per_organization(api, pg_source, sqlite_source):
    """The main API's rule: names are unique per organization, case-insensitively."""
    before = stored_state(pg_source["id"])
    response = api.patch(f"{CAMEL}{pg_source['id']}/", {"account_name": "SHOP"}, format="json")
    assert response.status_code == 409
    assert response.json()["account_name"] == ["A data source with this name already exists."]
    assert stored_state(pg_source["id"]) == before


def test_authentication_and_scope(org, make_client, pg_source):
    response = APIClient().patch(f"{CAMEL}{pg_source['id']}/", {"account_name": "x"}, format="json")
    assert response.status_code == 401 and list(response.json()) == ["detail"]
    reader = make_client(org, ["datasource.read"])
    response = reader.patch(f"{CAMEL}{pg_source['id']}/", {"account_name": "x"}, format="json")
    assert response.status_code == 403 and "datasource.write" in response.json()["detail"]


def test_type_names_map_both_ways():
    assert sorted(set(TYPES.values())) == sorted(SEED_ENUM)
    for camel, keys in CATALOGUE_TYPES.items():
        assert keys and all(key in CATALOGUE and TYPES[key] == camel for key in keys)
    assert CATALOGUE_TYPES["POSTGRES"] == ("postgresql",) and CATALOGUE_TYPES["FILE"] == ("file", "csv")


def test_openapi_tag_and_shapes(client, db):
    doc = client.get("/api/schema/?format=json").json()
    op = doc["paths"]["/compat/camelai/api/v1/sources/{id}/"]["patch"]
    assert op["tags"] == ["compat: camelai"]
    schemas = doc["components"]["schemas"]
    connection = schemas["CamelaiConnection"]
    assert sorted(connection["required"]) == sorted(CONNECTION_KEYS)
    enum = schemas[connection["properties"]["type"]["$ref"].rsplit("/", 1)[1]]["enum"]
    assert enum == SEED_ENUM
    assert op["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith("CamelaiNotFound")


def test_an_empty_password_counts_as_configured(api):
    """camelAI has no password field (nothing to spell there): a source whose password is the empty
    string (issue 16) renders as configured, and a rename keeps that password."""
    body = {"name": "No password", "type": "mysql", "connection": {"host": "db.example.com", "username": "app"},
            "credentials": {"password": ""}}
    pk = api.post(f"{URL}?test_connection=false", body, format="json").json()["id"]
    response = api.patch(f"{CAMEL}{pk}/", {"account_name": "Renamed"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["is_fully_configured"] is True and response.json()["type"] == "MYSQL"
    assert api.get(f"{URL}{pk}/").json()["credentials_set"] == ["password"]
