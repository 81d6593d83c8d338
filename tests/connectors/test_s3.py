"""Amazon S3 against moto's server (S3 with signature checks) via endpoint_url, path-style.

The connector is the real one with the real botocore; moto is reached over loopback HTTP
(tests/support/moto_server.py); its ``tap()`` records each request's Range header and the body bytes
served. Loopback stand-ins only redirect like S3 or stall (tests/support/aws.py).
"""

from __future__ import annotations

import io
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from datasources.connectors import ConnectionConfig, ConnectorError, get_connector
from datasources.connectors.s3 import _S3, check_bucket
from datasources.connectors.s3_tables import SAMPLE_BYTES, TAIL_BYTES, whole_csv_lines
from tests.support.aws import (
    QuietHandler,
    assert_logs_carry_no_secret,
    assert_stall_reads_as_closed,
    aws_contract,
    closed_message,
    environment_ignored,
    http_server,
    never_contacted,
)
from tests.support.contract import BLOCKED_IP, connect_attempts, run_contract
from tests.support.moto_server import Keys, MotoServer, moto_server, moto_session_server  # noqa: F401

URL = "/api/v1/data-sources/"
DB = "/compat/databrain/api/v2/datasource"
CANARY = "canary-s3-5d1e8a07c94b2f36-secret"
BUCKET = "lake"
CSV = b'id,name,amount,day,active\n1,"Smith, Ann",2.5,2024-01-01,true\n2,Bob,3.75,2024-01-02,false\n'
JSONL = (b'{"id": 1, "user": {"name": "a", "age": 3}, "tags": ["x"], "at": "2024-01-01T10:00:00"}\n'
         b'{"id": 2, "user": {"name": "b", "age": 4}, "tags": [], "at": "2024-01-02T11:00:00"}\n')


def parquet(columns: int = 0) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if columns:
        table = pa.table({f"c{i:04d}": pa.array([i], pa.int32()) for i in range(columns)})
    else:
        table = pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["a", "b"],
                          "at": pa.array([0, 1], pa.timestamp("us")), "price": pa.array([1.5, None], pa.float64()),
                          "tags": pa.array([["x"], []], pa.list_(pa.string()))})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def seed(server: MotoServer, objects: dict[str, bytes] | None = None, bucket: str = BUCKET) -> None:
    s3 = server.client("s3")
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=bucket)
    if objects is None:
        objects = {"sales/orders.csv": CSV, "sales/items.tsv": b"sku\tqty\nA-1\t3\n", "sales/README.md": b"# notes",
                   "sales/": b"", "sales/events/2024/01.csv": b"event,at\nclick,2024-01-01 10:00:00\n",
                   "sales/events/2024/02.csv": b"event,at\nview,2024-02-01 10:00:00\n",
                   "sales/docs/a.txt": b"text"}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: s3.put_object(Bucket=bucket, Key=item[0], Body=item[1]), objects.items()))


def connection(server: MotoServer, keys: Keys, **changes: object) -> dict:
    return {"bucket": BUCKET, "path_prefix": "sales/", "region": server.region, "table_level": "File",
            "format": "csv", "endpoint_url": server.endpoint_url, "access_key_id": keys.access_key_id, **changes}


def config(server: MotoServer, keys: Keys, timeout: int = 3, **changes: object) -> ConnectionConfig:
    return ConnectionConfig("s3", connection(server, keys, **changes),
                            {"secret_access_key": keys.secret_access_key}, connect_timeout=timeout)


def columns(tables: Any) -> dict[str, list[tuple[str, str]]]:
    return {t.name: [(c.name, c.data_type) for c in t.columns] for t in tables or []}


@pytest.fixture
def keys(moto_server: MotoServer, allow_loopback) -> Keys:  # noqa: F811 - the fixture
    seed(moto_server)
    return moto_server.create_user("s3-reader", secret=CANARY)


# --- the contract, native API -------------------------------------------------------------------


def test_contract(api, allow_loopback, caplog, moto_server, keys):  # noqa: F811
    contract = aws_contract("s3", connection(moto_server, keys), CANARY, tables={"orders", "items"},
                            patch={"table_level": "Folder"})
    final = run_contract(api, contract, caplog)
    assert final["connection"]["endpoint_url"] == moto_server.endpoint_url
    schema = {t["name"]: t for t in api.get(f"{URL}{final['id']}/schema/").json()["tables"]}
    assert set(schema) == {"orders", "items"}
    orders = [(c["name"], c["type"], c["nullable"], c["ordinal"]) for c in schema["orders"]["columns"]]
    assert orders == [("id", "BIGINT", True, 1), ("name", "VARCHAR", True, 2), ("amount", "DOUBLE", True, 3),
                      ("day", "DATE", True, 4), ("active", "BOOLEAN", True, 5)]


