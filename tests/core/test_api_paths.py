"""API paths answer with or without their final slash (core/api_paths.py), instead of Django's
APPEND_SLASH redirect (which loses a PATCH's body) or, with DEBUG on, its HTML error page."""

from __future__ import annotations

import pytest

from core.api_paths import served_path
from datasources.models import DataSource

URL = "/api/v1/data-sources/"


@pytest.fixture
def source(api, sqlite_file):
    response = api.post(URL, {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.mark.parametrize("debug", [False, True])
def test_a_patch_without_the_slash_is_applied(api, source, settings, debug):
    settings.DEBUG = debug
    response = api.patch(f"{URL}{source['id']}", {"description": "no slash"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["description"] == "no slash"
    assert DataSource.objects.get(pk=source["id"]).description == "no slash"


def test_reads_and_actions_without_the_slash(api, source):
    listing = api.get(URL.rstrip("/"), {"type": "sqlite"})
    assert listing.status_code == 200 and [x["id"] for x in listing.json()["results"]] == [source["id"]]
    # Pagination links keep the path that was served.
    assert api.get(URL.rstrip("/"), {"page_size": 1}).json().get("next") is None
    tested = api.post(f"{URL}{source['id']}/test", format="json")
    assert tested.status_code == 200, tested.content
    assert api.get("/api/v1/webhooks").status_code == 200
    assert api.get(f"{URL}{source['id']}/plans").status_code == 200


def test_unknown_paths_stay_json_404s(api, settings):
    settings.DEBUG = True
    for path in ("/api/v1/nothing", "/api/v1/nothing/", "/compat/maiascore/nothing/"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/json", path


def test_another_organizations_source_is_still_a_404(other_api, source):
    response = other_api.patch(f"{URL}{source['id']}", {"description": "x"}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


def test_seed_paths_answer_with_and_without_the_slash(api, source):
    # camelAI's seed path ends in "/", maiascore's does not: each answers the same both ways (camelAI
    # refuses a SQLite source in its own shape; the view answered, not a 404 or a redirect).
    camel = [api.patch(f"/compat/camelai/api/v1/sources/{source['id']}{end}", {"account_name": "C"}, format="json")
             for end in ("/", "")]
    assert [r.status_code for r in camel] == [400, 400]
    assert camel[0].json() == camel[1].json() and "camelAI" in camel[1].json()["detail"]
    maia = [api.get(f"/compat/maiascore/datasources/{source['id']}{end}") for end in ("", "/")]
    assert maia[0].status_code == maia[1].status_code != 404
    assert maia[0].json() == maia[1].json()


@pytest.mark.parametrize(("path", "served"), [
    ("/api/v1/data-sources/1", "/api/v1/data-sources/1/"),
    ("/api/v1/data-sources/1/", None),  # resolves as sent
    ("/api/v1/data-sources", "/api/v1/data-sources/"),
    ("/api/v1/workflows/demo.sales", None),  # its route takes both
    ("/api/v1/nothing", None),  # nothing to serve either way
    ("/compat/maiascore/datasources/6/", "/compat/maiascore/datasources/6"),
    ("/compat/camelai/api/v1/sources/6", "/compat/camelai/api/v1/sources/6/"),
    ("/compat/maiascore/datasources/6//", None),
    ("/admin/login", None),  # outside the API: Django's own APPEND_SLASH
    ("/healthz", None),
])
def test_served_path(path, served):
    assert served_path(path) == served
