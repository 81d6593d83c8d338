"""What is left of a plan or change set once it can no longer be applied (issue 19): the reviewed
summary stays, the sealed body with its secrets does not; a deleted source's items are forgotten at
once, and the daily task deletes closed plans and sets past CHANGES_RETENTION_DAYS."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from changes.models import ChangePlan, ChangeSet, ChangeSetItem
from changes.tasks import purge_changes
from datasources.models import DataSourceRevision
from eventlog.models import Event
from tests.support.workflows import create_source, sqlite_db

DS = "/api/v1/data-sources/"
CS = "/api/v1/change-sets/"
SCRIPT = "CREATE TABLE t (id INTEGER);"


def _sealed(model) -> list[str]:
    return [c for c in model.objects.values_list("ciphertext", flat=True) if c]


def _set_for(api, ds: dict) -> dict:
    body = {"items": [{"data_source": ds["id"], "changes": {"description": "moved"}}]}
    response = api.post(CS, body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.mark.django_db(transaction=True)
def test_a_purged_source_leaves_no_sealed_body_in_a_change_set(api, make_client, org, owner):
    ds = create_source(api, "Shop", "shop.db", SCRIPT)
    change_set = _set_for(api, ds)
    assert len(_sealed(ChangeSetItem)) == 1
    response = make_client(org, username=owner.username).delete(f"{DS}{ds['id']}/?purge=true")
    assert response.status_code == 204, response.content
    item = ChangeSetItem.objects.get()
    assert item.data_source_id is None and item.ciphertext == "" and item.key_id == ""
    assert api.get(f"{CS}{change_set['id']}/").json()["items"][0]["data_source"] is None  # as the README says
    refused = api.post(f"{CS}{change_set['id']}/apply/")
    assert refused.status_code == 409 and list(refused.json()["errors"]) == ["items.0.data_source"], refused.json()


@pytest.mark.django_db(transaction=True)
def test_applied_and_cancelled_bodies_are_forgotten_and_their_summary_kept(api):
    ds = create_source(api, "Shop", "shop.db", SCRIPT)
    change_set = _set_for(api, ds)
    assert api.post(f"{CS}{change_set['id']}/apply/").status_code == 200
    assert _sealed(ChangeSetItem) == []
    assert ChangeSetItem.objects.get().changed == ["description"]
    plan = api.post(f"{DS}{ds['id']}/plans/", {"description": "planned"}, format="json").json()
    assert len(_sealed(ChangePlan)) == 1
    assert api.delete(f"{DS}{ds['id']}/plans/{plan['id']}/").status_code == 204
    assert _sealed(ChangePlan) == []
    assert api.get(f"{DS}{ds['id']}/plans/{plan['id']}/").json()["changes"]["description"]["new"] == "planned"


@pytest.mark.django_db(transaction=True)
def test_an_item_refused_at_apply_time_is_named_and_nothing_changes(api):
    made = [create_source(api, f"S{i}", f"s{i}.db", SCRIPT) for i in range(3)]
    items = [{"data_source": d["id"], "changes": {"description": f"d{i}"}} for i, d in enumerate(made)]
    items[2]["changes"]["name"] = "Taken later"
    change_set = api.post(CS, {"items": items}, format="json").json()
    assert change_set["status"] == "open", change_set
    create_source(api, "Taken later", "other.db", SCRIPT)  # the name is taken after the set was tested
    versions = {d["id"]: api.get(f"{DS}{d['id']}/").json()["version"] for d in made}
    events, revisions = Event.objects.count(), DataSourceRevision.objects.count()
    refused = api.post(f"{CS}{change_set['id']}/apply/")
    body = refused.json()
    assert refused.status_code == 409, body
    assert body["message"].startswith("Item 2 was refused") and set(body["errors"]) == {"items.2.name"}, body
    assert {d["id"]: api.get(f"{DS}{d['id']}/").json()["version"] for d in made} == versions
    assert all(api.get(f"{DS}{d['id']}/").json()["description"] == "" for d in made)
    assert ChangeSet.objects.get(public_id=change_set["id"]).status == "open"
    # Items 0 and 1 were written before item 2 was refused: the rollback leaves no event or revision of them.
    assert (Event.objects.count(), DataSourceRevision.objects.count()) == (events, revisions)


@pytest.mark.django_db(transaction=True)
def test_the_daily_task_expires_forgets_and_deletes_past_retention(api, settings):
    settings.CHANGES_RETENTION_DAYS = 30
    ds = create_source(api, "Shop", "shop.db", SCRIPT)
    sqlite_db("other.db", SCRIPT)
    expiring = api.post(f"{DS}{ds['id']}/plans/", {"description": "soon"}, format="json").json()
    old = api.post(f"{DS}{ds['id']}/plans/", {"description": "old"}, format="json").json()
    open_set = _set_for(api, ds)
    ChangePlan.objects.filter(public_id=expiring["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    ChangePlan.objects.filter(public_id=old["id"]).update(status="cancelled",
                                                           created_at=timezone.now() - timedelta(days=31))
    result = purge_changes()
    assert result["expired_plans"] == 1 and result["deleted_plans"] == 1 and result["deleted_change_sets"] == 0
    assert ChangePlan.objects.get(public_id=expiring["id"]).status == "expired"
    assert ChangePlan.objects.get(public_id=expiring["id"]).ciphertext == ""
    assert not ChangePlan.objects.filter(public_id=old["id"]).exists()
    assert len(_sealed(ChangeSetItem)) == 1  # the open set still applies
    ChangeSet.objects.filter(public_id=open_set["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    purge_changes()
    assert _sealed(ChangeSetItem) == [] and ChangeSet.objects.get().status == "expired"
