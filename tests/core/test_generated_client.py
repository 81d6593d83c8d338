"""A Python SDK generated from the served OpenAPI document drives a full story against the live server.

openapi-python-client generates a client from ``/api/schema/`` into a temporary folder (with
``--fail-on-warning``: any warning about the schema fails the test), the test imports it and, with
its typed models only (no hand-written JSON), against the real app on a loopback port and a real
PostgreSQL cluster with password auth:

- creates a PostgreSQL data source (tested for real), PATCHes it, PUTs it, reads its cached schema
  and sets its tenancy settings;
- creates a workflow, adds the data source, adds nodes reading its tables, then repoints the
  workflow data source to another source with ``mapped_tables``: a dry run first, then for real.

The per-type ``connection`` union must come out as typed models (``PostgresqlConnection``...).

A second story PATCHes one connection field of a source of each type family (PostgreSQL, MySQL,
SQLite, CSV, and BigQuery saved untested) through the client and compares the stored row and
secrets before and after: nothing the caller did not send changes (no model default is sent), and
a PATCH body decodes to its own type's member (with ``type``) or keeps its connection as sent
(without).
"""

from __future__ import annotations

import copy
import importlib
import os
import shutil
import subprocess
import sys
import typing

import pytest

from tests.support.live import live_http_server

GENERATOR = shutil.which("openapi-python-client", path=os.path.dirname(sys.executable)) or shutil.which(
    "openapi-python-client"
)
PACKAGE = "dsp_client"


@pytest.fixture
def server(transactional_db, settings, org):
    with live_http_server(settings) as live:
        yield live


@pytest.fixture
def second_database(pg_password_server):
    """A second database in the cluster where `customers` is called `clients` (for the repoint)."""
    import psycopg

    c = pg_password_server
    dsn = dict(host=c.host, port=c.port, user=c.user, password=c.password, autocommit=True)
    with psycopg.connect(**dsn, dbname=c.database) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS customers (id integer PRIMARY KEY, tenant_id integer NOT NULL, "
                     "name text)")
        conn.execute("CREATE TABLE IF NOT EXISTS orders (id integer PRIMARY KEY, customer_id integer)")
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'sdk_v2'").fetchone():
            conn.execute("CREATE DATABASE sdk_v2")
    with psycopg.connect(**dsn, dbname="sdk_v2") as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS clients (id integer PRIMARY KEY, tenant_id integer NOT NULL, "
                     "name text)")
        conn.execute("CREATE TABLE IF NOT EXISTS orders (id integer PRIMARY KEY, customer_id integer)")
    return "sdk_v2"


def generate_client(server, tmp_path) -> object:
    """Fetch the schema over HTTP, generate the SDK into ``tmp_path`` and import it."""
    if GENERATOR is None:
        message = "openapi-python-client is not installed (pip install openapi-python-client)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    status, _, document = server.request("GET", "/api/schema/?format=json")
    assert status == 200
    schema_path = tmp_path / "openapi.json"
    import json

    schema_path.write_text(json.dumps(document))
    config = tmp_path / "generator.yaml"
    config.write_text(f"project_name_override: {PACKAGE}\npackage_name_override: {PACKAGE}\npost_hooks: []\n")
    out = tmp_path / "sdk"
    result = subprocess.run(
        [GENERATOR, "generate", "--path", str(schema_path), "--config", str(config), "--meta", "none",
         "--output-path", str(out), "--fail-on-warning"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Warning" not in output and "WARNING" not in output, output[-6000:]
    sys.path.insert(0, str(tmp_path))
    sys.modules.pop(PACKAGE, None)
    try:
        os.rename(out, tmp_path / PACKAGE)
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))


