"""Health checks: the state machine of ``run_health_check`` (the real SQLite connector against a file
that is there or not), the bounded history, the claim, and the beat tick's choice of due sources in a
constant number of statements (on every application database; tasks run in this process)."""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import app as celery_app
from datasources.models import DataSource, HealthCheck
from datasources.services import health
from datasources.tasks import due_health_checks, health_check_tick
from eventlog.models import Event
from organizations.models import Organization
from tests.datasources.test_schema_refresh_worker import eager_tasks  # noqa: F401 - a fixture

URL = "/api/v1/data-sources/"
EVENT = "data_source.health_changed"


def make_db(root: str, name: str) -> str:
    with sqlite3.connect(os.path.join(root, name)) as db:
        db.executescript("CREATE TABLE IF NOT EXISTS t (id INTEGER);")
    return name


def source(api, name: str, path: str, **extra) -> DataSource:
    body = {"name": name, "type": "sqlite", "connection": {"path": path}, **extra}
    response = api.post(f"{URL}?test_connection=false", body, format="json")
    assert response.status_code == 201, response.json()
    return DataSource.objects.get(pk=response.json()["id"])


def events(ds: DataSource) -> list[dict]:
    return [e.data for e in Event.objects.filter(type=EVENT, data__data_source__id=ds.pk).order_by("id")]


@pytest.fixture
def threshold(org):
    def set_to(k: int) -> None:
        Organization.objects.filter(pk=org.pk).update(health_failure_threshold=k)
    return set_to


def test_a_first_pass_is_healthy_without_an_event_and_changes_no_user_test_state(api, _file_root):
    ds = source(api, "A", make_db(_file_root, "a.db"))
    before = (ds.status, ds.last_test, ds.version)
    outcome = health.run_health_check(ds.pk)
    assert (outcome.result, outcome.state, outcome.changed) == ("passed", "healthy", True)
    ds.refresh_from_db()
    assert (ds.health_state, ds.health_failures) == ("healthy", 0)
    assert ds.health_since == ds.health_checked_at is not None
    assert (ds.status, ds.last_test, ds.version) == before, "a health check is not a user's test"
    assert ds.health_claim == "" and ds.health_claimed_at is None, "the claim is released"
    assert events(ds) == [], "unknown -> healthy is not an event"
    check = HealthCheck.objects.get(data_source=ds)
    assert (check.outcome, check.stage, check.code) == ("passed", "", "")


def test_k_failures_turn_failing_once_and_a_pass_turns_healthy_once(api, _file_root, threshold):
    threshold(3)
    path = make_db(_file_root, "k.db")
    ds = source(api, "K", path)
    assert health.run_health_check(ds.pk).state == "healthy"
    os.remove(os.path.join(_file_root, path))
    states = [health.run_health_check(ds.pk).state for _ in range(5)]
    assert states == ["healthy", "healthy", "failing", "failing", "failing"]
    ds.refresh_from_db()
    assert ds.health_failures == 5
    [failing] = events(ds)
    assert failing["from"] == "healthy" and failing["to"] == "failing"
    assert failing["data_source"] == {"id": ds.pk, "reference_id": ds.reference_id, "name": "K", "type": "sqlite"}
    assert failing["consecutive_failures"] == 3
    assert failing["since"] == ds.health_since.isoformat().replace("+00:00", "Z")
    assert set(failing["last_check"]) == {"stage", "code", "duration_ms"}
    assert failing["last_check"]["code"] == "CREDENTIAL_TEST_FAILED" and failing["last_check"]["stage"]
    assert set(failing) == {"data_source", "from", "to", "since", "consecutive_failures", "last_check"}

    make_db(_file_root, path)
    assert health.run_health_check(ds.pk).state == "healthy"
    assert health.run_health_check(ds.pk).state == "healthy"
    recovered = events(ds)[1:]
    assert [(e["from"], e["to"], e["consecutive_failures"]) for e in recovered] == [("failing", "healthy", 0)]
    assert recovered[0]["last_check"] == {"stage": None, "code": None, "duration_ms": recovered[0]["last_check"][
        "duration_ms"]}
    ds.refresh_from_db()
    assert (ds.health_state, ds.health_failures) == ("healthy", 0)


def test_unknown_turns_failing_after_k_failures_with_an_event(api, _file_root, threshold):
    threshold(2)
    ds = source(api, "U", "missing.db")
    assert health.run_health_check(ds.pk).state == "unknown"
    assert events(ds) == []
    assert health.run_health_check(ds.pk).state == "failing"
    assert [(e["from"], e["to"]) for e in events(ds)] == [("unknown", "failing")]


