"""Fan-out of outbox events into deliveries, one attempt of a delivery, retries and the sweep.

Nothing here enqueues a task: the functions return the delivery ids (and retry delays) for
``webhooks.tasks`` to enqueue. Two dispatchers never fan out the same event (rows locked with
SKIP LOCKED, and one delivery per event and webhook by constraint); two workers never send the same
delivery at once (a conditional UPDATE claims it until ``claimed_until``)."""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from datasources import crypto
from eventlog.models import Event
from eventlog.services import envelope
from organizations import audit
from organizations.actors import Actor
from webhooks import metrics
from webhooks.models import AttemptOutcome, Delivery, DeliveryAttempt, DeliveryStatus, Webhook
from webhooks.services import destination, sender, signing

logger = logging.getLogger(__name__)
BATCH = 500
CLAIM_MARGIN_SECONDS = 30.0


def backoff_seconds(attempt: int, rng: random.Random | None = None) -> float:
    """Delay before the attempt after failed attempt number ``attempt`` (1-based): full jitter,
    uniform in [0, min(WEBHOOK_RETRY_MAX_SECONDS, WEBHOOK_RETRY_BASE_SECONDS * 2**(attempt-1))]."""
    cap = min(float(settings.WEBHOOK_RETRY_MAX_SECONDS),
              float(settings.WEBHOOK_RETRY_BASE_SECONDS) * 2 ** min(max(attempt - 1, 0), 62))
    return (rng or random.SystemRandom()).uniform(0, cap)


def _claim_seconds() -> float:
    return float(settings.WEBHOOK_TIMEOUT_SECONDS) + 1 + CLAIM_MARGIN_SECONDS


#: Whether an organization has an active webhook, kept in Django's cache (shared: Redis) and dropped
#: after any commit that saves or deletes one of its webhooks. A stale "no" lasts at most
#: ACTIVE_WEBHOOK_CACHE_SECONDS and loses nothing: beat's sweep dispatches the events left in the outbox.
ACTIVE_WEBHOOK_CACHE_SECONDS = 60


def _active_key(organization_id: int) -> str:
    return f"webhooks:active:{organization_id}"


def has_active_webhook(organization_id: int) -> bool:
    """The events listener's check after every commit that published an event: from the cache when
    it is there (no statement), else one indexed query."""
    key = _active_key(organization_id)
    found = cache.get(key)
    if found is None:
        found = Webhook.objects.filter(organization_id=organization_id, active=True).exists()
        cache.set(key, found, ACTIVE_WEBHOOK_CACHE_SECONDS)
    return bool(found)


def forget_active(sender: type, instance: Webhook, **kwargs: object) -> None:
    """post_save/post_delete of a Webhook: drop its organization's answer now and after the commit."""
    key = _active_key(instance.organization_id)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


def dispatch(organization_id: int) -> list[int]:
    """Fan the organization's undispatched events out to its active webhooks subscribed to their
    type (events from before a webhook's ``active_since`` are not for it); returns the new
    delivery ids."""
    new: list[int] = []
    while True:
        with transaction.atomic():
            events = list(Event.objects.select_for_update(skip_locked=True)
                          .filter(organization_id=organization_id, dispatched_at__isnull=True).order_by("id")[:BATCH])
            if not events:
                break
            hooks = list(Webhook.objects.filter(organization_id=organization_id, active=True))
            now = timezone.now()
            rows = [Delivery(webhook=h, event=e, next_attempt_at=now, attempts_allowed=settings.WEBHOOK_MAX_ATTEMPTS)
                    for e in events for h in hooks
                    if e.type in h.events and h.active_since is not None and e.occurred_at >= h.active_since]
            Delivery.objects.bulk_create(rows, ignore_conflicts=True)
            ids = [e.pk for e in events]
            Event.objects.filter(pk__in=ids).update(dispatched_at=now)
            if rows:
                # the rows made now (a conflicting row another fan-out made earlier is older)
                new.extend(Delivery.objects.filter(event_id__in=ids, created_at__gte=now).values_list("id", flat=True))
        if len(events) < BATCH:
            break
    return new


@dataclass(frozen=True)
class Outcome:
    result: str  # succeeded, retry, failed, not_due, inactive
    retry_in: float | None = None


def _claim(delivery_id: int) -> bool:
    now = timezone.now()
    return bool(Delivery.objects.filter(pk=delivery_id).filter(
        Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        | Q(status=DeliveryStatus.DELIVERING, claimed_until__lt=now)
    ).update(status=DeliveryStatus.DELIVERING, claimed_until=now + timedelta(seconds=_claim_seconds()),
             updated_at=now))


