"""Elasticsearch / OpenSearch name the other product at stage auth (outside audit, finding 4).

Elasticsearch pointed at an OpenSearch server gave ``[resolve ok, tls ok, tcp failed]`` (a tcp failure after
a passed tls stage), with a good message. The product check is the ``GET /`` of stage auth, the first request
in the product's own protocol, where Snowflake ("did not answer the Snowflake login"), Databricks and MCP also
fail a peer that is not the product: the other product, and an Elasticsearch before 8.0, are named there. A
server that is neither still reads like a closed port (README, "Egress policy").
"""

from __future__ import annotations

import pytest

from datasources.connectors import ConnectionConfig, get_connector
from tests.support.certs import make_bundle
from tests.support.search_server import Cluster, SearchServer

CANARY = "canary-audit-search-3f90"


@pytest.mark.parametrize(("served", "asked", "number", "name"), [
    ("opensearch", "elasticsearch", "2.15.0", "OpenSearch"), ("elasticsearch", "opensearch", "8.15.0", "Elasticsearch"),
])
def test_the_other_search_product_fails_at_auth(allow_loopback, served, asked, number, name):
    bundle = make_bundle()
    with SearchServer(Cluster(), product=served, tls=bundle.server, users={"analyst": CANARY}) as other:
        config = ConnectionConfig(asked, {"server_type": "self-managed", "server_url": other.url,
                                          "username": "analyst", "ca_certificate": bundle.ca.cert_pem},
                                  {"password": CANARY}, connect_timeout=3)
        result = get_connector(asked).test(config)
    wanted = "OpenSearch" if asked == "opensearch" else "Elasticsearch"
    assert (result.ok, result.stage, result.message) == (
        False, "auth", f"The server at 127.0.0.1:{other.port} is {name} {number}, not {wanted}: choose the {name} "
                       "type for it."), result.as_dict()
    assert [(s.name, s.ok) for s in result.stages] == [
        ("resolve", True), ("tcp", True), ("tls", True), ("auth", False)]


def test_an_elasticsearch_before_8_fails_at_auth(allow_loopback):
    with SearchServer(Cluster(), product="elasticsearch", version="7.17.0") as es7:
        config = ConnectionConfig("elasticsearch", {"server_type": "self-managed", "server_url": es7.url,
                                                    "disable_auth": True}, {}, connect_timeout=3)
        result = get_connector("elasticsearch").test(config)
    assert (result.ok, result.stage) == (False, "auth") and "an Elasticsearch version before 8.0" in result.message
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth"]
