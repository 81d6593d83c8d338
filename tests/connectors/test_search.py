"""Elasticsearch and OpenSearch connector: the official clients against tests/support/search_server.py."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import elasticsearch
import opensearchpy
import pytest
from elastic_transport.client_utils import parse_cloud_id

from datasources.connectors import (
    ConnectionConfig,
    ConnectorError,
    egress,
    get_connector,
    search_endpoints,
    search_mapping,
)
from datasources.connectors import search as search_module
from datasources.connectors.guard import egress_scope
from datasources.connectors.search_endpoints import cloud_endpoint, hosted_endpoint
from tests.support.certs import issue, make_ca
from tests.support.contract import BLOCKED_IP, Contract, connect_attempts, run_contract
from tests.support.search_server import Cluster, DataStream, SearchServer

# ignore_certificate tests: the clients warn, as they should, that the TLS connection is unverified.
pytestmark = [pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
              pytest.mark.filterwarnings("ignore::elastic_transport.SecurityWarning")]
CANARY = "canary-Search-5ecret-9b1c"
URL = "/api/v1/data-sources/"
DB = "/compat/databrain/api/v2/datasource"
TYPES = ("elasticsearch", "opensearch")
VERSIONS = {"elasticsearch": ("8.15.0", "9.1.0"), "opensearch": ("2.15.0",)}
USERS = {"analyst": CANARY, "analyst2": CANARY, "reader": "reader-pass-123", "nobody": "nobody-pass-123"}
PRIVILEGES = {"reader": {"main"}, "nobody": set()}  # reader may see GET / only; nobody nothing
ORDERS = {"id": {"type": "long"}, "placed": {"type": "date"},
          "customer": {"properties": {"name": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
                                      "email": {"type": "keyword"}}},
          "lines": {"type": "nested", "properties": {"sku": {"type": "keyword"}, "qty": {"type": "integer"}}}}
CLUSTER = Cluster(
    indices={"orders-2025": ORDERS, "orders-2024": {"id": {"type": "keyword"}, "legacy": {"type": "boolean"}},
             "customers": {"email": {"type": "keyword"}}, "empty": {}, ".kibana_1": {"type": {"type": "keyword"}},
             ".security-7": {"username": {"type": "keyword"}}},
    aliases={"orders": ["orders-2025", "orders-2024"], ".kibana": [".kibana_1"]},
    data_streams=[DataStream("logs-app", {"@timestamp": {"type": "date"}, "message": {"type": "text"}}),
                  DataStream(".logs-deprecation", {"@timestamp": {"type": "date"}}, hidden=True)],
)


@pytest.fixture(scope="module")
def bundle():
    from tests.support.certs import make_bundle

    return make_bundle()  # server certificate for 127.0.0.1 and localhost


@pytest.fixture(params=TYPES)
def kind(request) -> str:
    return request.param


@pytest.fixture
def server(kind, bundle):
    with SearchServer(CLUSTER, product=kind, tls=bundle.server, users=USERS, privileges=PRIVILEGES) as standin:
        yield standin


def _config(kind, server, bundle=None, password=CANARY, timeout=3, **overrides) -> ConnectionConfig:
    connection = {"server_type": "self-managed", "server_url": server.url, "username": "analyst",
                  **({"ca_certificate": bundle.ca.cert_pem} if bundle else {}), **overrides}
    return ConnectionConfig(kind, connection, {"password": password} if password else {}, connect_timeout=timeout,
                            query_timeout=20)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _failed(result, stage: str) -> str:
    assert (result.ok, result.stage) == (False, stage), result.as_dict()
    assert result.stages[-1].name == stage and not result.stages[-1].ok
    assert CANARY not in json.dumps(result.as_dict()) and "Traceback" not in result.message
    assert "\n" not in result.message
    return result.message


def _cloud_id(host: str, es_uuid: str = "0123456789abcdef0123456789abcdef", name: str = "prod") -> str:
    return f"{name}:" + base64.b64encode(f"{host}${es_uuid}$fedcba9876543210".encode()).decode()


# --- stages, versions, introspection --------------------------------------------------------------


@pytest.mark.parametrize(("product", "version"), [(k, v) for k in TYPES for v in VERSIONS[k]])
def test_stages_version_and_introspection(allow_loopback, bundle, product, version, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    with SearchServer(CLUSTER, product=product, version=version, tls=bundle.server, users=USERS) as standin:
        result = get_connector(product).test_and_introspect(_config(product, standin, bundle))
        assert result.ok, result.message
        assert [s.name for s in result.stages] == ["resolve", "tcp", "tls", "auth", "database", "introspect"]
        assert result.server_version == f"{search_module.PRODUCTS[product]} {version}"
        assert result.stages[4].message == "4 indices listed."  # system, hidden and backing indices left out
        tables = {t.name: t for t in result.tables}
        assert set(tables) == {"orders-2025", "orders-2024", "customers", "empty", "orders", "logs-app"}
        assert {t.schema for t in tables.values()} == {""}
        assert (tables["orders"].kind, tables["logs-app"].kind, tables["empty"].columns) == ("view", "table", [])
        assert [(c.name, c.data_type, c.nullable, c.ordinal) for c in tables["orders-2025"].columns] == [
            ("id", "long", True, 1), ("placed", "date", True, 2), ("customer.name", "text", True, 3),
            ("customer.name.keyword", "keyword", True, 4), ("customer.email", "keyword", True, 5),
            ("lines", "nested", True, 6), ("lines.sku", "keyword", True, 7), ("lines.qty", "integer", True, 8)]
        alias = {c.name: c.data_type for c in tables["orders"].columns}  # the union; the first index's type wins
        assert alias["id"] == "keyword" and alias["legacy"] == "boolean" and "lines.sku" in alias
        assert [c.name for c in tables["logs-app"].columns] == ["@timestamp", "message"]  # its write index
        calls = [p.split("?")[0] for p in standin.calls()]
        assert calls == ["/", "/_cat/indices", "/_mapping", "/_alias", "/_data_stream"]
        for method, _path, headers in standin.requests:
            if method == "GET":  # the client's requests (the HEAD / probes of stages tcp and tls aside)
                assert headers["Host"] == f"127.0.0.1:{standin.port}"
                assert headers["Authorization"] == "Basic " + base64.b64encode(f"analyst:{CANARY}".encode()).decode()
                if product == "elasticsearch":
                    assert headers["accept"] == search_module.ES_HEADERS["accept"]
        durations = sorted(get_connector(product).test(_config(product, standin, bundle)).duration_ms
                           for _ in range(5))
    assert CANARY not in caplog.text
    with capsys.disabled():
        print(f"\n{product} {version} (stand-in, https + basic auth) connection test: best of 5 {durations[0]:.1f} ms")


def test_contract(api, allow_loopback, caplog, kind, server, bundle):
    connection = {"server_type": "self-managed", "server_url": server.url, "username": "analyst",
                  "ca_certificate": bundle.ca.cert_pem}
    contract = Contract(
        type_key=kind, connection=connection, credentials={"password": CANARY},
        tables={"orders-2025", "orders", "logs-app"}, patch={"username": "analyst2"},
        wrong_credentials={"password": "wrong-password-123"},
        unreachable={"server_url": f"https://127.0.0.1:{_free_port()}"},
        blocked={"server_url": f"https://{BLOCKED_IP}:9200"},
        canary=CANARY, stages=("resolve", "tcp", "tls", "auth", "database"),
    )
    final = run_contract(api, contract, caplog)
    assert final["schema"]["status"] == "ready" and final["last_test"]["ok"]


# --- endpoints: cloud ID, hosted endpoint ------------------------------------------------------------


@pytest.mark.parametrize("cloud_id", [
    "cluster-name:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw==",
    _cloud_id("us-central1.gcp.cloud.es.io"),
    _cloud_id("eastus2.azure.elastic-cloud.com:9243", name="name:with:colons"),
])
def test_cloud_id_decodes_to_the_endpoint_the_elastic_clients_use(cloud_id):
    endpoint = cloud_endpoint(cloud_id)
    host, port = parse_cloud_id(cloud_id.replace("name:with:colons:", "x:")).es_address  # type: ignore[misc]
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.path) == ("https", host, port, "")
    assert endpoint.base_url == f"https://{host}:{port}"


@pytest.mark.parametrize("cloud_id", [
    "", "no-colon", "name:", "name:not base64!", "name:" + base64.b64encode(b"host-without-uuid").decode(),
    next(c.rstrip("=") for c in map(_cloud_id, ("a.es.io", "ab.es.io", "abc.es.io")) if c.endswith("=")),  # unpadded
    _cloud_id("127.0.0.1"), _cloud_id("single-label"), _cloud_id("evil.example.com:99999"),
    _cloud_id("evil.example.com", es_uuid="a/b"), _cloud_id("evil.example.com/path"),
    _cloud_id("evil.example.com", es_uuid="x@169.254.169.254"),
    "name:" + base64.b64encode("\u00e9.com$x".encode()).decode(),
])
def test_malformed_cloud_ids_fail_at_resolve_before_any_packet(allow_loopback, kind, cloud_id):
    with pytest.raises(ConnectorError) as caught:
        cloud_endpoint(cloud_id)
    assert caught.value.stage == "resolve"
    config = ConnectionConfig(kind, {"server_type": "elastic-cloud", "cloud_id": cloud_id, "username": "elastic"},
                              {"password": CANARY})
    with connect_attempts() as attempts:
        result = get_connector(kind).test(config)
    assert _failed(result, "resolve") == search_endpoints.CLOUD_ID_INVALID and attempts == []


def test_open_cloud_is_a_hosted_https_endpoint():
    aws = hosted_endpoint("search-shop-abc123xyz.eu-west-1.es.amazonaws.com")
    assert aws.base_url == "https://search-shop-abc123xyz.eu-west-1.es.amazonaws.com:443"
    assert hosted_endpoint(" https://Shop-Prj.aivencloud.com:24947/ ").base_url == "https://shop-prj.aivencloud.com:24947"
    for value, message in (
        ("", "required"), ("http://search-x.es.amazonaws.com", "must use https"),
        ("https://search-x.es.amazonaws.com/_plugin", "without a path"), ("https://10.0.0.5:9200", "host name"),
        (_cloud_id("us-central1.gcp.cloud.es.io"), "looks like an Elastic Cloud ID"),
        ("https://user:pw@search-x.es.amazonaws.com", "user name or password"),
    ):
        with pytest.raises(ConnectorError) as caught:
            hosted_endpoint(value)
        assert caught.value.stage == "resolve" and message in caught.value.message, (value, caught.value.message)


@pytest.fixture
def dns(monkeypatch):
    """Names the tests serve: name -> address (the system resolver answers the rest)."""
    names: dict[str, str] = {}
    real = egress._getaddrinfo
    monkeypatch.setattr(egress, "_getaddrinfo", lambda h, p, t: [names[h]] if h in names else real(h, p, t))
    return names


@pytest.mark.parametrize("server_type", ["elastic-cloud", "open-cloud"])
def test_a_cloud_endpoint_reaches_its_decoded_host(allow_loopback, kind, bundle, dns, server_type):
    name = "0123456789abcdef0123456789abcdef.eu-west-1.cloud.test"
    dns[name] = "127.0.0.1"
    certificate = issue(bundle.ca, name, (name,))
    with SearchServer(CLUSTER, product=kind, tls=certificate, users=USERS) as standin:
        cloud_id = (_cloud_id(f"eu-west-1.cloud.test:{standin.port}") if server_type == "elastic-cloud"
                    else f"https://{name}:{standin.port}")
        config = ConnectionConfig(kind, {"server_type": server_type, "cloud_id": cloud_id, "username": "analyst",
                                         "ca_certificate": bundle.ca.cert_pem}, {"password": CANARY})
        result = get_connector(kind).test_and_introspect(config)
        assert result.ok, result.message
        assert {h["Host"] for m, _, h in standin.requests if m == "GET"} == {f"{name}:{standin.port}"}
        assert "orders" in {t.name for t in result.tables}


def test_a_cloud_id_whose_host_is_blocked_makes_no_attempt(allow_loopback, kind, bundle, dns):
    name = "0123456789abcdef0123456789abcdef.metadata.cloud.test"
    dns[name] = BLOCKED_IP
    config = ConnectionConfig(kind, {"server_type": "elastic-cloud", "cloud_id": _cloud_id("metadata.cloud.test"),
                                     "username": "analyst"}, {"password": CANARY})
    with connect_attempts() as attempts:
        result = get_connector(kind).test(config)
    assert _failed(result, "tcp") == f"Could not connect to the server at {name}:443."
    assert attempts == []


def test_a_cloud_id_to_loopback_is_blocked_unless_opened(settings, kind, bundle, dns):
    name = "0123456789abcdef0123456789abcdef.inside.cloud.test"
    dns[name] = "127.0.0.1"
    with SearchServer(CLUSTER, product=kind, tls=issue(bundle.ca, name, (name,)), users=USERS) as standin:
        config = ConnectionConfig(kind, {"server_type": "elastic-cloud", "username": "analyst",
                                         "cloud_id": _cloud_id(f"inside.cloud.test:{standin.port}")},
                                  {"password": CANARY})
        settings.DATASOURCE_ALLOWED_NETWORKS = []
        with connect_attempts() as attempts:
            result = get_connector(kind).test(config)
        assert _failed(result, "tcp") == f"Could not connect to the server at {name}:{standin.port}."
        assert attempts == [] and standin.requests == []


# --- auth, privileges ---------------------------------------------------------------------------


def test_wrong_or_missing_password_fails_at_auth(allow_loopback, kind, server, bundle):
    wrong = get_connector(kind).test(_config(kind, server, bundle, password="wrong-password-123"))
    assert _failed(wrong, "auth") == "Authentication failed for user 'analyst'."
    missing = get_connector(kind).test(_config(kind, server, bundle, password=""))
    assert "username and password are required" in _failed(missing, "auth")
    anonymous = get_connector(kind).test(_config(kind, server, bundle, password="", disable_auth=True))
    assert _failed(anonymous, "auth") == "The cluster requires a user name and password (disable_auth is on)."
    assert all("Authorization" not in h for _, _, h in server.requests[-3:])


def test_a_cluster_without_security_needs_no_credentials_even_over_http(allow_loopback, kind):
    with SearchServer(CLUSTER, product=kind) as open_cluster:
        config = _config(kind, open_cluster, password="", disable_auth=True)
        del config.connection["username"]
        result = get_connector(kind).test(config)
        assert result.ok, result.message
        assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database"]
        assert all("Authorization" not in h for _, _, h in open_cluster.requests)


@pytest.mark.parametrize(("user", "what"), [
    ("reader", "list the cluster's indices (_cat/indices)"), ("nobody", "read the cluster's information (GET /)")])
def test_missing_privileges_fail_at_database(allow_loopback, kind, server, bundle, user, what):
    config = _config(kind, server, bundle, username=user, password=USERS[user])
    message = _failed(get_connector(kind).test(config), "database")
    assert message.startswith(f"User '{user}' may not {what} (HTTP 403): it needs the monitor cluster privilege")
    assert "security_exception" in message  # the cluster's own reason follows, sanitized


# --- TLS -----------------------------------------------------------------------------------------


def test_tls_is_verified_with_the_configured_ca(allow_loopback, kind, server, bundle):
    system_cas = _config(kind, server)
    assert "could not be verified" in _failed(get_connector(kind).test(system_cas), "tls")
    other_ca = _config(kind, server, ca_certificate=make_ca("Other CA").cert_pem)
    assert "could not be verified" in _failed(get_connector(kind).test(other_ca), "tls")
    elsewhere = issue(bundle.ca, "search.example", ("search.example",))  # the right CA, another host name
    with SearchServer(CLUSTER, product=kind, tls=elsewhere, users=USERS) as named:
        assert "could not be verified" in _failed(get_connector(kind).test(_config(kind, named, bundle)), "tls")
        assert named.calls() == []  # no credentials went to it
    assert server.calls() == []


def test_an_unreadable_ca_fails_at_tls_before_any_packet(allow_loopback, kind, server):
    config = _config(kind, server, ca_certificate="-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----")
    with connect_attempts() as attempts:
        result = get_connector(kind).test(config)
    assert _failed(result, "tls") == "The CA certificate (ca_certificate) could not be read." and attempts == []
    config.connection["ignore_certificate"] = True  # nothing is verified: the CA is not read at all
    assert get_connector(kind).test(config).ok


@pytest.mark.parametrize("flag", ["ignore_certificate", "ignore_ssl"])
def test_ignoring_the_certificate_passes_and_says_so(allow_loopback, kind, server, flag):
    untrusted = _config(kind, server, **{flag: True})  # no CA: the test CA is unknown to the system
    result = get_connector(kind).test_and_introspect(untrusted)
    assert result.ok, result.message
    tls = [s for s in result.stages if s.name == "tls"]
    assert tls and tls[0].ok and "verification is off, as configured" in tls[0].message
    assert {t.name for t in result.tables} >= {"orders", "logs-app"}


@pytest.fixture
def editor_api(org, editor, make_client):
    return make_client(org, ["datasource.read", "datasource.write"], username=editor.username)


def test_ignoring_the_certificate_is_never_a_default_and_needs_the_password(api, editor_api, allow_loopback, kind,
                                                                           server, bundle):
    connection = {"server_type": "self-managed", "server_url": server.url, "username": "analyst",
                  "ca_certificate": bundle.ca.cert_pem}
    created = api.post(URL, {"name": "search", "type": kind, "connection": connection,
                             "credentials": {"password": CANARY}, "connection_timeout": 3}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["connection"].get("ignore_certificate") in (None, False)
    stages = [s["name"] for s in created.json()["last_test"]["stages"]]
    assert stages[:5] == ["resolve", "tcp", "tls", "auth", "database"]
    pk = created.json()["id"]
    refused = editor_api.patch(f"{URL}{pk}/", {"connection": {"ignore_certificate": True}}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "CREDENTIALS_REQUIRED", refused.json()
    asked = editor_api.patch(f"{URL}{pk}/", {"connection": {"ignore_certificate": True},
                                             "credentials": {"password": CANARY}}, format="json")
    assert asked.status_code == 200 and asked.json()["connection"]["ignore_certificate"] is True, asked.json()
    tls = [s for s in asked.json()["last_test"]["stages"] if s["name"] == "tls"]
    assert "verification is off, as configured" in tls[0]["message"]
    assert CANARY not in refused.content.decode() + asked.content.decode()


def test_a_configured_ca_is_the_clients_only_trust_anchor(allow_loopback, bundle):
    """The Elasticsearch client would add certifi's roots to the context: the configured CA must stay alone."""
    with SearchServer(CLUSTER, tls=bundle.server, users=USERS) as standin:
        config = _config("elasticsearch", standin, bundle)
        endpoint = search_endpoints.endpoint_of(config)
        with egress_scope(3, only=(endpoint.host,)) as scope:
            scope.pin(endpoint.host, "127.0.0.1")
            session = search_module.SearchSession("elasticsearch", config, endpoint, scope, True)
            assert session.login() == "Elasticsearch 8.15.0"
            node = next(iter(session.client.transport.node_pool.all()))
            assert node.pool.conn_kw["ssl_context"].cert_store_stats()["x509_ca"] == 1
            session.close()