def _attempt(delivery: Delivery) -> tuple[sender.SendResult, bool]:
    """Sign and send once; returns the result and whether the destination was refused."""
    webhook, event = delivery.webhook, delivery.event
    timeout = float(settings.WEBHOOK_TIMEOUT_SECONDS)
    started = time.monotonic()
    try:
        secret = signing.load_secret(webhook)
    except crypto.DecryptionError:
        return sender.SendResult(None, "The signing secret does not decrypt with the configured keys.", 0.0), False
    body = json.dumps(envelope(event), separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {"webhook-id": event.public_id, "webhook-timestamp": str(timestamp),
               "webhook-signature": signing.sign(secret, event.public_id, timestamp, body)}
    try:
        target = destination.check(webhook.url, timeout)
    except (destination.DestinationRefused, destination.InvalidUrl) as exc:
        logger.info("webhook %s: delivery %s refused by the egress policy", webhook.pk, delivery.pk)
        message = str(exc) if isinstance(exc, destination.DestinationRefused) else "The URL is invalid."
        return sender.SendResult(None, message, (time.monotonic() - started) * 1000), True
    return sender.send(target, body, headers, timeout), False


def deliver(delivery_id: int) -> Outcome:
    """Claim the delivery if it is due (or its claim is stale), make one attempt, log it, and
    schedule the next one (backoff with full jitter) or give up."""
    if not _claim(delivery_id):
        return Outcome("not_due")
    delivery = Delivery.objects.select_related("webhook", "event").get(pk=delivery_id)
    if not delivery.webhook.active:
        Delivery.objects.filter(pk=delivery_id).update(status=DeliveryStatus.FAILED, claimed_until=None,
                                                       next_attempt_at=None, updated_at=timezone.now())
        return Outcome("inactive")
    started_at = timezone.now()
    result, refused = _attempt(delivery)
    metrics.observe_attempt(result.ok, result.duration_ms / 1000)
    return _record(delivery, started_at, result, refused)


def _record(delivery: Delivery, started_at, result: sender.SendResult, refused: bool) -> Outcome:
    number = delivery.attempts + 1
    now = timezone.now()
    outcome = (AttemptOutcome.SUCCEEDED if result.ok else AttemptOutcome.REFUSED if refused
               else AttemptOutcome.FAILED)
    with transaction.atomic():
        DeliveryAttempt.objects.create(delivery=delivery, number=number, started_at=started_at,
                                       duration_ms=round(result.duration_ms, 3), status_code=result.status_code,
                                       outcome=outcome, error=result.error[:500])
        fields = {"attempts": number, "last_attempt_at": now, "claimed_until": None, "updated_at": now}
        if result.ok:
            Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.SUCCEEDED, succeeded_at=now,
                                                           next_attempt_at=None, **fields)
            Webhook.objects.filter(pk=delivery.webhook_id, consecutive_failures__gt=0).update(consecutive_failures=0)
            return Outcome("succeeded")
        retry_in = backoff_seconds(number) if number < delivery.attempts_allowed else None
        if retry_in is None:
            Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, next_attempt_at=None,
                                                           **fields)
        else:
            Delivery.objects.filter(pk=delivery.pk).update(
                status=DeliveryStatus.PENDING, next_attempt_at=now + timedelta(seconds=retry_in), **fields)
        Webhook.objects.filter(pk=delivery.webhook_id).update(consecutive_failures=F("consecutive_failures") + 1)
        if _disable_if_failing(delivery.webhook_id, result.error):
            return Outcome("failed")
    return Outcome("retry", retry_in) if retry_in is not None else Outcome("failed")


def _disable_if_failing(webhook_id: int, last_error: str) -> bool:
    """After WEBHOOK_DISABLE_AFTER_FAILURES consecutive failed attempts: inactive, its pending
    deliveries given up, an audit event by the system. Inside the caller's transaction."""
    webhook = Webhook.objects.select_for_update().get(pk=webhook_id)
    limit = settings.WEBHOOK_DISABLE_AFTER_FAILURES
    if not webhook.active or webhook.consecutive_failures < limit:
        return False
    now = timezone.now()
    webhook.active, webhook.disabled_at = False, now
    reason = f"{webhook.consecutive_failures} consecutive failed delivery attempts. Last: {last_error}"
    webhook.disabled_reason = reason[:255]
    webhook.version += 1
    webhook.save(update_fields=["active", "disabled_at", "disabled_reason", "version", "updated_at"])
    Delivery.objects.filter(webhook_id=webhook_id, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None, updated_at=now)
    audit.record(actor=Actor.system(webhook.organization, origin="webhooks"), action="disable", target=webhook,
                 changes={"active": {"old": True, "new": False}},
                 detail={"consecutive_failures": webhook.consecutive_failures, "reason": webhook.disabled_reason})
    logger.warning("webhook %s disabled after %s consecutive failed attempts", webhook.pk,
                   webhook.consecutive_failures)
    return True


def undispatched_organizations() -> list[int]:
    """Mark the events of organizations without an active webhook dispatched (nothing to fan out:
    one statement) and return the organizations whose events still wait."""
    subscribed = Webhook.objects.filter(active=True).values("organization_id")
    Event.objects.filter(dispatched_at__isnull=True).exclude(organization_id__in=subscribed).update(
        dispatched_at=timezone.now())
    return list(Event.objects.filter(dispatched_at__isnull=True).order_by().values_list("organization_id", flat=True)
                .distinct())


def due_deliveries(limit: int = 1000) -> list[int]:
    """Due deliveries and stale claims (their task was lost, or its worker died)."""
    now = timezone.now()
    return list(Delivery.objects.filter(
        Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        | Q(status=DeliveryStatus.DELIVERING, claimed_until__lt=now)
    ).order_by("next_attempt_at").values_list("id", flat=True)[:limit])
