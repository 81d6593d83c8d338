"""Unit tests of the source-type catalogue (pure Python: no database, no Django)."""

from __future__ import annotations

import json

import jsonschema
import pytest
from openapi_schema_validator import OAS30Validator, OAS30WriteValidator
from openapi_spec_validator import validate as validate_openapi_spec

from datasources import catalogue
from datasources.catalogue import (
    CATALOGUE,
    TYPE_CHOICES,
    ConfigInvalid,
    check_required_secrets,
    connection_openapi_schema,
    credentials_openapi_schema,
    get_type,
    is_fully_configured,
    normalize_connection,
    validate_secret_values,
)

EXPECTED_KEYS = [
    "postgresql", "redshift", "cockroachdb", "supabase", "mysql", "mariadb", "singlestore", "mssql",
    "snowflake", "bigquery", "databricks", "clickhouse", "mongodb", "elasticsearch", "opensearch",
    "firebolt", "athena", "trino", "motherduck", "sqlite", "csv", "file", "s3", "google_sheets",
    "mixpanel", "mcp",
]
DB = {"host": "db.example.com", "database": "app", "username": "reader"}
MINIMAL = {
    "postgresql": DB, "redshift": DB, "cockroachdb": DB, "supabase": DB,
    "mysql": {"host": "db.example.com", "username": "reader"},
    "mariadb": {"host": "db.example.com", "username": "reader"},
    "singlestore": {"host": "db.example.com", "username": "reader"},
    "mssql": {"host": "sql.example.com", "username": "sa"},
    "snowflake": {"account": "xy12345.eu-west-1", "username": "u", "role": "r", "warehouse": "w",
                  "database": "d", "schema": "s"},
    "bigquery": {"project_id": "my-project"},
    "databricks": {"host": "dbc-1.cloud.databricks.com", "http_path": "/sql/1.0/warehouses/abc",
                   "schema": "default"},
    "clickhouse": {"host": "ch.example.com"},
    "mongodb": {"host": "mongo.example.com", "database": "app"},
    "elasticsearch": {"server_type": "self-managed", "server_url": "https://es:9200", "username": "elastic"},
    "opensearch": {"server_type": "open-cloud", "cloud_id": "deployment:abc", "username": "admin"},
    "firebolt": {"client_id": "cid", "account_name": "acc", "database": "db", "engine_name": "eng"},
    "athena": {"database": "db", "s3_output_location": "s3://bucket/results/", "region": "us-east-1",
               "access_key_id": "AKIAEXAMPLE"},
    "trino": {"host": "trino.example.com", "catalog": "hive", "schema": "default", "username": "u"},
    "motherduck": {"database": "my_db"},
    "sqlite": {"path": "demo.sqlite3"},
    "csv": {"path": "data/people.csv"},
    "file": {"path": "data/people.parquet", "format": "parquet"},
    "s3": {"bucket": "my-bucket", "region": "us-east-1", "access_key_id": "AKIAEXAMPLE"},
    "google_sheets": {"spreadsheet_id": "1AbC"},
    "mixpanel": {"project_id": 123, "username": "sa.user"},
    "mcp": {"server_url": "https://mcp.example.com/mcp"},
}
PEM = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
CANARY = "canary-S3cr3t-7f1e"


def errors_of(func, *args, **kwargs) -> dict[str, list[str]]:
    with pytest.raises(ConfigInvalid) as info:
        func(*args, **kwargs)
    return info.value.errors


def required_secrets(source_type, connection) -> set[str]:
    return {s.name for s in source_type.secrets
            if s.required or (s.required_when and s.required_when.holds(connection))}


def pg(**connection):
    return normalize_connection(get_type("postgresql"), {**DB, **connection})


# --- the catalogue itself ---------------------------------------------------------------------


def test_catalogue_has_every_product_type_in_order():
    assert list(CATALOGUE) == EXPECTED_KEYS
    assert [key for key, _ in TYPE_CHOICES] == EXPECTED_KEYS
    assert set(MINIMAL) == set(EXPECTED_KEYS)
    assert catalogue.TYPE_CHOICES[0] == ("postgresql", "PostgreSQL")


def test_get_type_raises_key_error_for_unknown_type():
    assert get_type("mysql").key == "mysql"
    with pytest.raises(KeyError):
        get_type("oracle")


