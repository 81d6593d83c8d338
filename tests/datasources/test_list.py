"""Listing: filters, search, ordering, pagination, bounded queries; the type catalogue; history."""

from __future__ import annotations

import pytest

from datasources.catalogue import CATALOGUE
from datasources.models import DataSource
from organizations.models import Workspace

URL = "/api/v1/data-sources/"


@pytest.fixture
def many(api, org, sqlite_file):
    ws = Workspace.objects.create(organization=org, name="Team")
    for i in range(50):
        body = {"name": f"src {i:02d}", "type": "sqlite", "connection": {"path": sqlite_file},
                "tags": ["even"] if i % 2 == 0 else ["odd"], "workspace": ws.pk if i < 5 else None}
        assert api.post(f"{URL}?test_connection=false", body, format="json").status_code == 201
    return ws


def test_list_of_fifty_in_a_constant_number_of_queries(api, many, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):  # the token, the count, the page with everything it renders
        response = api.get(f"{URL}?page_size=50")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 50


def test_filters_search_ordering_pagination(api, many):
    assert api.get(f"{URL}?tag=even").json()["count"] == 25
    assert api.get(f"{URL}?workspace={many.pk}").json()["count"] == 5
    assert api.get(f"{URL}?type=sqlite").json()["count"] == 50
    assert api.get(f"{URL}?type=mysql").json()["count"] == 0
    assert api.get(f"{URL}?status=pending").json()["count"] == 50
    assert api.get(f"{URL}?search=\"src 1\"").json()["count"] == 10
    names = [d["name"] for d in api.get(f"{URL}?ordering=-name&page_size=3").json()["results"]]
    assert names == ["src 49", "src 48", "src 47"]
    page2 = api.get(f"{URL}?page=2&page_size=20").json()
    assert len(page2["results"]) == 20 and page2["next"] and page2["previous"]
    bad = api.get(f"{URL}?type=nope")
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_REQUEST_BODY"
    twice = api.get(f"{URL}?type=sqlite&type=mysql")  # filtered on mysql alone (count 0), silently
    assert twice.status_code == 400 and twice.json()["errors"] == {"type": ["Give this parameter once (one value)."]}


def test_type_catalogue_lists_every_type_with_fields(api):
    data = api.get("/api/v1/data-source-types/").json()
    assert {t["key"] for t in data} == set(CATALOGUE)
    pg = api.get("/api/v1/data-source-types/postgresql/").json()
    names = {f["name"] for f in pg["connection_fields"]}
    assert {"host", "port", "database", "username", "ssl", "ssh_tunnel"} <= names
    assert "password" in {s["name"] for s in pg["secret_fields"]}
    assert api.get("/api/v1/data-source-types/nope/").status_code == 404


