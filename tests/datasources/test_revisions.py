"""Revisions (issue 19): every applied change restorable, secrets included, through the normal update."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.utils import timezone

from datasources.models import DataSource, DataSourceRevision
from datasources.services.credentials import load_secrets
from datasources.services.revisions import prune
from organizations.models import AuditEvent

DS = "/api/v1/data-sources/"
NEW_PASSWORD = "second-Pg-pass-7c1"


def revisions(api, ds_id):
    response = api.get(f"{DS}{ds_id}/revisions/")
    assert response.status_code == 200, response.json()
    return response.json()["results"]


@pytest.mark.django_db
def test_each_applied_change_is_a_revision_newest_first(api, sqlite_file):
    created = api.post(DS, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    ds = created.json()
    api.patch(f"{DS}{ds['id']}/", {"description": "first"}, format="json")
    api.patch(f"{DS}{ds['id']}/", {"description": "first"}, format="json")  # no change: no revision
    api.patch(f"{DS}{ds['id']}/", {"name": "Shop 2", "tags": ["x"]}, format="json")
    listed = revisions(api, ds["id"])
    assert [(r["number"], r["action"]) for r in listed] == [(3, "update"), (2, "update"), (1, "create")]
    assert listed[0]["changed"] == ["name", "tags"] and listed[0]["secrets_changed"] == []
    assert listed[0]["actor"] == "token:t"
    audit = AuditEvent.objects.get(pk=listed[0]["audit_event"])
    assert (audit.action, audit.target_id) == ("update", ds["id"])
    detail = api.get(f"{DS}{ds['id']}/revisions/1/").json()
    assert detail["config"]["name"] == "Shop" and detail["config"]["description"] == ""
    assert detail["diff"]["name"] == {"old": "Shop 2", "new": "Shop"}
    assert detail["diff"]["description"] == {"old": "first", "new": ""}
    assert api.get(f"{DS}{ds['id']}/revisions/9/").status_code == 404
    assert api.get(f"{DS}{ds['id']}/revisions/0/").status_code == 404


@pytest.mark.django_db
def test_another_organizations_revisions_are_a_404(api, other_api, sqlite_file):
    ds = api.post(DS, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json").json()
    assert other_api.get(f"{DS}{ds['id']}/revisions/").status_code == 404
    assert other_api.get(f"{DS}{ds['id']}/revisions/1/").status_code == 404
    assert other_api.post(f"{DS}{ds['id']}/revisions/1/restore/").status_code == 404


@contextmanager
def server_password(cluster, password):
    """Set the cluster's login password for the block, and put the fixture's back afterwards."""
    def alter(current, new):
        with psycopg.connect(host=cluster.host, port=cluster.port, user=cluster.user, password=current,
                             dbname=cluster.database, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {cluster.user} PASSWORD '{new}'")

    alter(cluster.password, password)
    try:
        yield
    finally:
        alter(password, cluster.password)


@pytest.mark.django_db
def test_restoring_a_revision_from_before_a_password_change_brings_the_old_password_back(
        api, pg_source_data, pg_password_server, allow_loopback):
    cluster = pg_password_server
    ds = api.post(DS, pg_source_data, format="json").json()
    with server_password(cluster, NEW_PASSWORD):
        changed = api.patch(f"{DS}{ds['id']}/", {"credentials": {"password": NEW_PASSWORD}}, format="json")
        assert changed.status_code == 200, changed.json()
        listed = revisions(api, ds["id"])
        assert listed[0]["secrets_changed"] == ["password"] and listed[0]["number"] == 2
        detail = api.get(f"{DS}{ds['id']}/revisions/1/")
        assert detail.json()["diff"] == {"credentials.password": "changed"}
        assert NEW_PASSWORD not in detail.content.decode() and cluster.password not in detail.content.decode()
        # While the server wants the new password, restoring the old one is tested and refused.
        refused = api.post(f"{DS}{ds['id']}/revisions/1/restore/")
        assert refused.status_code == 400 and refused.json()["code"] == "CREDENTIAL_TEST_FAILED"
        assert load_secrets(DataSource.objects.get(pk=ds["id"])) == {"password": NEW_PASSWORD}
    # The server is back on the old password: the restore applies it, and it works.
    etag = api.get(f"{DS}{ds['id']}/")["ETag"]
    stale = api.post(f"{DS}{ds['id']}/revisions/1/restore/", HTTP_IF_MATCH='"1-1"')
    assert stale.status_code == 412
    dry = api.post(f"{DS}{ds['id']}/revisions/1/restore/?dry_run=true")
    assert dry.status_code == 200 and dry.json()["dry_run"] is True and dry.json()["changed_fields"] == [
        "credentials.password"]
    assert "impact" in dry.json()
    restored = api.post(f"{DS}{ds['id']}/revisions/1/restore/", HTTP_IF_MATCH=etag)
    assert restored.status_code == 200, restored.json()
    assert load_secrets(DataSource.objects.get(pk=ds["id"])) == {"password": cluster.password}
    assert api.post(f"{DS}{ds['id']}/test/").json()["ok"] is True
    listed = revisions(api, ds["id"])
    assert (listed[0]["number"], listed[0]["action"], listed[0]["secrets_changed"]) == (3, "restore", ["password"])
    audit = AuditEvent.objects.get(pk=listed[0]["audit_event"])
    assert audit.action == "restore" and audit.detail["restored_revision"] == 1
    for text in (json.dumps(audit.changes), json.dumps(audit.detail), restored.content.decode()):
        assert cluster.password not in text and NEW_PASSWORD not in text
    stored = DataSourceRevision.objects.filter(data_source_id=ds["id"]).values_list("ciphertext", flat=True)
    assert all(cluster.password not in c and NEW_PASSWORD not in c for c in stored)
    # A restore can be saved as a plan, reviewed, and applied later as the restore (under the plan rules).
    with server_password(cluster, NEW_PASSWORD):
        planned = api.post(f"{DS}{ds['id']}/revisions/2/plan/")
        assert planned.status_code == 201, planned.json()
        plan = planned.json()
        assert plan["restores"] == 2 and plan["changes"] == {"credentials.password": "changed"}
        assert plan["test"]["ok"] is True and "impact" in plan and NEW_PASSWORD not in planned.content.decode()
        assert load_secrets(DataSource.objects.get(pk=ds["id"])) == {"password": cluster.password}
        applied = api.post(f"{DS}{ds['id']}/plans/{plan['id']}/apply/")
        assert applied.status_code == 200, applied.json()
        assert load_secrets(DataSource.objects.get(pk=ds["id"])) == {"password": NEW_PASSWORD}
        newest = revisions(api, ds["id"])[0]
        assert (newest["number"], newest["action"]) == (4, "restore")
        assert AuditEvent.objects.get(pk=newest["audit_event"]).detail["restored_revision"] == 2
    assert api.post(f"{DS}{ds['id']}/revisions/99/plan/").status_code == 404


@pytest.mark.django_db
def test_a_restore_clears_secrets_the_revision_did_not_have_and_brings_back_tenancy(api, sqlite_file):
    ds = api.post(DS, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json").json()
    settings = {"level": "TABLE", "client_column_type": "NUMBER", "schema": "main", "table": "items",
                "client_column": "id", "primary_key_column": "id"}
    assert api.put(f"{DS}{ds['id']}/tenancy/", settings, format="json").status_code == 200
    assert revisions(api, ds["id"])[0]["changed"][0].startswith("tenancy_settings")
    assert api.delete(f"{DS}{ds['id']}/tenancy/").status_code == 204
    restored = api.post(f"{DS}{ds['id']}/revisions/2/restore/")
    assert restored.status_code == 200, restored.json()
    assert api.get(f"{DS}{ds['id']}/tenancy/").json()["table"] == "items"
    back = api.post(f"{DS}{ds['id']}/revisions/1/restore/")
    assert back.status_code == 200 and api.get(f"{DS}{ds['id']}/tenancy/").status_code in (200, 404)
    assert back.json()["tenancy_settings"] is None


@pytest.mark.django_db
def test_retention_keeps_the_newest_n_and_nothing_older_than_d_days_but_the_newest(api, org, sqlite_file):
    ds = api.post(DS, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json").json()
    for i in range(4):
        api.patch(f"{DS}{ds['id']}/", {"description": f"v{i}"}, format="json")
    org.revisions_keep, org.revisions_keep_days = 3, None
    org.save()
    assert prune() == 2
    assert [r["number"] for r in revisions(api, ds["id"])] == [5, 4, 3]
    org.revisions_keep_days = 10
    org.save()
    DataSourceRevision.objects.filter(data_source_id=ds["id"]).update(created_at=timezone.now() - timedelta(days=11))
    assert prune() == 2
    assert [r["number"] for r in revisions(api, ds["id"])] == [5]  # the newest always stays
    assert prune() == 0


@pytest.mark.django_db
def test_a_restore_whose_secrets_are_those_stored_now_needs_no_test(api):
    """A sent secret always counts as written (no guess can be checked); a restore's secrets are the
    server's own, so those equal to now are no change: restoring a description needs no connection
    test (this host does not even resolve)."""
    body = {"name": "Far", "type": "mysql", "credentials": {"password": "kept-pw"},
            "connection": {"host": "db.invalid", "database": "shop", "username": "app"}}
    ds = api.post(f"{DS}?test_connection=false", body, format="json").json()
    assert api.patch(f"{DS}{ds['id']}/", {"description": "later"}, format="json").status_code == 200
    restored = api.post(f"{DS}{ds['id']}/revisions/1/restore/")
    assert restored.status_code == 200, restored.json()
    assert restored.json()["description"] == "" and restored.json()["last_test"] is None
    assert revisions(api, ds["id"])[0]["secrets_changed"] == []
