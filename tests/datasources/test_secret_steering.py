"""A stored secret cannot be steered to a server the requester controls, on any entry point.

The attacker is a writer without the admin role (an editor's token): every change that moves where
or how a stored secret travels needs that secret in the same request. Dry runs and connection tests
of an existing source leave an audit event whatever their outcome, with no secret in it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading

import pytest

from datasources import catalogue
from datasources.services.destination import moved_hops, secrets_to_resend
from organizations.models import AuditEvent
from tests.support.certs import make_ca
from tests.support.state import stored_state

URL = "/api/v1/data-sources/"
MAIA = "/compat/maiascore/datasources/"
RG = "/compat/rivergen/api/v1/data-sources/"
CANARY = "canary-Pw-4f1d9e"  # the stored database password: must never leave for a new hop
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
EVIL_CA = make_ca("Attacker CA").cert_pem  # trusting another CA lets another server receive the secret


class Bastion:
    """A loopback listener standing in for the attacker's SSH server: it records every connection."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def bastion(allow_loopback):
    server = Bastion()
    yield server
    server.close()


@pytest.fixture
def editor_api(org, editor, make_client):
    return make_client(org, ["datasource.read", "datasource.write"], username=editor.username)


def _create(api, connection: dict, credentials: dict, type_key: str = "postgresql") -> dict:
    body = {"name": f"src-{type_key}", "type": type_key, "connection": connection, "credentials": credentials}
    response = api.post(f"{URL}?test_connection=false", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def pg(api):
    """A PostgreSQL source with a stored password, verify-full TLS and no tunnel (saved untested)."""
    ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    connection = {"host": "db.example.com", "port": 5432, "database": "app", "username": "app",
                  "ssl": {"mode": "verify-full", "ca_certificate": ca}}
    return _create(api, connection, {"password": CANARY})


def _tunnel(bastion: Bastion, **extra) -> dict:
    return {"ssh_tunnel": {"enabled": True, "host": "127.0.0.1", "port": bastion.port, "username": "me", **extra}}


def _assert_refused(response, *secrets: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "CREDENTIALS_REQUIRED", body
    assert set(body["errors"]) == {f"credentials.{name}" for name in secrets}
    assert CANARY not in response.content.decode()


# --- the SSH tunnel: enabling it, or moving it, sends the database password through the new hop ------


@pytest.mark.parametrize("query", ["", "?dry_run=true"])
def test_editor_cannot_enable_a_tunnel_through_their_bastion(editor_api, pg, bastion, query):
    before = stored_state(pg["id"])
    body = {"connection": _tunnel(bastion), "credentials": {"ssh_password": "mine"}}
    _assert_refused(editor_api.patch(f"{URL}{pg['id']}/{query}", body, format="json"), "password")
    assert bastion.connections == 0, "nothing may be sent to the new bastion"
    assert stored_state(pg["id"]) == before


def test_editor_cannot_enable_a_tunnel_with_put(editor_api, pg, bastion):
    body = {"name": pg["name"], "type": "postgresql", "credentials": {"ssh_password": "mine"},
            "connection": {**{k: v for k, v in pg["connection"].items() if k != "ssh_tunnel"}, **_tunnel(bastion)}}
    _assert_refused(editor_api.put(f"{URL}{pg['id']}/", body, format="json"), "password")
    assert bastion.connections == 0


def test_editor_cannot_enable_a_tunnel_through_maiascore(editor_api, pg, bastion):
    body = {"driver": "postgres", "host": "db.example.com", "port": "5432", "database": "app", "username": "app",
            "ssl": True, "sshTunneling": True, "sshHost": "127.0.0.1", "sshPort": str(bastion.port),
            "sshUsername": "me", "sshPassword": "mine"}
    response = editor_api.put(f"{MAIA}{pg['id']}", body, format="json")
    assert response.status_code == 400, response.content
    assert CANARY not in response.content.decode()
    assert bastion.connections == 0


def test_editor_cannot_enable_a_tunnel_through_rivergen(api, editor_api, pg, bastion):
    stored_key = api.patch(f"{URL}{pg['id']}/?test_connection=false", {"credentials": {"ssh_private_key": KEY}},
                           format="json")
    assert stored_key.status_code == 200, stored_key.json()
    body = {"use_ssh_tunnel": True, "ssh_host": "127.0.0.1", "ssh_port": bastion.port, "ssh_username": "me"}
    response = editor_api.patch(f"{RG}{pg['id']}", body, format="json")
    # Rivergen's two-step move: accepted as a move that withholds the stored secrets (cleared, untested)
    assert response.status_code == 200, response.content
    assert response.json()["data"]["status"] == "credentials_required"
    assert response.json()["data"]["credentials_set"] == []
    assert CANARY not in response.content.decode()
    tested = editor_api.post(f"{URL}{pg['id']}/test/")
    assert tested.status_code == 400 and tested.json()["code"] == "CREDENTIALS_REQUIRED"
    assert bastion.connections == 0


def test_resending_every_secret_of_the_moved_hops_is_allowed(editor_api, pg):
    body = {"connection": {"ssh_tunnel": {"enabled": True, "host": "bastion.example.com", "username": "me"}},
            "credentials": {"ssh_password": "mine", "password": "new-password"}}
    response = editor_api.patch(f"{URL}{pg['id']}/?test_connection=false", body, format="json")
    assert response.status_code == 200, response.json()


def test_every_tunnel_setting_counts_while_a_tunnel_is_on(api, editor_api, pg):
    tunnel = {"enabled": True, "host": "bastion.example.com", "username": "ops",
              "host_key_fingerprint": "SHA256:abc"}
    on = api.patch(f"{URL}{pg['id']}/?test_connection=false",
                   {"connection": {"ssh_tunnel": tunnel}, "credentials": {"ssh_private_key": KEY}}, format="json")
    assert on.status_code == 200, on.json()
    for change in ({"username": "other"}, {"port": 2222}, {"host_key_fingerprint": None},
                   {"host_key_fingerprint": "SHA256:other"}):
        response = editor_api.patch(f"{URL}{pg['id']}/?test_connection=false",
                                    {"connection": {"ssh_tunnel": change}}, format="json")
        _assert_refused(response, "password", "ssh_private_key")
    # Turning the tunnel off sends the database password directly: it must be resent, the SSH key need not.
    off = editor_api.patch(f"{URL}{pg['id']}/?test_connection=false",
                           {"connection": {"ssh_tunnel": {"enabled": False}}}, format="json")
    _assert_refused(off, "password")


def test_tunnel_settings_while_no_tunnel_is_on_move_nothing(editor_api, pg):
    response = editor_api.patch(f"{URL}{pg['id']}/?test_connection=false",
                                {"connection": {"ssh_tunnel": {"host": "somewhere.example.com"}}}, format="json")
    assert response.status_code == 200, response.json()


# --- TLS: lowering it, or changing the CA that verifies the server, needs the password --------------


@pytest.mark.parametrize("change", [
    {"ssl": {"mode": "disable"}},
    {"ssl": {"mode": "require"}},
    {"ssl": {"ca_certificate": "-----BEGIN CERTIFICATE-----\nother\n-----END CERTIFICATE-----\n"}},
    {"ssl": {"ca_certificate": None, "mode": "require"}},
])
def test_editor_cannot_lower_tls_or_swap_the_ca_without_the_password(editor_api, pg, change):
    before = stored_state(pg["id"])
    _assert_refused(editor_api.patch(f"{URL}{pg['id']}/?dry_run=true", {"connection": change}, format="json"),
                    "password")
    _assert_refused(editor_api.patch(f"{URL}{pg['id']}/?test_connection=false", {"connection": change},
                                     format="json"), "password")
    assert stored_state(pg["id"]) == before


def test_raising_tls_needs_no_secret(api, editor_api):
    source = _create(api, {"host": "db.example.com", "database": "app", "username": "app",
                           "ssl": {"mode": "prefer"}}, {"password": CANARY})
    response = editor_api.patch(f"{URL}{source['id']}/?test_connection=false",
                                {"connection": {"ssl": {"mode": "require"}}}, format="json")
    assert response.status_code == 200, response.json()


def test_a_connection_string_that_moves_the_host_needs_the_password(editor_api, pg):
    body = {"connection_string": "postgresql://app@evil.example.com:5432/app?sslmode=verify-full"}
    _assert_refused(editor_api.patch(f"{URL}{pg['id']}/?test_connection=false", body, format="json"), "password")


# --- every type's endpoint, account, region and URL fields, marked once in the catalogue --------------


PER_TYPE = [
    ("elasticsearch", {"server_type": "self-managed", "server_url": "https://search.internal:9200",
                       "username": "elastic"}, {"password": CANARY},
     [{"server_url": "https://evil.example.com"}, {"ignore_certificate": True}, {"ignore_ssl": True}]),
    ("snowflake", {"account": "xy12345", "username": "u", "role": "r", "warehouse": "w", "database": "d",
                   "schema": "s"}, {"password": CANARY},
     [{"account": "attacker-account"}, {"endpoint_url": "https://evil.example.com"}]),
    ("s3", {"bucket": "my-bucket", "region": "us-east-1", "access_key_id": "AKIA"}, {"secret_access_key": CANARY},
     [{"region": "eu-west-1"}, {"endpoint_url": "https://evil.example.com"}]),
    ("athena", {"database": "d", "s3_output_location": "s3://b/out/", "region": "us-east-1",
                "access_key_id": "AKIA"}, {"secret_access_key": CANARY},
     [{"region": "eu-west-1"}, {"endpoint_url": "https://evil.example.com"}]),
    ("mixpanel", {"project_id": 1, "username": "svc"}, {"service_account_secret": CANARY}, [{"region": "EU"}]),
    ("trino", {"host": "trino.internal", "username": "u", "catalog": "c", "schema": "s"}, {"password": CANARY},
     [{"http_scheme": "http"}, {"host": "evil.example.com"}, {"ca_certificate": EVIL_CA}]),
    ("clickhouse", {"host": "ch.internal", "username": "u"}, {"password": CANARY},
     [{"secure": False}, {"ca_certificate": EVIL_CA}]),
    ("mssql", {"host": "sql.internal", "username": "u"}, {"password": CANARY},
     [{"encrypt": False}, {"ca_certificate": EVIL_CA}]),
    ("databricks", {"host": "dbc.cloud.databricks.com", "http_path": "/sql/1.0/warehouses/abc", "schema": "s"},
     {"token": CANARY}, [{"endpoint_url": "https://evil.example.com"}, {"host": "evil.example.com"}]),
    ("firebolt", {"client_id": "c", "account_name": "a", "database": "d", "engine_name": "e"},
     {"client_secret": CANARY}, [{"endpoint_url": "https://evil.example.com"}, {"account_name": "other"}]),
    ("mongodb", {"host": "mongo.internal", "username": "u", "database": "d", "tls": True}, {"password": CANARY},
     [{"tls": False}]),
    ("mcp", {"server_url": "https://mcp.internal/mcp"}, {"api_key": CANARY},
     [{"server_url": "https://evil.example.com/mcp"}]),
]


@pytest.mark.parametrize(("type_key", "connection", "credentials", "changes"), PER_TYPE,
                         ids=[row[0] for row in PER_TYPE])
def test_per_type_destination_fields_need_the_secret(api, editor_api, type_key, connection, credentials, changes):
    source = _create(api, connection, credentials, type_key)
    secret = next(iter(credentials))
    for change in changes:
        before = stored_state(source["id"])
        response = editor_api.patch(f"{URL}{source['id']}/?test_connection=false", {"connection": change},
                                    format="json")
        _assert_refused(response, secret)
        assert stored_state(source["id"]) == before
        resent = editor_api.patch(f"{URL}{source['id']}/?test_connection=false",
                                  {"connection": change, "credentials": {secret: "new-" + CANARY}}, format="json")
        assert resent.status_code == 200, (change, resent.json())


def test_the_catalogue_shows_which_fields_steer_secrets(api):
    pg_type = api.get("/api/v1/data-source-types/postgresql/").json()
    fields = {f["name"]: f for f in pg_type["connection_fields"]}
    assert fields["host"]["transit"] == "endpoint" and fields["database"]["transit"] is None
    ssl = {f["name"]: f for f in fields["ssl"]["fields"]}
    assert ssl["mode"]["transit"] == "protection" and ssl["ca_certificate"]["transit"] == "endpoint"
    hops = {s["name"]: s["hop"] for s in pg_type["secret_fields"]}
    assert hops["password"] == "database" and hops["ssh_private_key"] == "ssh"


def test_owner_may_still_move_the_destination(org, owner, make_client, pg):
    owner_api = make_client(org, ["datasource.read", "datasource.write", "organization.admin"],
                            username=owner.username)
    response = owner_api.patch(f"{URL}{pg['id']}/?test_connection=false",
                               {"connection": {"ssl": {"mode": "require"}}}, format="json")
    assert response.status_code == 200, response.json()


# --- audit: every dry run and every connection test of an existing source --------------------------


def _events(pk: int, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(target_id=pk, action=action).order_by("id"))


def _no_canary_in_audit() -> None:
    dump = json.dumps(list(AuditEvent.objects.values("changes", "detail", "target_repr", "actor_repr")))
    assert CANARY not in dump and "new-" + CANARY not in dump


def test_a_refused_dry_run_is_audited_with_what_was_tried(editor_api, editor, pg, bastion):
    body = {"connection": _tunnel(bastion), "credentials": {"ssh_password": CANARY}}
    editor_api.patch(f"{URL}{pg['id']}/?dry_run=true", body, format="json")
    [event] = _events(pg["id"], "dry_run")
    assert event.actor_user_id == editor.pk
    assert event.detail["outcome"] == "refused" and event.detail["code"] == "CREDENTIALS_REQUIRED"
    tried = event.detail["tried"]
    assert tried["connection.ssh_tunnel.host"] == "127.0.0.1" and tried["credentials.ssh_password"] == "sent"
    _no_canary_in_audit()
    history = editor_api.get(f"{URL}{pg['id']}/history/").json()["results"]
    assert history[0]["action"] == "dry_run"


@pytest.mark.parametrize("connection,path", [
    ({"host": f"postgres:{CANARY}@127.0.0.1"}, "connection.host"),
    ({"ssh_tunnel": {"enabled": True, "host": f"u:{CANARY}@bastion.example.com", "username": "u"}},
     "connection.ssh_tunnel.host"),
])
def test_a_password_typed_into_a_host_is_refused_and_never_recorded(api, pg, connection, path):
    """A host holds no user:password@ (400 naming it, without echoing it); the dry run's audit record of
    what was tried masks it."""
    before = stored_state(pg["id"])
    response = api.patch(f"{URL}{pg['id']}/?dry_run=true", {"connection": connection}, format="json")
    assert response.status_code == 400 and path in response.json()["errors"], response.json()
    assert CANARY not in response.content.decode()
    assert stored_state(pg["id"]) == before
    [event] = _events(pg["id"], "dry_run")
    assert event.detail["tried"][path].endswith(":***@" + event.detail["tried"][path].split("@", 1)[1])
    _no_canary_in_audit()


def test_a_url_with_a_password_is_masked_in_what_was_tried(api):
    source = _create(api, {"server_url": "https://mcp.example.com/mcp"}, {"api_key": "stored-key"}, "mcp")
    response = api.patch(f"{URL}{source['id']}/?dry_run=true",
                         {"connection": {"server_url": f"https://u:{CANARY}@mcp.example.com/mcp"}}, format="json")
    assert response.status_code == 400 and "connection.server_url" in response.json()["errors"]
    [event] = _events(source["id"], "dry_run")
    assert event.detail["tried"]["connection.server_url"] == "https://u:***@mcp.example.com/mcp"
    _no_canary_in_audit()


def test_a_passing_and_a_failing_dry_run_are_audited(api, sqlite_file, _file_root):
    shutil.copy(os.path.join(_file_root, sqlite_file), os.path.join(_file_root, "copy.db"))
    source = _create(api, {"path": sqlite_file}, {}, "sqlite")
    ok = api.patch(f"{URL}{source['id']}/?dry_run=true", {"connection": {"path": "copy.db"}}, format="json")
    assert ok.status_code == 200, ok.json()
    bad = api.patch(f"{URL}{source['id']}/?dry_run=true", {"connection": {"path": "missing.db"}}, format="json")
    assert bad.json()["code"] == "CREDENTIAL_TEST_FAILED"
    passed, failed = _events(source["id"], "dry_run")
    assert (passed.detail["outcome"], passed.detail["test"]["ok"]) == ("passed", True)
    assert (failed.detail["outcome"], failed.detail["test"]["ok"]) == ("failed", False)
    assert failed.detail["tried"] == {"connection.path": "missing.db"}
    assert not _events(source["id"], "update")


def test_a_failed_test_of_a_real_change_is_audited(api, sqlite_file):
    source = _create(api, {"path": sqlite_file}, {}, "sqlite")
    response = api.patch(f"{URL}{source['id']}/", {"connection": {"path": "missing.db"}}, format="json")
    assert response.json()["code"] == "CREDENTIAL_TEST_FAILED"
    [event] = _events(source["id"], "test")
    assert event.detail["trigger"] == "patch" and event.detail["outcome"] == "failed"
    assert event.detail["test"]["stage"] == response.json()["stage"]


def test_testing_a_stored_connection_is_audited_even_when_no_connector_exists(editor_api, api, without_driver):
    without_driver("elasticsearch")
    source = _create(api, {"server_type": "self-managed", "server_url": "https://search.internal:9200",
                           "username": "elastic"}, {"password": CANARY}, "elasticsearch")
    response = editor_api.post(f"{URL}{source['id']}/test/")
    assert response.json()["code"] == "CONNECTOR_UNAVAILABLE"
    [event] = _events(source["id"], "test")
    assert event.detail == {"trigger": "test", "outcome": "refused", "code": "CONNECTOR_UNAVAILABLE"}
    _no_canary_in_audit()


# --- the rule itself (unit) -----------------------------------------------------------------------


def _pg(**overrides):
    base = catalogue.normalize_connection(catalogue.get_type("postgresql"), {
        "host": "db", "database": "d", "username": "u", "ssl": {"mode": "require"}})
    for key, value in overrides.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return base


@pytest.mark.parametrize(("after", "database", "ssh"), [
    ({"host": "db2"}, ("host",), ()),
    ({"port": 6543}, ("port",), ()),
    ({"database": "other", "username": "v"}, (), ()),
    ({"ssl": {"mode": "verify-full"}}, (), ()),
    ({"ssl": {"mode": "prefer"}}, ("ssl.mode",), ()),
    ({"ssh_tunnel": {"enabled": True, "host": "b", "username": "u"}}, (),
     ("ssh_tunnel.enabled", "ssh_tunnel.host", "ssh_tunnel.username")),
    ({"ssh_tunnel": {"host": "b"}}, (), ()),
])
def test_moved_hops(after, database, ssh):
    source_type = catalogue.get_type("postgresql")
    hops = moved_hops(source_type, _pg(), _pg(**after))
    assert (hops.database, hops.ssh) == (database, ssh)


def test_secrets_to_resend_follow_the_hop():
    source_type = catalogue.get_type("postgresql")
    stored = {"password", "ssl_client_key", "ssh_private_key"}
    tunnel_on = _pg(ssh_tunnel={"enabled": True, "host": "b", "username": "u"})
    assert secrets_to_resend(source_type, moved_hops(source_type, _pg(), _pg(host="x")), stored) == [
        "password", "ssl_client_key"]
    assert secrets_to_resend(source_type, moved_hops(source_type, _pg(), tunnel_on), stored) == [
        "password", "ssh_private_key", "ssl_client_key"]
    assert secrets_to_resend(source_type, moved_hops(source_type, tunnel_on, _pg()), stored) == [
        "password", "ssl_client_key"]
    assert secrets_to_resend(source_type, moved_hops(source_type, _pg(), _pg(database="y")), stored) == []


# --- the admin: an operator with an editor's role is held to the same rule --------------------------


def test_admin_editor_cannot_enable_a_tunnel_without_the_password(client, org, editor, pg, bastion, settings):
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    settings.SECURE_SSL_REDIRECT = False
    editor.is_staff = True
    editor.save()
    editor.user_permissions.add(*Permission.objects.filter(codename__in=["view_datasource", "change_datasource"]))
    client.force_login(editor)
    url = reverse("admin:datasources_datasource_change", args=[pg["id"]])
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: form[name].value() for name, field in form.fields.items()
            if not field.disabled and form[name].value() is not None
            and field.__class__.__name__ != "BooleanField"}
    data.update({"connection__ssh_tunnel__enabled": "on", "connection__ssh_tunnel__host": "127.0.0.1",
                 "connection__ssh_tunnel__port": bastion.port, "connection__ssh_tunnel__username": "me",
                 "credentials__ssh_password": "mine"})
    before = stored_state(pg["id"])
    response = client.post(url, data)
    assert response.status_code == 200, "the form is shown again with the error"
    errors = str(response.context["adminform"].form.errors)
    assert "resend" in errors.lower() and CANARY not in response.content.decode()
    assert bastion.connections == 0
    assert stored_state(pg["id"]) == before


def test_a_secret_sent_in_the_wrong_place_is_not_audited(editor_api, pg):
    body = {"connection": {"password": CANARY, "host": "db.example.com"}}
    response = editor_api.patch(f"{URL}{pg['id']}/?dry_run=true", body, format="json")
    assert response.status_code == 400
    [event] = _events(pg["id"], "dry_run")
    assert event.detail["tried"] == {"connection.password": "sent", "connection.host": "db.example.com"}
    _no_canary_in_audit()
