"""Tenancy settings: the seed's rules, checked against the cached schema."""

from __future__ import annotations

import sqlite3

import pytest

from tests.support.state import stored_state

URL = "/api/v1/data-sources/"
GOOD = {"level": "TABLE", "client_column_type": "NUMBER", "schema": "main", "table": "clients",
        "client_column": "client_id", "primary_key_column": "id"}


@pytest.fixture
def tenant_db(_file_root):
    import os

    with sqlite3.connect(os.path.join(_file_root, "tenants.db")) as db:
        db.executescript("CREATE TABLE clients (id INTEGER PRIMARY KEY, client_id INTEGER NOT NULL, name TEXT);")
    return "tenants.db"


@pytest.fixture
def source(api, tenant_db):
    response = api.post(URL, {"name": "T", "type": "sqlite", "connection": {"path": tenant_db}}, format="json")
    assert response.status_code == 201
    return response.json()


def test_put_get_patch_delete_tenancy(api, source):
    url = f"{URL}{source['id']}/tenancy/"
    assert api.get(url).status_code == 404
    put = api.put(url, GOOD, format="json")
    assert put.status_code == 200, put.json()
    assert put.json() == GOOD
    assert api.get(url).json() == GOOD
    assert api.get(f"{URL}{source['id']}/").json()["tenancy_settings"] == GOOD
    patch = api.patch(url, {"client_column": "id"}, format="json")
    assert patch.status_code == 200 and patch.json()["client_column"] == "id"
    events = api.get(f"{URL}{source['id']}/history/").json()["results"]
    assert events[0]["changes"] == {"tenancy_settings.client_column": {"old": "client_id", "new": "id"}}
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404
    assert api.get(f"{URL}{source['id']}/").json()["tenancy_settings"] is None


def test_database_level_needs_nothing_else(api, source):
    response = api.put(f"{URL}{source['id']}/tenancy/", {"level": "DATABASE"}, format="json")
    assert response.status_code == 200
    assert response.json()["level"] == "DATABASE"
    history = api.get(f"{URL}{source['id']}/history/").json()
    latest = (history["results"] if isinstance(history, dict) else history)[0]
    assert (latest["action"], latest["detail"]["method"]) == ("update", "PUT")  # as sent, not the merge it runs as


