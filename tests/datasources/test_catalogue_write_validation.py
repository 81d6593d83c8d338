"""Type-specific connection values are validated by the catalogue when they are written, whatever the
entry point: ``?test_connection=false`` no longer stores a value that could only fail later at stage
``resolve``. A refused value is a 400 INVALID_REQUEST_BODY naming ``connection.<field>`` and changes
nothing; a valid value of the same field is accepted untested.

Cases (found by an outside audit): an Elastic Cloud id that is no Cloud ID, a URL field without a host,
an S3 bucket name outside S3's rules, a region that is no AWS region, a MongoDB ``srv`` seed list with a
port, and ClickHouse's default port, which follows ``secure``.
"""

from __future__ import annotations

import base64
import re

import pytest

from datasources import catalogue
from datasources.catalogue import checks
from datasources.catalogue.types_common import (
    ORIGIN_URL_MESSAGE,
    ORIGIN_URL_PATTERN,
    S3_BUCKET_PATTERN,
    URL_MESSAGE,
    URL_PATTERN,
)
from datasources.connectors.base import ConnectorError
from datasources.connectors.search_endpoints import cloud_endpoint
from datasources.models import DataSource

URL = "/api/v1/data-sources/"
UNTESTED = "?test_connection=false"
SECRET = "canary-S3cr3t-w41d"


def _cloud_id(host: str, es_uuid: str = "abc123", kibana: str | None = "def456", name: str = "dep") -> str:
    text = "$".join([host, es_uuid, *([kibana] if kibana is not None else [])])
    return f"{name}:{base64.b64encode(text.encode()).decode()}"


GOOD_CLOUD_ID = _cloud_id("us-central1.gcp.cloud.es.io")
SEARCH = {"server_type": "elastic-cloud", "cloud_id": GOOD_CLOUD_ID, "username": "elastic"}

#: type -> (a valid connection, its credentials)
BASE = {
    "elasticsearch": (SEARCH, {"password": SECRET}),
    "opensearch": (SEARCH, {"password": SECRET}),
    "mcp": ({"server_url": "https://mcp.example.com/mcp"}, {"api_key": SECRET}),
    "databricks": ({"host": "dbc-1.cloud.databricks.com", "http_path": "/sql/1.0/warehouses/abc", "schema": "s"},
                   {"token": SECRET}),
    "s3": ({"bucket": "my-bucket", "region": "us-east-1", "access_key_id": "AKIAEXAMPLE"},
           {"secret_access_key": SECRET}),
    "athena": ({"database": "db", "s3_output_location": "s3://bucket/results/", "region": "us-east-1",
                "access_key_id": "AKIAEXAMPLE"}, {"secret_access_key": SECRET}),
    "mongodb": ({"host": "cluster0.example.mongodb.net", "database": "app", "username": "u"}, {"password": SECRET}),
    "clickhouse": ({"host": "ch.example.com", "username": "u"}, {"password": SECRET}),
    "snowflake": ({"account": "xy12345.eu-west-1", "username": "u", "role": "r", "warehouse": "w", "database": "d",
                   "schema": "s"}, {"password": SECRET}),
}

#: (type, field, a refused value, an accepted value, extra connection values)
CASES = [
    ("elasticsearch", "cloud_id", "garbage", _cloud_id("eu-west-1.aws.found.io:9243", kibana=None), {}),
    ("opensearch", "cloud_id", "dep:" + base64.b64encode(b"no dollar here").decode(), GOOD_CLOUD_ID, {}),
    ("mcp", "server_url", "http://", "http://mcp.internal:8080/mcp", {}),
    ("databricks", "endpoint_url", "https://:443/x", "https://dbc-1.privatelink.cloud.databricks.com", {}),
    ("s3", "bucket", "b", "my.data-2024", {}),
    ("s3", "endpoint_url", "http://user@minio:9000", "http://minio.internal:9000", {}),
    ("athena", "region", "not a region", "us-gov-west-1", {}),
    ("mongodb", "port", 27018, 27017, {"srv": True}),
    # Snowflake's client builds every path itself: a path was refused only by the test, at 'resolve'.
    ("snowflake", "endpoint_url", "https://x.privatelink.snowflakecomputing.com/session",
     "https://xy12345.eu-west-1.privatelink.snowflakecomputing.com:443/", {}),
]
IDS = [f"{kind}-{field}" for kind, field, *_ in CASES]


