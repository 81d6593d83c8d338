"""Every request example of the Redivis seed (``shared/seeds/000_98bcb00fed04dc31.txt``), replayed over
HTTP against the running app (``tests.support.live``), with the documented response shape asserted.

What the seed shows, and where each is replayed:

- the one request, written as an HTTP request line (the seed has no curl, JS, Python or PHP
  example): ``PATCH /api/v1/workflows/:workflowReference/dataSources/:dataSourceReference`` with a
  JSON body, under this product's prefix ``/compat/redivis``; the placeholders become real values
  (``acme.flow``; ``acme.shop:v1_0`` or the dataSource's ``id``);
- the body's properties ``sourceDataset`` (version / sample inside it), ``sourceWorkflow`` (either
  one, not both) and ``mappedTables``, with its example ``{ "old_table:xje9": "new_table:a842" }``
  sent verbatim (the tables' reference ids are pinned to ``xje9`` and ``a842``) and the rules written
  around it (reference id suffixes optional, ids win over names, tables mapped automatically by name
  and identifier, only tables read downstream need a mapping);
- authorization: edit access to the workflow and the ``workflow.write`` scope;
- the response: the "get" representation of a dataSource (Redivis's resource definition, which the
  seed links: ``kind`` ``"datasource"``, ``uri``, ``id``, ``url``, ``createdAt`` and ``updatedAt`` as
  integers, ``isSample``, ``sourceDataset``, ``sourceWorkflow``, and ``workflow`` for "get").

Not replayed: the ``GET https://docs.redivis.com/...patch.md?ask=...`` line at the end of the seed is
the documentation site's own question service, not a request of the API.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from datasources.models import SchemaTable
from tests.support.live import live_http_server
from tests.support.workflows import add_node, add_source, change_schema, create_source, create_workflow, node_tables

PREFIX = "/compat/redivis"
SHOP = "CREATE TABLE old_table (id INTEGER, v TEXT); CREATE TABLE keep (id INTEGER); CREATE TABLE unused (x TEXT);"
#: The seed's mappedTables example, character for character.
SEED_MAPPED_TABLES = '{ "old_table:xje9": "new_table:a842" }'
GET_REPRESENTATION = {"kind", "uri", "id", "url", "createdAt", "updatedAt", "isSample", "sourceDataset",
                      "sourceWorkflow", "workflow"}


@pytest.fixture
def server(transactional_db, settings):
    with live_http_server(settings) as live:
        yield live


def _pin(source: dict, version: int, name: str, reference_id: str) -> None:
    SchemaTable.objects.filter(snapshot__data_source_id=source["id"], snapshot__version=version,
                               name=name).update(reference_id=reference_id)


@pytest.fixture
def world(server, api):
    """acme.shop (old_table read by a node, keep, unused) in acme.flow; version 2 renames old_table to
    new_table and drops unused. The reference ids of the seed's example are pinned."""
    source = create_source(api, "Shop", "shop.db", SHOP)
    _pin(source, 1, "old_table", "xje9")
    workflow = create_workflow(api, "Flow")
    wds = add_source(api, workflow, source_data_source="acme.shop:v1")
    add_node(api, workflow, "Revenue", [(wds, "old_table"), (wds, "keep")])
    v2 = change_schema(api, source, "shop.db", "ALTER TABLE old_table RENAME TO new_table; DROP TABLE unused;")
    _pin(source, v2, "new_table", "a842")
    return {"source": source, "workflow": workflow, "wds": wds, "v2": v2, "token": api.raw_token}


def send(server, method: str, path: str, body: str | None = None, token: str | None = None) -> tuple[int, Any]:
    """One HTTP request as a Redivis client sends it: bearer token, JSON body as written."""
    request = urllib.request.Request(server.url + PREFIX + path, method=method,
                                     data=None if body is None else body.encode())
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def assert_get_representation(data: dict) -> None:
    """Redivis's dataSource resource definition, "get" flavour."""
    assert set(data) == GET_REPRESENTATION, data
    assert data["kind"] == "datasource"
    assert all(isinstance(data[k], str) for k in ("uri", "id", "url"))
    assert isinstance(data["createdAt"], int) and isinstance(data["updatedAt"], int)
    assert isinstance(data["isSample"], bool)
    assert (data["sourceDataset"] is None) != (data["sourceWorkflow"] is None)
    source = data["sourceDataset"] or data["sourceWorkflow"]
    assert source["kind"] == ("dataset" if data["sourceDataset"] else "workflow")
    for base in (source, data["workflow"]):  # dataset.base / workflow.base
        assert {"kind", "id", "qualifiedReference", "scopedReference", "referenceId", "name", "url", "uri",
                "owner"} <= set(base), base
    assert data["workflow"]["kind"] == "workflow"


