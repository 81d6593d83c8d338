"""What a plain PATCH (no connection, credentials or connection string) writes (issue 18): the columns
whose value changed, besides the version and who and when; a stored connection that is valid and
already normalized is kept as it is without planning it again, one that is not is normalized (and
audited) or refused as before."""

from __future__ import annotations

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

from datasources.models import DataSource
from datasources.services import plan as plan_module
from organizations.models import AuditEvent

URL = "/api/v1/data-sources/"
ALWAYS = {"updated_at", "updated_by_id", "updated_by_token_id", "version"}


def _source(api, sqlite_file) -> dict:
    response = api.post(URL, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def _updated_columns(api, pk: int, body: dict) -> set[str]:
    with CaptureQueriesContext(connection) as ctx:
        response = api.patch(f"{URL}{pk}/", body, format="json")
    assert response.status_code == 200, response.json()
    updates = [m.group(1) for q in ctx.captured_queries
               if (m := re.search(r'UPDATE "datasources_datasource" SET (.*?) WHERE', q["sql"]))]
    assert len(updates) == 1, ctx.captured_queries
    return set(re.findall(r'"(\w+)" = ', updates[0]))


def test_the_update_writes_the_columns_that_changed(api, sqlite_file):
    ds = _source(api, sqlite_file)
    assert _updated_columns(api, ds["id"], {"description": "one", "tags": ["a"]}) == ALWAYS | {"description", "tags"}
    assert _updated_columns(api, ds["id"], {"description": "one", "tags": ["b"]}) == ALWAYS | {"tags"}
    assert _updated_columns(api, ds["id"], {"max_retries": 3, "metadata": {"k": 1}}) == ALWAYS | {"metadata"}
    row = DataSource.objects.get(pk=ds["id"])
    assert (row.description, row.tags, row.metadata, row.max_retries, row.version) == ("one", ["b"], {"k": 1}, 3, 4)
    assert row.connection == ds["connection"] and row.status == ds["status"]


def test_a_stored_connection_not_normalized_yet_is_normalized_and_audited(api, sqlite_file):
    ds = _source(api, sqlite_file)
    DataSource.objects.filter(pk=ds["id"]).update(connection={"path": sqlite_file})  # its default left out
    response = api.patch(f"{URL}{ds['id']}/", {"description": "d"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["connection"] == {"path": sqlite_file, "read_only": True}
    assert DataSource.objects.get(pk=ds["id"]).connection == {"path": sqlite_file, "read_only": True}
    event = AuditEvent.objects.filter(target_id=ds["id"], action="update").latest("id")
    assert event.changes["connection.read_only"] == {"old": None, "new": True}


def test_an_invalid_stored_connection_is_refused_as_before(api, sqlite_file):
    ds = _source(api, sqlite_file)
    DataSource.objects.filter(pk=ds["id"]).update(connection={"read_only": True})
    response = api.patch(f"{URL}{ds['id']}/", {"description": "d"}, format="json")
    assert response.status_code == 400
    assert "connection.path" in response.json()["errors"]
    assert DataSource.objects.get(pk=ds["id"]).description == ""


def test_the_normal_form_keeps_the_catalogues_key_order(api, sqlite_file):
    ds = _source(api, sqlite_file)
    row = DataSource.objects.get(pk=ds["id"])
    row.connection = {"read_only": True, "path": sqlite_file}  # as PostgreSQL's jsonb may hand it back
    normal = plan_module._stored_normal_form(row)
    assert normal == row.connection and list(normal) == ["path", "read_only"]
    assert normal is not row.connection
    row.connection = {"path": sqlite_file}
    assert plan_module._stored_normal_form(row) is None
