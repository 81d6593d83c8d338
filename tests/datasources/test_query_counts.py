"""Statement counts of the hot requests (issue 18), constant whatever the page size: the list in 2
with the token cache warm; a plain PATCH's write on PostgreSQL is BEGIN, the row locked with all it
renders, one statement for its UPDATE, the audit event, the revision (INSERT ... SELECT) and the
outbox event, COMMIT (and the webhook listener's check after it); the written instance renders the
same answer as a fresh read.

``transactional_db``: a write's ``atomic()`` is then a real transaction (BEGIN/COMMIT are counted,
as bench/queries.py counts them; no SAVEPOINT).
"""

from __future__ import annotations

import pytest
from django.db import connection

from datasources.api.representation import data_source_dict
from datasources.models import DataSource, DataSourceRevision
from datasources.selectors import data_source_for_actor, renderable_data_source_for_actor, rendered_after_write
from datasources.services.datasources import update_data_source
from organizations.actors import Actor
from organizations.models import ALL_SCOPES, ApiToken

URL = "/api/v1/data-sources/"


def _warm(client, path: str) -> None:
    """The first request resolves the token (and records its use); later ones are served by the cache."""
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("page_size", [10, 50, 200])
def test_list_is_two_statements_whatever_the_page_size(api, org, page_size, django_assert_num_queries):
    DataSource.objects.bulk_create(
        DataSource(organization=org, reference_id=f"q{i:05d}", name=f"src {i:03d}", type="sqlite",
                   connection={"path": "x.db"}, tags=["t"]) for i in range(page_size + 1))
    _warm(api, URL)
    with django_assert_num_queries(2):  # the count, the page with everything it renders
        response = api.get(f"{URL}?page_size={page_size}&tag=t")
    assert response.status_code == 200
    assert len(response.json()["results"]) == page_size and response.json()["count"] == page_size + 1


def _source(api, sqlite_file) -> dict:
    body = {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file},
            "tenancy_settings": {"level": "DATABASE"}}
    response = api.post(f"{URL}?test_connection=false", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_plain_patch_statements(transactional_db, org, sqlite_file, django_assert_num_queries):
    from tests.conftest import client_for

    api = client_for(org)
    ds = _source(api, sqlite_file)
    _warm(api, f"{URL}{ds['id']}/")
    # PostgreSQL: BEGIN, the row locked and read with all it renders, one statement for its UPDATE,
    # the audit event, the revision (INSERT ... SELECT) and the outbox event (core.write_batch: four
    # data-modifying CTEs), COMMIT. The webhook listener's "any active webhook?" is answered from
    # the cache (warmed here), and the answer renders the written instance (rendered_after_write).
    # SQLite: BEGIN, the locked read, UPDATE, audit INSERT, the previous revision, the revision INSERT,
    # event INSERT, COMMIT.
    from webhooks.services.delivery import has_active_webhook

    has_active_webhook(org.pk)
    expected = 4 if connection.vendor == "postgresql" else 8
    for body in ({"description": "first", "tags": ["a"]}, {"description": "second", "tags": ["b"]}):
        with django_assert_num_queries(expected):
            response = api.patch(f"{URL}{ds['id']}/", body, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["description"] == body["description"]
    newest = DataSourceRevision.objects.filter(data_source_id=ds["id"]).order_by("-number")[:3]
    assert [r.number for r in newest] == [3, 2, 1]
    assert newest[0].config["tenancy_settings"] == ds["tenancy_settings"]  # carried from the previous revision
    assert newest[0].config["description"] == "second" and newest[0].changed == ["description", "tags"]
    assert newest[0].audit_event_id is not None


def _actor(org, api) -> Actor:
    token = ApiToken.objects.get(organization=org, name="t")
    return Actor(organization=org, token=token, scopes=frozenset(ALL_SCOPES))


def test_the_written_instance_renders_like_a_fresh_read(transactional_db, org, sqlite_file,
                                                        django_assert_max_num_queries):
    from tests.conftest import client_for

    api = client_for(org)
    ds = _source(api, sqlite_file)
    actor = _actor(org, api)
    writes = 5 if connection.vendor == "postgresql" else 9  # the PATCH's above, and the webhook check
    with django_assert_max_num_queries(writes):  # the whole write and its answer: no re-read
        result = update_data_source(actor=actor, data_source_id=ds["id"], data={"tags": ["x"], "description": "d"},
                                    mode="patch")
        rendered = data_source_dict(rendered_after_write(actor, result.data_source, result.changed))
    assert rendered == data_source_dict(renderable_data_source_for_actor(actor, ds["id"]))
    assert rendered["version"] == 2 and rendered["tags"] == ["x"] and rendered["updated_by"]["name"] == "t"


def test_a_write_of_secrets_or_a_plain_row_is_read_again(db, org, api, sqlite_file, django_assert_num_queries):
    ds = _source(api, sqlite_file)
    actor = _actor(org, api)
    plain = data_source_for_actor(actor, ds["id"])  # not read for rendering: one more read
    with django_assert_num_queries(1):
        again = rendered_after_write(actor, plain, ["description"])
    assert data_source_dict(again)["name"] == "Shop"
    locked = data_source_for_actor(actor, ds["id"], for_update=True)
    with django_assert_num_queries(1):  # a secret changed: its names are read again
        rendered_after_write(actor, locked, ["credentials.password"])
    with django_assert_num_queries(0):  # nothing written: the row as read
        assert rendered_after_write(actor, locked, []) is locked


def test_the_compiled_get_reads_what_the_orm_reads(db, org, other_org, api, sqlite_file, django_user_model,
                                                    django_assert_num_queries):
    """renderable_data_source_for_actor runs the GET's statement compiled once per connection: the same
    instance as the queryset's own .get() (row, organization, tenancy or none, secret and actor names);
    404 for another organization's id, an id out of the bigint range, or a malformed one."""
    from core.errors import NotFound
    from datasources.selectors import data_sources_for_actor

    with_tenancy = _source(api, sqlite_file)
    plain = api.post(f"{URL}?test_connection=false", {"name": "Plain", "type": "postgresql", "connection": {
        "host": "db.example.com", "database": "d", "username": "u"}, "credentials": {"password": "pw"}},
        format="json").json()
    user = django_user_model.objects.create_user(username="ana")
    DataSource.objects.filter(pk=plain["id"]).update(updated_by=user, updated_by_token=None)
    actor = Actor(organization=org)
    for pk in (with_tenancy["id"], plain["id"]):
        expected = data_source_dict(data_sources_for_actor(actor).get(pk=pk))
        renderable_data_source_for_actor(actor, pk)
        with django_assert_num_queries(1):
            assert data_source_dict(renderable_data_source_for_actor(actor, str(pk))) == expected
    assert data_source_dict(renderable_data_source_for_actor(actor, plain["id"]))["credentials_set"] == ["password"]
    assert data_source_dict(renderable_data_source_for_actor(actor, plain["id"]))["updated_by"]["name"] == "ana"
    for bad in (plain["id"], 2**63, -(2**63) - 1, "1x", None):
        with pytest.raises(NotFound):
            renderable_data_source_for_actor(Actor(organization=other_org) if bad == plain["id"] else actor, bad)
