"""The authenticated-token cache (organizations/token_cache.py): a warm GET is one statement, and no
change that affects a token is ever served from the cache, in this process or another one.

Every "at once" test first makes a request that puts the token in the cache, then changes something
through the path an operator uses (the services, or a model save as the admin and the shell do),
and expects the very next request to see the change. The first test shows that the cache does
serve (a change that bypasses the signals is not seen), so each of the others can fail.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from organizations import token_cache
from organizations.actors import Actor
from organizations.models import ApiToken, Membership, Role, hash_token
from organizations.services import create_token, remove_membership, revoke_token, set_membership, update_token
from tests.conftest import require_service
from tests.support.gunicorn_server import gunicorn_server
from tests.support.workers import database_url

URL = "/api/v1/data-sources/"
REDIS_CACHE = "redis://127.0.0.1:6379/14"


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def make_source(api: APIClient, name: str = "Shop") -> dict:
    response = api.post(f"{URL}?test_connection=false", {"name": name, "type": "sqlite",
                                                         "connection": {"path": "shop.db"}}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def shop(api):
    return make_source(api)


@pytest.fixture
def warm():
    """``warm(client, url)``: a request that resolves the token and caches it (and its last use)."""
    def request(client: APIClient, url: str) -> None:
        assert client.get(url).status_code == 200

    return request


# --- statements ---------------------------------------------------------------------------------


def test_a_warm_get_and_list_are_one_statement_each(org, shop, warm, django_assert_num_queries):
    _, raw = create_token(organization=org, name="reader", scopes=["datasource.read"])
    reader = bearer(raw)
    warm(reader, f"{URL}{shop['id']}/")
    with django_assert_num_queries(1):  # the data source with everything it renders
        assert reader.get(f"{URL}{shop['id']}/").json()["name"] == "Shop"
    with django_assert_num_queries(1):  # the page with its count, in one statement
        assert [item["name"] for item in reader.get(URL).json()["results"]] == ["Shop"]
    with django_assert_num_queries(2):  # filtered: the count, the page
        assert [item["name"] for item in reader.get(f"{URL}?type=sqlite").json()["results"]] == ["Shop"]


def test_a_users_token_is_served_from_the_cache_too(org, editor, shop, warm, django_assert_num_queries):
    _, raw = create_token(organization=org, name="mine", scopes=["datasource.read"], username=editor.username)
    client = bearer(raw)
    warm(client, f"{URL}{shop['id']}/")
    with django_assert_num_queries(1):
        assert client.get(f"{URL}{shop['id']}/").status_code == 200


def test_a_cached_users_token_acts_as_that_user_and_nothing_more(org, editor, shop, warm):
    """The user built from the cache is the user in the database: name, flags, rights. (Model.from_db
    places a partial row's values in the model's column order: given in another order, the name
    landed in is_active and every cached user was a superuser.)"""
    _, raw = create_token(organization=org, name="mine", scopes=["datasource.read", "datasource.write"],
                          username=editor.username)
    client = bearer(raw)
    warm(client, f"{URL}{shop['id']}/")
    for description in ("cached 1", "cached 2"):
        assert client.patch(f"{URL}{shop['id']}/", {"description": description}, format="json").status_code == 200
    actors = [event["actor"] for event in client.get(f"{URL}{shop['id']}/history/").json()["results"]]
    assert actors[:2] == [f"token:mine (user:{editor.username})"] * 2, actors

    entry = token_cache.lookup(hash_token(raw), token_cache.current_generation())
    assert entry is not None  # served from the cache
    _, _, user = token_cache.build(entry)
    stored = type(editor).objects.get(pk=editor.pk)
    fields = ("pk", "username", "is_active", "is_staff", "is_superuser")
    assert [getattr(user, name) for name in fields] == [getattr(stored, name) for name in fields]
    assert (user.is_superuser, user.is_active) == (False, True)


def test_the_cache_serves_what_it_resolved_until_a_change_is_signalled(org, shop, warm):
    """A change made with QuerySet.update() sends no signal: not seen until invalidate() (the
    documented way for such a change). This is what every other test relies on failing without
    the invalidation."""
    token, raw = create_token(organization=org, name="reader", scopes=["datasource.read"])
    reader = bearer(raw)
    warm(reader, URL)
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    assert reader.get(URL).status_code == 200  # served from the cache
    token_cache.invalidate()
    assert reader.get(URL).status_code == 401


def test_a_cold_token_costs_the_statements_of_before(org, shop, django_assert_num_queries):
    _, raw = create_token(organization=org, name="reader", scopes=["datasource.read"])
    reader = bearer(raw)
    with django_assert_num_queries(3):  # the token with its organization, its last use, the data source
        assert reader.get(f"{URL}{shop['id']}/").status_code == 200


# --- invalidation, in this process ---------------------------------------------------------------


def test_a_revoked_token_is_refused_on_the_very_next_request(org, shop, warm):
    token, raw = create_token(organization=org, name="reader", scopes=["datasource.read"])
    reader = bearer(raw)
    warm(reader, URL)
    assert revoke_token(actor=Actor.system(org), token=token)
    response = reader.get(URL)
    assert response.status_code == 401 and response.json()["code"] == "AUTHENTICATION_ERROR"


def test_a_token_revoked_by_a_save_is_refused_too(org, shop, warm):
    """The admin and the shell: a plain ``save``."""
    token, raw = create_token(organization=org, name="reader", scopes=["datasource.read"])
    reader = bearer(raw)
    warm(reader, URL)
    row = ApiToken.objects.get(pk=token.pk)
    row.revoked_at = timezone.now()
    row.save()
    assert reader.get(URL).status_code == 401


def test_a_deleted_token_is_refused(org, shop, warm):
    token, raw = create_token(organization=org, name="reader", scopes=["datasource.read"])
    reader = bearer(raw)
    warm(reader, URL)
    ApiToken.objects.filter(pk=token.pk).delete()  # a queryset delete sends post_delete per row
    assert reader.get(URL).status_code == 401


def test_an_expired_token_is_refused_from_the_cache_without_a_statement(org, shop, warm,
                                                                       django_assert_num_queries):
    token, raw = create_token(organization=org, name="short", scopes=["datasource.read"],
                              expires_at=timezone.now() + timedelta(seconds=1))
    reader = bearer(raw)
    warm(reader, URL)
    time.sleep(max(0.0, (token.expires_at - timezone.now()).total_seconds()) + 0.05)
    with django_assert_num_queries(0):  # checked against the cached expiry
        response = reader.get(URL)
    assert response.status_code == 401 and response.json()["code"] == "AUTHENTICATION_ERROR"


def test_a_scope_change_and_an_expiry_change_take_effect_at_once(org, shop, warm):
    token, raw = create_token(organization=org, name="rw", scopes=["datasource.read", "datasource.write"])
    client = bearer(raw)
    warm(client, URL)
    update_token(actor=Actor.system(org), token=token, scopes=["workflow.read"])
    assert client.get(URL).status_code == 403
    update_token(actor=Actor.system(org), token=token, scopes=["datasource.read"],
                 expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(URL).status_code == 401


def test_a_role_downgrade_takes_effect_at_once(org, editor, shop, warm):
    _, raw = create_token(organization=org, name="mine", scopes=["datasource.read", "datasource.write"],
                          username=editor.username)
    client = bearer(raw)
    warm(client, URL)
    assert client.patch(f"{URL}{shop['id']}/", {"description": "by an editor"}, format="json").status_code == 200
    set_membership(actor=Actor.system(org), organization=org, user=editor, role=Role.VIEWER)
    refused = client.patch(f"{URL}{shop['id']}/", {"description": "by a viewer"}, format="json")
    assert refused.status_code == 403, refused.json()
    assert client.get(f"{URL}{shop['id']}/").json()["description"] == "by an editor"


def test_a_role_changed_by_a_save_takes_effect_at_once(org, editor, shop, warm):
    _, raw = create_token(organization=org, name="mine", scopes=["datasource.read", "datasource.write"],
                          username=editor.username)
    client = bearer(raw)
    warm(client, URL)
    membership = Membership.objects.get(user=editor, organization=org)
    membership.role = Role.VIEWER
    membership.save()
    assert client.patch(f"{URL}{shop['id']}/", {"description": "x"}, format="json").status_code == 403


def test_a_removed_member_and_a_deactivated_user_are_refused_at_once(org, editor, viewer, shop, warm):
    _, removed_raw = create_token(organization=org, name="ed", scopes=["datasource.read"], username=editor.username)
    _, inactive_raw = create_token(organization=org, name="vi", scopes=["datasource.read"], username=viewer.username)
    removed, inactive = bearer(removed_raw), bearer(inactive_raw)
    warm(removed, URL)
    warm(inactive, URL)
    remove_membership(actor=Actor.system(org), membership=Membership.objects.get(user=editor))
    assert removed.get(URL).status_code == 401
    viewer.is_active = False
    viewer.save()
    assert inactive.get(URL).status_code == 401


def test_a_login_does_not_empty_the_cache(org, owner, shop, warm, django_assert_num_queries):
    """Only a login (last_login) is not a change to act on: it would void the cache for nothing."""
    from django.contrib.auth.models import update_last_login

    _, raw = create_token(organization=org, name="reader", scopes=["datasource.read"])
    reader = bearer(raw)
    warm(reader, f"{URL}{shop['id']}/")
    update_last_login(None, owner)
    with django_assert_num_queries(1):
        assert reader.get(f"{URL}{shop['id']}/").status_code == 200


def test_a_token_never_sees_another_organizations_data_after_its_organization_changes(
    org, other_org, shop, other_api, warm
):
    theirs = make_source(other_api, "Theirs")
    token, raw = create_token(organization=org, name="moved", scopes=["datasource.read"])
    client = bearer(raw)
    warm(client, f"{URL}{shop['id']}/")
    row = ApiToken.objects.get(pk=token.pk)
    row.organization = other_org
    row.save()
    assert client.get(f"{URL}{shop['id']}/").status_code == 404  # acme's source: another organization's now
    assert [item["name"] for item in client.get(URL).json()["results"]] == ["Theirs"]
    assert client.get(f"{URL}{theirs['id']}/").status_code == 200


def test_an_organization_renamed_or_deleted_is_seen_at_once(org, shop, warm):
    token, raw = create_token(organization=org, name="reader", scopes=["datasource.read"])
    client = bearer(raw)
    warm(client, URL)
    org.delete()
    assert client.get(URL).status_code == 401
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_a_lost_generation_voids_every_entry(org, shop, warm):
    """The shared cache flushed, restarted or evicting: no entry matches the new generation."""
    from django.core.cache import cache

    token, raw = create_token(organization=org, name="reader", scopes=["datasource.read"])
    reader = bearer(raw)
    warm(reader, URL)
    ApiToken.objects.filter(pk=token.pk).update(scopes=["workflow.read"])  # no signal
    cache.delete(token_cache.GENERATION_KEY)
    assert reader.get(URL).status_code == 403


def test_the_cache_is_bounded_least_recently_used_first(org, shop, settings, django_assert_num_queries):
    settings.TOKEN_CACHE_SIZE = 2
    clients = [bearer(create_token(organization=org, name=f"t{i}", scopes=["datasource.read"])[1])
               for i in range(3)]
    for client in clients:
        assert client.get(f"{URL}{shop['id']}/").status_code == 200
    with django_assert_num_queries(1):
        clients[2].get(f"{URL}{shop['id']}/")
    with django_assert_num_queries(2):  # t0 was evicted: its token is read again
        clients[0].get(f"{URL}{shop['id']}/")


def test_ttl_zero_turns_the_cache_off(org, shop, settings, warm, django_assert_num_queries):
    settings.TOKEN_CACHE_SECONDS = 0
    _, raw = create_token(organization=org, name="reader", scopes=["datasource.read"])
    reader = bearer(raw)
    warm(reader, f"{URL}{shop['id']}/")
    with django_assert_num_queries(2):
        reader.get(f"{URL}{shop['id']}/")


# --- across processes: gunicorn workers sharing Redis ---------------------------------------------


@pytest.fixture
def redis_cache(settings):
    """This process on the same Redis database as the server's workers (the invalidation channel)."""
    require_service("127.0.0.1", 6379, "Redis")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": REDIS_CACHE}}
    from django.core.cache import cache

    cache.clear()
    yield REDIS_CACHE
    cache.clear()


