"""Every Databrain ``datasourceType`` updated through ``PUT /api/v2/datasource`` against the servers and
stand-ins of its connector tests (their fixtures and helpers imported): the PUT answers ``{"name"}``, the
new structure was tested and the schema re-cached; a wrong secret answers 400 ``CREDENTIAL_TEST_FAILED``
with the failing stage and changes nothing.

Where each type's two checks live (``PUT_TESTS`` below, checked by ``test_every_seed_type_has_its_put_tests``):

- in the connector modules, complete: bigquery, clickhouse, firebolt, snowflake (tests/connectors/test_<type>.py),
  athena (test_athena.py, whose data catalog tests also PUT ``datasourceId``); postgres in test_databrain.py;
- in the connector modules for the success, here for the wrong secret (which they do not check with
  both the code and the stage): mssql (no wrong secret there), databricks and awss3 (no stage), mongodb,
  elasticsearch, opensearch and trino (no code);
- here, complete: redshift and cockroachdb (the PostgreSQL cluster, as the connector family test),
  mysql and singlestore (MariaDB on 127.0.0.1:3306, as test_mysql.py), csv (a file under the file root;
  its structure is only ``name`` and it has no secret: nothing to change, nothing to test).
"""

from __future__ import annotations

import importlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import tests.connectors.test_databricks as databricks_tests
import tests.connectors.test_mongodb as mongodb_tests
import tests.connectors.test_mssql as mssql_tests
import tests.connectors.test_s3 as s3_tests
import tests.connectors.test_search as search_tests
import tests.connectors.test_trino as trino_tests
from datasources.compat.databrain_types import TYPES
from tests.compat.test_databrain import admin_sql, ensure_database
from tests.connectors.test_databricks import workspace  # noqa: F401 - fixtures
from tests.connectors.test_mssql import bundle  # noqa: F401
from tests.connectors.test_mysql import PASSWORD as MYSQL_PASSWORD
from tests.connectors.test_mysql import _admin as mysql_admin
from tests.connectors.test_mysql import account, mariadb  # noqa: F401
from tests.connectors.test_s3 import keys  # noqa: F401
from tests.connectors.test_search import kind  # noqa: F401
from tests.support.mongo_server import MongoServer
from tests.support.moto_server import moto_server, moto_session_server  # noqa: F401
from tests.support.search_server import SearchServer
from tests.support.state import stored_state
from tests.support.trino_server import TrinoServer

URL = "/api/v1/data-sources/"
DB = "/compat/databrain/api/v2/datasource"

#: datasourceType -> (module, its PUT success test, its wrong-secret test): one line per seed type
HERE = "tests.compat.test_databrain_types"
PUT_TESTS: dict[str, tuple[str, str, str]] = {
    "postgres": ("tests.compat.test_databrain", "test_curl_example_verbatim",
                 "test_credential_test_failed_changes_nothing"),
    "redshift": (HERE, "test_postgres_family_put", "test_postgres_family_put"),
    "cockroachdb": (HERE, "test_postgres_family_put", "test_postgres_family_put"),
    "mysql": (HERE, "test_mysql_family_put", "test_mysql_family_put"),
    "singlestore": (HERE, "test_mysql_family_put", "test_mysql_family_put"),
    "mongodb": ("tests.connectors.test_mongodb", "test_databrain_put_tests_and_recaches",
                f"{HERE}::test_mongodb_wrong_password"),
    "clickhouse": ("tests.connectors.test_clickhouse", "test_databrain_put_tests_and_recaches",
                   "test_databrain_put_tests_and_recaches"),
    "bigquery": ("tests.connectors.test_bigquery", "test_databrain_put_tests_and_recaches_keeping_endpoint_url",
                 "test_databrain_put_tests_and_recaches_keeping_endpoint_url"),
    "databricks": ("tests.connectors.test_databricks", "test_databrain_put_keeps_endpoint_url_and_recaches",
                   f"{HERE}::test_databricks_wrong_token"),
    "elasticsearch": ("tests.connectors.test_search", "test_databrain_put_tests_and_recaches",
                      f"{HERE}::test_search_wrong_password"),
    "opensearch": ("tests.connectors.test_search", "test_databrain_put_tests_and_recaches",
                   f"{HERE}::test_search_wrong_password"),
    "mssql": ("tests.connectors.test_mssql", "test_databrain_put_tests_and_recaches",
              f"{HERE}::test_mssql_wrong_password"),
    "awss3": ("tests.connectors.test_s3", "test_databrain_put_keeps_endpoint_url_and_recaches",
              f"{HERE}::test_awss3_wrong_secret"),
    "csv": (HERE, "test_csv_put_names_the_source_and_changes_nothing",
            "test_csv_put_names_the_source_and_changes_nothing"),
    "firebolt": ("tests.connectors.test_firebolt", "test_databrain_put_tests_and_recaches_keeping_endpoint_url",
                 "test_databrain_put_tests_and_recaches_keeping_endpoint_url"),
    "athena": ("tests.connectors.test_athena", "test_databrain_put_keeps_endpoint_url_and_recaches",
               "test_databrain_put_keeps_endpoint_url_and_recaches"),
    "trino": ("tests.connectors.test_trino", "test_databrain_put_tests_and_recaches",
              f"{HERE}::test_trino_wrong_password"),
    "snowflake": ("tests.connectors.test_snowflake", "test_databrain_put_keeps_endpoint_url_tests_and_recaches",
                  "test_databrain_put_keeps_endpoint_url_tests_and_recaches"),
}


