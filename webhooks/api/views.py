"""Thin viewsets: parse the request, call the service, render the result."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from core.params import require_no_body
from eventlog.catalogue import EVENT_TYPES
from organizations.authentication import require_actor
from webhooks import tasks
from webhooks.api import openapi_docs as docs
from webhooks.api import serializers as s
from webhooks.api.permissions import OrganizationAdminPermission
from webhooks.models import Webhook
from webhooks.selectors import deliveries_of, webhook_for_actor, webhooks_for_actor
from webhooks.services import webhooks as service


@docs.webhook_viewset
class WebhookViewSet(viewsets.GenericViewSet):
    permission_classes = [OrganizationAdminPermission]
    queryset = Webhook.objects.none()  # for schema generation; get_queryset scopes to the caller
    serializer_class = s.WebhookSerializer
    filter_backends: list = []

    def get_queryset(self) -> QuerySet[Webhook]:
        return webhooks_for_actor(require_actor(self.request))

    def _render(self, webhook: Webhook, status_code: int = 200, secret: str | None = None,
                **headers: str) -> Response:
        data = (s.WebhookWithSecretSerializer(webhook, context={"secret": secret}).data if secret is not None
                else s.WebhookSerializer(webhook).data)
        response = Response(data, status=status_code, headers=headers or None)
        response["ETag"] = webhook.etag
        return response

    def _validated(self, serializer_class: type, request: Request, pk: str | None = None,
                   partial: bool = False) -> dict[str, Any]:
        serializer = serializer_class(data=request.data, partial=partial)
        try:
            serializer.is_valid(raise_exception=True)
        except APIException:
            if pk is not None:
                webhook_for_actor(require_actor(request), pk)  # an unknown id is a 404 before the body's 400
            raise
        return dict(serializer.validated_data)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.WebhookSerializer(page, many=True).data)

    def create(self, request: Request) -> Response:
        data = self._validated(s.WebhookWriteSerializer, request)
        webhook, secret = service.create_webhook(actor=require_actor(request), data=data)
        return self._render(webhook, 201, secret=secret, Location=f"/api/v1/webhooks/{webhook.pk}/")

    def retrieve(self, request: Request, pk: str) -> Response:
        return self._render(webhook_for_actor(require_actor(request), pk))

    def _update(self, request: Request, pk: str, partial: bool) -> Response:
        serializer_class = s.WebhookPatchSerializer if partial else s.WebhookPutSerializer
        data = self._validated(serializer_class, request, pk, partial=partial)
        webhook = service.update_webhook(actor=require_actor(request), webhook_id=pk, data=data,
                                         if_match=request.headers.get("If-Match"), partial=partial)
        return self._render(webhook)

    def update(self, request: Request, pk: str) -> Response:
        return self._update(request, pk, partial=False)

    def partial_update(self, request: Request, pk: str) -> Response:
        return self._update(request, pk, partial=True)

    def destroy(self, request: Request, pk: str) -> Response:
        service.delete_webhook(actor=require_actor(request), webhook_id=pk, if_match=request.headers.get("If-Match"))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str) -> Response:
        # No body (or {}) draws a new secret; anything else is validated: `[]`, `null` or `""` is a 400,
        # not a rotation that invalidates the receiver's secret at once.
        body = request.data
        data = {} if isinstance(body, dict) and not body else self._validated(s.RotateSecretSerializer, request, pk)
        webhook, secret = service.rotate_secret(actor=require_actor(request), webhook_id=pk,
                                                secret=data.get("secret"))
        return self._render(webhook, secret=secret)

    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str) -> Response:
        webhook = webhook_for_actor(require_actor(request), pk)
        page = self.paginate_queryset(deliveries_of(webhook))
        return self.get_paginated_response(s.DeliverySerializer(page, many=True).data)

    @action(detail=True, methods=["post"], url_path=r"deliveries/(?P<delivery_id>[^/.]+)/redeliver")
    def redeliver(self, request: Request, pk: str, delivery_id: str) -> Response:
        require_no_body(request)
        delivery = service.redeliver(actor=require_actor(request), webhook_id=pk, delivery_id=delivery_id)
        tasks.deliver_task.delay(delivery.pk)
        delivery = deliveries_of(delivery.webhook).get(pk=delivery.pk)
        return Response(s.DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


@docs.event_types_viewset
class EventTypeViewSet(viewsets.ViewSet):
    """The event types a webhook can subscribe to (any authenticated caller may read them)."""

    def list(self, request: Request) -> Response:
        require_actor(request)
        return Response([{"key": t.key, "description": t.description} for t in EVENT_TYPES.values()])
