"""The trash (issue 19): a deleted data source is restorable, with its secrets and revisions, until
purged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from datasources.models import DataSource, DataSourceRevision, TrashedDataSource
from datasources.services.credentials import load_secrets, write_secrets
from datasources.services.deletion import purge_expired
from eventlog.models import Event
from organizations.models import AuditEvent

DS = "/api/v1/data-sources/"
TRASH = "/api/v1/data-source-trash/"
CANARY = "trash-Canary-91f0"


@pytest.fixture
def shop(api, sqlite_file):
    body = {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}, "tags": ["a"]}
    ds = api.post(DS, body, format="json").json()
    api.patch(f"{DS}{ds['id']}/", {"description": "kept"}, format="json")
    write_secrets(DataSource.objects.get(pk=ds["id"]), {"token": CANARY})  # a secret to carry through
    return ds


@pytest.mark.django_db
def test_a_deleted_source_waits_in_the_trash_and_comes_back_whole(api, shop):
    assert api.delete(f"{DS}{shop['id']}/").status_code == 204
    assert api.get(f"{DS}{shop['id']}/").status_code == 404
    listed = api.get(TRASH).json()["results"]
    assert [(t["id"], t["name"], t["reference_id"]) for t in listed] == [(shop["id"], "Shop", shop["reference_id"])]
    assert listed[0]["deleted_by"] == "token:t" and listed[0]["purge_after"] > listed[0]["deleted_at"]
    trashed = TrashedDataSource.objects.get()
    assert CANARY not in trashed.ciphertext and CANARY not in str(trashed.config)
    assert CANARY not in api.get(f"{TRASH}{shop['id']}/").content.decode()
    assert Event.objects.filter(type="data_source.deleted").get().data["purged"] is False

    restored = api.post(f"{TRASH}{shop['id']}/restore/")
    assert restored.status_code == 201, restored.json()
    body = restored.json()
    assert (body["id"], body["reference_id"], body["name"]) == (shop["id"], shop["reference_id"], "Shop")
    assert body["description"] == "kept" and body["tags"] == ["a"] and body["status"] == "pending"
    assert body["created_at"] == shop["created_at"]
    # re-cached before the answer (no worker here), as after a connection change
    assert (body["schema"]["status"], body["schema"]["version"], body["schema"]["table_count"]) == ("ready", 1, 2)
    assert load_secrets(DataSource.objects.get(pk=shop["id"])) == {"token": CANARY}
    assert not TrashedDataSource.objects.exists()
    numbers = [(r["number"], r["action"]) for r in api.get(f"{DS}{shop['id']}/revisions/").json()["results"]]
    assert numbers == [(3, "undelete"), (2, "update"), (1, "create")]
    assert AuditEvent.objects.filter(action="undelete", target_id=shop["id"]).exists()
    created = Event.objects.filter(type="data_source.created").order_by("id").last()
    assert created.data["restored"] is True
    assert api.post(f"{DS}{shop['id']}/test/").json()["ok"] is True


@pytest.mark.django_db
def test_restoring_under_a_name_taken_as_references_compare_names_is_a_409(api, shop, sqlite_file):
    """`Shop Floor` and `shop-floor` are one name in references (escaped, any case): restoring would
    make `acme.shop_floor` name two sources."""
    assert api.patch(f"{DS}{shop['id']}/", {"name": "Shop Floor"}, format="json").status_code == 200
    assert api.delete(f"{DS}{shop['id']}/").status_code == 204
    body = {"name": "shop-floor", "type": "sqlite", "connection": {"path": sqlite_file}}
    assert api.post(DS, body, format="json").status_code == 201
    response = api.post(f"{TRASH}{shop['id']}/restore/")
    assert response.status_code == 409 and TrashedDataSource.objects.exists()


@pytest.mark.django_db
def test_restoring_under_a_taken_name_is_a_409_and_changes_nothing(api, shop, sqlite_file):
    api.delete(f"{DS}{shop['id']}/")
    api.post(DS, {"name": "shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    refused = api.post(f"{TRASH}{shop['id']}/restore/")
    assert refused.status_code == 409 and refused.json()["code"] == "CONFLICT"
    assert TrashedDataSource.objects.filter(data_source_id=shop["id"]).exists()


@pytest.mark.django_db
def test_purging_leaves_nothing_of_it_and_needs_an_owner_or_admin(api, make_client, org, shop, owner, editor):
    as_editor = make_client(org, username=editor.username)
    as_owner = make_client(org, username=owner.username)
    assert as_editor.delete(f"{DS}{shop['id']}/?purge=true").status_code == 403
    assert DataSource.objects.filter(pk=shop["id"]).exists()
    assert as_editor.delete(f"{DS}{shop['id']}/").status_code == 204
    assert as_editor.delete(f"{TRASH}{shop['id']}/").status_code == 403
    assert as_owner.delete(f"{TRASH}{shop['id']}/").status_code == 204
    assert not TrashedDataSource.objects.exists()
    assert not DataSourceRevision.objects.filter(data_source_id=shop["id"]).exists()
    assert api.post(f"{TRASH}{shop['id']}/restore/").status_code == 404
    assert AuditEvent.objects.filter(action="purge", target_id=shop["id"]).exists()
    # Two events: into the trash, then gone for good (with who purged it).
    events = [e.data for e in Event.objects.filter(type="data_source.deleted").order_by("id")]
    assert [e["purged"] for e in events] == [False, True]
    assert events[1]["data_source"] == {"id": shop["id"], "reference_id": shop["reference_id"], "name": "Shop",
                                        "type": "sqlite"}
    assert events[1]["actor"].endswith(f"(user:{owner.username})"), events[1]


@pytest.mark.django_db
def test_delete_with_purge_skips_the_trash(api, make_client, org, owner, shop):
    narrowed = make_client(org, ["datasource.read", "datasource.write"], username=owner.username)
    assert narrowed.delete(f"{DS}{shop['id']}/?purge=true").status_code == 403  # scopes are the token's ceiling
    assert DataSource.objects.filter(pk=shop["id"]).exists()
    as_owner = make_client(org, username=owner.username)
    assert as_owner.delete(f"{DS}{shop['id']}/?purge=true").status_code == 204
    assert not TrashedDataSource.objects.exists() and not DataSourceRevision.objects.exists()
    assert Event.objects.filter(type="data_source.deleted").get().data["purged"] is True


@pytest.mark.django_db
def test_the_window_ends_in_a_purge_and_other_organizations_see_nothing(api, other_api, org, shop):
    api.delete(f"{DS}{shop['id']}/")
    assert other_api.get(TRASH).json()["count"] == 0
    assert other_api.get(f"{TRASH}{shop['id']}/").status_code == 404
    assert other_api.post(f"{TRASH}{shop['id']}/restore/").status_code == 404
    assert purge_expired() == 0
    TrashedDataSource.objects.update(purge_after=timezone.now() - timedelta(seconds=1))
    # past its window, before the daily purge: neither listed nor restorable (its secrets are as good as gone)
    assert api.get(TRASH).json()["count"] == 0
    assert api.post(f"{TRASH}{shop['id']}/restore/").status_code == 404
    assert purge_expired() == 1
    assert not TrashedDataSource.objects.exists() and not DataSourceRevision.objects.exists()
    purged = Event.objects.filter(type="data_source.deleted").order_by("id").last()
    assert purged.data["purged"] is True and "actor" not in purged.data
    assert purged.data["data_source"]["id"] == shop["id"] and purged.organization_id == org.pk


@pytest.mark.django_db
def test_key_rotation_reaches_the_trash_and_a_restore_still_decrypts(api, shop, settings):
    import base64
    import os

    from django.core.management import call_command

    api.delete(f"{DS}{shop['id']}/")
    new_key = "k9:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    settings.ENCRYPTION_KEYS = [new_key, *settings.ENCRYPTION_KEYS]
    call_command("rotate_encryption_key")
    assert TrashedDataSource.objects.get().key_id == "k9"
    assert set(DataSourceRevision.objects.values_list("key_id", flat=True)) <= {"k9", ""}
    settings.ENCRYPTION_KEYS = [new_key]  # the old key is gone
    assert api.post(f"{TRASH}{shop['id']}/restore/").status_code == 201
    assert load_secrets(DataSource.objects.get(pk=shop["id"])) == {"token": CANARY}


@pytest.mark.django_db
def test_a_restore_continues_the_version_so_an_etag_from_before_the_deletion_is_stale(api, shop):
    before = api.get(f"{DS}{shop['id']}/")
    old_etag, old_version = before["ETag"], before.json()["version"]
    assert api.delete(f"{DS}{shop['id']}/", HTTP_IF_MATCH=old_etag).status_code == 204
    restored = api.post(f"{TRASH}{shop['id']}/restore/").json()
    assert restored["version"] == old_version + 1
    stale = api.patch(f"{DS}{shop['id']}/", {"description": "from a stale page"}, format="json",
                      HTTP_IF_MATCH=old_etag)
    assert stale.status_code == 412 and stale.json()["code"] == "PRECONDITION_FAILED", stale.json()
    assert DataSource.objects.get(pk=shop["id"]).description == "kept"


@pytest.mark.django_db
def test_an_editor_purging_another_organizations_trash_gets_404_not_403(make_client, org, other_api, editor,
                                                                        sqlite_file):
    theirs = other_api.post(DS, {"name": "Theirs", "type": "sqlite", "connection": {"path": sqlite_file}},
                            format="json").json()
    assert other_api.delete(f"{DS}{theirs['id']}/").status_code == 204
    as_editor = make_client(org, username=editor.username)
    response = as_editor.delete(f"{TRASH}{theirs['id']}/")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND", response.json()
    assert TrashedDataSource.objects.filter(data_source_id=theirs["id"]).exists()


@pytest.mark.django_db
def test_an_editor_purging_another_organizations_source_gets_404_not_403(make_client, org, other_api, editor,
                                                                         sqlite_file):
    theirs = other_api.post(DS, {"name": "Theirs", "type": "sqlite", "connection": {"path": sqlite_file}},
                            format="json").json()
    response = make_client(org, username=editor.username).delete(f"{DS}{theirs['id']}/?purge=true")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND", response.json()
    assert DataSource.objects.filter(pk=theirs["id"]).exists()
