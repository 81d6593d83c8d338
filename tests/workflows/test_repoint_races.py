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


def test_a_repoint_onto_a_data_source_does_not_wait_for_the_organization(setup):
    """Repoints of different workflows run side by side: one onto a data source takes no organization
    lock (nothing of another workflow to check), so a transaction holding that lock (any node or
    workflow write of the organization) does not hold it up (issue 18: the 10-node repoint fell from
    0.72x to 0.40x of its floor when every repoint took it)."""
    import threading

    from django.db import connection, transaction

    from organizations.models import Organization

    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        try:
            with transaction.atomic():
                Organization.objects.select_for_update(no_key=True).filter(
                    pk=DataSource.objects.get(pk=setup["other"]["id"]).organization_id).first()
                held.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")
        try:
            repointed = _repoint(setup)()
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = 0")
        assert repointed.status_code == 200, repointed.json()
    finally:
        release.set()
        thread.join(30)
    assert WorkflowDataSource.objects.get(pk=setup["wds"]["id"]).source_data_source_id == setup["other"]["id"]


def test_repoints_of_two_workflows_onto_one_source_run_side_by_side(setup, monkeypatch, make_client, org):
    """The target is locked FOR KEY SHARE (its deletion waits, see above), which another repoint onto
    it shares: with FOR NO KEY UPDATE the second waited for the first's COMMIT (the 10-node repoint,
    one workflow per client, at 0.43x of its floor)."""
    from django.db import connection

    from tests.workflows.test_integrity_races import HELD, Hold, _start

    api = make_client(org)
    second_flow = create_workflow(api, "Second")
    second = add_source(api, second_flow, source_data_source="acme.shop")
    hold = Hold(monkeypatch)
    held, first = _start(HELD, _repoint(setup))
    assert hold.reached.wait(10), "the first repoint never reached its audit event"
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")
        url = f"{WF}{second_flow['id']}/data-sources/{second['id']}/"
        repointed = api.patch(url, {"source_data_source": "acme.other"}, format="json")
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    finally:
        hold.released.set()
        held.join(20)
    assert repointed.status_code == 200, repointed.json()
    assert first and first[0].status_code == 200, first
    assert WorkflowDataSource.objects.filter(source_data_source_id=setup["other"]["id"]).count() == 2
