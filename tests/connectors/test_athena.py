"""Amazon Athena against moto's server (STS, Glue, Athena, S3 with signature checks) via endpoint_url.

The connector is the real one with the real botocore; moto is reached over loopback HTTP
(tests/support/moto_server.py says what it corrects in moto). Loopback stand-ins only redirect,
stall or count connections; those the S3 tests use too are tests/support/aws.py's.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from datasources.connectors import ConnectionConfig, get_connector
from datasources.connectors.aws import isolated_session
from tests.support.aws import (
    QuietHandler,
    assert_logs_carry_no_secret,
    assert_stall_reads_as_closed,
    aws_contract,
    closed_message,
    environment_ignored,
    http_server,
    listener,
    never_contacted,
    poison_environment,
)
from tests.support.contract import BLOCKED_IP, connect_attempts, run_contract
from tests.support.moto_server import Keys, MotoServer, moto_server, moto_session_server  # noqa: F401
from tests.support.state import stored_state

URL = "/api/v1/data-sources/"
DB = "/compat/databrain/api/v2/datasource"
CANARY = "canary-athena-2b7f0e9d41c35a86-secret"
BUCKET = "athena-results"
PARTNER = "111122223333"  # another AWS account, whose Glue catalog is registered in Athena as "partner"


def seed(server: MotoServer, database: str = "sales", tables: int = 0) -> None:
    """A Glue database with a partitioned table and a view (or ``tables`` plain ones), the results
    bucket and a workgroup."""
    glue = server.client("glue")
    glue.create_database(DatabaseInput={"Name": database})
    columns = [{"Name": "id", "Type": "bigint"}, {"Name": "amount", "Type": "decimal(12,2)"},
               {"Name": "items", "Type": "array<struct<sku:string,qty:int>>"}]
    if tables:
        def create(i: int) -> None:
            glue.create_table(DatabaseName=database, TableInput={
                "Name": f"t{i:04d}", "TableType": "EXTERNAL_TABLE", "StorageDescriptor": {"Columns": columns}})

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(tables)))
    else:
        glue.create_table(DatabaseName=database, TableInput={
            "Name": "orders", "TableType": "EXTERNAL_TABLE", "StorageDescriptor": {"Columns": columns},
            "PartitionKeys": [{"Name": "dt", "Type": "string"}]})
        glue.create_table(DatabaseName=database, TableInput={
            "Name": "daily", "TableType": "VIRTUAL_VIEW", "ViewOriginalText": "/* Presto View */",
            "StorageDescriptor": {"Columns": [{"Name": "day", "Type": "date"}, {"Name": "total", "Type": "double"}]}})
    s3 = server.client("s3")
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
        server.client("athena").create_work_group(Name="analytics", Configuration={
            "ResultConfiguration": {"OutputLocation": f"s3://{BUCKET}/q/"}})


def connection(server: MotoServer, keys: Keys, **changes: object) -> dict:
    return {"database": "sales", "s3_output_location": f"s3://{BUCKET}/q/", "region": server.region,
            "workgroup": "analytics", "access_key_id": keys.access_key_id, "endpoint_url": server.endpoint_url,
            **changes}


def config(server: MotoServer, keys: Keys, timeout: int = 3, **changes: object) -> ConnectionConfig:
    return ConnectionConfig("athena", connection(server, keys, **changes),
                            {"secret_access_key": keys.secret_access_key}, connect_timeout=timeout)


@pytest.fixture
def keys(moto_server: MotoServer, allow_loopback) -> Keys:  # noqa: F811 - the fixture
    seed(moto_server)
    return moto_server.create_user("athena-reader", secret=CANARY)


# --- the contract, native API -------------------------------------------------------------------


def test_contract(api, allow_loopback, caplog, moto_server, keys):  # noqa: F811
    contract = aws_contract("athena", connection(moto_server, keys), CANARY, tables={"orders", "daily"},
                            patch={"workgroup": "primary"})
    final = run_contract(api, contract, caplog)
    assert final["connection"]["endpoint_url"] == moto_server.endpoint_url
    schema = {t["name"]: t for t in api.get(f"{URL}{final['id']}/schema/").json()["tables"]}
    assert schema["daily"]["kind"] == "view" and schema["orders"]["kind"] == "table"
    orders = [(c["name"], c["type"], c["nullable"], c["ordinal"]) for c in schema["orders"]["columns"]]
    assert orders == [("id", "bigint", True, 1), ("amount", "decimal(12,2)", True, 2),
                      ("items", "array<struct<sku:string,qty:int>>", True, 3), ("dt", "string", True, 4)]


def test_stages_and_messages(moto_server, keys):  # noqa: F811
    result = get_connector("athena").test_and_introspect(config(moto_server, keys))
    assert result.ok, result
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database", "introspect"]
    assert result.server_version == "Amazon Athena (us-east-1), Athena engine version 3"
    assert result.stages[2].message == "AWS accepted the keys (account 123456789012)."
    assert result.stages[3].message == (f"Database 'sales' found. Workgroup 'analytics' is enabled. "
                                        f"Output bucket '{BUCKET}' exists.")
    assert {t.name for t in result.tables or []} == {"orders", "daily"}
    assert result.stages[4].message == "2 tables and views."


# --- stage database -----------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "message"), [
    ({"database": "nope"}, "Database 'nope' was not found in the Glue Data Catalog (us-east-1)."),
    ({"workgroup": "nope"}, "Workgroup 'nope' was not found."),
    ({"s3_output_location": "s3://no-such-bucket/x/"}, "The S3 output bucket 'no-such-bucket' does not exist."),
    ({"s3_output_location": "s3:///x"}, "The S3 output location must look like s3://bucket/prefix/."),
])
def test_unknown_database_workgroup_bucket(moto_server, keys, changes, message):  # noqa: F811
    result = get_connector("athena").test(config(moto_server, keys, **changes))
    assert (result.ok, result.stage, result.message) == (False, "database", message)


def test_wrong_secret_and_unknown_key_fail_at_auth(moto_server, keys):  # noqa: F811
    wrong = get_connector("athena").test(config(moto_server, Keys(keys.access_key_id, "not-the-secret")))
    assert (wrong.stage, wrong.message) == (
        "auth", "AWS refused the access key ID or secret access key (SignatureDoesNotMatch).")
    unknown = get_connector("athena").test(config(moto_server, Keys("AKIA0000000000000000", CANARY)))
    assert (unknown.stage, unknown.message) == (
        "auth", "AWS refused the access key ID or secret access key (InvalidClientTokenId).")


# --- the environment is never consulted --------------------------------------------------------


def test_environment_and_files_are_ignored(moto_server, keys, monkeypatch, tmp_path):  # noqa: F811
    introspected = environment_ignored(monkeypatch, tmp_path, moto_server.admin, get_connector("athena"),
                                       config(moto_server, keys),
                                       config(moto_server, Keys(keys.access_key_id, "not-the-secret")))
    assert {t.name for t in introspected} == {"orders", "daily"}


def test_default_endpoints_are_aws_regional_whatever_the_environment(monkeypatch, tmp_path):
    with listener() as seen:
        poison_environment(monkeypatch, tmp_path, int(seen[0]), Keys("AKIAENV", "env-secret"))
        session = isolated_session()
        assert session.get_config_variable("region") is None and session.get_scoped_config() == {}
        urls = {service: session.create_client(service, region_name="eu-central-1", aws_access_key_id="AKIA",
                                                aws_secret_access_key="x").meta.endpoint_url
                for service in ("athena", "glue", "sts")}
    assert urls == {s: f"https://{s}.eu-central-1.amazonaws.com" for s in ("athena", "glue", "sts")}


# --- egress: blocked addresses, redirects, stalls ------------------------------------------------


class Redirect(QuietHandler):
    """Every request: 307 to the metadata address."""

    def _redirect(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(307)
        self.send_header("Location", f"http://{BLOCKED_IP}/latest/meta-data/iam/security-credentials/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_HEAD = _redirect


def test_blocked_endpoint_and_redirect_fail_at_tcp_without_connecting(moto_server, keys, allow_loopback):  # noqa: F811
    with http_server(Redirect) as redirecting, connect_attempts() as attempts:
        blocked = get_connector("athena").test(config(moto_server, keys, endpoint_url=f"http://{BLOCKED_IP}"))
        redirected = get_connector("athena").test(config(moto_server, keys, endpoint_url=redirecting))
        refreshed = pytest.raises(Exception, get_connector("athena").introspect,
                                  config(moto_server, keys, endpoint_url=f"http://{BLOCKED_IP}:80"))
    assert (blocked.stage, blocked.message) == ("tcp", closed_message(f"http://{BLOCKED_IP}:80"))
    assert (redirected.stage, redirected.message) == ("tcp", closed_message(redirecting))
    assert refreshed.value.stage == "introspect"  # type: ignore[attr-defined]
    assert never_contacted(attempts), attempts


def test_stalled_endpoint_fails_within_the_timeout(moto_server, keys, allow_loopback):  # noqa: F811
    assert_stall_reads_as_closed(
        lambda url: get_connector("athena").test(config(moto_server, keys, timeout=2, endpoint_url=url)), 2)


# --- introspection: 1,000 tables in pages --------------------------------------------------------


def test_thousand_tables_in_ten_requests(moto_server, allow_loopback):  # noqa: F811
    seed(moto_server, database="wide", tables=1000)
    keys = moto_server.create_user("reader", secret=CANARY)
    moto_server.requests.clear()
    tables = get_connector("athena").introspect(config(moto_server, keys, database="wide"))
    assert len(tables) == 1000 and len({t.name for t in tables}) == 1000
    assert all(len(t.columns) == 3 and t.kind == "table" and t.schema == "wide" for t in tables)
    assert moto_server.count("glue", "GetTables") == 10  # Glue's page is 100 tables: requests = pages
    assert moto_server.requests == [("glue", "GetTables")] * 10


# --- secrets in logs ----------------------------------------------------------------------------


def test_logs_never_carry_the_secret(moto_server, keys, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    get_connector("athena").test_and_introspect(config(moto_server, keys))
    get_connector("athena").test(config(moto_server, Keys(keys.access_key_id, CANARY + "-wrong")))
    get_connector("athena").introspect(config(moto_server, keys))
    assert_logs_carry_no_secret(caplog, CANARY)


# --- Databrain adapter --------------------------------------------------------------------------


def databrain_body(server: MotoServer, keys: Keys, database: str = "sales") -> dict:
    return {"datasourceType": "athena", "credentials": {
        "name": "athena-prod", "database": database, "s3OutputLocation": f"s3://{BUCKET}/q/",
        "accessKeyId": keys.access_key_id, "region": server.region, "secretAccessKey": keys.secret_access_key}}


def test_databrain_put_keeps_endpoint_url_and_recaches(api, allow_loopback, moto_server, keys):  # noqa: F811
    created = api.post(URL, {"name": "athena-prod", "type": "athena", "connection": connection(moto_server, keys),
                             "credentials": {"secret_access_key": CANARY}, "connection_timeout": 3}, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    seed(moto_server, database="finance")
    moto_server.client("glue").create_table(DatabaseName="finance", TableInput={
        "Name": "ledger", "StorageDescriptor": {"Columns": [{"Name": "entry", "Type": "string"}]}})

    response = api.put(DB, databrain_body(moto_server, keys, database="finance"), format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": "athena-prod"}
    core = api.get(f"{URL}{pk}/").json()
    assert core["connection"]["endpoint_url"] == moto_server.endpoint_url  # not in Databrain's structure: kept
    assert core["connection"]["database"] == "finance" and core["connection"]["workgroup"] == "analytics"
    assert core["last_test"]["ok"] and core["schema"]["status"] == "ready"
    names = {t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]}
    assert "ledger" in names and "orders" in names  # re-cached from the new database ("finance" has both)

    wrong = api.put(DB, databrain_body(moto_server, Keys(keys.access_key_id, "wrong-secret")), format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "CREDENTIAL_TEST_FAILED", wrong.json()
    assert wrong.json()["error"]["stage"] == "auth"
    assert CANARY not in str(wrong.json())
    assert api.get(f"{URL}{pk}/").json()["connection"]["database"] == "finance"  # nothing changed


# --- the data catalog (Athena's "data source"; Databrain's "Datasource ID") ---------------------------


@pytest.fixture
def catalog_ids(monkeypatch) -> list[str]:
    """moto's Glue ignores ``CatalogId`` (every request reads the caller's account); AWS reads the catalog
    of the account it names. Here the account of the CatalogId picks moto's Glue backend, as on AWS for a
    catalog shared with the caller. Yields the CatalogId of every Glue request ("" when none was sent)."""
    from moto.glue.models import glue_backends
    from moto.glue.responses import GlueResponse

    seen: list[str] = []

    def backend(self: Any) -> Any:
        catalog_id = str(self._get_param("CatalogId") or "")
        seen.append(catalog_id)
        return glue_backends[catalog_id.partition(":")[0] or self.current_account][self.region]

    monkeypatch.setattr(GlueResponse, "glue_backend", property(backend))
    return seen


def seed_partner(server: MotoServer) -> None:
    """Account PARTNER's Glue catalog with database "partner_sales" (table "shipments"), registered in
    this account's Athena as the GLUE data catalog "partner"; a Lambda catalog "federated" beside it."""
    glue = server.client("glue")
    glue.create_database(CatalogId=PARTNER, DatabaseInput={"Name": "partner_sales"})
    glue.create_table(CatalogId=PARTNER, DatabaseName="partner_sales", TableInput={
        "Name": "shipments", "StorageDescriptor": {"Columns": [{"Name": "tracking", "Type": "string"}]}})
    athena = server.client("athena")
    athena.create_data_catalog(Name="partner", Type="GLUE", Parameters={"catalog-id": PARTNER})
    athena.create_data_catalog(Name="federated", Type="LAMBDA", Parameters={
        "function": "arn:aws:lambda:us-east-1:123456789012:function:connector"})