def test_every_seed_type_has_its_put_tests():
    assert sorted(PUT_TESTS) == sorted(TYPES)
    for type_name, (module, success, wrong) in PUT_TESTS.items():
        for where in (success, wrong):
            path, _, name = where.rpartition("::")
            assert callable(getattr(importlib.import_module(path or module), name, None)), (type_name, where)


# --- what every PUT here checks -------------------------------------------------------------------


def create(api: Any, body: dict[str, Any]) -> int:
    """A source made through the native API (tested, schema cached)."""
    response = api.post(URL, {"connection_timeout": 3, **body}, format="json")
    assert response.status_code == 201, response.json()
    return int(response.json()["id"])


def put_recaches(api: Any, pk: int, body: dict[str, Any], tables: set[str]) -> dict[str, Any]:
    """The PUT answers the name; the new structure was tested and the schema re-cached (a new version
    holding ``tables``). Returns the source's native representation."""
    version = api.get(f"{URL}{pk}/").json()["schema"]["version"] or 0
    response = api.put(DB, body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": body["credentials"]["name"]}
    core = api.get(f"{URL}{pk}/").json()
    assert core["last_test"]["ok"] and core["schema"]["status"] == "ready", core
    assert core["schema"]["version"] > version
    assert {t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]} == tables
    return dict(core)


def put_refused(api: Any, pk: int, body: dict[str, Any], stage: str, secret: str) -> dict[str, Any]:
    """The PUT answers 400 CREDENTIAL_TEST_FAILED at ``stage``, without the secret, and changes nothing."""
    before = stored_state(pk)
    response = api.put(DB, body, format="json")
    answer = response.json()
    assert response.status_code == 400, answer
    assert list(answer) == ["error"] and answer["error"]["code"] == "CREDENTIAL_TEST_FAILED", answer
    assert answer["error"]["stage"] == stage and answer["error"]["message"], answer
    assert secret not in response.content.decode()
    assert stored_state(pk) == before
    return dict(answer["error"])


def with_credentials(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**body, "credentials": {**body["credentials"], **changes}}


# --- redshift and cockroachdb: the PostgreSQL cluster (PostgreSQL wire protocol) ----------------------


@pytest.fixture
def warehouse_db(pg_password_server) -> str:
    """A database with schema "sales" holding one table, on the password-auth cluster."""
    ensure_database(pg_password_server, "dbrain_warehouse")
    admin_sql(pg_password_server, ["CREATE SCHEMA IF NOT EXISTS sales",
                                   "CREATE TABLE IF NOT EXISTS sales.invoices (id integer, total numeric)"],
              dbname="dbrain_warehouse")
    return "dbrain_warehouse"


@pytest.mark.parametrize("type_name", ["redshift", "cockroachdb"])
def test_postgres_family_put(api, allow_loopback, pg_source_data, pg_password_server, warehouse_db, type_name):
    c = pg_password_server
    pk = create(api, {**pg_source_data, "name": "warehouse", "type": TYPES[type_name]})
    body = {"datasourceType": type_name, "credentials": {
        "name": "warehouse", "host": c.host, "port": c.port, "username": c.user, "password": c.password,
        "database": warehouse_db, "schema": "sales", "enableSsl": False}}
    core = put_recaches(api, pk, body, {"invoices"})
    assert (core["type"], core["connection"]["database"], core["connection"]["schema"]) == (
        TYPES[type_name], warehouse_db, "sales")
    assert core["connection"]["ssl"]["mode"] == "disable"
    put_refused(api, pk, with_credentials(body, password="wrong-pass-456", schema="public"), "auth",
                "wrong-pass-456")


# --- mysql and singlestore: MariaDB on 127.0.0.1:3306 (test_mysql.py's account) -----------------------


