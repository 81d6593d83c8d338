"""Which changes write which events to the outbox, in the transaction of the change (issue 20)."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from eventlog.models import Event
from eventlog.services import envelope, publish
from tests.support.workflows import add_node, add_source, change_schema, create_source, create_workflow, wds_url

DS = "/api/v1/data-sources/"
CANARY = "canary-Secret-5e1f"


def events(type_: str | None = None) -> list[Event]:
    qs = Event.objects.order_by("id")
    return list(qs.filter(type=type_) if type_ else qs)


def no_secret_in(event: Event) -> None:
    assert CANARY not in json.dumps(envelope(event))


@pytest.mark.django_db
def test_create_update_delete_each_publish_one_event_with_field_names_only(api, org, sqlite_file):
    created = api.post(DS, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file},
                            "description": CANARY}, format="json")
    assert created.status_code == 201, created.json()
    ds = created.json()
    [event] = events("data_source.created")
    assert event.organization_id == org.pk and event.public_id.startswith("msg_")
    assert event.data["data_source"] == {"id": ds["id"], "reference_id": ds["reference_id"], "name": "Shop",
                                         "type": "sqlite"}
    assert "description" in event.data["changed"] and event.data["actor"].startswith("token:")
    no_secret_in(event)

    patched = api.patch(f"{DS}{ds['id']}/", {"description": "new words", "tags": ["a"]}, format="json")
    assert patched.status_code == 200, patched.json()
    [event] = events("data_source.updated")
    assert event.data["changed"] == ["description", "tags"] and event.data["method"] == "PATCH"
    assert event.data["version"] == patched.json()["version"]

    same = api.patch(f"{DS}{ds['id']}/", {"description": "new words"}, format="json")
    assert same.status_code == 200
    assert len(events("data_source.updated")) == 1  # nothing changed: no event

    assert api.delete(f"{DS}{ds['id']}/").status_code == 204
    [event] = events("data_source.deleted")
    assert event.data["data_source"]["id"] == ds["id"]
    assert [e.type for e in events()] == ["data_source.created", "data_source.updated", "data_source.deleted"]


@pytest.mark.django_db
def test_a_refused_change_publishes_nothing(api, sqlite_file):
    a = api.post(DS, {"name": "A", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json").json()
    api.post(DS, {"name": "B", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    before = Event.objects.count()
    assert api.patch(f"{DS}{a['id']}/", {"name": "b"}, format="json").status_code == 409  # name taken
    assert api.patch(f"{DS}{a['id']}/", {"query_timeout": -1}, format="json").status_code == 400
    assert api.patch(f"{DS}{a['id']}/", {"description": "x"}, format="json", HTTP_IF_MATCH='"1-99"').status_code == 412
    assert Event.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_an_event_of_a_rolled_back_transaction_is_gone_and_listeners_are_not_told(org):
    from eventlog import listeners

    told: list[int] = []
    listeners.register(told.append)
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            publish(organization_id=org.pk, type="data_source.deleted", data={})
            raise RuntimeError("the change fails after the event was written")
        assert Event.objects.count() == 0 and told == []
        with transaction.atomic():
            publish(organization_id=org.pk, type="data_source.deleted", data={})
            assert told == []  # not before the commit
        assert told == [org.pk] and Event.objects.count() == 1
    finally:
        listeners._listeners.remove(told.append)


@pytest.mark.django_db
def test_an_unknown_event_type_is_a_programming_error(org):
    with pytest.raises(ValueError):
        publish(organization_id=org.pk, type="data_source.exploded", data={})


@pytest.mark.django_db
def test_a_failed_connection_test_publishes_test_failed_and_no_update(api, pg_source_data, allow_loopback):
    created = api.post(DS, pg_source_data, format="json")
    assert created.status_code == 201, created.json()
    ds = created.json()
    wrong = api.patch(f"{DS}{ds['id']}/", {"credentials": {"password": CANARY}}, format="json")
    assert wrong.status_code == 400 and wrong.json()["code"] == "CREDENTIAL_TEST_FAILED"
    [event] = events("data_source.test_failed")
    assert event.data["stage"] == "auth" and event.data["code"] == "CREDENTIAL_TEST_FAILED"
    assert event.data["trigger"] == "patch" and event.data["data_source"]["id"] == ds["id"]
    assert events("data_source.updated") == []
    no_secret_in(event)
    # The stored configuration's test (POST /test/) that fails is an event too (the server refuses now).
    from datasources.models import Credential
    from datasources.services.credentials import write_secrets

    source = Credential.objects.get(data_source_id=ds["id"]).data_source
    write_secrets(source, {"password": CANARY})
    tested = api.post(f"{DS}{ds['id']}/test/")
    assert tested.status_code in (200, 400), tested.json()
    second = events("data_source.test_failed")[-1]
    assert len(events("data_source.test_failed")) == 2 and second.data["trigger"] == "test"
    assert second.data["code"] == "CREDENTIAL_TEST_FAILED" == tested.json()["code"], second.data  # was ""
    no_secret_in(second)


SHOP = "CREATE TABLE orders (id INTEGER, total REAL, note TEXT); CREATE TABLE keep (id INTEGER);" \
       "CREATE TABLE spare (id INTEGER);"


@pytest.mark.django_db
def test_a_new_snapshot_publishes_the_drift_and_the_workflows_it_touches(api):
    source = create_source(api, "Shop", "shop.db", SHOP)
    assert events("data_source.schema_changed") == []  # the first snapshot is no drift
    workflow = create_workflow(api, "Flow")
    wds = add_source(api, workflow, source_data_source="acme.shop")
    node = add_node(api, workflow, "reads_orders", [(wds, "orders")])
    add_node(api, workflow, "reads_keep", [(wds, "keep")])
    other = create_workflow(api, "Unrelated")
    add_node(api, other, "reads_spare", [(add_source(api, other, source_data_source="acme.shop"), "spare")])

    version = change_schema(api, source, "shop.db",
                            "DROP TABLE spare; ALTER TABLE orders DROP COLUMN note; CREATE TABLE fresh (id INT);")
    [event] = events("data_source.schema_changed")
    data = event.data
    assert (data["from_version"], data["to_version"]) == (1, version)
    assert [t["name"] for t in data["tables_added"]] == ["fresh"]
    assert [t["name"] for t in data["tables_removed"]] == ["spare"]
    assert [(t["name"], t["columns_removed"]) for t in data["tables_changed"]] == [("orders", ["note"])]
    assert data["tables_removed_count"] == 1 and data["truncated"] is False
    by_name = {w["name"]: w for w in data["affected_workflows"]}
    assert set(by_name) == {"Flow", "Unrelated"}  # "reads_keep" alone would not make Flow affected
    flow = by_name["Flow"]
    assert flow["id"] == workflow["id"] and [n["name"] for n in flow["nodes"]] == ["reads_orders"]
    assert flow["nodes"][0]["reference_id"] == node["reference_id"]
    assert [(t["name"], t["change"], t["columns_removed"]) for t in flow["tables"]] == [("orders", "changed", ["note"])]
    assert [(t["name"], t["change"]) for t in by_name["Unrelated"]["tables"]] == [("spare", "removed")]

    api.post(f"/api/v1/data-sources/{source['id']}/sync/")  # the same schema again: no new snapshot, no event
    assert len(events("data_source.schema_changed")) == 1
    assert data["tenancy"] is None  # no tenancy settings


@pytest.mark.django_db
def test_a_drift_that_breaks_the_tenancy_settings_says_so(api):
    source = create_source(api, "Shop", "shop.db", "CREATE TABLE clients (id INTEGER, cid INTEGER, note TEXT);")
    tenancy = {"level": "TABLE", "client_column_type": "NUMBER", "schema": "main", "table": "clients",
               "client_column": "cid", "primary_key_column": "id"}
    assert api.put(f"/api/v1/data-sources/{source['id']}/tenancy/", tenancy, format="json").status_code == 200
    change_schema(api, source, "shop.db", "ALTER TABLE clients DROP COLUMN note;")
    assert events("data_source.schema_changed")[-1].data["tenancy"] == {"breaks": False, "errors": {}}
    change_schema(api, source, "shop.db", "ALTER TABLE clients DROP COLUMN cid;")
    assert events("data_source.schema_changed")[-1].data["tenancy"] == {
        "breaks": True, "errors": {"tenancy_settings.client_column": ["No column 'cid' in clients."]}}


@pytest.mark.django_db
def test_a_repoint_publishes_workflow_repointed(api):
    a = create_source(api, "Shop", "shop.db", SHOP)
    b = create_source(api, "Shop2", "shop2.db", SHOP)
    workflow = create_workflow(api, "Flow")
    wds = add_source(api, workflow, source_data_source="acme.shop")
    add_node(api, workflow, "n", [(wds, "orders")])
    response = api.patch(wds_url(workflow, wds), {"source_data_source": "acme.shop2"}, format="json")
    assert response.status_code == 200, response.json()
    [event] = events("workflow.repointed")
    data = event.data
    assert data["workflow"] == {"id": workflow["id"], "reference_id": workflow["reference_id"], "name": "Flow"}
    assert (data["from"]["id"], data["to"]["id"]) == (a["id"], b["id"])
    assert data["from"]["type"] == "data_source" and data["inputs_rewritten"] >= 0
    dry = api.patch(wds_url(workflow, wds) + "?dry_run=true", {"source_data_source": "acme.shop"}, format="json")
    assert dry.status_code == 200 and len(events("workflow.repointed")) == 1


@pytest.mark.django_db
def test_an_update_event_names_the_method_the_client_sent(api, sqlite_file):
    """The tenancy endpoint's PUT (and an adapter's PUT) is a merge inside: the event says PUT, as the
    audit record does (it said PATCH)."""
    ds = api.post(DS, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json").json()
    assert api.put(f"{DS}{ds['id']}/tenancy/", {"level": "DATABASE"}, format="json").status_code == 200
    assert [e.data["method"] for e in events("data_source.updated")] == ["PUT"]
    body = {"name": "Shop", "connection": {"path": sqlite_file}, "description": "put"}
    assert api.put(f"{DS}{ds['id']}/", body, format="json").status_code == 200
    assert api.patch(f"{DS}{ds['id']}/", {"description": "patch"}, format="json").status_code == 200
    assert [e.data["method"] for e in events("data_source.updated")] == ["PUT", "PUT", "PATCH"]


@pytest.mark.django_db
def test_the_event_list_refuses_a_type_given_twice(api):
    twice = api.get("/api/v1/events/?type=workflow.repointed&type=data_source.created")
    assert twice.status_code == 400 and twice.json()["errors"] == {"type": ["Give this parameter once (one value)."]}
