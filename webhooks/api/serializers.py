"""Webhook request and response shapes. The secret is write-only: it appears in the responses of
create and rotate-secret alone (``WebhookWithSecretSerializer``)."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import StrictBooleanField, StrictCharField, StrictSerializer
from eventlog.catalogue import EVENT_TYPES
from webhooks.models import Delivery, DeliveryAttempt, Webhook
from webhooks.services.signing import PREFIX

EVENT_CHOICES = list(EVENT_TYPES)
SECRET_HELP = (f"Standard Webhooks signing secret: '{PREFIX}' + base64 of 24 to 64 random bytes. Generated when "
               "omitted; shown once, in this response only.")
#: ``whsec_`` + standard base64 of 24 to 64 bytes (padded): what ``signing.secret_key`` accepts, said in
#: the OpenAPI document as a pattern (the service checks it again).
_B64 = "[A-Za-z0-9+/]"
SECRET_PATTERN = (rf"^{PREFIX}(?:(?:{_B64}{{4}}){{8,20}}(?:{_B64}{{2}}==|{_B64}{{3}}=)?"
                  rf"|(?:{_B64}{{4}}){{21}}(?:{_B64}{{2}}==)?)$")
SECRET_FORMAT = RegexValidator(SECRET_PATTERN, f"The secret must be '{PREFIX}' + base64 of 24 to 64 bytes.")


@extend_schema_field({"type": "string", "pattern": SECRET_PATTERN, "maxLength": 200})
class SecretField(StrictCharField):
    """The signing secret as a request sends it: its format in the OpenAPI document (not the generic
    non-blank pattern of other strings), checked here and again by the service."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_length=200, validators=[SECRET_FORMAT], **kwargs)  # type: ignore[arg-type]
READ_ONLY = frozenset({"id", "consecutive_failures", "disabled_at", "disabled_reason", "created_at", "updated_at",
                       "version"})


class WebhookWriteSerializer(StrictSerializer):
    read_only_names = READ_ONLY
    url = StrictCharField(max_length=2048, help_text="http:// or https:// URL the events are POSTed to (no user "
                                                     "info); checked against the egress policy.")
    description = StrictCharField(max_length=255, required=False, allow_blank=True)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_CHOICES), min_length=1,
                                   max_length=len(EVENT_CHOICES) * 4, help_text="Event types to receive.")
    active = StrictBooleanField(required=False)
    secret = SecretField(required=False, write_only=True, help_text=SECRET_HELP)


class WebhookPutSerializer(WebhookWriteSerializer):
    read_only_names = READ_ONLY | {"secret"}
    secret = None  # type: ignore[assignment]  # rotated through rotate-secret only


class WebhookPatchSerializer(WebhookPutSerializer):
    """Validated with ``partial=True``: only what is sent changes."""


class RotateSecretSerializer(StrictSerializer):
    secret = SecretField(required=False, help_text=SECRET_HELP)


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_CHOICES))

    class Meta:
        model = Webhook
        fields = ["id", "url", "description", "events", "active", "consecutive_failures", "disabled_at",
                  "disabled_reason", "created_at", "updated_at", "version"]
        read_only_fields = fields


class WebhookWithSecretSerializer(WebhookSerializer):
    secret = serializers.SerializerMethodField(help_text="The signing secret, shown in this response only.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, obj: Webhook) -> str:
        return self.context["secret"]


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "started_at", "duration_ms", "status_code", "outcome", "error"]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(source="event.public_id", read_only=True,
                                     help_text="The event's id: the `webhook-id` header of every attempt.")
    event_type = serializers.CharField(source="event.type", read_only=True)
    attempts = DeliveryAttemptSerializer(source="attempt_log", many=True, read_only=True)
    attempt_count = serializers.IntegerField(source="attempts", read_only=True)

    class Meta:
        model = Delivery
        fields = ["id", "event_id", "event_type", "status", "attempt_count", "next_attempt_at", "created_at",
                  "last_attempt_at", "succeeded_at", "attempts"]
        read_only_fields = fields


class EventTypeSerializer(serializers.Serializer):
    key = serializers.CharField()
    description = serializers.CharField()
