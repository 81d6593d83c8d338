"""No lost update: concurrent PATCHes of different fields all land (PostgreSQL row locks)."""

from __future__ import annotations

import threading

from django.db import connections

from datasources.models import DataSource

URL = "/api/v1/data-sources/"
FIELDS = {
    "description": "concurrent",
    "connection_pool_size": 11,
    "connection_timeout": 22,
    "query_timeout": 33,
    "max_retries": 4,
    "schema_auto_refresh": True,
    "schema_refresh_interval": 7200,
    "tags": ["t"],
    "name": "Renamed concurrently",
}


def test_twenty_concurrent_patches_of_different_fields_all_land(needs_postgres, transactional_db, make_client,
                                                                 org, sqlite_file):
    api = make_client(org)
    ds = api.post(URL, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json").json()
    bodies = [{k: v} for k, v in FIELDS.items()]
    bodies += [{"metadata": {f"k{i}": i}} for i in range(20 - len(bodies))]
    assert len(bodies) == 20
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = []

    def patch(body):
        client = make_client(org)
        barrier.wait()
        try:
            statuses.append(client.patch(f"{URL}{ds['id']}/", body, format="json").status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=patch, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 20
    final = DataSource.objects.get(pk=ds["id"])
    for key, value in FIELDS.items():
        assert getattr(final, key) == value, key
    assert final.metadata == {f"k{i}": i for i in range(20 - len(FIELDS))}
    assert final.version == 21


def _waiting_for_a_row_lock(timeout: float = 10.0) -> bool:
    """Whether another session waits for a lock (the PATCH under test, blocked on the locked row)."""
    import time

    deadline = time.monotonic() + timeout
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           "AND datname = current_database()")
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.02)
    return False


def test_a_change_that_meets_a_concurrent_connection_change_is_tested_before_it_applies(
        needs_postgres, transactional_db, make_client, org, sqlite_file, _file_root):
    """A PATCH reads the source, then waits for the row another writer holds while it moves the
    connection elsewhere. Re-merged onto that state, the PATCH's own connection value (the one it read)
    is a connection change again: it must be tested like any, not written untested."""
    import shutil

    shutil.copy(f"{_file_root}/{sqlite_file}", f"{_file_root}/moved.db")
    api = make_client(org)
    ds = api.post(URL, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json").json()
    other_writer_locked, commit_other_writer = threading.Event(), threading.Event()

    def other_writer():  # another writer, holding the row while it moves the connection
        from django.db import transaction

        try:
            with transaction.atomic():
                row = DataSource.objects.select_for_update().get(pk=ds["id"])
                DataSource.objects.filter(pk=row.pk).update(connection={**row.connection, "path": "moved.db"},
                                                            version=row.version + 1)
                other_writer_locked.set()
                commit_other_writer.wait(10)
        finally:
            connections.close_all()

    responses = []

    def patch():  # sets the path it read (no change then) and a description
        try:
            responses.append(make_client(org).patch(f"{URL}{ds['id']}/", {
                "connection": {"path": sqlite_file}, "description": "mine"}, format="json"))
        finally:
            connections.close_all()

    writer = threading.Thread(target=other_writer)
    writer.start()
    assert other_writer_locked.wait(10)
    patcher = threading.Thread(target=patch)
    patcher.start()
    assert _waiting_for_a_row_lock(), "the PATCH never waited for the row"
    commit_other_writer.set()
    writer.join()
    patcher.join()
    assert responses[0].status_code == 200, responses[0].json()
    final = DataSource.objects.get(pk=ds["id"])
    assert final.connection["path"] == sqlite_file and final.description == "mine"
    update = api.get(f"{URL}{ds['id']}/history/").json()["results"][0]
    assert update["changes"]["connection.path"] == {"old": "moved.db", "new": sqlite_file}
    assert update["detail"]["test"] is not None and update["detail"]["test"]["ok"], update["detail"]
    assert final.status == "active" and final.last_test["ok"]
