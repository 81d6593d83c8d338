"""The seed-adapter engine (core.compat): every adapter's table round-trips seed -> native -> seed,
native errors come out in each seed's shape with the seed's field names, and a field the table does
not name is refused as the seed would."""

from __future__ import annotations

import pytest

from core.compat import CompatView, Failure, Field, SeedInvalidRequest, Table, When, error_names, seed_path
from core.errors import InvalidRequest
from datasources.compat import camelai, databrain, maiascore, rivergen
from datasources.compat.databrain_types import SPECS
from workflows.compat import redivis

PEM = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"


# --- round trips -------------------------------------------------------------------------------------


def test_camelai_round_trip():
    seed = {"account_name": "Sales", "type": "POSTGRES"}
    native = camelai.TABLE.to_native(seed)
    assert native == {"name": "Sales", "type": "postgresql"}
    assert camelai.TABLE.to_seed(native) == seed


def test_maiascore_round_trip_text_ports_ssl_flag_and_write_only_secrets():
    seed = {
        "driver": "postgres", "host": "db.example.com", "port": "5432", "database": "app", "username": "u",
        "ssl": True, "certificate": "cert", "sslCA": "ca", "ssh": True, "sshTunneling": True,
        "sshHost": "bastion", "sshPort": "22", "sshUsername": "tunnel",
    }
    secrets = {"password": "pw", "keyfile": PEM, "sshPassword": "spw", "sshIdentity": PEM}
    native = maiascore.TABLE.to_native({**seed, **secrets})
    assert native["type"] == "postgresql"
    assert native["connection"]["port"] == 5432 and native["connection"]["ssh_tunnel"]["port"] == 22
    assert native["connection"]["ssl"]["mode"] == "require"
    assert native["credentials"] == {"password": "pw", "ssl_client_key": PEM, "ssh_password": "spw",
                                     "ssh_private_key": PEM}
    assert maiascore.TABLE.to_seed(native) == seed  # secrets are never read back


def test_maiascore_put_replaces_the_connection_and_null_clears_a_secret():
    native = maiascore.TABLE.to_native({"host": "h", "username": "u", "password": None, "ssl": False})
    connection = native["connection"]
    assert connection["host"] == "h" and connection["ssl"]["mode"] == "disable"
    assert connection["port"] is None and connection["ssh_tunnel"] == {  # omitted: back to the default
        "enabled": None, "host": None, "port": None, "username": None}
    assert native["credentials"] == {"password": None}  # sent as null: cleared; omitted ones are kept
    assert "type" not in native  # the driver is not part of the replaced connection


def test_maiascore_ssh_alias_must_agree():
    assert maiascore.TABLE.to_native({"ssh": True})["connection"]["ssh_tunnel"]["enabled"] is True
    with pytest.raises(SeedInvalidRequest) as caught:
        maiascore.TABLE.to_native({"ssh": True, "sshTunneling": False})
    assert caught.value.errors == {"sshTunneling": ["Must equal ssh."]}


def test_rivergen_round_trip_and_merge():
    seed = {
        "name": "warehouse", "description": "", "host": "db", "port": 5432, "database_name": "app",
        "schema_name": "public", "file_path": None, "use_ssh_tunnel": True, "ssh_host": "b", "ssh_port": 22,
        "ssh_username": "t", "ssh_local_port": 6000, "connection_pool_size": 5, "connection_timeout": 10,
        "query_timeout": 30,
        "max_retries": 3, "schema_auto_refresh": True, "schema_refresh_interval": 3600, "metadata": {"a": 1},
        "tags": ["x"],
    }
    native = rivergen.TABLE.to_native({**seed, "connection_string": "postgresql://u@h/d"})
    assert native["connection"]["database"] == "app" and native["connection_string"] == "postgresql://u@h/d"
    assert native["connection"]["ssh_tunnel"]["local_port"] == 6000  # stored (advisory)
    assert rivergen.TABLE.to_seed(native) == seed  # the connection string is never read back
    assert rivergen.TABLE.to_native({"port": 1}) == {"connection": {"port": 1}}  # a merge: nothing else


def test_rivergen_credentials_round_trip():
    native = rivergen.CREDENTIALS_TABLE.to_native({"username": "u", "password": "p", "token": None})
    assert native == {"connection": {"username": "u"}, "credentials": {"password": "p", "token": None}}
    assert rivergen.CREDENTIALS_TABLE.to_seed(native) == {"username": "u"}


