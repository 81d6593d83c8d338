"""Webhook admin findings of the outside-in audit: a stale change page is refused (the webhook's
version, as the data-source admin does), what the service refuses is a form error, and a new
webhook's signing secret is shown once on the page (as a token's), never in a session message."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from organizations.actors import Actor
from tests.support.admin_forms import form_data
from tests.support.contract import BLOCKED_IP
from webhooks.models import Webhook
from webhooks.services import signing
from webhooks.services import webhooks as service

EVENT = "data_source.updated"


@pytest.fixture
def webhook(org, admin_user, allow_loopback):
    created, _secret = service.create_webhook(actor=Actor.for_member(org, admin_user),
                                              data={"url": "http://127.0.0.1:9/hook", "events": [EVENT]})
    return created


def change_url(webhook: Webhook) -> str:
    return f"/admin/webhooks/webhook/{webhook.pk}/change/"


def test_a_stale_webhook_page_does_not_overwrite_a_change_made_meanwhile(admin_client, org, admin_user, webhook):
    data = form_data(admin_client.get(change_url(webhook)))
    assert data["version_seen"] == webhook.version
    service.update_webhook(actor=Actor.for_member(org, admin_user), webhook_id=webhook.pk,
                           data={"description": "set by the API"})
    response = admin_client.post(change_url(webhook), {**data, "active": ""})  # the stale tab turns it off
    assert response.status_code == 200
    assert "changed by someone else" in " ".join(response.context["adminform"].form.non_field_errors())
    saved = Webhook.objects.get(pk=webhook.pk)
    assert (saved.description, saved.active, saved.version) == ("set by the API", True, webhook.version + 1)
    fresh = form_data(admin_client.get(change_url(webhook)))
    fresh.pop("active")
    assert admin_client.post(change_url(webhook), fresh).status_code == 302
    saved.refresh_from_db()
    assert (saved.description, saved.active, saved.version) == ("set by the API", False, webhook.version + 2)


def test_a_refused_url_is_a_field_error_and_no_success(admin_client, webhook):
    data = form_data(admin_client.get(change_url(webhook)))
    response = admin_client.post(change_url(webhook), {**data, "url": f"http://{BLOCKED_IP}/"})
    assert response.status_code == 200
    assert "not allowed" in " ".join(response.context["adminform"].form.errors["url"])
    assert not any("success" in str(m) for m in get_messages(response.wsgi_request))
    assert Webhook.objects.get(pk=webhook.pk).url == "http://127.0.0.1:9/hook"


# --- a new webhook's signing secret: shown once on the page, never in a message ---------------------

ADD = "/admin/webhooks/webhook/add/"


def test_the_signing_secret_is_shown_once_on_the_page_and_never_stored_in_the_session(admin_client, org,
                                                                                       allow_loopback):
    form = admin_client.get(ADD).context["adminform"].form
    submission = form["submission"].value()
    assert submission
    data = {"organization": org.pk, "url": "http://127.0.0.1:9/new", "events": [EVENT], "active": "on",
            "submission": submission}
    response = admin_client.post(ADD, data)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    webhook = Webhook.objects.get(url="http://127.0.0.1:9/new")
    secret = response.context["secret"]
    assert secret.startswith("whsec_") and secret in response.content.decode()
    assert signing.load_secret(webhook) == secret
    assert not list(get_messages(response.wsgi_request))
    session = admin_client.session
    assert all(secret[6:16] not in str(session[key]) for key in session.keys())
    cookies = " ".join(morsel.value for morsel in response.cookies.values())
    assert secret[6:16] not in cookies
    for page in (change_url(webhook), "/admin/webhooks/webhook/", "/admin/organizations/auditevent/"):
        assert secret[6:] not in admin_client.get(page).content.decode(), page
    # the browser's reload re-posts the form: nothing new, the secret not shown again
    again = admin_client.post(ADD, data)
    assert again.status_code == 302 and again["Location"] == change_url(webhook)
    assert Webhook.objects.count() == 1
    assert secret[6:] not in admin_client.get(again["Location"]).content.decode()
