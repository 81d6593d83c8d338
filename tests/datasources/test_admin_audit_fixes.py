"""Data-source admin findings of the outside-in audit: the Metadata input parses JSON by the API's
rules (core.parsers), and tags are refused when repeated, as the API refuses them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from datasources.models import DataSource
from datasources.services.datasources import create_data_source
from organizations.actors import Actor
from organizations.models import ALL_SCOPES, AuditEvent, Membership, Role
from tests.support.admin_forms import form_data

DS = "admin:datasources_datasource"
DEEP = '{"a": ' * 80 + "1" + "}" * 80

#: (posted Metadata text, the API's message the form must show)
REFUSED = [
    ('{"k": "\\ud800"}', "k: Must be valid UTF-8 text"),
    ('{"\\ud800": 1}', "Key: Must be valid UTF-8 text"),
    ('{"k": "a\\u0000b"}', "k: Must not contain NUL characters"),
    ('{"k": NaN}', "k: Must be a finite number"),
    ('{"k": Infinity}', "k: Must be a finite number"),
    ('{"k": 1e400}', "k: Must be a finite number"),
    ('{"k": 9223372036854775808}', "k: Integers must fit in 64 bits"),
    ('{"k": -9223372036854775809}', "k: Integers must fit in 64 bits"),
    (DEEP, "Nested deeper than 64 levels."),
]


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def operator(admin_user, org):
    Membership.objects.create(organization=org, user=admin_user, role=Role.OWNER)
    return admin_user


@pytest.fixture
def source(org, operator, sqlite_file):
    actor = Actor(organization=org, user=operator, role=Role.OWNER, scopes=frozenset(ALL_SCOPES))
    data = {"name": "Shop", "type": "sqlite", "connection": {"path": sqlite_file}, "tags": ["a"],
            "metadata": {"team": "data"}}
    return create_data_source(actor=actor, data=data).data_source


def _errors(response, field: str) -> str:
    assert response.status_code == 200, response.status_code
    return " ".join(response.context["adminform"].form.errors.get(field, []))


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_metadata_refuses_what_the_api_refuses_on_change(admin_client, source, text, message):
    url = reverse(f"{DS}_change", args=[source.pk])
    data = form_data(admin_client.get(url))
    data.update(metadata=text, description="with bad metadata")
    response = admin_client.post(url, data)
    assert message in _errors(response, "metadata")
    ds = DataSource.objects.get(pk=source.pk)
    assert (ds.metadata, ds.description, ds.version) == ({"team": "data"}, "", source.version)
    # every page that shows the source still renders
    assert admin_client.get(reverse(f"{DS}_history", args=[source.pk]), follow=True).status_code == 200
    assert admin_client.get(f"/api/v1/data-sources/{source.pk}/").status_code in (200, 403)


@pytest.mark.parametrize(("text", "message"), REFUSED[:7])
def test_metadata_refuses_what_the_api_refuses_on_add(admin_client, operator, org, sqlite_file, text, message):
    url = reverse(f"{DS}_add") + "?type=sqlite"
    data = form_data(admin_client.get(url))
    data.update(name="Fresh", organization=org.pk, connection__path=sqlite_file, metadata=text)
    response = admin_client.post(url, data)
    assert message in _errors(response, "metadata")
    assert "already exists" not in response.content.decode()
    assert not DataSource.objects.filter(name="Fresh").exists()


def test_refused_metadata_is_shown_again_as_typed(admin_client, source):
    url = reverse(f"{DS}_change", args=[source.pk])
    data = form_data(admin_client.get(url))
    data["metadata"] = '{"k": "\\ud800"}'
    html = admin_client.post(url, data).content.decode()
    assert "\\ud800" in html  # the escape as typed, not a lone surrogate (which cannot be encoded)


def test_accepted_metadata_is_saved_as_before(admin_client, source):
    url = reverse(f"{DS}_change", args=[source.pk])
    data = form_data(admin_client.get(url))
    data["metadata"] = '{"team": "data", "n": 9223372036854775807, "x": 1.5, "s": "caf\\u00e9"}'
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert DataSource.objects.get(pk=source.pk).metadata == {"team": "data", "n": 2**63 - 1, "x": 1.5,
                                                              "s": "café"}


def test_repeated_tags_are_refused_as_by_the_api(admin_client, source):
    url = reverse(f"{DS}_change", args=[source.pk])
    data = form_data(admin_client.get(url))
    data["tags"] = "a, a, b"
    response = admin_client.post(url, data)
    assert "Tags must be unique." in _errors(response, "tags")
    assert DataSource.objects.get(pk=source.pk).tags == ["a"]
    assert not AuditEvent.objects.filter(target_id=source.pk, action="update").exists()


def test_repeated_tags_are_refused_on_add(admin_client, operator, org, sqlite_file):
    url = reverse(f"{DS}_add") + "?type=sqlite"
    data = form_data(admin_client.get(url))
    data.update(name="Fresh", organization=org.pk, connection__path=sqlite_file, tags="x,x")
    assert "Tags must be unique." in _errors(admin_client.post(url, data), "tags")
    assert not DataSource.objects.filter(name="Fresh").exists()
