"""Redivis (seed 000): the dataSource PATCH (and GET), sent as the seed documents it, over the repoint service."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import urlsplit

import pytest

from datasources.models import DataSource
from tests.support.workflows import (
    add_node,
    add_source,
    change_schema,
    create_source,
    create_workflow,
    node_tables,
    tables,
)
from workflows.compat import redivis_refs
from workflows.models import NodeInput, WorkflowDataSource
from workflows.references import InvalidReference

SHOP = "CREATE TABLE old_table (id INTEGER, v TEXT); CREATE TABLE keep (id INTEGER);"
RV = "/compat/redivis/api/v1/workflows/"
BASE = "/compat/redivis/api/v1"
REPRESENTATION = {"kind", "uri", "id", "url", "createdAt", "updatedAt", "isSample", "sourceDataset",
                  "sourceWorkflow", "workflow"}
DATASET_BASE = {"kind", "id", "qualifiedReference", "scopedReference", "referenceId", "name", "url", "uri", "doi",
                "owner", "version"}
WORKFLOW_BASE = {"kind", "id", "qualifiedReference", "scopedReference", "referenceId", "name", "url", "uri",
                 "owner"}
#: native names and nouns that must never reach a Redivis client
NATIVE = re.compile(r"source_data_source|source_workflow|mapped_tables|unmapped_tables|reference_id|\bdata_source\b"
                    r"|[Ww]orkflow data source|\b[Dd]ata sources?\b")


@pytest.fixture
def shop(api):
    source = create_source(api, "Shop", "shop.db", SHOP)
    workflow = create_workflow(api, "Flow")
    wds = add_source(api, workflow, source_data_source="acme.shop:v1")
    add_node(api, workflow, "n1", [(wds, "old_table"), (wds, "keep")])
    return {"source": source, "workflow": workflow, "wds": wds, "v1": tables(api, source, 1)}


def _rename(api, shop) -> int:
    return change_schema(api, shop["source"], "shop.db", "ALTER TABLE old_table RENAME TO new_table;")


def _path(url: str) -> str:
    """An absolute URL as the test client sends it (its path and query)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _no_native_words(body) -> None:
    text = json.dumps(body)
    assert not NATIVE.search(text), text


# --- the seed's example and the representation ---------------------------------------------------------


def test_the_seeds_mapped_tables_example_with_qualified_references(api, shop):
    v2 = _rename(api, shop)
    old_ref, new_ref = shop["v1"]["old_table"], tables(api, shop["source"], v2)["new_table"]
    url = f"{RV}acme.flow/dataSources/acme.shop:v1_0"
    body = {"sourceDataset": f"acme.shop:v{v2}_0", "mappedTables": {f"old_table:{old_ref}": f"new_table:{new_ref}"}}
    response = api.patch(url, body, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert set(data) == REPRESENTATION
    assert data["kind"] == "datasource" and data["isSample"] is False and data["sourceWorkflow"] is None
    assert set(data["sourceDataset"]) == DATASET_BASE and set(data["workflow"]) == WORKFLOW_BASE
    source_ref = shop["source"]["reference_id"]
    assert data["sourceDataset"]["version"] == f"v{v2}.0"
    assert data["sourceDataset"]["qualifiedReference"] == f"acme.shop:{source_ref}:v{v2}_0"
    assert data["sourceDataset"]["kind"] == "dataset" and data["sourceDataset"]["doi"] is None
    assert data["sourceDataset"]["owner"] == {"kind": "organization", "id": data["workflow"]["owner"]["id"],
                                              "name": "acme", "fullName": "Acme"}
    assert data["workflow"]["name"] == "Flow" and data["workflow"]["kind"] == "workflow"
    assert response["ETag"]
    assert node_tables(api, shop["workflow"])["n1"] == [f"new_table:{new_ref}", f"keep:{shop['v1']['keep']}"]
    # The dataSource can also be addressed by its internal integer id.
    again = api.patch(f"{RV}acme.flow/dataSources/{shop['wds']['id']}", {"sourceDataset": f"acme.shop:v{v2}"},
                      format="json")
    assert again.status_code == 200, again.json()


def test_timestamps_are_epoch_milliseconds(api, shop):
    before = int(time.time() * 1000)
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1", {"sourceDataset": "acme.shop:current"},
                         format="json")
    after = int(time.time() * 1000)
    data = response.json()
    wds = WorkflowDataSource.objects.get(pk=shop["wds"]["id"])
    assert isinstance(data["createdAt"], int) and isinstance(data["updatedAt"], int)
    assert data["createdAt"] == int(wds.created_at.timestamp() * 1000) or \
        abs(data["createdAt"] - wds.created_at.timestamp() * 1000) < 1
    assert before - 1 <= data["updatedAt"] <= after + 1 and data["createdAt"] <= data["updatedAt"]


