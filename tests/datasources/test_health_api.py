"""Health over the API and the admin: ``GET .../health/``, the list's ``?health=`` filter, the
representation's ``health``, the writable ``health_check_interval`` (every entry point, never a
connection test), the organization's ``/api/v1/health-settings/`` and the admin's displays."""

from __future__ import annotations

import os

import pytest
from django.urls import reverse

from core.errors import InvalidRequest
from datasources.models import DataSource, HealthCheck
from datasources.services import health
from datasources.services.datasources import WriteOptions, update_data_source
from organizations.actors import Actor
from organizations.models import AuditEvent, Organization
from tests.datasources.test_health import make_db, source

URL = "/api/v1/data-sources/"
SETTINGS = "/api/v1/health-settings/"


@pytest.fixture
def pair(api, _file_root):
    """A healthy source and a failing one (threshold 1)."""
    good = source(api, "good", make_db(_file_root, "good.db"))
    bad = source(api, "bad", "missing.db")
    Organization.objects.filter(pk=good.organization_id).update(health_failure_threshold=1)
    health.run_health_check(good.pk)
    health.run_health_check(bad.pk)
    return good, bad


def test_health_endpoint_gives_state_interval_threshold_and_history(api, pair, org):
    good, bad = pair
    Organization.objects.filter(pk=org.pk).update(health_check_interval=600)
    for _ in range(2):
        health.run_health_check(bad.pk)
    body = api.get(f"{URL}{bad.pk}/health/").json()
    assert body["state"] == "failing" and body["consecutive_failures"] == 3
    assert body["failure_threshold"] == 1
    assert body["interval"] == {"seconds": 600, "source": "organization"}
    assert body["since"] and body["checked_at"]
    history = body["history"]
    assert len(history) == 3 and {h["outcome"] for h in history} == {"failed"}
    assert history == sorted(history, key=lambda h: h["checked_at"], reverse=True)
    assert set(history[0]) == {"checked_at", "outcome", "stage", "duration_ms", "code"}
    assert history[0]["code"] == "CREDENTIAL_TEST_FAILED" and history[0]["stage"]

    assert api.patch(f"{URL}{good.pk}/", {"health_check_interval": 0}, format="json").status_code == 200
    body = api.get(f"{URL}{good.pk}/health/").json()
    assert body["interval"] == {"seconds": None, "source": "off"}
    assert body["history"][0] == {**body["history"][0], "outcome": "passed", "stage": None, "code": None}
    api.patch(f"{URL}{good.pk}/", {"health_check_interval": 120}, format="json")
    assert api.get(f"{URL}{good.pk}/health/").json()["interval"] == {"seconds": 120, "source": "source"}
    Organization.objects.filter(pk=org.pk).update(health_check_interval=None)
    assert api.get(f"{URL}{bad.pk}/health/").json()["interval"] == {"seconds": None, "source": "off"}


def test_health_is_the_callers_organizations_only(api, other_api, pair, make_client, org):
    good, _ = pair
    assert other_api.get(f"{URL}{good.pk}/health/").status_code == 404
    assert api.get(f"{URL}999999/health/").status_code == 404
    assert api.get(f"{URL}abc/health/").status_code == 404
    reader = make_client(org, scopes=["datasource.read"])
    assert reader.get(f"{URL}{good.pk}/health/").status_code == 200
    assert make_client(org, scopes=["workflow.read"]).get(f"{URL}{good.pk}/health/").status_code == 403


def test_list_filters_by_health_and_shows_it(api, pair):
    good, bad = pair
    names = lambda q: [d["name"] for d in api.get(f"{URL}?health={q}").json()["results"]]  # noqa: E731
    assert names("healthy") == ["good"] and names("failing") == ["bad"] and names("unknown") == []
    for invalid in ("sick", ""):
        response = api.get(f"{URL}?health={invalid}")
        assert response.status_code == 400 and response.json()["code"] == "INVALID_REQUEST_BODY"
        assert "health" in response.json()["errors"]
    shown = api.get(f"{URL}{good.pk}/").json()
    good.refresh_from_db()
    assert shown["health"]["state"] == "healthy"
    assert shown["health"]["checked_at"] == good.health_checked_at.isoformat().replace("+00:00", "Z")
    assert set(shown["health"]) == {"state", "since", "checked_at"}
    assert shown["health_check_interval"] is None