def test_the_history_keeps_the_newest_checks(api, _file_root, settings):
    settings.HEALTH_HISTORY_SIZE = 3
    ds = source(api, "H", "missing.db")
    newest = []
    for _ in range(5):
        health.run_health_check(ds.pk)
        newest.append(HealthCheck.objects.filter(data_source=ds).latest("id").id)
    assert list(HealthCheck.objects.filter(data_source=ds).order_by("id").values_list("id", flat=True)) == newest[2:]


def test_messages_are_cut_short(api, _file_root):
    ds = source(api, "M", make_db(_file_root, "m.db"))
    health.record(ds.pk, passed=False, stage="tcp", code="CREDENTIAL_TEST_FAILED", message="x" * 5000, duration_ms=3)
    message = HealthCheck.objects.get(data_source=ds).message
    assert len(message) == health.MESSAGE_LENGTH and message.endswith("…")


def test_a_source_waiting_for_its_credentials_is_not_connected_to(api, _file_root):
    ds = source(api, "C", "missing.db")
    DataSource.objects.filter(pk=ds.pk).update(status="credentials_required")
    outcome = health.run_health_check(ds.pk)
    assert (outcome.result, outcome.state) == ("skipped", "unknown")
    assert not HealthCheck.objects.filter(data_source=ds).exists()


def test_checks_of_one_source_never_overlap(api, _file_root):
    ds = source(api, "B", make_db(_file_root, "b.db"))
    token = health.claim(ds.pk)
    assert token and health.claim(ds.pk) is None
    assert health.run_health_check(ds.pk).result == "busy"
    assert not HealthCheck.objects.filter(data_source=ds).exists()
    DataSource.objects.filter(pk=ds.pk).update(health_claimed_at=timezone.now() - health.stale_claim()
                                                - timedelta(seconds=1))
    assert health.run_health_check(ds.pk).result == "passed", "an abandoned claim is taken over"
    assert health.run_health_check(999_999).result == "gone"


# --- the schedule ------------------------------------------------------------------------------------


def test_due_sources_follow_their_own_or_their_organizations_interval(make_client, org, other_org, _file_root):
    api, other = make_client(org), make_client(other_org)
    Organization.objects.filter(pk=org.pk).update(health_check_interval=300)
    path = make_db(_file_root, "due.db")
    now = timezone.now()

    def add(client, name, checked_ago, **fields):
        ds = source(client, name, path)
        fields = {"health_checked_at": None if checked_ago is None else now - checked_ago, **fields}
        DataSource.objects.filter(pk=ds.pk).update(**fields)
        return ds.pk

    due = {
        add(api, "org never", None),
        add(api, "org exactly", timedelta(seconds=300)),
        add(api, "own short", timedelta(seconds=61), health_check_interval=60),
        add(other, "other org own", timedelta(hours=2), health_check_interval=3600),
        add(api, "stale claim", timedelta(hours=1), health_claim="queued",
            health_claimed_at=now - health.stale_claim() - timedelta(seconds=1)),
    }
    add(api, "org fresh", timedelta(seconds=299))
    add(api, "own long", timedelta(seconds=400), health_check_interval=3600)
    add(api, "own off", None, health_check_interval=0)
    add(other, "other org default off", None)
    add(api, "queued", None, health_claim="queued", health_claimed_at=now - timedelta(seconds=5))
    add(api, "running", None, health_claim="abc", health_claimed_at=now - timedelta(seconds=5))
    add(api, "waiting", None, status="credentials_required")
    assert set(due_health_checks(now)) == due


@pytest.mark.parametrize("count", [2, 25])
def test_the_tick_queries_are_independent_of_the_number_of_sources(make_client, org, _file_root, count,
                                                                   django_assert_max_num_queries):
    api = make_client(org)
    Organization.objects.filter(pk=org.pk).update(health_check_interval=60)
    path = make_db(_file_root, "n.db")
    for i in range(count):
        source(api, f"S{i}", path)
    now = timezone.now()
    with django_assert_max_num_queries(2):
        ids = list(due_health_checks(now))
        assert health.mark_queued(ids, now) == count
    assert len(ids) == count
    assert list(due_health_checks(now)) == [], "queued sources are not queued twice"


def test_beat_tick_checks_the_due_sources(eager_tasks, make_client, org, _file_root):  # noqa: F811
    api = make_client(org)
    path = make_db(_file_root, "beat.db")
    on, off = source(api, "on", path, health_check_interval=60), source(api, "off", path)
    entry = celery_app.conf.beat_schedule["health-check-tick"]
    assert celery_app.tasks[entry["task"]].apply_async().get() == 1
    assert dict(DataSource.objects.values_list("name", "health_state")) == {"on": "healthy", "off": "unknown"}
    assert HealthCheck.objects.filter(data_source=on).count() == 1
    assert not HealthCheck.objects.filter(data_source=off).exists()
    assert DataSource.objects.get(pk=on.pk).health_claim == ""
    assert health_check_tick() == 0, "checked just now: not due again"