def _body(kind: str, name: str = "", **connection) -> dict:
    base, credentials = BASE[kind]
    return {"name": name or f"{kind} source", "type": kind, "connection": {**base, **connection},
            "credentials": credentials}


def _create(api, kind: str, name: str = "", **connection) -> dict:
    response = api.post(URL + UNTESTED, _body(kind, name, **connection), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def _refused(response, field: str) -> dict:
    body = response.json()
    assert response.status_code == 400, body
    assert body["code"] == "INVALID_REQUEST_BODY", body
    assert f"connection.{field}" in body["errors"], body
    assert SECRET not in response.content.decode()
    return body


def _row(pk: int) -> tuple:
    ds = DataSource.objects.get(pk=pk)
    return ds.connection, ds.version, ds.updated_at


# --- the API: create and PATCH, untested -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "field", "bad", "good", "extra"), CASES, ids=IDS)
def test_a_bad_value_is_refused_on_create_untested(api, kind, field, bad, good, extra):
    _refused(api.post(URL + UNTESTED, _body(kind, **extra, **{field: bad}), format="json"), field)
    assert not DataSource.objects.exists()
    created = _create(api, kind, **extra, **{field: good})
    assert created["connection"][field] == good


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "field", "bad", "good", "extra"), CASES, ids=IDS)
def test_a_bad_value_is_refused_on_patch_and_changes_nothing(api, kind, field, bad, good, extra):
    source = _create(api, kind, **extra)
    before = _row(source["id"])
    response = api.patch(f"{URL}{source['id']}/{UNTESTED}", {"connection": {field: bad}}, format="json")
    _refused(response, field)
    assert _row(source["id"]) == before
    accepted = api.patch(f"{URL}{source['id']}/{UNTESTED}", {"connection": {field: good}}, format="json")
    assert accepted.status_code == 200, accepted.json()


@pytest.mark.django_db
def test_a_put_is_validated_the_same_way(api):
    source = _create(api, "s3")
    before = _row(source["id"])
    body = {**_body("s3", bucket="B_ucket"), "credentials": {}}
    _refused(api.put(f"{URL}{source['id']}/{UNTESTED}", body, format="json"), "bucket")
    assert _row(source["id"]) == before


# --- MongoDB: the srv seed list takes no port --------------------------------------------------------


@pytest.mark.django_db
def test_srv_keeps_working_with_the_filled_default_port(api):
    """Stored srv sources carry the default port the catalogue filled in: they stay valid, and a PATCH
    that turns srv on over a custom port is refused until the port is reset (null)."""
    srv = _create(api, "mongodb", srv=True)
    assert srv["connection"]["port"] == 27017 and srv["is_fully_configured"] is True
    renamed = api.patch(f"{URL}{srv['id']}/{UNTESTED}", {"connection": {"database": "other"}}, format="json")
    assert renamed.status_code == 200, renamed.json()

    plain = _create(api, "mongodb", "plain", port=27018)
    before = _row(plain["id"])
    body = _refused(api.patch(f"{URL}{plain['id']}/{UNTESTED}", {"connection": {"srv": True}}, format="json"),
                    "port")
    assert "srv is true" in body["errors"]["connection.port"][0]
    assert _row(plain["id"]) == before
    reset = api.patch(f"{URL}{plain['id']}/{UNTESTED}", {"connection": {"srv": True, "port": None}}, format="json")
    assert reset.status_code == 200, reset.json()
    assert reset.json()["connection"]["port"] == 27017


# --- ClickHouse: the default port follows secure ------------------------------------------------------


@pytest.mark.django_db
def test_clickhouse_default_port_follows_secure(api):
    plain = _create(api, "clickhouse", "plain", secure=False)
    assert plain["connection"]["port"] == 9000
    tls = _create(api, "clickhouse", "tls")
    assert tls["connection"]["port"] == 9440 and tls["connection"]["secure"] is True
    explicit = _create(api, "clickhouse", "explicit", secure=False, port=9440)
    assert explicit["connection"]["port"] == 9440  # a port that is sent is kept


