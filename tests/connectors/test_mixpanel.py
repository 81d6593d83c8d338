"""Mixpanel: the connector (requests on the Query API and the App API) against the per-region stand-in."""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time

import pytest

from datasources import catalogue
from datasources.connectors import MAX_COLUMNS, MAX_TABLES, ConnectionConfig, get_connector
from datasources.connectors.base import ConnectorError
from datasources.connectors.mixpanel import FALLBACK_EVENTS, MixpanelConnector, column_type, settings_of
from tests.support.contract import BLOCKED_IP, Contract, connect_attempts, run_contract
from tests.support.mixpanel_server import Event, Mixpanel, Project, serve

URL = "/api/v1/data-sources/"
CANARY = "mp-sa-CANARY-7c41e09b2d"
USER = "warehouse-sync.3f9a1c.mp-service-account"
SIGNUP = Event({"plan": {"type": "string"}, "seats": {"type": "integer"}, "trial": {"type": "boolean"},
                "signed_up_at": {"type": "string", "format": "date-time"}})
PURCHASE = Event({"amount": {"type": "number"}, "items": {"type": "array"}, "coupon": {"type": ["string", "null"]}})


def world() -> Mixpanel:
    return Mixpanel(USER, CANARY, projects={
        1: Project({"Sign Up": SIGNUP, "Purchase": PURCHASE}),
        2: Project({"Page View": Event({"url": {"type": "string"}})}),
        3: Project({"Secret": Event()}),
        7: Project({"Checkout": Event({"total": {"type": "number"}})}, region="EU"),
        9: Project({"Order": Event({"sku": {"type": "string"}})}, region="IN"),
    }, denied={3})


@pytest.fixture
def mixpanel():
    mp = world()
    with serve(mp):
        yield mp


def connection(mp: Mixpanel, project: int = 1, region: str = "US", **changes) -> dict:
    return {"project_id": project, "region": region, "username": USER, "endpoint_url": mp.urls[region], **changes}


def config(mp: Mixpanel, secret: str = CANARY, timeout: int = 3, **changes) -> ConnectionConfig:
    return ConnectionConfig("mixpanel", connection(mp, **changes), {"service_account_secret": secret},
                            connect_timeout=timeout)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_contract_through_the_native_api(api, allow_loopback, mixpanel, caplog):
    contract = Contract(
        type_key="mixpanel",
        connection=connection(mixpanel),
        credentials={"service_account_secret": CANARY},
        tables={"Sign Up", "Purchase"},
        patch={"project_id": 2},  # another project on the same host: not a destination change
        wrong_credentials={"service_account_secret": "mp-sa-wrong-secret-000"},
        unreachable={"endpoint_url": f"http://127.0.0.1:{closed_port()}"},
        blocked={"endpoint_url": f"http://{BLOCKED_IP}"},
        canary=CANARY,
    )
    final = run_contract(api, contract, caplog)
    schema = api.get(f"{URL}{final['id']}/schema/").json()
    by_name = {t["name"]: t for t in schema["tables"]}
    assert {t["schema"] for t in schema["tables"]} == {"events"}
    assert [(c["name"], c["type"], c["nullable"]) for c in by_name["Sign Up"]["columns"]] == [
        ("time", "datetime", False), ("distinct_id", "string", True), ("plan", "string", True),
        ("seats", "integer", True), ("trial", "boolean", True), ("signed_up_at", "datetime", True)]
    assert base64.b64encode(f"{USER}:{CANARY}".encode()).decode() not in caplog.text


def test_registry_builds_the_connector():
    assert isinstance(get_connector("mixpanel"), MixpanelConnector)


@pytest.mark.parametrize(("region", "host"), [("US", "mixpanel.com"), ("EU", "eu.mixpanel.com"),
                                              ("IN", "in.mixpanel.com")])
def test_each_region_maps_to_its_documented_host(region, host):
    cfg = ConnectionConfig("mixpanel", {"project_id": 42, "region": region, "username": USER}, {})
    settings = settings_of(cfg)
    assert (settings.endpoint.scheme, settings.endpoint.host, settings.endpoint.port) == ("https", host, 443)
    assert settings.query_url("/events/names") == f"https://{host}/api/query/events/names"
    assert settings.app_url("/projects/42/schemas/event") == f"https://{host}/api/app/projects/42/schemas/event"
    assert settings.app_url("/me") == f"https://{host}/api/app/me"