@pytest.mark.parametrize("type_name", sorted(SPECS))
def test_databrain_round_trip_for_every_type(type_name):
    table = SPECS[type_name]
    seed = {}
    for f in table:
        if "|" in f.kind:
            seed[f.name] = f.kind.split("|")[0]
        elif f.kind == "integer":
            seed[f.name] = 5432
        elif f.kind == "boolean":
            seed[f.name] = True
        elif f.name == "host" and type_name == "snowflake":
            seed[f.name] = "acme.snowflakecomputing.com"
        else:
            seed[f.name] = f"{f.name}-value"
    native = table.to_native(seed)
    public = {f.name: seed[f.name] for f in table if not f.target.startswith("credentials.")}
    assert table.to_seed(native) == public
    secrets = {f.target.split(".", 1)[1]: seed[f.name] for f in table if f.target.startswith("credentials.")}
    assert native.get("credentials", {}) == secrets


def test_databrain_tenancy_round_trip():
    seed = {"tenancyLevel": "TABLE", "clientColumnType": "NUMBER", "schemaName": "public", "tableName": "t",
            "clientColumn": "client_id", "primaryKeyColumn": "id"}
    native = databrain.TENANCY.to_native(seed)
    assert native == {"tenancy_settings": {"level": "TABLE", "client_column_type": "NUMBER", "schema": "public",
                                           "table": "t", "client_column": "client_id", "primary_key_column": "id"}}
    assert databrain.TENANCY.to_seed(native) == seed


def test_redivis_round_trip():
    seed = {"sourceDataset": "org.sales:v2", "sourceWorkflow": None, "mappedTables": {"a": "b"}}
    native = redivis.TABLE.to_native(seed)
    # null is a field not given (generated SDKs send it for the fields they leave unset)
    assert native == {"source_data_source": "org.sales:v2", "mapped_tables": {"a": "b"}}
    assert redivis.TABLE.to_seed(native) == seed


# --- refusals ----------------------------------------------------------------------------------------


def test_a_field_missing_from_the_table_is_refused_by_its_seed_name():
    with pytest.raises(SeedInvalidRequest) as caught:
        SPECS["postgres"].to_native({"host": "h", "port": 5432, "username": "u", "password": "p", "database": "d",
                                     "schema": "s", "hostname": "typo"})
    assert caught.value.errors == {"credentials.hostname": ["Unknown field."]}
    assert caught.value.message == "Missing required fields or invalid credential structure."
    with pytest.raises(SeedInvalidRequest) as caught:
        rivergen.TABLE.to_native({"database": "app"})  # the native name is not the seed's
    assert caught.value.errors == {"database": ["Unknown field."]}


def test_required_and_required_when_and_codec_refusals_name_the_seed_fields():
    with pytest.raises(SeedInvalidRequest) as caught:
        SPECS["postgres"].to_native({"host": "h", "port": 5432, "username": "u", "password": None,
                                     "database": "d", "schema": "s", "sshTunnel": "enable", "enableSsl": "yes"})
    assert caught.value.errors == {
        "credentials.password": ["This field is required."],
        "credentials.enableSsl": ["Must be a boolean."],
        "credentials.sshHost": ['This field is required when sshTunnel is "enable".'],
        "credentials.sshPort": ['This field is required when sshTunnel is "enable".'],
        "credentials.sshUsername": ['This field is required when sshTunnel is "enable".'],
        "credentials.sshPrivateKey": ['This field is required when sshTunnel is "enable".'],
    }
    with pytest.raises(SeedInvalidRequest) as caught:
        SPECS["postgres"].to_native({"sshTunnel": "maybe"})
    assert caught.value.errors["credentials.sshTunnel"] == ["Must be one of: enable, disable."]


def test_when_conditions():
    assert When("a", (1,)).holds({"a": 1}) and not When("a", (1,), negate=True).holds({"a": 1})
    assert When("disableAuth", (True,), negate=True).describe() == "disableAuth is not true"


# --- errors ------------------------------------------------------------------------------------------


FAILURE = Failure(status=400, code="CREDENTIAL_TEST_FAILED", message="The connection test failed.",
                  errors={"host": ["Unreachable."]}, extra={"stage": "connect"})


