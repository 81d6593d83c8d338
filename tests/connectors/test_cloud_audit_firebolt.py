"""Firebolt: a schema that does not exist fails stage database (outside audit, finding 2).

With ``schema: "nope"`` the test passed (201, active) and the introspection found 0 tables, where Snowflake,
Trino, Databricks and BigQuery fail a missing schema or dataset at stage database. The connector now looks the
schema up in ``information_schema.schemata`` (catalog = the database) on the engine, after ``USE ENGINE``; the
stand-in answers that look-up as Firebolt's view does (tests/support/firebolt_server.py).
"""

from __future__ import annotations

import json

import pytest

from datasources.connectors import ConnectionConfig, get_connector
from tests.support.firebolt_server import FireboltStandIn, serve

CANARY = "canary-audit-fb-27c4"
TABLES = {"orders": [("id", "bigint", False)], "sales.regions": [("code", "text", False)]}


@pytest.fixture
def firebolt():
    state = FireboltStandIn(client_secret=CANARY, tables=dict(TABLES), schemas={"staging"})
    with serve(state) as running:
        yield running


def _config(server: FireboltStandIn, **changes) -> ConnectionConfig:
    connection = {"client_id": server.client_id, "account_name": server.account, "database": server.database,
                  "engine_name": server.engine, "endpoint_url": server.url, **changes}
    return ConnectionConfig("firebolt", connection, {"client_secret": CANARY}, connect_timeout=3, query_timeout=5)


def test_a_missing_schema_fails_at_database(allow_loopback, firebolt):
    result = get_connector("firebolt").test_and_introspect(_config(firebolt, schema="nope"))
    assert (result.ok, result.stage, result.message) == (
        False, "database", "The schema 'nope' does not exist in database 'shop' or the service account cannot use "
                           "it."), result.as_dict()
    assert [(s.name, s.ok) for s in result.stages] == [("resolve", True), ("tcp", True), ("auth", True),
                                                       ("database", False)]
    assert result.tables is None and not firebolt.queries("information_schema.columns")  # no introspection
    assert CANARY not in json.dumps(result.as_dict())


@pytest.mark.parametrize(("schema", "tables"), [("sales", 1), ("public", 1), ("staging", 0)])
def test_an_existing_schema_passes_even_when_empty(allow_loopback, firebolt, schema, tables):
    result = get_connector("firebolt").test_and_introspect(_config(firebolt, schema=schema))
    assert result.ok, result.as_dict()
    assert result.tables is not None and len(result.tables) == tables
    looked_up = firebolt.queries("information_schema.schemata")
    assert looked_up == ["SELECT COUNT(*) FROM information_schema.schemata WHERE catalog_name = 'shop' AND "
                         f"schema_name = '{schema}'"]
    assert firebolt.requests[-2].params["database"] == "shop"  # on the engine, in the database


def test_without_a_schema_nothing_more_is_asked(allow_loopback, firebolt):
    assert get_connector("firebolt").test(_config(firebolt)).ok
    assert not firebolt.queries("information_schema.schemata")


def test_a_quote_in_the_schema_name_stays_in_its_literal(allow_loopback, firebolt):
    result = get_connector("firebolt").test(_config(firebolt, schema="x' OR '1'='1"))
    assert (result.ok, result.stage) == (False, "database")
    assert firebolt.queries("information_schema.schemata")[0].endswith("schema_name = 'x'' OR ''1''=''1'")


def test_through_the_api_the_source_is_refused(api, allow_loopback, firebolt):
    body = {"name": "warehouse", "type": "firebolt", "connection": _config(firebolt, schema="nope").connection,
            "credentials": {"client_secret": CANARY}}
    response = api.post("/api/v1/data-sources/", body, format="json")
    error = response.json()
    assert response.status_code == 400 and error["code"] == "CREDENTIAL_TEST_FAILED", error
    assert error["stage"] == "database" and "'nope' does not exist" in error["message"]
