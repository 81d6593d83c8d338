"""The webhook admin: the same services (egress check, audit), the secret shown once in a message
and never on a page, deliveries read-only with a redeliver action."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from config.celery import app as celery_app
from eventlog.models import Event
from eventlog.services import new_event_id
from organizations.models import AuditEvent
from tests.support.contract import BLOCKED_IP
from tests.support.webhook_receiver import Receiver
from tests.support.workers import forget_broker_connections
from webhooks.models import Delivery, Webhook
from webhooks.services import delivery as delivery_service

ADD = "/admin/webhooks/webhook/add/"


@pytest.fixture
def eager_tasks():
    """Tasks run in this process when sent (no worker, no broker message left behind)."""
    keys = ("task_always_eager", "task_eager_propagates", "broker_url")
    old = {k: celery_app.conf.get(k) for k in keys}
    celery_app.conf.update(task_always_eager=True, task_eager_propagates=True, broker_url="memory://")
    forget_broker_connections()
    yield
    celery_app.conf.update(**old)
    forget_broker_connections()


def _form(org, url):
    return {"organization": org.pk, "url": url, "description": "from the admin", "events": ["data_source.updated"],
            "active": "on"}


def test_admin_creates_through_the_services_and_shows_the_secret_once(admin_client, org, allow_loopback, eager_tasks):
    with Receiver() as receiver:
        refused = admin_client.post(ADD, _form(org, f"http://{BLOCKED_IP}/"))
        assert refused.status_code == 200 and b"not allowed" in refused.content and not Webhook.objects.exists()
        response = admin_client.post(ADD, _form(org, receiver.url()))
        assert response.status_code == 200, response.content[:2000]  # the page that answers the form shows it
        webhook = Webhook.objects.get()
        secret = response.context["secret"]
        assert secret.startswith("whsec_") and secret in response.content.decode()
        assert not [m for m in get_messages(response.wsgi_request) if secret[6:16] in str(m)]  # not a message
        cookies = " ".join(morsel.value for morsel in response.cookies.values())
        assert secret[6:16] not in cookies
        assert AuditEvent.objects.filter(target_id=webhook.pk, action="create").exists()
        for page in (f"/admin/webhooks/webhook/{webhook.pk}/change/", "/admin/webhooks/webhook/",
                     "/admin/organizations/auditevent/"):
            content = admin_client.get(page).content.decode()
            assert secret not in content and secret[6:] not in content, page
        Event.objects.create(organization=org, public_id=new_event_id(), type="data_source.updated", data={})
        [delivery_id] = delivery_service.dispatch(org.pk)
        assert delivery_service.deliver(delivery_id).result == "succeeded"
        page = admin_client.get(f"/admin/webhooks/delivery/{delivery_id}/change/").content.decode()
        assert "succeeded" in page and "204" in page
        redelivered = admin_client.post("/admin/webhooks/delivery/", {"action": "redeliver_selected",
                                                                       "_selected_action": [delivery_id]})
        assert redelivered.status_code == 302
        assert receiver.count() == 2 and receiver.requests[1].headers["webhook-id"] == receiver.requests[0].headers[
            "webhook-id"]
        delivery = Delivery.objects.get(pk=delivery_id)
        assert (delivery.status, delivery.attempts) == ("succeeded", 2)