@pytest.mark.parametrize("value,message", [
    (30, "Ensure this value is 0 (off) or greater than or equal to 60."),
    (1, "Ensure this value is 0 (off) or greater than or equal to 60."),
    (-1, "Ensure this value is greater than or equal to 0."),
    (2_592_001, "Ensure this value is less than or equal to 2592000."),
    ("soon", "A valid integer is required."),
    (True, "A valid integer is required."),
])
def test_health_check_interval_is_validated_on_every_write(api, pair, org, value, message):
    good, _ = pair
    before = DataSource.objects.get(pk=good.pk)
    for method in ("patch", "put"):
        body = {"health_check_interval": value}
        if method == "put":
            body.update(name="good", type="sqlite", connection={"path": "good.db"})
        response = getattr(api, method)(f"{URL}{good.pk}/", body, format="json")
        assert response.status_code == 400, response.json()
        assert response.json()["code"] == "INVALID_REQUEST_BODY"
        assert response.json()["errors"] == {"health_check_interval": [message]}
    response = api.post(URL, {"name": "n", "type": "sqlite", "connection": {"path": "good.db"},
                              "health_check_interval": value}, format="json")
    assert response.status_code == 400 and response.json()["errors"] == {"health_check_interval": [message]}
    with pytest.raises(InvalidRequest) as caught:  # a shell or a command: the same rule, the same words
        update_data_source(actor=Actor.system(org), data_source_id=good.pk, data={"health_check_interval": value},
                           mode="patch", options=WriteOptions())
    assert caught.value.errors == {"health_check_interval": [message]}
    assert DataSource.objects.get(pk=good.pk).version == before.version


