"""An unknown path under a seed adapter's prefix answers 404 in that seed's error shape, as a known
path with an unknown id does (core.compat.register_seed_prefix), not in the native shape."""

from __future__ import annotations

import pytest

# (a known path whose id names nothing, an unknown path under the same prefix, the method)
CASES = {
    "rivergen": ("/compat/rivergen/api/v1/data-sources/999999", "/compat/rivergen/api/v1/nothing/1", "patch"),
    "databrain": ("/compat/databrain/api/v2/datasource", "/compat/databrain/api/v2/nothing", "put"),
    "camelai": ("/compat/camelai/api/v1/sources/999999/", "/compat/camelai/api/v1/nothing/1/", "patch"),
    "maiascore": ("/compat/maiascore/datasources/999999", "/compat/maiascore/nothing/1", "put"),
    "redivis": ("/compat/redivis/api/v1/workflows/nothing/dataSources/x", "/compat/redivis/api/v1/nothing", "patch"),
}


def shape(body):
    """The keys of the body, nested, without the values."""
    if isinstance(body, dict):
        return {key: shape(value) for key, value in body.items() if key not in ("errors", "details")}
    return type(body).__name__


@pytest.mark.parametrize("seed", CASES)
def test_an_unknown_path_answers_in_the_seeds_shape(api, seed):
    known, unknown, method = CASES[seed]
    reference = getattr(api, method)(known, {}, format="json")
    response = getattr(api, method)(unknown, {}, format="json")
    assert response.status_code == 404, response.content
    assert response["Content-Type"].startswith("application/json")
    if reference.status_code == 404:
        assert shape(response.json()) == shape(reference.json()), (reference.json(), response.json())
    assert "request_id" not in response.json(), response.json()  # not the native shape
    if seed == "databrain":  # its known path answers 400 to an empty body: compare with its template
        assert shape(response.json()) == {"error": {"code": "str", "message": "str"}}


def test_the_native_api_keeps_its_own_shape(api):
    body = api.get("/api/v1/nothing/").json()
    assert body["code"] == "NOT_FOUND" and "request_id" in body
