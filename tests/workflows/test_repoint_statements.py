"""A repoint's statements and answer (issue 18): a change locks first (no unlocked pre-reads), reads
the new source with its snapshot id and the duplicate check in one statement and both sources'
tables in another, writes in one statement on PostgreSQL (``core.write_batch``), and answers with
the written instance, which renders as a fresh read would.

``transactional_db``: the write's ``atomic()`` is then a real transaction (BEGIN/COMMIT are counted,
as bench/queries.py counts them; no SAVEPOINT).
"""

from __future__ import annotations

import pytest
from django.db import connection

from organizations.models import AuditEvent
from tests.support.workflows import (
    WF,
    add_node,
    add_source,
    change_schema,
    create_source,
    create_workflow,
    tables,
    wds_url,
)
from workflows.models import Node, NodeInput, WorkflowDataSource

SHOP = "CREATE TABLE old_table (id INTEGER, v TEXT); CREATE TABLE keep (id INTEGER);"


@pytest.fixture
def client(transactional_db, org):
    from tests.conftest import client_for

    return client_for(org)


@pytest.fixture
def flow(client):
    """Shop v1 and v2 (old_table renamed new_table), a workflow reading v1 through two nodes."""
    source = create_source(client, "Shop", "shop.db", SHOP)
    v1 = tables(client, source, 1)
    change_schema(client, source, "shop.db", "ALTER TABLE old_table RENAME TO new_table;")
    workflow = create_workflow(client, "Flow")
    wds = add_source(client, workflow, source_data_source="acme.shop:v1")
    add_node(client, workflow, "n1", [(wds, "old_table"), (wds, "keep")])
    add_node(client, workflow, "n2", [(wds, "keep")])
    return {"source": source, "workflow": workflow, "wds": wds, "url": wds_url(workflow, wds), "v1": v1,
            "v2": tables(client, source, 2)}


def _bodies(flow: dict) -> tuple[dict, dict]:
    ref = flow["source"]["reference_id"]
    old, new = flow["v1"]["old_table"], flow["v2"]["new_table"]
    return ({"source_data_source": f"acme.shop:{ref}:v2", "mapped_tables": {f"old_table:{old}": f"new_table:{new}"}},
            {"source_data_source": f"acme.shop:{ref}:v1", "mapped_tables": {f"new_table:{new}": f"old_table:{old}"}})


def test_a_repoint_is_nine_statements_and_answers_as_a_fresh_read(client, flow, django_assert_num_queries):
    assert client.get(flow["url"]).status_code == 200  # caches the token
    # BEGIN; the workflow locked (a repoint onto a data source leaves the organization unlocked); the
    # workflow data source locked with all it renders and its snapshot's id; the new source (locked)
    # with its snapshot's id and "already a data source?"; the node inputs (their node ids only, on
    # PostgreSQL); both snapshots' tables; UPDATE the nodes' versions
    # (answering their reference ids, for the audit, on PostgreSQL); then, as one statement of
    # data-modifying CTEs on PostgreSQL (four elsewhere): UPDATE the inputs, UPDATE the data source,
    # INSERT the audit event, INSERT the outbox event; COMMIT. No re-read.
    expected = 9 if connection.vendor == "postgresql" else 12
    for body in _bodies(flow):
        with django_assert_num_queries(expected):
            response = client.patch(flow["url"], body, format="json")
        assert response.status_code == 200, response.json()
        fresh = client.get(flow["url"])
        assert response.json() == fresh.json() and response["ETag"] == fresh["ETag"]
        nodes = client.get(f"{WF}{flow['workflow']['id']}/nodes/").json()["results"]
        assert {(n["updated_at"], n["updated_by"]["name"]) for n in nodes} == {
            (fresh.json()["updated_at"], "t")}  # both readers, stamped as the data source
    events = AuditEvent.objects.filter(action="repoint").order_by("id")
    assert events.count() == 2
    readers = dict(Node.objects.values_list("name", "reference_id"))
    for event in events:  # the audit's plan names each table's readers by reference id, as a dry run's does
        nodes = {t["old"]["name"]: t["nodes"] for t in event.detail["plan"]["tables"]}
        assert sorted(nodes["keep"]) == sorted(readers.values()) and len(nodes) == 2
        assert [nodes[name] for name in nodes if name != "keep"] == [[readers["n1"]]]
    assert sorted(Node.objects.values_list("version", flat=True)) == [3, 3]  # created, then two repoints
    assert sorted(NodeInput.objects.values_list("table_name", flat=True)) == ["keep", "keep", "old_table"]


def test_a_repoint_onto_a_workflow_answers_as_a_fresh_read(client, flow, django_assert_max_num_queries):
    upstream = create_workflow(client, "Upstream")
    add_node(client, upstream, "out", [], output={"name": "old_table", "columns": []})
    add_node(client, upstream, "out2", [], output={"name": "keep", "columns": []})
    # As above, and the organization locked first (cycle checks are serialised), the workflow found by
    # name (its organization's names, then the one picked), one step of the cycle walk, the duplicate
    # check (its own EXISTS), the old snapshot's tables and the workflow's output tables apart.
    with django_assert_max_num_queries(14 if connection.vendor == "postgresql" else 17):
        response = client.patch(flow["url"], {"source_workflow": "acme.upstream"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == client.get(flow["url"]).json()
    assert response.json()["source"]["type"] == "workflow"


def test_the_checks_still_answer_in_order_and_change_nothing(client, other_org, flow):
    from tests.conftest import client_for

    to_v2, _ = _bodies(flow)
    other = create_workflow(client, "Other")
    assert client.patch(wds_url(other, flow["wds"]), to_v2, format="json").status_code == 404  # a mismatched pair
    foreign = client_for(other_org).patch(flow["url"], to_v2, format="json")
    assert foreign.status_code == 404 and foreign.json()["message"] == "Workflow not found."
    stale = client.patch(flow["url"], {**to_v2, "source_data_source": "acme.nope"}, format="json",
                         HTTP_IF_MATCH='"1-99"')
    assert stale.status_code == 412  # before the unknown source's 404
    assert client.patch(flow["url"], {**to_v2, "source_data_source": "acme.nope"}, format="json").status_code == 404
    missing = client.patch(flow["url"], {"source_data_source": "acme.shop:v9"}, format="json")
    assert missing.status_code == 400 and "source_data_source" in missing.json()["errors"]
    add_source(client, flow["workflow"], source_data_source="acme.shop:v2")
    duplicate = client.patch(flow["url"], to_v2, format="json")
    assert duplicate.status_code == 409
    assert duplicate.json()["errors"] == {"source_data_source": ["Already a data source."]}
    by_name = client.patch(flow["url"], {**to_v2, "source_data_source": "acme.shop:v2"}, format="json")
    assert by_name.status_code == 409  # the name path reads the same check
    add_source(client, flow["workflow"], source_data_source="acme.shop:sample")  # current, sample
    assert client.patch(flow["url"], {"source_data_source": "acme.shop:sample"}, format="json").status_code == 409
    assert WorkflowDataSource.objects.get(pk=flow["wds"]["id"]).source_version == 1
    assert set(NodeInput.objects.values_list("table_name", flat=True)) == {"old_table", "keep"}
    assert not AuditEvent.objects.filter(action="repoint").exists()
    current = client.patch(flow["url"], {"source_data_source": "acme.shop", "mapped_tables": to_v2["mapped_tables"]},
                           format="json")
    assert current.status_code == 200, current.json()  # current, not a sample: no other points at it
    assert current.json()["source"]["version"] == "current"
