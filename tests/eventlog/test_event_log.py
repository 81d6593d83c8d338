"""GET /api/v1/events/: the organization's event log, by scope; and outbox retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from eventlog.models import Event
from eventlog.services import publish
from eventlog.tasks import purge_events

EVENTS = "/api/v1/events/"


@pytest.fixture
def logged(org, other_org):
    publish(organization_id=org.pk, type="data_source.created", data={"data_source": {"id": 1}})
    publish(organization_id=org.pk, type="workflow.repointed", data={"workflow": {"id": 2}})
    publish(organization_id=org.pk, type="data_source.updated", data={"changed": ["name"]})
    publish(organization_id=other_org.pk, type="data_source.created", data={"data_source": {"id": 9}})
    return Event.objects.filter(organization=org).order_by("id")


@pytest.mark.django_db
def test_the_log_lists_the_organizations_events_newest_first_as_delivered(api, logged):
    response = api.get(EVENTS)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [e["type"] for e in body["results"]] == ["data_source.updated", "workflow.repointed",
                                                     "data_source.created"]
    first = body["results"][-1]
    event = logged[0]
    assert first == {"id": event.public_id, "type": "data_source.created",
                     "timestamp": event.occurred_at.isoformat().replace("+00:00", "Z"),
                     "data": {"data_source": {"id": 1}}}
    assert api.get(f"{EVENTS}{event.public_id}/").json() == first


@pytest.mark.django_db
def test_the_type_filter_and_its_errors(api, logged):
    only = api.get(EVENTS, {"type": "workflow.repointed"}).json()
    assert [e["type"] for e in only["results"]] == ["workflow.repointed"]
    bad = api.get(EVENTS, {"type": "data_source.exploded"})
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_REQUEST_BODY" and "type" in bad.json()["errors"]


@pytest.mark.django_db
def test_scopes_decide_which_families_a_token_reads(make_client, org, logged):
    workflows_only = make_client(org, scopes=["workflow.read"])
    assert [e["type"] for e in workflows_only.get(EVENTS).json()["results"]] == ["workflow.repointed"]
    hidden = logged.get(type="data_source.created").public_id
    assert workflows_only.get(f"{EVENTS}{hidden}/").status_code == 404
    sources_only = make_client(org, scopes=["datasource.read"])
    assert {e["type"] for e in sources_only.get(EVENTS).json()["results"]} == {"data_source.created",
                                                                               "data_source.updated"}


@pytest.mark.django_db
def test_another_organizations_event_is_a_404_and_anonymous_is_a_401(api, other_api, logged, client):
    theirs = Event.objects.exclude(organization=logged[0].organization).get()
    assert api.get(f"{EVENTS}{theirs.public_id}/").status_code == 404
    assert api.get(f"{EVENTS}msg_nothing/").status_code == 404
    assert other_api.get(EVENTS).json()["count"] == 1
    assert client.get(EVENTS).status_code == 401


@pytest.mark.django_db
def test_events_past_retention_are_purged(settings, logged):
    settings.EVENTS_RETENTION_DAYS = 30
    old = logged[0]
    Event.objects.filter(pk=old.pk).update(occurred_at=timezone.now() - timedelta(days=31))
    assert purge_events() == 1
    assert not Event.objects.filter(pk=old.pk).exists() and Event.objects.count() == 3
    assert purge_events() == 0
