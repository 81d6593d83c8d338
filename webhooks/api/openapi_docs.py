"""OpenAPI descriptions of the webhook endpoints (kept out of the views)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view

from core.errors import ErrorCode
from core.openapi import NO_BODY, error_response, etag_header, if_match_parameter
from webhooks.api import serializers as s

TAG = ["webhooks"]
_400 = error_response(400, ErrorCode.INVALID_REQUEST_BODY, ErrorCode.DESTINATION_NOT_ALLOWED,
                      description="Invalid body (`errors` names each field: `url`, `events`, `secret`), or a URL "
                                  "whose host the egress policy refuses (`DESTINATION_NOT_ALLOWED`, nothing sent).")
_412 = error_response(412)
_409_REDELIVER = error_response(409, ErrorCode.CONFLICT,
                                description="The delivery is still pending, or the webhook is not active.")
_CREATE_EXAMPLE = OpenApiExample("Create", request_only=True, value={
    "url": "https://hooks.example.com/dsp", "description": "Pager bridge",
    "events": ["data_source.updated", "data_source.health_changed"]})
_PATCH_EXAMPLE = OpenApiExample("Re-enable", request_only=True, value={"active": True})
_WRITE_HELP = ("A webhook URL is a destination under the egress policy: resolved and checked now and before "
               "every delivery (DATASOURCE_ALLOWED_NETWORKS; link-local and metadata addresses never).")
_DELIVERY_ID = OpenApiParameter("delivery_id", int, OpenApiParameter.PATH, description="A delivery of this webhook.")

webhook_viewset = extend_schema_view(
    list=extend_schema(tags=TAG, summary="List webhooks", responses={200: s.WebhookSerializer(many=True)}),
    create=extend_schema(
        tags=TAG, summary="Create a webhook", description=_WRITE_HELP + " The response holds the signing secret: "
        "the only time it is shown.", request=s.WebhookWriteSerializer, examples=[_CREATE_EXAMPLE],
        responses={201: s.WebhookWithSecretSerializer, 400: _400}, parameters=[etag_header(201)]),
    retrieve=extend_schema(tags=TAG, summary="Get a webhook (never its secret)",
                           responses={200: s.WebhookSerializer}, parameters=[etag_header(200)]),
    update=extend_schema(tags=TAG, summary="Replace a webhook", description=_WRITE_HELP,
                         request=s.WebhookPutSerializer, examples=[_CREATE_EXAMPLE],
                         responses={200: s.WebhookSerializer, 400: _400, 412: _412},
                         parameters=[if_match_parameter(), etag_header(200)]),
    partial_update=extend_schema(
        tags=TAG, summary="Change a webhook", description=_WRITE_HELP + " `active: true` re-enables a disabled "
        "webhook and resets its failure count.", request=s.WebhookPatchSerializer, examples=[_PATCH_EXAMPLE],
        responses={200: s.WebhookSerializer, 400: _400, 412: _412},
        parameters=[if_match_parameter(), etag_header(200)]),
    destroy=extend_schema(tags=TAG, summary="Delete a webhook and its delivery log",
                          responses={204: None, 412: _412}, parameters=[if_match_parameter()]),
    rotate_secret=extend_schema(
        tags=TAG, summary="Rotate the signing secret", description="The new secret (given, or generated) signs every "
        "attempt from now on; the response is the only time it is shown.", request=s.RotateSecretSerializer,
        responses={200: s.WebhookWithSecretSerializer, 400: error_response(400)}, parameters=[etag_header(200)]),
    deliveries=extend_schema(tags=TAG, summary="List a webhook's deliveries (newest first) with their attempts",
                             responses={200: s.DeliverySerializer(many=True)}),
    redeliver=extend_schema(
        tags=TAG, summary="Redeliver an event", description="One more attempt now, with the same `webhook-id`; for "
        "a succeeded or failed delivery.", request=None, parameters=[_DELIVERY_ID],
        responses={202: s.DeliverySerializer, 400: error_response(400, description=NO_BODY), 409: _409_REDELIVER}),
)

event_types_viewset = extend_schema_view(
    list=extend_schema(tags=TAG, summary="List the event types", responses={200: s.EventTypeSerializer(many=True)}),
)