def test_the_id_the_representation_returns_is_a_data_source_reference(api, shop):
    data = api.get(f"{RV}acme.flow/dataSources/{shop['wds']['id']}").json()
    assert data["id"] == shop["wds"]["reference_id"]
    by_id = api.get(f"{RV}acme.flow/dataSources/{data['id']}")
    assert by_id.status_code == 200 and by_id.json() == data
    assert api.get(f"{RV}acme.flow/dataSources/{data['id'].upper()}").json() == data  # ids ignore case
    v2 = _rename(api, shop)
    response = api.patch(f"{RV}acme.flow/dataSources/{data['id']}",
                         {"sourceDataset": f"acme.shop:v{v2}_0", "mappedTables": {"old_table": "new_table"}},
                         format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["id"] == data["id"]


def test_a_client_following_the_uri_and_url_reaches_the_data_source(api, shop):
    data = api.get(f"{RV}acme.flow/dataSources/acme.shop").json()
    workflow_ref = data["workflow"]["qualifiedReference"]
    assert data["uri"] == f"/workflows/{workflow_ref}/dataSources/{data['id']}"
    assert data["url"] == f"http://testserver{BASE}{data['uri']}"
    assert api.get(_path(data["url"])).json() == data  # GET the url
    assert api.get(BASE + data["uri"]).json() == data  # GET the API's base URL + uri
    v2 = _rename(api, shop)
    response = api.patch(_path(data["url"]), {"sourceDataset": f"acme.shop:v{v2}_0",
                                              "mappedTables": {"old_table": "new_table"}}, format="json")
    assert response.status_code == 200, response.json()
    moved = response.json()
    assert moved["url"] == data["url"] and moved["uri"] == data["uri"]  # the links outlive the repoint
    back = api.patch(BASE + moved["uri"], {"sourceDataset": "acme.shop:v1_0",
                                           "mappedTables": {"new_table": "old_table"}}, format="json")
    assert back.status_code == 200, back.json()
    # The nested urls lead to the dataset and workflow on the main API.
    assert api.get(_path(moved["sourceDataset"]["url"])).json()["id"] == shop["source"]["id"]
    assert api.get(_path(moved["workflow"]["url"])).json()["id"] == shop["workflow"]["id"]


def test_links_of_a_workflow_with_an_unusual_name_still_lead_back(api, shop):
    renamed = api.patch(f"/api/v1/workflows/{shop['workflow']['id']}/", {"name": "Flow: Q1 (draft) é"},
                        format="json")
    assert renamed.status_code == 200, renamed.json()
    data = api.get(f"{RV}{shop['workflow']['id']}/dataSources/{shop['wds']['reference_id']}").json()
    assert data["workflow"]["qualifiedReference"].startswith("acme.flow_q1_draft_é:")
    assert "%C3%A9" in data["uri"] and " " not in data["url"]
    assert api.get(_path(data["url"])).json() == data
    assert api.get(BASE + data["uri"]).json() == data


def test_the_reference_id_wins_over_the_integer_id_on_this_path(api, shop):
    wds = WorkflowDataSource.objects.get(pk=shop["wds"]["id"])
    other_source = create_source(api, "Other", "other.db", SHOP)
    other = add_source(api, shop["workflow"], source_data_source="acme.other")
    # Give the first dataSource an all-digit reference id equal to the second one's integer id.
    WorkflowDataSource.objects.filter(pk=wds.pk).update(reference_id=str(other["id"]))
    data = api.get(f"{RV}acme.flow/dataSources/{other['id']}").json()
    assert data["sourceDataset"]["name"] == "Shop", data
    assert other_source["name"] == "Other"


def test_unknown_ids_are_404_in_the_seeds_words(api, shop):
    for ref in ("zzzz", "999999", "acme.nowhere", "acme.shop:v7_0", "acme.shop:sample"):
        response = api.get(f"{RV}acme.flow/dataSources/{ref}")
        assert response.status_code == 404, (ref, response.json())
        error = response.json()["error"]
        assert error["code"] == 404 and error["status"] == "NOT_FOUND" and error["message"] == "dataSource not found."
        assert list(error["errors"]) == ["dataSourceReference"], error


# --- Redivis's reference syntax -----------------------------------------------------------------------


@pytest.mark.parametrize("text,version", [
    ("acme.shop:v2_0", 2), ("acme.shop:V2_0", 2), ("acme.shop:v2.0", 2), ("acme.shop:v2", 2),
    ("acme.shop:current", "current"), ("acme.shop", None), ("acme.shop:abcd:sample:v3_0", 3),
    ("acme.shop:v2:v3_0", 3),  # a version-like reference id, then Redivis's version
])
def test_parse_dataset_reads_redivis_versions(text, version):
    parsed = redivis_refs.parse_dataset(text)
    assert parsed.ref.version == version and not parsed.next


def test_parse_dataset_reads_next():
    parsed = redivis_refs.parse_dataset("acme.shop:sample:next")
    assert parsed.next and parsed.ref.version is None and parsed.ref.sample


@pytest.mark.parametrize("text,part", [
    ("acme.shop:v2_1", "version"), ("acme.shop:v1_0:v2_0", "version"), ("acme.shop:next:current", "version"),
    ("acme.shop:v0_0", "version"), ("shop", "organization"), ("acme.shop:bad!", "suffix 1"),
    ("acme.shop:current:sample", "sample"),
])
def test_parse_dataset_refuses_in_redivis_words(text, part):
    with pytest.raises(InvalidReference) as caught:
        redivis_refs.parse_dataset(text)
    assert caught.value.part == part and caught.value.text == text
    assert "vN" not in caught.value.problem and "v1, v2, ... or current" not in caught.value.problem


@pytest.mark.parametrize("spelling", ["v{n}_0", "v{n}.0", "v{n}", "V{n}_0"])
def test_source_dataset_versions_in_every_spelling(api, shop, spelling):
    v2 = _rename(api, shop)
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1_0",
                         {"sourceDataset": "acme.shop:" + spelling.format(n=v2),
                          "mappedTables": {"old_table": "new_table"}}, format="json")
    assert response.status_code == 200, response.json()
    assert WorkflowDataSource.objects.get(pk=shop["wds"]["id"]).source_version == v2
    assert response.json()["sourceDataset"]["version"] == f"v{v2}.0"