def test_the_default_catalog_is_the_accounts_glue_catalog_without_a_lookup(moto_server, keys, catalog_ids):  # noqa: F811
    for catalog in (None, "AwsDataCatalog"):
        moto_server.requests.clear()
        catalog_ids.clear()
        changes = {} if catalog is None else {"data_catalog": catalog}
        result = get_connector("athena").test_and_introspect(config(moto_server, keys, **changes))
        assert result.ok and {t.name for t in result.tables or []} == {"orders", "daily"}, result
        assert result.stages[3].message.startswith("Database 'sales' found.")
        assert not [r for r in moto_server.requests if r[1].startswith("GET /data-catalogs")]  # no GetDataCatalog
        assert set(catalog_ids) == {""}  # Glue requests name no CatalogId: the caller's own catalog


def test_a_glue_catalog_of_another_account_is_read_with_its_catalog_id(moto_server, keys, catalog_ids):  # noqa: F811
    seed_partner(moto_server)
    catalog_ids.clear()
    moto_server.requests.clear()
    partner = config(moto_server, keys, data_catalog="partner", database="partner_sales")
    result = get_connector("athena").test_and_introspect(partner)
    assert result.ok, result
    assert result.stages[3].message == (f"Data catalog 'partner' (Glue, catalog {PARTNER}). Database 'partner_sales' "
                                        f"found. Workgroup 'analytics' is enabled. Output bucket '{BUCKET}' exists.")
    assert [(t.schema, t.name) for t in result.tables or []] == [("partner_sales", "shipments")]
    assert ("athena", "GET /data-catalogs/partner") in moto_server.requests  # Athena GetDataCatalog
    assert set(catalog_ids) == {PARTNER}  # GetDatabase and GetTables named the partner's catalog
    catalog_ids.clear()
    assert [t.name for t in get_connector("athena").introspect(partner)] == ["shipments"]  # a refresh too
    assert set(catalog_ids) == {PARTNER}
    own = get_connector("athena").test(config(moto_server, keys, database="partner_sales"))  # not in this account
    assert (own.stage, own.message) == (
        "database", "Database 'partner_sales' was not found in the Glue Data Catalog (us-east-1).")
    missing = get_connector("athena").test(config(moto_server, keys, data_catalog="partner"))  # "sales" is ours
    assert (missing.stage, missing.message) == ("database", "Database 'sales' was not found in data catalog 'partner'.")


