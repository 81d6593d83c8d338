"""Races between workflow writes that read each other (PostgreSQL row locks), played deterministically.

One request is held inside its transaction right after its audit event (its checks done, its writes
made or about to be, its locks held); the other then starts and must wait for a lock (seen in
pg_stat_activity) rather than read around the first; released, the first commits and the second
answers as it would have sequentially. Without a shared lock both succeeded: a node read a table that
no longer existed, or a workflow data source pointed at a deleted source (500 at COMMIT).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections

from datasources.models import DataSource
from datasources.services import audit
from tests.support.workflows import WF, add_node, add_source, create_source, create_workflow
from workflows.models import NodeInput, Workflow, WorkflowDataSource

HELD = "held"  # the name of the thread whose request is held


class Hold:
    """Holds the request of the thread named HELD right after its audit event, until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reached, self.released = threading.Event(), threading.Event()
        real = audit.record

        def record(*args: Any, **kwargs: Any) -> Any:
            result = real(*args, **kwargs)
            if threading.current_thread().name == HELD and not self.reached.is_set():
                self.reached.set()
                assert self.released.wait(30), "never released"
            return result

        monkeypatch.setattr(audit, "record", record)


def _start(name: str, call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(call())
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread, results


def _waits_for_a_lock(thread: threading.Thread, timeout: float = 10.0) -> bool:
    """Whether ``thread``'s request waits for a lock (False once it answered without waiting)."""
    deadline = time.monotonic() + timeout
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline and thread.is_alive():
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           "AND datname = current_database()")
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.01)
    return False


