"""Databrain (seed 002) drop-in: PUT /api/v2/datasource, the source named by credentials.name."""

from __future__ import annotations

import psycopg
import pytest
from rest_framework.test import APIClient

from datasources.compat.databrain_types import SPECS, TYPES
from datasources.connectors import ConnectorError
from datasources.connectors.postgresql import PostgresConnector
from datasources.models import DataSource, TenancySettings
from datasources.services.credentials import load_secrets
from tests.datasources.test_empty_password import mariadb_no_password, mysql_body, pg_body, pg_trust  # noqa: F401
from tests.support.forwarding import served_as
from tests.support.state import stored_state

URL = "/api/v1/data-sources/"
DB = "/compat/databrain/api/v2/datasource"
CURL_BODY = {  # the seed's curl example, verbatim
    "datasourceType": "postgres",
    "credentials": {
        "name": "production-postgres",
        "host": "new-db.example.com",
        "port": 5432,
        "username": "dbuser",
        "password": "newpassword",
        "database": "analytics",
        "schema": "public",
    },
}
SEED_TYPES = ["postgres", "redshift", "mysql", "mongodb", "clickhouse", "singlestore", "bigquery", "databricks",
              "elasticsearch", "opensearch", "mssql", "awss3", "csv", "firebolt", "athena", "trino", "snowflake",
              "cockroachdb"]