def test_current_follows_the_newest_version(api, shop):
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1.0", {"sourceDataset": "acme.shop:current"},
                         format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["sourceDataset"]["version"] == "current"
    assert response.json()["sourceDataset"]["qualifiedReference"].endswith(":current")
    assert WorkflowDataSource.objects.get(pk=shop["wds"]["id"]).source_version is None
    assert api.get(f"{RV}acme.flow/dataSources/acme.shop:current").status_code == 200


def test_next_is_the_newest_version_pinned(api, shop):
    v2 = _rename(api, shop)
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1_0",
                         {"sourceDataset": "acme.shop:next", "mappedTables": {"old_table": "new_table"}},
                         format="json")
    assert response.status_code == 200, response.json()
    assert WorkflowDataSource.objects.get(pk=shop["wds"]["id"]).source_version == v2
    assert response.json()["sourceDataset"]["version"] == f"v{v2}.0"
    # In the path, :next names the dataSource pinned at its dataset's newest version.
    assert api.get(f"{RV}acme.flow/dataSources/acme.shop:next").json()["id"] == shop["wds"]["reference_id"]
    v3 = change_schema(api, shop["source"], "shop.db", "CREATE TABLE extra (id INTEGER);")
    assert v3 == v2 + 1
    assert api.get(f"{RV}acme.flow/dataSources/acme.shop:next").status_code == 404  # v2 is no longer the newest
    assert api.get(f"{RV}acme.flow/dataSources/acme.shop:v{v2}_0").status_code == 200


