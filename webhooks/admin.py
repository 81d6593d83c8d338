"""Webhooks in the admin, through the same services as the API (egress-checked, audited). The
signing secret is never a form field nor shown on a page: a new webhook's generated secret is
shown once, in the message after saving. Deliveries and their attempts are read-only, with a
"redeliver" action."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages

from core.errors import ApiError
from eventlog.catalogue import EVENT_TYPES
from organizations.actors import Actor
from organizations.admin.scoping import ORGANIZATION_FILTER, OrganizationScopedAdmin, ReadOnlyTabularInline
from organizations.models import ADMIN_ROLES
from webhooks import tasks
from webhooks.models import Delivery, DeliveryAttempt, Webhook
from webhooks.services import destination
from webhooks.services import webhooks as service


class WebhookForm(forms.ModelForm):
    events = forms.MultipleChoiceField(choices=[(k, k) for k in EVENT_TYPES], widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = Webhook
        fields = ["organization", "url", "description", "events", "active"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if self.instance.pk is None or url != self.instance.url:
            try:
                destination.check(url, settings.WEBHOOK_TIMEOUT_SECONDS)
            except (destination.InvalidUrl, destination.DestinationRefused) as exc:
                raise forms.ValidationError(str(exc)) from None
        return url


@admin.register(Webhook)
class WebhookAdmin(OrganizationScopedAdmin):
    form = WebhookForm
    list_display = ["id", "url_shown", "organization", "active", "consecutive_failures", "disabled_at"]
    list_filter = [ORGANIZATION_FILTER, "active"]
    list_select_related = ["organization"]
    view_roles = frozenset(ADMIN_ROLES)
    write_roles = frozenset(ADMIN_ROLES)
    readonly_fields = ["consecutive_failures", "disabled_at", "disabled_reason", "version"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "organization"] if obj is not None else self.readonly_fields

    @admin.display(description="URL")
    def url_shown(self, obj: Webhook) -> str:
        return destination.redact(obj.url)

    def _actor(self, request: Any, organization: Any) -> Actor:
        return Actor.for_member(organization, request.user)

    def save_model(self, request, obj, form, change):
        data = {k: form.cleaned_data[k] for k in ("url", "description", "events", "active")}
        try:
            if change:
                service.update_webhook(actor=self._actor(request, obj.organization), webhook_id=obj.pk, data=data)
                return
            webhook, secret = service.create_webhook(actor=self._actor(request, form.cleaned_data["organization"]),
                                                     data=data)
        except ApiError as exc:  # the form checked the URL; the address may have changed since
            messages.error(request, exc.message)
            return
        obj.pk = webhook.pk
        messages.warning(request, f"Signing secret of webhook {webhook.pk} (copy it now: it is shown only once): "
                                  f"{secret}")

    def delete_model(self, request, obj):
        service.delete_webhook(actor=self._actor(request, obj.organization), webhook_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for obj in queryset.select_related("organization"):
            self.delete_model(request, obj)


class AttemptInline(ReadOnlyTabularInline):
    model = DeliveryAttempt
    fields = ("number", "started_at", "duration_ms", "status_code", "outcome", "error")


@admin.register(Delivery)
class DeliveryAdmin(OrganizationScopedAdmin):
    organization_field = "webhook__organization"
    list_display = ["id", "webhook", "event", "status", "attempts", "next_attempt_at", "last_attempt_at"]
    list_filter = ["status"]
    list_select_related = ["webhook", "event"]
    fields = ("webhook", "event", "status", "attempts", "attempts_allowed", "next_attempt_at", "created_at",
              "last_attempt_at", "succeeded_at")
    readonly_fields = fields
    inlines = [AttemptInline]
    actions = ["redeliver_selected"]
    view_roles = frozenset(ADMIN_ROLES)
    write_roles = frozenset(ADMIN_ROLES)

    def has_add_permission(self, request, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self._may_write(request, None):
            actions.pop("redeliver_selected", None)
        return actions

    @admin.action(description="Redeliver (one more attempt now, same webhook-id)")
    def redeliver_selected(self, request, queryset):
        self.check_action_allowed(request, queryset)
        done = 0
        for delivery in queryset.select_related("webhook__organization"):
            actor = Actor.for_member(delivery.webhook.organization, request.user)
            try:
                service.redeliver(actor=actor, webhook_id=delivery.webhook_id, delivery_id=delivery.pk)
            except ApiError as exc:
                messages.error(request, f"Delivery {delivery.pk}: {exc.message}")
                continue
            tasks.deliver_task.delay(delivery.pk)
            done += 1
        if done:
            messages.success(request, f"{done} deliveries queued for another attempt.")
