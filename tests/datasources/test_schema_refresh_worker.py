"""Scheduled and queued schema refreshes: the beat tick's choice of due sources and the tick
itself on every application database (tasks run in this process, as a worker runs them), then
real Celery workers against the real Redis (PostgreSQL only: the worker processes must see the
test database, which on SQLite lives in this process's memory).
"""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import app as celery_app
from datasources.models import DataSource, SchemaSnapshot
from datasources.services.connection import STALE_CLAIM
from datasources.tasks import due_data_sources, enqueue_refresh, schema_refresh_tick
from tests.support.workers import forget_broker_connections, serve_worker_pool, wait_for

URL = "/api/v1/data-sources/"


@pytest.fixture
def workers(transactional_db, tmp_path, settings):
    yield from serve_worker_pool(tmp_path)


@pytest.fixture
def eager_tasks():
    """Tasks run in this process when sent, exceptions propagated: no worker. (Celery still opens a
    producer to check the serializer: on the in-memory transport, then forgotten.)"""
    keys = ("task_always_eager", "task_eager_propagates", "broker_url")
    old = {k: celery_app.conf.get(k) for k in keys}
    celery_app.conf.update(task_always_eager=True, task_eager_propagates=True, broker_url="memory://")
    forget_broker_connections()
    yield
    celery_app.conf.update(**old)
    forget_broker_connections()


def _sqlite(root: str, name: str, ddl: str) -> str:
    with sqlite3.connect(os.path.join(root, name)) as db:
        db.executescript(ddl)
    return name


def _source(api, name, path, **extra):
    body = {"name": name, "type": "sqlite", "connection": {"path": path}, **extra}
    response = api.post(f"{URL}?test_connection=false", body, format="json")
    assert response.status_code == 201, response.json()
    return DataSource.objects.get(pk=response.json()["id"])


def test_due_sources_are_chosen_by_their_own_interval_on_every_database(make_client, org, _file_root):
    api = make_client(org)
    path = _sqlite(_file_root, "due.db", "CREATE TABLE t (id INTEGER);")
    now = timezone.now()

    def source(name, checked_ago, interval=60, **fields):
        ds = _source(api, name, path, schema_auto_refresh=True, schema_refresh_interval=interval)
        checked = None if checked_ago is None else now - checked_ago
        DataSource.objects.filter(pk=ds.pk).update(schema_checked_at=checked, **fields)
        return ds.pk

    due = {
        source("never", None),
        source("exactly one interval", timedelta(seconds=60)),
        source("just over", timedelta(seconds=60, microseconds=1)),
        source("an hour", timedelta(hours=1, seconds=1), interval=3600),
        source("thirty days", timedelta(days=30, seconds=1), interval=2_592_000),
        source("abandoned claim", timedelta(days=2), schema_status="refreshing",
               schema_status_at=now - STALE_CLAIM - timedelta(seconds=1)),
    }
    source("just under", timedelta(seconds=59, microseconds=999_999))
    source("fresh for its interval", timedelta(seconds=61), interval=3600)
    source("almost thirty days", timedelta(days=29, hours=23), interval=2_592_000)
    source("queued", timedelta(days=2), schema_status="pending", schema_status_at=now - timedelta(seconds=5))
    source("refreshing", None, schema_status="refreshing", schema_status_at=now - timedelta(minutes=1))
    off = _source(api, "off", path, schema_auto_refresh=False)
    DataSource.objects.filter(pk=off.pk).update(schema_checked_at=now - timedelta(days=9))
    assert set(due_data_sources(now)) == due


def test_beat_tick_refreshes_the_due_sources_on_every_database(eager_tasks, make_client, org, _file_root):
    api = make_client(org)
    path = _sqlite(_file_root, "beat.db", "CREATE TABLE t (id INTEGER);")
    due = _source(api, "due", path, schema_auto_refresh=True, schema_refresh_interval=60)
    fresh = _source(api, "fresh", path, schema_auto_refresh=True, schema_refresh_interval=3600)
    off = _source(api, "off", path, schema_auto_refresh=False)
    never = _source(api, "never", path, schema_auto_refresh=True)
    now = timezone.now()
    DataSource.objects.filter(pk__in=[due.pk, fresh.pk]).update(schema_checked_at=now - timedelta(seconds=61))
    DataSource.objects.filter(pk=off.pk).update(schema_checked_at=now - timedelta(days=9))
    # What beat sends on every tick, looked up by name as a worker does.
    entry = celery_app.conf.beat_schedule["schema-refresh-tick"]
    assert celery_app.tasks[entry["task"]].apply_async().get() == 2
    statuses = dict(DataSource.objects.values_list("name", "schema_status"))
    assert statuses == {"due": "ready", "never": "ready", "fresh": "none", "off": "none"}
    assert SchemaSnapshot.objects.filter(data_source__in=[due, never]).count() == 2
    assert set(due_data_sources()) == set(), "refreshed sources are not due again"
    assert schema_refresh_tick() == 0