def test_next_of_a_dataset_without_versions_is_refused(api, shop):
    DataSource.objects.filter(pk=shop["source"]["id"]).update(schema_version=None)
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1_0", {"sourceDataset": "acme.shop:next"},
                         format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert list(error["errors"]) == ["sourceDataset"] and "next" in error["message"]


def test_a_minor_version_is_refused_by_name(api, shop):
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1_0", {"sourceDataset": "acme.shop:v1_1"},
                         format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["errors"]["sourceDataset"] == [
        "Invalid reference 'acme.shop:v1_1': version: 'v1_1' is not a version here: a source's versions are whole "
        "numbers (v1_0, v2_0, ...), with no minor versions."]
    assert api.get(f"{RV}acme.flow/dataSources/acme.shop:v1_1").status_code == 404


def test_a_sample_reference(api, shop):
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1_0", {"sourceDataset": "acme.shop:sample:v1_0"},
                         format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["isSample"] is True and data["sourceDataset"]["qualifiedReference"].endswith(":sample:v1_0")
    assert api.get(f"{RV}acme.flow/dataSources/acme.shop:sample:v1_0").json()["id"] == data["id"]
    assert api.get(BASE + data["uri"]).json() == data


def test_a_workflow_source_and_its_representation(api, shop):
    upstream = create_workflow(api, "Upstream")
    up_source = add_source(api, upstream, source_data_source="acme.shop:v1")
    add_node(api, upstream, "make", [(up_source, "old_table")], output={"name": "old_table"})
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1_0",
                         {"sourceWorkflow": "acme.upstream", "mappedTables": {"keep": "old_table"}}, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["sourceDataset"] is None and set(data["sourceWorkflow"]) == WORKFLOW_BASE
    assert data["sourceWorkflow"]["qualifiedReference"] == f"acme.upstream:{upstream['reference_id']}"
    assert api.get(f"{RV}acme.flow/dataSources/{data['sourceWorkflow']['qualifiedReference']}").json() == data
    assert api.get(f"{RV}acme.flow/dataSources/acme.upstream:v1_0").status_code == 404  # a workflow has no version


# --- errors in the seed's vocabulary -------------------------------------------------------------------


def test_unmapped_tables_in_the_seeds_error_shape_and_nothing_changes(api, shop):
    v2 = change_schema(api, shop["source"], "shop.db", "DROP TABLE old_table;")
    before = list(NodeInput.objects.values_list("table_reference_id", "table_name"))
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1", {"sourceDataset": f"acme.shop:v{v2}_0"},
                         format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "UNMAPPED_TABLES" and error["code"] == 400
    key = f"mappedTables.old_table:{shop['v1']['old_table']}"
    assert error["errors"] == {key: ["Read by 'n1'; has no table in the new source. Map it in mappedTables."]}
    assert error["unmappedTables"][0]["table"] == {"name": "old_table", "referenceId": shop["v1"]["old_table"],
                                                  "reference": f"old_table:{shop['v1']['old_table']}"}
    assert error["unmappedTables"][0]["nodes"][0]["name"] == "n1"
    _no_native_words(response.json())
    assert list(NodeInput.objects.values_list("table_reference_id", "table_name")) == before


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "sourceDataset"),
        ({"sourceDataset": "acme.shop", "sourceWorkflow": "acme.flow"}, "sourceDataset"),
        ({"sourceDataset": "acme.shop", "unknown": 1}, "unknown"),
    ],
)
def test_bad_bodies_name_the_seeds_fields(api, shop, body, field):
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["errors"]
    _no_native_words(response.json())


def test_exactly_one_source_in_the_seeds_own_sentence(api, shop):
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1", {}, format="json")
    message = "Either a sourceDataset or sourceWorkflow must be provided, but not both."
    assert response.json()["error"]["message"] == message
    assert response.json()["error"]["errors"] == {"sourceDataset": [message], "sourceWorkflow": [message]}


