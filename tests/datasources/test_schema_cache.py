"""Versioned schema snapshots: no change -> no version, stable table ids, diffs, sync failures."""

from __future__ import annotations

import os
import sqlite3
import time

import psycopg
import pytest

from datasources.models import DataSource, SchemaSnapshot, SchemaTable
from datasources.services.connection import refresh_schema
from tests.conftest import require_service

URL = "/api/v1/data-sources/"


@pytest.fixture
def db_path(_file_root):
    path = os.path.join(_file_root, "evolving.db")
    with sqlite3.connect(path) as db:
        db.executescript("CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT); CREATE TABLE b (id INTEGER);")
    return path


@pytest.fixture
def source(api, db_path):
    response = api.post(URL, {"name": "E", "type": "sqlite", "connection": {"path": "evolving.db"}}, format="json")
    assert response.status_code == 201
    return response.json()


def _sync(api, source):
    response = api.post(f"{URL}{source['id']}/sync/")
    assert response.status_code == 200, response.json()
    return response.json()["schema"]


def test_refresh_without_change_makes_no_version(api, source):
    assert _sync(api, source)["version"] == 1
    assert SchemaSnapshot.objects.filter(data_source_id=source["id"]).count() == 1


def test_changes_make_versions_keep_ids_and_diff(api, source, db_path):
    v1 = {t["name"]: t["reference_id"] for t in api.get(f"{URL}{source['id']}/schema/").json()["tables"]}
    with sqlite3.connect(db_path) as db:
        db.executescript("ALTER TABLE a ADD COLUMN y REAL; DROP TABLE b; CREATE TABLE c (z TEXT NOT NULL);")
    assert _sync(api, source)["version"] == 2
    v2 = {t["name"]: t["reference_id"] for t in api.get(f"{URL}{source['id']}/schema/").json()["tables"]}
    assert v2["a"] == v1["a"], "a table keeps its reference_id while (schema, name) persists"
    assert "b" not in v2 and v2["c"] not in v1.values()
    old = api.get(f"{URL}{source['id']}/schema/?version=1").json()
    assert {t["name"] for t in old["tables"]} == {"a", "b"}
    versions = api.get(f"{URL}{source['id']}/schema/versions/").json()
    assert [v["version"] for v in versions] == [2, 1]
    diff = api.get(f"{URL}{source['id']}/schema/diff/?from=1&to=2").json()
    assert [t["name"] for t in diff["tables_added"]] == ["c"]
    assert [t["name"] for t in diff["tables_removed"]] == ["b"]
    assert diff["tables_changed"][0]["name"] == "a"
    assert diff["tables_changed"][0]["columns_added"] == ["y"]
    assert api.get(f"{URL}{source['id']}/schema/diff/").json()["from_version"] == 1
    assert api.get(f"{URL}{source['id']}/schema/?version=9").status_code == 404
    assert api.get(f"{URL}{source['id']}/schema/?version=x").status_code == 400


def test_failed_sync_is_schema_cache_failed_and_keeps_previous(api, source, db_path):
    os.remove(db_path)
    response = api.post(f"{URL}{source['id']}/sync/")
    assert response.status_code == 500
    assert response.json()["code"] == "SCHEMA_CACHE_FAILED"
    ds = api.get(f"{URL}{source['id']}/").json()
    assert ds["schema"]["status"] == "failed" and ds["schema"]["version"] == 1
    assert len(api.get(f"{URL}{source['id']}/schema/").json()["tables"]) == 2


@pytest.fixture
def wide_pg_database(allow_loopback):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    name = f"dsp_wide_{os.getpid()}"
    admin = psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {name}")
    admin.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=name, autocommit=True) as conn:
        cols = ", ".join(f"c{j} integer" for j in range(20))
        conn.execute("".join(f"CREATE TABLE t{i:04d} ({cols});" for i in range(1000)))
    yield name
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def test_thousand_tables_make_one_snapshot_in_bounded_queries(org, make_client, wide_pg_database,
                                                               django_assert_max_num_queries, capsys):
    api = make_client(org)
    body = {"name": "Wide", "type": "postgresql",
            "connection": {"host": "127.0.0.1", "database": wide_pg_database, "username": "postgres"}}
    created = api.post(f"{URL}?test_connection=false", body, format="json").json()
    ds = DataSource.objects.get(pk=created["id"])
    started = time.perf_counter()
    with django_assert_max_num_queries(17):  # constant: bulk inserts in batches of 500
        outcome = refresh_schema(data_source=ds)
    elapsed = time.perf_counter() - started
    assert outcome.ok and outcome.created and outcome.version == 1
    assert SchemaTable.objects.filter(snapshot__data_source=ds).count() == 1000
    assert all(len(c) == 20 for c in SchemaTable.objects.filter(snapshot__data_source=ds).values_list("columns",
                                                                                                         flat=True))
    with django_assert_max_num_queries(5):  # claim, secrets, newest fingerprint, finish: no lock
        again = refresh_schema(data_source=ds)
    assert again.ok and not again.created and again.version == 1
    with capsys.disabled():
        print(f"\n[measure] introspect+store 1000x20 PostgreSQL tables: {elapsed:.2f}s")


