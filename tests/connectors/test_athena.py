"""Amazon Athena against moto's server (STS, Glue, Athena, S3 with signature checks) via endpoint_url.

The connector is the real one with the real botocore; moto is reached over loopback HTTP
(tests/support/moto_server.py says what it corrects in moto). Loopback stand-ins here only
redirect, stall or count connections.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from datasources.connectors import ConnectionConfig, get_connector
from datasources.connectors.athena import isolated_session
from tests.support.contract import BLOCKED_IP, Contract, connect_attempts, run_contract
from tests.support.moto_server import Keys, MotoServer, moto_server, moto_session_server  # noqa: F401

URL = "/api/v1/data-sources/"
DB = "/compat/databrain/api/v2/datasource"
CANARY = "canary-athena-2b7f0e9d41c35a86-secret"
BUCKET = "athena-results"
EMULATOR_LOGGERS = ("moto", "werkzeug")  # the AWS side's logs (moto logs request headers at DEBUG)


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


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def keys(moto_server: MotoServer, allow_loopback) -> Keys:  # noqa: F811 - the fixture
    seed(moto_server)
    return moto_server.create_user("athena-reader", secret=CANARY)


# --- the contract, native API -------------------------------------------------------------------


def test_contract(api, allow_loopback, caplog, moto_server, keys):  # noqa: F811
    contract = Contract(
        type_key="athena",
        connection=connection(moto_server, keys),
        credentials={"secret_access_key": CANARY},
        tables={"orders", "daily"},
        patch={"workgroup": "primary"},
        wrong_credentials={"secret_access_key": "wrong-secret-access-key"},
        unreachable={"endpoint_url": f"http://127.0.0.1:{closed_port()}"},
        blocked={"endpoint_url": f"http://{BLOCKED_IP}"},
        canary=CANARY,
        stages=("resolve", "tcp", "auth", "database"),
    )
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


@contextmanager
def listener() -> Iterator[list[object]]:
    """A loopback port that records every connection (stands for a proxy, IMDS, a configured endpoint)."""
    seen: list[object] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, address = server.accept()
            except OSError:
                continue
            seen.append(address)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    seen.append(server.getsockname()[1])  # seen[0]: the port
    try:
        yield seen
    finally:
        stop.set()
        thread.join(2)
        server.close()


def poison_environment(monkeypatch, tmp_path, port: int, keys: Keys) -> None:
    """Every AWS_* knob botocore would read, pointed at the recorder or at the *right* keys."""
    aws = tmp_path / ".aws"
    aws.mkdir()
    trap = f"http://127.0.0.1:{port}"
    (aws / "config").write_text(f"[default]\nregion = eu-west-1\nendpoint_url = {trap}\nca_bundle = /nonexistent\n"
                                f"[profile absent]\nendpoint_url = {trap}\n")
    (aws / "credentials").write_text(f"[default]\naws_access_key_id = {keys.access_key_id}\n"
                                     f"aws_secret_access_key = {keys.secret_access_key}\n")
    env = {
        "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(aws / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"), "AWS_PROFILE": "absent",
        "AWS_DEFAULT_PROFILE": "absent", "AWS_ACCESS_KEY_ID": keys.access_key_id,
        "AWS_SECRET_ACCESS_KEY": keys.secret_access_key, "AWS_SESSION_TOKEN": "session-token",
        "AWS_ENDPOINT_URL": trap, "AWS_ENDPOINT_URL_GLUE": trap, "AWS_ENDPOINT_URL_STS": trap,
        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1", "AWS_CA_BUNDLE": "/nonexistent",
        "REQUESTS_CA_BUNDLE": "/nonexistent", "AWS_DATA_PATH": str(tmp_path),
        "HTTP_PROXY": trap, "HTTPS_PROXY": trap, "http_proxy": trap, "https_proxy": trap, "NO_PROXY": "",
        "no_proxy": "", "AWS_EC2_METADATA_SERVICE_ENDPOINT": trap, "AWS_EC2_METADATA_DISABLED": "false",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{trap}/creds", "AWS_MAX_ATTEMPTS": "5", "AWS_RETRY_MODE": "legacy",
        "AWS_USE_FIPS_ENDPOINT": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_environment_and_files_are_ignored(moto_server, keys, monkeypatch, tmp_path):  # noqa: F811
    admin = moto_server.admin
    with listener() as seen:
        poison_environment(monkeypatch, tmp_path, int(seen[0]), admin)  # valid keys in env and files
        passed = get_connector("athena").test_and_introspect(config(moto_server, keys))
        wrong = get_connector("athena").test(config(moto_server, Keys(keys.access_key_id, "not-the-secret")))
        introspected = get_connector("athena").introspect(config(moto_server, keys))
    assert passed.ok and passed.tables, passed
    assert wrong.stage == "auth"  # the environment's valid keys were not used instead
    assert {t.name for t in introspected} == {"orders", "daily"}
    assert seen[1:] == []  # no proxy, IMDS, container endpoint or configured endpoint was contacted


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


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


class Redirect(BaseHTTPRequestHandler):
    """Every request: 307 to the metadata address."""

    def _redirect(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(307)
        self.send_header("Location", f"http://{BLOCKED_IP}/latest/meta-data/iam/security-credentials/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_HEAD = _redirect

    def log_message(self, *args: object) -> None:
        pass


class Stall(BaseHTTPRequestHandler):
    """Answers the HEAD probe, then never answers an API call."""

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        time.sleep(8)

    def log_message(self, *args: object) -> None:
        pass


def test_blocked_endpoint_and_redirect_fail_at_tcp_without_connecting(moto_server, keys, allow_loopback):  # noqa: F811
    with http_server(Redirect) as redirecting, connect_attempts() as attempts:
        blocked = get_connector("athena").test(config(moto_server, keys, endpoint_url=f"http://{BLOCKED_IP}"))
        redirected = get_connector("athena").test(config(moto_server, keys, endpoint_url=redirecting))
        refreshed = pytest.raises(Exception, get_connector("athena").introspect,
                                  config(moto_server, keys, endpoint_url=f"http://{BLOCKED_IP}:80"))
    assert (blocked.stage, blocked.message) == ("tcp", f"Could not connect to the server at {BLOCKED_IP}:80.")
    port = int(redirecting.rsplit(":", 1)[1])
    assert (redirected.stage, redirected.message) == ("tcp", f"Could not connect to the server at 127.0.0.1:{port}.")
    assert refreshed.value.stage == "introspect"  # type: ignore[attr-defined]
    assert not [a for a in attempts if isinstance(a, tuple) and a and a[0] == BLOCKED_IP], attempts


def test_stalled_endpoint_fails_within_the_timeout(moto_server, keys, allow_loopback):  # noqa: F811
    with http_server(Stall) as stalling:
        start = time.monotonic()
        result = get_connector("athena").test(config(moto_server, keys, timeout=2, endpoint_url=stalling))
        elapsed = time.monotonic() - start
    assert elapsed < 2 + 1, elapsed
    port = int(stalling.rsplit(":", 1)[1])
    assert (result.stage, result.message) == ("tcp", f"Could not connect to the server at 127.0.0.1:{port}.")


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
    ours = [r for r in caplog.records if not r.name.startswith(EMULATOR_LOGGERS)]
    text = "\n".join(r.getMessage() for r in ours)
    assert CANARY not in caplog.text and CANARY not in text
    assert "Signature=" not in text and "Credential=" not in text  # no request headers
    assert not [r for r in ours if r.name.startswith(("botocore", "boto3")) and r.levelno < logging.WARNING]


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
    assert CANARY not in str(wrong.json())
    assert api.get(f"{URL}{pk}/").json()["connection"]["database"] == "finance"  # nothing changed