def test_default_region_endpoint_override_and_bad_values():
    default = settings_of(ConnectionConfig("mixpanel", {"project_id": 5, "username": USER}, {}))
    assert default.region == "US" and default.app_url("/me") == "https://mixpanel.com/api/app/me"
    proxied = settings_of(ConnectionConfig("mixpanel", {"project_id": 5, "region": "EU",
                                                        "endpoint_url": "https://proxy.internal:8443/mp/"}, {}))
    assert proxied.query_url("/events/names") == "https://proxy.internal:8443/mp/api/query/events/names"
    for bad in ({"project_id": 5, "region": "APAC"}, {"project_id": 0}, {"project_id": "x1"}, {"project_id": True}):
        with pytest.raises(ConnectorError) as failed:
            settings_of(ConnectionConfig("mixpanel", bad, {}))
        assert failed.value.stage == "resolve"


def test_region_field_is_a_destination_in_the_catalogue():
    assert catalogue.get_type("mixpanel").transit_fields()["region"].transit == catalogue.ENDPOINT


@pytest.mark.parametrize(("region", "project"), [("US", 1), ("EU", 7), ("IN", 9)])
def test_each_region_host_serves_its_own_projects(allow_loopback, mixpanel, region, project):
    connector = MixpanelConnector("mixpanel")
    result = connector.test_and_introspect(config(mixpanel, region=region, project=project))
    assert result.ok, result
    assert result.server_version == f"Mixpanel project {project} ({region})"
    assert {r for r, _, p in mixpanel.requests if p.startswith("/api/")} == {region}
    other = "EU" if region != "EU" else "US"  # the project asked of another residency's host
    elsewhere = connector.test(config(mixpanel, project=project, region=other))
    assert elsewhere.stage == "database" and f"project {project} in the {other} region" in elsewhere.message


@pytest.fixture
def editor_api(org, editor, make_client):
    return make_client(org, ["datasource.read", "datasource.write"], username=editor.username)


def test_region_change_is_a_destination_change(api, editor_api, allow_loopback, mixpanel):
    created = api.post(URL, {"name": "product analytics", "type": "mixpanel", "connection": connection(mixpanel),
                             "credentials": {"service_account_secret": CANARY}, "connection_timeout": 3},
                       format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    to_eu = {"region": "EU", "endpoint_url": mixpanel.urls["EU"], "project_id": 7}
    for change in ({"region": "EU"}, to_eu):
        refused = editor_api.patch(f"{URL}{pk}/", {"connection": change}, format="json")
        assert refused.status_code == 400 and refused.json()["code"] == "CREDENTIALS_REQUIRED", refused.json()
        assert "connection.region" in refused.json()["message"]
    sent = len(mixpanel.requests)
    moved = editor_api.patch(f"{URL}{pk}/", {"connection": to_eu, "credentials": {"service_account_secret": CANARY}},
                             format="json")
    assert moved.status_code == 200 and moved.json()["last_test"]["ok"], moved.json()
    assert {r for r, _, p in mixpanel.requests[sent:] if p.startswith("/api/")} == {"EU"}
    assert CANARY not in refused.content.decode() + moved.content.decode()


def test_stages_and_the_requests_sent(allow_loopback, mixpanel):
    result = MixpanelConnector("mixpanel").test_and_introspect(config(mixpanel))
    assert result.ok, result
    assert [s.name for s in result.stages] == ["resolve", "tcp", "auth", "database", "introspect"]
    assert [(m, p) for _, m, p in mixpanel.requests] == [
        ("HEAD", "/"), ("GET", "/api/app/me"), ("GET", "/api/query/events/names?project_id=1&type=general&limit=1"),
        ("GET", "/api/app/projects/1/schemas/event")]
    purchase = next(t for t in result.tables if t.name == "Purchase")
    assert [(c.name, c.data_type, c.ordinal) for c in purchase.columns][2:] == [
        ("amount", "number", 3), ("items", "array", 4), ("coupon", "string", 5)]


def test_wrong_and_missing_secret_fail_at_auth(allow_loopback, mixpanel):
    connector = MixpanelConnector("mixpanel")
    wrong = connector.test(config(mixpanel, secret="mp-sa-not-the-secret"))
    assert wrong.stage == "auth" and wrong.message.startswith("The service account was refused (HTTP 401).")
    assert [s.name for s in wrong.stages if s.ok] == ["resolve", "tcp"]
    sent = len(mixpanel.requests)
    missing = connector.test(config(mixpanel, secret=""))
    assert missing.stage == "auth" and "required" in missing.message
    assert [p for _, _, p in mixpanel.requests[sent:]] == ["/"]  # the probe only: no API call without a secret


def test_unknown_and_forbidden_projects_fail_at_database(allow_loopback, mixpanel):
    connector = MixpanelConnector("mixpanel")
    unknown = connector.test(config(mixpanel, project=404404))
    assert (unknown.ok, unknown.stage) == (False, "database")
    assert "no access to project 404404" in unknown.message and "HTTP 404" in unknown.message
    assert [s.name for s in unknown.stages if s.ok] == ["resolve", "tcp", "auth"]
    denied = connector.test(config(mixpanel, project=3))
    assert denied.stage == "database" and "no access to project 3" in denied.message and "HTTP 403" in denied.message


def test_redirect_is_not_followed(allow_loopback, mixpanel):
    mixpanel.redirect_to = f"http://{BLOCKED_IP}/latest/meta-data/"
    with connect_attempts() as attempts:
        result = MixpanelConnector("mixpanel").test(config(mixpanel))
    assert not result.ok and result.stage == "auth" and "redirected" in result.message
    assert not [a for a in attempts if isinstance(a, tuple) and a[0] == BLOCKED_IP], attempts


def test_black_holed_endpoint_fails_within_the_timeout(allow_loopback):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts (the kernel does) and never answers
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True).start()
    cfg = ConnectionConfig("mixpanel", {"project_id": 1, "username": USER,
                                        "endpoint_url": f"http://127.0.0.1:{silent.getsockname()[1]}"},
                           {"service_account_secret": CANARY}, connect_timeout=2)
    start = time.monotonic()
    try:
        result = MixpanelConnector("mixpanel").test(cfg)
    finally:
        silent.close()
        for sock in held:
            sock.close()
    assert time.monotonic() - start < 2 + 1
    assert result.stage == "tcp" and result.message.startswith("Could not connect to the server at 127.0.0.1:")