def _race(monkeypatch: pytest.MonkeyPatch, first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    """``first`` held inside its transaction while ``second`` starts; both answers."""
    hold = Hold(monkeypatch)
    held, first_result = _start(HELD, first)
    assert hold.reached.wait(10), "the first request never reached its audit event"
    other, second_result = _start("second", second)
    try:
        assert _waits_for_a_lock(other), "the second request did not wait for the first one's lock"
    finally:
        hold.released.set()
        held.join(20)
        other.join(20)
    assert first_result and second_result, "a request raised"
    return first_result[0], second_result[0]


# --- an output table read by another workflow vs. its removal -------------------------------------


@pytest.fixture
def two_flows(needs_postgres, transactional_db, org, make_client):
    """Workflow A: a node outputting table t. Workflow B reads A; node 'idle' of B reads nothing."""
    api = make_client(org)
    a = create_workflow(api, "A")
    producer = add_node(api, a, "producer", [], output={"name": "t", "columns": []})
    b = create_workflow(api, "B")
    wds = add_source(api, b, source_workflow="acme.a")
    idle = add_node(api, b, "idle", [])
    clients = [make_client(org), make_client(org)]
    return {"a": a, "b": b, "producer": producer, "wds": wds, "idle": idle, "clients": clients}


def _add_reader(flows: dict, how: str) -> Callable[[], Any]:
    client, inputs = flows["clients"][0], [{"data_source": flows["wds"]["id"], "table": "t"}]
    if how == "post":
        return lambda: client.post(f"{WF}{flows['b']['id']}/nodes/", {"name": "reader", "inputs": inputs},
                                   format="json")
    return lambda: client.patch(f"{WF}{flows['b']['id']}/nodes/{flows['idle']['id']}/", {"inputs": inputs},
                                format="json")


def _remove_table(flows: dict, how: str) -> Callable[[], Any]:
    client, url = flows["clients"][1], f"{WF}{flows['a']['id']}/nodes/{flows['producer']['id']}/"
    if how == "delete":
        return lambda: client.delete(url)
    return lambda: client.patch(url, {"output_table": None}, format="json")


READERS_AND_REMOVALS = [("post", "delete"), ("patch", "delete"), ("post", "drop_output")]


@pytest.mark.parametrize(("reader", "removal"), READERS_AND_REMOVALS)
def test_a_reader_added_first_makes_the_removal_of_its_table_a_409(two_flows, monkeypatch, reader, removal):
    added, removed = _race(monkeypatch, _add_reader(two_flows, reader), _remove_table(two_flows, removal))
    assert added.status_code in (200, 201), added.json()
    assert removed.status_code == 409, removed.status_code
    assert "B / " in removed.json()["message"]
    assert NodeInput.objects.filter(table_reference_id=two_flows["producer"]["reference_id"]).count() == 1


@pytest.mark.parametrize(("reader", "removal"), READERS_AND_REMOVALS)
def test_a_table_removed_first_is_not_a_table_for_the_reader(two_flows, monkeypatch, reader, removal):
    removed, added = _race(monkeypatch, _remove_table(two_flows, removal), _add_reader(two_flows, reader))
    assert removed.status_code in (200, 204), removed.status_code
    assert added.status_code == 400, added.json()
    assert added.json()["errors"]["inputs.0.table"] == ["'t' is not a table of this source."]
    assert not NodeInput.objects.filter(table_reference_id=two_flows["producer"]["reference_id"]).exists()


# --- a source added to a workflow vs. the source's deletion ---------------------------------------


@pytest.fixture
def sources(needs_postgres, transactional_db, org, make_client):
    api = make_client(org)
    shop = create_source(api, "Shop", "shop.db", "CREATE TABLE items (id INTEGER);")
    flow = create_workflow(api, "Flow")
    upstream = create_workflow(api, "Upstream")
    return {"shop": shop, "flow": flow, "upstream": upstream, "clients": [make_client(org), make_client(org)]}


def _add(setup: dict, kind: str) -> Callable[[], Any]:
    body = {"source_data_source": "acme.shop"} if kind == "data_source" else {"source_workflow": "acme.upstream"}
    return lambda: setup["clients"][0].post(f"{WF}{setup['flow']['id']}/data-sources/", body, format="json")


def _delete(setup: dict, kind: str) -> Callable[[], Any]:
    url = (f"/api/v1/data-sources/{setup['shop']['id']}/" if kind == "data_source"
           else f"{WF}{setup['upstream']['id']}/")
    return lambda: setup["clients"][1].delete(url)


def _exists(setup: dict, kind: str) -> bool:
    if kind == "data_source":
        return DataSource.objects.filter(pk=setup["shop"]["id"]).exists()
    return Workflow.objects.filter(pk=setup["upstream"]["id"]).exists()


@pytest.mark.parametrize("kind", ["data_source", "workflow"])
def test_a_source_added_first_makes_its_deletion_a_409(sources, monkeypatch, kind):
    added, deleted = _race(monkeypatch, _add(sources, kind), _delete(sources, kind))
    assert added.status_code == 201, added.json()
    assert deleted.status_code == 409 and deleted.json()["code"] == "CONFLICT", deleted.status_code
    assert _exists(sources, kind) and WorkflowDataSource.objects.count() == 1


@pytest.mark.parametrize("kind", ["data_source", "workflow"])
def test_a_source_deleted_first_is_a_404_for_the_add_not_a_500(sources, monkeypatch, kind):
    deleted, added = _race(monkeypatch, _delete(sources, kind), _add(sources, kind))
    assert deleted.status_code == 204, deleted.status_code
    assert added.status_code == 404 and added.json()["code"] == "NOT_FOUND", added.status_code
    assert not _exists(sources, kind) and not WorkflowDataSource.objects.exists()


# --- the lock order: organization first -------------------------------------------------------------


def test_a_workflow_update_does_not_deadlock_with_a_writer_holding_the_organization(
        needs_postgres, transactional_db, org, make_client, monkeypatch):
    """A writer that holds the organization row (FOR UPDATE, as a repoint onto a workflow takes it)
    and then waits for a workflow must not deadlock with that workflow's update: the update takes the
    organization first. Taken after the workflow instead, the update's COMMIT checks its audit event's
    foreign key to the organization (a key-share lock the writer's FOR UPDATE blocks) while the
    writer waits for the workflow the update holds: PostgreSQL aborts one of them."""
    from django.db import transaction

    from organizations.models import Organization

    flow = create_workflow(make_client(org), "Flow")
    client = make_client(org)

    def writer() -> str:
        with transaction.atomic():
            Organization.objects.select_for_update().get(pk=org.pk)
            Workflow.objects.select_for_update().get(pk=flow["id"])
        return "committed"

    updated, written = _race(monkeypatch, lambda: client.patch(f"{WF}{flow['id']}/", {"description": "d"},
                                                                format="json"), writer)
    assert updated.status_code == 200 and written == "committed"
