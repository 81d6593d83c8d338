"""Query parameters that decide what a write does (``dry_run``, ``test_connection``, ``purge``): given
twice, or misspelt, they are a 400 and nothing changes. Before, the last value won
(``?dry_run=true&dry_run=false`` applied the write, ``?purge=false&purge=true`` purged for good) and an
unknown name was ignored (``?dryrun=true`` applied it)."""

from __future__ import annotations

import pytest

from datasources.models import DataSource, TrashedDataSource
from tests.support.workflows import WF, add_node, add_source, create_source, create_workflow, wds_url

DS = "/api/v1/data-sources/"


@pytest.fixture
def source(api):
    return create_source(api, "Shop", "shop.db", "CREATE TABLE items (id INTEGER);")


def _refused(response, name: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "INVALID_REQUEST_BODY" and name in body["errors"], body


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "name"), [
    ("dry_run=true&dry_run=false", "dry_run"), ("dry_run=false&dry_run=true", "dry_run"),
    ("test_connection=true&test_connection=false", "test_connection"), ("dryrun=true", "dryrun"),
    ("Dry_Run=true", "Dry_Run"), ("dry_run=true&force=1", "force")])
@pytest.mark.parametrize("method", ["patch", "put"])
def test_a_write_with_a_doubled_or_unknown_parameter_changes_nothing(api, source, query, name, method):
    body = {"description": "changed"}
    if method == "put":
        body = {"name": "Shop", "connection": source["connection"], "description": "changed"}
    _refused(getattr(api, method)(f"{DS}{source['id']}/?{query}", body, format="json"), name)
    ds = DataSource.objects.get(pk=source["id"])
    assert (ds.version, ds.description) == (source["version"], source["description"])


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["purge=false&purge=true", "purge=true&purge=false", "Purge=true", "purged=1"])
def test_a_delete_with_a_doubled_or_unknown_parameter_deletes_nothing(api, source, query):
    _refused(api.delete(f"{DS}{source['id']}/?{query}"), query.split("=")[0])
    assert DataSource.objects.filter(pk=source["id"]).exists() and not TrashedDataSource.objects.exists()


@pytest.mark.django_db
def test_a_create_with_an_unknown_parameter_creates_nothing(api, source):
    body = {"name": "Other", "type": "sqlite", "connection": source["connection"]}
    _refused(api.post(f"{DS}?test_connection=false&dryrun=1", body, format="json"), "dryrun")
    assert DataSource.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["dry_run=true&dry_run=false", "dryrun=true"])
def test_a_revision_restore_with_a_doubled_or_unknown_parameter_restores_nothing(api, source, query):
    assert api.patch(f"{DS}{source['id']}/", {"description": "v2"}, format="json").status_code == 200
    _refused(api.post(f"{DS}{source['id']}/revisions/1/restore/?{query}"), query.split("=")[0])
    assert DataSource.objects.get(pk=source["id"]).description == "v2"


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["dry_run=true&dry_run=false", "dryrun=true"])
def test_a_repoint_with_a_doubled_or_unknown_parameter_changes_nothing(api, source, query):
    other = create_source(api, "Other", "other.db", "CREATE TABLE items (id INTEGER);")
    flow = create_workflow(api, "Flow")
    wds = add_source(api, flow, source_data_source="acme.shop")
    add_node(api, flow, "n1", [(wds, "items")])
    response = api.patch(f"{wds_url(flow, wds)}?{query}", {"source_data_source": "acme.other"}, format="json")
    _refused(response, query.split("=")[0])
    assert api.get(wds_url(flow, wds)).json()["source"]["id"] == source["id"] != other["id"]
    assert api.get(f"{WF}{flow['id']}/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["ordering=name&ordering=-name", "page=1&page=2", "page_size=5&page_size=50"])
def test_a_list_parameter_given_twice_is_a_400(api, source, query):
    name = query.split("=")[0]
    response = api.get(f"{DS}?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {name: ["Give this parameter once (one value)."]}


@pytest.mark.django_db
def test_a_schema_diff_bound_given_twice_is_a_400(api, source):
    response = api.get(f"{DS}{source['id']}/schema/diff/?from=1&from=1&to=1")
    assert response.status_code == 400 and "from" in response.json()["errors"], response.json()
