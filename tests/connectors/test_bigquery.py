"""BigQuery connector: the real google-cloud-bigquery client against tests/support/bigquery_server.py.

The stand-in is Google's OAuth token endpoint (it verifies the JWT grant's RS256 signature with the
service account's public key) and the BigQuery REST API v2 (datasets, jobs.query, getQueryResults).
The service-account key is generated here with ``cryptography``; the whole JSON is the secret.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from datasources.connectors import ConnectionConfig, ConnectorError, get_connector
from datasources.connectors.base import MAX_COLUMNS, MAX_TABLES
from tests.support.bigquery_server import BigQueryStandIn, Dataset, Table, serve_bigquery
from tests.support.certs import make_bundle
from tests.support.contract import BLOCKED_IP, URL, Contract, connect_attempts, run_contract

PROJECT = "acme-analytics"
EMAIL = f"loader@{PROJECT}.iam.gserviceaccount.com"
DB = "/compat/databrain/api/v2/datasource"


def _key() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return key, pem


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[rsa.RSAPrivateKey, str]]:
    return {"right": _key(), "wrong": _key()}


def _canary(pem: str) -> str:
    return pem.splitlines()[5]  # 64 characters from the middle of the private key


def sa_json(pem: str, token_uri: str, **extra: str) -> str:
    """A service-account key file as Google issues it."""
    return json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "5f1c0a2e9d7b4c3a8e6f0b1d2c3e4f5a6b7c8d9e",
        "private_key": pem, "client_email": EMAIL, "client_id": "104857600000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com", **extra,
    })


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


@pytest.fixture
def silent() -> Iterator[str]:
    """A black hole: accepts TCP connections (the kernel does) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def _config(standin: BigQueryStandIn, pem: str, *, token_uri: str = "", timeout: int = 3,
            **connection: str) -> ConnectionConfig:
    conn = {"project_id": PROJECT, "location": "US", "dataset_id": "analytics", "endpoint_url": standin.url,
            **connection}
    return ConnectionConfig("bigquery", conn, {"service_account_json": sa_json(pem, token_uri or standin.token_uri)},
                            connect_timeout=timeout, query_timeout=10)


def _test(config: ConnectionConfig):
    return get_connector("bigquery").test(config)


# --- the contract through the native API ----------------------------------------------------------


def test_contract(api, allow_loopback, caplog, standin, keys, silent):
    right, wrong = keys["right"][1], keys["wrong"][1]
    connection = {"project_id": PROJECT, "location": "US", "dataset_id": "analytics", "endpoint_url": standin.url}
    contract = Contract(
        type_key="bigquery", connection=connection,
        credentials={"service_account_json": sa_json(right, standin.token_uri)},
        tables={"orders", "customers", "order_totals"},
        patch={"dataset_id": "sales"},
        wrong_credentials={"service_account_json": sa_json(wrong, standin.token_uri)},
        unreachable={"endpoint_url": silent}, blocked={"endpoint_url": f"http://{BLOCKED_IP}"},
        canary=_canary(right), stages=("resolve", "tcp", "auth", "database"), connection_timeout=3,
    )
    final = run_contract(api, contract, caplog)
    assert final["connection"]["endpoint_url"] == standin.url
    schema = api.get(f"{URL}{final['id']}/schema/").json()
    kinds = {t["name"]: t["kind"] for t in schema["tables"]}
    assert kinds["order_totals"] == "view" and kinds["orders"] == "table"
    assert "events" not in kinds and "invoices" not in kinds  # one dataset, its location
    for token in standin.tokens:  # the access tokens issued never reach a response, a log or the audit
        assert token not in caplog.text and token not in json.dumps(final)


# --- stages ---------------------------------------------------------------------------------------


def test_passes_every_stage_with_a_signed_grant(allow_loopback, standin, keys):
    result = _test(_config(standin, keys["right"][1]))
    assert result.ok, result
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database"]
    assert standin.requests.count(("POST", "/token")) == 1
    assert ("GET", f"/bigquery/v2/projects/{PROJECT}/datasets/analytics") in standin.requests


def test_wrong_key_fails_at_auth(allow_loopback, standin, keys):
    result = _test(_config(standin, keys["wrong"][1]))
    assert (result.stage, result.ok) == ("auth", False)
    assert "invalid_grant" in result.message and "Invalid JWT Signature" in result.message
    assert not standin.api_requests()  # refused before any API call


def test_not_a_service_account_key_fails_at_auth(allow_loopback, standin, keys):
    config = _config(standin, keys["right"][1])
    user = {"type": "authorized_user", "refresh_token": "1//0abc", "token_uri": standin.token_uri}
    config.secrets = {"service_account_json": json.dumps(user)}
    result = _test(config)
    assert result.stage == "auth" and "service-account key" in result.message
    assert not standin.requests or all(r[0] == "HEAD" for r in standin.requests)