def test_error_shapes_per_seed():
    assert camelai.ERRORS.render(FAILURE) == (400, {"detail": "The connection test failed.",
                                                    "host": ["Unreachable."]})
    assert databrain.ERRORS.render(FAILURE) == (400, {"error": {
        "code": "CREDENTIAL_TEST_FAILED", "message": "The connection test failed.",
        "errors": {"host": ["Unreachable."]}, "stage": "connect"}})
    assert maiascore.ERRORS.render(FAILURE) == (400, {
        "code": 400, "message": "The connection test failed. (host: Unreachable.)",
        "errors": {"host": ["Unreachable."]}})
    assert rivergen.ERRORS.render(FAILURE) == (400, {
        "success": False, "data": None, "message": "The connection test failed.",
        "error": {"code": "BAD_REQUEST", "reason": "CREDENTIAL_TEST_FAILED", "details": {"host": ["Unreachable."]},
                  "stage": "connect"}})
    assert redivis.ERRORS.render(FAILURE) == (400, {"error": {
        "code": 400, "status": "CREDENTIAL_TEST_FAILED", "message": "The connection test failed.",
        "errors": {"host": ["Unreachable."]}, "stage": "connect"}})


def test_error_code_and_status_maps():
    bare = Failure(status=401, code="AUTHENTICATION_ERROR", message="No token.")
    assert maiascore.ERRORS.render(bare) == (403, {"code": 403, "message": "No token."})  # as the seed documents
    assert databrain.ERRORS.render(bare) == (401, {"error": {"code": "AUTHENTICATION_ERROR", "message": "No token."}})
    assert rivergen.ERRORS.render(bare)[1]["error"] == {"code": "UNAUTHORIZED", "reason": "AUTHENTICATION_ERROR",
                                                        "details": {}}
    tenancy = Failure(status=400, code="TENANCY_SETTINGS_INVALID", message="Bad.")
    assert databrain.ERRORS.render(tenancy)[1]["error"]["code"] == "TENANCY_SETTINGS_CREATE_FAILED"
    updated = databrain.ERRORS.with_codes(TENANCY_SETTINGS_INVALID="TENANCY_SETTINGS_UPDATE_FAILED")
    assert updated.render(tenancy)[1]["error"]["code"] == "TENANCY_SETTINGS_UPDATE_FAILED"
    missing = Failure(status=404, code="NOT_FOUND", message="Gone.")
    assert databrain.ERRORS.render(missing)[1]["error"]["code"] == "DATASOURCE_NOT_FOUND"


def test_native_error_paths_take_the_seed_names():
    names = error_names([maiascore.TABLE])
    assert seed_path("connection.ssh_tunnel.port", names) == "sshPort"
    assert seed_path("type", names) == "driver"
    assert seed_path("credentials.ssl_client_key", names) == "keyfile"
    names = error_names([databrain.TENANCY, SPECS["postgres"]])
    assert seed_path("connection.host", names) == "credentials.host"
    assert seed_path("tenancy_settings.schema", names) == "tenancySettings.schemaName"
    assert seed_path("tenancy_settings", names) == "tenancySettings"
    assert seed_path("credentials.token", error_names([rivergen.CREDENTIALS_TABLE])) == "token"
    assert seed_path("source_workflow", error_names([redivis.TABLE])) == "sourceWorkflow"


def test_the_view_renders_native_errors_with_the_seed_names_and_drops_the_challenge_off_401():
    class View(CompatView):
        tables = (Table((Field("accountName", "name"),)),)
        errors = maiascore.ERRORS

    view = View()
    response = view.handle_error(InvalidRequest("Invalid.", errors={"name": ["Too long."]}), {})
    assert response.status_code == 400
    assert response.data == {"code": 400, "message": "Invalid. (accountName: Too long.)",
                             "errors": {"accountName": ["Too long."]}}
    from rest_framework.exceptions import NotAuthenticated

    exc = NotAuthenticated()
    exc.auth_header = 'Bearer realm="api"'
    response = view.handle_error(exc, {})
    assert response.status_code == 403 and "WWW-Authenticate" not in response
    # an adapter's own refusal already carries the seed's names: never renamed again
    response = view.handle_error(SeedInvalidRequest("Bad.", errors={"name": ["x"]}), {})
    assert response.data["errors"] == {"name": ["x"]}


# --- the tables and the documented request shapes agree ----------------------------------------------


@pytest.mark.parametrize(("table", "serializer"), [
    (camelai.TABLE, camelai.CamelaiSourcePartialUpdateSerializer),
    (maiascore.TABLE, maiascore.MaiascoreDatasourceUpdateSerializer),
    (rivergen.TABLE, rivergen.RivergenDataSourceUpdateSerializer),
    (rivergen.CREDENTIALS_TABLE, rivergen.RivergenCredentialsUpdateSerializer),
    (databrain.TENANCY, databrain.DatabrainTenancySettingsSerializer),
    (redivis.TABLE, redivis.RedivisDataSourcePatchSerializer),
])
def test_every_documented_request_field_is_in_the_table(table, serializer):
    documented = set(serializer().fields)
    named = {f.name for f in table} | set(table.ignored)
    assert documented <= named