def test_stages_and_messages(moto_server, keys):  # noqa: F811
    result = get_connector("s3").test_and_introspect(config(moto_server, keys))
    assert result.ok, result
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database", "introspect"]
    assert result.server_version == "S3-compatible endpoint (us-east-1)"
    assert [s.message for s in result.stages[2:]] == [
        "S3 accepted the keys.", "Bucket 'lake' is readable; objects under 'sales/'.", "2 tables."]
    empty = get_connector("s3").test(config(moto_server, keys, path_prefix="nothing/"))
    assert empty.ok and empty.stages[3].message == "Bucket 'lake' is readable; nothing yet under 'nothing/'."


# --- what a table is ------------------------------------------------------------------------------


def test_file_level_objects_and_folder_level_folders(moto_server, keys):  # noqa: F811
    files = get_connector("s3").introspect(config(moto_server, keys))
    assert columns(files) == {"orders": [("id", "BIGINT"), ("name", "VARCHAR"), ("amount", "DOUBLE"),
                                         ("day", "DATE"), ("active", "BOOLEAN")],
                              "items": [("sku", "VARCHAR"), ("qty", "BIGINT")]}  # README.md, sub-folders: no tables
    assert {t.schema for t in files} == {BUCKET} and all(t.kind == "table" for t in files)
    folders = get_connector("s3").introspect(config(moto_server, keys, table_level="Folder"))
    assert columns(folders) == {"events": [("event", "VARCHAR"), ("at", "TIMESTAMP")]}  # docs/ holds no CSV
    partial = get_connector("s3").introspect(config(moto_server, keys, path_prefix="sales/ord"))
    assert list(columns(partial)) == ["orders"]  # a prefix, not only a folder; names relative to its folder
    root = get_connector("s3").introspect(config(moto_server, keys, path_prefix="", table_level="Folder"))
    assert list(columns(root)) == ["sales"]


def test_types_inferred_from_csv_parquet_and_json_lines(moto_server, keys):  # noqa: F811
    seed(moto_server, {"p/orders.parquet": parquet(), "j/events.jsonl": JSONL, "j/broken.jsonl": b"[1, 2,\n"})
    pq = get_connector("s3").introspect(config(moto_server, keys, path_prefix="p/", format="parquet"))
    assert columns(pq) == {"orders": [("id", "BIGINT"), ("name", "VARCHAR"), ("at", "TIMESTAMP"),
                                      ("price", "DOUBLE"), ("tags", "VARCHAR[]")]}
    result = get_connector("s3").test_and_introspect(config(moto_server, keys, path_prefix="j/", format="jsonl"))
    assert columns(result.tables) == {
        "events": [("id", "BIGINT"), ("user", "STRUCT(\"name\" VARCHAR, age BIGINT)"), ("tags", "VARCHAR[]"),
                   ("at", "TIMESTAMP")],
        "broken": []}  # unreadable: listed without columns, and said
    assert result.stages[-1].message == "2 tables. 1 could not be read: listed without columns."


# --- bounded reads --------------------------------------------------------------------------------