@pytest.mark.parametrize("key", EXPECTED_KEYS)
def test_type_description_is_json_serializable(key):
    described = json.loads(json.dumps(get_type(key).as_dict()))
    assert described["key"] == key
    assert {"label", "family", "connector", "driver_extra", "file_based", "connection_fields",
            "secret_fields", "secret_rules"} <= set(described)
    for f in described["connection_fields"]:
        assert {"name", "kind", "label", "required", "required_when", "default", "choices", "min_value",
                "max_value", "max_length", "help", "fields"} <= set(f)


def test_connectors_and_families():
    for key in ("postgresql", "redshift", "cockroachdb", "supabase"):
        assert get_type(key).connector == "postgresql"
    for key in ("mysql", "mariadb", "singlestore"):
        assert get_type(key).connector == "mysql"
    assert get_type("csv").connector == get_type("file").connector == "file"
    assert {k for k, t in CATALOGUE.items() if t.file_based} == {"sqlite", "csv", "file"}
    assert get_type("sqlite").secrets == ()


def test_field_lookup_reaches_into_objects():
    source_type = get_type("postgresql")
    assert source_type.field("port").default == 5432
    assert source_type.field("ssh_tunnel.port").default == 22
    assert source_type.field("ssl.nope") is None and source_type.field("nope") is None
    assert source_type.secret_names() >= {"password", "ssl_client_key", "ssh_password", "ssh_private_key"}


def test_ssh_description_names_its_condition():
    ssh = get_type("postgresql").as_dict()["connection_fields"][-1]
    host = next(f for f in ssh["fields"] if f["name"] == "host")
    assert host["required_when"] == {"path": "ssh_tunnel.enabled", "in": [True], "not_in": [],
                                     "description": "ssh_tunnel.enabled is true"}


# --- normalize_connection ------------------------------------------------------------------------


@pytest.mark.parametrize("key", EXPECTED_KEYS)
def test_minimal_connection_is_valid_and_fully_configured(key):
    source_type = get_type(key)
    normalized = normalize_connection(source_type, MINIMAL[key])
    present = required_secrets(source_type, normalized)
    check_required_secrets(source_type, normalized, present)
    assert is_fully_configured(source_type, MINIMAL[key], present)
    # idempotent: a normalized connection normalizes to itself
    assert normalize_connection(source_type, normalized) == normalized


def test_defaults_are_applied():
    conn = pg()
    assert conn["port"] == 5432 and conn["schema"] == "public"
    assert conn["ssl"] == {"mode": "prefer"}
    assert conn["ssh_tunnel"] == {"enabled": False, "port": 22}
    assert normalize_connection(get_type("redshift"), DB)["port"] == 5439
    assert normalize_connection(get_type("cockroachdb"), DB)["port"] == 26257
    ch = normalize_connection(get_type("clickhouse"), MINIMAL["clickhouse"])
    assert (ch["port"], ch["database"], ch["username"], ch["secure"]) == (9440, "default", "default", True)
    assert normalize_connection(get_type("s3"), MINIMAL["s3"])["path_prefix"] == ""
    assert normalize_connection(get_type("sqlite"), MINIMAL["sqlite"])["read_only"] is True


def test_none_counts_as_absent_and_input_is_not_mutated():
    given = {**DB, "port": None, "ssl": None, "ssh_tunnel": {"port": None}}
    conn = normalize_connection(get_type("postgresql"), given)
    assert conn["port"] == 5432 and conn["ssl"]["mode"] == "prefer" and conn["ssh_tunnel"]["port"] == 22
    assert given == {**DB, "port": None, "ssl": None, "ssh_tunnel": {"port": None}}


def test_non_dict_connection_is_rejected():
    assert errors_of(normalize_connection, get_type("postgresql"), ["host"]) == {
        "connection": ["Must be an object."]}


def test_unknown_keys_are_rejected_at_their_path():
    errors = errors_of(pg, hostname="x", ssh_tunnel={"hots": "bastion"}, ssl={"mode": "require", "key": PEM})
    paths = ("connection.hostname", "connection.ssh_tunnel.hots", "connection.ssl.key")
    assert errors == {path: ["Unknown field."] for path in paths}


@pytest.mark.parametrize("bad", [True, False, "5432", 5432.0])
def test_port_must_be_a_real_integer(bad):
    assert errors_of(pg, port=bad) == {"connection.port": ["Must be an integer."]}


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_port_out_of_range_is_rejected(port):
    assert list(errors_of(pg, port=port)) == ["connection.port"]
    assert pg(port=1)["port"] == 1 and pg(port=65535)["port"] == 65535


