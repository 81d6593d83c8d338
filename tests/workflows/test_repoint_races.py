"""A repoint onto a data source racing that source's deletion (PostgreSQL row locks), played as in
``test_integrity_races``: whichever commits first wins, and the other answers as it would have
sequentially (409 naming the new dependant, or 404), never a 500 at COMMIT."""

from __future__ import annotations

from typing import Any

import pytest

from datasources.models import DataSource
from tests.support.workflows import WF, add_source, create_source, create_workflow
from tests.workflows.test_integrity_races import _race
from workflows.models import WorkflowDataSource


@pytest.fixture
def setup(transactional_db, org, make_client):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("set DATABASE_URL to a PostgreSQL database to run concurrency tests")
    api = make_client(org)
    create_source(api, "Shop", "shop.db", "CREATE TABLE items (id INTEGER);")
    other = create_source(api, "Other", "other.db", "CREATE TABLE items (id INTEGER);")
    flow = create_workflow(api, "Flow")
    wds = add_source(api, flow, source_data_source="acme.shop")
    return {"other": other, "url": f"{WF}{flow['id']}/data-sources/{wds['id']}/", "wds": wds,
            "clients": [make_client(org), make_client(org)]}


def _repoint(s: dict) -> Any:
    return lambda: s["clients"][0].patch(s["url"], {"source_data_source": "acme.other"}, format="json")


def _delete(s: dict) -> Any:
    return lambda: s["clients"][1].delete(f"/api/v1/data-sources/{s['other']['id']}/")


def test_a_repoint_first_makes_the_deletion_a_409(setup, monkeypatch):
    repointed, deleted = _race(monkeypatch, _repoint(setup), _delete(setup))
    assert repointed.status_code == 200, repointed.json()
    assert deleted.status_code == 409 and deleted.json()["code"] == "CONFLICT"
    assert WorkflowDataSource.objects.get(pk=setup["wds"]["id"]).source_data_source_id == setup["other"]["id"]


def test_a_deletion_first_is_a_404_for_the_repoint_not_a_500(setup, monkeypatch):
    deleted, repointed = _race(monkeypatch, _delete(setup), _repoint(setup))
    assert deleted.status_code == 204
    assert repointed.status_code == 404 and repointed.json()["code"] == "NOT_FOUND", repointed.status_code
    assert not DataSource.objects.filter(pk=setup["other"]["id"]).exists()