def test_health_check_interval_writes_need_no_connection_test(api, pair, settings, _file_root):
    good, _ = pair
    os.remove(os.path.join(_file_root, "good.db"))  # a connection test would now fail
    for value, stored in ((0, 0), (60, 60), (2_592_000, 2_592_000), (None, None)):
        response = api.patch(f"{URL}{good.pk}/", {"health_check_interval": value}, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["health_check_interval"] == stored
    settings.HEALTH_CHECK_MIN_INTERVAL = 5
    assert api.patch(f"{URL}{good.pk}/", {"health_check_interval": 5}, format="json").status_code == 200
    put = api.put(f"{URL}{good.pk}/", {"name": "good", "type": "sqlite", "connection": {"path": "good.db"}},
                  format="json")
    assert put.status_code == 200 and put.json()["health_check_interval"] is None, "PUT omits it: the default"
    assert api.patch(f"{URL}{good.pk}/", {"health": {"state": "healthy"}}, format="json").json()["errors"] == {
        "health": ["This field is read-only."]}


# --- the organization's settings ---------------------------------------------------------------------


def test_health_settings_read_and_change(api, make_client, org, owner, editor, viewer):
    assert make_client(org, username="viewer").get(SETTINGS).json() == {
        "health_check_interval": None, "health_failure_threshold": 3}
    assert make_client(org, username="editor").patch(SETTINGS, {"health_failure_threshold": 2},
                                                     format="json").status_code == 403
    no_admin_scope = make_client(org, scopes=["datasource.read", "datasource.write"])
    assert no_admin_scope.patch(SETTINGS, {"health_failure_threshold": 2}, format="json").status_code == 403
    owner_client = make_client(org, username="owner")
    response = owner_client.patch(SETTINGS, {"health_check_interval": 300, "health_failure_threshold": 5},
                                  format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"health_check_interval": 300, "health_failure_threshold": 5}
    org.refresh_from_db()
    assert (org.health_check_interval, org.health_failure_threshold) == (300, 5)
    event = AuditEvent.objects.get(action="update_health_settings")
    assert event.changes == {"health_check_interval": {"old": None, "new": 300},
                             "health_failure_threshold": {"old": 3, "new": 5}}
    assert api.patch(SETTINGS, {"health_check_interval": None}, format="json").json()["health_check_interval"] is None
    assert make_client(org, scopes=["workflow.read"]).get(SETTINGS).status_code == 403


@pytest.mark.parametrize("body,errors", [
    ({"health_check_interval": 30},
     {"health_check_interval": ["Ensure this value is 0 (off) or greater than or equal to 60."]}),
    ({"health_failure_threshold": 0},
     {"health_failure_threshold": ["Ensure this value is greater than or equal to 1."]}),
    ({"health_failure_threshold": None}, {"health_failure_threshold": ["This field may not be null."]}),
    ({"health_failure_threshold": 101},
     {"health_failure_threshold": ["Ensure this value is less than or equal to 100."]}),
    ({"health_check_interval": "x", "health_failure_threshold": 2},
     {"health_check_interval": ["A valid integer is required."]}),
    ({"threshold": 2}, {"threshold": ["Unknown field."]}),
])
def test_health_settings_refuse_bad_values_and_change_nothing(api, org, body, errors):
    response = api.patch(SETTINGS, body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "INVALID_REQUEST_BODY" and response.json()["errors"] == errors
    org.refresh_from_db()
    assert (org.health_check_interval, org.health_failure_threshold) == (None, 3)
    assert not AuditEvent.objects.filter(action="update_health_settings").exists()


def test_health_settings_are_per_organization(api, other_api, org, other_org):
    assert api.patch(SETTINGS, {"health_check_interval": 120}, format="json").status_code == 200
    assert other_api.get(SETTINGS).json()["health_check_interval"] is None
    other_org.refresh_from_db()
    assert other_org.health_check_interval is None


# --- the admin ------------------------------------------------------------------------------------


def test_admin_shows_state_and_an_escaped_history_strip(admin_client, pair):
    good, bad = pair
    health.record(bad.pk, passed=False, stage="tcp", code="CREDENTIAL_TEST_FAILED",
                  message='<script>alert("x")</script> refused', duration_ms=7)
    listing = admin_client.get(reverse("admin:datasources_datasource_changelist")).content.decode()
    assert 'class="health-state health-healthy"' in listing and 'class="health-state health-failing"' in listing
    page = admin_client.get(reverse("admin:datasources_datasource_change", args=[bad.pk])).content.decode()
    assert page.count('class="health-cell health-failed"') == 2
    assert "<script>alert" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; refused" in page
    assert page.index("stage tcp, CREDENTIAL_TEST_FAILED") > page.index('class="health-cell')  # newest right
    filtered = admin_client.get(reverse("admin:datasources_datasource_changelist") + "?health_state__exact=failing")
    assert b">bad<" in filtered.content and b">good<" not in filtered.content


def test_admin_runs_a_health_check_now(admin_client, pair):
    good, _ = pair
    response = admin_client.post(reverse("admin:datasources_datasource_changelist"),
                                 {"action": "run_health_check_action", "_selected_action": [good.pk]}, follow=True)
    assert response.status_code == 200 and b"Good: health check passed (now healthy)." in response.content
    assert HealthCheck.objects.filter(data_source=good).count() == 2


def test_organization_admin_edits_the_health_settings(admin_client, org, settings):
    page = admin_client.get(reverse("admin:organizations_organization_change", args=[org.pk])).content.decode()
    assert 'name="health_check_interval"' in page and 'name="health_failure_threshold"' in page
    org.health_check_interval = 30
    with pytest.raises(Exception) as caught:
        org.full_clean()
    assert "greater than or equal to 60" in str(caught.value)
    org.health_check_interval, org.health_failure_threshold = 0, 0
    with pytest.raises(Exception) as caught:
        org.full_clean()
    assert "health_failure_threshold" in str(caught.value) and "health_check_interval" not in str(caught.value)
