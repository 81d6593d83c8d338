"""Names unique as references compare them (escaped, in any case: ``Demo Shop`` and ``demo-shop``),
under concurrent writes (PostgreSQL row locks), played as in ``tests/workflows/test_integrity_races``:
one request is held inside its transaction after its audit event, the other must wait for the
organization's lock rather than read the names around it, then answers 409. No constraint can see
this rule (the unique index compares the name in lower case only): without the lock both writes
passed and ``acme.demo_shop`` named two data sources."""

from __future__ import annotations

from typing import Any

import pytest

from datasources.models import DataSource
from tests.workflows.test_integrity_races import _race

URL = "/api/v1/data-sources/"


@pytest.fixture
def clients(needs_postgres, transactional_db, org, make_client, sqlite_file):
    first, second = make_client(org), make_client(org)
    ids = {}
    for name in ("alpha", "beta"):
        body = {"name": name, "type": "sqlite", "connection": {"path": sqlite_file}}
        response = first.post(f"{URL}?test_connection=false", body, format="json")
        assert response.status_code == 201, response.json()
        ids[name] = response.json()["id"]
    return {"clients": [first, second], "ids": ids, "path": sqlite_file}


def _write(setup: dict, index: int, how: str, name: str) -> Any:
    client = setup["clients"][index]
    if how == "create":
        body = {"name": name, "type": "sqlite", "connection": {"path": setup["path"]}}
        return lambda: client.post(f"{URL}?test_connection=false", body, format="json")
    pk = setup["ids"]["alpha" if index == 0 else "beta"]
    return lambda: client.patch(f"{URL}{pk}/", {"name": name}, format="json")


@pytest.mark.parametrize("first", ["create", "rename"])
@pytest.mark.parametrize("second", ["create", "rename"])
def test_names_that_escape_alike_cannot_both_be_written_at_once(clients, monkeypatch, first, second):
    done, refused = _race(monkeypatch, _write(clients, 0, first, "Demo Shop"), _write(clients, 1, second, "demo-shop"))
    assert done.status_code in (200, 201), done.json()
    assert refused.status_code == 409 and refused.json()["code"] == "CONFLICT", refused.json()
    names = sorted(DataSource.objects.values_list("name", flat=True))
    assert "Demo Shop" in names and "demo-shop" not in names
