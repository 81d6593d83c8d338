"""The benchmark's floor (bench/floor.py) does the API's work, so that bench/run.py can run at all:
its connection PATCH introspects with the connector's query and fingerprints the schema as the
service does, and refuses (409) when the schema it sees is not the cached one. When the service's
fingerprint rule changed and the floor's copy did not, every bench run stopped at its first PATCH.

The floor is raw PostgreSQL SQL: these tests run with PostgreSQL as the application database (CI)."""

from __future__ import annotations

import os

import psycopg
import pytest
from django.db import connection
from django.test import override_settings

from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/data-sources/"


@pytest.fixture
def target(allow_loopback):
    """A database of its own on the machine's PostgreSQL (trust auth: the floor sends no password)."""
    if connection.vendor != "postgresql":
        pytest.skip("bench/floor.py is PostgreSQL SQL: run with DATABASE_URL=postgres://... (as CI does)")
    params = connection.settings_dict
    name = f"dsp_floor_{os.getpid()}"
    admin = {"host": params["HOST"] or "127.0.0.1", "port": params["PORT"] or 5432, "user": params["USER"],
             "autocommit": True}
    with psycopg.connect(dbname="postgres", **admin) as server:
        server.execute(f'DROP DATABASE IF EXISTS "{name}"')
        server.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(dbname=name, **admin) as db:
        db.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
    yield {"dbname": name, **admin}
    with psycopg.connect(dbname="postgres", **admin) as server:
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cached_source(org, target) -> tuple[object, dict]:
    api = client_for(org)
    body = {"name": "Warehouse", "type": "postgresql",
            "connection": {"host": "127.0.0.1", "port": int(target["port"]), "database": target["dbname"],
                           "username": target["user"], "schema": "public", "ssl": {"mode": "disable"}}}
    response = api.post(URL, body, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["schema"]["status"] == "ready" and created["schema"]["version"] == 1, created["schema"]
    return api, created


@override_settings(ROOT_URLCONF="bench.urls")
def test_floor_connection_patch_accepts_the_schema_the_api_cached(org, target):
    api, ds = _cached_source(org, target)
    response = api.patch(f"/bench/floor/data-sources/{ds['id']}/", {"connection": {"ssl": {"mode": "prefer"}}},
                         format="json")
    assert response.status_code == 200, response.content
    assert response.json()["version"] == ds["version"] + 1
    assert response.json()["connection"]["ssl"] == {"mode": "prefer"}


@override_settings(ROOT_URLCONF="bench.urls")
def test_floor_connection_patch_refuses_a_changed_schema(org, target):
    api, ds = _cached_source(org, target)
    with psycopg.connect(**target) as db:
        db.execute("CREATE TABLE extra (id int)")
    response = api.patch(f"/bench/floor/data-sources/{ds['id']}/", {"connection": {"ssl": {"mode": "prefer"}}},
                         format="json")
    assert response.status_code == 409, response.content
    assert api.get(f"{URL}{ds['id']}/").json()["version"] == ds["version"]
