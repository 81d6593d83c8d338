"""Actions that take no body refuse one before they act (core.params.require_no_body): a malformed
body or a field they do not read is a 400 naming it, and nothing changes."""

from __future__ import annotations

import pytest

from datasources.models import DataSource, TrashedDataSource
from tests.support.workflows import create_source, sqlite_db

DS = "/api/v1/data-sources/"
BODIES = [("notjson", "application/json", "detail"), ('{"bogus": 1}', "application/json", "bogus"),
          ("[1]", "application/json", "body")]


def refused(api, url: str) -> None:
    """Each bad body is a 400 that names what was wrong."""
    for raw, content_type, named in BODIES:
        response = api.generic("POST", url, raw, content_type=content_type)
        assert response.status_code == 400, (url, raw, response.status_code)
        body = response.json()
        assert body["code"] == "INVALID_REQUEST_BODY", body
        if named != "detail":
            assert named in body["errors"], body


@pytest.fixture
def source(api):
    made = create_source(api, "Shop", "shop.db", "CREATE TABLE items (id INTEGER);")
    sqlite_db("other.db", "CREATE TABLE other (id INTEGER);")
    assert api.patch(f"{DS}{made['id']}/", {"description": "second"}, format="json").status_code == 200
    return made


def state(pk: int) -> tuple:
    row = DataSource.objects.get(pk=pk)
    return row.version, row.description, row.status, row.last_test


def test_revision_restore_and_its_plan(api, source):
    before = state(source["id"])
    refused(api, f"{DS}{source['id']}/revisions/1/restore/")
    refused(api, f"{DS}{source['id']}/revisions/1/plan/")
    assert state(source["id"]) == before
    assert api.get(f"{DS}{source['id']}/plans/").json()["count"] == 0
    assert api.post(f"{DS}{source['id']}/revisions/1/restore/").status_code == 200  # no body: restored
    assert DataSource.objects.get(pk=source["id"]).description == ""


def test_test_and_sync(api, source):
    before = state(source["id"])
    refused(api, f"{DS}{source['id']}/test/")
    refused(api, f"{DS}{source['id']}/sync/")
    assert state(source["id"]) == before
    assert api.post(f"{DS}{source['id']}/test/").status_code == 200


def test_trash_restore(api, source):
    assert api.delete(f"{DS}{source['id']}/").status_code == 204
    refused(api, f"/api/v1/data-source-trash/{source['id']}/restore/")
    assert TrashedDataSource.objects.filter(data_source_id=source["id"]).exists()
    assert not DataSource.objects.filter(pk=source["id"]).exists()
    assert api.post(f"/api/v1/data-source-trash/{source['id']}/restore/").status_code == 201


def test_plan_apply(api, source):
    plan = api.post(f"{DS}{source['id']}/plans/", {"connection": {"path": "other.db"}}, format="json")
    assert plan.status_code == 201, plan.json()
    before = state(source["id"])
    refused(api, f"{DS}{source['id']}/plans/{plan.json()['id']}/apply/")
    assert state(source["id"]) == before
    assert api.get(f"{DS}{source['id']}/plans/{plan.json()['id']}/").json()["status"] == "open"


@pytest.mark.django_db(transaction=True)
def test_change_set_apply(api, source):
    made = api.post("/api/v1/change-sets/", {"items": [
        {"data_source": source["id"], "changes": {"description": "set"}}]}, format="json")
    assert made.status_code == 201, made.json()
    before = state(source["id"])
    refused(api, f"/api/v1/change-sets/{made.json()['id']}/apply/")
    assert state(source["id"]) == before
    assert api.get(f"/api/v1/change-sets/{made.json()['id']}/").json()["status"] == "open"
