"""core.prepared: on PostgreSQL the hot statements (compiled lookups, a write's batch) are prepared once
per connection and then only executed, still counted and still answering as before; with
DATABASE_PREPARED_STATEMENTS off, and on SQLite, nothing is prepared."""

from __future__ import annotations

import pytest
from django.db import connection

from core.prepared import prepared_cursor

URL = "/api/v1/data-sources/"
postgresql_only = pytest.mark.skipif("connection.vendor != 'postgresql'")


def _prepared() -> dict[str, int]:
    """This connection's prepared statements: text -> executions with a generic or custom plan."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        return dict(cursor.fetchall())


def _source(api, sqlite_file, name: str) -> dict:
    body = {"name": name, "type": "sqlite", "connection": {"path": sqlite_file}}
    response = api.post(f"{URL}?test_connection=false", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def _runs_of(fragment: str) -> int:
    return sum(runs for text, runs in _prepared().items() if fragment in text)


@postgresql_only
def test_hot_statements_are_prepared_once_and_counted_as_before(api, other_api, sqlite_file,
                                                                 django_assert_num_queries):
    mine = _source(api, sqlite_file, "Mine")
    theirs = _source(other_api, sqlite_file, "Theirs")
    assert api.get(f"{URL}{mine['id']}/").status_code == 200  # warm: the token cache
    before = _runs_of('"datasources_datasource"."id" = $')
    for _ in range(3):
        with django_assert_num_queries(1) as captured:
            response = api.get(f"{URL}{mine['id']}/")
        assert response.status_code == 200 and response.json()["name"] == "Mine"
        logged = captured.captured_queries[0]["sql"]  # logged with its values, as Django logs its own
        assert f'"datasources_datasource"."id" = {mine["id"]}' in logged and "$1" not in logged
    assert _runs_of('"datasources_datasource"."id" = $') >= before + 3  # one prepared text, run again
    assert api.get(f"{URL}{theirs['id']}/").status_code == 404  # the same statement, another value
    for description in ("one", "two", "three"):
        response = api.patch(f"{URL}{mine['id']}/", {"description": description}, format="json")
        assert response.status_code == 200 and response.json()["description"] == description
    assert _runs_of("WITH _wb0 AS (UPDATE") >= 3  # the write's batch: one text, prepared once
    assert api.get(f"{URL}{mine['id']}/").json()["description"] == "three"
    # Only while a prepared statement runs is psycopg's threshold set: Django's own client-bound
    # statements (values inlined) are not kept among its candidates.
    assert connection.connection.prepare_threshold is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'not kept' || %s", ["by psycopg"])
    assert not any(b"not kept" in key[0] for key in connection.connection._prepared._counts)


@postgresql_only
def test_switched_off_nothing_is_prepared(api, sqlite_file, settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    connection.connection._prepared.clear()  # psycopg's own record of what it prepared
    mine = _source(api, sqlite_file, "Mine")
    for description in ("one", "two"):
        assert api.patch(f"{URL}{mine['id']}/", {"description": description}, format="json").status_code == 200
    assert api.get(f"{URL}{mine['id']}/").json()["description"] == "two"
    assert _prepared() == {}


def test_elsewhere_it_is_djangos_own_cursor(db):
    with prepared_cursor() as cursor:
        cursor.execute("SELECT 1 + %s", [1])
        assert cursor.fetchone()[0] == 2
    if connection.vendor != "postgresql":
        assert "Preparing" not in type(cursor.cursor).__name__
