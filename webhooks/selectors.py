"""The caller's organization's webhooks and deliveries: another organization's id is a 404."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from core.errors import NotFound
from organizations.actors import Actor
from webhooks.models import Delivery, DeliveryAttempt, Webhook


def _pk(value: object) -> int:
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise NotFound("No such webhook in your organization.")
    return int(text)


def webhooks_for_actor(actor: Actor) -> QuerySet[Webhook]:
    return Webhook.objects.filter(organization=actor.organization).order_by("id")


def webhook_for_actor(actor: Actor, pk: object, *, lock: bool = False) -> Webhook:
    queryset = webhooks_for_actor(actor)
    if lock:
        queryset = queryset.select_for_update()
    webhook = queryset.filter(pk=_pk(pk)).first()
    if webhook is None:
        raise NotFound("No such webhook in your organization.")
    return webhook


def deliveries_of(webhook: Webhook) -> QuerySet[Delivery]:
    """Newest first, with the event and every attempt (three statements per page)."""
    return (Delivery.objects.filter(webhook=webhook).select_related("event").order_by("-id")
            .prefetch_related(Prefetch("attempt_log", queryset=DeliveryAttempt.objects.order_by("number"))))


def delivery_of(webhook: Webhook, pk: object) -> Delivery:
    text = str(pk)
    delivery = None
    if text.isascii() and text.isdigit() and len(text) <= 18:
        delivery = Delivery.objects.filter(webhook=webhook, pk=int(text)).first()
    if delivery is None:
        raise NotFound("No such delivery of this webhook.")
    return delivery
