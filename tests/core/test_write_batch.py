"""core.write_batch: the writers' INSERTs queued inside the block run as one statement at its end on
PostgreSQL (ids, foreign keys between them, signals, rollback), a no-op elsewhere; and a PATCH
writes the same audit event, revision and outbox event with the batch as without it."""

from __future__ import annotations

import contextlib

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models.signals import post_save

from core import write_batch
from datasources.models import DataSourceRevision
from eventlog.models import Event
from eventlog.services import publish
from organizations import audit
from organizations.actors import Actor
from organizations.models import AuditEvent

postgresql_only = pytest.mark.skipif("connection.vendor != 'postgresql'")
URL = "/api/v1/data-sources/"


TABLE = {"level": "TABLE", "client_column_type": "NUMBER", "schema": "main", "table": "items",
         "client_column": "id", "primary_key_column": "id"}


def _source(api, sqlite_file, name: str = "Shop") -> dict:
    body = {"name": name, "type": "sqlite", "connection": {"path": sqlite_file},
            "tenancy_settings": {"level": "DATABASE"}}
    response = api.post(f"{URL}?test_connection=false", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def _postgresql_source(api, name: str) -> dict:
    body = {"name": name, "type": "postgresql", "connection": {"host": "db.example.com", "database": "d",
            "username": "u"}, "credentials": {"password": "old"}}
    response = api.post(f"{URL}?test_connection=false", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def target(db, api, sqlite_file):
    """A data source to audit (an audit event's target has an organization)."""
    from datasources.models import DataSource

    return DataSource.objects.get(pk=_source(api, sqlite_file, "Target")["id"])


@postgresql_only
def test_queued_inserts_run_as_one_statement_with_ids_refs_and_signals(org, target, django_assert_num_queries):
    saved: list[tuple[type, bool]] = []

    def listener(sender, instance, created, **kwargs):
        saved.append((sender, created, instance.pk is not None))

    post_save.connect(listener, sender=AuditEvent, dispatch_uid="test-write-batch")
    try:
        with transaction.atomic(), django_assert_num_queries(1), write_batch.write_batch():
            event = audit.record(actor=Actor.system(org, origin="test"), action="update", target=target,
                                 changes={"name": {"old": "a", "new": "100%"}})
            outbox = publish(organization_id=org.pk, type="data_source.updated", data={"n": "50%"})
            assert event.pk is None and outbox.pk is None and write_batch.active()
            assert isinstance(write_batch.ref_or_pk(event), write_batch.Ref)
            seen = []
            write_batch.queue("UPDATE organizations_auditevent SET detail = %(detail)s::jsonb WHERE id = %(id)s "
                              "AND %(pct)s LIKE '%%' RETURNING id, detail",
                              {"detail": '{"x": 1}', "id": write_batch.ref_or_pk(event), "pct": "%"},
                              on_rows=seen.append)
    finally:
        post_save.disconnect(dispatch_uid="test-write-batch", sender=AuditEvent)
    assert event.pk and outbox.pk and not event._state.adding
    assert saved == [(AuditEvent, True, True)]
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.changes == {"name": {"old": "a", "new": "100%"}} and stored.target_id == target.pk
    # All statements of a batch see one snapshot: the UPDATE of the new row found nothing to update.
    assert seen == [[]] and stored.detail == {}
    assert Event.objects.get(pk=outbox.pk).data == {"n": "50%"}


@postgresql_only
def test_a_foreign_key_to_a_queued_instance_is_written_as_its_id(org, target):
    with transaction.atomic(), write_batch.write_batch():
        event = audit.record(actor=Actor.system(org, origin="test"), action="update", target=target)
        revision = DataSourceRevision(organization_id=org.pk, data_source_id=target.pk, number=99, action="update",
                                      audit_event=event, config={}, secret_names=[])
        write_batch.queue_insert(revision)
        assert revision.audit_event_id is None
    assert revision.pk and revision.audit_event_id == event.pk
    assert DataSourceRevision.objects.get(pk=revision.pk).audit_event_id == event.pk


@postgresql_only
def test_an_exception_drops_the_queue_and_a_nested_block_joins_the_outer(org, target, django_assert_num_queries):
    before = AuditEvent.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic(), write_batch.write_batch():
        audit.record(actor=Actor.system(org, origin="test"), action="update", target=target)
        raise RuntimeError
    assert AuditEvent.objects.count() == before and not write_batch.active()
    with transaction.atomic(), django_assert_num_queries(1), write_batch.write_batch():
        first = audit.record(actor=Actor.system(org, origin="test"), action="update", target=target)
        with write_batch.write_batch():
            second = audit.record(actor=Actor.system(org, origin="test"), action="update", target=target)
        assert second.pk is None  # the outer block runs it
    assert AuditEvent.objects.count() == before + 2 and first.pk and second.pk


@postgresql_only
def test_an_unread_statement_runs_in_the_batch_and_sends_nothing_back(org, target, django_assert_num_queries):
    from datasources.models import DataSource

    table = connection.ops.quote_name(DataSource._meta.db_table)
    with transaction.atomic(), django_assert_num_queries(1) as captured, write_batch.write_batch():
        write_batch.queue_unread(f"UPDATE {table} SET description = %s WHERE id = %s", ["unread", target.pk])
        event = audit.record(actor=Actor.system(org, origin="test"), action="update", target=target)
    sql = captured.captured_queries[0]["sql"]
    assert "RETURNING" not in sql.split("_wb1")[0] and "SELECT NULL" in sql  # its rows: none asked, none sent
    assert DataSource.objects.get(pk=target.pk).description == "unread" and event.pk  # the rest as before
    with pytest.raises(RuntimeError):
        write_batch.queue_unread("UPDATE x SET y = 1")  # outside a block


@postgresql_only
def test_a_queued_update_writes_its_fields_and_fails_as_save_does_without_a_row(org, target):
    from datasources.models import DataSource

    updated: list[frozenset] = []

    def listener(sender, instance, created, update_fields, **kwargs):
        updated.append(update_fields)

    post_save.connect(listener, sender=DataSource, dispatch_uid="test-write-batch-update")
    try:
        with transaction.atomic(), write_batch.write_batch():
            target.description, target.name = "queued", "not written"
            before = target.updated_at
            write_batch.queue_update(target, ["description", "updated_at"])
    finally:
        post_save.disconnect(dispatch_uid="test-write-batch-update", sender=DataSource)
    stored = DataSource.objects.get(pk=target.pk)
    assert stored.description == "queued" and stored.name == "Target" and stored.updated_at > before
    assert stored.updated_at == target.updated_at and updated == [frozenset({"description", "updated_at"})]
    gone = DataSource(pk=10**9, organization=org)
    with pytest.raises(DatabaseError), transaction.atomic(), write_batch.write_batch():
        write_batch.queue_update(gone, ["description"])


def test_a_rename_is_updated_at_once_and_a_taken_name_is_still_a_conflict(db, api, sqlite_file):
    one, two = _source(api, sqlite_file, "One"), _source(api, sqlite_file, "Two")
    response = api.patch(f"{URL}{one['id']}/", {"name": "TWO", "description": "x"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "CONFLICT"
    assert api.get(f"{URL}{one['id']}/").json()["version"] == one["version"]
    assert api.patch(f"{URL}{two['id']}/", {"name": "Three"}, format="json").json()["name"] == "Three"


def test_elsewhere_the_block_does_nothing(org, target):
    with write_batch.write_batch():
        event = audit.record(actor=Actor.system(org, origin="test"), action="update", target=target)
        assert write_batch.active() == (connection.vendor == "postgresql")
        if connection.vendor != "postgresql":
            assert event.pk is not None  # written at once, as without the block
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    with pytest.raises(RuntimeError):
        write_batch.queue("SELECT 1")


def _written(ds_id: int) -> tuple[dict, dict, dict]:
    """The newest audit event, revision and outbox event of a source, without ids and times."""
    event = AuditEvent.objects.filter(target_type="datasources.datasource", target_id=ds_id).order_by("-id")[0]
    revision = DataSourceRevision.objects.filter(data_source_id=ds_id).order_by("-number")[0]
    outbox = Event.objects.filter(data__data_source__id=ds_id).order_by("-id")[0]
    assert revision.audit_event_id == event.pk
    skip = {"id", "created_at", "target_id", "target_repr", "data_source_id", "audit_event_id", "request_id",
            "occurred_at", "public_id", "ciphertext"}
    plain = [{k: v for k, v in vars(row).items() if k not in skip and not k.startswith("_")}
             for row in (event, revision, outbox)]
    plain[1]["config"] = {k: v for k, v in plain[1]["config"].items() if k != "name"}
    if "name" in plain[0]["changes"]:
        del plain[0]["changes"]["name"]
    plain[2]["data"]["data_source"] = {k: v for k, v in plain[2]["data"]["data_source"].items()
                                       if k not in ("id", "name", "reference_id")}
    return plain[0], plain[1], plain[2]


@pytest.mark.parametrize("body", [
    {"description": "d", "tags": ["a", "b"]},
    {"tenancy_settings": TABLE},
    {"credentials": {"password": "new"}, "description": "with a secret"},
    {"credentials": {"password": None}},
])
def test_a_patch_writes_the_same_rows_with_the_batch_as_without(db, api, sqlite_file, monkeypatch, body):
    if "credentials" in body:
        batched, plain = _postgresql_source(api, "One"), _postgresql_source(api, "Two")
    else:
        batched, plain = _source(api, sqlite_file, "One"), _source(api, sqlite_file, "Two")
    path = "{}{}/?test_connection=false"
    response = api.patch(path.format(URL, batched["id"]), body, format="json")
    assert response.status_code == 200, response.json()
    monkeypatch.setattr("datasources.services.datasources.write_batch", contextlib.nullcontext)
    assert api.patch(path.format(URL, plain["id"]), body, format="json").status_code == 200
    assert _written(batched["id"]) == _written(plain["id"])
    revision = DataSourceRevision.objects.filter(data_source_id=batched["id"]).order_by("-number")[0]
    assert revision.number == 2 and revision.audit_event_id


@postgresql_only
def test_a_source_without_a_revision_gets_its_first_after_the_batch(db, org, api, sqlite_file):
    ds = _source(api, sqlite_file)
    DataSourceRevision.objects.filter(data_source_id=ds["id"]).delete()
    assert api.patch(f"{URL}{ds['id']}/", {"description": "x"}, format="json").status_code == 200
    revision = DataSourceRevision.objects.get(data_source_id=ds["id"])
    assert revision.number == 1 and revision.config["description"] == "x" and revision.audit_event_id
    assert revision.config["tenancy_settings"]["level"] == "DATABASE"
