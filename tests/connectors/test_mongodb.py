"""MongoDB connector: the real pymongo against the wire-protocol stand-in (tests/support/mongo_server.py)."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from datasources.connectors import ConnectionConfig, ConnectorError, get_connector, mongodb_fields, mongodb_srv
from datasources.connectors import mongodb as mongodb_module
from tests.support.certs import issue, make_bundle, make_ca
from tests.support.contract import BLOCKED_IP, Contract, connect_attempts, run_contract
from tests.support.mongo_dns import DnsServer
from tests.support.mongo_server import MongoServer, View

CANARY = "canary-Mongo-5ecret-4b1d"
URL = "/api/v1/data-sources/"
DB = "/compat/databrain/api/v2/datasource"
BLOCKED_MEMBER = f"{BLOCKED_IP}:27017"
ORDERS = [
    {"_id": 1, "amount": 12.5, "customer": {"name": "Ada", "address": {"city": "Paris", "geo": {"pos": {"lat": 1.0}}}},
     "tags": ["new"], "count": 3},
    {"_id": 2, "amount": None, "note": "gift", "count": 2**40},
]


def databases() -> dict:
    return {
        "shop": {"orders": ORDERS, "customers": [{"_id": "c1", "email": "ada@example.test"}],
                 "big_orders": View("orders"), "empty": [], "system.views": [{"_id": "shop.big_orders"}]},
        "crm": {"leads": [{"_id": 1, "source": "web"}]},
    }


@pytest.fixture(scope="module")
def bundle():
    return make_bundle()  # server certificate for 127.0.0.1 and localhost


@pytest.fixture
def server():
    with MongoServer(databases(), users={"analyst": CANARY}) as standin:
        yield standin


@pytest.fixture
def tls_server(bundle):
    with MongoServer(databases(), users={"analyst": CANARY}, tls=bundle.server) as standin:
        yield standin


def _config(server, password=CANARY, timeout=3, **overrides) -> ConnectionConfig:
    connection = {"host": "127.0.0.1", "port": server.port, "database": "shop", "username": "analyst",
                  "auth_source": "admin", "tls": False, "srv": False, **overrides}
    secrets = {"password": password} if password else {}
    return ConnectionConfig("mongodb", connection, secrets, connect_timeout=timeout, query_timeout=20)


def _tls_config(server, bundle, **overrides) -> ConnectionConfig:
    return _config(server, **{"tls": True, "ca_certificate": bundle.ca.cert_pem, **overrides})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _failed(result, stage: str) -> str:
    assert (result.ok, result.stage) == (False, stage), result.as_dict()
    assert result.stages[-1].name == stage and not result.stages[-1].ok
    assert CANARY not in json.dumps(result.as_dict())
    return result.message


def test_stages_fields_and_views_over_one_session(allow_loopback, server, capsys):
    result = get_connector("mongodb").test_and_introspect(_config(server))
    assert result.ok, result.message
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database", "introspect"]
    assert result.server_version == "MongoDB 7.0.14"
    tables = {t.name: t for t in result.tables}
    assert set(tables) == {"orders", "customers", "big_orders", "empty"}  # system.* skipped
    assert {t.schema for t in tables.values()} == {"shop"} and tables["big_orders"].kind == "view"
    assert (tables["orders"].kind, tables["empty"].columns) == ("table", [])
    assert [(c.name, c.data_type, c.nullable, c.ordinal) for c in tables["orders"].columns] == [
        ("_id", "int", False, 1), ("amount", "double", True, 2), ("customer", "object", True, 3),
        ("customer.name", "string", True, 4), ("customer.address", "object", True, 5),
        ("customer.address.city", "string", True, 6), ("customer.address.geo", "object", True, 7),
        ("customer.address.geo.pos", "object", True, 8),  # FIELD_DEPTH 4: customer.address.geo.pos.lat is not listed
        ("tags", "array", True, 9), ("count", "int|long", False, 10), ("note", "string", True, 11)]
    assert [c.name for c in tables["big_orders"].columns] == [c.name for c in tables["orders"].columns]
    saslstarts = server.names("saslStart")
    assert saslstarts and {d["mechanism"] for d in saslstarts} == {"SCRAM-SHA-256"}
    handshakes = server.names("ismaster")
    assert handshakes and {d["client"]["application"]["name"] for d in handshakes if "client" in d} == {
        mongodb_module.APPLICATION_NAME}
    assert len(server.names("find")) == 4 and all(d["singleBatch"] and d["limit"] == 100 for d in server.names("find"))
    durations = sorted(get_connector("mongodb").test(_config(server)).duration_ms for _ in range(5))
    with capsys.disabled():
        print(f"\nMongoDB (stand-in, SCRAM-SHA-256) connection test: best of 5 {durations[0]:.1f} ms")


def test_contract(api, allow_loopback, caplog, tls_server, bundle):
    connection = {"host": "127.0.0.1", "port": tls_server.port, "database": "shop", "username": "analyst",
                  "tls": True, "ca_certificate": bundle.ca.cert_pem}
    contract = Contract(
        type_key="mongodb", connection=connection, credentials={"password": CANARY},
        tables={"orders", "customers", "big_orders"}, patch={"database": "crm"},
        wrong_credentials={"password": "wrong-password-123"},
        unreachable={"port": _free_port()}, blocked={"host": BLOCKED_IP},
        canary=CANARY, stages=("resolve", "tcp", "tls", "auth", "database"),
    )
    final = run_contract(api, contract, caplog)
    assert final["schema"]["status"] == "ready" and final["last_test"]["ok"]


def test_wrong_password_fails_at_auth(allow_loopback, server, caplog):
    caplog.set_level(logging.DEBUG)
    assert _failed(get_connector("mongodb").test(_config(server, password="wrong-pass-1")), "auth") == (
        "Authentication failed.")
    assert _failed(get_connector("mongodb").test(_config(server, username="nobody")), "auth") == (
        "Authentication failed.")
    assert _failed(get_connector("mongodb").test(_config(server, password="")), "auth") == (
        "A password is required for user 'analyst'.")
    message = _failed(get_connector("mongodb").test(_config(server, username="")), "auth")
    assert message == "The server requires authentication: give a username and password."
    assert CANARY not in caplog.text


def test_scram_sha1_and_servers_without_authentication(allow_loopback):
    with MongoServer(databases(), users={"analyst": CANARY}, mechanisms=("SCRAM-SHA-1",)) as sha1:
        assert get_connector("mongodb").test(_config(sha1)).ok
        assert {d["mechanism"] for d in sha1.names("saslStart")} == {"SCRAM-SHA-1"}
        assert _failed(get_connector("mongodb").test(_config(sha1, password="wrong-pass-1")), "auth")
    with MongoServer(databases()) as open_server:
        result = get_connector("mongodb").test(_config(open_server, username=""))
        assert result.ok and not open_server.names("saslStart"), result.message


def test_tls_verified_with_the_source_ca(allow_loopback, tls_server, bundle):
    result = get_connector("mongodb").test(_tls_config(tls_server, bundle))
    assert result.ok and [s.name for s in result.stages] == ["resolve", "tcp", "tls", "auth", "database"]


def test_untrusted_certificates_fail_at_tls_before_any_login(allow_loopback, tls_server, bundle):
    system_cas = _tls_config(tls_server, bundle)
    del system_cas.connection["ca_certificate"]
    assert "could not be verified" in _failed(get_connector("mongodb").test(system_cas), "tls")
    other_ca = _tls_config(tls_server, bundle, ca_certificate=make_ca("Other CA").cert_pem)
    assert "could not be verified" in _failed(get_connector("mongodb").test(other_ca), "tls")
    assert tls_server.names("saslStart") == []
    elsewhere = issue(bundle.ca, "mongo.example", ("mongo.example",))  # the right CA, another host name
    with MongoServer(databases(), users={"analyst": CANARY}, tls=elsewhere) as named:
        assert "could not be verified" in _failed(get_connector("mongodb").test(_tls_config(named, bundle)), "tls")
        assert named.names("saslStart") == []
    bad = _tls_config(tls_server, bundle, ca_certificate="-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----")
    assert _failed(get_connector("mongodb").test(bad), "tls") == (
        "The CA certificate (ca_certificate) could not be read.")


def test_tls_mismatch(allow_loopback, server, tls_server, bundle):
    """Plain against a TLS port reads like a closed port; TLS against a plain MongoDB is named at stage tls."""
    assert _failed(get_connector("mongodb").test(_config(tls_server)), "tcp") == (
        f"Could not connect to the server at 127.0.0.1:{tls_server.port}.")
    assert _failed(get_connector("mongodb").test(_tls_config(server, bundle)), "tls") == (
        "The server does not support TLS, but TLS is required (tls or srv is on).")


def test_unknown_database_fails_at_database(allow_loopback, server):
    message = _failed(get_connector("mongodb").test(_config(server, database="nope")), "database")
    assert message == ("Database 'nope' does not exist or this user may not use it "
                       "(MongoDB lists a database once it holds data).")
    with pytest.raises(ConnectorError) as caught:
        get_connector("mongodb").introspect(_config(server, database="nope"))
    assert caught.value.stage == "database"
    assert _failed(get_connector("mongodb").test(_config(server, database="a.b")), "database") == (
        "Database name 'a.b' is not a valid MongoDB database name.")


def test_without_list_databases_the_list_collections_privilege_decides(allow_loopback):
    with MongoServer(databases(), users={"analyst": CANARY}, refuse=("listDatabases",)) as limited:
        assert get_connector("mongodb").test(_config(limited)).ok
    with MongoServer(databases(), users={"analyst": CANARY}, refuse=("listCollections",)) as limited:
        assert _failed(get_connector("mongodb").test(_config(limited)), "database") == (
            "User 'analyst' is not allowed to run listCollections on database 'shop'.")


# --- egress: members announced by the server, SRV seed lists ----------------------------------------


def test_a_primary_announced_at_a_blocked_address_gets_zero_attempts(allow_loopback, server):
    server.set_name, server.primary, server.hosts = "rs0", server.address, [BLOCKED_MEMBER]  # drops itself
    with connect_attempts() as attempts:
        result = get_connector("mongodb").test(_config(server, replica_set="rs0", timeout=2))
    assert _failed(result, "tcp") == f"Could not connect to the server at {BLOCKED_MEMBER}."
    assert not [a for a in attempts if isinstance(a, tuple) and a[0] == BLOCKED_IP], attempts


def test_blocked_and_unix_socket_members_get_zero_attempts(allow_loopback, server, caplog):
    caplog.set_level(logging.INFO, logger="datasources.connectors.mongodb")
    server.set_name, server.primary = "rs0", server.address
    server.hosts = [server.address, BLOCKED_MEMBER, "/tmp/mongodb-27017.sock"]
    with connect_attempts() as attempts:
        result = get_connector("mongodb").test_and_introspect(_config(server, replica_set="rs0"))
    assert result.ok and {t.name for t in result.tables} >= {"orders"}, result.message
    assert all(isinstance(a, tuple) and a[:2] == ("127.0.0.1", server.port) for a in attempts), attempts
    refused = {r.getMessage() for r in caplog.records if "refused" in r.getMessage()}
    assert refused == {f"Egress policy refused a connection to {BLOCKED_MEMBER} (announced by the server)",
                       "Egress policy refused a connection to /tmp/mongodb-27017.sock:27017 (announced by the server)"}


def test_a_replica_set_name_the_server_does_not_carry_fails_at_tcp(allow_loopback, server):
    assert _failed(get_connector("mongodb").test(_config(server, replica_set="rs0")), "tcp") == (
        f"The server at 127.0.0.1:{server.port} is not a member of replica set 'rs0'.")


@pytest.fixture
def srv_world(bundle, monkeypatch):
    """cluster0.example.test: SRV -> db0.example.test (the stand-in, TLS for that name), TXT replicaSet=rs0."""
    named = issue(bundle.ca, "db0.example.test", ("db0.example.test",))
    with MongoServer(databases(), users={"analyst": CANARY}, tls=named) as standin:
        standin.set_name = "rs0"
        standin.me = standin.primary = f"db0.example.test:{standin.port}"
        standin.hosts = [standin.me]
        records = {
            ("_mongodb._tcp.cluster0.example.test", "SRV"): [f"0 0 {standin.port} db0.example.test."],
            ("cluster0.example.test", "TXT"): ['"replicaSet=rs0&authSource=admin"'],
            ("db0.example.test", "A"): ["127.0.0.1"],
            ("_mongodb._tcp.evil.example.test", "SRV"): [f"0 0 {standin.port} db0.example.test.",
                                                         "0 0 27017 meta.example.test."],
            ("meta.example.test", "A"): [BLOCKED_IP],
            ("_mongodb._tcp.away.example.test", "SRV"): [f"0 0 {standin.port} db0.other.test."],
            ("_mongodb._tcp.rs9.example.test", "SRV"): [f"0 0 {standin.port} db0.example.test."],
            ("rs9.example.test", "TXT"): ['"replicaSet=rs9"'],
            ("_mongodb._tcp.odd.example.test", "SRV"): [f"0 0 {standin.port} db0.example.test."],
            ("odd.example.test", "TXT"): ['"tls=false&replicaSet=rs0"'],
        }
        with DnsServer(records) as dns_standin:
            monkeypatch.setattr(mongodb_srv, "DNS_NAMESERVERS", ("127.0.0.1",))
            monkeypatch.setattr(mongodb_srv, "DNS_PORT", dns_standin.port)
            yield standin, dns_standin


def test_srv_seed_list_through_the_policy(allow_loopback, srv_world, bundle):
    standin, dns_standin = srv_world
    config = _config(standin, host="cluster0.example.test", srv=True, ca_certificate=bundle.ca.cert_pem)
    result = get_connector("mongodb").test_and_introspect(config)
    assert result.ok, result.message
    assert [s.name for s in result.stages] == ["resolve", "tcp", "tls", "auth", "database", "introspect"]  # srv: TLS
    assert {t.name for t in result.tables} >= {"orders", "big_orders"}
    assert ("_mongodb._tcp.cluster0.example.test", "SRV") in dns_standin.queries
    assert ("cluster0.example.test", "TXT") in dns_standin.queries


def test_the_txt_record_names_the_replica_set(allow_loopback, srv_world, bundle):
    standin, _ = srv_world
    config = _config(standin, host="rs9.example.test", srv=True, ca_certificate=bundle.ca.cert_pem)
    assert _failed(get_connector("mongodb").test(config), "tcp") == (
        f"The server at db0.example.test:{standin.port} is not a member of replica set 'rs9'.")
    config.connection["replica_set"] = "rs0"  # the source's own setting wins
    assert get_connector("mongodb").test(config).ok


def test_an_srv_target_at_a_blocked_address_is_refused_with_zero_attempts(allow_loopback, srv_world, bundle):
    standin, _ = srv_world
    config = _config(standin, host="evil.example.test", srv=True, ca_certificate=bundle.ca.cert_pem)
    with connect_attempts() as attempts:
        result = get_connector("mongodb").test(config)
    assert _failed(result, "tcp") == "Could not connect to the server at meta.example.test:27017."
    assert attempts == [] and standin.connections == 0  # the whole seed list is refused


def test_srv_records_outside_the_domain_or_missing_fail_at_resolve(allow_loopback, srv_world, bundle):
    standin, _ = srv_world
    away = _config(standin, host="away.example.test", srv=True, ca_certificate=bundle.ca.cert_pem)
    assert _failed(get_connector("mongodb").test(away), "resolve") == (
        "The SRV record names host 'db0.other.test', outside the domain of 'away.example.test'.")
    missing = _config(standin, host="none.example.test", srv=True)
    assert _failed(get_connector("mongodb").test(missing), "resolve") == (
        "No SRV record _mongodb._tcp.none.example.test was found.")
    odd = _config(standin, host="odd.example.test", srv=True)
    assert _failed(get_connector("mongodb").test(odd), "resolve") == (
        "The TXT record of 'odd.example.test' sets an option other than replicaSet and authSource.")
    literal = _config(standin, host="127.0.0.1", srv=True)
    assert "needs a host name" in _failed(get_connector("mongodb").test(literal), "resolve")
    assert standin.connections == 0


@pytest.mark.parametrize("host", ["mongo.sock", "mongodb://evil.example/?tls=false", "db-1.example/x", "a,b"])
def test_hosts_that_are_not_host_names_fail_at_resolve(allow_loopback, server, host):
    assert _failed(get_connector("mongodb").test(_config(server, host=host)), "resolve")
    assert server.connections == 0


# --- reaching the server ----------------------------------------------------------------------------


def test_silent_or_foreign_listeners_fail_at_tcp_within_the_timeout(allow_loopback):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts (the kernel does), never answers
        port = silent.getsockname()[1]
        start = time.monotonic()
        result = get_connector("mongodb").test(_config(type("S", (), {"port": port}), timeout=2))
        assert time.monotonic() - start < 3
        assert _failed(result, "tcp") == f"Could not connect to the server at 127.0.0.1:{port}."


def test_a_closed_port_and_a_blocked_host_look_the_same(allow_loopback, server):
    port = _free_port()
    closed = get_connector("mongodb").test(_config(server, port=port))
    allow_loopback.DATASOURCE_ALLOWED_NETWORKS = []
    with connect_attempts() as attempts:
        blocked = get_connector("mongodb").test(_config(server))  # a live server, refused by policy
    assert attempts == [] and server.connections == 0
    for result, p in ((closed, port), (blocked, server.port)):
        assert _failed(result, "tcp") == f"Could not connect to the server at 127.0.0.1:{p}."


# --- introspection bounds ---------------------------------------------------------------------------


def test_1000_collections_one_find_each_within_the_query_timeout(allow_loopback, capsys):
    many = {"many": {f"c{i:04d}": [{"_id": i, "name": f"n{i}", "at": {"x": i}}] for i in range(1000)}}
    with MongoServer(many, users={"analyst": CANARY}) as standin:
        start = time.perf_counter()
        result = get_connector("mongodb").test_and_introspect(_config(standin, database="many"))
        elapsed = time.perf_counter() - start
        listings = len(standin.names("listCollections")) + len(standin.names("getMore"))
        finds = len(standin.names("find"))
    assert result.ok, result.message
    assert len(result.tables) == 1000 and all(len(t.columns) == 4 for t in result.tables)
    assert finds == 1000 and listings <= 3  # the stage's check, the first page (101) and one getMore
    assert elapsed < 20  # query_timeout bounds it
    with capsys.disabled():
        print(f"\nMongoDB introspection: 1000 collections in {elapsed * 1000:.0f} ms, {finds} finds, "
              f"{listings} listCollections/getMore")


def test_the_sample_is_bounded(allow_loopback):
    big = {"shop": {"big": [{"_id": i, "n": i, f"f{i % 7}": True} for i in range(10_000)]}}
    with MongoServer(big, users={"analyst": CANARY}) as standin:
        tables = get_connector("mongodb").introspect(_config(standin))
        assert standin.returned["shop.big"] == mongodb_module.SAMPLE_DOCS and not standin.names("getMore")
    assert [c.name for c in tables[0].columns] == ["_id", "n", *[f"f{i}" for i in range(7)]]


def test_caps_stop_listing_and_close_the_cursor(allow_loopback, monkeypatch):
    monkeypatch.setattr(mongodb_module, "MAX_TABLES", 5)
    monkeypatch.setattr(mongodb_fields, "MAX_COLUMNS", 3)
    wide = {"wide": {f"t{i:03d}": [{f"c{j}": j for j in range(10)}] for i in range(300)}}
    with MongoServer(wide, users={"analyst": CANARY}) as standin:
        tables = get_connector("mongodb").introspect(_config(standin, database="wide"))
        assert [t.name for t in tables] == [f"t{i:03d}" for i in range(5)]
        assert all([c.name for c in t.columns] == ["c0", "c1", "c2"] for t in tables)
        assert len(standin.names("killCursors")) == 1 and not standin.names("getMore")
        assert len(standin.names("find")) == 5


def test_introspection_is_bounded_by_the_query_timeout(allow_loopback):
    slow = {"slow": {f"c{i:02d}": [{"_id": i}] for i in range(40)}}
    with MongoServer(slow, users={"analyst": CANARY}, find_delay=0.5) as standin:
        config = _config(standin, database="slow")
        config.query_timeout = 2
        start = time.monotonic()
        with pytest.raises(ConnectorError) as caught:
            get_connector("mongodb").introspect(config)
        assert time.monotonic() - start < 2 + 1.5
        assert caught.value.stage == "introspect"
        assert "within 2 seconds" in caught.value.message
        assert len(standin.names("find")) < 40
        result = get_connector("mongodb").test_and_introspect(config)  # the test itself still passes
        assert result.ok and result.tables is None


# --- Databrain adapter ------------------------------------------------------------------------------


def test_databrain_put_tests_and_recaches(api, allow_loopback, tls_server, bundle):
    server = tls_server  # TLS and the CA are native fields outside Databrain's structure: they are kept
    connection = {"host": "127.0.0.1", "port": server.port, "database": "shop", "username": "analyst", "tls": True,
                  "ca_certificate": bundle.ca.cert_pem}
    created = api.post(URL, {"name": "mongo-app", "type": "mongodb", "connection": connection,
                             "credentials": {"password": CANARY}, "connection_timeout": 3}, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert {t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]} >= {"orders", "big_orders"}
    credentials = {"name": "mongo-app", "host": "127.0.0.1", "port": server.port, "username": "analyst",
                   "password": CANARY, "database": "crm"}
    response = api.put(DB, {"datasourceType": "mongodb", "credentials": credentials}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"name": "mongo-app"}
    core = api.get(f"{URL}{pk}/").json()
    assert core["connection"]["database"] == "crm" and core["last_test"]["ok"] and core["connection"]["tls"]
    assert "tls" in [s["name"] for s in core["last_test"]["stages"]]
    assert core["schema"]["status"] == "ready"
    assert {t["name"] for t in api.get(f"{URL}{pk}/schema/").json()["tables"]} == {"leads"}

    wrong = api.put(DB, {"datasourceType": "mongodb", "credentials": {**credentials, "password": "wrong-pass-1"}},
                    format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["stage"] == "auth", wrong.json()
    unknown = api.put(DB, {"datasourceType": "mongodb", "credentials": {**credentials, "database": "nope"}},
                      format="json")
    assert unknown.status_code == 400 and unknown.json()["error"]["stage"] == "database", unknown.json()
    assert api.get(f"{URL}{pk}/").json()["connection"]["database"] == "crm"
    for text in (created.content, response.content, wrong.content, unknown.content, json.dumps(core).encode()):
        assert CANARY.encode() not in text
