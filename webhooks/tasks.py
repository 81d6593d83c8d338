"""Celery tasks: ``webhooks.dispatch`` (fan out an organization's events), ``webhooks.deliver``
(one attempt of one delivery, the next one scheduled with backoff) and ``webhooks.sweep`` (beat:
events a dead process left undispatched, deliveries whose task was lost or whose claim is stale)."""

from __future__ import annotations

import logging

from celery import shared_task

from webhooks.services import delivery as service

logger = logging.getLogger(__name__)


def enqueue_deliveries(ids: list[int]) -> None:
    for delivery_id in ids:
        deliver_task.delay(delivery_id)


def on_events(organization_id: int) -> None:
    """The events listener (after commit): queue a dispatch only when the organization has an
    active webhook (one indexed query); a broker error is caught by ``eventlog.listeners.notify``."""
    if service.has_active_webhook(organization_id):
        dispatch_task.delay(organization_id)


@shared_task(name="webhooks.dispatch", acks_late=True)
def dispatch_task(organization_id: int) -> int:
    ids = service.dispatch(organization_id)
    enqueue_deliveries(ids)
    return len(ids)


@shared_task(name="webhooks.deliver", acks_late=True)
def deliver_task(delivery_id: int) -> str:
    outcome = service.deliver(delivery_id)
    if outcome.retry_in is not None:
        deliver_task.apply_async((delivery_id,), countdown=outcome.retry_in)
    return outcome.result


@shared_task(name="webhooks.sweep")
def sweep_task() -> dict[str, int]:
    dispatched = 0
    for organization_id in service.undispatched_organizations():
        ids = service.dispatch(organization_id)
        enqueue_deliveries(ids)
        dispatched += len(ids)
    due = service.due_deliveries()
    enqueue_deliveries(due)
    if dispatched or due:
        logger.info("webhook sweep: %s new deliveries, %s due ones queued", dispatched, len(due))
    return {"dispatched": dispatched, "due": len(due)}
