"""The hand-built data-source representation equals DRF's field-by-field rendering, and reads
everything in one statement."""

from __future__ import annotations

import json

import pytest
from rest_framework import serializers

from datasources.api.representation import data_source_dict, for_representation
from datasources.api.serializers import DataSourceSerializer
from datasources.models import DataSource
from organizations.models import Workspace
from organizations.services import create_token

URL = "/api/v1/data-sources/"


def drf_fields(ds: DataSource) -> dict:
    """What DRF renders from the declared fields, one by one (the reference)."""
    return serializers.ModelSerializer.to_representation(DataSourceSerializer(), ds)


@pytest.fixture
def sources(api, org, sqlite_file, django_user_model):
    ws = Workspace.objects.create(organization=org, name="Team")
    plain = api.post(f"{URL}?test_connection=false", {
        "name": "Plain", "type": "sqlite", "connection": {"path": sqlite_file}}, format="json").json()
    full = api.post(f"{URL}?test_connection=false", {
        "name": "Full", "type": "postgresql", "description": "ünïcode ✓", "workspace": ws.pk,
        "tags": ["a", "b"], "metadata": {"team": {"owner": "x"}, "n": 1.5},
        "connection": {"host": "db.internal", "database": "app", "username": "app",
                       "ssh_tunnel": {"enabled": True, "host": "bastion", "username": "t"}},
        "credentials": {"password": "pw-1", "ssh_password": "pw-2"}}, format="json").json()
    # A change by a user (session) rather than a token, so both actor kinds are rendered.
    user = django_user_model.objects.create_user("ana", password="x")
    from organizations.models import Membership

    Membership.objects.create(organization=org, user=user, role="owner")
    DataSource.objects.filter(pk=full["id"]).update(updated_by=user, updated_by_token=None,
                                                     last_test={"ok": False, "stages": []})
    return [plain["id"], full["id"]]


def test_hand_built_dict_equals_drf_rendering(sources):
    for pk in sources:
        annotated = for_representation(DataSource.objects.all()).get(pk=pk)
        plain = DataSource.objects.get(pk=pk)  # no annotations: the fallbacks
        reference = drf_fields(plain)
        assert list(reference) == DataSourceSerializer.Meta.fields
        assert data_source_dict(annotated) == reference
        assert data_source_dict(plain) == reference
        assert json.dumps(data_source_dict(annotated)) == json.dumps(reference)  # same order, same types


def test_credentials_set_and_actors_come_from_the_annotations(sources, django_assert_num_queries):
    full = for_representation(DataSource.objects.all()).get(pk=sources[1])
    with django_assert_num_queries(0):
        rendered = data_source_dict(full)
    assert rendered["credentials_set"] == ["password", "ssh_password"]
    assert rendered["updated_by"]["kind"] == "user" and rendered["updated_by"]["name"] == "ana"
    assert rendered["created_by"]["kind"] == "token"
    assert rendered["workspace"] is not None and rendered["tags"] == ["a", "b"]


def test_get_is_one_statement(org, sources, django_assert_num_queries):
    """The data source (with everything it renders), nothing else: the token resolved by the first
    request is served by the token cache (organizations/token_cache.py), and a token used within the
    last minute is not written again."""
    from rest_framework.test import APIClient

    _, raw = create_token(organization=org, name="reader", scopes=["datasource.read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(f"{URL}{sources[1]}/").status_code == 200  # records last use, caches the token
    with django_assert_num_queries(1):
        response = client.get(f"{URL}{sources[1]}/")
    assert response.status_code == 200
    assert response.json()["credentials_set"] == ["password", "ssh_password"]
