"""Issue 17's defects, through the path the user takes: Unicode digits that answered 500, and the
admin's "token created" page that created a second token when reloaded.

(The scheduled schema refresh on SQLite: tests/datasources/test_schema_refresh_worker.py.)
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from django.urls import reverse

from datasources.models import DataSource
from organizations.models import ApiToken
from tests.support.workflows import WF, add_source, create_source, create_workflow

URL = "/api/v1/data-sources/"
# '²' and '٣' pass str.isdigit(); int() refuses the first and reads the second as 3.
NOT_ASCII_INTEGERS = ["²", "٣", "+1", " 1", "1_0", "9" * 5000]


@pytest.fixture
def source(api):
    return create_source(api, "Shop", "shop.db", "CREATE TABLE items (id INTEGER);")


def _bad_request_naming(response, field: str) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    assert body["code"] == "INVALID_REQUEST_BODY", body
    assert field in body["errors"], body
    assert body["message"] and body["request_id"], body


@pytest.mark.parametrize("raw", NOT_ASCII_INTEGERS)
def test_schema_version_that_is_not_ascii_digits_is_a_400_naming_it(api, source, raw):
    _bad_request_naming(api.get(f"{URL}{source['id']}/schema/", {"version": raw}), "version")


@pytest.mark.parametrize("name", ["from", "to"])
def test_schema_diff_versions_that_are_not_ascii_digits_are_a_400_naming_them(api, source, name):
    _bad_request_naming(api.get(f"{URL}{source['id']}/schema/diff/", {name: "²"}), name)


def test_ascii_schema_versions_still_work(api, source):
    assert api.get(f"{URL}{source['id']}/schema/", {"version": "1"}).json()["version"] == 1
    assert api.get(f"{URL}{source['id']}/schema/", {"version": "01"}).json()["version"] == 1
    assert api.get(f"{URL}{source['id']}/schema/", {"version": "2"}).status_code == 404
    assert api.get(f"{URL}{source['id']}/schema/", {"version": "9" * 100}).status_code == 404  # past any integer column


@pytest.mark.parametrize("raw", NOT_ASCII_INTEGERS[:-1])
def test_connection_string_port_that_is_not_ascii_digits_is_a_400_naming_the_string(api, raw, allow_loopback):
    dsn = f"host=127.0.0.1 port='{raw}' dbname=d user=u password=hunter2"
    response = api.post(URL, {"name": "CS", "type": "postgresql", "connection_string": dsn}, format="json")
    _bad_request_naming(response, "connection_string")
    assert "port" in response.json()["errors"]["connection_string"][0]
    assert "hunter2" not in response.content.decode()
    assert not DataSource.objects.exists()


def test_connection_string_port_on_update_too(api, source, allow_loopback):
    created = api.post(f"{URL}?test_connection=false", {
        "name": "PG", "type": "postgresql",
        "connection": {"host": "127.0.0.1", "port": 5432, "database": "d", "username": "u"}}, format="json")
    assert created.status_code == 201, created.json()
    response = api.patch(f"{URL}{created.json()['id']}/", {"connection_string": "host=127.0.0.1 port=² dbname=d"},
                         format="json")
    _bad_request_naming(response, "connection_string")
    assert DataSource.objects.get(pk=created.json()["id"]).connection["port"] == 5432


def test_paging_parameters_refuse_unicode_digits(api, source):
    for name in ("page", "page_size"):
        _bad_request_naming(api.get(URL, {name: "²"}), name)


@pytest.mark.parametrize("raw", NOT_ASCII_INTEGERS)
def test_a_workspace_filter_that_is_not_ascii_digits_is_a_400_naming_it(api, source, raw):
    _bad_request_naming(api.get(URL, {"workspace": raw}), "workspace")


def test_workflow_ids_in_paths_and_bodies_refuse_unicode_digits(api, source):
    wf = create_workflow(api, "Flow")
    add_source(api, wf, source_data_source="acme.shop")
    for path in (f"{WF}²/", f"{WF}{wf['id']}/data-sources/²/", f"{WF}{wf['id']}/nodes/²/", f"{WF}{'9' * 100}/",
                 f"{WF}{wf['id']}/nodes/{'9' * 30}/"):
        assert api.get(path).status_code == 404, path
    node = api.post(f"{WF}{wf['id']}/nodes/", {"name": "n", "inputs": [{"data_source": "²", "table": "items"}]},
                    format="json")
    assert node.status_code in (400, 404), node.content[:300]
    assert "inputs.0.data_source" in node.json()["errors"]


# --- the admin's "token created" page -------------------------------------------------------------


def _add_form(client) -> dict:
    """What the browser posts: the add form's initial hidden fields plus what the operator typed."""
    page = client.get(reverse("admin:organizations_apitoken_add"))
    assert page.status_code == 200
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.content.decode()))
    hidden.pop("csrfmiddlewaretoken", None)
    return hidden


