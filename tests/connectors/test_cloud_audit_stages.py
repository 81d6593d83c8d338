"""Stage ``introspect`` is reported when the schema is read over the tested session (outside audit, finding 3).

mongodb, snowflake, clickhouse, trino and bigquery read the tables over the tested session but did not record
the stage: a successful ``last_test.stages`` ended at ``database`` while README's table and the catalogue's
``connector_status.stages`` list ``introspect`` (mssql, elasticsearch, databricks, firebolt and mcp recorded
it). Now each records it, with how many tables it read, as ``StageRunner.optional`` does for the others.
"""

from __future__ import annotations

import json
from functools import partial

import pytest

from datasources.connectors import ConnectionConfig, get_connector
from datasources.connectors.registry import DRIVERS
from tests.support import clickhouse_server
from tests.support.bigquery_server import BigQueryStandIn, Dataset, Table, serve_bigquery
from tests.support.certs import make_bundle
from tests.support.google_oauth import google_config, new_key
from tests.support.mongo_server import MongoServer
from tests.support.trino_server import Table as TrinoTable
from tests.support.trino_server import TrinoServer

CANARY = "canary-audit-stages-0e6a"


def _introspected(kind: str, result, tables: int) -> None:
    """Passed, the stages in the catalogue's order ending with introspect, which says how many tables it read."""
    assert result.ok, result.as_dict()
    names = [s.name for s in result.stages]
    assert names[-1] == "introspect" and all(s.ok for s in result.stages), names
    order = list(DRIVERS[kind].stages)
    assert names == sorted(names, key=order.index) and set(names) <= set(order), (names, order)
    assert result.tables is not None and len(result.tables) == tables
    assert str(tables) in result.stages[-1].message
    assert CANARY not in json.dumps(result.as_dict())


def test_mongodb(allow_loopback):
    with MongoServer({"shop": {"orders": [{"id": 1}], "customers": [{"email": "a@b"}]}},
                     users={"analyst": CANARY}) as server:
        config = ConnectionConfig("mongodb", {"host": "127.0.0.1", "port": server.port, "database": "shop",
                                              "username": "analyst", "auth_source": "admin", "tls": False,
                                              "srv": False}, {"password": CANARY}, connect_timeout=3)
        _introspected("mongodb", get_connector("mongodb").test_and_introspect(config), 2)
        assert [s.name for s in get_connector("mongodb").test(config).stages][-1] == "database"


def test_mongodb_through_the_api(api, allow_loopback):
    with MongoServer({"shop": {"orders": [{"id": 1}]}}, users={"analyst": CANARY}) as server:
        body = {"name": "docs", "type": "mongodb", "credentials": {"password": CANARY},
                "connection": {"host": "127.0.0.1", "port": server.port, "database": "shop", "username": "analyst"}}
        created = api.post("/api/v1/data-sources/", body, format="json")
        assert created.status_code == 201, created.json()
        stages = [s["name"] for s in created.json()["last_test"]["stages"]]
        assert stages == ["resolve", "tcp", "auth", "database", "introspect"]


@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")  # fakesnow's own
def test_snowflake(allow_loopback):
    snowflake_server = pytest.importorskip("tests.support.snowflake_server")
    snowflake_server.run_sql("CREATE DATABASE IF NOT EXISTS AUDIT", "CREATE SCHEMA IF NOT EXISTS AUDIT.STAGES",
                             "CREATE OR REPLACE TABLE AUDIT.STAGES.ORDERS (ID INT)")
    with snowflake_server.serve_snowflake(snowflake_server.SnowflakeServer(passwords={"ANALYST": CANARY})) as fake:
        connection = {"account": "acme-test", "username": "analyst", "role": "ANALYST", "warehouse": "COMPUTE_WH",
                      "database": "AUDIT", "schema": "STAGES", "auth_method": "password", "endpoint_url": fake.url}
        config = ConnectionConfig("snowflake", connection, {"password": CANARY}, connect_timeout=5)
        _introspected("snowflake", get_connector("snowflake").test_and_introspect(config), 1)


def test_clickhouse(allow_loopback):
    clickhouse_server.require()
    server = clickhouse_server.start_server(CANARY)
    try:
        admin = server.client()
        admin.execute("CREATE DATABASE audit")
        admin.execute("CREATE TABLE audit.orders (id UInt64) ENGINE = Memory")
        admin.disconnect()
        config = ConnectionConfig("clickhouse", {"host": server.host, "port": server.secure_port, "database": "audit",
                                                 "username": server.user, "secure": True,
                                                 "ca_certificate": server.ca_pem}, {"password": CANARY},
                                  connect_timeout=5)
        _introspected("clickhouse", get_connector("clickhouse").test_and_introspect(config), 1)
    finally:
        clickhouse_server.stop_server(server)


def test_trino(allow_loopback):
    bundle = make_bundle()
    catalogs = {"hive": {"sales": [TrinoTable("orders", [("id", "bigint", False)]), TrinoTable("empty")]}}
    with TrinoServer(catalogs, password=CANARY, tls=bundle.server) as server:
        config = ConnectionConfig("trino", {"host": "127.0.0.1", "port": server.port, "catalog": "hive",
                                            "schema": "sales", "username": "analyst", "http_scheme": "https",
                                            "ssh_tunnel": {"enabled": False}, "ca_certificate": bundle.ca.cert_pem},
                                  {"password": CANARY}, connect_timeout=3)
        _introspected("trino", get_connector("trino").test_and_introspect(config), 2)


def test_bigquery(allow_loopback):
    key, pem = new_key()
    email = "loader@acme-analytics.iam.gserviceaccount.com"
    datasets = {"analytics": Dataset({"orders": Table([("id", "INT64", False)]),
                                      "totals": Table([("total", "NUMERIC", True)], "VIEW")})}
    with serve_bigquery(BigQueryStandIn(projects={"acme-analytics": datasets},
                                        public_keys={email: key.public_key()})) as standin:
        config = partial(google_config, "bigquery", email, {"project_id": "acme-analytics", "location": "US",
                                                           "dataset_id": "analytics"})(standin, pem)
        _introspected("bigquery", get_connector("bigquery").test_and_introspect(config), 2)
