"""The event log: what happened in the organization, newest first (the bodies webhooks deliver)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from core.openapi import error_response, object_schema
from core.params import single_param
from eventlog.catalogue import EVENT_TYPES
from eventlog.selectors import event_for_actor, events_for_actor
from eventlog.services import envelope
from organizations.authentication import require_actor

EVENT = object_schema(
    id={"type": "string", "description": "The event id (`msg_...`), also the `webhook-id` of its deliveries."},
    type={"type": "string", "enum": list(EVENT_TYPES)},
    timestamp={"type": "string", "format": "date-time"},
    data={"type": "object", "additionalProperties": True,
          "description": "Ids, names, changed field names and codes; never a secret value."},
)
TAGS = ["events"]
_TYPES = "; ".join(f"`{t.key}`: {t.description}" for t in EVENT_TYPES.values())


@extend_schema_view(
    list=extend_schema(
        tags=TAGS, summary="List events",
        description="The organization's events, newest first: the same bodies webhooks deliver. Data-source "
                    "events need `datasource.read`, workflow events `workflow.read`; others are left out. "
                    f"Types: {_TYPES}. Events are kept for EVENTS_RETENTION_DAYS (default 30).",
        parameters=[OpenApiParameter("type", str, enum=list(EVENT_TYPES), description="Only this type.")],
        responses={200: EVENT, 400: error_response(400)},  # paginated by the view: spectacular wraps it
    ),
    retrieve=extend_schema(tags=TAGS, summary="Get an event", responses={200: EVENT, 404: error_response(404)}),
)
class EventViewSet(viewsets.GenericViewSet):
    scope_resource = None  # per event type: see events.selectors.READ_SCOPES
    lookup_value_regex = "msg_[0-9a-z]{26}"
    filter_backends: list = []

    def list(self, request: Request) -> Response:
        events = events_for_actor(require_actor(request), single_param(request, "type"))
        page = self.paginate_queryset(events) or []
        return self.get_paginated_response([envelope(e) for e in page])

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(envelope(event_for_actor(require_actor(request), pk)))