def test_unreadable_private_key_fails_at_auth(allow_loopback, standin, keys):
    config = _config(standin, "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    result = _test(config)
    assert (result.stage, result.message) == ("auth", "The service account's private key could not be read.")
    assert ("POST", "/token") not in standin.requests


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


def test_black_holed_endpoint_fails_at_tcp_within_the_timeout(allow_loopback, standin, keys, silent):
    start = time.monotonic()
    result = _test(_config(standin, keys["right"][1], endpoint_url=silent, timeout=2))
    assert time.monotonic() - start < 2 + 1
    port = silent.rsplit(":", 1)[1]
    assert (result.stage, result.message) == ("tcp", f"Could not connect to the server at 127.0.0.1:{port}.")


def test_black_holed_token_endpoint_fails_at_tcp_within_the_timeout(allow_loopback, standin, keys, silent):
    start = time.monotonic()
    result = _test(_config(standin, keys["right"][1], token_uri=f"{silent}/token", timeout=2))
    assert time.monotonic() - start < 2 + 1
    assert result.stage == "tcp" and "Could not connect to the server at 127.0.0.1" in result.message


def test_untrusted_api_certificate_fails_at_tls(allow_loopback, standin, keys):
    bundle = make_bundle()  # a CA the system does not trust
    with serve_bigquery(BigQueryStandIn(projects={PROJECT: _datasets()}),
                        tls=(bundle.server.cert_pem, bundle.server.key_pem)) as secure:
        result = _test(_config(standin, keys["right"][1], endpoint_url=secure.url))
    assert [(s.name, s.ok) for s in result.stages] == [("resolve", True), ("tcp", True), ("tls", False)]
    assert "certificate could not be verified" in result.message
    assert not standin.requests and all(r[0] == "HEAD" for r in secure.requests)  # no token asked, none sent


def test_untrusted_token_endpoint_certificate_fails_at_tls(allow_loopback, standin, keys):
    bundle = make_bundle()
    token_server = BigQueryStandIn(public_keys={EMAIL: keys["right"][0].public_key()})
    with serve_bigquery(token_server, tls=(bundle.server.cert_pem, bundle.server.key_pem)) as secure:
        result = _test(_config(standin, keys["right"][1], token_uri=secure.token_uri))
    assert (result.stage, result.message) == ("tls", "The token endpoint's certificate could not be verified.")
    assert not secure.requests and not secure.tokens  # the signed grant never left


# --- egress: the token_uri inside the secret ------------------------------------------------------


def test_token_uri_at_the_metadata_address_is_refused_without_a_connection(allow_loopback, standin, keys):
    with connect_attempts() as attempts:
        result = _test(_config(standin, keys["right"][1], token_uri=f"http://{BLOCKED_IP}/computeMetadata/v1/token"))
    assert (result.stage, result.message) == ("tcp", f"Could not connect to the server at {BLOCKED_IP}:80.")
    assert not [a for a in attempts if isinstance(a, tuple) and a[0] == BLOCKED_IP]
    assert not standin.requests  # nothing sent anywhere: refused while resolving


def test_plain_http_token_uri_to_a_public_address_is_refused(allow_loopback, standin, keys):
    with connect_attempts() as attempts:
        result = _test(_config(standin, keys["right"][1], token_uri="http://8.8.8.8/token"))
    assert result.stage == "tls" and "token_uri must use https://" in result.message
    assert not [a for a in attempts if isinstance(a, tuple) and a[0] == "8.8.8.8"]


def test_loopback_token_uri_needs_the_operator_allowance(settings, standin, keys):
    settings.DATASOURCE_ALLOWED_NETWORKS = []
    with connect_attempts() as attempts:
        result = _test(_config(standin, keys["right"][1], endpoint_url="https://bigquery.googleapis.com"))
    assert (result.stage, result.message) == ("tcp", f"Could not connect to the server at 127.0.0.1:{standin.port}.")
    assert not attempts and not standin.requests


def test_environment_credentials_and_overrides_are_ignored(allow_loopback, standin, keys, monkeypatch, tmp_path):
    """ADC files, the metadata host, the emulator host and proxies from the environment play no part."""
    adc = tmp_path / "adc.json"
    adc.write_text(sa_json(keys["wrong"][1], f"http://{BLOCKED_IP}/token"))
    for name, value in {"GOOGLE_APPLICATION_CREDENTIALS": str(adc), "GCE_METADATA_HOST": BLOCKED_IP,
                        "GCE_METADATA_IP": BLOCKED_IP, "BIGQUERY_EMULATOR_HOST": f"{BLOCKED_IP}:80",
                        "GOOGLE_CLOUD_UNIVERSE_DOMAIN": "evil.example", "HTTP_PROXY": f"http://{BLOCKED_IP}:3128",
                        "HTTPS_PROXY": f"http://{BLOCKED_IP}:3128", "GOOGLE_API_USE_CLIENT_CERTIFICATE": "true",
                        "GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    with connect_attempts() as attempts:
        result = get_connector("bigquery").test_and_introspect(_config(standin, keys["right"][1]))
    assert result.ok, result
    assert result.tables and not [a for a in attempts if isinstance(a, tuple) and a[0] == BLOCKED_IP]


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


def test_introspect_failure_names_the_stage(allow_loopback, standin, keys):
    with pytest.raises(ConnectorError) as failed:
        get_connector("bigquery").introspect(_config(standin, keys["wrong"][1]))
    assert failed.value.stage == "auth"


# --- secrets --------------------------------------------------------------------------------------


def test_no_secret_material_in_messages_or_logs(allow_loopback, standin, keys, caplog, silent):
    caplog.set_level(logging.DEBUG)
    right, wrong = keys["right"][1], keys["wrong"][1]
    results = [
        get_connector("bigquery").test_and_introspect(_config(standin, right)),
        _test(_config(standin, wrong)), _test(_config(standin, right, dataset_id="nope")),
        _test(_config(standin, right, endpoint_url=silent, timeout=1)),
        _test(_config(standin, right, token_uri=f"http://{BLOCKED_IP}/token")),
    ]
    assert results[0].ok and standin.tokens
    rendered = json.dumps([r.as_dict() for r in results]) + repr(results) + caplog.text
    for pem in (right, wrong):
        for line in pem.splitlines()[1:-1]:
            assert line not in rendered
    for token in standin.tokens:
        assert token not in rendered
    assert "5f1c0a2e9d7b4c3a8e6f0b1d2c3e4f5a6b7c8d9e" not in rendered  # private_key_id


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