@pytest.mark.parametrize(
    "body,field",
    [
        ({"level": "TABLE"}, "tenancy_settings.table"),
        ({**GOOD, "table": "nope"}, "tenancy_settings.table"),
        ({**GOOD, "client_column": "nope"}, "tenancy_settings.client_column"),
        ({**GOOD, "primary_key_column": "nope"}, "tenancy_settings.primary_key_column"),
        ({**GOOD, "client_column_type": "STRING"}, "tenancy_settings.client_column_type"),
        ({**GOOD, "schema": "nope"}, "tenancy_settings.schema"),
    ],
)
def test_invalid_tenancy_is_400_and_changes_nothing(api, source, body, field):
    before = stored_state(source["id"])
    response = api.put(f"{URL}{source['id']}/tenancy/", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "TENANCY_SETTINGS_INVALID"
    assert field in response.json()["errors"]
    assert stored_state(source["id"]) == before


def test_bad_shape_is_invalid_request_body(api, source):
    response = api.put(f"{URL}{source['id']}/tenancy/", {"level": "ROW", "extra": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST_BODY"
    assert {"level", "extra"} <= set(response.json()["errors"])


def test_tenancy_in_data_source_writes_and_omitted_means_unchanged(api, source):
    url = f"{URL}{source['id']}/"
    assert api.patch(url, {"tenancy_settings": GOOD}, format="json").status_code == 200
    response = api.patch(url, {"description": "x"}, format="json")
    assert response.json()["tenancy_settings"] == GOOD
    response = api.patch(url, {"tenancy_settings": None}, format="json")
    assert response.json()["tenancy_settings"] is None


def test_other_organization_tenancy_is_404(other_api, source):
    for method in ("get", "put", "patch", "delete"):
        response = getattr(other_api, method)(f"{URL}{source['id']}/tenancy/", GOOD, format="json")
        assert response.status_code == 404


def test_names_are_stored_as_the_cached_schema_spells_them(api, source):
    url = f"{URL}{source['id']}/tenancy/"
    sent = {**GOOD, "schema": "MAIN", "table": "Clients", "client_column": "CLIENT_ID", "primary_key_column": "Id"}
    response = api.put(url, sent, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == GOOD
    assert api.get(url).json() == GOOD


def test_level_database_clears_the_table_settings_it_was_not_sent(api, source):
    url = f"{URL}{source['id']}/tenancy/"
    assert api.put(url, GOOD, format="json").status_code == 200
    response = api.patch(url, {"level": "DATABASE"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["level"] == "DATABASE" and not response.json()["table"]


def test_one_name_among_several_that_differ_only_in_case():
    from datasources.services.tenancy import _one

    names = ["Orders", "orders"]
    assert _one(names, "orders", str) == "orders"  # exact wins
    assert _one(names, "ORDERS", str) is None  # ambiguous
    assert _one(["Orders"], "ORDERS", str) == "Orders"  # the only one, as cached
    assert _one([], "x", str) is None


@pytest.mark.parametrize("declared,kind", [
    ("integer", "NUMBER"), ("int(11) unsigned", "NUMBER"), ("Nullable(Int64)", "NUMBER"), ("UBIGINT", "NUMBER"),
    ("numeric(10,2)", "NUMBER"), ("double precision", "NUMBER"), ("NUMBER(38,0)", "NUMBER"),
    ("character varying(255)", "STRING"), ("LowCardinality(Nullable(String))", "STRING"), ("uuid", "STRING"),
    ("enum('a','b')", "STRING"), ("NVARCHAR(MAX)", "STRING"), ("FixedString(16)", "STRING"),
    ("interval", None), ("int4range", None), ("point", None), ("linestring", None), ("text[]", None),
    ("_int4", None), ("Array(Int32)", None), ("Array(String)", None), ("timestamp with time zone", None),
    ("money", None), ("", None),
])
def test_a_client_column_type_is_judged_by_its_whole_base_name(declared, kind):
    from datasources.services.tenancy import column_problems

    columns = [{"name": "c", "type": declared}, {"name": "id", "type": "integer"}]
    fits = {want for want in ("NUMBER", "STRING") if not column_problems(
        {**GOOD, "client_column_type": want, "client_column": "c"}, columns)}
    assert fits == ({kind} if kind else set())


def test_types_that_merely_contain_a_number_word_are_refused_over_http(api, _file_root):
    import os

    with sqlite3.connect(os.path.join(_file_root, "odd.db")) as db:
        db.executescript('CREATE TABLE "ünï表" (id INTEGER PRIMARY KEY, iv INTERVAL, pt POINT, cid INTEGER);')
    ds = api.post(URL, {"name": "Odd", "type": "sqlite", "connection": {"path": "odd.db"}}, format="json").json()
    url = f"{URL}{ds['id']}/tenancy/"
    body = {**GOOD, "table": "ÜNÏ表", "primary_key_column": "id"}  # another case, non-ASCII: still the table
    for column in ("iv", "pt"):
        response = api.put(url, {**body, "client_column": column}, format="json")
        assert response.status_code == 400, response.json()
        assert list(response.json()["errors"]) == ["tenancy_settings.client_column_type"]
    fine = api.put(url, {**body, "client_column": "CID"}, format="json")
    assert fine.status_code == 200, fine.json()
    assert (fine.json()["table"], fine.json()["client_column"]) == ("ünï表", "cid")  # as the schema spells them


def test_settings_sent_with_a_connection_change_are_checked_against_the_new_target(api, source, _file_root):
    import os

    with sqlite3.connect(os.path.join(_file_root, "moved.db")) as db:
        db.executescript("CREATE TABLE accounts (id INTEGER PRIMARY KEY, acct TEXT NOT NULL);")
    url = f"{URL}{source['id']}/"
    assert api.put(f"{url}tenancy/", GOOD, format="json").status_code == 200
    before = stored_state(source["id"])
    moved = {"level": "TABLE", "client_column_type": "STRING", "schema": "main", "table": "ACCOUNTS",
             "client_column": "acct", "primary_key_column": "id"}
    # the settings of the old target, kept while the connection moves: refused by the new target's tables
    stale = api.patch(url, {"connection": {"path": "moved.db"}, "tenancy_settings": {"primary_key_column": "ID"}},
                      format="json")
    assert stale.status_code == 400 and stale.json()["code"] == "TENANCY_SETTINGS_INVALID", stale.json()
    assert "new connection" in stale.json()["message"] and stored_state(source["id"]) == before
    body = {"connection": {"path": "moved.db"}, "tenancy_settings": moved}
    dry = api.patch(f"{url}?dry_run=true", body, format="json")
    assert dry.status_code == 200, dry.json()
    assert dry.json()["impact"]["tenancy"]["breaks"] is False
    applied = api.patch(url, body, format="json")  # one request: no broken state in between
    assert applied.status_code == 200, applied.json()
    assert applied.json()["tenancy_settings"] == {**moved, "table": "accounts"}  # as the new schema spells it
    assert applied.json()["connection"]["path"] == "moved.db"


def test_a_create_checks_its_tenancy_settings_against_its_own_test(api, tenant_db):
    """A new source has no cache yet: its settings are checked against the tables its test reads."""
    body = {"name": "New", "type": "sqlite", "connection": {"path": tenant_db},
            "tenancy_settings": {**GOOD, "table": "nope"}}
    refused = api.post(URL, body, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "TENANCY_SETTINGS_INVALID", refused.json()
    assert api.get(URL).json()["count"] == 0
    created = api.post(URL, {**body, "tenancy_settings": {**GOOD, "table": "CLIENTS"}}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["tenancy_settings"]["table"] == "clients"


def test_database_level_refuses_table_fields_sent_with_a_value(api, source):
    url = f"{URL}{source['id']}/tenancy/"
    refused = api.put(url, {"level": "DATABASE", "client_column_type": "NUMBER", "table": "clients"}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "TENANCY_SETTINGS_INVALID"
    assert set(refused.json()["errors"]) == {"tenancy_settings.client_column_type", "tenancy_settings.table"}
    assert api.get(url).status_code == 404  # nothing stored
    assert api.put(url, GOOD, format="json").status_code == 200
    # switching a TABLE setting to DATABASE by PATCH drops the stored table fields (none were sent)
    switched = api.patch(url, {"level": "DATABASE", "table": None}, format="json")
    assert switched.status_code == 200 and switched.json()["table"] == ""


def test_the_schema_and_the_table_are_each_matched_in_any_case():
    """``PUBLIC`` names the one schema so named; within it, the exact ``STRASSE`` beside ``Straße``
    (both fold to "strasse"). The pair was matched as one name: no exact pair, two candidates, a 400
    saying several tables are named so."""
    from datasources.services.tenancy import _matched

    columns = [{"name": "id", "type": "INTEGER", "nullable": False}]
    tables = [("public", "Straße", columns), ("public", "STRASSE", columns)]
    values = {"level": "TABLE", "client_column_type": "NUMBER", "schema": "PUBLIC", "table": "STRASSE",
              "client_column": "ID", "primary_key_column": "id"}
    stored = _matched(values, tables, True, "the cached schema")
    assert (stored["schema"], stored["table"], stored["client_column"]) == ("public", "STRASSE", "id")
    with pytest.raises(Exception) as refused:  # neither spelled exactly: still ambiguous
        _matched({**values, "table": "strasse"}, tables, True, "the cached schema")
    assert "Several tables" in str(refused.value.errors)  # type: ignore[attr-defined]