def test_sync_of_a_type_without_its_driver_is_connector_unavailable(api, without_driver):
    without_driver("pymongo")
    body = {"name": "Mongo", "type": "mongodb", "connection": {"host": "mongo.example.com", "database": "d"},
            "credentials": {"password": "pw-long"}}
    created = api.post(f"{URL}?test_connection=false", body, format="json")
    assert created.status_code == 201, created.json()
    response = api.post(f"{URL}{created.json()['id']}/sync/")
    assert response.status_code == 400
    assert response.json()["code"] == "CONNECTOR_UNAVAILABLE"


@pytest.fixture
def small_pg_database(allow_loopback):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    name = f"dsp_order_{os.getpid()}"
    admin = psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {name}")
    admin.execute(f"CREATE DATABASE {name}")
    yield name
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def test_column_order_counts_not_ordinal_numbers_and_the_diff_says_what_moved(api, small_pg_database):
    def run(sql: str) -> None:
        with psycopg.connect(host="127.0.0.1", user="postgres", dbname=small_pg_database, autocommit=True) as conn:
            conn.execute(sql)

    run("CREATE TABLE t (a int, b text, c text); CREATE TABLE u (id int);")
    body = {"name": "Ordered", "type": "postgresql",
            "connection": {"host": "127.0.0.1", "database": small_pg_database, "username": "postgres"}}
    source = api.post(URL, body, format="json").json()
    assert source["schema"]["version"] == 1
    # c dropped and added again: a new ordinal number, the same place: no new version, no empty diff
    run("ALTER TABLE t DROP COLUMN c; ALTER TABLE t ADD COLUMN c text;")
    assert _sync(api, source)["version"] == 1
    # a snapshot fingerprinted by an older rule is recognised by its tables, not stored again
    SchemaSnapshot.objects.filter(data_source_id=source["id"]).update(fingerprint="older-rule")
    assert _sync(api, source)["version"] == 1
    assert SchemaSnapshot.objects.get(data_source_id=source["id"]).fingerprint != "older-rule"
    # a real reorder, and a table that became a view
    run("DROP TABLE t; CREATE TABLE t (b text, a int, c text); DROP TABLE u; CREATE VIEW u AS SELECT 1 AS id;")
    assert _sync(api, source)["version"] == 2
    diff = api.get(f"{URL}{source['id']}/schema/diff/?from=1&to=2").json()
    changed = {t["name"]: t for t in diff["tables_changed"]}
    assert (changed["t"]["columns_reordered"], changed["t"]["columns_added"], changed["t"]["columns_changed"]) == (
        True, [], [])
    assert (changed["u"]["old_kind"], changed["u"]["kind"], changed["u"]["columns_reordered"]) == ("table", "view",
                                                                                                  False)


def test_a_table_that_comes_back_gets_its_id_back(api, source, db_path):
    """Dropped and created again (an ETL rebuild caught by a refresh), or back within MAX_TABLES after
    other tables pushed it out of the cache (it never left the database): the same (schema, name),
    the same id, so nodes holding it still name it and a diff across the gap is empty. The id of a
    table that is gone is still never given to another name."""
    v1 = {t["name"]: t["reference_id"] for t in api.get(f"{URL}{source['id']}/schema/").json()["tables"]}
    with sqlite3.connect(db_path) as db:
        db.executescript("DROP TABLE b;")
    assert _sync(api, source)["version"] == 2
    with sqlite3.connect(db_path) as db:
        db.executescript("CREATE TABLE b (id INTEGER); CREATE TABLE d (id INTEGER);")
    assert _sync(api, source)["version"] == 3
    v3 = {t["name"]: t["reference_id"] for t in api.get(f"{URL}{source['id']}/schema/").json()["tables"]}
    assert v3["b"] == v1["b"] and v3["d"] not in v1.values()
    diff = api.get(f"{URL}{source['id']}/schema/diff/?from=1&to=3").json()
    assert [t["name"] for t in diff["tables_added"]] == ["d"] and diff["tables_removed"] == []