# --- the other product, not a search server, old versions ---------------------------------------------


def test_the_other_product_fails_clearly(allow_loopback, bundle):
    for served, asked, message in (
        ("opensearch", "elasticsearch", "is OpenSearch 2.15.0, not Elasticsearch: choose the OpenSearch type"),
        ("elasticsearch", "opensearch", "is Elasticsearch 8.15.0, not OpenSearch: choose the Elasticsearch type"),
    ):
        with SearchServer(CLUSTER, product=served, tls=bundle.server, users=USERS) as other:
            result = get_connector(asked).test(_config(asked, other, bundle))
            assert _failed(result, "auth") == f"The server at 127.0.0.1:{other.port} {message} for it."
            assert other.calls() == ["/"]


class _NotSearch(BaseHTTPRequestHandler):
    """A web server that is not a search cluster: a page, a JSON without a version."""

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        body = b'{"status": "ok"}' if self.server.json else b"<html>hello</html>"  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json" if self.server.json else "text/html")  # type: ignore[attr-defined]
        self.send_header("X-elastic-product", "Elasticsearch")  # a header alone proves nothing
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        pass


@pytest.mark.parametrize("as_json", [False, True])
def test_a_server_that_is_not_a_search_cluster_reads_like_a_closed_port(allow_loopback, kind, as_json):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NotSearch)
    httpd.json = as_json  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        config = ConnectionConfig(kind, {"server_type": "self-managed", "server_url": f"http://127.0.0.1:{port}",
                                         "disable_auth": True}, {}, connect_timeout=3)
        message = _failed(get_connector(kind).test(config), "tcp")
        assert message == f"Could not connect to the server at 127.0.0.1:{port}."
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_elasticsearch_8_refuses_the_9x_clients_own_media_type(allow_loopback):
    """Why the connector asks for compatible-with=8: what the stand-in answers is what 8.x answers."""
    with SearchServer(CLUSTER, product="elasticsearch", version="8.15.0") as es8:
        with pytest.raises(elasticsearch.BadRequestError) as caught:
            elasticsearch.Elasticsearch(es8.url, max_retries=0).info()
        assert caught.value.meta.status == 400 and "compatible-with=9" in es8.requests[-1][2]["accept"]
        assert get_connector("elasticsearch").test(_config("elasticsearch", es8, password="", disable_auth=True)).ok
    with SearchServer(CLUSTER, product="elasticsearch", version="7.17.0") as es7:
        result = get_connector("elasticsearch").test(_config("elasticsearch", es7, password="", disable_auth=True))
        assert "an Elasticsearch version before 8.0" in _failed(result, "auth")