def assert_error(body: Any, status: int) -> dict:
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == status and body["error"]["message"], body
    return body["error"]


# --- PATCH /api/v1/workflows/:workflowReference/dataSources/:dataSourceReference ----------------------------


def test_the_request_with_the_seeds_mapped_tables_example_verbatim(server, world, api):
    body = f'{{"sourceDataset": "acme.shop:v{world["v2"]}_0", "mappedTables": {SEED_MAPPED_TABLES}}}'
    status, data = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.shop:v1_0", body,
                        world["token"])
    assert status == 200, data
    assert_get_representation(data)
    assert data["sourceDataset"]["qualifiedReference"].endswith(f":v{world['v2']}_0")
    assert node_tables(api, world["workflow"])["Revenue"][0] == "new_table:a842"


def test_the_data_source_reference_may_be_the_id_of_the_data_source(server, world, api):
    status, first = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.shop:v1_0",
                         '{"sourceDataset": "acme.shop:v1_0"}', world["token"])
    assert status == 200, first
    body = f'{{"sourceDataset": "acme.shop:v{world["v2"]}_0", "mappedTables": {SEED_MAPPED_TABLES}}}'
    status, data = send(server, "PATCH", f"/api/v1/workflows/acme.flow/dataSources/{first['id']}", body,
                        world["token"])
    assert status == 200, data
    assert_get_representation(data)
    assert data["id"] == first["id"]


def test_the_representation_leads_back_to_the_data_source(server, world):
    status, data = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.shop:v1_0",
                        '{"sourceDataset": "acme.shop:v1_0"}', world["token"])
    assert status == 200, data
    status, again = send(server, "GET", "/api/v1" + data["uri"], token=world["token"])
    assert status == 200 and again == data
    assert data["url"] == f"{server.url}{PREFIX}/api/v1{data['uri']}"
    status, moved = send(server, "PATCH", data["url"].removeprefix(server.url + PREFIX),
                         f'{{"sourceDataset": "acme.shop:v{world["v2"]}_0", "mappedTables": {SEED_MAPPED_TABLES}}}',
                         world["token"])
    assert status == 200, moved
    assert_get_representation(moved)


@pytest.mark.parametrize("spelling", ["v{v}_0", "v{v}.0", "next"])
def test_source_dataset_with_version_information(server, world, spelling):
    version = spelling.format(v=world["v2"])
    status, data = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.shop:v1_0",
                        f'{{"sourceDataset": "acme.shop:{version}", "mappedTables": {SEED_MAPPED_TABLES}}}',
                        world["token"])
    assert status == 200, data
    assert_get_representation(data)
    assert data["sourceDataset"]["version"] == f"v{world['v2']}.0"


def test_source_dataset_current_version_is_the_default(server, world):
    status, data = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.shop:v1_0",
                        f'{{"sourceDataset": "acme.shop", "mappedTables": {SEED_MAPPED_TABLES}}}', world["token"])
    assert status == 200, data
    assert data["sourceDataset"]["version"] == "current"
    status, same = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.shop:current",
                        '{"sourceDataset": "acme.shop:current"}', world["token"])
    assert status == 200 and same["id"] == data["id"], same


def test_source_dataset_with_sample_information(server, world):
    status, data = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.shop:v1_0",
                        '{"sourceDataset": "acme.shop:sample:v1_0"}', world["token"])
    assert status == 200, data
    assert_get_representation(data)
    assert data["isSample"] is True
    status, back = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.shop:sample:v1_0",
                        '{"sourceDataset": "acme.shop:v1_0"}', world["token"])
    assert status == 200 and back["isSample"] is False, back