@pytest.mark.parametrize(("catalog", "message"), [
    ("nope", "Data catalog 'nope' was not found."),
    ("federated", "Data catalog 'federated' is a LAMBDA catalog: only Glue catalogs (AwsDataCatalog or a Glue "
                  "catalog of another account) can be read."),
    ("bad id", "The data catalog must be an Athena data catalog name."),
])
def test_unknown_or_non_glue_catalogs_fail_at_database(moto_server, keys, catalog_ids, catalog, message):  # noqa: F811
    seed_partner(moto_server)
    catalog_ids.clear()
    result = get_connector("athena").test(config(moto_server, keys, data_catalog=catalog))
    assert (result.ok, result.stage, result.message) == (False, "database", message)
    assert catalog_ids == []  # no Glue request for a catalog that cannot be read
    with pytest.raises(Exception) as refreshed:
        get_connector("athena").introspect(config(moto_server, keys, data_catalog=catalog))
    assert (refreshed.value.stage, refreshed.value.message) == ("introspect", message)  # type: ignore[attr-defined]


def test_a_glue_catalog_whose_catalog_id_is_malformed_fails_at_database(moto_server, keys, catalog_ids):  # noqa: F811
    moto_server.client("athena").create_data_catalog(Name="odd", Type="GLUE", Parameters={"catalog-id": "x/../y"})
    result = get_connector("athena").test(config(moto_server, keys, data_catalog="odd"))
    assert (result.stage, result.message) == ("database", "Data catalog 'odd' has a catalog-id that is not a Glue "
                                                          "catalog ID.")
    assert catalog_ids == []


