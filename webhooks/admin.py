"""Webhooks in the admin, through the same services as the API (egress-checked, audited). The
signing secret is never a form field: a new webhook's generated secret is shown once, on the page
that answers the add form (as an API token's: never in a message, so never in the session; reloading
that page creates nothing and leads to the webhook). Deliveries and their attempts are read-only,
with a "redeliver" action."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse

from core.admin_forms import ServiceForm
from core.errors import ApiError
from eventlog.catalogue import EVENT_TYPES
from organizations.actors import Actor
from organizations.admin import shown_once
from organizations.admin.scoping import ORGANIZATION_FILTER, OrganizationScopedAdmin, ReadOnlyTabularInline
from organizations.models import ADMIN_ROLES
from webhooks import tasks
from webhooks.models import Delivery, DeliveryAttempt, Webhook
from webhooks.services import destination
from webhooks.services import webhooks as service

ADD_SUBMISSIONS_SESSION_KEY = "webhook_add_submissions"
SHOWN_ONCE_PAGE = """{% extends "admin/base_site.html" %}
{% block breadcrumbs %}<div class="breadcrumbs"><a href="{% url 'admin:index' %}">Home</a>
&rsaquo; <a href="{% url 'admin:webhooks_webhook_changelist' %}">Webhooks</a>
&rsaquo; {{ webhook }}</div>{% endblock %}
{% block content %}<div id="content-main">
<p>The webhook <strong>{{ webhook.pk }}</strong> of <strong>{{ webhook.organization }}</strong> to
<code>{{ url }}</code> was created.</p>
<p><strong>Copy its signing secret now: it is shown only once and cannot be recovered.</strong></p>
<p><code id="webhook-secret" style="font-size:1.2em;user-select:all">{{ secret }}</code></p>
<p><a class="button" href="{% url 'admin:webhooks_webhook_change' webhook.pk %}">Open the webhook</a>
<a class="button" href="{% url 'admin:webhooks_webhook_changelist' %}">Back to webhooks</a></p>
</div>{% endblock %}
"""


class WebhookForm(ServiceForm):
    """Saves through the webhook services (``ServiceForm``): a refusal (the URL's egress check, a stale
    page) lands on the form. A new webhook's secret is kept on the form for the response only."""

    events = forms.MultipleChoiceField(choices=[(k, k) for k in EVENT_TYPES], widget=forms.CheckboxSelectMultiple)
    submission = shown_once.submission_field()
    service_fields = tuple(service.FIELDS)
    stale_what = "webhook"

    class Meta:
        model = Webhook
        fields = ["organization", "url", "description", "events", "active"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.secret: str | None = None

    def actor(self, organization: Any) -> Actor:
        return Actor.for_member(organization, self.request.user)

    def create(self, actor: Actor, body: dict[str, Any]) -> Webhook:
        saved, self.secret = service.create_webhook(actor=actor, data=body)
        return saved

    def update(self, actor: Actor, body: dict[str, Any], if_match: str | None) -> Webhook:
        return service.update_webhook(actor=actor, webhook_id=self.instance.pk, data=body, if_match=if_match)


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

    def get_form(self, request, obj=None, change=False, **kwargs):
        base = super().get_form(request, obj, change=change, **kwargs)
        return type("WebhookAdminForm", (base,), {"request": request})

    def get_fields(self, request, obj=None):
        fields = [name for name in super().get_fields(request, obj) if name != "submission"]
        return fields if obj is not None else [*fields, "submission"]

    def save_model(self, request, obj, form, change):
        """The form saved through the service already (in ``clean``)."""
        if form.secret is not None:
            obj._raw_secret = form.secret  # only in memory, for response_add
            shown_once.remember(request, ADD_SUBMISSIONS_SESSION_KEY, form.cleaned_data.get("submission"), obj.pk)

    def add_view(self, request, form_url="", extra_context=None):
        if request.method == "POST":
            pk = shown_once.already_created(request, ADD_SUBMISSIONS_SESSION_KEY)
            if pk is not None and Webhook.objects.filter(pk=pk).exists():
                self.message_user(request, "This form already created this webhook; nothing new was created. Its "
                                  "signing secret was shown once, when it was created, and cannot be shown again "
                                  "(rotate it through the API for a new one).", messages.WARNING)
                return HttpResponseRedirect(reverse("admin:webhooks_webhook_change", args=[pk]))
        return super().add_view(request, form_url, extra_context)

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(obj, "_raw_secret", None)
        if secret is None or admin.options.IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Webhook created",
                   "webhook": obj, "url": destination.redact(obj.url), "secret": secret}
        return shown_once.response(request, SHOWN_ONCE_PAGE, context)

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
