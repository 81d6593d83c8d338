"""Change forms of models without a version (API tokens, organizations) refuse a page opened before
someone else's change, instead of putting back what the stale page showed."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from organizations.actors import Actor
from organizations.models import ApiToken, Organization
from organizations.services import create_token, update_token
from tests.organizations.test_admin_audit_fixes import _org_page_data

STALE = "was changed by someone else since you opened it"


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


def _seen_state(page) -> str:
    found = re.search(r'name="seen_state" value="([0-9a-f]+)"', page.content.decode())
    assert found, "the change form carries the state it shows"
    return found.group(1)


def test_a_stale_token_page_cannot_put_back_scopes_someone_narrowed(admin_client, org):
    token, _raw = create_token(organization=org, name="ci", scopes=["datasource.read", "datasource.write"])
    url = reverse("admin:organizations_apitoken_change", args=[token.pk])
    seen = _seen_state(admin_client.get(url))
    # another operator narrows the token meanwhile
    update_token(actor=Actor.system(org), token=token, scopes=["datasource.read"])
    stale = admin_client.post(url, {"name": "ci renamed", "scopes": ["datasource.read", "datasource.write"],
                                    "seen_state": seen})
    assert stale.status_code == 200 and STALE in stale.content.decode()
    token.refresh_from_db()
    assert (token.name, token.scopes) == ("ci", ["datasource.read"])
    fresh = admin_client.post(url, {"name": "ci renamed", "scopes": ["datasource.read"],
                                    "seen_state": _seen_state(admin_client.get(url))})
    assert fresh.status_code == 302
    assert ApiToken.objects.get(pk=token.pk).name == "ci renamed"


def test_a_stale_organization_page_cannot_switch_the_four_eyes_rule_back_off(admin_client, org):
    url = reverse("admin:organizations_organization_change", args=[org.pk])
    stale_data = _org_page_data(admin_client, org)
    Organization.objects.filter(pk=org.pk).update(changes_need_second_person=True)  # another tab's save
    stale = admin_client.post(url, {**stale_data, "name": "Acme Inc"})
    assert stale.status_code == 200 and STALE in stale.content.decode()
    org.refresh_from_db()
    assert (org.name, org.changes_need_second_person) == ("Acme", True)
    fresh = admin_client.post(url, {**_org_page_data(admin_client, org), "name": "Acme Inc"})
    assert fresh.status_code == 302
    org.refresh_from_db()
    assert (org.name, org.changes_need_second_person) == ("Acme Inc", True)