def test_native_api_stores_the_catalog_with_its_default(api, allow_loopback, moto_server, keys, catalog_ids):  # noqa: F811
    seed_partner(moto_server)
    base = {"name": "athena-cat", "type": "athena", "credentials": {"secret_access_key": CANARY},
            "connection_timeout": 3}
    created = api.post(URL, {**base, "connection": connection(moto_server, keys)}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["connection"]["data_catalog"] == "AwsDataCatalog"
    pk = created.json()["id"]
    bad = api.patch(f"{URL}{pk}/", {"connection": {"data_catalog": "no such/catalog"}}, format="json")
    assert bad.status_code == 400 and "connection.data_catalog" in bad.json()["errors"], bad.json()
    moved = api.patch(f"{URL}{pk}/", {"connection": {"data_catalog": "partner", "database": "partner_sales"}},
                      format="json")
    assert moved.status_code == 200, moved.json()
    core = api.get(f"{URL}{pk}/").json()
    assert core["connection"]["data_catalog"] == "partner" and core["schema"]["status"] == "ready"
    assert [t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]] == ["shipments"]
    before = stored_state(pk)
    lam = api.patch(f"{URL}{pk}/", {"connection": {"data_catalog": "federated"}}, format="json")
    assert lam.status_code == 400 and (lam.json()["code"], lam.json()["stage"]) == (
        "CREDENTIAL_TEST_FAILED", "database"), lam.json()
    assert stored_state(pk) == before


