"""Rivergen's two-step move (issue 16): "Update Data Source" moves a source without a password and
"Update Credentials" sends it, in either order, for a writer the destination rule binds (an editor).

Two real password-auth PostgreSQL clusters: ``pg_password_server`` (the current destination, ``A``)
and ``new_cluster`` (the new one, ``B``, another password). A stored secret must never reach B unless
the writer resent it; B's password must never be stored unless B accepted it.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from datasources.models import DataSource, PendingCredentials
from datasources.services import pending
from datasources.services.credentials import load_secrets
from organizations.actors import Actor
from organizations.models import ApiToken, AuditEvent, Membership, Role
from tests.datasources.test_secret_steering import Bastion
from tests.support.forwarding import served_as
from tests.support.pgcluster import start_cluster, stop_cluster
from tests.support.sshd import serve_sshd
from tests.support.state import stored_state

URL = "/api/v1/data-sources/"
RG = "/compat/rivergen/api/v1/data-sources/"
NEW_PASSWORD = "n3w-Pg-pass-B"
NEW_HOST = "newhost.example.com"  # the seed's example host, served by a real cluster
NEW_PORT = 5433
WRITE = ["datasource.read", "datasource.write"]


@pytest.fixture(scope="module")
def new_cluster():
    """The destination the source moves to: a second real cluster, with another password."""
    try:
        cluster = start_cluster(password=NEW_PASSWORD)
    except Exception as exc:  # pragma: no cover - as tests/conftest.py's pg_password_server
        pytest.skip(f"could not start a PostgreSQL cluster with initdb: {exc}")
    yield cluster
    stop_cluster(cluster)


@pytest.fixture
def source(api, pg_source_data, allow_loopback):
    """A PostgreSQL source at cluster A, tested and cached, its password stored."""
    response = api.post(URL, pg_source_data, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "active" and body["schema"]["status"] == "ready"
    return body


@pytest.fixture
def editor_rg(org, editor, make_client):
    return make_client(org, WRITE, username=editor.username)


@pytest.fixture
def second_editor(org, django_user_model, make_client):
    user = django_user_model.objects.create_user(username="editor2", password="pw-editor2")
    Membership.objects.create(organization=org, user=user, role=Role.EDITOR)
    return make_client(org, WRITE, username=user.username)


@pytest.fixture
def listener(allow_loopback):
    """A loopback server that counts connections: a destination that must receive nothing."""
    server = Bastion()
    yield server
    server.close()


def _ok(response) -> dict:
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True and isinstance(body["message"], str)
    return body


def _error(response, stage: str | None = None, reason: str = "CREDENTIAL_TEST_FAILED") -> dict:
    body = response.json()
    assert response.status_code == 400, body
    assert (body["success"], body["data"], body["error"]["code"], body["error"]["reason"]) == (
        False, None, "BAD_REQUEST", reason)
    if stage:
        assert body["error"]["stage"] == stage
    return body


def _secrets(pk: int) -> dict:
    return load_secrets(DataSource.objects.get(pk=pk))


def _no_secret_anywhere(*values: str) -> None:
    """No secret value in the audit trail, and pending credentials only as ciphertext."""
    dump = json.dumps(list(AuditEvent.objects.values("changes", "detail", "target_repr", "actor_repr")))
    dump += json.dumps(list(PendingCredentials.objects.values("names", "stage", "ciphertext")))
    for value in values:
        assert value not in dump


def _events(pk: int, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(target_id=pk, action=action).order_by("id"))


# --- move first -------------------------------------------------------------------------------------


def test_move_first_withholds_then_credentials_activate(editor_rg, editor, api, source, pg_password_server,
                                                        new_cluster, monkeypatch):
    pk, url = source["id"], f"{RG}{source['id']}"
    before = api.get(f"{URL}{pk}/").json()
    with served_as(monkeypatch, NEW_HOST, NEW_PORT, new_cluster):
        moved = _ok(editor_rg.patch(url, {"host": NEW_HOST, "port": NEW_PORT}, format="json"))
        data = moved["data"]
        assert (data["host"], data["port"], data["status"], data["credentials_set"]) == (
            NEW_HOST, NEW_PORT, "credentials_required", [])
        assert "credentials_required" in moved["message"] and f"/api/v1/data-sources/{pk}/credentials" in moved[
            "message"] and "password" in moved["message"]
        assert _secrets(pk) == {}  # withheld: cleared, so nothing can ever send it to the new destination
        native = api.get(f"{URL}{pk}/").json()
        assert native["status"] == "credentials_required"
        assert native["last_test"] == before["last_test"]  # no test ran
        [update] = _events(pk, "update")[-1:]
        assert update.actor_user_id == editor.pk
        assert update.detail["withheld"] == ["password"] and update.detail["status"] == "credentials_required"
        assert update.detail["moved"] == ["connection.host", "connection.port"] and update.detail["test"] is None
        assert update.changes["credentials.password"] == "cleared"
        # the old password does not open the new destination, and refusing it changes nothing
        state = stored_state(pk)
        wrong = editor_rg.patch(f"{url}/credentials", {"password": pg_password_server.password}, format="json")
        _error(wrong, "auth")
        assert stored_state(pk) == state and not PendingCredentials.objects.exists()  # awaited here: not kept
        done = _ok(editor_rg.patch(f"{url}/credentials", {"password": NEW_PASSWORD}, format="json"))
    assert done["message"] == "Credentials updated successfully"
    assert (done["data"]["status"], done["data"]["credentials_set"]) == ("active", ["password"])
    assert _secrets(pk) == {"password": NEW_PASSWORD}
    native = api.get(f"{URL}{pk}/").json()
    assert native["last_test"]["ok"] and native["schema"]["status"] == "ready"  # tested there, schema re-cached
    assert native["schema"]["refreshed_at"] > before["schema"]["refreshed_at"]
    _no_secret_anywhere(NEW_PASSWORD, pg_password_server.password)


def test_a_withheld_move_sends_nothing_to_the_new_destination(editor_rg, source, listener):
    url = f"{RG}{source['id']}"
    moved = _ok(editor_rg.patch(url, {"host": "127.0.0.1", "port": listener.port}, format="json"))
    assert moved["data"]["status"] == "credentials_required"
    for path in ("test/", "sync/"):  # refused: no connection is even tried
        refused = editor_rg.post(f"{URL}{source['id']}/{path}")
        assert refused.status_code == 400 and refused.json()["code"] == "CREDENTIALS_REQUIRED", refused.json()
        assert "update its credentials first" in refused.json()["message"]
    assert listener.connections == 0
    [attempt] = _events(source["id"], "test")
    assert (attempt.detail["outcome"], attempt.detail["code"]) == ("refused", "CREDENTIALS_REQUIRED")


def test_a_second_move_while_waiting_stays_untested(editor_rg, source, listener):
    url = f"{RG}{source['id']}"
    _ok(editor_rg.patch(url, {"host": "127.0.0.1", "port": listener.port}, format="json"))
    again = _ok(editor_rg.patch(url, {"port": listener.port, "database_name": "other"}, format="json"))
    assert again["data"]["status"] == "credentials_required" and again["data"]["database_name"] == "other"
    renamed = _ok(editor_rg.patch(url, {"name": "Renamed"}, format="json"))  # not a connection change
    assert renamed["data"]["status"] == "credentials_required"
    assert listener.connections == 0


def test_native_api_still_refuses_an_editors_move(editor_rg, source):
    """The native API keeps the one-request rule: resend the secrets with the move (no withheld move)."""
    before = stored_state(source["id"])
    response = editor_rg.patch(f"{URL}{source['id']}/", {"connection": {"host": NEW_HOST}}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "CREDENTIALS_REQUIRED"
    assert stored_state(source["id"]) == before


def test_status_is_filterable_and_shown(editor_rg, api, source, listener):
    _ok(editor_rg.patch(f"{RG}{source['id']}", {"port": listener.port}, format="json"))
    listed = api.get(f"{URL}?status=credentials_required").json()["results"]
    assert [s["id"] for s in listed] == [source["id"]]
    assert api.get(f"{URL}?status=active").json()["results"] == []


# --- credentials first ------------------------------------------------------------------------------


def test_credentials_first_wait_for_the_same_writers_move(editor_rg, editor, api, source, pg_password_server,
                                                          new_cluster, monkeypatch):
    pk, url = source["id"], f"{RG}{source['id']}"
    before = stored_state(pk)
    kept = _ok(editor_rg.patch(f"{url}/credentials", {"password": NEW_PASSWORD}, format="json"))
    assert kept["data"]["status"] == "active"  # nothing active changed
    message = kept["message"]
    assert "did not work at the current destination" in message and "stage 'auth'" in message
    assert "next move" in message and "within the hour" in message
    assert stored_state(pk) == before and _secrets(pk) == {"password": pg_password_server.password}
    [row] = PendingCredentials.objects.all()
    assert (row.data_source_id, row.user_id, row.names, row.stage) == (pk, editor.pk, ["password"], "auth")
    assert row.expires_at - row.created_at == timedelta(hours=1)
    assert NEW_PASSWORD not in row.ciphertext
    [event] = _events(pk, "pending_credentials")
    assert (event.detail["names"], event.detail["stage"], event.actor_user_id) == (["password"], "auth", editor.pk)
    [attempt] = _events(pk, "test")
    assert attempt.detail["outcome"] == "failed" and attempt.detail["tried"] == {"credentials.password": "sent"}
    with served_as(monkeypatch, NEW_HOST, NEW_PORT, new_cluster):
        moved = _ok(editor_rg.patch(url, {"host": NEW_HOST, "port": NEW_PORT}, format="json"))
    assert "with the credentials you sent" in moved["message"]
    assert (moved["data"]["host"], moved["data"]["status"]) == (NEW_HOST, "active")
    assert _secrets(pk) == {"password": NEW_PASSWORD}
    assert not PendingCredentials.objects.exists()  # used: gone
    native = api.get(f"{URL}{pk}/").json()
    assert native["last_test"]["ok"] and native["schema"]["status"] == "ready"
    update = _events(pk, "update")[-1]
    assert update.changes["credentials.password"] == "changed" and update.detail["test"]["ok"]
    _no_secret_anywhere(NEW_PASSWORD, pg_password_server.password)


def test_pending_credentials_that_fail_at_the_new_destination_change_nothing(editor_rg, source, pg_password_server,
                                                                             monkeypatch):
    pk, url = source["id"], f"{RG}{source['id']}"
    _ok(editor_rg.patch(f"{url}/credentials", {"password": "not-the-password"}, format="json"))
    before = stored_state(pk)
    with served_as(monkeypatch, NEW_HOST, NEW_PORT, pg_password_server):  # B refuses them too
        failed = editor_rg.patch(url, {"host": NEW_HOST, "port": NEW_PORT}, format="json")
    body = _error(failed, "auth")
    assert "credentials you sent at" in body["message"] and "Nothing was changed" in body["message"]
    assert "not-the-password" not in failed.content.decode()
    assert stored_state(pk) == before
    assert PendingCredentials.objects.count() == 1  # still the writer's, until they expire or are replaced


def test_pending_credentials_are_never_used_by_another_writer(editor_rg, second_editor, org, editor, make_client,
                                                              source, listener):
    pk, url = source["id"], f"{RG}{source['id']}"
    _ok(editor_rg.patch(f"{url}/credentials", {"password": NEW_PASSWORD}, format="json"))
    other = _ok(second_editor.patch(url, {"host": "127.0.0.1", "port": listener.port}, format="json"))
    assert other["data"]["status"] == "credentials_required"  # withheld, not tried with editor's credentials
    assert listener.connections == 0 and _secrets(pk) == {}
    # the same user with another token is another writer too
    same_user = make_client(org, WRITE, username=editor.username)
    again = _ok(same_user.patch(url, {"host": "localhost"}, format="json"))
    assert again["data"]["status"] == "credentials_required" and listener.connections == 0
    assert PendingCredentials.objects.filter(user=editor).count() == 1


def test_pending_credentials_expire_after_an_hour(editor_rg, source, listener):
    url = f"{RG}{source['id']}"
    _ok(editor_rg.patch(f"{url}/credentials", {"password": NEW_PASSWORD}, format="json"))
    PendingCredentials.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    moved = _ok(editor_rg.patch(url, {"host": "127.0.0.1", "port": listener.port}, format="json"))
    assert moved["data"]["status"] == "credentials_required" and listener.connections == 0
    assert not PendingCredentials.objects.exists()  # expired ones are deleted when read


def test_any_credentials_update_voids_pending_ones(editor_rg, api, source, pg_password_server):
    pk, url = source["id"], f"{RG}{source['id']}"
    _ok(editor_rg.patch(f"{url}/credentials", {"password": NEW_PASSWORD}, format="json"))
    assert PendingCredentials.objects.count() == 1
    # the same writer's credentials update that passes (here: the stored password again)
    same = _ok(editor_rg.patch(f"{url}/credentials", {"password": pg_password_server.password}, format="json"))
    assert same["message"] == "Credentials updated successfully" and not PendingCredentials.objects.exists()
    # anyone's change of the stored secrets, on any entry point
    _ok(editor_rg.patch(f"{url}/credentials", {"password": NEW_PASSWORD}, format="json"))
    done = api.patch(f"{URL}{pk}/?test_connection=false", {"credentials": {"password": "another"}}, format="json")
    assert done.status_code == 200, done.json()
    assert not PendingCredentials.objects.exists()


def test_other_failure_stages_keep_nothing(editor_rg, api, source, listener):
    pk, url = source["id"], f"{RG}{source['id']}"
    closed = api.patch(f"{URL}{pk}/?test_connection=false", {"connection": {"port": listener.port}}, format="json")
    assert closed.status_code == 200, closed.json()  # an owner moved it, untested
    listener.close()  # nothing answers there now
    response = editor_rg.patch(f"{url}/credentials", {"password": NEW_PASSWORD}, format="json")
    _error(response, "tcp")
    assert not PendingCredentials.objects.exists()


def test_a_username_alone_is_not_kept(editor_rg, source):
    response = editor_rg.patch(f"{RG}{source['id']}/credentials", {"username": "nobody"}, format="json")
    _error(response, "auth")
    assert not PendingCredentials.objects.exists()


def test_pending_keeps_the_username_with_the_secret(editor_rg, source, new_cluster, monkeypatch):
    url = f"{RG}{source['id']}"
    _ok(editor_rg.patch(f"{url}/credentials", {"username": new_cluster.user, "password": NEW_PASSWORD},
                        format="json"))
    assert PendingCredentials.objects.get().names == ["password", "username"]
    with served_as(monkeypatch, NEW_HOST, NEW_PORT, new_cluster):
        moved = _ok(editor_rg.patch(url, {"host": NEW_HOST, "port": NEW_PORT}, format="json"))
    assert moved["data"]["status"] == "active"


def test_pending_is_bound_to_its_writer(editor_rg, editor, second_editor, source):
    """A row moved to another writer no longer decrypts: it is dropped, never used."""
    _ok(editor_rg.patch(f"{RG}{source['id']}/credentials", {"password": NEW_PASSWORD}, format="json"))
    editor2 = Membership.objects.get(user__username="editor2").user
    row = PendingCredentials.objects.get()
    token2 = ApiToken.objects.get(user=editor2)
    PendingCredentials.objects.filter(pk=row.pk).update(user=editor2, token=token2)
    actor = Actor(organization=row.data_source.organization, user=editor2, token=token2, role=Role.EDITOR)
    assert pending.for_actor(actor, row.data_source) is None
    assert not PendingCredentials.objects.exists()


# --- owners and admins: unchanged ------------------------------------------------------------------


def test_owner_moves_with_the_stored_secrets_as_before(org, owner, make_client, source, pg_password_server,
                                                       new_cluster, monkeypatch):
    owner_rg = make_client(org, [*WRITE, "organization.admin"], username=owner.username)
    pk, url = source["id"], f"{RG}{source['id']}"
    with served_as(monkeypatch, NEW_HOST, NEW_PORT, new_cluster):  # B refuses A's password: 400, nothing changes
        before = stored_state(pk)
        _error(owner_rg.patch(url, {"host": NEW_HOST, "port": NEW_PORT}, format="json"), "auth")
        assert stored_state(pk) == before
    with served_as(monkeypatch, NEW_HOST, NEW_PORT, pg_password_server):  # A under another name: tested, moved
        moved = _ok(owner_rg.patch(url, {"host": NEW_HOST, "port": NEW_PORT}, format="json"))
        assert moved["data"]["status"] == "active" and moved["message"] == "Data source updated successfully"
        wrong = owner_rg.patch(f"{url}/credentials", {"password": NEW_PASSWORD}, format="json")
        _error(wrong, "auth")  # an owner's refused credentials are a plain 400, nothing kept
    assert not PendingCredentials.objects.exists()


# --- connection_string, both orders -----------------------------------------------------------------


def _dsn(cluster, password: str | None = None) -> str:
    auth = cluster.user + (f":{password}" if password else "")
    return f"postgresql://{auth}@127.0.0.1:{cluster.port}/{cluster.database}?sslmode=disable"


def test_connection_string_move_first(editor_rg, source, new_cluster):
    pk, url = source["id"], f"{RG}{source['id']}"
    moved = _ok(editor_rg.patch(url, {"connection_string": _dsn(new_cluster)}, format="json"))
    assert (moved["data"]["port"], moved["data"]["status"]) == (new_cluster.port, "credentials_required")
    assert _secrets(pk) == {}
    done = _ok(editor_rg.patch(f"{url}/credentials", {"password": NEW_PASSWORD}, format="json"))
    assert done["data"]["status"] == "active"


def test_connection_string_credentials_first(editor_rg, source, new_cluster):
    pk, url = source["id"], f"{RG}{source['id']}"
    _ok(editor_rg.patch(f"{url}/credentials", {"password": NEW_PASSWORD}, format="json"))
    moved = _ok(editor_rg.patch(url, {"connection_string": _dsn(new_cluster)}, format="json"))
    assert (moved["data"]["port"], moved["data"]["status"]) == (new_cluster.port, "active")
    assert _secrets(pk) == {"password": NEW_PASSWORD} and not PendingCredentials.objects.exists()


def test_a_connection_string_with_its_password_is_tested_at_once(editor_rg, source, new_cluster):
    moved = _ok(editor_rg.patch(f"{RG}{source['id']}", {"connection_string": _dsn(new_cluster, NEW_PASSWORD)},
                                format="json"))
    assert moved["data"]["status"] == "active" and NEW_PASSWORD not in json.dumps(moved)


# --- the SSH tunnel fields, both orders (a real sshd in front of the clusters) ------------------------


@pytest.fixture(scope="module")
def sshd():
    yield from serve_sshd()


def _tunnel(sshd, **extra) -> dict:
    return {"use_ssh_tunnel": True, "ssh_host": sshd.host, "ssh_port": sshd.port, "ssh_username": sshd.user,
            **extra}


def test_ssh_move_first(editor_rg, api, source, sshd, pg_password_server):
    pk, url = source["id"], f"{RG}{source['id']}"
    seen = sshd.connections()
    moved = _ok(editor_rg.patch(url, _tunnel(sshd, ssh_local_port=40100), format="json"))
    data = moved["data"]
    assert (data["use_ssh_tunnel"], data["ssh_host"], data["ssh_local_port"], data["status"]) == (
        True, sshd.host, 40100, "credentials_required")
    assert "password, ssh_password or ssh_private_key" in moved["message"]  # what the credentials call needs
    update = _events(pk, "update")[-1]
    assert update.detail["withheld"] == ["password"]
    assert update.detail["needs"] == ["password", "ssh_password or ssh_private_key"]
    assert {"connection.ssh_tunnel.enabled", "connection.ssh_tunnel.host"} <= set(update.detail["moved"])
    assert sshd.connections() == seen  # nothing was sent to the bastion
    key = sshd.keys["ed25519"]
    done = _ok(editor_rg.patch(f"{url}/credentials", {"password": pg_password_server.password,
                                                      "ssh_private_key": key}, format="json"))
    assert done["data"]["status"] == "active" and sshd.connections() > seen  # tested through the tunnel
    native = api.get(f"{URL}{pk}/").json()
    assert native["connection"]["ssh_tunnel"]["host_key_fingerprint"].startswith("SHA256:")  # pinned on first use
    assert native["schema"]["status"] == "ready"
    # moving the tunnel again withholds both hops' secrets
    again = _ok(editor_rg.patch(url, {"ssh_host": "localhost"}, format="json"))
    assert again["data"]["status"] == "credentials_required"
    assert _events(pk, "update")[-1].detail["withheld"] == ["password", "ssh_private_key"]
    assert _secrets(pk) == {}
    _no_secret_anywhere(pg_password_server.password, key)


def test_ssh_credentials_first(editor_rg, source, sshd, new_cluster):
    pk, url = source["id"], f"{RG}{source['id']}"
    key = sshd.keys["ed25519"]
    kept = _ok(editor_rg.patch(f"{url}/credentials", {"password": NEW_PASSWORD, "ssh_private_key": key},
                               format="json"))
    assert "stage 'auth'" in kept["message"]  # the current destination (direct, no tunnel) refused the password
    assert PendingCredentials.objects.get().names == ["password", "ssh_private_key"]
    moved = _ok(editor_rg.patch(url, _tunnel(sshd, port=new_cluster.port), format="json"))
    assert (moved["data"]["status"], moved["data"]["port"]) == ("active", new_cluster.port)
    assert _secrets(pk) == {"password": NEW_PASSWORD, "ssh_private_key": key}
    assert not PendingCredentials.objects.exists()


# --- the scheduler and the admin ---------------------------------------------------------------------


def test_scheduled_refreshes_skip_a_source_waiting_for_credentials(editor_rg, source, listener):
    from datasources.tasks import due_data_sources, refresh_schema_task, schema_refresh_tick

    pk = source["id"]
    DataSource.objects.filter(pk=pk).update(schema_auto_refresh=True, schema_checked_at=None)
    assert list(due_data_sources()) == [pk]
    _ok(editor_rg.patch(f"{RG}{pk}", {"port": listener.port}, format="json"))
    assert list(due_data_sources()) == []
    assert schema_refresh_tick() == 0
    assert refresh_schema_task.apply(args=[pk]).get() == "credentials_required"  # queued before: not tried
    ds = DataSource.objects.get(pk=pk)
    assert (ds.status, ds.schema_status) == ("credentials_required", "failed")
    assert "update its credentials first" in ds.schema_error and ds.schema_version == 1  # the snapshot stays
    assert listener.connections == 0


def test_the_tick_forgets_expired_pending_credentials(editor_rg, source):
    from datasources.tasks import schema_refresh_tick

    _ok(editor_rg.patch(f"{RG}{source['id']}/credentials", {"password": NEW_PASSWORD}, format="json"))
    schema_refresh_tick()
    assert PendingCredentials.objects.count() == 1
    PendingCredentials.objects.update(expires_at=timezone.now())
    schema_refresh_tick()
    assert not PendingCredentials.objects.exists()


def test_a_test_result_recorded_late_does_not_end_the_wait(editor_rg, source, listener):
    """A test of the old configuration that finishes after the withheld move must not mark it active."""
    from datasources.connectors import TestResult
    from datasources.services.connection import record_test_result

    ds = DataSource.objects.get(pk=source["id"])  # read before the move
    _ok(editor_rg.patch(f"{RG}{source['id']}", {"port": listener.port}, format="json"))
    record_test_result(ds, TestResult(ok=True, stage=None, message="ok", stages=[], duration_ms=1.0))
    assert DataSource.objects.get(pk=source["id"]).status == "credentials_required"


# --- ssh_local_port -----------------------------------------------------------------------------------


def test_ssh_local_port_is_stored_and_echoed(editor_rg, api, source):
    url = f"{RG}{source['id']}"
    changed = _ok(editor_rg.patch(url, {"ssh_local_port": 40022}, format="json"))  # no secret needed: advisory
    assert changed["data"]["ssh_local_port"] == 40022 and changed["data"]["status"] == "active"
    assert api.get(f"{URL}{source['id']}/").json()["connection"]["ssh_tunnel"]["local_port"] == 40022
    for bad in (1023, 65536, "40022"):
        refused = editor_rg.patch(url, {"ssh_local_port": bad}, format="json")
        assert "ssh_local_port" in _error(refused, reason="INVALID_REQUEST_BODY")["error"]["details"]
    cleared = _ok(editor_rg.patch(url, {"ssh_local_port": None}, format="json"))
    assert cleared["data"]["ssh_local_port"] is None


# --- 403 FORBIDDEN: the token's user is a member of no organization ---------------------------------


def test_forbidden_when_the_tokens_user_belongs_to_no_organization(org, editor, make_client, source):
    client = make_client(org, WRITE, username=editor.username)
    Membership.objects.filter(user=editor).delete()
    rivergen = client.patch(f"{RG}{source['id']}", {"name": "x"}, format="json")
    body = rivergen.json()
    assert rivergen.status_code == 403, body
    assert (body["success"], body["data"], body["error"]["code"]) == (False, None, "FORBIDDEN")
    assert body["message"] == "You are not a member of any organization." and "WWW-Authenticate" not in rivergen
    credentials = client.patch(f"{RG}{source['id']}/credentials", {"password": "x"}, format="json")
    assert credentials.status_code == 403 and credentials.json()["error"]["code"] == "FORBIDDEN"
    native = client.patch(f"{URL}{source['id']}/", {"name": "x"}, format="json")  # the native API: unchanged
    assert native.status_code == 401 and native.json()["code"] == "AUTHENTICATION_ERROR"


def test_a_member_of_another_organization_only_is_unauthorized(org, other_org, editor, make_client, source):
    client = make_client(org, WRITE, username=editor.username)
    Membership.objects.filter(user=editor).update(organization=other_org)
    response = client.patch(f"{RG}{source['id']}", {"name": "x"}, format="json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED"


# --- every type family that Rivergen's fields can move ---------------------------------------------

CANARY = "canary-Stored-Secret-9c2"
#: type -> (connection, the secret stored, the Rivergen move): every type with a host Rivergen's fields reach
FAMILIES = {
    "postgresql": ({"host": "db.internal", "database": "app", "username": "app"}, "password", "port"),
    "redshift": ({"host": "rs.internal", "database": "app", "username": "app"}, "password", "port"),
    "cockroachdb": ({"host": "crdb.internal", "database": "app", "username": "app"}, "password", "port"),
    "supabase": ({"host": "sb.internal", "database": "app", "username": "app"}, "password", "port"),
    "mysql": ({"host": "my.internal", "database": "app", "username": "app"}, "password", "port"),
    "mariadb": ({"host": "maria.internal", "database": "app", "username": "app"}, "password", "port"),
    "singlestore": ({"host": "s2.internal", "database": "app", "username": "app"}, "password", "port"),
    "mssql": ({"host": "sql.internal", "username": "u"}, "password", "port"),
    "clickhouse": ({"host": "ch.internal", "username": "u"}, "password", "port"),
    "mongodb": ({"host": "mongo.internal", "username": "u", "database": "d"}, "password", "port"),
    "trino": ({"host": "trino.internal", "username": "u", "catalog": "c", "schema": "s"}, "password", "port"),
    "databricks": ({"host": "dbc.cloud.databricks.com", "http_path": "/sql/1.0/warehouses/abc", "schema": "s"},
                   "token", "host"),
}


@pytest.mark.parametrize("type_key", sorted(FAMILIES))
def test_every_family_moves_without_its_secret(type_key, api, editor_rg, listener):
    connection, secret, how = FAMILIES[type_key]
    body = {"name": f"src-{type_key}", "type": type_key, "connection": connection, "credentials": {secret: CANARY}}
    created = api.post(f"{URL}?test_connection=false", body, format="json")
    assert created.status_code == 201, created.json()
    pk, url = created.json()["id"], f"{RG}{created.json()['id']}"
    move = {"host": "127.0.0.1", "port": listener.port} if how == "port" else {"host": "127.0.0.1"}
    moved = _ok(editor_rg.patch(url, move, format="json"))
    assert moved["data"]["status"] == "credentials_required" and moved["data"]["host"] == "127.0.0.1"
    assert secret not in moved["data"]["credentials_set"] and _secrets(pk) == {}
    assert _events(pk, "update")[-1].detail["withheld"] == [secret]
    refused = editor_rg.post(f"{URL}{pk}/test/")
    assert refused.status_code == 400 and refused.json()["code"] == "CREDENTIALS_REQUIRED"
    assert listener.connections == 0  # the stored secret never reached the new destination
    before = stored_state(pk)  # the listener is no database: the credentials fail there, nothing changes
    failed = editor_rg.patch(f"{url}/credentials", {secret: "new-secret"}, format="json")
    _error(failed)
    assert stored_state(pk) == before and not PendingCredentials.objects.exists()
    _no_secret_anywhere(CANARY)


# --- the seed's related "Get Data Source" -------------------------------------------------------------


def test_get_data_source_shows_the_wait(editor_rg, org, make_client, source, listener):
    url = f"{RG}{source['id']}"
    _ok(editor_rg.patch(url, {"port": listener.port}, format="json"))
    reader = make_client(org, ["datasource.read"])
    got = _ok(reader.get(url))
    assert got["message"] == "Data source retrieved successfully" and got["data"]["status"] == "credentials_required"
    assert got["data"]["port"] == listener.port
    assert reader.get(f"{RG}999999").json()["error"]["code"] == "NOT_FOUND"
