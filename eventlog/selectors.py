"""Reading the outbox: an actor sees the events of its organization that its scopes may read."""

from __future__ import annotations

from django.db.models import QuerySet

from core.errors import InvalidRequest, NotFound
from eventlog.catalogue import EVENT_TYPES
from eventlog.models import Event
from organizations.actors import Actor

#: The scope that reads each family of events (the part of the type before the dot).
READ_SCOPES = {"data_source": "datasource.read", "workflow": "workflow.read"}


def readable_types(actor: Actor) -> list[str]:
    return [key for key in EVENT_TYPES if actor.has_scope(READ_SCOPES[key.split(".", 1)[0]])]


def events_for_actor(actor: Actor, type_: str | None = None) -> QuerySet[Event]:
    """Newest first. ``type_``: one known type (400 otherwise); a type the scopes do not read is empty."""
    types = readable_types(actor)
    if type_ is not None:
        if type_ not in EVENT_TYPES:
            raise InvalidRequest("Unknown event type.",
                                 errors={"type": [f"Choose one of: {', '.join(EVENT_TYPES)}."]})
        types = [t for t in types if t == type_]
    return Event.objects.filter(organization=actor.organization, type__in=types).order_by("-id")


def event_for_actor(actor: Actor, public_id: str) -> Event:
    event = events_for_actor(actor).filter(public_id=public_id).first()
    if event is None:
        raise NotFound("No such event in your organization.")
    return event