def _statuses(server, token: str, n: int = 24) -> list[int]:
    return [server.request("GET", URL, token=token)[0] for _ in range(n)]


def test_a_revoke_and_a_role_change_reach_every_gunicorn_worker(transactional_db, org, editor, redis_cache,
                                                                tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("gunicorn workers share the test database: set DATABASE_URL to PostgreSQL")
    token, raw = create_token(organization=org, name="reader", scopes=["datasource.read"])
    _, mine = create_token(organization=org, name="mine", scopes=["datasource.read", "datasource.write"],
                           username=editor.username)
    shop = make_source(bearer(mine))
    with gunicorn_server(database_url(), tmp_path, workers=2, env={"CACHE_URL": redis_cache}) as server:
        assert _statuses(server, raw) == [200] * 24  # each worker, on its own connections, caches it
        assert _statuses(server, mine, 8) == [200] * 8
        ApiToken.objects.filter(pk=token.pk).update(scopes=["workflow.read"])  # no signal: still served
        assert 200 in _statuses(server, raw), "the workers did not serve the token from their caches"

        revoke_token(actor=Actor.system(org), token=token)
        assert _statuses(server, raw) == [401] * 24

        set_membership(actor=Actor.system(org), organization=org, user=editor, role=Role.VIEWER)
        patched = [server.request("PATCH", f"{URL}{shop['id']}/", token=mine, body={"description": "x"})[0]
                   for _ in range(8)]
        assert patched == [403] * 8, server.output()[-2000:]


def test_several_workers_without_a_shared_cache_do_not_cache_tokens(transactional_db, org, tmp_path):
    """gunicorn.conf.py turns the token cache off: an invalidation could not reach the other workers."""
    if connection.vendor != "postgresql":
        pytest.skip("gunicorn workers share the test database: set DATABASE_URL to PostgreSQL")
    token, raw = create_token(organization=org, name="reader", scopes=["datasource.read"])
    with gunicorn_server(database_url(), tmp_path, workers=2) as server:
        assert _statuses(server, raw, 12) == [200] * 12
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())  # no signal
        assert _statuses(server, raw, 12) == [401] * 12
        assert "the token cache is off" in server.output()