def test_null_is_a_field_not_given_as_generated_sdks_send_it(api, shop):
    """SDKs generated from the schema send ``null`` for the fields they leave unset: the other source is
    the one named, ``mappedTables: null`` is automatic mapping, and both null name no source (the seed's 400)."""
    upstream = create_workflow(api, "Upstream")
    up_source = add_source(api, upstream, source_data_source="acme.shop:v1")
    add_node(api, upstream, "make", [(up_source, "old_table")], output={"name": "old_table"})
    url = f"{RV}acme.flow/dataSources/acme.shop:v1_0"
    response = api.patch(url, {"sourceDataset": None, "sourceWorkflow": "acme.upstream",
                               "mappedTables": {"keep": "old_table"}}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["sourceWorkflow"]["name"] == "Upstream"
    back = api.patch(f"{RV}acme.flow/dataSources/{response.json()['id']}",
                     {"sourceDataset": "acme.shop:v1_0", "sourceWorkflow": None, "mappedTables": None}, format="json")
    assert back.status_code == 200, back.json()
    assert back.json()["sourceWorkflow"] is None and back.json()["sourceDataset"]["version"] == "v1.0"
    message = "Either a sourceDataset or sourceWorkflow must be provided, but not both."
    for body in ({"sourceDataset": None, "sourceWorkflow": None}, {"sourceDataset": None}, {"mappedTables": None}):
        error = api.patch(url, body, format="json").json()["error"]
        assert error["message"] == message, body
        assert error["errors"] == {"sourceDataset": [message], "sourceWorkflow": [message]}


def _second_workflow(api, shop):
    other = create_workflow(api, "Other flow")
    add_source(api, other, source_data_source="acme.shop:v1")
    return other


ERROR_CASES = [
    # (name, method, path, body, status, error keys)
    ("malformed sourceDataset", "patch", "acme.flow/dataSources/acme.shop:v1", {"sourceDataset": "noorg"}, 400,
     {"sourceDataset"}),
    ("malformed sourceWorkflow", "patch", "acme.flow/dataSources/acme.shop:v1", {"sourceWorkflow": "acme.x:v1_0"},
     400, {"sourceWorkflow"}),
    ("unknown dataset", "patch", "acme.flow/dataSources/acme.shop:v1", {"sourceDataset": "acme.nothere"}, 404,
     {"sourceDataset"}),
    ("another organization's dataset", "patch", "acme.flow/dataSources/acme.shop:v1",
     {"sourceDataset": "globex.shop"}, 404, {"sourceDataset"}),
    ("unknown workflow", "patch", "acme.flow/dataSources/acme.shop:v1", {"sourceWorkflow": "acme.nothere"}, 404,
     {"sourceWorkflow"}),
    ("missing version", "patch", "acme.flow/dataSources/acme.shop:v1", {"sourceDataset": "acme.shop:v9_0"}, 400,
     {"sourceDataset"}),
    ("unknown next dataset", "patch", "acme.flow/dataSources/acme.shop:v1", {"sourceDataset": "acme.nothere:next"},
     404, {"sourceDataset"}),
    ("a cycle", "patch", "acme.flow/dataSources/acme.shop:v1", {"sourceWorkflow": "acme.flow"}, 400,
     {"sourceWorkflow"}),
    ("a mapping key nobody reads", "patch", "acme.flow/dataSources/acme.shop:v1",
     {"sourceDataset": "acme.shop:v1_0", "mappedTables": {"typo": "keep"}}, 400, {"mappedTables.typo"}),
    ("a mapping key with an unknown reference id", "patch", "acme.flow/dataSources/acme.shop:v1",
     {"sourceDataset": "acme.shop:v1_0", "mappedTables": {"keep:zzzz": "keep"}}, 400, {"mappedTables.keep:zzzz"}),
    ("a mapping to no table", "patch", "acme.flow/dataSources/acme.shop:v1",
     {"sourceDataset": "acme.shop:v1_0", "mappedTables": {"keep": "nothing"}}, 400, {"mappedTables.keep"}),
    ("a malformed mapping value", "patch", "acme.flow/dataSources/acme.shop:v1",
     {"sourceDataset": "acme.shop:v1_0", "mappedTables": {"keep": "a:b:c"}}, 400, {"mappedTables.keep"}),
    ("a malformed mapping key", "patch", "acme.flow/dataSources/acme.shop:v1",
     {"sourceDataset": "acme.shop:v1_0", "mappedTables": {"a:b:c": "keep"}}, 400, {"mappedTables.a:b:c"}),
    ("a mapping value that is not a string", "patch", "acme.flow/dataSources/acme.shop:v1",
     {"sourceDataset": "acme.shop:v1_0", "mappedTables": {"keep": 5}}, 400, {"mappedTables.keep"}),
    ("unknown workflowReference", "get", "acme.nothere/dataSources/acme.shop", None, 404, {"workflowReference"}),
    ("malformed workflowReference", "patch", "noorg/dataSources/acme.shop", {"sourceDataset": "acme.shop"}, 404,
     {"workflowReference"}),
    ("malformed dataSourceReference", "patch", "acme.flow/dataSources/acme.shop:v1_0:v2_0",
     {"sourceDataset": "acme.shop"}, 404, {"dataSourceReference"}),
    ("unknown dataSource", "get", "acme.flow/dataSources/acme.elsewhere", None, 404, {"dataSourceReference"}),
    ("another organization's dataSource", "get", "acme.flow/dataSources/globex.shop", None, 404,
     {"dataSourceReference"}),
    ("a dry run", "patch", "acme.flow/dataSources/acme.shop?dry_run=true", {"sourceDataset": "acme.shop"}, 400,
     {"dry_run"}),
    ("a wrong method", "put", "acme.flow/dataSources/acme.shop", {"sourceDataset": "acme.shop"}, 405, set()),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_every_error_speaks_the_seeds_vocabulary(api, other_api, shop, case):
    create_source(other_api, "Shop", "theirs.db", SHOP)
    _, method, path, body, status, keys = case
    response = getattr(api, method)(RV + path, body, format="json") if body is not None else \
        getattr(api, method)(RV + path)
    assert response.status_code == status, response.json()
    error = response.json()["error"]
    assert error["code"] == status and set(error.get("errors", {})) == keys, error
    _no_native_words(response.json())


def test_specific_messages_in_the_seeds_words(api, shop):
    def error(body, path="acme.flow/dataSources/acme.shop:v1"):
        return api.patch(RV + path, body, format="json").json()["error"]

    missing = error({"sourceDataset": "acme.shop:v9_0"})
    assert missing["message"] == "Dataset 'Shop' has no version v9_0."
    assert missing["errors"] == {"sourceDataset": ["No version v9_0; the latest is v1_0."]}
    assert error({"sourceDataset": "acme.nothere"})["message"] == "No such dataset in your organization."
    unread = error({"sourceDataset": "acme.shop", "mappedTables": {"typo": "keep"}})
    assert unread["message"] == ("Some mappedTables entries do not match a table read downstream or a table of the "
                                 "new source.")
    assert unread["errors"] == {"mappedTables.typo": ["The dataset has no table with name 'typo'."]}
    assert error({"sourceDataset": "acme.shop", "mappedTables": {"keep": 5}})["errors"] == {
        "mappedTables.keep": ["Not a valid string."]}
    path = error({"sourceDataset": "acme.shop"}, "acme.flow/dataSources/acme.shop:bad!")
    assert path["message"].startswith("dataSource not found: 'dataSourceReference' is neither")


def test_a_second_data_source_on_the_same_source_is_409_in_the_seeds_words(api, shop):
    add_source(api, shop["workflow"], source_data_source="acme.shop:sample:v1")
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1_0", {"sourceDataset": "acme.shop:sample:v1_0"},
                         format="json")
    assert response.status_code == 409, response.json()
    error = response.json()["error"]
    assert error["message"] == "This workflow already has a dataSource pointing at that source."
    assert error["errors"] == {"sourceDataset": ["Already a dataSource of this workflow."]}


def test_a_reference_matching_several_data_sources_lists_their_ids(api, shop):
    sample = add_source(api, shop["workflow"], source_data_source="acme.shop:sample:v1")
    # Without ':sample' the reference means the dataset itself, not its sample.
    assert api.get(f"{RV}acme.flow/dataSources/acme.shop").json()["id"] == shop["wds"]["reference_id"]
    assert api.get(f"{RV}acme.flow/dataSources/acme.shop:sample").json()["id"] == sample["reference_id"]
    other = add_source(api, shop["workflow"], source_data_source="acme.shop:current")
    response = api.get(f"{RV}acme.flow/dataSources/acme.shop")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["errors"] == {"dataSourceReference": [
        f"Matches the dataSources {shop['wds']['reference_id']}, {other['reference_id']}."]}
    assert api.get(f"{RV}acme.flow/dataSources/{other['reference_id']}").json()["sourceDataset"]["version"] == \
        "current"
    _no_native_words(response.json())


def test_if_match_is_honoured_before_the_new_source_is_read(api, shop):
    url = f"{RV}acme.flow/dataSources/acme.shop:v1_0"
    etag = api.get(url)["ETag"]
    stale = api.patch(url, {"sourceDataset": "acme.shop:next"}, format="json", HTTP_IF_MATCH='"0-0"')
    assert stale.status_code == 412 and stale.json()["error"]["status"] == "PRECONDITION_FAILED"
    stale_bad = api.patch(url, {"sourceDataset": "acme.nothere"}, format="json", HTTP_IF_MATCH='"0-0"')
    assert stale_bad.status_code == 412
    fresh = api.patch(url, {"sourceDataset": "acme.shop:current"}, format="json", HTTP_IF_MATCH=etag)
    assert fresh.status_code == 200, fresh.json()
    assert fresh["ETag"] != etag


# --- authorization and the organization boundary ---------------------------------------------------------


def test_scope_workflow_write_and_organization_boundary(make_client, org, other_api, shop):
    reader = make_client(org, ["workflow.read", "datasource.read"])
    url = f"{RV}acme.flow/dataSources/acme.shop:v1"
    assert reader.get(url).status_code == 200  # reading needs workflow.read only
    forbidden = reader.patch(url, {"sourceDataset": "acme.shop"}, format="json")
    assert forbidden.status_code == 403 and "workflow.write" in forbidden.json()["error"]["message"]
    response = other_api.patch(url, {"sourceDataset": "acme.shop"}, format="json")
    assert response.status_code == 404 and response.json()["error"]["status"] == "NOT_FOUND"
    assert other_api.get(f"{RV}acme.flow/dataSources/{shop['wds']['reference_id']}").status_code == 404
    assert make_client(org, ["datasource.read"]).get(url).status_code == 403


def test_core_rule_cross_organization_source_is_404(api, other_api, other_org, shop):
    create_source(other_api, "Theirs", "theirs.db", SHOP)
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1", {"sourceDataset": "globex.theirs"},
                         format="json")
    assert response.status_code == 404
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1", {"sourceDataset": "globex.theirs:next"},
                         format="json")
    assert response.status_code == 404


