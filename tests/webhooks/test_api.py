"""The webhooks API in this process: validation, egress refusal before any packet, the secret shown
once, tenancy, roles, ETags, audit; deliveries made by the service against a real receiver."""

from __future__ import annotations

import json
import logging

import pytest
from standardwebhooks import Webhook as Verifier

from eventlog.catalogue import EVENT_TYPES
from eventlog.models import Event
from eventlog.services import publish
from organizations.models import AuditEvent
from tests.conftest import client_for
from tests.support.contract import BLOCKED_IP, connect_attempts
from tests.support.webhook_receiver import Receiver
from webhooks.models import Delivery, Webhook
from webhooks.services import delivery as delivery_service

URL = "/api/v1/webhooks/"
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes of base64


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def _create(api, receiver, **extra):
    body = {"url": receiver.url(), "events": ["data_source.updated"], **extra}
    response = api.post(URL, body, format="json")
    assert response.status_code == 201, response.json()
    return response


def test_create_shows_the_secret_once_and_never_again(api, org, allow_loopback, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    created = _create(api, receiver, description="pager").json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 32
    assert created["events"] == ["data_source.updated"] and created["active"] is True
    pk = created["id"]
    texts = [api.get(f"{URL}{pk}/").content, api.get(URL).content,
             json.dumps(list(AuditEvent.objects.values()), default=str), caplog.text,
             json.dumps(list(Webhook.objects.values()), default=str)]
    for text in texts:
        assert secret not in str(text) and secret[6:] not in str(text)
    assert "secret" not in api.get(f"{URL}{pk}/").json()
    audit = AuditEvent.objects.get(target_type="webhooks.webhook", target_id=pk, action="create")
    assert audit.changes["secret"] == "changed"


def test_a_given_secret_must_have_the_standard_format(api, allow_loopback, receiver):
    for bad in ("s3cret", "whsec_!!!", "whsec_" + "QUFB", ""):
        response = api.post(URL, {"url": receiver.url(), "events": ["data_source.created"], "secret": bad},
                            format="json")
        assert response.status_code == 400 and "secret" in response.json()["errors"], (bad, response.json())
    assert not Webhook.objects.exists()
    assert _create(api, receiver, secret=SECRET).json()["secret"] == SECRET


@pytest.mark.parametrize("body,field", [
    ({"events": ["data_source.updated"]}, "url"),
    ({"url": "ftp://127.0.0.1/x", "events": ["data_source.updated"]}, "url"),
    ({"url": "http://user:pw@127.0.0.1/x", "events": ["data_source.updated"]}, "url"),
    ({"url": "http://127.0.0.1/x", "events": []}, "events"),
    ({"url": "http://127.0.0.1/x", "events": ["data_source.exploded"]}, "events"),
    ({"url": "http://127.0.0.1/x", "events": ["data_source.updated"], "id": 3}, "id"),
    ({"url": "http://127.0.0.1/x", "events": ["data_source.updated"], "active": "yes"}, "active"),
])
def test_invalid_bodies_are_400_naming_the_field(api, allow_loopback, body, field):
    response = api.post(URL, body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "INVALID_REQUEST_BODY"
    assert [k for k in response.json()["errors"] if k.split(".")[0] == field], response.json()
    assert not Webhook.objects.exists()


def test_blocked_destination_is_refused_with_zero_connection_attempts(api, allow_loopback, receiver):
    with connect_attempts() as attempts:
        for url in (f"http://{BLOCKED_IP}/latest/meta-data/", f"https://{BLOCKED_IP}:8443/hook?token=abc"):
            response = api.post(URL, {"url": url, "events": ["data_source.updated"]}, format="json")
            assert response.status_code == 400, response.json()
            body = response.json()
            assert body["code"] == "DESTINATION_NOT_ALLOWED" and "url" in body["errors"]
            assert "token=abc" not in json.dumps(body)
    assert not [a for a in attempts if isinstance(a, tuple) and a and a[0] == BLOCKED_IP], attempts
    assert not Webhook.objects.exists()
    pk = _create(api, receiver).json()["id"]
    with connect_attempts() as attempts:
        response = api.patch(f"{URL}{pk}/", {"url": f"http://{BLOCKED_IP}/"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "DESTINATION_NOT_ALLOWED"
    assert not [a for a in attempts if isinstance(a, tuple) and a and a[0] == BLOCKED_IP]
    assert Webhook.objects.get(pk=pk).url == receiver.url()


def test_loopback_is_refused_unless_the_operator_opened_it(api, receiver):
    response = api.post(URL, {"url": receiver.url(), "events": ["data_source.updated"]}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "DESTINATION_NOT_ALLOWED"
    assert receiver.count() == 0


def test_another_organizations_webhook_is_a_404(api, other_org, allow_loopback, receiver):
    pk = _create(api, receiver).json()["id"]
    other = client_for(other_org)
    assert other.get(f"{URL}{pk}/").status_code == 404
    assert other.patch(f"{URL}{pk}/", {"active": False}, format="json").status_code == 404
    assert other.post(f"{URL}{pk}/rotate-secret/").status_code == 404
    assert other.get(f"{URL}{pk}/deliveries/").status_code == 404
    assert other.delete(f"{URL}{pk}/").status_code == 404
    assert other.get(URL).json()["results"] == []
    assert api.get(f"{URL}abc/").status_code == 404
    assert Webhook.objects.get(pk=pk).active


def test_only_organization_admins_manage_webhooks(org, editor, allow_loopback, receiver):
    no_admin_scope = client_for(org, scopes=["datasource.read", "datasource.write"])
    assert no_admin_scope.get(URL).status_code == 403
    as_editor = client_for(org, username="editor")
    assert as_editor.post(URL, {"url": receiver.url(), "events": ["data_source.updated"]},
                          format="json").status_code == 403
    assert no_admin_scope.get("/api/v1/event-types/").status_code == 200


def test_patch_put_etag_delete_and_audit(api, allow_loopback, receiver):
    created = _create(api, receiver)
    pk, etag = created.json()["id"], created["ETag"]
    changed = api.patch(f"{URL}{pk}/", {"description": "new", "events": ["data_source.created"]}, format="json",
                        HTTP_IF_MATCH=etag)
    assert changed.status_code == 200 and changed.json()["description"] == "new"
    assert api.patch(f"{URL}{pk}/", {"description": "stale"}, format="json", HTTP_IF_MATCH=etag).status_code == 412
    put = api.put(f"{URL}{pk}/", {"url": receiver.url("/other?token=t0k"), "events": ["workflow.repointed"]},
                  format="json")
    assert put.status_code == 200 and put.json()["events"] == ["workflow.repointed"]
    assert put.json()["description"] == ""
    assert api.put(f"{URL}{pk}/", {"url": receiver.url(), "events": ["workflow.repointed"], "secret": SECRET},
                   format="json").status_code == 400
    actions = list(AuditEvent.objects.filter(target_type="webhooks.webhook", target_id=pk)
                   .order_by("id").values_list("action", flat=True))
    assert actions == ["create", "update", "update"]
    assert "t0k" not in json.dumps(list(AuditEvent.objects.values("changes")), default=str)
    assert api.delete(f"{URL}{pk}/").status_code == 204
    assert api.get(f"{URL}{pk}/").status_code == 404
    assert AuditEvent.objects.filter(target_id=pk, action="delete").exists()


def test_rotate_secret_shows_the_new_one_once(api, allow_loopback, receiver):
    created = _create(api, receiver).json()
    rotated = api.post(f"{URL}{created['id']}/rotate-secret/")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != created["secret"] and rotated.json()["secret"].startswith("whsec_")
    given = api.post(f"{URL}{created['id']}/rotate-secret/", {"secret": SECRET}, format="json")
    assert given.json()["secret"] == SECRET
    assert api.post(f"{URL}{created['id']}/rotate-secret/", {"secret": "nope"}, format="json").status_code == 400
    for body in ("[]", "null", '""', "0"):  # not an object: refused, the secret kept (they rotated it)
        refused = api.post(f"{URL}{created['id']}/rotate-secret/", body, content_type="application/json")
        assert refused.status_code == 400 and refused.json()["code"] == "INVALID_REQUEST_BODY", body
    assert api.post(f"{URL}{created['id']}/rotate-secret/", {}, format="json").status_code == 200
    audit = AuditEvent.objects.filter(target_id=created["id"], action="rotate_secret")
    assert audit.count() == 3 and all(a.changes == {"secret": "changed"} for a in audit)
    assert SECRET not in json.dumps(list(AuditEvent.objects.values()), default=str)


def test_event_types_are_the_catalogue(api):
    response = api.get("/api/v1/event-types/")
    assert response.status_code == 200
    assert [t["key"] for t in response.json()] == list(EVENT_TYPES)


def test_a_delivery_made_by_the_service_is_signed_and_logged(api, org, allow_loopback, receiver,
                                                            django_capture_on_commit_callbacks):
    secret = _create(api, receiver, secret=SECRET).json()["secret"]
    with django_capture_on_commit_callbacks(execute=False):
        event = publish(organization_id=org.pk, type="data_source.updated", data={"id": 1, "changed": ["name"]})
        publish(organization_id=org.pk, type="data_source.created", data={"id": 2})  # not subscribed
    ids = delivery_service.dispatch(org.pk)
    assert len(ids) == 1 and delivery_service.dispatch(org.pk) == []
    assert delivery_service.deliver(ids[0]).result == "succeeded"
    assert delivery_service.deliver(ids[0]).result == "not_due"  # never sent twice
    [request] = receiver.requests
    payload = Verifier(secret).verify(request.body, request.headers)
    assert payload["id"] == event.public_id == request.headers["webhook-id"]
    assert payload["type"] == "data_source.updated" and payload["data"]["changed"] == ["name"]
    assert request.headers["Content-Type"] == "application/json" and request.headers["User-Agent"]
    deliveries = api.get(f"{URL}{Delivery.objects.get().webhook_id}/deliveries/").json()["results"]
    assert deliveries[0]["status"] == "succeeded" and deliveries[0]["event_id"] == event.public_id
    assert [(a["number"], a["status_code"], a["outcome"]) for a in deliveries[0]["attempts"]] == [(1, 204, "succeeded")]
    assert Event.objects.filter(dispatched_at__isnull=True).count() == 0
