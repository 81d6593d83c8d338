"""A service-account key that cannot be used fails at stage auth before any network step (outside audit,
finding 5).

A key file without ``client_email`` (and ``token_uri``) failed at stage resolve, "Could not resolve host
'oauth2.googleapis.com'": the default token host was looked up before the key was read. The key is now read
first (type, client_email, private_key, the private key loaded): an unusable one fails stage auth alone,
without a DNS lookup or a connection. The catalogue stores the key as a JSON secret (a JSON object, checked
when written); what a service-account key must hold is the connector's to say.
"""

from __future__ import annotations

import json

import pytest

from datasources.connectors import ConnectionConfig, egress, get_connector, guard
from tests.support.contract import connect_attempts
from tests.support.google_oauth import new_key

EMAIL = "loader@acme-analytics.iam.gserviceaccount.com"
CONNECTIONS = {
    "bigquery": {"project_id": "acme-analytics", "location": "US", "dataset_id": "analytics",
                 "endpoint_url": "https://bigquery.example.com"},
    "google_sheets": {"spreadsheet_id": "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms",
                      "endpoint_url": "https://sheets.example.com"},
}


@pytest.fixture(scope="module")
def pem() -> str:
    return new_key()[1]


@pytest.fixture
def lookups(monkeypatch) -> list:
    """Every name the egress policy looks up (the resolve stage's and the scope's lookups)."""
    seen: list = []
    real = egress._getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        seen.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(egress, "_getaddrinfo", getaddrinfo)
    monkeypatch.setattr(guard, "_getaddrinfo", getaddrinfo)
    return seen


def _key(pem: str, **changes) -> dict:
    key = {"type": "service_account", "project_id": "acme-analytics", "private_key_id": "k1", "private_key": pem,
           "client_email": EMAIL, "token_uri": "https://oauth2.example.com/token", **changes}
    return {name: value for name, value in key.items() if value is not None}


def _run(kind: str, key: dict | str):
    text = key if isinstance(key, str) else json.dumps(key)
    config = ConnectionConfig(kind, dict(CONNECTIONS[kind]), {"service_account_json": text}, connect_timeout=3)
    with connect_attempts() as attempts:
        result = get_connector(kind).test(config)
    assert not attempts, attempts
    return result


@pytest.mark.parametrize("kind", list(CONNECTIONS))
@pytest.mark.parametrize(("changes", "missing"), [
    ({"client_email": None, "token_uri": None}, "client_email is missing or invalid"),
    ({"client_email": ""}, "client_email is missing or invalid"),
    ({"private_key": None, "client_email": 42}, "client_email, private_key are missing or invalid"),
    ({"type": "authorized_user"}, "type is missing or invalid"),
    ({"token_uri": ["https://oauth2.example.com/token"]}, "token_uri is missing or invalid"),
])
def test_an_unusable_key_fails_at_auth_before_any_lookup(kind, pem, lookups, changes, missing):
    result = _run(kind, _key(pem, **changes))
    assert (result.ok, result.stage) == (False, "auth"), result.as_dict()
    assert [(s.name, s.ok) for s in result.stages] == [("auth", False)]
    assert result.message == ("The credentials must be a service-account key file (type 'service_account' with "
                              f"client_email and private_key): {missing}.")
    assert not lookups
    assert pem.splitlines()[5] not in json.dumps(result.as_dict())


@pytest.mark.parametrize("kind", list(CONNECTIONS))
def test_a_private_key_that_does_not_load_fails_at_auth_before_any_lookup(kind, lookups):
    result = _run(kind, _key("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"))
    assert [(s.name, s.ok) for s in result.stages] == [("auth", False)]
    assert result.message == "The service account's private key could not be read."
    assert not lookups


@pytest.mark.parametrize("kind", list(CONNECTIONS))
def test_a_usable_key_goes_on_to_resolve(kind, pem, lookups):
    result = get_connector(kind).test(ConnectionConfig(kind, dict(CONNECTIONS[kind]), {
        "service_account_json": json.dumps(_key(pem, token_uri="https://oauth2.invalid/token"))}, connect_timeout=2))
    assert (result.ok, result.stage, result.message) == (False, "resolve", "Could not resolve host 'oauth2.invalid'.")
    assert lookups == ["oauth2.invalid"]  # the key was usable: the token host is the first destination


@pytest.mark.django_db
def test_through_the_api_the_failure_names_auth(api, pem, lookups):
    body = {"name": "warehouse", "type": "bigquery", "connection": CONNECTIONS["bigquery"],
            "credentials": {"service_account_json": json.dumps(_key(pem, client_email=None, token_uri=None))}}
    response = api.post("/api/v1/data-sources/", body, format="json")
    error = response.json()
    assert response.status_code == 400 and error["code"] == "CREDENTIAL_TEST_FAILED", error
    assert error["stage"] == "auth" and "client_email" in error["message"]
    assert not lookups
