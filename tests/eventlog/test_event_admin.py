"""The event log in the admin: read-only and organization-scoped."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from eventlog.services import publish
from organizations.models import Membership


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.mark.django_db
def test_a_member_sees_their_organizations_events_read_only(client, django_user_model, org, other_org):
    mine = publish(organization_id=org.pk, type="data_source.updated",
                   data={"data_source": {"id": 1, "name": "Warehouse <b>"}, "changed": ["name"]})
    theirs = publish(organization_id=other_org.pk, type="data_source.deleted",
                     data={"data_source": {"id": 2, "name": "Elsewhere"}})
    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_event"))
    Membership.objects.create(organization=org, user=user, role="viewer")
    client.force_login(user)

    page = client.get(reverse("admin:eventlog_event_changelist"))
    assert page.status_code == 200
    html = page.content.decode()
    assert mine.public_id in html and "data source: Warehouse &lt;b&gt;" in html
    assert theirs.public_id not in html and "Elsewhere" not in html

    detail = client.get(reverse("admin:eventlog_event_change", args=[mine.pk]))
    assert detail.status_code == 200 and "&quot;changed&quot;" in detail.content.decode()
    assert client.get(reverse("admin:eventlog_event_change", args=[theirs.pk])).status_code == 302
    assert client.get(reverse("admin:eventlog_event_add")).status_code == 403
    assert client.post(reverse("admin:eventlog_event_delete", args=[mine.pk])).status_code == 403