@pytest.fixture(scope="module")
def second_database(account) -> Iterator[str]:  # noqa: F811
    """A second database of test_mysql's account user, holding one table."""
    name = f"{account['db']}_b"
    with mysql_admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        try:
            cur.execute(f"CREATE TABLE `{name}`.invoices (id INT PRIMARY KEY, total DECIMAL(10,2))")
            for host in ("%", "127.0.0.1", "localhost"):
                cur.execute(f"GRANT ALL ON `{name}`.* TO '{account['user']}'@'{host}'")
            yield name
        finally:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.mark.parametrize("type_name", ["mysql", "singlestore"])
def test_mysql_family_put(api, allow_loopback, account, second_database, type_name):  # noqa: F811
    host, port = "127.0.0.1", 3306
    pk = create(api, {"name": "shop", "type": TYPES[type_name], "credentials": {"password": MYSQL_PASSWORD},
                      "connection": {"host": host, "port": port, "database": account["db"],
                                     "username": account["user"]}})
    assert "orders" in {t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]}
    body = {"datasourceType": type_name, "credentials": {
        "name": "shop", "host": host, "port": port, "username": account["user"], "password": MYSQL_PASSWORD,
        "database": second_database}}
    core = put_recaches(api, pk, body, {"invoices"})
    assert core["connection"]["database"] == second_database and core["connection"]["ssl"]["mode"] == "prefer"
    put_refused(api, pk, with_credentials(body, password="wrong-pass-456", database=account["db"]), "auth",
                "wrong-pass-456")


# --- csv: the structure is the name only ------------------------------------------------------------


