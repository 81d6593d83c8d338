"""Creating, changing, deleting webhooks and rotating their secrets: validated, egress-checked,
audited (the secret as "changed" only, the URL without its query)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import ApiError, Conflict, ErrorCode, InvalidRequest, PreconditionFailed
from datasources.services.datasources import etag_matches
from eventlog.catalogue import EVENT_TYPES
from organizations import audit
from organizations.actors import Actor
from webhooks.models import Delivery, DeliveryStatus, Webhook
from webhooks.selectors import delivery_of, webhook_for_actor
from webhooks.services import destination, signing

FIELDS = ("url", "description", "events", "active")


class DestinationNotAllowed(ApiError):
    code = ErrorCode.DESTINATION_NOT_ALLOWED
    status_code = 400


def _check_url(url: str) -> None:
    """400 for a malformed URL, 400 DESTINATION_NOT_ALLOWED for a refused host (nothing sent)."""
    try:
        destination.check(url, settings.WEBHOOK_TIMEOUT_SECONDS)
    except destination.InvalidUrl as exc:
        raise InvalidRequest("The URL is invalid.", errors={"url": [str(exc)]}) from None
    except destination.DestinationRefused as exc:
        raise DestinationNotAllowed(str(exc), errors={"url": [str(exc)]}) from None


def _check_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown or not events:
        message = f"Unknown event types: {', '.join(unknown)}." if unknown else "Give at least one event type."
        raise InvalidRequest("The events are invalid.", errors={"events": [message]})
    return sorted(set(events), key=list(EVENT_TYPES).index)


def _secret(value: str | None) -> str:
    if value is None:
        return signing.generate_secret()
    try:
        signing.secret_key(value)
    except signing.SecretFormatError as exc:
        raise InvalidRequest("The secret is invalid.", errors={"secret": [str(exc)]}) from None
    return value


def _shown(field: str, value: Any) -> Any:
    return destination.redact(value) if field == "url" else value


def _stamp(webhook: Webhook, actor: Actor, *, created: bool = False) -> None:
    user = actor.user if getattr(actor.user, "pk", None) else None
    webhook.updated_by, webhook.updated_by_token = user, actor.token  # type: ignore[assignment]
    if created:
        webhook.created_by, webhook.created_by_token = user, actor.token  # type: ignore[assignment]


def create_webhook(*, actor: Actor, data: dict[str, Any]) -> tuple[Webhook, str]:
    """Returns the webhook and its secret (to show once)."""
    _check_url(data["url"])
    events = _check_events(list(data["events"]))
    secret = _secret(data.get("secret"))
    active = data.get("active", True)
    with transaction.atomic():
        webhook = Webhook(organization=actor.organization, url=data["url"].strip(),
                          description=data.get("description", ""), events=events, active=active,
                          active_since=timezone.now() if active else None)
        _stamp(webhook, actor, created=True)
        webhook.save()
        signing.store_secret(webhook, secret)
        webhook.save(update_fields=["secret_key_id", "secret_ciphertext"])
        changes = {f: {"old": None, "new": _shown(f, getattr(webhook, f))} for f in FIELDS}
        audit.record(actor=actor, action="create", target=webhook, changes={**changes, "secret": "changed"})
    return webhook, secret


def update_webhook(*, actor: Actor, webhook_id: object, data: dict[str, Any], if_match: str | None = None,
                   partial: bool = True) -> Webhook:
    if "url" in data:
        _check_url(data["url"])  # outside the lock: a lookup may take the timeout
    if "events" in data:
        data = {**data, "events": _check_events(list(data["events"]))}
    if not partial:
        data = {"description": "", "active": True, **data}
    with transaction.atomic():
        webhook = webhook_for_actor(actor, webhook_id, lock=True)
        if not etag_matches(webhook, if_match):
            raise PreconditionFailed()
        changes: dict[str, Any] = {}
        for field in FIELDS:
            if field in data:
                value = data[field].strip() if field == "url" else data[field]
                if value != getattr(webhook, field):
                    changes[field] = {"old": _shown(field, getattr(webhook, field)), "new": _shown(field, value)}
                    setattr(webhook, field, value)
        if changes.get("active", {}).get("new") is True:  # re-enabled: a fresh start
            webhook.consecutive_failures, webhook.disabled_at, webhook.disabled_reason = 0, None, ""
            webhook.active_since = timezone.now()
        if changes:
            webhook.version += 1
            _stamp(webhook, actor)
            webhook.save()
            audit.record(actor=actor, action="update", target=webhook, changes=changes)
    return webhook


def delete_webhook(*, actor: Actor, webhook_id: object, if_match: str | None = None) -> None:
    with transaction.atomic():
        webhook = webhook_for_actor(actor, webhook_id, lock=True)
        if not etag_matches(webhook, if_match):
            raise PreconditionFailed()
        audit.record(actor=actor, action="delete", target=webhook,
                     changes={"url": {"old": destination.redact(webhook.url), "new": None}})
        webhook.delete()


def rotate_secret(*, actor: Actor, webhook_id: object, secret: str | None = None) -> tuple[Webhook, str]:
    """A new secret (given, or generated) replaces the old one at once; returns it to show once."""
    new_secret = _secret(secret)
    with transaction.atomic():
        webhook = webhook_for_actor(actor, webhook_id, lock=True)
        signing.store_secret(webhook, new_secret)
        webhook.version += 1
        _stamp(webhook, actor)
        webhook.save()
        audit.record(actor=actor, action="rotate_secret", target=webhook, changes={"secret": "changed"})
    return webhook, new_secret


def redeliver(*, actor: Actor, webhook_id: object, delivery_id: object) -> Delivery:
    """A finished (succeeded or failed) delivery gets one more attempt now, with the same
    ``webhook-id``; the caller enqueues it. 409 while it is still pending or the webhook inactive."""
    with transaction.atomic():
        webhook = webhook_for_actor(actor, webhook_id, lock=True)
        delivery = delivery_of(webhook, delivery_id)
        if not webhook.active:
            raise Conflict("The webhook is not active: re-enable it (PATCH active=true) first.")
        now = timezone.now()
        updated = Delivery.objects.filter(
            pk=delivery.pk, status__in=[DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED]
        ).update(status=DeliveryStatus.PENDING, next_attempt_at=now, claimed_until=None,
                 attempts_allowed=delivery.attempts + 1, updated_at=now)
        if not updated:
            raise Conflict("The delivery is still being attempted; redeliver it once it has succeeded or failed.")
        audit.record(actor=actor, action="redeliver", target=webhook,
                     detail={"delivery": delivery.pk, "event": delivery.event.public_id})
    delivery.refresh_from_db()
    return delivery