def test_a_dry_run_asked_of_the_redivis_endpoint_is_refused_and_applies_nothing(api, shop):
    """Redivis has no dry run: a client asking for one must not get the change applied."""
    _rename(api, shop)
    before = list(NodeInput.objects.values_list("table_reference_id", "table_name"))
    response = api.patch(f"{RV}acme.flow/dataSources/acme.shop:v1?dry_run=true",
                         {"sourceDataset": "acme.shop:v2_0", "mappedTables": {"old_table": "new_table"}},
                         format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert "dry_run" in error["errors"] and "/api/v1/workflows/" in error["message"], error
    assert list(NodeInput.objects.values_list("table_reference_id", "table_name")) == before


def test_a_data_source_path_means_the_exact_spelling_among_sources_named_alike(api, shop):
    """Sources written before names were kept unique after escaping may share one: the spelling given
    picks one (as the main API's paths do); a spelling that matches neither exactly stays ambiguous."""
    from datasources.models import DataSource

    first = create_source(api, "Demo Shop", "demo.db", "CREATE TABLE t (id INTEGER);")
    second = create_source(api, "Other", "other.db", "CREATE TABLE t (id INTEGER);")
    DataSource.objects.filter(pk=second["id"]).update(name="demo-shop")  # what an older release let through
    a = add_source(api, shop["workflow"], source_data_source=f"acme.x:{first['reference_id']}")
    b = add_source(api, shop["workflow"], source_data_source=f"acme.x:{second['reference_id']}")
    for spelling, wds in (("Demo%20Shop", a), ("demo-shop", b)):
        found = api.get(f"{RV}acme.flow/dataSources/acme.{spelling}")
        assert found.status_code == 200, found.json()
        assert found.json()["id"] == wds["reference_id"], (spelling, found.json())
    neither = api.get(f"{RV}acme.flow/dataSources/acme.demo_shop")
    assert neither.status_code == 400, neither.json()