def _mod(name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_generated_sdk_drives_the_whole_story(server, tmp_path, api, pg_password_server, second_database):
    generate_client(server, tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        _story(server, api.raw_token, pg_password_server, second_database)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _story(server, token, cluster, second_db) -> None:
    m = _mod("models")
    ds_api = "api.data_sources."
    create = _mod(ds_api + "api_v1_data_sources_create")
    retrieve = _mod(ds_api + "api_v1_data_sources_retrieve")
    patch = _mod(ds_api + "api_v1_data_sources_partial_update")
    put = _mod(ds_api + "api_v1_data_sources_update")
    schema_get = _mod(ds_api + "api_v1_data_sources_schema_retrieve")
    tenancy_put = _mod(ds_api + "api_v1_data_sources_tenancy_update")
    client = _mod("client").AuthenticatedClient(base_url=server.url, token=token, raise_on_unexpected_status=True)

    # --- the per-type union came out as typed models ---------------------------------------------
    for name in ("PostgresqlConnection", "PostgresqlCredentials", "PostgresqlDataSourceRequest",
                 "PostgresqlDataSource", "PatchedPostgresqlConnection", "MysqlConnection", "SnowflakeConnection",
                 "PatchedPostgresqlDataSourceRequest", "PatchedUntypedDataSourceRequest",
                 "TableTenancySettingsRequest", "DatabaseTenancySettingsRequest",
                 "DataSourceDryRun", "Error"):
        assert hasattr(m, name), name
    for model, connection in (("PostgresqlDataSource", "PostgresqlConnection"),
                              ("PostgresqlDataSourceRequest", "PostgresqlConnection"),
                              ("SnowflakeDataSource", "SnowflakeConnection")):
        assert connection in str(getattr(m, model).__annotations__["connection"]), model

    def pg_request(name: str, database: str, **extra) -> object:
        return m.PostgresqlDataSourceRequest(
            name=name,
            type_=m.PostgresqlDataSourceRequestType.POSTGRESQL,
            connection=m.PostgresqlConnection(
                host=cluster.host, port=cluster.port, database=database, username=cluster.user,
                ssl=m.Ssl(mode=m.SslSSLMode.DISABLE),
            ),
            credentials=m.PostgresqlCredentials(password=cluster.password),
            **extra,
        )

    # --- create (tested against the real cluster), then read back ------------------------------
    created = create.sync_detailed(client=client, body=pg_request("Warehouse", cluster.database, tags=["sdk"]))
    assert created.status_code == 201, created.content
    ds = created.parsed
    assert isinstance(ds, m.PostgresqlDataSource), type(ds)
    assert isinstance(ds.connection, m.PostgresqlConnection)
    assert ds.connection.host == cluster.host and ds.connection.port == cluster.port
    assert ds.credentials_set == ["password"] and ds.last_test.ok is True
    assert ds.schema.status == "ready" and ds.schema.version == 1
    assert cluster.password not in created.content.decode()
    got = retrieve.sync_detailed(ds.id, client=client)
    assert got.status_code == 200 and isinstance(got.parsed, m.PostgresqlDataSource)
    etag = got.headers["ETag"]

    # --- PATCH: only what is sent changes (no `type`: the untyped member) ---------------------------
    patched = patch.sync_detailed(
        ds.id, client=client, if_match=etag,
        body=m.PatchedUntypedDataSourceRequest(description="Edited from the SDK", connection_pool_size=7),
    )
    assert patched.status_code == 200, patched.content
    assert isinstance(patched.parsed, m.PostgresqlDataSource)
    assert patched.parsed.description == "Edited from the SDK" and patched.parsed.connection_pool_size == 7
    assert patched.parsed.tags == ["sdk"] and patched.parsed.version == ds.version + 1
    stale = patch.sync_detailed(ds.id, client=client, if_match=etag,
                                body=m.PatchedUntypedDataSourceRequest(description="lost update"))
    assert stale.status_code == 412 and isinstance(stale.parsed, m.Error)

    # --- PUT: the whole writable representation; omitted optional fields return to defaults ------------
    replaced = put.sync_detailed(
        ds.id, client=client, if_match=patched.headers["ETag"],
        body=pg_request("Warehouse", cluster.database, description="Replaced"),
    )
    assert replaced.status_code == 200, replaced.content
    assert replaced.parsed.description == "Replaced" and replaced.parsed.tags == []
    assert replaced.parsed.connection_pool_size != 7  # back to the default
    assert replaced.parsed.credentials_set == ["password"]

    # --- the cached schema ------------------------------------------------------------------------------
    snapshot = schema_get.sync_detailed(ds.id, client=client)
    assert snapshot.status_code == 200 and isinstance(snapshot.parsed, m.SchemaSnapshot)
    tables = {t.name: t for t in snapshot.parsed.tables}
    assert {"customers", "orders"} <= tables.keys()
    assert {c.name for c in tables["customers"].columns} >= {"id", "tenant_id", "name"}

    # --- tenancy ----------------------------------------------------------------------------------------
    tenancy = tenancy_put.sync_detailed(
        ds.id, client=client,
        body=m.TableTenancySettingsRequest(  # the TABLE member of the union on `level`: every field required
            level=m.TableTenancySettingsRequestLevel.TABLE,
            client_column_type=m.TableTenancySettingsRequestClientColumnType.NUMBER,
            schema="public", table="customers", client_column="tenant_id", primary_key_column="id",
        ),
    )
    assert tenancy.status_code == 200, tenancy.content
    assert isinstance(tenancy.parsed, m.TenancySettings) and tenancy.parsed.table == "customers"

    _workflow_story(client, m, create, pg_request, second_db, tables)


def _workflow_story(client, m, create, pg_request, second_db, tables) -> None:
    wf_create = _mod("api.workflows.api_v1_workflows_create")  # one module per tag
    wds_create = _mod("api.workflow_data_sources.api_v1_workflows_data_sources_create")
    node_create = _mod("api.workflow_nodes.api_v1_workflows_nodes_create")
    repoint = _mod("api.workflow_data_sources.api_v1_workflows_data_sources_partial_update")
    node_get = _mod("api.workflow_nodes.api_v1_workflows_nodes_retrieve")

    v2 = create.sync_detailed(client=client, body=pg_request("Warehouse v2", second_db))
    assert v2.status_code == 201, v2.content

    workflow = wf_create.sync_detailed(client=client, body=m.WorkflowWriteRequest(name="Sales"))
    assert workflow.status_code == 201, workflow.content
    wf = workflow.parsed
    assert isinstance(wf, m.Workflow) and wf.reference.startswith("acme.sales:")

    added = wds_create.sync_detailed(str(wf.id), client=client,
                                     body=m.SourceWriteRequest(source_data_source="acme.warehouse"))
    assert added.status_code == 201, added.content
    wds = added.parsed
    assert isinstance(wds, m.WorkflowDataSource)

    def node(name: str, table: str) -> object:
        body = m.NodeWriteRequest(
            name=name, inputs=[m.NodeInputWriteRequest(data_source=wds.id, table=table)],
        )
        response = node_create.sync_detailed(str(wf.id), client=client, body=body)
        assert response.status_code == 201, response.content
        return response.parsed

    reader = node("Clean customers", "customers")
    orders = node("Orders", "orders")
    assert isinstance(reader, m.Node) and reader.inputs[0].table.name == "customers"
    assert reader.inputs[0].table.reference_id == tables["customers"].reference_id

    # Repoint to the other source: `customers` is `clients` there, so it needs an explicit mapping.
    body = m.PatchedRepointRequest(
        source_data_source="acme.warehouse_v2",
        mapped_tables=m.PatchedRepointRequestMappedTables.from_dict({"customers": "clients"}),
    )
    plan = repoint.sync_detailed(str(wf.id), str(wds.id), client=client, body=body, dry_run=True)
    assert plan.status_code == 200, plan.content
    assert isinstance(plan.parsed, m.RepointPlan) and plan.parsed.dry_run is True
    assert plan.parsed.nodes_affected == 2
    unchanged = node_get.sync_detailed(str(wf.id), str(reader.id), client=client)
    assert unchanged.parsed.inputs[0].table.name == "customers"  # the dry run saved nothing

    done = repoint.sync_detailed(str(wf.id), str(wds.id), client=client, body=body)
    assert done.status_code == 200, done.content
    assert isinstance(done.parsed, m.WorkflowDataSource)
    moved = node_get.sync_detailed(str(wf.id), str(reader.id), client=client).parsed
    assert moved.inputs[0].table.name == "clients"
    kept = node_get.sync_detailed(str(wf.id), str(orders.id), client=client).parsed
    assert kept.inputs[0].table.name == "orders"


# --- PATCH through the generated client: only what is sent changes, in every type family ----------------

#: Stored values a PATCH changes as a consequence, not because the caller set them.
DERIVED = {"version", "updated_at", "updated_by_user_id", "updated_by_token_id", "status", "last_test",
           "schema_status", "schema_error", "schema_refreshed_at", "schema_version", "schema_status_at",
           "schema_checked_at", "schema_claim", "schema_table_count"}


def _stored(pk: int) -> dict:
    """The stored row (minus what an update derives) and the stored secrets' ciphertexts."""
    from datasources.models import Credential, DataSource

    row = DataSource.objects.filter(pk=pk).values().get()
    secrets = dict(Credential.objects.filter(data_source_id=pk).values_list("field", "ciphertext"))
    return {"row": {k: v for k, v in row.items() if k not in DERIVED}, "secrets": secrets}


def _decode(union, data: dict):
    """Decode ``data`` the way the generated client decodes a union: the first member that parses."""
    for member in typing.get_args(union):
        if member is type(None) or not hasattr(member, "from_dict"):
            continue
        try:
            return member.from_dict(data)
        except (TypeError, ValueError, AttributeError, KeyError):
            continue
    raise AssertionError(f"no member decodes {data}")


def test_generated_patch_changes_only_what_is_sent(server, tmp_path, api, pg_password_server, second_database,
                                                  sqlite_file, _file_root):
    generate_client(server, tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        _patch_story(server, api.raw_token, pg_password_server, second_database, sqlite_file, _file_root)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _patch_story(server, token, cluster, second_db, sqlite_file, file_root) -> None:
    m = _mod("models")
    ds_api = "api.data_sources."
    create = _mod(ds_api + "api_v1_data_sources_create")
    patch = _mod(ds_api + "api_v1_data_sources_partial_update")
    client = _mod("client").AuthenticatedClient(base_url=server.url, token=token, raise_on_unexpected_status=True)
    body_union = typing.get_type_hints(patch.sync_detailed)["body"]

    # No PATCH model carries a default: built empty, each one sends nothing (nested ones too).
    for name in dir(m):
        cls = getattr(m, name)
        if name.startswith("Patched") and isinstance(cls, type) and hasattr(cls, "to_dict"):
            try:
                empty = cls()
            except TypeError:  # a required `type`
                continue
            assert empty.to_dict() == {}, (name, empty.to_dict())

    for name in ("a.csv", "b.csv"):
        with open(os.path.join(file_root, name), "w") as fh:
            fh.write("id;name\n1;Ada\n")
    with open(os.path.join(file_root, "copy.db"), "wb") as out, open(os.path.join(file_root, sqlite_file), "rb") as src:
        out.write(src.read())

    # (create body, PATCH body, where the sent field is stored, value, test the connection?)
    families = [
        ("postgresql", m.PostgresqlDataSourceRequest(
            name="pg", type_=m.PostgresqlDataSourceRequestType.POSTGRESQL,
            connection=m.PostgresqlConnection(
                host=cluster.host, port=cluster.port, database=cluster.database, username=cluster.user,
                ssl=m.Ssl(mode=m.SslSSLMode.DISABLE)),
            credentials=m.PostgresqlCredentials(password=cluster.password), connection_pool_size=9),
         m.PatchedPostgresqlDataSourceRequest(
            type_=m.PatchedPostgresqlDataSourceRequestType.POSTGRESQL,
            connection=m.PatchedPostgresqlConnection(database=second_db)),
         ("database", second_db), True),
        ("mysql", m.MysqlDataSourceRequest(
            name="my", type_=m.MysqlDataSourceRequestType.MYSQL,
            connection=m.MysqlConnection(host="db.internal.example", port=3307, username="app", database="shop"),
            credentials=m.MysqlCredentials(password="s3cret-mysql"), tags=["mysql"]),
         m.PatchedMysqlDataSourceRequest(type_=m.PatchedMysqlDataSourceRequestType.MYSQL,
                                         connection=m.PatchedMysqlConnection(database="reporting")),
         ("database", "reporting"), False),
        ("sqlite", m.SqliteDataSourceRequest(
            name="lite", type_=m.SqliteDataSourceRequestType.SQLITE,
            connection=m.SqliteConnection(path=sqlite_file, read_only=False)),
         m.PatchedSqliteDataSourceRequest(type_=m.PatchedSqliteDataSourceRequestType.SQLITE,
                                          connection=m.PatchedSqliteConnection(path="copy.db")),
         ("path", "copy.db"), True),
        ("csv", m.CsvDataSourceRequest(
            name="sheet", type_=m.CsvDataSourceRequestType.CSV,
            connection=m.CsvConnection(path="a.csv", delimiter=";", has_header=False)),
         m.PatchedCsvDataSourceRequest(type_=m.PatchedCsvDataSourceRequestType.CSV,
                                       connection=m.PatchedCsvConnection(path="b.csv")),
         ("path", "b.csv"), True),
        ("bigquery", m.BigqueryDataSourceRequest(
            name="bq", type_=m.BigqueryDataSourceRequestType.BIGQUERY,
            connection=m.BigqueryConnection(project_id="acme-analytics", location="EU"),
            credentials=m.BigqueryCredentials(service_account_json='{"type": "service_account"}')),
         m.PatchedBigqueryDataSourceRequest(type_=m.PatchedBigqueryDataSourceRequestType.BIGQUERY,
                                            connection=m.PatchedBigqueryConnection(dataset_id="sales")),
         ("dataset_id", "sales"), False),
    ]
    for key, create_body, patch_body, (field, value), tested in families:
        created = create.sync_detailed(client=client, body=create_body, test_connection=tested)
        assert created.status_code == 201, (key, created.content)
        pk = created.parsed.id
        before = _stored(pk)

        # The body is exactly what was set, and decodes back to its own type's member.
        sent = patch_body.to_dict()
        assert sent == {"type": key, "connection": {field: value}}, (key, sent)
        decoded = _decode(body_union, sent)
        assert type(decoded) is type(patch_body) and decoded.to_dict() == sent, (key, type(decoded))

        answer = patch.sync_detailed(pk, client=client, body=patch_body, test_connection=tested)
        assert answer.status_code == 200, (key, answer.content)
        assert type(answer.parsed).__name__ == type(created.parsed).__name__, key
        after = _stored(pk)
        expected = copy.deepcopy(before)
        expected["row"]["connection"][field] = value
        assert after == expected, key

        # Without `type`, a connection is kept as sent (it was decoded as Athena's and sent as {}).
        untyped = {"connection": {field: value}, "description": f"{key} again"}
        decoded = _decode(body_union, untyped)
        assert isinstance(decoded, m.PatchedUntypedDataSourceRequest), (key, type(decoded))
        assert decoded.to_dict() == untyped, key
        answer = patch.sync_detailed(pk, client=client, body=decoded, test_connection=tested)
        assert answer.status_code == 200, (key, answer.content)
        expected["row"]["description"] = f"{key} again"
        assert _stored(pk) == expected, key
