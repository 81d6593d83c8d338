"""BigQuery connector: the real google-cloud-bigquery client against tests/support/bigquery_server.py.

The stand-in is Google's OAuth token endpoint (it verifies the JWT grant's RS256 signature with the
service account's public key) and the BigQuery REST API v2 (datasets, jobs.query, getQueryResults).
The service-account key comes from tests/support/google_oauth.py; the whole JSON is the secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from datasources.connectors import ConnectionConfig, get_connector
from datasources.connectors.base import MAX_COLUMNS, MAX_TABLES
from tests.support.bigquery_server import BigQueryStandIn, Dataset, Table, serve_bigquery
from tests.support.contract import URL
from tests.support.google_oauth import ServiceAccountTests, google_config, service_account_json
from tests.support.google_oauth import canary as _canary
from tests.support.google_oauth import new_key as _key  # bench/connectors.py imports _key from here

PROJECT = "acme-analytics"
EMAIL = f"loader@{PROJECT}.iam.gserviceaccount.com"
DB = "/compat/databrain/api/v2/datasource"


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[rsa.RSAPrivateKey, str]]:
    return {"right": _key(), "wrong": _key()}  # the registered key, and one the stand-in does not know


def sa_json(pem: str, token_uri: str, **extra: str) -> str:
    return service_account_json(pem, token_uri, EMAIL, PROJECT, **extra)


def _datasets() -> dict[str, Dataset]:
    return {
        "analytics": Dataset({
            "orders": Table([("id", "INT64", False), ("amount", "NUMERIC", True), ("note", "STRING", True),
                             ("items", "ARRAY<STRUCT<sku STRING, qty INT64>>", False)]),
            "customers": Table([("id", "INT64", False), ("email", "STRING", True)]),
            "order_totals": Table([("customer_id", "INT64", True), ("total", "NUMERIC", True)], "VIEW"),
        }),
        "sales": Dataset({"invoices": Table([("id", "STRING", False), ("paid_at", "TIMESTAMP", True)])}),
        "eu_events": Dataset({"events": Table([("name", "STRING", True)])}, location="EU"),
    }


@pytest.fixture
def standin(keys) -> Iterator[BigQueryStandIn]:
    server = BigQueryStandIn(projects={PROJECT: _datasets()}, public_keys={EMAIL: keys["right"][0].public_key()})
    with serve_bigquery(server) as running:
        yield running


_config = partial(google_config, "bigquery", EMAIL,
                  {"project_id": PROJECT, "location": "US", "dataset_id": "analytics"})


def _test(config: ConnectionConfig):
    return get_connector("bigquery").test(config)


# --- stages ---------------------------------------------------------------------------------------


def test_passes_every_stage_with_a_signed_grant(allow_loopback, standin, keys):
    result = _test(_config(standin, keys["right"][1]))
    assert result.ok, result
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database"]
    assert standin.requests.count(("POST", "/token")) == 1
    assert ("GET", f"/bigquery/v2/projects/{PROJECT}/datasets/analytics") in standin.requests


def test_unknown_dataset_fails_at_database(allow_loopback, standin, keys):
    result = _test(_config(standin, keys["right"][1], dataset_id="nope"))
    assert (result.stage, result.message) == (
        "database", f"Dataset 'nope' was not found in project '{PROJECT}' or the service account may not see it.")


def test_unknown_project_fails_at_database(allow_loopback, standin, keys):
    result = _test(_config(standin, keys["right"][1], project_id="other-project", dataset_id=""))
    assert result.stage == "database" and "Project 'other-project' was not found" in result.message


def test_dataset_in_another_location_fails_at_database(allow_loopback, standin, keys):
    result = _test(_config(standin, keys["right"][1], dataset_id="eu_events"))
    assert result.stage == "database" and "in location EU, not US" in result.message


def test_invalid_project_id_is_refused_before_the_api(allow_loopback, standin, keys):
    result = _test(_config(standin, keys["right"][1], project_id="../../x", dataset_id=""))
    assert result.stage == "database" and "not a valid BigQuery project ID" in result.message
    assert not standin.api_requests()


# --- the service account: auth, the token_uri's egress, the environment, secrets ------------------


class TestServiceAccount(ServiceAccountTests):
    type_key = "bigquery"
    missing = {"dataset_id": "nope"}
    contract_tables = {"orders", "customers", "order_totals"}
    contract_patch = {"dataset_id": "sales"}
    config = staticmethod(_config)

    def check_schema(self, tables):
        kinds = {t["name"]: t["kind"] for t in tables}
        assert kinds["order_totals"] == "view" and kinds["orders"] == "table"
        assert "events" not in kinds and "invoices" not in kinds  # one dataset, its location


# --- introspection --------------------------------------------------------------------------------


def test_introspection_columns_types_and_kinds(allow_loopback, standin, keys):
    tables = {t.name: t for t in get_connector("bigquery").introspect(_config(standin, keys["right"][1]))}
    assert set(tables) == {"orders", "customers", "order_totals"}
    orders = tables["orders"]
    assert orders.schema == "analytics" and orders.kind == "table" and tables["order_totals"].kind == "view"
    assert [(c.name, c.data_type, c.nullable, c.ordinal) for c in orders.columns] == [
        ("id", "INT64", False, 1), ("amount", "NUMERIC", True, 2), ("note", "STRING", True, 3),
        ("items", "ARRAY<STRUCT<sku STRING, qty INT64>>", False, 4)]
    (sql,) = [job["sql"] for job in standin._jobs.values()]
    assert f"`{PROJECT}`.`analytics`.INFORMATION_SCHEMA.COLUMNS" in sql and "INFORMATION_SCHEMA.TABLES" in sql


def test_without_a_dataset_every_dataset_of_the_location(allow_loopback, standin, keys):
    tables = get_connector("bigquery").introspect(_config(standin, keys["right"][1], dataset_id=""))
    assert {(t.schema, t.name) for t in tables} == {
        ("analytics", "orders"), ("analytics", "customers"), ("analytics", "order_totals"), ("sales", "invoices")}
    eu = get_connector("bigquery").introspect(_config(standin, keys["right"][1], dataset_id="", location="EU"))
    assert [(t.schema, t.name) for t in eu] == [("eu_events", "events")]
    assert any(f"`{PROJECT}`.`region-eu`.INFORMATION_SCHEMA.COLUMNS" in job["sql"] for job in standin._jobs.values())


def test_a_thousand_tables_in_one_query(allow_loopback, standin, keys):
    standin.projects[PROJECT]["wide"] = Dataset({
        f"t{i:04d}": Table([("id", "INT64", False), ("name", "STRING", True), ("at", "TIMESTAMP", True)])
        for i in range(1000)})
    standin.requests.clear()
    result = get_connector("bigquery").test_and_introspect(_config(standin, keys["right"][1], dataset_id="wide"))
    assert result.ok and result.tables is not None and len(result.tables) == 1000
    assert all(len(t.columns) == 3 for t in result.tables)
    assert len(standin.api_requests("POST", f"/bigquery/v2/projects/{PROJECT}/queries")) == 1
    assert len(standin.requests) <= 5, standin.requests  # probe, token, dataset, query (+ one page at most)


def test_results_over_several_pages_are_read_with_get_query_results(allow_loopback, standin, keys):
    standin.page_rows = 2
    tables = get_connector("bigquery").introspect(_config(standin, keys["right"][1]))
    assert sum(len(t.columns) for t in tables) == 8
    pages = [r for r in standin.api_requests("GET") if "/queries/" in r[1]]
    assert pages and len(standin.api_requests("POST")) == 1


def test_bounds_max_tables_and_max_columns(allow_loopback, standin, keys):
    wide = {f"t{i:05d}": Table([("id", "INT64", False)]) for i in range(MAX_TABLES + 5)}
    wide["t00000"] = Table([(f"c{i}", "STRING", True) for i in range(MAX_COLUMNS + 5)])
    standin.projects[PROJECT]["huge"] = Dataset(wide)
    tables = get_connector("bigquery").introspect(_config(standin, keys["right"][1], dataset_id="huge"))
    assert len(tables) == MAX_TABLES and len(tables[0].columns) == MAX_COLUMNS
    assert len(standin.api_requests("POST")) == 1


# --- the Databrain adapter ------------------------------------------------------------------------


def test_databrain_put_tests_and_recaches_keeping_endpoint_url(api, allow_loopback, standin, keys):
    right = keys["right"][1]
    created = api.post(URL, {
        "name": "warehouse-bq", "type": "bigquery", "connection_timeout": 3,
        "connection": {"project_id": PROJECT, "location": "US", "dataset_id": "analytics",
                       "endpoint_url": standin.url},
        "credentials": {"service_account_json": sa_json(right, standin.token_uri)}}, format="json")
    assert created.status_code == 201, created.json()
    body = {"datasourceType": "bigquery", "credentials": {
        "name": "warehouse-bq", "credentialsJson": sa_json(right, standin.token_uri), "projectId": PROJECT,
        "location": "US", "datasetId": "sales"}}
    response = api.put(DB, body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": "warehouse-bq"}
    core = api.get(f"{URL}{created.json()['id']}/").json()
    assert core["connection"]["endpoint_url"] == standin.url  # not part of Databrain's structure: kept
    assert core["connection"]["dataset_id"] == "sales"
    assert core["last_test"]["ok"] and core["schema"]["status"] == "ready"
    schema = api.get(f"{URL}{created.json()['id']}/schema/").json()
    assert {t["name"] for t in schema["tables"]} == {"invoices"}

    wrong = {**body, "credentials": {**body["credentials"], "credentialsJson": sa_json(keys["wrong"][1],
                                                                                       standin.token_uri)}}
    refused = api.put(DB, wrong, format="json")
    error = refused.json()["error"]
    assert refused.status_code == 400 and error["code"] == "CREDENTIAL_TEST_FAILED" and error["stage"] == "auth"
    assert _canary(keys["wrong"][1]) not in refused.content.decode()
    assert api.get(f"{URL}{created.json()['id']}/").json()["connection"]["dataset_id"] == "sales"
