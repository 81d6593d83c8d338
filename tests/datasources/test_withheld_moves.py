"""The withheld move at the service level (``datasources.services.moves``), for every type family's
destination fields, including those no Rivergen field reaches (URLs, accounts, regions, TLS switches):
the stored secret of the moved hop is cleared, nothing is tested, the source waits in
``credentials_required``, and only a credentials update (tested) or an untested write that sets a secret
ends the wait. The native rule (400 CREDENTIALS_REQUIRED without ``withhold``) is tested in
``test_secret_steering``.
"""

from __future__ import annotations

import pytest

from datasources.models import DataSource
from datasources.services import moves
from datasources.services.credentials import load_secrets
from datasources.services.datasources import WriteOptions, update_data_source
from organizations.actors import Actor
from organizations.models import AuditEvent
from tests.datasources.test_secret_steering import CANARY, PER_TYPE

URL = "/api/v1/data-sources/"


@pytest.fixture
def editor_actor(org, editor):
    return Actor(organization=org, user=editor, role="editor",
                 scopes=frozenset({"datasource.read", "datasource.write"}))


def _create(api, type_key: str, connection: dict, credentials: dict) -> DataSource:
    body = {"name": f"src-{type_key}", "type": type_key, "connection": connection, "credentials": credentials}
    response = api.post(f"{URL}?test_connection=false", body, format="json")
    assert response.status_code == 201, response.json()
    return DataSource.objects.get(pk=response.json()["id"])


@pytest.mark.parametrize(("type_key", "connection", "credentials", "changes"), PER_TYPE,
                         ids=[row[0] for row in PER_TYPE])
def test_every_destination_field_withholds_the_secret(api, editor_actor, monkeypatch, type_key, connection,
                                                      credentials, changes):
    from datasources.services import datasources as service

    def no_test(*args, **kwargs):
        raise AssertionError("a withheld move is never tested")

    monkeypatch.setattr(service, "run_test", no_test)
    secret = next(iter(credentials))
    for change in changes:
        ds = _create(api, type_key, connection, credentials)
        outcome = moves.update_connection(actor=editor_actor, data_source_id=ds.pk, data={"connection": change})
        ds.refresh_from_db()
        assert (outcome.kind, ds.status, outcome.result.withheld) == ("withheld", "credentials_required", [secret])
        assert load_secrets(ds) == {}
        event = AuditEvent.objects.filter(target_id=ds.pk, action="update").latest("id")
        assert event.detail["withheld"] == [secret] and event.changes[f"credentials.{secret}"] == "cleared"
        assert CANARY not in str(event.detail) + str(event.changes)
        ds.delete()


def test_an_untested_write_that_sets_no_secret_keeps_the_wait(api, editor_actor, org):
    ds = _create(api, "postgresql", {"host": "db.internal", "database": "app", "username": "app"},
                 {"password": CANARY})
    moves.update_connection(actor=editor_actor, data_source_id=ds.pk, data={"connection": {"host": "db2.internal"}})
    owner = Actor.system(org)
    untested = WriteOptions(test_connection=False)
    update_data_source(actor=owner, data_source_id=ds.pk, data={"connection": {"database": "other"}}, mode="patch",
                       options=untested)
    ds.refresh_from_db()
    assert ds.status == "credentials_required"
    update_data_source(actor=owner, data_source_id=ds.pk, data={"credentials": {"password": "new"}}, mode="patch",
                       options=untested)
    ds.refresh_from_db()
    assert ds.status == "pending"  # a secret was set, untested: no longer waiting, not active either


def test_a_move_that_withholds_nothing_is_a_tested_move(api, editor_actor):
    """No stored secret travels the moved hop: nothing to withhold, the move is tested as usual."""
    ds = _create(api, "mysql", {"host": "db.internal", "database": "app", "username": "app"}, {})
    with pytest.raises(Exception) as caught:  # tested at a name that does not resolve: 400, nothing changes
        moves.update_connection(actor=editor_actor, data_source_id=ds.pk,
                                data={"connection": {"host": "nowhere.invalid"}})
    assert getattr(caught.value, "code", "") == "CREDENTIAL_TEST_FAILED"
    ds.refresh_from_db()
    assert (ds.status, ds.connection["host"]) == ("pending", "db.internal")