def test_a_50_mb_object_is_read_by_one_64_kib_range(moto_server, keys):  # noqa: F811
    row = b'1234567,"quoted, with a comma",2024-01-01,99.5\n'
    big = b"id,label,day,score\n" + row * (50 * 1024 * 1024 // len(row))
    seed(moto_server, {"big/data.csv": big})
    with moto_server.tap() as tap:
        tables = get_connector("s3").introspect(config(moto_server, keys, path_prefix="big/"))
    assert columns(tables) == {"data": [("id", "BIGINT"), ("label", "VARCHAR"), ("day", "DATE"), ("score", "DOUBLE")]}
    reads = [r for r in tap if r.path == "/lake/big/data.csv"]
    assert [(r.method, r.range) for r in reads] == [("GET", f"bytes=0-{SAMPLE_BYTES - 1}")]
    assert reads[0].bytes == SAMPLE_BYTES and sum(r.bytes for r in tap) < SAMPLE_BYTES + 4096


def test_a_csv_sample_is_cut_after_a_whole_record(moto_server, keys):  # noqa: F811
    header, row = b"id,note\n", b'1,"aaaa\nbbbb"\n'  # a quoted field spans two lines
    pad = next(n for n in range(len(row)) if (SAMPLE_BYTES - 1 - len(header) - len(b'0,""\n') - n) % len(row) == 9)
    data = header + b'0,"' + b"x" * pad + b'"\n' + row * (2 * SAMPLE_BYTES // len(row))
    assert data[:SAMPLE_BYTES].endswith(b'1,"aaaa\nbb')  # the last line break of the sample is inside quotes
    assert whole_csv_lines(data[:SAMPLE_BYTES]).endswith(b'bbbb"\n')
    seed(moto_server, {"q/notes.csv": data})
    tables = get_connector("s3").introspect(config(moto_server, keys, path_prefix="q/"))
    assert columns(tables) == {"notes": [("id", "BIGINT"), ("note", "VARCHAR")]}


def test_parquet_footer_by_ranges_and_columns_capped(moto_server, keys):  # noqa: F811
    wide = parquet(columns=1200)  # a footer larger than the 64 KiB tail: one more ranged GET
    seed(moto_server, {"w/wide.parquet": wide})
    with moto_server.tap() as tap:
        tables = get_connector("s3").introspect(config(moto_server, keys, path_prefix="w/", format="parquet"))
    assert len(tables[0].columns) == 1000 and tables[0].columns[-1].name == "c0999"  # MAX_COLUMNS
    footer = int.from_bytes(wide[-8:-4], "little")
    size = len(wide)
    assert footer + 8 > TAIL_BYTES
    reads = [r.range for r in tap if r.path == "/lake/w/wide.parquet"]
    assert reads == [f"bytes={size - TAIL_BYTES}-{size - 1}", f"bytes={size - 8 - footer}-{size - TAIL_BYTES - 1}"]


def test_thousand_objects_listed_in_one_request(moto_server, allow_loopback):  # noqa: F811
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    seed(moto_server, {})
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]  # the server runs in this process: 1,000 objects at once
    for i in range(1000):
        backend.put_object(BUCKET, f"many/t{i:04d}.csv", b"a,b\n1,x\n")
    keys = moto_server.create_user("reader", secret=CANARY)
    with moto_server.tap() as tap:
        tables = get_connector("s3").introspect(config(moto_server, keys, path_prefix="many/"))
    assert len(tables) == 1000 and all(columns([t])[t.name] == [("a", "BIGINT"), ("b", "VARCHAR")] for t in tables)
    assert [r.path for r in tap if r.path == "/lake"] == ["/lake"]  # ListObjectsV2: one page of 1,000
    assert len([r for r in tap if r.path.startswith("/lake/many/")]) == 1000  # one ranged GET per table


# --- stages auth and database ---------------------------------------------------------------------


def test_wrong_secret_and_unknown_key_fail_at_auth(moto_server, keys):  # noqa: F811
    wrong = get_connector("s3").test(config(moto_server, Keys(keys.access_key_id, "not-the-secret")))
    assert (wrong.stage, wrong.message) == (
        "auth", "S3 refused the access key ID or secret access key (SignatureDoesNotMatch).")
    unknown = get_connector("s3").test(config(moto_server, Keys("AKIA0000000000000000", CANARY)))
    assert (unknown.stage, unknown.message) == (
        "auth", "S3 refused the access key ID or secret access key (InvalidAccessKeyId).")


def test_unknown_or_forbidden_bucket_fails_at_database(moto_server, keys):  # noqa: F811
    missing = get_connector("s3").test(config(moto_server, keys, bucket="no-such-bucket"))
    assert (missing.stage, missing.message) == ("database", "Bucket 'no-such-bucket' does not exist.")
    seed(moto_server, {"x.csv": b"a\n1\n"}, bucket="other")
    scoped = moto_server.create_user("scoped", policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:ListObjectsV2", "s3:GetObject"],  # moto: ListObjectsV2
         "Resource": ["arn:aws:s3:::other", "arn:aws:s3:::other/*"]}]})
    denied = get_connector("s3").test(config(moto_server, scoped))
    assert [(s.name, s.ok, s.message) for s in denied.stages[2:]] == [
        ("auth", True, "S3 accepted the keys (they may not list buckets, which the test does not need)."),
        ("database", False, "The keys may not list bucket 'lake' (AccessDenied).")]
    allowed = get_connector("s3").test_and_introspect(config(moto_server, scoped, bucket="other", path_prefix=""))
    assert allowed.ok and columns(allowed.tables) == {"x": [("a", "BIGINT")]}