def test_kind_and_length_errors_are_all_reported_at_once():
    errors = errors_of(pg, host="", username=7, database="d" * 256, schema=None,
                       ssl={"mode": "sometimes"}, ssh_tunnel={"enabled": "yes"})
    assert errors == {
        "connection.host": ["This field may not be blank."],
        "connection.username": ["Must be a string."],
        "connection.database": ["Ensure this field has no more than 255 characters."],
        "connection.ssl.mode": ["Must be one of: disable, allow, prefer, require, verify-ca, verify-full."],
        "connection.ssh_tunnel.enabled": ["Must be a boolean."],
    }


def test_missing_required_fields():
    errors = errors_of(normalize_connection, get_type("postgresql"), {})
    names = ("host", "database", "username")
    assert errors == {f"connection.{n}": ["This field is required."] for n in names}


def test_null_characters_and_non_pem_certificates_are_rejected():
    errors = errors_of(pg, host="db\x00", ssl={"ca_certificate": "not a certificate"})
    assert set(errors) == {"connection.host", "connection.ssl.ca_certificate"}


def test_ssh_fields_are_required_only_when_tunnel_enabled():
    assert pg(ssh_tunnel={"enabled": False})["ssh_tunnel"]["enabled"] is False
    errors = errors_of(pg, ssh_tunnel={"enabled": True, "username": " "})
    assert errors == {
        "connection.ssh_tunnel.host": ["This field is required when ssh_tunnel.enabled is true."],
        "connection.ssh_tunnel.username": ["This field is required when ssh_tunnel.enabled is true."],
    }
    conn = pg(ssh_tunnel={"enabled": True, "host": "bastion", "username": "jump",
                          "host_key_fingerprint": "SHA256:abc"})
    assert conn["ssh_tunnel"]["port"] == 22


def test_ssh_secrets_need_a_password_or_a_private_key_when_enabled():
    source_type = get_type("postgresql")
    off = pg()
    check_required_secrets(source_type, off, set())
    on = pg(ssh_tunnel={"enabled": True, "host": "bastion", "username": "jump"})
    errors = errors_of(check_required_secrets, source_type, on, {"password"})
    message = "One of ssh_password, ssh_private_key is required when ssh_tunnel.enabled is true."
    assert errors == {"credentials.ssh_password": [message], "credentials.ssh_private_key": [message]}
    check_required_secrets(source_type, on, {"ssh_private_key"})
    check_required_secrets(source_type, on, {"ssh_password"})
    assert not is_fully_configured(source_type, on, set())


def test_ssl_client_key_required_with_client_certificate():
    source_type = get_type("mysql")
    conn = normalize_connection(source_type, {**MINIMAL["mysql"], "ssl": {"client_certificate": PEM}})
    assert errors_of(check_required_secrets, source_type, conn, set()) == {
        "credentials.ssl_client_key": ["This field is required when ssl.client_certificate is set."]}
    check_required_secrets(source_type, conn, {"ssl_client_key"})


def test_password_required_for_managed_postgres_but_optional_for_postgresql():
    check_required_secrets(get_type("postgresql"), pg(), set())
    redshift = get_type("redshift")
    assert errors_of(check_required_secrets, redshift, normalize_connection(redshift, DB), set()) == {
        "credentials.password": ["This field is required."]}


@pytest.mark.parametrize("key", ["elasticsearch", "opensearch"])
def test_search_cloud_id_vs_server_url(key):
    source_type = get_type(key)
    cloud = errors_of(normalize_connection, source_type, {"server_type": "elastic-cloud", "username": "u"})
    assert cloud == {"connection.cloud_id": ["This field is required when server_type is one of "
                                             "elastic-cloud, open-cloud."]}
    own = errors_of(normalize_connection, source_type, {"server_type": "self-managed", "username": "u"})
    assert own == {"connection.server_url": ["This field is required when server_type is self-managed."]}
    unknown_kind = {"server_type": "on-prem", "username": "u"}
    assert list(errors_of(normalize_connection, source_type, unknown_kind)) == ["connection.server_type"]
    bad_url = {"server_type": "self-managed", "server_url": "es:9200", "username": "u"}
    assert list(errors_of(normalize_connection, source_type, bad_url)) == ["connection.server_url"]