def test_enqueued_refresh_runs_on_a_worker(workers, make_client, org, _file_root):
    workers.start(1)
    ds = _source(make_client(org), "Q", _sqlite(_file_root, "q.db", "CREATE TABLE t (id INTEGER);"))
    enqueue_refresh(ds.pk)
    ds.refresh_from_db()
    assert ds.schema_status == "pending"
    assert wait_for(lambda: DataSource.objects.get(pk=ds.pk).schema_status == "ready")
    assert SchemaSnapshot.objects.filter(data_source=ds).count() == 1


def test_connection_change_answers_pending_then_a_worker_refreshes(workers, settings, make_client, org, _file_root):
    settings.SCHEMA_REFRESH_ASYNC = True
    workers.start(1)
    api = make_client(org)
    ds = _source(api, "P", _sqlite(_file_root, "p1.db", "CREATE TABLE a (id INTEGER);"))
    _sqlite(_file_root, "p2.db", "CREATE TABLE b (id INTEGER);")
    response = api.patch(f"{URL}{ds.pk}/", {"connection": {"path": "p2.db"}}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["schema"]["status"] == "pending"
    assert wait_for(lambda: api.get(f"{URL}{ds.pk}/schema/status/").json()["status"] == "ready")
    assert [t["name"] for t in api.get(f"{URL}{ds.pk}/schema/").json()["tables"]] == ["b"]


def test_two_workers_racing_on_one_source_make_one_snapshot(workers, make_client, org, _file_root):
    workers.start(2)
    ddl = "".join(f"CREATE TABLE t{i} (id INTEGER, v TEXT);" for i in range(300))
    ds = _source(make_client(org), "Race", _sqlite(_file_root, "race.db", ddl))
    from datasources.tasks import refresh_schema_task

    for _ in range(6):
        refresh_schema_task.delay(ds.pk)
    assert wait_for(lambda: workers.output().count("succeeded") >= 6, timeout=60)
    assert SchemaSnapshot.objects.filter(data_source=ds).count() == 1
    assert DataSource.objects.get(pk=ds.pk).schema_status == "ready"


def test_failing_source_retries_max_retries_times_then_fails(workers, make_client, org, _file_root):
    workers.start(1)
    ds = _source(make_client(org), "F", _sqlite(_file_root, "gone.db", "CREATE TABLE t (id INTEGER);"),
                 max_retries=2)
    os.remove(os.path.join(_file_root, "gone.db"))
    enqueue_refresh(ds.pk)
    assert wait_for(lambda: DataSource.objects.get(pk=ds.pk).schema_status == "failed", timeout=60)
    final = DataSource.objects.get(pk=ds.pk)
    assert final.status == "error"
    assert final.schema_error
    assert workers.output().count("retry: Retry in") == 2


def test_tick_enqueues_exactly_the_due_sources(workers, make_client, org, _file_root):
    workers.start(1)
    api = make_client(org)
    path = _sqlite(_file_root, "tick.db", "CREATE TABLE t (id INTEGER);")
    due = _source(api, "due", path, schema_auto_refresh=True, schema_refresh_interval=60)
    fresh = _source(api, "fresh", path, schema_auto_refresh=True, schema_refresh_interval=3600)
    off = _source(api, "off", path, schema_auto_refresh=False)
    never = _source(api, "never", path, schema_auto_refresh=True)
    now = timezone.now()
    DataSource.objects.filter(pk=due.pk).update(schema_checked_at=now - timedelta(seconds=61))
    DataSource.objects.filter(pk=fresh.pk).update(schema_checked_at=now - timedelta(seconds=61))
    DataSource.objects.filter(pk=off.pk).update(schema_checked_at=now - timedelta(days=9))
    assert set(due_data_sources(now)) == {due.pk, never.pk}
    assert schema_refresh_tick() == 2
    assert set(due_data_sources()) == set(), "queued sources are not queued twice"
    assert wait_for(lambda: all(DataSource.objects.get(pk=p).schema_status == "ready" for p in (due.pk, never.pk)))
    assert DataSource.objects.get(pk=fresh.pk).schema_status == "none"
    assert DataSource.objects.get(pk=off.pk).schema_status == "none"


def test_admin_refresh_action_queues_to_the_worker(workers, settings, admin_client, make_client, org, _file_root):
    settings.SCHEMA_REFRESH_ASYNC = True
    workers.start(1)
    ds = _source(make_client(org), "A", _sqlite(_file_root, "admin.db", "CREATE TABLE t (id INTEGER);"))
    response = admin_client.post("/admin/datasources/datasource/",
                                 {"action": "refresh_schema_action", "_selected_action": [ds.pk]}, follow=True)
    assert response.status_code == 200
    assert b"queued" in response.content
    assert wait_for(lambda: DataSource.objects.get(pk=ds.pk).schema_status == "ready")
