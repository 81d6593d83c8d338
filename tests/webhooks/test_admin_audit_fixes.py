"""Webhook admin findings of the outside-in audit: a stale change page is refused (the webhook's
version, as the data-source admin does), and what the service refuses is a form error."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from organizations.actors import Actor
from tests.support.contract import BLOCKED_IP
from webhooks.models import Webhook
from webhooks.services import webhooks as service

EVENT = "data_source.updated"


@pytest.fixture
def webhook(org, admin_user, allow_loopback):
    created, _secret = service.create_webhook(actor=Actor.for_member(org, admin_user),
                                              data={"url": "http://127.0.0.1:9/hook", "events": [EVENT]})
    return created


def change_url(webhook: Webhook) -> str:
    return f"/admin/webhooks/webhook/{webhook.pk}/change/"


def posted_back(response) -> dict:
    """What the browser posts back from the rendered change form, unchanged."""
    form = response.context["adminform"].form
    data: dict = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if field.__class__.__name__ == "BooleanField":
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    return data


def test_a_stale_webhook_page_does_not_overwrite_a_change_made_meanwhile(admin_client, org, admin_user, webhook):
    data = posted_back(admin_client.get(change_url(webhook)))
    assert data["version_seen"] == webhook.version
    service.update_webhook(actor=Actor.for_member(org, admin_user), webhook_id=webhook.pk,
                           data={"description": "set by the API"})
    response = admin_client.post(change_url(webhook), {**data, "active": ""})  # the stale tab turns it off
    assert response.status_code == 200
    assert "changed by someone else" in " ".join(response.context["adminform"].form.non_field_errors())
    saved = Webhook.objects.get(pk=webhook.pk)
    assert (saved.description, saved.active, saved.version) == ("set by the API", True, webhook.version + 1)
    fresh = posted_back(admin_client.get(change_url(webhook)))
    fresh.pop("active")
    assert admin_client.post(change_url(webhook), fresh).status_code == 302
    saved.refresh_from_db()
    assert (saved.description, saved.active, saved.version) == ("set by the API", False, webhook.version + 2)


def test_a_refused_url_is_a_field_error_and_no_success(admin_client, webhook):
    data = posted_back(admin_client.get(change_url(webhook)))
    response = admin_client.post(change_url(webhook), {**data, "url": f"http://{BLOCKED_IP}/"})
    assert response.status_code == 200
    assert "not allowed" in " ".join(response.context["adminform"].form.errors["url"])
    assert not any("success" in str(m) for m in get_messages(response.wsgi_request))
    assert Webhook.objects.get(pk=webhook.pk).url == "http://127.0.0.1:9/hook"