def test_disable_auth_only_valid_when_self_managed():
    es = get_type("elasticsearch")
    cloud = {"server_type": "elastic-cloud", "cloud_id": "dep:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbzo0NDMkYWJjMTIzJGRlZjQ1Ng==",
             "disable_auth": True}
    assert errors_of(normalize_connection, es, cloud) == {
        "connection.disable_auth": ["Only valid when server_type is self-managed."]}
    conn = normalize_connection(es, {"server_type": "self-managed", "server_url": "http://es:9200",
                                     "disable_auth": True})
    check_required_secrets(es, conn, set())  # no username, no password needed
    with_auth = normalize_connection(es, MINIMAL["elasticsearch"])
    assert with_auth["disable_auth"] is False
    assert errors_of(check_required_secrets, es, with_auth, set()) == {
        "credentials.password": ["This field is required when disable_auth is not true."]}
    assert list(errors_of(normalize_connection, es, {"server_type": "self-managed",
                                                     "server_url": "http://es"})) == ["connection.username"]


def test_snowflake_password_vs_key_pair():
    sf = get_type("snowflake")
    by_password = normalize_connection(sf, MINIMAL["snowflake"])
    assert by_password["auth_method"] == "password"
    assert list(errors_of(check_required_secrets, sf, by_password, set())) == ["credentials.password"]
    check_required_secrets(sf, by_password, {"password"})
    by_key = normalize_connection(sf, {**MINIMAL["snowflake"], "auth_method": "key_pair"})
    assert errors_of(check_required_secrets, sf, by_key, {"password"}) == {
        "credentials.private_key": ["This field is required when auth_method is key_pair."]}
    check_required_secrets(sf, by_key, {"private_key"})


def test_type_specific_rules():
    assert list(errors_of(normalize_connection, get_type("csv"), {"path": "a", "format": "parquet"})) == [
        "connection.format"]
    assert list(errors_of(normalize_connection, get_type("csv"), {"path": "a", "delimiter": ";;"})) == [
        "connection.delimiter"]
    s3 = {**MINIMAL["s3"], "endpoint_url": ""}
    assert list(errors_of(normalize_connection, get_type("s3"), s3)) == ["connection.endpoint_url"]
    athena = {**MINIMAL["athena"], "s3_output_location": "https://bucket"}
    assert list(errors_of(normalize_connection, get_type("athena"), athena)) == [
        "connection.s3_output_location"]
    mixpanel = {**MINIMAL["mixpanel"], "project_id": True}
    assert list(errors_of(normalize_connection, get_type("mixpanel"), mixpanel)) == ["connection.project_id"]


# --- secrets --------------------------------------------------------------------------------------


def test_secret_values_are_checked_without_echoing_them():
    cases = {
        "snowflake": {"password": 12345, "private_key": CANARY, "unknown_" + "x": CANARY},
        "bigquery": {"service_account_json": CANARY},
        "google_sheets": {"service_account_json": json.dumps([CANARY])},
        "postgresql": {"password": " ", "ssh_private_key": CANARY + "x" * 100_000},
    }
    for key, values in cases.items():
        with pytest.raises(ConfigInvalid) as info:
            validate_secret_values(get_type(key), values)
        assert set(info.value.errors) == {f"credentials.{name}" for name in values}
        assert CANARY not in json.dumps(info.value.errors) and CANARY not in str(info.value)
        assert CANARY not in repr(info.value)
    deeply_nested = {"service_account_json": "[" * 50_000 + CANARY}
    assert errors_of(validate_secret_values, get_type("bigquery"), deeply_nested) == {
        "credentials.service_account_json": ["Must be a valid JSON document."]}
    assert errors_of(validate_secret_values, get_type("snowflake"), {"token": CANARY}) == {
        "credentials.token": ["Unknown field."]}


def test_valid_secret_values_and_clearing_pass():
    validate_secret_values(get_type("snowflake"), {"password": CANARY, "private_key": PEM,
                                                   "private_key_passphrase": None})
    validate_secret_values(get_type("bigquery"), {"service_account_json": json.dumps({"type": "x"})})
    validate_secret_values(get_type("postgresql"), {})


def test_enum_errors_do_not_echo_values():
    errors = errors_of(pg, ssl={"mode": CANARY})
    assert CANARY not in json.dumps(errors)