def test_databrain_datasource_id_is_the_data_catalog(api, allow_loopback, moto_server, keys, catalog_ids):  # noqa: F811
    """The seed's "Datasource ID (optional)": accepted, stored (as connection.data_catalog), used (the test
    and the schema read that catalog); omitted, it returns to AwsDataCatalog (the structure is complete)."""
    seed_partner(moto_server)
    created = api.post(URL, {"name": "athena-prod", "type": "athena", "connection": connection(moto_server, keys),
                             "credentials": {"secret_access_key": CANARY}, "connection_timeout": 3}, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    body = databrain_body(moto_server, keys, database="partner_sales")
    body["credentials"]["datasourceId"] = "partner"
    response = api.put(DB, body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": "athena-prod"}
    core = api.get(f"{URL}{pk}/").json()
    assert core["connection"]["data_catalog"] == "partner" and core["last_test"]["ok"]
    assert core["schema"]["status"] == "ready" and core["schema"]["version"] == 2
    assert [t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]] == ["shipments"]
    assert PARTNER in catalog_ids

    before = stored_state(pk)
    for catalog, stage in (("nope", "database"), ("federated", "database")):
        body["credentials"]["datasourceId"] = catalog
        refused = api.put(DB, body, format="json")
        error = refused.json()["error"]
        assert (refused.status_code, error["code"], error["stage"]) == (400, "CREDENTIAL_TEST_FAILED", stage)
        assert f"Data catalog '{catalog}'" in error["message"]
    body["credentials"]["datasourceId"] = "not a catalog!"
    invalid = api.put(DB, body, format="json")
    assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "INVALID_REQUEST_BODY", invalid.json()
    assert "credentials.datasourceId" in invalid.json()["error"]["errors"]
    assert stored_state(pk) == before

    omitted = api.put(DB, databrain_body(moto_server, keys), format="json")  # no datasourceId: the default
    assert omitted.status_code == 200, omitted.json()
    core = api.get(f"{URL}{pk}/").json()
    assert core["connection"]["data_catalog"] == "AwsDataCatalog" and core["connection"]["database"] == "sales"
    assert {t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]} == {"orders", "daily"}
