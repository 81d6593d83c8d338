"""The admin's "Refresh schema" keeps the rules of ``POST /api/v1/data-sources/{id}/sync/``
(``datasources.services.connection.sync_schema``): a source that waits for its credentials
(``credentials_required``, a Rivergen move without them) or whose type has no connector here is
refused, with a message naming it and saying why, and nothing of it changes. The action used to call
the refresh (or queue it) directly: it said "queued" and the schema became ``failed``."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from datasources import tasks
from datasources.models import DataSource, SchemaSnapshot
from datasources.services.connection import CREDENTIALS_REQUIRED_MESSAGE
from datasources.services.datasources import create_data_source
from organizations.actors import Actor
from organizations.models import Membership, Role

CHANGELIST = "admin:datasources_datasource_changelist"
URL = "/api/v1/data-sources/"


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def editor_client(client, org, django_user_model):
    user = django_user_model.objects.create_user("ed", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_datasource", "change_datasource"]))
    Membership.objects.create(organization=org, user=user, role=Role.EDITOR)
    client.force_login(user)
    return client


def _source(org, path: str, name: str) -> DataSource:
    data = {"name": name, "type": "sqlite", "connection": {"path": path}}
    return create_data_source(actor=Actor.system(org), data=data).data_source


@pytest.fixture
def waiting(org, sqlite_file):
    """A source as a withheld move leaves it: ``credentials_required``, its schema still ``ready``."""
    ds = _source(org, sqlite_file, "Moved")
    DataSource.objects.filter(pk=ds.pk).update(status="credentials_required")
    ds.refresh_from_db()
    assert ds.schema_status == "ready"
    return ds


@pytest.fixture
def queue(monkeypatch):
    """What the action queues for a worker (nothing is sent to a broker)."""
    queued: list[int] = []
    monkeypatch.setattr(tasks.refresh_schema_task, "delay", queued.append)
    return queued


def _state(ds: DataSource) -> tuple:
    ds = DataSource.objects.get(pk=ds.pk)
    return (ds.status, ds.schema_status, ds.schema_error, ds.schema_checked_at, ds.schema_version,
            SchemaSnapshot.objects.filter(data_source=ds).count())


def _refresh(client, *sources: DataSource) -> list[tuple[str, str]]:
    response = client.post(reverse(CHANGELIST), {"action": "refresh_schema_action",
                                                 "_selected_action": [ds.pk for ds in sources]})
    assert response.status_code == 302
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["in the request", "with a worker"])
def test_refresh_of_a_source_waiting_for_its_credentials_is_refused_as_by_the_api(
        editor_client, api, settings, queue, waiting, asynchronous):
    settings.SCHEMA_REFRESH_ASYNC = asynchronous
    api_answer = api.post(f"{URL}{waiting.pk}/sync/")
    assert api_answer.status_code == 400 and api_answer.json()["code"] == "CREDENTIALS_REQUIRED"
    before = _state(waiting)
    messages = _refresh(editor_client, waiting)
    assert messages == [("error", f"Moved: not refreshed. {CREDENTIALS_REQUIRED_MESSAGE}")]
    assert _state(waiting) == before  # still ready, no error, nothing checked
    assert queue == []


@pytest.mark.parametrize("asynchronous", [False, True], ids=["in the request", "with a worker"])
def test_a_type_without_its_connector_is_refused_as_by_the_api(editor_client, api, settings, queue,
                                                               without_driver, asynchronous):
    settings.SCHEMA_REFRESH_ASYNC = asynchronous
    without_driver("pymongo")
    body = {"name": "Mongo", "type": "mongodb", "connection": {"host": "mongo.example.com", "database": "d"},
            "credentials": {"password": "pw-long"}}
    created = api.post(f"{URL}?test_connection=false", body, format="json")
    assert created.status_code == 201, created.json()
    ds = DataSource.objects.get(pk=created.json()["id"])
    before = _state(ds)
    ((level, message),) = _refresh(editor_client, ds)
    assert level == "error" and message.startswith("Mongo: not refreshed.") and "pymongo" in message
    assert _state(ds) == before
    assert queue == []


@pytest.mark.parametrize("asynchronous", [False, True], ids=["in the request", "with a worker"])
def test_the_other_selected_sources_are_refreshed(editor_client, org, settings, queue, waiting, sqlite_file,
                                                  asynchronous):
    settings.SCHEMA_REFRESH_ASYNC = asynchronous
    fine = _source(org, sqlite_file, "Fine")
    queue.clear()  # its creation's own refresh
    before = _state(waiting)
    messages = dict((message.split(":")[0], (level, message)) for level, message in _refresh(editor_client, waiting,
                                                                                            fine))
    assert messages["Moved"][0] == "error" and _state(waiting) == before
    if asynchronous:
        assert queue == [fine.pk]
        assert messages["Schema refresh queued for 1 data source(s)."][0] == "success"
    else:
        assert queue == []
        assert messages["Fine"] == ("success", "Fine: schema version 1 (unchanged).")
        assert DataSource.objects.get(pk=fine.pk).schema_status == "ready"