@pytest.mark.parametrize("name", ["Lake", "a..b", "ab", "a" * 64, "192.168.0.1", "-lake", "lake-", "la_ke",
                                  "evil.com/x", "x@evil.com", "lake.-x", "xn--lake", "lake--x-s3", "lake:80", ""])
def test_bucket_names_follow_s3_rules(moto_server, keys, name):  # noqa: F811
    result = get_connector("s3").test(config(moto_server, keys, bucket=name))
    assert (result.stage, [s.name for s in result.stages]) == ("resolve", ["resolve"])
    assert result.message.startswith("The bucket name must follow S3's naming rules")
    assert check_bucket("my.data-2024") == "my.data-2024"


# --- addressing: virtual-hosted on AWS, path-style on endpoint_url --------------------------------


def request_url(s3: _S3) -> str:
    """The URL botocore would send ListObjectsV2 to (answered before any connection: no network)."""
    client = s3.client(3.0)
    seen: list[str] = []

    def stop(request: Any, **_: Any) -> None:
        seen.append(request.url)
        raise ConnectorError("database", "stop")

    client.meta.events.register("before-send.s3", stop)
    with pytest.raises(ConnectorError):
        client.list_objects_v2(Bucket=s3.bucket, MaxKeys=1)
    return seen[0]


def test_addressing_and_the_names_the_scope_admits():
    aws = _S3(ConnectionConfig("s3", {"bucket": "lake", "region": "eu-west-1"}, {"secret_access_key": "x"}))
    assert aws.hosts == ("s3.eu-west-1.amazonaws.com", "lake.s3.eu-west-1.amazonaws.com")
    assert request_url(aws).startswith("https://lake.s3.eu-west-1.amazonaws.com/?list-type=2")
    east = _S3(ConnectionConfig("s3", {"bucket": "lake", "region": "us-east-1"}, {"secret_access_key": "x"}))
    assert east.hosts == ("s3.us-east-1.amazonaws.com", "lake.s3.us-east-1.amazonaws.com")
    dotted = _S3(ConnectionConfig("s3", {"bucket": "my.lake", "region": "eu-west-1"}, {"secret_access_key": "x"}))
    assert dotted.hosts == ("s3.eu-west-1.amazonaws.com",)  # AWS's certificate does not cover dotted names
    assert request_url(dotted).startswith("https://s3.eu-west-1.amazonaws.com/my.lake?list-type=2")
    minio = _S3(ConnectionConfig("s3", {"bucket": "lake", "region": "us-east-1",
                                        "endpoint_url": "https://minio.internal:9000/"}, {"secret_access_key": "x"}))
    assert minio.hosts == ("minio.internal",)
    assert request_url(minio).startswith("https://minio.internal:9000/lake?list-type=2")


# --- the environment is never consulted --------------------------------------------------------


def test_environment_and_files_are_ignored(moto_server, keys, monkeypatch, tmp_path):  # noqa: F811
    introspected = environment_ignored(monkeypatch, tmp_path, moto_server.admin, get_connector("s3"),
                                       config(moto_server, keys),
                                       config(moto_server, Keys(keys.access_key_id, "not-the-secret")))
    assert set(columns(introspected)) == {"orders", "items"}


# --- egress: blocked addresses, redirects, stalls ------------------------------------------------


class S3Redirect(QuietHandler):
    """Like S3 for a bucket elsewhere: ListBuckets answers, the bucket answers a region redirect naming
    the metadata address as its endpoint (301 PermanentRedirect or 400 AuthorizationHeaderMalformed)."""

    status = 301
    seen: list[str] = []

    def do_HEAD(self) -> None:
        self._answer(200, b"")

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.path.split("?")[0] == "/":
            self._answer(200, b'<?xml version="1.0"?><ListAllMyBucketsResult><Buckets></Buckets>'
                              b"</ListAllMyBucketsResult>")
        elif self.status == 301:
            self._answer(301, b"<Error><Code>PermanentRedirect</Code><Message>Use the endpoint.</Message>"
                              b"<Endpoint>169.254.169.254</Endpoint><Bucket>lake</Bucket></Error>",
                         {"x-amz-bucket-region": "eu-west-1", "Location": f"http://{BLOCKED_IP}/lake"})
        else:
            self._answer(400, b"<Error><Code>AuthorizationHeaderMalformed</Code><Message>Wrong region.</Message>"
                              b"<Region>eu-west-1</Region></Error>")

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/xml", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Redirect307(S3Redirect):
    """Every request: 307 to the metadata address (not S3-shaped)."""

    def do_GET(self) -> None:
        self._answer(307, b"", {"Location": f"http://{BLOCKED_IP}/latest/meta-data/iam/security-credentials/"})