def admin_sql(cluster, statements: list[str], dbname: str = "postgres") -> None:
    with psycopg.connect(host=cluster.host, port=cluster.port, user=cluster.user, password=cluster.password,
                         dbname=dbname, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def ensure_database(cluster, name: str, owner: str | None = None) -> None:
    with psycopg.connect(host=cluster.host, port=cluster.port, user=cluster.user, password=cluster.password,
                         dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f"CREATE DATABASE {name}" + (f" OWNER {owner}" if owner else ""))


@pytest.fixture
def source(api, pg_source_data, allow_loopback):
    response = api.post(URL, {**pg_source_data, "name": "production-postgres", "tags": ["kept"]}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def body_for(cluster, **changes) -> dict:
    credentials = {"name": "production-postgres", "host": cluster.host, "port": cluster.port,
                   "username": cluster.user, "password": cluster.password, "database": cluster.database,
                   "schema": "public", **changes}
    return {"datasourceType": "postgres", "credentials": {k: v for k, v in credentials.items() if v is not None}}


def assert_error(response, status: int, code: str) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert list(body) == ["error"] and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


# --- the seed's example ---------------------------------------------------------------------------


def test_curl_example_verbatim(api, source, pg_password_server, monkeypatch):
    admin_sql(pg_password_server, [
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbuser') THEN "
        "CREATE ROLE dbuser LOGIN PASSWORD 'newpassword'; END IF; END $$"])
    ensure_database(pg_password_server, "analytics", owner="dbuser")
    with served_as(monkeypatch, "new-db.example.com", 5432, pg_password_server):
        response = api.put(DB, CURL_BODY, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": "production-postgres"}  # no "error" key on success
    core = api.get(f"{URL}{source['id']}/").json()
    assert {k: core["connection"][k] for k in ("host", "port", "username", "database", "schema")} == {
        "host": "new-db.example.com", "port": 5432, "username": "dbuser", "database": "analytics", "schema": "public"}
    assert core["last_test"]["ok"] and core["schema"]["status"] == "ready"  # tested, then re-cached
    assert core["tags"] == ["kept"]  # only the credential structure is replaced


def test_put_recaches_before_answering_where_a_worker_would_and_is_audited_as_put(api, source, pg_password_server,
                                                                                 settings):
    settings.SCHEMA_REFRESH_ASYNC = True  # make run and compose.yaml: connection changes re-cache on a worker
    before = api.get(f"{URL}{source['id']}/").json()["schema"]
    probe = f"recache_probe_{source['id']}"
    admin_sql(pg_password_server, [f"CREATE TABLE {probe} (id int)"], dbname=pg_password_server.database)
    try:
        moved = body_for(pg_password_server, host="localhost")  # a connection change: tested, then re-cached
        assert api.put(DB, moved, format="json").status_code == 200
        schema = api.get(f"{URL}{source['id']}/").json()["schema"]
    finally:
        admin_sql(pg_password_server, [f"DROP TABLE {probe}"], dbname=pg_password_server.database)
    assert (schema["status"], schema["version"]) == ("ready", before["version"] + 1)  # no worker ran here
    history = api.get(f"{URL}{source['id']}/history/").json()
    events = history["results"] if isinstance(history, dict) else history
    assert events[0]["action"] == "update" and events[0]["detail"]["method"] == "PUT"


def test_put_replaces_the_structure_and_recaches(api, source, pg_password_server):
    response = api.put(DB, body_for(pg_password_server, enableSsl=False), format="json")
    assert response.status_code == 200, response.json()
    core = api.get(f"{URL}{source['id']}/").json()
    assert core["connection"]["ssl"]["mode"] == "disable"
    response = api.put(DB, body_for(pg_password_server), format="json")  # enableSsl omitted: back to default
    assert response.status_code == 200, response.json()
    core = api.get(f"{URL}{source['id']}/").json()
    assert core["connection"]["ssl"]["mode"] == "prefer" and core["schema"]["status"] == "ready"
    # enableSsl says whether SSL is required: false agrees with prefer, which is kept (not weakened to disable)
    response = api.put(DB, body_for(pg_password_server, enableSsl=False), format="json")
    assert response.status_code == 200, response.json()
    assert api.get(f"{URL}{source['id']}/").json()["connection"]["ssl"]["mode"] == "prefer"


# --- INVALID_REQUEST_BODY -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,fields",
    [
        ({"credentials": {"name": "production-postgres"}}, {"datasourceType"}),
        ({"datasourceType": "postgres"}, {"credentials"}),
        ({"datasourceType": "postgres", "credentials": {"name": "production-postgres", "host": "h"}},
         {"credentials.port", "credentials.username", "credentials.password", "credentials.database",
          "credentials.schema"}),
        ({"datasourceType": "postgres", "credentials": {**CURL_BODY["credentials"], "sshTunnel": "enable"}},
         {"credentials.sshHost", "credentials.sshPort", "credentials.sshUsername", "credentials.sshPrivateKey"}),
        ({"datasourceType": "postgres", "credentials": {**CURL_BODY["credentials"], "server": "x"}},
         {"credentials.server"}),
        ({**CURL_BODY, "extra": 1}, {"extra"}),
        ({**CURL_BODY, "tenancySettings": {"tenancyLevel": "ROW"}}, {"tenancySettings.tenancyLevel"}),
    ],
)
def test_invalid_request_body(api, source, body, fields):
    before = stored_state(source["id"])
    error = assert_error(api.put(DB, body, format="json"), 400, "INVALID_REQUEST_BODY")
    assert fields <= error["errors"].keys()
    assert stored_state(source["id"]) == before


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch"])
def test_a_value_of_the_wrong_type_is_named_before_the_rules_that_read_it(api, kind):
    """``"disableAuth": "true"`` (a string) is not a boolean: it is named, and whether username and
    password are required ("unless disableAuth is true") is not decided on it. Other problems of the
    structure are named in the same answer."""
    pk = api.post(f"{URL}?test_connection=false", {
        "name": "search", "type": kind, "credentials": {"password": "stored-pw"},
        "connection": {"server_type": "self-managed", "server_url": "https://search.example.com:9200",
                       "username": "analyst"}}, format="json").json()["id"]
    before = stored_state(pk)
    credentials = {"name": "search", "server_type": "self-managed", "serverUrl": "https://search.example.com:9200"}
    error = assert_error(api.put(DB, {"datasourceType": kind, "credentials": {**credentials, "disableAuth": "true"}},
                                 format="json"), 400, "INVALID_REQUEST_BODY")
    assert error["errors"] == {"credentials.disableAuth": ["Must be a boolean."]}
    error = assert_error(api.put(DB, {"datasourceType": kind, "credentials": {
        **credentials, "disableAuth": 1, "serverUrl": None, "ignoreSsl": "no"}}, format="json"),
        400, "INVALID_REQUEST_BODY")
    assert error["errors"] == {"credentials.disableAuth": ["Must be a boolean."],
                               "credentials.ignoreSsl": ["Must be a boolean."],
                               "credentials.serverUrl": ['This field is required when server_type is "self-managed".']}
    # a boolean decides the rule as before: false needs username and password
    error = assert_error(api.put(DB, {"datasourceType": kind, "credentials": {**credentials, "disableAuth": False}},
                                 format="json"), 400, "INVALID_REQUEST_BODY")
    assert set(error["errors"]) == {"credentials.username", "credentials.password"}
    assert stored_state(pk) == before


@pytest.mark.parametrize("credentials,errors", [
    ({"sshTunnel": "yes"}, {"credentials.sshTunnel": ["Must be one of: enable, disable."]}),
    ({"port": "5432", "sshTunnel": "enable", "sshHost": "bastion"},
     {"credentials.port": ["Must be an integer."], "credentials.sshPort": ["This field is required when sshTunnel "
                                                                          'is "enable".'],
      "credentials.sshUsername": ['This field is required when sshTunnel is "enable".'],
      "credentials.sshPrivateKey": ['This field is required when sshTunnel is "enable".']}),
    ({"enableSsl": "true", "host": 5}, {"credentials.enableSsl": ["Must be a boolean."],
                                        "credentials.host": ["Must be a string."]}),
])
def test_postgres_structure_names_type_errors_first(credentials, errors):
    from core.compat import SeedInvalidRequest
    from datasources.compat.databrain_types import to_native

    body = {k: v for k, v in CURL_BODY["credentials"].items() if k != "name"}
    with pytest.raises(SeedInvalidRequest) as refused:
        to_native("postgres", {**body, **credentials})
    assert refused.value.errors == errors


def test_unknown_datasource_type_is_a_clear_400(api, source):
    error = assert_error(api.put(DB, {**CURL_BODY, "datasourceType": "oracle"}, format="json"),
                         400, "INVALID_REQUEST_BODY")
    assert 'Unknown datasourceType "oracle"' in error["errors"]["datasourceType"][0]


def test_type_must_match_the_existing_one(api, source):
    error = assert_error(api.put(DB, {**CURL_BODY, "datasourceType": "mysql"}, format="json"),
                         400, "INVALID_REQUEST_BODY")
    assert "postgres" in error["message"]


def test_mssql_uses_server_and_user(api):
    create = api.post(f"{URL}?test_connection=false", {
        "name": "sqlserver", "type": "mssql", "connection": {"host": "mssql.example.com", "username": "sa"},
        "credentials": {"password": "pw"}}, format="json")
    assert create.status_code == 201, create.json()
    body = {"datasourceType": "mssql", "credentials": {"name": "sqlserver", "host": "mssql.example.com",
                                                         "username": "sa", "password": "pw", "port": 1433}}
    error = assert_error(api.put(DB, body, format="json"), 400, "INVALID_REQUEST_BODY")
    assert {"credentials.server", "credentials.user", "credentials.host", "credentials.username"} == set(
        error["errors"])
    full = {"datasourceType": "mssql", "credentials": {"name": "sqlserver", "server": "mssql2.example.com",
                                                         "user": "sa", "password": "pw", "port": 1433}}
    error = assert_error(api.put(DB, full, format="json"), 400, "CREDENTIAL_TEST_FAILED")
    assert error["stage"] == "resolve"  # the seed's names reached the connector: it looked the server up


# --- names ----------------------------------------------------------------------------------------


def test_name_errors(api, source, other_api):
    missing = {**CURL_BODY, "credentials": {**CURL_BODY["credentials"], "name": "nope"}}
    assert_error(api.put(DB, missing, format="json"), 404, "DATASOURCE_NOT_FOUND")
    assert_error(other_api.put(DB, CURL_BODY, format="json"), 404, "DATASOURCE_NOT_FOUND")
    case = {**CURL_BODY, "credentials": {**CURL_BODY["credentials"], "name": "Production-Postgres"}}
    assert_error(api.put(DB, case, format="json"), 400, "DATASOURCE_NAME_ERROR")
    nameless = {**CURL_BODY, "credentials": {k: v for k, v in CURL_BODY["credentials"].items() if k != "name"}}
    assert "credentials.name" in assert_error(api.put(DB, nameless, format="json"), 400,
                                              "INVALID_REQUEST_BODY")["errors"]


# --- test, cache, auth ----------------------------------------------------------------------------


def test_credential_test_failed_changes_nothing(api, source, pg_password_server):
    before = stored_state(source["id"])
    response = api.put(DB, body_for(pg_password_server, password="wrong-password"), format="json")
    error = assert_error(response, 400, "CREDENTIAL_TEST_FAILED")
    assert error["stage"] == "auth" and "wrong-password" not in response.content.decode()
    assert stored_state(source["id"]) == before


def test_core_rule_egress_policy_applies(api, source, pg_password_server):
    """The main API's egress policy: a cloud metadata address is refused, nothing changes."""
    before = stored_state(source["id"])
    error = assert_error(api.put(DB, body_for(pg_password_server, host="169.254.169.254"), format="json"),
                         400, "CREDENTIAL_TEST_FAILED")
    assert error["stage"] == "tcp"
    assert stored_state(source["id"]) == before


@pytest.mark.parametrize("queued", [False, True], ids=["inline", "worker-configured"])
def test_schema_cache_failed(api, source, pg_password_server, monkeypatch, settings, queued):
    """The seed's PUT re-caches before it answers, even where refreshes go to a worker: a cache that
    fails is SCHEMA_CACHE_FAILED, never a 200 with the refresh still to come."""
    settings.SCHEMA_REFRESH_ASYNC = queued

    def broken(self, conn, config):  # the catalog query, over the tested session and on a retry alike
        raise ConnectorError("introspect", "catalog query failed")

    monkeypatch.setattr(PostgresConnector, "_introspect_rows", broken)
    error = assert_error(api.put(DB, body_for(pg_password_server), format="json"), 500, "SCHEMA_CACHE_FAILED")
    assert "catalog query failed" in error["message"]
    core = api.get(f"{URL}{source['id']}/").json()  # applied (tested), only the cache failed
    assert core["connection"]["ssl"]["mode"] == "prefer" and core["schema"]["status"] == "failed"


def test_authentication_error(source):
    assert_error(APIClient().put(DB, CURL_BODY, format="json"), 401, "AUTHENTICATION_ERROR")
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer dbn_live_abc123")
    assert_error(bad.put(DB, CURL_BODY, format="json"), 401, "AUTHENTICATION_ERROR")


# --- tenancy settings -----------------------------------------------------------------------------

TABLE = {"tenancyLevel": "TABLE", "clientColumnType": "NUMBER", "schemaName": "public", "tableName": "clients",
         "clientColumn": "client_id", "primaryKeyColumn": "id"}


def test_tenancy_settings(api, pg_source_data, pg_password_server, allow_loopback):
    ensure_database(pg_password_server, "compat_tenants")
    admin_sql(pg_password_server, ["CREATE TABLE IF NOT EXISTS clients (id serial PRIMARY KEY, "
                                   "client_id integer NOT NULL, name text)"], dbname="compat_tenants")
    data = {**pg_source_data, "name": "tenants"}
    data["connection"] = {**data["connection"], "database": "compat_tenants"}
    ds = api.post(URL, data, format="json").json()
    body = body_for(pg_password_server, name="tenants", database="compat_tenants", enableSsl=False)
    error = assert_error(api.put(DB, {**body, "tenancySettings": {"tenancyLevel": "TABLE"}}, format="json"),
                         400, "TENANCY_SETTINGS_CREATE_FAILED")
    assert "tenancySettings.tableName" in error["errors"]
    bad_column = {**TABLE, "clientColumn": "nope"}
    error = assert_error(api.put(DB, {**body, "tenancySettings": bad_column}, format="json"),
                         400, "TENANCY_SETTINGS_CREATE_FAILED")
    assert "tenancySettings.clientColumn" in error["errors"]
    assert not TenancySettings.objects.filter(data_source_id=ds["id"]).exists()
    ok = api.put(DB, {**body, "tenancySettings": TABLE}, format="json")
    assert ok.status_code == 200, ok.json()
    assert api.get(f"{URL}{ds['id']}/").json()["tenancy_settings"] == {
        "level": "TABLE", "client_column_type": "NUMBER", "schema": "public", "table": "clients",
        "client_column": "client_id", "primary_key_column": "id"}
    error = assert_error(api.put(DB, {**body, "tenancySettings": {**TABLE, "tableName": "nope"}}, format="json"),
                         400, "TENANCY_SETTINGS_UPDATE_FAILED")
    assert "tenancySettings.tableName" in error["errors"]
    assert api.put(DB, body, format="json").status_code == 200  # omitted: unchanged
    assert api.get(f"{URL}{ds['id']}/").json()["tenancy_settings"]["level"] == "TABLE"
    database = api.put(DB, {**body, "tenancySettings": {"tenancyLevel": "DATABASE"}}, format="json")
    assert database.status_code == 200, database.json()
    assert api.get(f"{URL}{ds['id']}/").json()["tenancy_settings"]["table"] == ""


def test_table_tenancy_in_the_put_that_switches_database_is_checked_against_the_new_one(
        api, pg_source_data, pg_password_server, allow_loopback):
    """README's tenancySettings row: one PUT may move the source to another database and name a table
    there (the settings are judged by the tables that PUT's connection test reads, not the old cache)."""
    ensure_database(pg_password_server, "compat_tenants")
    admin_sql(pg_password_server, ["CREATE TABLE IF NOT EXISTS clients (id serial PRIMARY KEY, "
                                   "client_id integer NOT NULL, name text)"], dbname="compat_tenants")
    ds = api.post(URL, {**pg_source_data, "name": "tenants"}, format="json").json()
    assert ds["connection"]["database"] != "compat_tenants"
    body = body_for(pg_password_server, name="tenants", database="compat_tenants", enableSsl=False)
    ok = api.put(DB, {**body, "tenancySettings": TABLE}, format="json")
    assert ok.status_code == 200, ok.json()
    stored = api.get(f"{URL}{ds['id']}/").json()
    assert stored["connection"]["database"] == "compat_tenants" and stored["tenancy_settings"]["table"] == "clients"


def test_database_tenancy_refuses_table_fields_by_name_instead_of_dropping_them(api, source, pg_password_server):
    """DATABASE keeps no table fields: one sent with a value would be dropped, so it is refused by name
    and nothing changes. ``null`` and ``""`` carry no value and pass (generated SDKs, forms)."""
    body = body_for(pg_password_server, enableSsl=False)
    assert api.put(DB, body, format="json").status_code == 200
    before = stored_state(source["id"])
    message = "Only with tenancyLevel TABLE: leave it out (or null) with DATABASE."
    sent = {"tenancyLevel": "DATABASE", "clientColumnType": "NUMBER", "schemaName": None, "tableName": "clients",
            "clientColumn": ""}
    error = assert_error(api.put(DB, {**body, "tenancySettings": sent}, format="json"), 400, "INVALID_REQUEST_BODY")
    assert error["errors"] == {"tenancySettings.clientColumnType": [message], "tenancySettings.tableName": [message]}
    assert stored_state(source["id"]) == before
    assert not TenancySettings.objects.filter(data_source_id=source["id"]).exists()
    empty = {"tenancyLevel": "DATABASE", "clientColumnType": None, "schemaName": None, "tableName": "",
             "clientColumn": None, "primaryKeyColumn": ""}
    ok = api.put(DB, {**body, "tenancySettings": empty}, format="json")
    assert ok.status_code == 200, ok.json()
    assert api.get(f"{URL}{source['id']}/").json()["tenancy_settings"]["level"] == "DATABASE"


def test_openapi_states_that_database_tenancy_takes_no_table_field(client, db):
    from tests.core.test_openapi import assert_valid

    doc = client.get("/api/schema/?format=json").json()
    assert_valid(doc, "DatabrainTenancySettingsRequest", {"tenancyLevel": "DATABASE", "schemaName": None,
                                                          "tableName": ""})
    with pytest.raises(AssertionError):
        assert_valid(doc, "DatabrainTenancySettingsRequest", {"tenancyLevel": "DATABASE", "clientColumnType": "NUMBER"})
    assert_valid(doc, "DatabrainTenancySettingsRequest", {"tenancyLevel": "TABLE", "clientColumnType": "NUMBER"})


# --- vocabulary -----------------------------------------------------------------------------------


def test_every_seed_type_maps_to_the_catalogue():
    from datasources.catalogue import CATALOGUE

    assert sorted(TYPES) == sorted(SEED_TYPES) and sorted(SPECS) == sorted(SEED_TYPES)
    for name, key in TYPES.items():
        source_type = CATALOGUE[key]
        for f in SPECS[name]:
            kind, _, field = f.target.partition(".")
            found = source_type.field(field) if kind == "connection" else source_type.secret(field)
            assert found is not None, (name, f.name, f.target)


def test_openapi_tag(client, db):
    doc = client.get("/api/schema/?format=json").json()
    op = doc["paths"]["/compat/databrain/api/v2/datasource"]["put"]
    assert op["tags"] == ["compat: databrain"]
    schemas = doc["components"]["schemas"]
    union = schemas["DatabrainDatasourceUpdateRequest"]  # one member per datasourceType, with its structure
    assert union["discriminator"]["propertyName"] == "datasourceType"
    assert set(union["discriminator"]["mapping"]) == set(SEED_TYPES)
    for name, ref in union["discriminator"]["mapping"].items():
        member = schemas[ref.split("/")[-1]]
        assert name in member["properties"]["credentials"]["description"]


# --- an empty password (issue 16): the structure's required password may be "" on mysql/postgres ----


def _named_source(api, body: dict) -> int:
    response = api.post(f"{URL}?test_connection=false", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


@pytest.mark.parametrize("type_name", ["mysql", "singlestore"])
def test_mysql_structure_with_an_empty_password_logs_in(api, mariadb_no_password, allow_loopback, type_name):  # noqa: F811
    login = mariadb_no_password
    body = mysql_body(login, password="wrong-password", name="no-password", type=TYPES[type_name])
    pk = _named_source(api, body)
    credentials = {"name": "no-password", "host": login.host, "port": login.port, "username": login.user,
                   "database": login.database, "enableSsl": False}
    missing = api.put(DB, {"datasourceType": type_name, "credentials": credentials}, format="json")
    assert "credentials.password" in assert_error(missing, 400, "INVALID_REQUEST_BODY")["errors"]
    response = api.put(DB, {"datasourceType": type_name, "credentials": {**credentials, "password": ""}},
                       format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": "no-password"}
    core = api.get(f"{URL}{pk}/").json()
    assert core["last_test"]["ok"] and core["credentials_set"] == ["password"] and core["schema"]["version"] == 1
    assert load_secrets(DataSource.objects.get(pk=pk)) == {"password": ""}
    whitespace = api.put(DB, {"datasourceType": type_name, "credentials": {**credentials, "password": " "}},
                         format="json")
    assert "credentials.password" in assert_error(whitespace, 400, "INVALID_REQUEST_BODY")["errors"]


def test_postgres_structure_with_an_empty_password_and_trust(api, pg_trust, allow_loopback):  # noqa: F811
    pk = _named_source(api, pg_body(pg_trust, password="unused-by-trust", name="trusted"))
    credentials = {"name": "trusted", "host": pg_trust.host, "port": pg_trust.port, "username": pg_trust.user,
                   "password": "", "database": pg_trust.database, "schema": "public", "enableSsl": False}
    response = api.put(DB, {"datasourceType": "postgres", "credentials": credentials}, format="json")
    assert response.status_code == 200, response.json()
    assert api.get(f"{URL}{pk}/").json()["last_test"]["ok"]
    assert load_secrets(DataSource.objects.get(pk=pk)) == {"password": ""}


@pytest.mark.parametrize("type_name", ["redshift", "cockroachdb"])
def test_types_that_require_a_password_refuse_the_empty_one(api, type_name):
    pk = _named_source(api, {"name": "warehouse", "type": TYPES[type_name], "connection": {
        "host": "h", "database": "d", "username": "u"}, "credentials": {"password": "stored-pw"}})
    before = stored_state(pk)
    credentials = {"name": "warehouse", "host": "h", "port": 5439, "username": "u", "password": "",
                   "database": "d", "schema": "public"}
    error = assert_error(api.put(DB, {"datasourceType": type_name, "credentials": credentials}, format="json"),
                         400, "INVALID_REQUEST_BODY")
    assert error["errors"] == {"credentials.password": ["This field may not be blank."]}
    assert stored_state(pk) == before


@pytest.mark.django_db
def test_openapi_states_the_empty_password(client):
    from tests.core.test_openapi import assert_valid

    doc = client.get("/api/schema/?format=json").json()
    mysql = {"datasourceType": "mysql", "credentials": {"name": "n", "host": "h", "port": 3306, "username": "u",
                                                        "password": "", "database": "d"}}
    assert_valid(doc, "DatabrainMysqlUpdateRequest", mysql)
    with pytest.raises(AssertionError):
        assert_valid(doc, "DatabrainMysqlUpdateRequest", {**mysql, "credentials": {**mysql["credentials"],
                                                                                  "password": " "}})
    redshift = {"datasourceType": "redshift", "credentials": {
        "name": "n", "host": "h", "port": 5439, "username": "u", "password": "", "database": "d", "schema": "s"}}
    with pytest.raises(AssertionError):
        assert_valid(doc, "DatabrainRedshiftUpdateRequest", redshift)