def test_history_is_newest_first_with_actor_and_request_id(api, sqlite_file):
    ds = api.post(URL, {"name": "H", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json").json()
    api.patch(f"{URL}{ds['id']}/", {"description": "one"}, format="json", HTTP_X_REQUEST_ID="req-1")
    api.post(f"{URL}{ds['id']}/test/")
    events = api.get(f"{URL}{ds['id']}/history/").json()["results"]
    assert [e["action"] for e in events] == ["test", "update", "create"]
    assert events[1]["changes"] == {"description": {"old": "", "new": "one"}}
    assert events[1]["request_id"] == "req-1"
    assert events[1]["actor"].startswith("token:")


def test_delete_removes_and_records(api, sqlite_file):
    ds = api.post(URL, {"name": "D", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json").json()
    assert api.delete(f"{URL}{ds['id']}/").status_code == 204
    assert not DataSource.objects.filter(pk=ds["id"]).exists()
    assert api.get(f"{URL}{ds['id']}/").status_code == 404


def test_create_response_has_etag_location_schema_and_test(api, sqlite_file):
    response = api.post(URL, {"name": "C", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert response["ETag"] == f'"{body["id"]}-1"'
    assert response["Location"].endswith(f"/api/v1/data-sources/{body['id']}/")
    assert body["schema"]["status"] == "ready" and body["schema"]["table_count"] == 2
    assert body["last_test"]["ok"] is True and body["status"] == "active"
    assert body["is_fully_configured"] is True
    schema = api.get(f"{URL}{body['id']}/schema/").json()
    assert {t["name"] for t in schema["tables"]} == {"items", "buyers"}


@pytest.mark.parametrize("query", ["page_size=0", "page_size=t", "page_size=201", "page=", "page=0", "page=1.5"])
def test_malformed_paging_is_400(api, query):
    response = api.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST_BODY"


@pytest.mark.parametrize("query", ["ordering=nope", "ordering=-name,bogus", "ordering="])
def test_unknown_ordering_is_400(api, query):
    response = api.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert "ordering" in response.json()["errors"]


def test_the_compiled_page_reads_what_the_queryset_page_reads(api, many, other_api, sqlite_file,
                                                               django_assert_num_queries):
    """The unfiltered list takes a page statement compiled once per connection; with an ordering (or a
    filter) it takes the queryset path: both give the same pages, counts and links."""
    theirs = {"name": "theirs", "type": "sqlite", "connection": {"path": sqlite_file}}
    assert other_api.post(f"{URL}?test_connection=false", theirs, format="json").status_code == 201
    api.get(URL)  # warm: the token cache and the compiled statement
    for query in ("", "page=2&page_size=7", "page=8&page_size=7", "page_size=200"):
        with django_assert_num_queries(1):  # the page, counted in the same statement (an uncorrelated COUNT)
            compiled = api.get(f"{URL}?{query}")
        queryset = api.get(f"{URL}?{query}&ordering=id")
        assert compiled.status_code == 200 and queryset.status_code == 200
        body, expected = compiled.json(), queryset.json()
        assert body["results"] == expected["results"] and body["count"] == expected["count"] == 50
        assert "theirs" not in {item["name"] for item in body["results"]}
    assert [item["name"] for item in api.get(f"{URL}?page=8&page_size=7").json()["results"]] == ["src 49"]
    with django_assert_num_queries(2):  # past the end: the page is empty, the count is its own statement
        assert api.get(f"{URL}?page=9&page_size=7").status_code == 404
    assert api.get(f"{URL}?page=0").status_code == 400 and api.get(f"{URL}?page_size=201").status_code == 400


@pytest.mark.parametrize("query", ["ordering=type", "ordering=-status&tag=even", "ordering=name&type=sqlite",
                                   "tag=odd", "search=src&ordering=-created_at"])
def test_filtered_and_ordered_pages_hold_every_row_once_in_order(api, many, query):
    """Ties in the ordering (every source has the same type and status; created together) are broken by
    the id, so walking the pages gives each matching row once, in the order of one full page."""
    whole = api.get(f"{URL}?{query}&page_size=200").json()
    walked = []
    for page in range(1, 100):
        response = api.get(f"{URL}?{query}&page_size=7&page={page}")
        if response.status_code == 404:
            break
        assert response.status_code == 200 and response.json()["count"] == whole["count"]
        walked += response.json()["results"]
    assert walked == whole["results"] and len({item["id"] for item in walked}) == whole["count"] > 0


def test_a_deep_filtered_page_builds_only_its_own_rows(api, org, django_assert_num_queries):
    """The page's ids are picked by the filters and the ordering alone: the per-row subqueries of the
    representation run for the page's rows, not for every row the OFFSET skips (PostgreSQL's plan)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    DataSource.objects.bulk_create(
        DataSource(organization=org, reference_id=f"d{i:05d}", name=f"deep {i:04d}", type="sqlite",
                   connection={"path": "x.db"}, tags=["t"]) for i in range(600))
    api.get(URL)  # warm: the token cache
    for query in ("tag=t&page=11", "ordering=-name&page=11", "type=sqlite&page=12&page_size=50"):
        with django_assert_num_queries(2), CaptureQueriesContext(connection) as statements:  # the count, the page
            response = api.get(f"{URL}?{query}")
        assert response.status_code == 200 and len(response.json()["results"]) == 50
        if connection.vendor != "postgresql":
            continue
        page_sql = statements.captured_queries[-1]["sql"]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {page_sql}")
            plan = cursor.fetchone()[0]
        loops = _subplan_loops(plan[0]["Plan"])
        assert loops and max(loops) <= 50, (query, loops)


def _subplan_loops(node: dict) -> list[int]:
    """How many times each per-row subquery of a JSON plan ran."""
    found = [node["Actual Loops"]] if node.get("Parent Relationship") == "SubPlan" else []
    for child in node.get("Plans", []):
        found += _subplan_loops(child)
    return found


def test_ids_first_keeps_the_plain_slice_when_the_ordering_reads_raw_sql(org):
    """A RawSQL annotation names the outer table, which the ids' subquery renames: ordering by one
    (not an API ordering, but IdsFirst is general) must still give the queryset's own rows."""
    from core.pagination import IdsFirst
    from datasources.models import Credential
    from datasources.selectors import data_sources_for_actor
    from organizations.actors import Actor

    DataSource.objects.bulk_create(
        DataSource(organization=org, reference_id=f"r{i:05d}", name=f"raw {i:02d}", type="sqlite",
                   connection={"path": "x.db"}) for i in range(12))
    for i, ds in enumerate(DataSource.objects.filter(organization=org).order_by("id")):
        Credential.objects.create(data_source=ds, field=f"f{11 - i:02d}", key_id="k", ciphertext="c")
    queryset = data_sources_for_actor(Actor(organization=org)).order_by("_secret_names")
    assert [ds.pk for ds in IdsFirst(queryset)[3:7]] == [ds.pk for ds in queryset][3:7]
    by_name = IdsFirst(data_sources_for_actor(Actor(organization=org)).order_by("-name"))
    assert [ds.name for ds in by_name[3:5]] == ["raw 08", "raw 07"]


@pytest.mark.parametrize("url", [URL, "/api/v1/workflows/"])
def test_names_order_as_people_read_them_whatever_the_collation(api, org, url):
    """``ordering=name`` is alphabetical in any case (SQLite and a C collation put every capital first),
    then by exact spelling; ``-name`` is its reverse. Pages walk it without repeating a row."""
    from workflows.models import Workflow

    names = ["banana", "Apple", "cherry", "Banana split", "apple pie", "Zebra", "éclair"]
    if url == URL:
        DataSource.objects.bulk_create(
            DataSource(organization=org, reference_id=f"n{i:04d}", name=name, type="sqlite",
                       connection={"path": "x.db"}) for i, name in enumerate(names))
    else:
        Workflow.objects.bulk_create(Workflow(organization=org, reference_id=f"n{i:04d}", name=name)
                                     for i, name in enumerate(names))
    ordered = [d["name"] for d in api.get(f"{url}?ordering=name&page_size=50").json()["results"]]
    assert ordered[:6] == ["Apple", "apple pie", "banana", "Banana split", "cherry", "Zebra"], ordered
    reverse = [d["name"] for d in api.get(f"{url}?ordering=-name&page_size=50").json()["results"]]
    assert reverse == ordered[::-1]
    pages = [api.get(f"{url}?ordering=name&page_size=3&page={page}").json()["results"] for page in (1, 2, 3)]
    walked = [d["name"] for page in pages for d in page]
    assert walked == ordered


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["9223372036854775808", "99999999999999999999", "0"])
def test_a_workspace_id_outside_64_bits_is_a_400_not_a_500(api, value):
    """SQLite cannot bind an integer past 64 bits (OverflowError: a 500 on `make run`'s database)."""
    response = api.get(f"{URL}?workspace={value}")
    assert response.status_code == 400 and "workspace" in response.json()["errors"], response.content
    assert api.get(f"{URL}?workspace=9223372036854775807").json()["count"] == 0