def test_reloading_the_token_created_page_creates_no_second_token_and_never_shows_it_again(admin_client, org):
    add = reverse("admin:organizations_apitoken_add")
    body = {**_add_form(admin_client), "name": "deploy", "organization": org.pk,
            "scopes": ["datasource.read"]}

    created = admin_client.post(add, body)
    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"]
    raw = re.search(r"dsp_[A-Za-z0-9_\-]+", created.content.decode()).group(0)
    token = ApiToken.objects.get()

    # The browser's reload of that page re-posts the same form: nothing is created, nothing shown.
    reloaded = admin_client.post(add, body, follow=True)
    assert ApiToken.objects.count() == 1
    html = reloaded.content.decode()
    assert raw not in html and token.token_hash not in html
    assert reloaded.redirect_chain == [(reverse("admin:organizations_apitoken_change", args=[token.pk]), 302)]
    assert "shown once" in html and token.prefix in html

    # A GET of the same URL is a fresh, empty form with a new submission id.
    again = admin_client.get(add).content.decode()
    assert raw not in again and body["submission"] not in again  # the one-time id the reload re-posted
    assert ApiToken.objects.count() == 1

    # A new form, filled in again, is a new token (shown once, on its own page).
    second = admin_client.post(add, {**_add_form(admin_client), "name": "deploy-2", "organization": org.pk,
                                     "scopes": ["datasource.read"]})
    assert second.status_code == 200 and raw not in second.content.decode()
    assert sorted(ApiToken.objects.values_list("name", flat=True)) == ["deploy", "deploy-2"]


def _spellings(pk: int) -> list[str]:
    """Ways int() reads as ``pk`` that are not ASCII digits (each must name nothing in a path)."""
    digits = str(pk)
    arabic = "".join(chr(0x0660 + int(d)) for d in digits)
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in digits)
    return [f" {digits}", f"{digits} ", f"+{digits}", f"\t{digits}", f"0_{digits}", arabic, fullwidth]


@pytest.mark.parametrize("suffix", ["", "history/", "schema/", "plans/", "health/", "tenancy/", "revisions/"])
def test_path_ids_that_are_not_ascii_digits_name_nothing(api, source, suffix):
    for raw in _spellings(source["id"]):
        response = api.get(f"{URL}{quote(raw)}/{suffix}")
        assert response.status_code == 404, (raw, suffix, response.status_code)
        assert response.json()["message"] == "Data source not found.", (raw, suffix)
    found = api.get(f"{URL}{source['id']}/{suffix}")  # the same path with the id in ASCII digits
    assert found.status_code == 200 or found.json()["message"] != "Data source not found.", suffix


def test_writes_through_a_non_ascii_path_id_change_nothing(api, source):
    for raw in _spellings(source["id"]):
        assert api.patch(f"{URL}{quote(raw)}/", {"description": "steered"}, format="json").status_code == 404, raw
        assert api.delete(f"{URL}{quote(raw)}/").status_code == 404, raw
        assert api.post(f"{URL}{quote(raw)}/test/").status_code == 404, raw
    stored = DataSource.objects.get(pk=source["id"])
    assert stored.description != "steered"
    revision = api.get(f"{URL}{source['id']}/revisions/").json()["results"][0]["number"]
    for raw in (f" {revision}", f"+{revision}", chr(0x0660 + revision)):
        assert api.get(f"{URL}{source['id']}/revisions/{quote(raw)}/").status_code == 404, raw
    assert api.delete(f"{URL}{source['id']}/").status_code == 204
    for raw in _spellings(source["id"]):
        assert api.get(f"/api/v1/data-source-trash/{quote(raw)}/").status_code == 404, raw
    assert api.get(f"/api/v1/data-source-trash/{source['id']}/").status_code == 200
