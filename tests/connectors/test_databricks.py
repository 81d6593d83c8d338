"""Databricks: the connector (requests on the Statement Execution API 2.0) against the stand-in workspace."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from datasources.connectors import MAX_COLUMNS, MAX_TABLES, ConnectionConfig, get_connector
from datasources.connectors.databricks import DatabricksConnector
from tests.support.contract import BLOCKED_IP, Contract, connect_attempts, run_contract
from tests.support.databricks_server import Table, Workspace, serve

URL = "/api/v1/data-sources/"
DB = "/compat/databrain/api/v2/datasource"
CANARY = "dapi-CANARY-5e1f0c7a9b"
HOST = "dbc-a1b2c3d4-e5f6.cloud.databricks.com"
WAREHOUSE = "abc123def456"
HTTP_PATH = f"/sql/1.0/warehouses/{WAREHOUSE}"
ORDERS = Table([("id", "bigint", False), ("amount", "decimal(10,2)", True), ("placed_at", "timestamp", True)])


def tables() -> dict:
    return {"main": {
        "default": {"orders": ORDERS, "customers": Table([("id", "bigint", False), ("email", "string", True)]),
                    "big_orders": Table(ORDERS.columns[:2], view=True)},
        "analytics": {"events": Table([("at", "timestamp", False), ("kind", "string", True)])},
    }}


@pytest.fixture
def workspace():
    ws = Workspace(token=CANARY, warehouse_id=WAREHOUSE, catalogs=tables())
    with serve(ws) as url:
        ws.url = url
        yield ws


def connection(ws: Workspace, **changes) -> dict:
    return {"host": HOST, "http_path": HTTP_PATH, "catalog": "main", "schema": "default", "endpoint_url": ws.url,
            **changes}


def config(ws: Workspace, token: str = CANARY, timeout: int = 3, **changes) -> ConnectionConfig:
    return ConnectionConfig("databricks", connection(ws, **changes), {"token": token}, connect_timeout=timeout)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_contract_through_the_native_api(api, allow_loopback, workspace, caplog):
    contract = Contract(
        type_key="databricks",
        connection=connection(workspace),
        credentials={"token": CANARY},
        tables={"orders", "customers", "big_orders"},
        patch={"schema": "analytics"},
        wrong_credentials={"token": "dapi-wrong-token-000"},
        unreachable={"endpoint_url": f"http://127.0.0.1:{closed_port()}"},
        blocked={"endpoint_url": f"http://{BLOCKED_IP}"},
        canary=CANARY,
    )
    final = run_contract(api, contract, caplog)
    schema = api.get(f"{URL}{final['id']}/schema/").json()
    by_name = {t["name"]: t for t in schema["tables"]}
    assert by_name["big_orders"]["kind"] == "view" and by_name["orders"]["kind"] == "table"
    assert [(c["name"], c["type"], c["nullable"]) for c in by_name["orders"]["columns"]] == [
        ("id", "bigint", False), ("amount", "decimal(10,2)", True), ("placed_at", "timestamp", True)]
    for body in workspace.statements:  # what the connector sends, as the API wants it
        assert body["disposition"] == "INLINE" and body["format"] == "JSON_ARRAY"
        assert body["on_wait_timeout"] == "CANCEL" and body["warehouse_id"] == WAREHOUSE


def test_registry_builds_the_connector():
    assert isinstance(get_connector("databricks"), DatabricksConnector)


def test_stages_and_one_statement_each(allow_loopback, workspace):
    result = DatabricksConnector("databricks").test_and_introspect(config(workspace))
    assert result.ok, result
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database", "introspect"]
    assert [b["statement"] for b in workspace.statements][:2] == [
        "SELECT 1", "SELECT current_catalog(), current_schema()"]
    assert "catalog" not in workspace.statements[0]  # the token is proved before any catalog is selected
    assert workspace.statements[1]["catalog"] == "main" and workspace.statements[1]["schema"] == "default"
    assert len(workspace.statements) == 3 and {t.name for t in result.tables} == {"orders", "customers", "big_orders"}


def test_redirect_is_not_followed(allow_loopback, workspace):
    workspace.redirect_to = f"http://{BLOCKED_IP}/latest/meta-data/"
    with connect_attempts() as attempts:
        result = DatabricksConnector("databricks").test(config(workspace))
    assert not result.ok and result.stage == "auth" and "redirected" in result.message
    assert not [a for a in attempts if isinstance(a, tuple) and a[0] == BLOCKED_IP], attempts


@pytest.mark.parametrize("http_path", ["/sql/protocolv1/o/1234567890/0123-456789-abcdefgh", "/sql/1.0/warehouses/",
                                       "/sql/1.0/warehouses/abc/../../x", "warehouses/abc123"])
def test_bad_http_path_is_refused_when_written(api, allow_loopback, workspace, http_path):
    """Checked by the catalogue (f2c7bb9), before any test: tested or not, nothing is stored."""
    for query in ("", "?test_connection=false"):
        response = api.post(f"{URL}{query}", {"name": "lakehouse", "type": "databricks",
                                              "connection": connection(workspace, http_path=http_path),
                                              "credentials": {"token": CANARY}}, format="json")
        body = response.json()
        assert response.status_code == 400 and body["code"] == "INVALID_REQUEST_BODY", body
        assert "connection.http_path" in body["errors"] and CANARY not in response.content.decode()
    assert not workspace.requests  # refused before any request


def test_legacy_endpoints_path_is_the_same_warehouse(allow_loopback, workspace):
    result = DatabricksConnector("databricks").test(config(workspace, http_path=f"/sql/1.0/endpoints/{WAREHOUSE}"))
    assert result.ok, result


def test_unknown_schema_catalog_and_warehouse_fail_at_database(allow_loopback, workspace):
    connector = DatabricksConnector("databricks")
    schema = connector.test(config(workspace, schema="nope"))
    assert (schema.ok, schema.stage) == (False, "database") and "SCHEMA_NOT_FOUND" in schema.message
    assert [s.name for s in schema.stages if s.ok] == ["resolve", "tcp", "auth"]
    catalog = connector.test(config(workspace, catalog="nowhere"))
    assert catalog.stage == "database" and "CATALOG_NOT_FOUND" in catalog.message
    warehouse = connector.test(config(workspace, http_path="/sql/1.0/warehouses/fff000"))
    assert warehouse.stage == "database" and "fff000" in warehouse.message


def test_wrong_and_missing_token_fail_at_auth(allow_loopback, workspace):
    connector = DatabricksConnector("databricks")
    wrong = connector.test(config(workspace, token="dapi-not-the-token"))
    assert wrong.stage == "auth" and "HTTP 403" in wrong.message
    sent = len(workspace.requests)
    missing = connector.test(config(workspace, token=""))
    assert missing.stage == "auth" and "required" in missing.message
    assert [p for _, p in workspace.requests[sent:]] == ["/"]  # the probe only: no API call without a token


def test_canary_never_in_messages_even_when_the_server_echoes_it(allow_loopback, workspace, caplog):
    workspace.echo_token = True
    connector = DatabricksConnector("databricks")
    for result in (connector.test(config(workspace, schema="nope")), connector.test(config(workspace, token="x" * 8))):
        assert not result.ok and CANARY not in str(result.as_dict())
    assert "***" in connector.test(config(workspace, schema="nope")).message
    with pytest.raises(Exception) as failed:
        connector.introspect(config(workspace, schema="nope"))
    assert CANARY not in str(failed.value) and CANARY not in caplog.text


def test_polls_while_running_then_succeeds(allow_loopback, workspace):
    workspace.pending_polls = 2
    result = DatabricksConnector("databricks").test(config(workspace))
    assert result.ok, result
    polls = [p for m, p in workspace.requests if m == "GET" and p.startswith("/api/2.0/sql/statements/")]
    assert len(polls) >= 4  # two statements, each answered RUNNING twice first


def test_statement_that_never_finishes_is_cancelled_within_the_timeout(allow_loopback, workspace):
    workspace.hang = True
    start = time.monotonic()
    result = DatabricksConnector("databricks").test(config(workspace, timeout=2))
    assert time.monotonic() - start < 2 + 1
    assert result.stage == "auth" and "did not finish within 2 seconds" in result.message
    assert len(workspace.cancelled) == 1
    assert workspace.statements[0]["wait_timeout"] == "0s"  # under 5 s the API only takes 0s (asynchronous)


def test_wait_timeout_follows_the_connection_timeout(allow_loopback, workspace):
    assert DatabricksConnector("databricks").test(config(workspace, timeout=10)).ok
    assert {b["wait_timeout"] for b in workspace.statements} == {"8s"}


def test_black_holed_endpoint_fails_within_the_timeout(allow_loopback):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts (the kernel does) and never answers
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True).start()
    cfg = ConnectionConfig("databricks", {"host": HOST, "http_path": HTTP_PATH, "schema": "default",
                                          "endpoint_url": f"http://127.0.0.1:{silent.getsockname()[1]}"},
                           {"token": CANARY}, connect_timeout=2)
    start = time.monotonic()
    try:
        result = DatabricksConnector("databricks").test(cfg)
    finally:
        silent.close()
        for sock in held:
            sock.close()
    assert time.monotonic() - start < 2 + 1
    assert result.stage == "tcp" and result.message.startswith("Could not connect to the server at 127.0.0.1:")


def test_one_thousand_tables_in_one_statement(allow_loopback, workspace):
    workspace.catalogs["main"]["wide"] = {f"t{i:04d}": Table([("id", "bigint", False), ("v", "string", True)])
                                          for i in range(1000)}
    workspace.chunk_rows = 700  # the result comes in three chunks
    result = DatabricksConnector("databricks").test_and_introspect(config(workspace, schema="wide"))
    assert result.ok and len(result.tables) == 1000
    assert all(len(t.columns) == 2 and t.columns[1].ordinal == 2 for t in result.tables)
    introspection = [b for b in workspace.statements if "information_schema" in b["statement"]]
    assert len(workspace.statements) == 3 and len(introspection) == 1
    assert introspection[0]["parameters"] == [{"name": "schema", "value": "wide", "type": "STRING"}]
    chunks = [p for m, p in workspace.requests if "/result/chunks/" in p]
    assert len(chunks) == 2


def test_introspection_bounds(allow_loopback, workspace):
    wide = Table([(f"c{i}", "int", True) for i in range(MAX_COLUMNS + 5)])
    workspace.catalogs["main"]["many"] = {f"t{i:05d}": Table([("id", "int", True)]) for i in range(MAX_TABLES + 3)}
    workspace.catalogs["main"]["many"]["t00000"] = wide
    tables = DatabricksConnector("databricks").introspect(config(workspace, schema="many"))
    assert len(tables) == MAX_TABLES and len(tables[0].columns) == MAX_COLUMNS


def test_databrain_put_keeps_endpoint_url_and_recaches(api, allow_loopback, workspace):
    created = api.post(URL, {"name": "lakehouse", "type": "databricks", "connection": connection(workspace),
                             "credentials": {"token": CANARY}}, format="json")
    assert created.status_code == 201, created.json()
    body = {"datasourceType": "databricks", "credentials": {
        "name": "lakehouse", "host": HOST, "httpPath": HTTP_PATH, "token": CANARY, "catalog": "main",
        "schema": "analytics"}}
    sent = len(workspace.statements)
    response = api.put(DB, body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": "lakehouse"} and CANARY not in response.content.decode()
    core = api.get(f"{URL}{created.json()['id']}/").json()
    assert core["connection"]["endpoint_url"] == workspace.url  # not in Databrain's structure: kept
    assert core["connection"]["schema"] == "analytics" and core["last_test"]["ok"]
    assert core["schema"]["status"] == "ready"
    schema = api.get(f"{URL}{created.json()['id']}/schema/").json()
    assert {t["name"] for t in schema["tables"]} == {"events"}
    assert len(workspace.statements) > sent  # tested against the stand-in, not the workspace host
    wrong = api.put(DB, {**body, "credentials": {**body["credentials"], "token": "dapi-wrong-token-000"}},
                    format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "CREDENTIAL_TEST_FAILED"
