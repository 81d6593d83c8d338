"""PATCH and PUT through the API: merge rules, secrets, test before apply, If-Match."""

from __future__ import annotations

import pytest

from datasources.models import DataSource
from datasources.services.credentials import load_secrets
from tests.support.state import stored_state

URL = "/api/v1/data-sources/"


@pytest.fixture
def pg_source(api, pg_source_data, allow_loopback):
    body = {**pg_source_data, "description": "orig", "tags": ["a"], "metadata": {"team": {"name": "x", "size": 3}}}
    response = api.post(URL, body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def sqlite_source(api, sqlite_file):
    response = api.post(URL, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


PATCHES = [
    ({"name": "Renamed"}, "name", "Renamed"),
    ({"description": "new words"}, "description", "new words"),
    ({"connection_pool_size": 17}, "connection_pool_size", 17),
    ({"connection_timeout": 12}, "connection_timeout", 12),
    ({"query_timeout": 99}, "query_timeout", 99),
    ({"max_retries": 7}, "max_retries", 7),
    ({"schema_auto_refresh": True}, "schema_auto_refresh", True),
    ({"schema_refresh_interval": 3600}, "schema_refresh_interval", 3600),
    ({"tags": ["b", "c"]}, "tags", ["b", "c"]),
    ({"connection": {"ssl": {"mode": "allow"}}}, "connection", None),
]


@pytest.mark.parametrize("body,field,expected", PATCHES, ids=[p[1] for p in PATCHES])
def test_patch_of_one_field_leaves_everything_else_and_secrets_unchanged(api, pg_source, body, field, expected):
    before = api.get(f"{URL}{pg_source['id']}/").json()
    secrets_before = load_secrets(DataSource.objects.get(pk=pg_source["id"]))
    response = api.patch(f"{URL}{pg_source['id']}/", body, format="json")
    assert response.status_code == 200, response.json()
    after = response.json()
    if field == "connection":
        assert after["connection"]["ssl"]["mode"] == "allow"
        assert after["connection"]["host"] == before["connection"]["host"]
        assert after["connection"]["port"] == before["connection"]["port"]
    else:
        assert after[field] == expected
    volatile = {field, "version", "updated_at", "updated_by", "last_test", "schema", "status"}
    assert {k: v for k, v in after.items() if k not in volatile} == {
        k: v for k, v in before.items() if k not in volatile
    }
    assert after["version"] == before["version"] + 1
    assert load_secrets(DataSource.objects.get(pk=pg_source["id"])) == secrets_before
    assert after["credentials_set"] == ["password"]


def test_patch_merges_nested_metadata_and_null_removes_a_key(api, pg_source):
    url = f"{URL}{pg_source['id']}/"
    body = {"metadata": {"team": {"size": None, "lead": "ann"}, "env": "prod"}}
    response = api.patch(url, body, content_type="application/merge-patch+json")
    assert response.status_code == 200, response.json()
    assert response.json()["metadata"] == {"team": {"name": "x", "lead": "ann"}, "env": "prod"}


def test_patch_null_resets_operational_field_to_default(api, pg_source):
    url = f"{URL}{pg_source['id']}/"
    api.patch(url, {"connection_pool_size": 40}, format="json")
    response = api.patch(url, {"connection_pool_size": None}, format="json")
    assert response.status_code == 200
    assert response.json()["connection_pool_size"] == 5


@pytest.mark.parametrize(
    "body,field",
    [
        ({"bogus": 1}, "bogus"),
        ({"id": 5}, "id"),
        ({"version": 9}, "version"),
        ({"credentials_set": []}, "credentials_set"),
        ({"connection": {"nope": 1}}, "connection.nope"),
        ({"connection": {"port": 70000}}, "connection.port"),
        ({"connection": {"port": "5432"}}, "connection.port"),
        ({"connection_pool_size": 0}, "connection_pool_size"),
        ({"connection_timeout": True}, "connection_timeout"),
        ({"name": ""}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"tags": ["a", "a"]}, "tags"),
        ({"tags": "a"}, "tags"),
        ({"metadata": [1]}, "metadata"),
        ({"metadata": {"k": "v" * 20000}}, "metadata"),
        ({"type": "mysql"}, "type"),
        ({"credentials": {"not_a_secret": "x"}}, "credentials.not_a_secret"),
        ({"credentials": {"password": 5}}, "credentials.password"),
    ],
)
def test_bad_patch_is_400_naming_the_field_and_changes_nothing(api, pg_source, body, field):
    before = stored_state(pg_source["id"])
    response = api.patch(f"{URL}{pg_source['id']}/", body, format="json")
    assert response.status_code == 400, response.json()
    payload = response.json()
    assert payload["code"] == "INVALID_REQUEST_BODY"
    assert field in payload["errors"], payload
    assert payload["request_id"] == response["X-Request-ID"]
    assert stored_state(pg_source["id"]) == before


def test_put_replaces_and_resets_omitted_optional_fields(api, pg_source, pg_password_server):
    url = f"{URL}{pg_source['id']}/"
    c = pg_password_server
    body = {
        "name": "Warehouse",
        "connection": {"host": c.host, "port": c.port, "database": c.database, "username": c.user,
                       "ssl": {"mode": "disable"}},
    }
    response = api.put(url, body, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["description"] == "" and data["tags"] == [] and data["metadata"] == {}
    assert data["credentials_set"] == ["password"], "an omitted secret is kept on PUT"


def test_put_missing_a_required_field_is_400_and_changes_nothing(api, pg_source, pg_password_server):
    url = f"{URL}{pg_source['id']}/"
    before = stored_state(pg_source["id"])
    c = pg_password_server
    body = {"name": "Warehouse", "connection": {"host": c.host, "port": c.port, "username": c.user}}
    response = api.put(url, body, format="json")
    assert response.status_code == 400
    assert "connection.database" in response.json()["errors"]
    response = api.put(url, {"connection": pg_source["connection"]}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["errors"]
    assert stored_state(pg_source["id"]) == before


def test_failed_connection_test_changes_nothing(api, pg_source):
    url = f"{URL}{pg_source['id']}/"
    before = stored_state(pg_source["id"])
    response = api.patch(url, {"credentials": {"password": "wrong-password"}, "description": "x"}, format="json")
    assert response.status_code == 400
    payload = response.json()
    assert payload["code"] == "CREDENTIAL_TEST_FAILED"
    assert payload["stage"] == "auth"
    assert "wrong-password" not in response.content.decode()
    assert stored_state(pg_source["id"]) == before


def test_wrong_database_fails_at_database_stage(api, pg_source):
    response = api.patch(f"{URL}{pg_source['id']}/", {"connection": {"database": "nope_db"}}, format="json")
    assert response.status_code == 400
    assert response.json()["stage"] == "database"


def test_connection_change_refreshes_schema(api, pg_source):
    assert pg_source["schema"]["status"] == "ready"
    assert pg_source["schema"]["version"] == 1
    response = api.patch(f"{URL}{pg_source['id']}/", {"connection": {"ssl": {"mode": "allow"}}}, format="json")
    assert response.status_code == 200
    assert response.json()["schema"]["status"] == "ready"
    assert response.json()["last_test"]["ok"] is True


def test_connection_change_logs_in_once_and_caches_the_schema_seen_by_the_test(
    api, pg_source, pg_password_server, monkeypatch
):
    """The inline refresh after a tested change reads the tables over the tested session."""
    import psycopg

    from datasources.connectors import postgresql

    c = pg_password_server
    table = "added_for_refresh"
    with psycopg.connect(host=c.host, port=c.port, user=c.user, password=c.password, dbname=c.database,
                         autocommit=True) as admin:
        admin.execute(f"CREATE TABLE IF NOT EXISTS {table} (id integer PRIMARY KEY, note text)")
    logins = []
    real_connect = postgresql.psycopg.connect

    def counting_connect(*args, **kwargs):  # a spy: the real login still happens
        logins.append(kwargs.get("host"))
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(postgresql.psycopg, "connect", counting_connect)
    try:
        response = api.patch(f"{URL}{pg_source['id']}/", {"connection": {"ssl": {"mode": "allow"}}}, format="json")
    finally:
        monkeypatch.undo()
        with psycopg.connect(host=c.host, port=c.port, user=c.user, password=c.password, dbname=c.database,
                             autocommit=True) as admin:
            admin.execute(f"DROP TABLE {table}")
    assert response.status_code == 200, response.json()
    assert len(logins) == 1
    body = response.json()
    assert body["last_test"]["ok"] is True and "tables" not in body["last_test"]
    assert body["schema"]["status"] == "ready" and body["schema"]["version"] == 2
    names = {t["name"] for t in api.get(f"{URL}{pg_source['id']}/schema/").json()["tables"]}
    assert table in names


def test_dry_run_tests_but_saves_nothing(api, pg_source):
    url = f"{URL}{pg_source['id']}/?dry_run=true"
    before = stored_state(pg_source["id"])
    response = api.patch(url, {"description": "dry", "connection": {"ssl": {"mode": "allow"}}}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["dry_run"] is True
    assert body["test"]["ok"] is True
    assert body["data_source"]["description"] == "dry"
    assert set(body["changed_fields"]) == {"description", "connection.ssl.mode"}
    assert stored_state(pg_source["id"]) == before


def test_test_connection_false_skips_the_test_and_marks_untested(api, pg_source):
    url = f"{URL}{pg_source['id']}/?test_connection=false"
    response = api.patch(url, {"connection": {"port": 1}}, format="json")
    assert response.status_code == 200
    assert response.json()["connection"]["port"] == 1
    assert response.json()["status"] == "pending"


def test_secret_null_clears_and_required_secret_cannot_be_cleared(api, sqlite_source, pg_source):
    response = api.patch(f"{URL}{pg_source['id']}/?test_connection=false", {"credentials": {"password": None}},
                         format="json")
    # postgresql's password is optional (trust auth exists): clearing it is allowed.
    assert response.status_code == 200
    assert response.json()["credentials_set"] == []


def test_required_secret_cannot_be_cleared(api, allow_loopback):
    body = {"name": "RS", "type": "redshift", "connection": {"host": "127.0.0.1", "database": "d", "username": "u"},
            "credentials": {"password": "pw"}}
    created = api.post(f"{URL}?test_connection=false", body, format="json")
    assert created.status_code == 201, created.json()
    response = api.patch(f"{URL}{created.json()['id']}/?test_connection=false", {"credentials": {"password": None}},
                         format="json")
    assert response.status_code == 400
    assert "credentials.password" in response.json()["errors"]


def test_etag_and_if_match(api, sqlite_source):
    url = f"{URL}{sqlite_source['id']}/"
    got = api.get(url)
    etag = got["ETag"]
    assert etag
    ok = api.patch(url, {"description": "one"}, format="json", HTTP_IF_MATCH=etag)
    assert ok.status_code == 200
    assert ok["ETag"] != etag
    before = stored_state(sqlite_source["id"])
    stale = api.patch(url, {"description": "two"}, format="json", HTTP_IF_MATCH=etag)
    assert stale.status_code == 412
    assert stale.json()["code"] == "PRECONDITION_FAILED"
    stale_put = api.put(url, {"name": "Shop", "connection": sqlite_source["connection"]}, format="json",
                        HTTP_IF_MATCH=etag)
    assert stale_put.status_code == 412
    stale_delete = api.delete(url, HTTP_IF_MATCH=etag)
    assert stale_delete.status_code == 412
    assert stored_state(sqlite_source["id"]) == before
    assert api.delete(url, HTTP_IF_MATCH=ok["ETag"]).status_code == 204


def test_type_is_immutable(api, sqlite_source):
    response = api.patch(f"{URL}{sqlite_source['id']}/", {"type": "csv"}, format="json")
    assert response.status_code == 400
    assert "type" in response.json()["errors"]


def test_duplicate_name_is_conflict_case_insensitive(api, sqlite_source, sqlite_file):
    response = api.post(URL, {"name": "SHOP", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "CONFLICT"


def test_unsupported_media_type_is_415(api, sqlite_source):
    response = api.patch(f"{URL}{sqlite_source['id']}/", "description=x", content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_connector_unavailable_when_the_driver_is_not_installed(api, without_driver):
    without_driver("pymongo")
    body = {"name": "Mongo", "type": "mongodb",
            "connection": {"host": "mongo.example.com", "database": "d", "username": "u"},
            "credentials": {"password": "pw"}}
    response = api.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "CONNECTOR_UNAVAILABLE"
    assert "install the optional driver 'pymongo' (pip install pymongo" in response.json()["message"]
    assert api.post(f"{URL}?test_connection=false", body, format="json").status_code == 201


def test_link_local_and_metadata_addresses_are_refused_before_any_packet(api, allow_loopback):
    for host in ["169.254.169.254", "fe80::1", "::ffff:169.254.169.254"]:
        body = {"name": f"meta {host}", "type": "postgresql",
                "connection": {"host": host, "database": "d", "username": "u"}}
        response = api.post(URL, body, format="json")
        assert response.status_code == 400, host
        assert response.json()["code"] == "CREDENTIAL_TEST_FAILED"
    assert not DataSource.objects.exists()


def test_create_dry_run_tests_and_saves_nothing(api, pg_source_data, allow_loopback):
    response = api.post(f"{URL}?dry_run=true", pg_source_data, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["dry_run"] is True and body["test"]["ok"] is True
    assert body["data_source"]["name"] == "Warehouse"
    assert body["data_source"]["credentials_set"] == ["password"]
    assert not DataSource.objects.exists()


def test_update_dry_run_shows_secrets_as_they_would_be(api, pg_source):
    response = api.patch(f"{URL}{pg_source['id']}/?dry_run=true&test_connection=false",
                         {"credentials": {"password": None}}, format="json")
    assert response.status_code == 200
    assert response.json()["data_source"]["credentials_set"] == []
    assert api.get(f"{URL}{pg_source['id']}/").json()["credentials_set"] == ["password"]


def test_test_endpoint_records_the_result_and_answers_400_when_it_fails(api, pg_source):
    url = f"{URL}{pg_source['id']}/"
    assert api.post(f"{url}test/").json()["ok"] is True
    api.patch(f"{url}?test_connection=false", {"connection": {"database": "nope_db"}}, format="json")
    response = api.post(f"{url}test/")
    assert response.status_code == 400
    assert response.json()["code"] == "CREDENTIAL_TEST_FAILED" and response.json()["stage"] == "database"
    # The stored configuration's test is recorded: the message says so (not "Nothing was changed.").
    assert response.json()["message"].endswith("The result was recorded."), response.json()["message"]
    stored = api.get(url).json()
    assert stored["status"] == "error" and stored["last_test"]["stage"] == "database"
    assert api.get(f"{url}history/").json()["results"][0]["action"] == "test"