def test_csv_put_names_the_source_and_changes_nothing(api, _file_root):
    """Databrain's CSV structure is ``name`` alone and a CSV source has no secret: the PUT finds the source
    and answers its name; there is nothing to replace or test, so nothing changes (a schema refresh is
    ``POST /api/v1/data-sources/{id}/sync/``). Any other key is refused as the structure's."""
    with open(f"{_file_root}/people.csv", "w") as f:
        f.write("id,name\n1,Ann\n")
    pk = create(api, {"name": "people", "type": "csv", "connection": {"path": "people.csv"}})
    before = stored_state(pk)
    response = api.put(DB, {"datasourceType": "csv", "credentials": {"name": "people"}}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": "people"}
    assert stored_state(pk) == before
    other = api.put(DB, {"datasourceType": "csv", "credentials": {"name": "people", "path": "other.csv"}},
                    format="json")
    assert other.status_code == 400 and other.json()["error"]["code"] == "INVALID_REQUEST_BODY", other.json()
    assert list(other.json()["error"]["errors"]) == ["credentials.path"]
    assert stored_state(pk) == before


# --- wrong secrets where the connector module's PUT test checks less ----------------------------------


@pytest.fixture
def system_ca(bundle, tmp_path, monkeypatch) -> None:  # noqa: F811
    """The stand-ins' CA trusted as a system CA: Databrain's structures have no CA field (the PUT returns
    ``ca_certificate`` to its default), as the connector modules' PUT tests do."""
    path = tmp_path / "system-ca.pem"
    path.write_text(bundle.ca.cert_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(path))


def wake_accept_thread(standin: Any) -> None:
    """The TDS and MongoDB stand-ins close their listener without ``shutdown()``: their accept thread
    stays blocked in accept(2) on the closed descriptor, and once a signal restarts that call it accepts
    on whatever socket reuses the number -- here moto's server's listener (started later in this
    module), whose requests then go unanswered. Shutting the listener down first ends the thread."""
    try:
        standin._listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


@pytest.fixture
def mssql_server(bundle, allow_loopback) -> Iterator[Any]:  # noqa: F811
    with mssql_tests.standin(bundle) as running:
        try:
            yield running
        finally:
            wake_accept_thread(running)


@pytest.fixture
def tls_server(bundle) -> Iterator[Any]:  # noqa: F811
    """test_mongodb.py's ``tls_server``, its accept thread woken at the end."""
    with MongoServer(mongodb_tests.databases(), users={"analyst": mongodb_tests.CANARY}, tls=bundle.server) as s:
        try:
            yield s
        finally:
            wake_accept_thread(s)


def test_mssql_wrong_password(api, mssql_server, bundle, system_ca):  # noqa: F811
    s = mssql_server
    pk = create(api, {"name": "sqlserver", "type": "mssql", "credentials": {"password": mssql_tests.CANARY},
                      "connection": {"host": s.host, "port": s.port, "database": mssql_tests.DATABASE,
                                     "username": mssql_tests.USER, "ca_certificate": bundle.ca.cert_pem}})
    body = {"datasourceType": "mssql", "credentials": {
        "name": "sqlserver", "server": s.host, "port": s.port, "user": mssql_tests.USER,
        "password": "wrong-password-123", "database": mssql_tests.DATABASE}}
    error = put_refused(api, pk, body, "auth", "wrong-password-123")
    assert f"Login failed for user '{mssql_tests.USER}'" in error["message"]
    put_refused(api, pk, with_credentials(body, password=mssql_tests.CANARY, database="nope"), "database",
                mssql_tests.CANARY)


def test_databricks_wrong_token(api, allow_loopback, workspace):  # noqa: F811
    pk = create(api, {"name": "lakehouse", "type": "databricks", "credentials": {"token": databricks_tests.CANARY},
                      "connection": databricks_tests.connection(workspace)})
    body = {"datasourceType": "databricks", "credentials": {
        "name": "lakehouse", "host": databricks_tests.HOST, "httpPath": databricks_tests.HTTP_PATH,
        "token": "dapi-wrong-token-000", "catalog": "main", "schema": "analytics"}}
    put_refused(api, pk, body, "auth", "dapi-wrong-token-000")


def test_awss3_wrong_secret(api, allow_loopback, moto_server, keys):  # noqa: F811
    pk = create(api, {"name": "lake-prod", "type": "s3", "credentials": {"secret_access_key": s3_tests.CANARY},
                      "connection": s3_tests.connection(moto_server, keys)})
    body = s3_tests.databrain_body(moto_server, keys, secretAccessKey="wrong-secret-access-key")
    error = put_refused(api, pk, body, "auth", "wrong-secret-access-key")
    assert "SignatureDoesNotMatch" in error["message"]


def test_mongodb_wrong_password(api, allow_loopback, tls_server, bundle):  # noqa: F811
    pk = create(api, {"name": "mongo-app", "type": "mongodb", "credentials": {"password": mongodb_tests.CANARY},
                      "connection": {"host": "127.0.0.1", "port": tls_server.port, "database": "shop",
                                     "username": "analyst", "tls": True, "ca_certificate": bundle.ca.cert_pem}})
    body = {"datasourceType": "mongodb", "credentials": {
        "name": "mongo-app", "host": "127.0.0.1", "port": tls_server.port, "username": "analyst",
        "password": "wrong-pass-1", "database": "crm"}}
    put_refused(api, pk, body, "auth", "wrong-pass-1")


def test_search_wrong_password(api, allow_loopback, kind):  # noqa: F811
    with SearchServer(search_tests.CLUSTER, product=kind, users=search_tests.USERS) as plain:
        pk = create(api, {"name": "search-cluster", "type": kind, "credentials": {"password": search_tests.CANARY},
                          "connection": {"server_type": "self-managed", "server_url": plain.url,
                                         "username": "analyst"}})
        body = {"datasourceType": kind, "credentials": {
            "name": "search-cluster", "server_type": "self-managed", "serverUrl": plain.url, "username": "analyst",
            "password": "wrong-pass-1", "disableAuth": False}}
        put_refused(api, pk, body, "auth", "wrong-pass-1")


def test_trino_wrong_password(api, allow_loopback, bundle, system_ca):  # noqa: F811
    with TrinoServer(trino_tests.CATALOGS, password=trino_tests.CANARY, tls=bundle.server) as server:
        pk = create(api, {"name": "trino-warehouse", "type": "trino", "credentials": {"password": trino_tests.CANARY},
                          "connection": {"host": "127.0.0.1", "port": server.port, "catalog": "hive",
                                         "schema": "sales", "username": "analyst", "http_scheme": "https",
                                         "ca_certificate": bundle.ca.cert_pem}})
        body = {"datasourceType": "trino", "credentials": {
            "name": "trino-warehouse", "host": "127.0.0.1", "port": server.port, "catalog": "hive",
            "schema": "marketing", "username": "analyst", "password": "wrong-pass-1"}}
        put_refused(api, pk, body, "auth", "wrong-pass-1")


# --- Athena's "Datasource ID" in the contract ----------------------------------------------------------


@pytest.mark.django_db
def test_openapi_states_the_athena_datasource_id(client):
    from tests.core.test_openapi import assert_valid

    doc = client.get("/api/schema/?format=json").json()
    credentials = doc["components"]["schemas"]["DatabrainAthenaUpdateRequest"]["properties"]["credentials"]
    assert "datasourceId" in credentials["properties"] and "datasourceId" not in credentials["required"]
    athena = {"datasourceType": "athena", "credentials": {
        "name": "n", "database": "d", "s3OutputLocation": "s3://b/q/", "accessKeyId": "AKIA", "region": "us-east-1",
        "secretAccessKey": "s"}}
    assert_valid(doc, "DatabrainAthenaUpdateRequest", athena)
    assert_valid(doc, "DatabrainAthenaUpdateRequest", {**athena, "credentials": {**athena["credentials"],
                                                                                "datasourceId": "partner"}})
    with pytest.raises(AssertionError):
        assert_valid(doc, "DatabrainAthenaUpdateRequest", {**athena, "credentials": {**athena["credentials"],
                                                                                    "datasourceId": "a b"}})