@pytest.mark.django_db
def test_clickhouse_stored_port_is_kept(api):
    """A stored source keeps its port (it is in the stored connection): only an omitted one follows secure."""
    source = _create(api, "clickhouse")
    assert source["connection"]["port"] == 9440
    lowered = api.patch(f"{URL}{source['id']}/{UNTESTED}", {"connection": {"secure": False}}, format="json")
    assert lowered.status_code == 200, lowered.json()
    assert lowered.json()["connection"]["port"] == 9440
    reset = api.patch(f"{URL}{source['id']}/{UNTESTED}", {"connection": {"port": None}}, format="json")
    assert reset.status_code == 200 and reset.json()["connection"]["port"] == 9000


@pytest.mark.django_db
def test_the_type_catalogue_describes_the_rules(api):
    clickhouse = api.get("/api/v1/data-source-types/clickhouse/").json()
    port = next(f for f in clickhouse["connection_fields"] if f["name"] == "port")
    assert port["default"] == 9440  # with the default secure (true)
    assert "9000 when secure is false" in port["help"] and "9440" in port["help"]
    mongodb = api.get("/api/v1/data-source-types/mongodb/").json()
    mongo_port = next(f for f in mongodb["connection_fields"] if f["name"] == "port")
    assert "Not used when srv is true" in mongo_port["help"]
    search = api.get("/api/v1/data-source-types/elasticsearch/").json()
    cloud = next(f for f in search["connection_fields"] if f["name"] == "cloud_id")
    assert "When server_type is elastic-cloud: must be an Elastic Cloud ID" in cloud["help"]
    s3 = api.get("/api/v1/data-source-types/s3/").json()
    fields = {f["name"]: f for f in s3["connection_fields"]}
    assert fields["bucket"]["pattern"] == S3_BUCKET_PATTERN and fields["bucket"]["max_length"] == 63
    assert "store's own region name" in fields["region"]["help"]
    assert fields["endpoint_url"]["pattern"] == URL_PATTERN


def test_openapi_states_the_conditional_default_in_words():
    schema = catalogue.connection_openapi_schema(catalogue.get_type("clickhouse"))
    port = schema["properties"]["port"]
    assert "default" not in port  # a generated client would otherwise send 9440 with secure false
    assert "9000 when secure is false" in port["description"]
    assert schema["properties"]["secure"]["default"] is True


# --- the catalogue, unit by unit ------------------------------------------------------------------------


def _errors(kind: str, connection: dict) -> dict[str, list[str]]:
    with pytest.raises(catalogue.ConfigInvalid) as info:
        catalogue.normalize_connection(catalogue.get_type(kind), connection)
    return info.value.errors


VALID_CLOUD_IDS = [
    GOOD_CLOUD_ID,
    _cloud_id("us-east-1.aws.found.io", kibana=None),
    _cloud_id("eu-west-1.aws.found.io:9243"),
    _cloud_id("us-central1.gcp.cloud.es.io.", name="my:deployment"),  # a ':' in the name, a final dot
    " " + GOOD_CLOUD_ID + " ",
]
INVALID_CLOUD_IDS = [
    "garbage", "dep:", ":", "dep:not base64!", "dep:YWJj",  # "abc": no '$'
    _cloud_id("127.0.0.1"), _cloud_id("single-label"), _cloud_id("host.example.com:99999"),
    _cloud_id("host.example.com:0"), _cloud_id("host.example.com:"), _cloud_id("host.example.com", es_uuid=""),
    _cloud_id("host.example.com", es_uuid="a/b"), _cloud_id("host.example.com/path"),
    _cloud_id("host.example.com", es_uuid="x@169.254.169.254"), _cloud_id("-bad.example.com"),
    "dep:" + base64.b64encode("\u00e9.com$x".encode()).decode(),
    GOOD_CLOUD_ID.rstrip("="),
]


