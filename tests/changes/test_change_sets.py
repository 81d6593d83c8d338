"""Change sets (issue 19, part 4), through the API against real sources: tested together, applied
all or nothing in one transaction; a failing item or a source changed since leaves every source
untouched. Transactional tests: the items are tested in threads with their own connections."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from changes.models import ChangeSet
from datasources.models import DataSource, DataSourceRevision
from eventlog.models import Event
from tests.conftest import require_service
from tests.support.rate_window import within_one_rate_window
from tests.support.workflows import create_source, sqlite_db

CS = "/api/v1/change-sets/"
DS = "/api/v1/data-sources/"
SCRIPT = "CREATE TABLE t (id INTEGER);"


def sources(api, count: int) -> list[dict]:
    made = [create_source(api, f"S{i}", f"s{i}.db", SCRIPT) for i in range(count)]
    for i in range(count):
        sqlite_db(f"n{i}.db", SCRIPT + "CREATE TABLE extra (id INTEGER);")
    return made


def snapshot(made: list[dict]) -> dict[int, tuple]:
    return {row.pk: (row.version, row.connection, row.description)
            for row in DataSource.objects.filter(pk__in=[d["id"] for d in made])}


def moves(made: list[dict]) -> list[dict]:
    return [{"data_source": d["id"], "changes": {"connection": {"path": f"n{i}.db"}, "description": f"moved {i}"}}
            for i, d in enumerate(made)]


def create(api, items: list[dict]):
    return api.post(CS, {"items": items}, format="json")


@pytest.mark.django_db(transaction=True)
def test_a_passing_set_applies_every_item_in_one_transaction(api):
    made = sources(api, 5)
    before = snapshot(made)
    revisions = DataSourceRevision.objects.count()
    response = create(api, moves(made))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"].startswith("chs_") and body["status"] == "open" and body["failed_count"] == 0
    assert [i["data_source"] for i in body["items"]] == [d["id"] for d in made]
    item = body["items"][0]
    assert item["ok"] is True and item["test"]["ok"] is True and item["error"] is None
    assert item["changed"] == ["connection.path", "description"]
    assert item["changes"]["connection.path"] == {"old": "s0.db", "new": "n0.db"}
    assert item["impact"]["schema_compared"] is True
    assert snapshot(made) == before  # testing changed nothing
    events = Event.objects.filter(type="data_source.updated").count()
    applied = api.post(f"{CS}{body['id']}/apply/")
    assert applied.status_code == 200, applied.json()
    assert applied.json()["status"] == "applied"
    after = snapshot(made)
    for i, d in enumerate(made):
        assert after[d["id"]] == (before[d["id"]][0] + 1, {"path": f"n{i}.db", "read_only": True}, f"moved {i}")
    assert {a["id"]: a["version"] for a in applied.json()["applied"]} == {pk: v[0] for pk, v in after.items()}
    assert DataSourceRevision.objects.count() == revisions + 5
    assert Event.objects.filter(type="data_source.updated").count() == events + 5
    for d in made:  # the schema was refreshed after the commit: the new table is cached
        names = {t["name"] for t in api.get(f"{DS}{d['id']}/schema/").json()["tables"]}
        assert names == {"t", "extra"}
    again = api.post(f"{CS}{body['id']}/apply/")
    assert again.status_code == 409 and snapshot(made) == after
    assert api.get(CS).json()["results"][0]["status"] == "applied"


@pytest.mark.django_db(transaction=True)
def test_one_failing_item_leaves_every_source_untouched_and_the_apply_is_refused(api):
    made = sources(api, 4)
    items = moves(made)
    items[2]["changes"]["connection"]["path"] = "missing.db"
    before = snapshot(made)
    response = create(api, items)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "failed" and body["failed_count"] == 1
    assert [i["ok"] for i in body["items"]] == [True, True, False, True]
    assert body["items"][2]["error"]["code"] == "CREDENTIAL_TEST_FAILED"
    refused = api.post(f"{CS}{body['id']}/apply/")
    assert refused.status_code == 409 and refused.json()["code"] == "CHANGE_SET_FAILED", refused.json()
    assert list(refused.json()["errors"]) == ["items.2"]
    assert snapshot(made) == before


@pytest.mark.django_db(transaction=True)
def test_a_source_changed_after_the_test_refuses_the_apply_and_nothing_changes(api):
    made = sources(api, 3)
    body = create(api, moves(made)).json()
    assert api.patch(f"{DS}{made[1]['id']}/", {"description": "meanwhile"}, format="json").status_code == 200
    before = snapshot(made)
    refused = api.post(f"{CS}{body['id']}/apply/")
    assert refused.status_code == 409 and refused.json()["code"] == "CONFLICT", refused.json()
    assert list(refused.json()["errors"]) == ["items.1.data_source"]
    assert snapshot(made) == before and ChangeSet.objects.get(public_id=body["id"]).status == "open"


@pytest.mark.django_db(transaction=True)
def test_bad_lists_are_400_or_404_naming_the_item_and_test_nothing(api, other_api, settings):
    made = sources(api, 2)
    theirs = create_source(other_api, "Theirs", "theirs.db", SCRIPT)
    for other in (theirs["id"], 999999):  # another organization's source, or none: 404 naming the item
        response = create(api, [{"data_source": made[0]["id"], "changes": {}}, {"data_source": other, "changes": {}}])
        assert response.status_code == 404 and list(response.json()["errors"]) == ["items.1.data_source"]
    cases = [
        ([{"data_source": made[0]["id"], "changes": {}, "extra": 1}], "items.0.extra"),
        ([{"data_source": made[0]["id"], "changes": {}}, {"data_source": made[0]["id"], "changes": {}}],
         "items.1.data_source"),
        ([{"data_source": made[0]["id"], "changes": {"connection_pool_size": 0}}],
         "items.0.changes.connection_pool_size"),
        ([{"data_source": made[0]["id"]}], "items.0.changes"),
    ]
    for items, field in cases:
        response = create(api, items)
        assert response.status_code == 400, response.json()
        assert field in response.json()["errors"], (field, response.json())
    settings.CHANGE_SET_MAX_ITEMS = 1
    response = create(api, [{"data_source": d["id"], "changes": {}} for d in made])
    assert response.status_code == 400 and "items" in response.json()["errors"]
    assert not ChangeSet.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_another_organizations_sets_are_404(api, other_api):
    made = sources(api, 1)
    body = create(api, moves(made)).json()
    assert other_api.get(f"{CS}{body['id']}/").status_code == 404
    assert other_api.post(f"{CS}{body['id']}/apply/").status_code == 404
    assert other_api.get(CS).json()["results"] == []
    assert api.get(f"{CS}chs_nothing/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_test_budget_counts_a_set_per_25_items_not_per_item(api, settings):
    made = sources(api, 30)
    sqlite_db("same.db", SCRIPT)
    settings.DATASOURCE_TEST_RATE_PER_TOKEN = 2
    within_one_rate_window(15)
    cache.clear()  # the creations' counts
    # 30 items count 2 tests (25 each): within a rate of 2 a minute, where 30 single tests are not.
    response = create(api, [{"data_source": d["id"], "changes": {"connection": {"path": "same.db"}}} for d in made])
    assert response.status_code == 201, response.json()
    assert response.json()["failed_count"] == 0
    # The budget is spent: the next set (or single test) this minute is refused, nothing tested.
    refused = create(api, [{"data_source": made[0]["id"], "changes": {"connection": {"path": "n0.db"}}}])
    assert refused.status_code == 429 and refused.json()["code"] == "RATE_LIMITED"
    assert ChangeSet.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres_source
def test_postgresql_sources_are_tested_concurrently_and_applied(api, allow_loopback):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    conn = {"host": "127.0.0.1", "port": 5432, "database": "postgres", "username": "postgres",
            "ssl": {"mode": "disable"}}
    made = []
    for i in range(12):
        response = api.post(DS, {"name": f"P{i}", "type": "postgresql", "connection": conn}, format="json")
        assert response.status_code == 201, response.json()
        made.append(response.json())
    items = [{"data_source": d["id"], "changes": {"connection": {"database": "template1"}}} for d in made]
    body = create(api, items).json()
    assert body["status"] == "open", body
    assert api.post(f"{CS}{body['id']}/apply/").status_code == 200
    rows = DataSource.objects.filter(pk__in=[d["id"] for d in made])
    assert {(r.connection["database"], r.version) for r in rows} == {("template1", 2)}