# --- OpenAPI export --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", EXPECTED_KEYS)
def test_connection_schema_accepts_normalized_connections(key):
    source_type = get_type(key)
    schema = connection_openapi_schema(source_type)
    jsonschema.Draft4Validator.check_schema(schema)
    normalized = normalize_connection(source_type, MINIMAL[key])
    jsonschema.Draft4Validator(schema).validate(normalized)
    OAS30Validator(schema).validate(normalized)
    assert json.dumps(schema) and "nullable" not in json.dumps(schema)
    with pytest.raises(jsonschema.ValidationError):
        OAS30Validator(schema).validate({**normalized, "unexpected": 1})
    required = schema.get("required", [])
    assert set(required) == {f.name for f in source_type.fields if f.required and f.default is None}


def test_partial_schema_allows_nulls_and_omissions():
    source_type = get_type("postgresql")
    partial = connection_openapi_schema(source_type, partial=True)
    assert "required" not in partial
    validator = OAS30Validator(partial)
    validator.validate({"port": None, "ssl": {"mode": None}, "ssh_tunnel": {"enabled": True}})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"host": None})  # required fields cannot be cleared
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"port": 70000})


def test_credentials_schema_is_write_only():
    schema = credentials_openapi_schema(get_type("snowflake"))
    assert set(schema["properties"]) == {"password", "private_key", "private_key_passphrase"}
    assert all(p["writeOnly"] and p["nullable"] for p in schema["properties"].values())
    OAS30WriteValidator(schema).validate({"password": "x", "private_key": None})


def test_all_schemas_form_a_valid_openapi_document():
    schemas = {}
    for key, source_type in CATALOGUE.items():
        schemas[f"{key}_connection"] = connection_openapi_schema(source_type)
        schemas[f"{key}_connection_patch"] = connection_openapi_schema(source_type, partial=True)
        schemas[f"{key}_credentials"] = credentials_openapi_schema(source_type)
    validate_openapi_spec({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {},
                           "components": {"schemas": schemas}})


def test_the_catalogue_says_per_type_whether_this_install_can_test_it(api):
    import importlib.metadata

    body = api.get("/api/v1/data-source-types/").json()
    status = {entry["key"]: entry["connector_status"] for entry in body}
    assert set(status) == set(catalogue.CATALOGUE)
    postgres = status["postgresql"]
    assert postgres["available"] is True and postgres["verified_with"] == "real server"
    assert postgres["driver"] == "psycopg" and postgres["driver_version"] == importlib.metadata.version("psycopg")
    assert "auth" in postgres["stages"] and postgres["install"] is None
    assert all(set(entry) == set(postgres) for entry in status.values())
    one = api.get("/api/v1/data-source-types/sqlite/").json()["connector_status"]
    assert one["available"] is True and one["driver"] == "python (standard library)" and one["driver_version"] is None


def test_a_missing_driver_shows_in_the_catalogue_with_what_to_install(api, monkeypatch):
    from datasources.connectors import registry

    monkeypatch.setattr(registry, "_installed", lambda module: module != "pymysql")
    status = api.get("/api/v1/data-source-types/mariadb/").json()["connector_status"]
    assert status["available"] is False and status["driver"] == "PyMySQL" and status["driver_version"] is None
    assert status["install"] == "pip install PyMySQL"


def test_the_readme_connector_table_covers_every_type_as_the_registry_says():
    from pathlib import Path

    from datasources.connectors.registry import DRIVERS

    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    section = readme[readme.index("| type | driver | tested against | stages |"):]
    lines = section.splitlines()[2:]
    rows = lines[: next(i for i, line in enumerate(lines) if not line.startswith("|"))]
    cells = {}
    for row in rows:
        types, driver, tested, stages = (c.strip() for c in row.strip("|").split("|"))
        for key in types.split(", "):
            cells[key] = (driver.lower(), tested, stages)
    assert set(cells) == set(catalogue.CATALOGUE)
    for key, driver in DRIVERS.items():
        text, tested, stages = cells[key]
        assert (driver.package or "sqlite3").lower().split("-")[0] in text, key
        assert tested.startswith(driver.verified_with), key
        assert stages.split(", ") == list(driver.stages), key


def test_every_type_has_its_own_catalogue_page(api):
    """Each key of the list answers on its own path (s3's digit made it a 404)."""
    keys = [entry["key"] for entry in api.get("/api/v1/data-source-types/").json()]
    assert "s3" in keys
    for key in keys:
        response = api.get(f"/api/v1/data-source-types/{key}/")
        assert response.status_code == 200 and response.json()["key"] == key, key
