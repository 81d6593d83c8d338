"""No lost update: concurrent PATCHes of different fields all land (PostgreSQL row locks)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from datasources.models import DataSource
from tests.conftest import IN_CI

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


@pytest.fixture
def needs_postgres():
    if connection.vendor != "postgresql":
        message = "set DATABASE_URL to a PostgreSQL database to run concurrency tests"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


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