@pytest.mark.parametrize("status", [301, 400])
def test_bucket_in_another_region_is_reported_not_followed(moto_server, keys, allow_loopback, status):  # noqa: F811
    S3Redirect.status, S3Redirect.seen = status, []
    with http_server(S3Redirect) as elsewhere, connect_attempts() as attempts:
        result = get_connector("s3").test(config(moto_server, keys, endpoint_url=elsewhere))
    assert (result.stage, result.message) == (
        "database", "Bucket 'lake' is in region 'eu-west-1', not 'us-east-1': set the region to eu-west-1.")
    assert [p.split("?")[0] for p in S3Redirect.seen] == ["/", "/lake"]  # sent once, never re-sent elsewhere
    assert never_contacted(attempts), attempts


def test_blocked_endpoint_and_redirect_fail_at_tcp_without_connecting(moto_server, keys, allow_loopback):  # noqa: F811
    with http_server(Redirect307) as redirecting, connect_attempts() as attempts:
        blocked = get_connector("s3").test(config(moto_server, keys, endpoint_url=f"http://{BLOCKED_IP}"))
        redirected = get_connector("s3").test(config(moto_server, keys, endpoint_url=redirecting))
        with pytest.raises(ConnectorError) as refreshed:
            get_connector("s3").introspect(config(moto_server, keys, endpoint_url=f"http://{BLOCKED_IP}:80"))
    assert (blocked.stage, blocked.message) == ("tcp", closed_message(f"http://{BLOCKED_IP}:80"))
    assert (redirected.stage, redirected.message) == ("tcp", closed_message(redirecting))
    assert refreshed.value.stage == "introspect"
    assert never_contacted(attempts), attempts


def test_stalled_endpoint_fails_within_the_timeout(moto_server, keys, allow_loopback):  # noqa: F811
    assert_stall_reads_as_closed(
        lambda url: get_connector("s3").test(config(moto_server, keys, timeout=2, endpoint_url=url)), 2)


# --- secrets in logs ----------------------------------------------------------------------------


def test_logs_never_carry_the_secret(moto_server, keys, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    get_connector("s3").test_and_introspect(config(moto_server, keys))
    get_connector("s3").test(config(moto_server, Keys(keys.access_key_id, CANARY + "-wrong")))
    get_connector("s3").introspect(config(moto_server, keys, table_level="Folder"))
    assert_logs_carry_no_secret(caplog, CANARY)


# --- Databrain adapter --------------------------------------------------------------------------


def databrain_body(server: MotoServer, keys: Keys, **changes: str) -> dict:
    return {"datasourceType": "awss3", "credentials": {
        "name": "lake-prod", "bucketName": BUCKET, "path": "sales/", "region": server.region, "tableLevel": "Folder",
        "accessKeyId": keys.access_key_id, "secretAccessKey": keys.secret_access_key, **changes}}


def test_databrain_put_keeps_endpoint_url_and_recaches(api, allow_loopback, moto_server, keys):  # noqa: F811
    created = api.post(URL, {"name": "lake-prod", "type": "s3", "connection": connection(moto_server, keys),
                             "credentials": {"secret_access_key": CANARY}, "connection_timeout": 3}, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert {t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]} == {"orders", "items"}

    response = api.put(DB, databrain_body(moto_server, keys), format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": "lake-prod"}
    core = api.get(f"{URL}{pk}/").json()
    assert core["connection"]["endpoint_url"] == moto_server.endpoint_url  # not in Databrain's structure: kept
    assert core["connection"]["format"] == "csv" and core["connection"]["table_level"] == "Folder"
    assert core["last_test"]["ok"] and core["schema"]["status"] == "ready"
    tables = {t["name"]: t for t in api.get(f"{URL}{pk}/schema/").json()["tables"]}
    assert list(tables) == ["events"] and tables["events"]["columns"][1]["type"] == "TIMESTAMP"  # re-cached

    wrong = api.put(DB, databrain_body(moto_server, keys, secretAccessKey="wrong-secret"), format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "CREDENTIAL_TEST_FAILED", wrong.json()
    assert CANARY not in json.dumps(wrong.json())
    assert api.get(f"{URL}{pk}/").json()["connection"]["table_level"] == "Folder"  # nothing changed
