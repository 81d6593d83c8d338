"""Signing against the spec's verifier, backoff bounds, dispatch idempotence, the egress policy at
delivery time, redirects, the lag gauge and secret re-encryption (in this process, real receivers)."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from standardwebhooks import Webhook as Verifier
from standardwebhooks import WebhookVerificationError

from eventlog.models import Event
from eventlog.services import new_event_id
from organizations.actors import Actor
from tests.support.contract import connect_attempts
from tests.support.webhook_receiver import Receiver
from webhooks import metrics
from webhooks.models import Delivery, DeliveryAttempt, Webhook
from webhooks.services import delivery as service
from webhooks.services import signing
from webhooks.services import webhooks as webhook_service


def test_signature_is_accepted_by_the_standard_webhooks_verifier():
    secret = signing.generate_secret()
    body = b'{"id":"msg_1","type":"data_source.updated","data":{"name":"caf\xc3\xa9"}}'
    timestamp = int(timezone.now().timestamp())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(timestamp),
               "webhook-signature": signing.sign(secret, "msg_1", timestamp, body)}
    assert Verifier(secret).verify(body, headers)["data"]["name"] == "café"
    with pytest.raises(WebhookVerificationError):
        Verifier(signing.generate_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(body, {**headers, "webhook-id": "msg_2"})


@pytest.mark.parametrize("bad", ["", "whsec_", "secret", "whsec_QUFB", "whsec_" + "A" * 31 + "!",
                                 "whsec_" + "QUFB" * 30])
def test_secret_format(bad):
    with pytest.raises(signing.SecretFormatError):
        signing.secret_key(bad)


def test_backoff_is_full_jitter_under_the_exponential_cap(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS, settings.WEBHOOK_RETRY_MAX_SECONDS = 5, 3600
    rng = random.Random(7)
    for attempt, cap in [(1, 5), (2, 10), (3, 20), (8, 640), (11, 3600), (200, 3600)]:
        samples = [service.backoff_seconds(attempt, rng) for _ in range(400)]
        assert all(0 <= s <= cap for s in samples), attempt
        assert max(samples) > cap * 0.9 and min(samples) < cap * 0.1, attempt  # spread over the whole range


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def _webhook(org, url, events=("data_source.updated",), **fields) -> Webhook:
    webhook, _ = webhook_service.create_webhook(actor=Actor.system(org, origin="test"),
                                                data={"url": url, "events": list(events), **fields})
    return webhook


def _event(org, type="data_source.updated") -> Event:
    return Event.objects.create(organization=org, public_id=new_event_id(), type=type, data={"id": 1})


def test_dispatch_fans_out_once_to_subscribed_active_webhooks(org, other_org, allow_loopback, receiver):
    early = _event(org)  # before any webhook: not delivered to it
    subscribed = _webhook(org, receiver.url())
    other_type = _webhook(org, receiver.url(), events=["workflow.repointed"])
    inactive = _webhook(org, receiver.url(), active=False)
    foreign = _webhook(other_org, receiver.url())
    events = [_event(org) for _ in range(3)] + [_event(other_org)]
    ids = service.dispatch(org.pk)
    assert sorted(Delivery.objects.filter(pk__in=ids).values_list("event_id", flat=True)) == [e.pk for e in events[:3]]
    assert set(Delivery.objects.values_list("webhook_id", flat=True)) == {subscribed.pk}
    assert service.dispatch(org.pk) == []
    Event.objects.filter(organization=org).update(dispatched_at=None)  # a second fan-out of the same events
    assert service.dispatch(org.pk) == [] and Delivery.objects.count() == 3
    assert not Delivery.objects.filter(event=early).exists()
    assert not Delivery.objects.filter(webhook__in=[other_type, inactive, foreign]).exists()


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_fan_out_each_event_once(org, allow_loopback, receiver):
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED needs PostgreSQL (SQLite serializes writers anyway)")
    _webhook(org, receiver.url())
    _webhook(org, receiver.url())
    for _ in range(50):
        _event(org)
    results: list[list[int]] = []

    def run() -> None:
        results.append(service.dispatch(org.pk))
        connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for r in results for i in r]
    assert len(ids) == len(set(ids)) == 100 == Delivery.objects.count()


def test_a_host_the_policy_now_refuses_is_refused_at_delivery(org, allow_loopback, receiver, settings):
    webhook = _webhook(org, receiver.url())
    _event(org)
    [delivery_id] = service.dispatch(org.pk)
    settings.DATASOURCE_ALLOWED_NETWORKS = []  # the address is no longer an allowed destination
    with connect_attempts() as attempts:
        outcome = service.deliver(delivery_id)
    assert outcome.result == "retry" and receiver.count() == 0
    assert not [a for a in attempts if isinstance(a, tuple) and a and a[1] == receiver.port]
    attempt = DeliveryAttempt.objects.get()
    assert attempt.outcome == "refused" and attempt.status_code is None and "not allowed" in attempt.error
    assert Webhook.objects.get(pk=webhook.pk).consecutive_failures == 1


def test_a_redirect_is_a_failed_attempt_and_never_followed(org, allow_loopback, receiver):
    with Receiver(redirect_to=receiver.url("/elsewhere")) as redirecting:
        _webhook(org, redirecting.url("/hook?token=s3cr3t"))
        _event(org)
        [delivery_id] = service.dispatch(org.pk)
        assert service.deliver(delivery_id).result == "retry"
        assert redirecting.count() == 1 and redirecting.requests[0].path == "/hook?token=s3cr3t"
    assert receiver.count() == 0
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status_code == 302 and attempt.outcome == "failed" and "redirects are not followed" in attempt.error


def test_errors_never_show_the_query_and_the_lag_gauge_reads_the_oldest_due(org, allow_loopback, receiver):
    with Receiver() as closing:
        url = closing.url("/hook?token=s3cr3t")
    _webhook(org, url)  # its server is gone: connections are refused
    assert metrics.delivery_lag_seconds() == 0.0
    old = _event(org)
    Event.objects.filter(pk=old.pk).update(occurred_at=timezone.now() - timedelta(seconds=90))
    assert metrics.delivery_lag_seconds() == pytest.approx(90, abs=5)
    Event.objects.filter(pk=old.pk).update(occurred_at=timezone.now())  # not before the webhook: delivered
    [delivery_id] = service.dispatch(org.pk)
    Delivery.objects.filter(pk=delivery_id).update(next_attempt_at=timezone.now() - timedelta(seconds=30))
    assert metrics.delivery_lag_seconds() == pytest.approx(30, abs=5)
    assert service.deliver(delivery_id).result == "retry"
    error = DeliveryAttempt.objects.get().error
    assert "Could not connect" in error and "s3cr3t" not in error and "token" not in error


def test_rotate_encryption_key_re_encrypts_webhook_secrets_too(org, allow_loopback, receiver, settings):
    webhook = _webhook(org, receiver.url(), secret="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    settings.ENCRYPTION_KEYS = ["k2:" + "B" * 43, *settings.ENCRYPTION_KEYS]
    call_command("rotate_encryption_key")
    webhook.refresh_from_db()
    assert webhook.secret_key_id == "k2"
    assert signing.load_secret(webhook) == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