def test_one_thousand_events_in_one_request(allow_loopback, mixpanel):
    mixpanel.projects[1].events = {f"event {i:04d}": Event({"a": {"type": "string"}, "b": {"type": "number"}})
                                   for i in range(1000)}
    result = MixpanelConnector("mixpanel").test_and_introspect(config(mixpanel))
    assert result.ok and len(result.tables) == 1000
    assert all([c.name for c in t.columns] == ["time", "distinct_id", "a", "b"] for t in result.tables)
    assert mixpanel.api_calls("/api/app/projects/") == ["/api/app/projects/1/schemas/event"]
    assert len(mixpanel.api_calls()) == 3  # /me, the project check, the schemas


@pytest.mark.parametrize("lexicon", ["empty", "forbidden"])
def test_without_lexicon_the_query_api_is_asked_a_bounded_number_of_times(allow_loopback, mixpanel, lexicon):
    mixpanel.projects[1].events = {f"event {i:04d}": Event({"p": {"type": "string"}}, lexicon=False)
                                   for i in range(1000)}
    mixpanel.lexicon_forbidden = lexicon == "forbidden"
    tables = MixpanelConnector("mixpanel").introspect(config(mixpanel))
    assert len(tables) == 1000
    assert [c.name for c in tables[0].columns] == ["time", "distinct_id", "p"] and tables[0].columns[2].data_type == (
        "unknown")
    assert sum(len(t.columns) == 3 for t in tables) == FALLBACK_EVENTS
    names = [p for p in mixpanel.api_calls() if p.startswith("/api/query/events/names")]
    assert names == [f"/api/query/events/names?project_id=1&type=general&limit={MAX_TABLES}"]
    assert len(mixpanel.api_calls()) == 2 + FALLBACK_EVENTS


def test_introspection_bounds(allow_loopback, mixpanel):
    events = {f"e{i:05d}": Event({"id": {"type": "integer"}}) for i in range(MAX_TABLES + 3)}
    events["e00000"] = Event({f"c{i}": {"type": "string"} for i in range(MAX_COLUMNS + 5)})
    events["x" * 300] = Event()  # longer than any table name the schema cache holds
    mixpanel.projects[1].events = events
    tables = MixpanelConnector("mixpanel").introspect(config(mixpanel))
    assert len(tables) == MAX_TABLES and len(tables[0].columns) == MAX_COLUMNS
    assert all(len(t.name) <= 255 for t in tables)


def test_lexicon_types():
    assert column_type({"type": "string", "format": "date-time"}) == "datetime"
    assert column_type({"type": ["number", "null"]}) == "number"
    assert column_type({"type": ["string", "number"]}) == "string|number"
    assert column_type({"type": "null"}) == column_type({}) == column_type("x") == "unknown"


def test_canary_never_leaked_even_when_the_server_echoes_the_header(allow_loopback, mixpanel, caplog):
    caplog.set_level(logging.DEBUG)
    basic = base64.b64encode(f"{USER}:{CANARY}".encode()).decode()
    mixpanel.echo_auth = True
    mixpanel.secret = "another-secret-0000"  # every call is refused, and the refusal repeats our header
    connector = MixpanelConnector("mixpanel")
    result = connector.test(config(mixpanel))
    assert result.stage == "auth" and "***" in result.message
    with pytest.raises(ConnectorError) as failed:
        connector.introspect(config(mixpanel))
    texts = [str(result.as_dict()), str(failed.value), caplog.text]
    assert not [t for t in texts if CANARY in t or basic in t or "Authorization" in t]