@pytest.mark.parametrize(("product", "version"), [("elasticsearch", "9.1.0"), ("opensearch", "2.15.0")])
def test_the_stand_in_answers_the_official_clients_own_api_calls(product, version):
    """Every endpoint the stand-in documents, reached through each client's API methods and defaults."""
    with SearchServer(CLUSTER, product=product, version=version, users=USERS) as standin:
        if product == "elasticsearch":
            client = elasticsearch.Elasticsearch(standin.url, basic_auth=("analyst", CANARY), max_retries=0)
            missing: type[Exception] = elasticsearch.NotFoundError
        else:
            client = opensearchpy.OpenSearch(standin.url, http_auth=("analyst", CANARY), max_retries=0)
            missing = opensearchpy.NotFoundError
        assert client.info()["version"]["number"] == version
        assert {r["index"] for r in client.cat.indices(format="json")} >= {"orders-2025", ".kibana_1"}
        assert set(client.indices.get_mapping(index="orders-*")) == {"orders-2024", "orders-2025"}
        assert client.indices.get_mapping(index="customers")["customers"]["mappings"]["properties"]["email"]
        assert client.indices.get_alias()["orders-2025"]["aliases"] == {"orders": {}}
        assert [s["name"] for s in client.indices.get_data_stream()["data_streams"]][0] == "logs-app"
        assert client.cluster.health()["status"] == "green"
        assert "nodes" in client.nodes.info(node_id="_all", metric="http")
        with pytest.raises(missing):
            client.indices.get_mapping(index="nope")
        client.close()