@pytest.mark.parametrize("value", VALID_CLOUD_IDS)
def test_valid_cloud_ids(value):
    assert checks.elastic_cloud_id(value) is None
    cloud_endpoint(value)  # the connector reads it too


@pytest.mark.parametrize("value", INVALID_CLOUD_IDS)
def test_invalid_cloud_ids_are_refused_like_the_connector_refuses_them(value):
    assert checks.elastic_cloud_id(value) == checks.CLOUD_ID_MESSAGE
    with pytest.raises(ConnectorError):
        cloud_endpoint(value)


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch"])
def test_the_cloud_id_check_holds_only_for_elastic_cloud(kind):
    assert list(_errors(kind, {**SEARCH, "cloud_id": "garbage"})) == ["connection.cloud_id"]
    hosted = {**SEARCH, "server_type": "open-cloud", "cloud_id": "search-x.eu-west-1.es.amazonaws.com"}
    assert catalogue.normalize_connection(catalogue.get_type(kind), hosted)["cloud_id"] == hosted["cloud_id"]
    managed = {"server_type": "self-managed", "server_url": "https://es.internal:9200", "cloud_id": "garbage",
               "username": "u"}
    catalogue.normalize_connection(catalogue.get_type(kind), managed)  # not used: not checked
    # blank: the required-when rule answers, not the check
    assert _errors(kind, {**SEARCH, "cloud_id": " "}) == {
        "connection.cloud_id": ["This field is required when server_type is one of elastic-cloud, open-cloud."]}


URLS_OK = ["https://h", "http://mcp.internal:8080/mcp", "https://10.0.0.5", "http://[::1]:80/", "https://h:65535/p?q=1#f",
           "https://h.example.com/a/b"]
URLS_BAD = ["http://", "https://", "http:///path", "https://:443", "http://user@h", "http://user:pw@h/x",
            "https://h:0", "https://h:65536", "https://h:", "https://h/a b", "https://h\n", "ftp://h", "HTTPS://h",
            "h.example.com", "https://a,b", "https://h\\x"]


def test_url_fields_take_an_http_url_with_a_host():
    mcp = catalogue.get_type("mcp")
    for value in URLS_OK:
        assert re.search(URL_PATTERN, value), value
        catalogue.normalize_connection(mcp, {"server_url": value})
    for value in URLS_BAD:
        assert not re.search(URL_PATTERN, value), value
        assert _errors("mcp", {"server_url": value}) == {"connection.server_url": [URL_MESSAGE]}, value


def test_every_url_field_of_the_catalogue_has_the_same_rule():
    """One URL rule, or the same without a path where the client builds the paths (Snowflake)."""
    found = []
    for source_type in catalogue.TYPES:
        for f in source_type.fields:
            if f.name.endswith("_url"):
                origin = f"{source_type.key}.{f.name}" == "snowflake.endpoint_url"
                expected = (ORIGIN_URL_PATTERN, ORIGIN_URL_MESSAGE) if origin else (URL_PATTERN, URL_MESSAGE)
                assert (f.pattern, f.pattern_message) == expected, (source_type.key, f.name)
                found.append(f"{source_type.key}.{f.name}")
    assert {"mcp.server_url", "elasticsearch.server_url", "databricks.endpoint_url", "s3.endpoint_url",
            "snowflake.endpoint_url"} <= set(found)


BUCKETS_OK = ["abc", "my-bucket", "my.data-2024", "a" * 63, "1bucket", "bucket9", "a.b.c"]
BUCKETS_BAD = ["b", "ab", "a" * 64, "Lake", "a..b", "-lake", "lake-", "la_ke", "lake.-x", "lake-.x", "192.168.0.1",
               "xn--lake", "sthree-x", "amzn-s3-demo-x", "lake-s3alias", "lake--ol-s3", "lake.mrap", "lake--x-s3",
               "lake--table-s3", "evil.com/x", "x@evil.com", "lake:80", "lake\n", " lake"]