def test_source_workflow(server, world, api):
    upstream = create_workflow(api, "Upstream")
    up = add_source(api, upstream, source_data_source="acme.shop:v1")
    add_node(api, upstream, "Make", [(up, "old_table")], output={"name": "new_table"})
    add_node(api, upstream, "Keep", [(up, "keep")], output={"name": "keep"})
    status, data = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.shop:v1_0",
                        '{"sourceWorkflow": "acme.upstream", "mappedTables": { "old_table": "new_table" }}',
                        world["token"])
    assert status == 200, data
    assert_get_representation(data)
    assert data["sourceDataset"] is None and data["sourceWorkflow"]["name"] == "Upstream"
    # The dataSource's current source is now a workflow: its qualified reference names it.
    status, back = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.upstream",
                        '{"sourceDataset": "acme.shop:v1_0", "mappedTables": { "new_table": "old_table" }}',
                        world["token"])
    assert status == 200 and back["sourceWorkflow"] is None, back


@pytest.mark.parametrize("body", ['{"sourceDataset": "acme.shop:v1_0", "sourceWorkflow": "acme.flow"}', "{}"])
def test_either_a_source_dataset_or_source_workflow_not_both(server, world, body):
    status, data = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.shop:v1_0", body,
                        world["token"])
    error = assert_error(data, 400)
    assert {"sourceDataset", "sourceWorkflow"} <= set(error["errors"]), error


def test_mapped_tables_reference_id_suffixes_are_optional(server, world, api):
    status, data = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.shop:v1_0",
                        f'{{"sourceDataset": "acme.shop:v{world["v2"]}_0", '
                        '"mappedTables": { "old_table": "new_table" }}', world["token"])
    assert status == 200, data
    assert node_tables(api, world["workflow"])["Revenue"][0] == "new_table:a842"


def test_mapped_tables_reference_ids_take_precedence_over_names(server, world, api):
    status, data = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.shop:v1_0",
                        f'{{"sourceDataset": "acme.shop:v{world["v2"]}_0", '
                        '"mappedTables": { "renamed_since:xje9": "not_its_name:a842" }}', world["token"])
    assert status == 200, data
    assert node_tables(api, world["workflow"])["Revenue"][0] == "new_table:a842"


def test_tables_are_mapped_automatically_by_name_and_identifier(server, world, api):
    v3 = change_schema(api, world["source"], "shop.db", "ALTER TABLE new_table RENAME TO old_table;")
    status, data = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.shop:v1_0",
                        f'{{"sourceDataset": "acme.shop:v{v3}_0"}}', world["token"])
    assert status == 200, data  # old_table and keep exist under the new version: no mappedTables needed
    assert [t.split(":")[0] for t in node_tables(api, world["workflow"])["Revenue"]] == ["old_table", "keep"]


def test_a_deleted_table_read_downstream_needs_a_mapping(server, world, api):
    before = node_tables(api, world["workflow"])
    status, data = send(server, "PATCH", "/api/v1/workflows/acme.flow/dataSources/acme.shop:v1_0",
                        f'{{"sourceDataset": "acme.shop:v{world["v2"]}_0"}}', world["token"])
    error = assert_error(data, 400)
    assert error["status"] == "UNMAPPED_TABLES" and list(error["errors"]) == ["mappedTables.old_table:xje9"], error
    assert node_tables(api, world["workflow"]) == before
    # Only tables read downstream need mapping: `unused` was dropped too, and nobody reads it.
    assert [u["table"]["name"] for u in error["unmappedTables"]] == ["old_table"]


# --- Authorization: edit access to the workflow, scope workflow.write --------------------------------------


def test_authorization_needs_the_workflow_write_scope_and_edit_access(server, world, make_client, org, viewer):
    path, body = "/api/v1/workflows/acme.flow/dataSources/acme.shop:v1_0", '{"sourceDataset": "acme.shop:v1_0"}'
    reader = make_client(org, ["workflow.read"])
    status, data = send(server, "PATCH", path, body, reader.raw_token)
    assert "workflow.write" in assert_error(data, 403)["message"] and status == 403
    no_edit = make_client(org, ["workflow.write", "workflow.read"], username=viewer.username)
    status, data = send(server, "PATCH", path, body, no_edit.raw_token)
    assert status == 403 and "cannot make changes" in assert_error(data, 403)["message"], data
    status, data = send(server, "PATCH", path, body)
    assert status == 401 and assert_error(data, 401)
    status, data = send(server, "PATCH", path, body, world["token"])
    assert status == 200, data