ONE_CLIENT = """
import sys
for name in {absent!r}:
    sys.modules[name] = None  # the package is not installed
import django
django.setup()
from django.conf import settings
settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8"]
from datasources.connectors.base import ConnectionConfig
from datasources.connectors.search import SearchConnector
from tests.support.search_server import Cluster, SearchServer
with SearchServer(Cluster(indices={{"orders": {{"id": {{"type": "long"}}}}}}), product={kind!r}) as standin:
    config = ConnectionConfig({kind!r}, {{"server_type": "self-managed", "server_url": standin.url,
                                         "disable_auth": True}}, {{}}, connect_timeout=3)
    result = SearchConnector({kind!r}).test_and_introspect(config)
    print(result.ok, result.message, [t.name for t in result.tables or []])
"""


@pytest.mark.parametrize(("kind", "absent"), [("opensearch", ("elasticsearch", "elastic_transport")),
                                              ("elasticsearch", ("opensearchpy",))])
def test_each_type_needs_only_its_own_client(kind, absent):
    """The registry offers a type when its own client is installed: the module must not need the other one."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    done = subprocess.run([sys.executable, "-c", ONE_CLIENT.format(kind=kind, absent=absent)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "True Connection succeeded. ['orders']", done.stdout


# --- no sniffing, no redirects elsewhere -----------------------------------------------------------


@pytest.mark.parametrize("announce", [f"{BLOCKED_IP}:9200", "127.0.0.2:{port}", "localhost:{other}"])
def test_nodes_the_cluster_announces_are_never_contacted(allow_loopback, kind, bundle, announce):
    other = _free_port()
    with SearchServer(CLUSTER, product=kind, tls=bundle.server, users=USERS) as standin:
        standin.announce = announce.format(port=standin.port, other=other)
        with connect_attempts() as attempts:
            result = get_connector(kind).test_and_introspect(_config(kind, standin, bundle))
        assert result.ok, result.message
        assert {a[:2] for a in attempts if isinstance(a, tuple)} == {("127.0.0.1", standin.port)}
        assert not [p for p in standin.calls() if p.startswith("/_nodes")]


# --- introspection scale and caps ----------------------------------------------------------------------


def test_1000_indices_are_introspected_in_a_constant_number_of_requests(allow_loopback, kind, bundle, capsys):
    fields = {f"f{j:02d}": {"type": ("keyword", "long", "date", "text")[j % 4]} for j in range(20)}
    big = Cluster(indices={f"idx-{i:04d}": fields for i in range(1000)},
                  aliases={f"alias-{i:03d}": [f"idx-{i:04d}"] for i in range(100)})
    with SearchServer(big, product=kind, tls=bundle.server, users=USERS) as standin:
        start = time.perf_counter()
        result = get_connector(kind).test_and_introspect(_config(kind, standin, bundle))
        elapsed = time.perf_counter() - start
        assert result.ok, result.message
        assert len(result.tables) == 1100 and sum(len(t.columns) for t in result.tables) == 22_000
        assert len(standin.calls()) == 5 and len(standin.requests) == 7  # + the tcp and tls probes (HEAD /)
    assert elapsed < 10
    with capsys.disabled():
        print(f"\n{kind} introspection: 1000 indices + 100 aliases x 20 fields in {elapsed * 1000:.0f} ms, "
              f"{len(standin.calls())} requests")


def test_caps_bound_tables_and_columns(allow_loopback, kind, bundle, monkeypatch):
    monkeypatch.setattr(search_mapping, "MAX_TABLES", 5)
    monkeypatch.setattr(search_mapping, "MAX_COLUMNS", 3)
    deep = {"a": {"properties": {"b": {"properties": {"c": {"type": "long"}, "d": {"type": "long"}}}}},
            "e": {"type": "keyword"}, "f": {"type": "keyword"}}
    big = Cluster(indices={f"idx-{i:02d}": deep for i in range(30)})
    with SearchServer(big, product=kind, tls=bundle.server, users=USERS) as standin:
        tables = get_connector(kind).introspect(_config(kind, standin, bundle))
    assert [t.name for t in tables] == [f"idx-{i:02d}" for i in range(5)]
    assert all([c.name for c in t.columns] == ["a.b.c", "a.b.d", "e"] for t in tables)


def test_introspection_without_mapping_privileges_fails_at_introspect(allow_loopback, kind, bundle):
    with SearchServer(CLUSTER, product=kind, tls=bundle.server, users=USERS,
                      privileges={"analyst": {"main", "monitor"}}) as standin:
        result = get_connector(kind).test_and_introspect(_config(kind, standin, bundle))
        assert result.ok and result.tables is None  # the test passed; the refresh records why
        with pytest.raises(ConnectorError) as caught:
            get_connector(kind).introspect(_config(kind, standin, bundle))
    assert caught.value.stage == "introspect" and "view_index_metadata" in caught.value.message


# --- reachability --------------------------------------------------------------------------------


def test_a_silent_listener_fails_at_tcp_within_the_timeout(allow_loopback, kind):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts (the kernel does), never answers
        port = silent.getsockname()[1]
        for scheme in ("https", "http"):
            config = ConnectionConfig(kind, {"server_type": "self-managed", "server_url": f"{scheme}://127.0.0.1:{port}",
                                             "username": "analyst"}, {"password": CANARY}, connect_timeout=2)
            start = time.monotonic()
            result = get_connector(kind).test(config)
            assert time.monotonic() - start < 3
            assert _failed(result, "tcp") == f"Could not connect to the server at 127.0.0.1:{port}."


def test_a_closed_port_and_a_blocked_host_look_the_same(allow_loopback, kind, server, bundle):
    port = _free_port()
    closed = get_connector(kind).test(_config(kind, server, bundle, server_url=f"https://127.0.0.1:{port}"))
    allow_loopback.DATASOURCE_ALLOWED_NETWORKS = []
    with connect_attempts() as attempts:
        blocked = get_connector(kind).test(_config(kind, server, bundle))  # a live server, refused by policy
    assert attempts == [] and server.requests == []
    for result, p in ((closed, port), (blocked, server.port)):
        assert _failed(result, "tcp") == f"Could not connect to the server at 127.0.0.1:{p}."


def test_a_password_never_travels_plain_http_to_a_public_address(kind):
    config = ConnectionConfig(kind, {"server_type": "self-managed", "server_url": "http://93.184.216.34:9200",
                                     "username": "analyst"}, {"password": CANARY}, connect_timeout=2)
    with connect_attempts() as attempts:
        result = get_connector(kind).test(config)
    assert "must use https://" in _failed(result, "tls") and attempts == []


# --- Databrain adapter ---------------------------------------------------------------------------


def test_databrain_put_tests_and_recaches(api, allow_loopback, kind, server, bundle):
    connection = {"server_type": "self-managed", "server_url": server.url, "username": "analyst",
                  "ca_certificate": bundle.ca.cert_pem}
    created = api.post(URL, {"name": "search-cluster", "type": kind, "connection": connection,
                             "credentials": {"password": CANARY}, "connection_timeout": 3}, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    other = Cluster(indices={"invoices": {"number": {"type": "keyword"}, "total": {"type": "scaled_float"}}})
    with SearchServer(other, product=kind, users=USERS) as plain:  # Databrain's structure has no CA field
        credentials = {"name": "search-cluster", "server_type": "self-managed", "serverUrl": plain.url,
                       "username": "analyst", "password": CANARY, "disableAuth": False,
                       "ignoreCertificate": False, "ignoreSsl": False}
        response = api.put(DB, {"datasourceType": kind, "credentials": credentials}, format="json")
        assert response.status_code == 200, response.json()
        assert response.json() == {"name": "search-cluster"}
        core = api.get(f"{URL}{pk}/").json()
        assert core["connection"]["server_url"] == plain.url and core["last_test"]["ok"]
        assert core["schema"]["status"] == "ready"
        tables = api.get(f"{URL}{pk}/schema/").json()["tables"]
        assert [(t["name"], [c["name"] for c in t["columns"]]) for t in tables] == [("invoices", ["number", "total"])]

        wrong = api.put(DB, {"datasourceType": kind, "credentials": {**credentials, "password": "wrong-pass-1"}},
                        format="json")
        assert wrong.status_code == 400 and wrong.json()["error"]["stage"] == "auth", wrong.json()

    untrusted = {**credentials, "serverUrl": server.url, "ignoreCertificate": True}  # https, test CA unknown
    response = api.put(DB, {"datasourceType": kind, "credentials": untrusted}, format="json")
    assert response.status_code == 200, response.json()
    core = api.get(f"{URL}{pk}/").json()
    assert core["connection"]["ignore_certificate"] is True and core["last_test"]["ok"]
    assert {t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]} >= {"orders", "logs-app"}
    for text in (created.content, response.content, wrong.content, json.dumps(core).encode()):
        assert CANARY.encode() not in text