@pytest.mark.parametrize("value", BUCKETS_BAD)
def test_bucket_names_outside_s3_rules_are_refused(value):
    from datasources.connectors.s3 import check_bucket

    assert list(_errors("s3", {**BASE["s3"][0], "bucket": value})) == ["connection.bucket"]
    if value.strip() == value:  # the connector strips: it reads " lake" as "lake"
        with pytest.raises(ConnectorError):
            check_bucket(value)
    for ok in BUCKETS_OK:  # and the valid ones pass, the connector's rule too
        assert catalogue.normalize_connection(catalogue.get_type("s3"), {**BASE["s3"][0], "bucket": ok})
        assert check_bucket(ok) == ok


REGIONS_OK = ["us-east-1", "eu-central-2", "us-gov-west-1", "cn-north-1", "ap-southeast-4", "il-central-1",
              "me-central-1", "ca-west-1", "us-isob-east-1", "eusc-de-east-1"]
REGIONS_BAD = ["not a region", "US-EAST-1", "us-east", "useast1", "us-east-1a", "us_east_1", "-us-east-1",
               "us-east-1\n", "1-east-1", "u-east-1", "x" * 33]


@pytest.mark.parametrize("kind", ["athena"])  # S3 may be S3-compatible: its stores name their own regions
def test_aws_regions(kind):
    for value in REGIONS_OK:
        assert catalogue.normalize_connection(catalogue.get_type(kind), {**BASE[kind][0], "region": value})
    for value in REGIONS_BAD:
        assert list(_errors(kind, {**BASE[kind][0], "region": value})) == ["connection.region"], value


def test_mongodb_port_with_srv():
    mongodb = catalogue.get_type("mongodb")
    base = BASE["mongodb"][0]
    assert catalogue.normalize_connection(mongodb, {**base, "srv": True})["port"] == 27017
    assert catalogue.normalize_connection(mongodb, {**base, "srv": True, "port": 27017})["port"] == 27017
    assert catalogue.normalize_connection(mongodb, {**base, "port": 27018})["port"] == 27018
    assert _errors("mongodb", {**base, "srv": True, "port": 1}) == {
        "connection.port": ["Not used when srv is true: send null or its default (27017)."]}
    assert list(_errors("mongodb", {**base, "srv": True, "port": 70000})) == ["connection.port"]  # range first


def test_clickhouse_defaults():
    clickhouse = catalogue.get_type("clickhouse")
    base = BASE["clickhouse"][0]
    assert catalogue.normalize_connection(clickhouse, base)["port"] == 9440
    assert catalogue.normalize_connection(clickhouse, {**base, "secure": True})["port"] == 9440
    assert catalogue.normalize_connection(clickhouse, {**base, "secure": False})["port"] == 9000
    assert catalogue.normalize_connection(clickhouse, {**base, "secure": False, "port": 9440})["port"] == 9440
    assert catalogue.normalize_connection(clickhouse, {**base, "secure": True, "port": 9000})["port"] == 9000
    assert list(catalogue.normalize_connection(clickhouse, {**base, "secure": False})) == [
        "host", "port", "database", "username", "secure"]  # the declared order, as before
    assert catalogue.connection_defaults(clickhouse)["port"] == 9440
    # an invalid secure is reported, not taken for false
    assert list(_errors("clickhouse", {**base, "secure": "no"})) == ["connection.secure"]


def test_the_engine_refuses_inconsistent_declarations():
    cond = catalogue.Condition("x", in_=(True,))
    with pytest.raises(ValueError):
        catalogue.Check("no_such_check")
    with pytest.raises(ValueError):
        catalogue.Field("p", "integer", defaults_when=((cond, 1),))  # no default to fall back to
    with pytest.raises(ValueError):
        catalogue.Field("p", "integer", only_default_when=cond)


def test_an_s3_compatible_store_keeps_its_own_region_name(api):
    """MinIO and R2 (region 'auto') name their own regions: S3's region takes any name."""
    body = {"name": "R2", "type": "s3", "connection": {
        "bucket": "my-bucket", "region": "auto", "endpoint_url": "https://account.r2.cloudflarestorage.com",
        "access_key_id": "AKIAEXAMPLE"},
        "credentials": {"secret_access_key": "x" * 40}}
    created = api.post("/api/v1/data-sources/?test_connection=false", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["connection"]["region"] == "auto"
