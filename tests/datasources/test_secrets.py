"""Secrets: encrypted at rest, bound to their row, never shown anywhere, rotated with the key."""

from __future__ import annotations

import base64
import logging
import os

import pytest
from django.core.management import call_command

from datasources import crypto
from datasources.models import Credential, DataSource, DataSourceRevision
from datasources.services.credentials import load_secrets
from datasources.services.revisions import unseal
from organizations.models import AuditEvent

URL = "/api/v1/data-sources/"
CANARY = "canary-Zq8vX1-secret"


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


@pytest.fixture
def canary_source(api, pg_password_server, allow_loopback, settings):
    c = pg_password_server
    # Give the cluster's role a canary password so that the secret under test is real.
    import psycopg

    with psycopg.connect(host=c.host, port=c.port, user=c.user, password=c.password, dbname=c.database,
                         autocommit=True) as conn:
        conn.execute(f"CREATE ROLE canary LOGIN PASSWORD '{CANARY}'")
    body = {"name": "Canary", "type": "postgresql",
            "connection": {"host": c.host, "port": c.port, "database": c.database, "username": "canary",
                           "ssl": {"mode": "disable"}},
            "credentials": {"password": CANARY}}
    response = api.post(URL, body, format="json")
    assert response.status_code == 201, response.json()
    yield response.json()
    with psycopg.connect(host=c.host, port=c.port, user=c.user, password=c.password, dbname=c.database,
                         autocommit=True) as conn:
        conn.execute("DROP OWNED BY canary")
        conn.execute("DROP ROLE canary")


def test_secret_canary_never_appears_anywhere(api, canary_source, admin_client, caplog):
    caplog.set_level(logging.DEBUG)
    pk = canary_source["id"]
    bodies = [
        api.get(f"{URL}{pk}/").content,
        api.get(URL).content,
        api.patch(f"{URL}{pk}/", {"description": "d"}, format="json").content,
        api.patch(f"{URL}{pk}/", {"credentials": {"password": CANARY + "-wrong"}}, format="json").content,
        api.patch(f"{URL}{pk}/?dry_run=true", {"credentials": {"password": CANARY}}, format="json").content,
        api.put(f"{URL}{pk}/", {"name": "Canary", "connection": {"host": "x"}}, format="json").content,
        api.post(f"{URL}{pk}/test/").content,
        api.get(f"{URL}{pk}/history/").content,
        admin_client.get(f"/admin/datasources/datasource/{pk}/change/").content,
        admin_client.get("/admin/datasources/datasource/").content,
        admin_client.get("/admin/organizations/auditevent/").content,
    ]
    for body in bodies:
        assert CANARY.encode() not in body
    assert CANARY not in caplog.text
    for event in AuditEvent.objects.all():
        assert CANARY not in str(event.changes) + str(event.detail)
    assert CANARY not in str(list(Credential.objects.values()))
    history = api.get(f"{URL}{pk}/history/").json()["results"]
    assert history[-1]["action"] == "create"
    assert history[-1]["changes"]["credentials.password"] == "changed"


def test_wrong_secret_in_error_message_is_not_echoed(api, canary_source):
    wrong = "wrong-" + CANARY
    response = api.patch(f"{URL}{canary_source['id']}/", {"credentials": {"password": wrong}}, format="json")
    assert response.status_code == 400
    assert wrong.encode() not in response.content


def test_ciphertext_moved_to_another_row_does_not_decrypt(api, sqlite_file, canary_source):
    other = api.post(URL, {"name": "Other", "type": "sqlite", "connection": {"path": sqlite_file}},
                     format="json").json()
    cred = Credential.objects.get(data_source_id=canary_source["id"], field="password")
    Credential.objects.create(data_source_id=other["id"], field="password", key_id=cred.key_id,
                              ciphertext=cred.ciphertext)
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(cred.key_id, cred.ciphertext, row_id=other["id"], field="password")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(cred.key_id, cred.ciphertext, row_id=canary_source["id"], field="ssh_password")
    assert load_secrets(DataSource.objects.get(pk=other["id"])) == {}
    assert load_secrets(DataSource.objects.get(pk=canary_source["id"])) == {"password": CANARY}


def test_key_rotation_reencrypts_everything_and_second_run_does_nothing(settings, canary_source, capsys):
    old_key = f"k1:{_key()}"
    settings.ENCRYPTION_KEYS = [old_key, *settings.ENCRYPTION_KEYS]  # the suite's key wrote the canary
    call_command("rotate_encryption_key")
    assert set(Credential.objects.values_list("key_id", flat=True)) == {"k1"}
    settings.ENCRYPTION_KEYS = [f"k2:{_key()}", old_key]
    capsys.readouterr()
    call_command("rotate_encryption_key")
    out = capsys.readouterr().out
    # The credential and the secrets of the source's revision (one: its creation).
    assert "re-encrypted=2 already_current=0 failed=0" in out
    assert set(Credential.objects.values_list("key_id", flat=True)) == {"k2"}
    assert set(DataSourceRevision.objects.values_list("key_id", flat=True)) == {"k2"}
    call_command("rotate_encryption_key")
    assert "re-encrypted=0 already_current=2 failed=0" in capsys.readouterr().out
    settings.ENCRYPTION_KEYS = [settings.ENCRYPTION_KEYS[0]]  # the old key is gone: k2 alone decrypts
    assert load_secrets(DataSource.objects.get(pk=canary_source["id"])) == {"password": CANARY}
    revision = DataSourceRevision.objects.get(data_source_id=canary_source["id"])
    assert unseal(revision.data_source_id, revision.key_id, revision.ciphertext) == {"password": CANARY}


def test_ciphertext_is_not_the_plaintext(canary_source):
    cred = Credential.objects.get(data_source_id=canary_source["id"])
    assert CANARY not in cred.ciphertext
    assert CANARY not in base64.b64decode(cred.ciphertext).decode("latin-1")
