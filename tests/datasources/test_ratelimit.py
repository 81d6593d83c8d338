"""Connection tests are rate-limited per token and per organization (429 with Retry-After)."""

from __future__ import annotations

from tests.support.rate_window import within_one_rate_window

URL = "/api/v1/data-sources/"


def test_connection_tests_are_limited_per_token(api, sqlite_file, settings, make_client, org):
    settings.DATASOURCE_TEST_RATE_PER_TOKEN = 3
    settings.DATASOURCE_TEST_RATE_PER_ORG = 100
    within_one_rate_window(10)
    ds = api.post(f"{URL}?test_connection=false", {"name": "R", "type": "sqlite", "connection": {"path": sqlite_file}},
                  format="json").json()
    codes = [api.post(f"{URL}{ds['id']}/test/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = api.post(f"{URL}{ds['id']}/test/")
    assert limited.json()["code"] == "RATE_LIMITED"
    assert 1 <= int(limited["Retry-After"]) <= 60
    # Test-before-apply counts too.
    patch = api.patch(f"{URL}{ds['id']}/", {"connection": {"read_only": False}}, format="json")
    assert patch.status_code == 429
    # Another token of the same organization still has its own budget.
    other = make_client(org)
    assert other.post(f"{URL}{ds['id']}/test/").status_code == 200


def test_connection_tests_are_limited_per_organization(api, sqlite_file, settings, make_client, org):
    settings.DATASOURCE_TEST_RATE_PER_TOKEN = 100
    settings.DATASOURCE_TEST_RATE_PER_ORG = 2
    within_one_rate_window(10)
    ds = api.post(f"{URL}?test_connection=false", {"name": "R", "type": "sqlite", "connection": {"path": sqlite_file}},
                  format="json").json()
    assert api.post(f"{URL}{ds['id']}/test/").status_code == 200
    assert make_client(org).post(f"{URL}{ds['id']}/test/").status_code == 200
    assert make_client(org).post(f"{URL}{ds['id']}/test/").status_code == 429
