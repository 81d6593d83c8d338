"""Admin for tenancy and access: organizations, members, workspaces, API tokens, audit events.

API tokens are created through ``organizations.services.create_token``; the raw token is shown
once, on a page rendered directly in the add response (never stored in a message cookie or the
session), and only its hash is kept. Audit events are read-only.
"""

from __future__ import annotations

import json
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html

from organizations.models import ALL_SCOPES, ApiToken, AuditEvent, Membership, Organization, Workspace
from organizations.services import create_token

SCOPE_CHOICES = [(s, s) for s in ALL_SCOPES]

SHOWN_ONCE_PAGE = """{% extends "admin/base_site.html" %}
{% block breadcrumbs %}<div class="breadcrumbs"><a href="{% url 'admin:index' %}">Home</a>
&rsaquo; <a href="{% url 'admin:organizations_apitoken_changelist' %}">API tokens</a>
&rsaquo; {{ token.name }}</div>{% endblock %}
{% block content %}<div id="content-main">
<p>The token <strong>{{ token.name }}</strong> of <strong>{{ token.organization }}</strong> was created
with scopes {{ scopes }}.</p>
<p><strong>Copy it now: it is shown only once and cannot be recovered.</strong></p>
<p><code id="raw-token" style="font-size:1.2em;user-select:all">{{ raw_token }}</code></p>
<p>Use it as <code>Authorization: Bearer &lt;token&gt;</code>.</p>
<p><a class="button" href="{% url 'admin:organizations_apitoken_change' token.pk %}">Open the token</a>
<a class="button" href="{% url 'admin:organizations_apitoken_changelist' %}">Back to tokens</a></p>
</div>{% endblock %}
"""


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


class WorkspaceInline(admin.TabularInline):
    model = Workspace
    extra = 0
    fields = ["name", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at"]
    inlines = [MembershipInline, WorkspaceInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "user__email", "organization__slug", "organization__name"]
    raw_id_fields = ["user"]
    list_select_related = ["user", "organization"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name", "organization__slug"]
    list_select_related = ["organization"]


# --- API tokens -----------------------------------------------------------------------------------


class ApiTokenAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=SCOPE_CHOICES, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiToken
        fields = ["name", "organization", "user", "scopes", "expires_at"]

    def clean(self):
        cleaned = cast("dict[str, Any]", super().clean())  # ModelForm.clean returns cleaned_data
        org, user = cleaned.get("organization"), cleaned.get("user")
        if org and user and not org.memberships.filter(user=user).exists():
            self.add_error("user", f"'{user.get_username()}' is not a member of '{org.slug}'.")
        expires_at = cleaned.get("expires_at")
        if expires_at and expires_at <= timezone.now():
            self.add_error("expires_at", "The expiry must be in the future.")
        return cleaned


class ApiTokenChangeForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=SCOPE_CHOICES, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiToken
        fields = ["name", "scopes", "expires_at", "revoked_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "prefix", "scope_list", "user", "expires_at", "revoked_at",
                    "last_used_at", "active"]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "organization__slug", "user__username"]
    list_select_related = ["organization", "user"]
    actions = ["revoke_selected"]
    # ``token_hash`` is never listed in any form, fieldset or read-only field.
    change_readonly = ["organization", "user", "prefix", "created_at", "last_used_at"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ApiTokenChangeForm if obj is not None else ApiTokenAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "organization", "user", "scopes", "expires_at"]
        return ["name", "organization", "user", "prefix", "scopes", "created_at", "expires_at",
                "revoked_at", "last_used_at"]

    def get_readonly_fields(self, request, obj=None):
        return self.change_readonly if obj is not None else []

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes or [])

    @admin.display(boolean=True, description="active")
    def active(self, obj: ApiToken) -> bool:
        return obj.is_active

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        # The form checked membership, scopes and expiry, so this does not raise.
        token, raw = create_token(
            organization=data["organization"],
            name=data["name"],
            scopes=data["scopes"],
            username=data["user"].get_username() if data.get("user") else None,
            expires_at=data.get("expires_at"),
        )
        for attr in ("pk", "id", "prefix", "token_hash", "scopes", "created_at", "user_id"):
            setattr(obj, attr, getattr(token, attr))
        obj._raw_token = raw  # only in memory, for response_add

    def response_add(self, request, obj, post_url_continue=None):
        raw = getattr(obj, "_raw_token", None)
        if raw is None or admin.options.IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        template = engines["django"].from_string(SHOWN_ONCE_PAGE)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Token created",
            "token": obj,
            "raw_token": raw,
            "scopes": ", ".join(obj.scopes),
        }
        response = TemplateResponse(request, template, context)
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke selected tokens")
    def revoke_selected(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


# --- audit events (read-only) ---------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "target_type", "target_link", "actor_repr", "changed_fields",
                    "organization", "request_id"]
    list_filter = ["action", "target_type", "organization"]
    search_fields = ["target_repr", "actor_repr", "request_id", "target_type"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
    fields = ["created_at", "organization", "action", "target_type", "target_id", "target_link",
              "actor_repr", "actor_user", "actor_token", "request_id", "changes_pretty", "detail_pretty"]
    readonly_fields = fields  # type: ignore[assignment]  # plain names; the stubs type `fields` as field groups

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="target")
    def target_link(self, obj: AuditEvent) -> str:
        label = obj.target_repr or f"{obj.target_type}:{obj.target_id}"
        app_model = obj.target_type.replace(".", "_")
        try:
            url = reverse(f"admin:{app_model}_change", args=[obj.target_id])
        except NoReverseMatch:
            return label
        if obj.action == "delete":
            return label
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description="fields")
    def changed_fields(self, obj: AuditEvent) -> str:
        return ", ".join(sorted(obj.changes or {}))

    @admin.display(description="changes")
    def changes_pretty(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.changes, indent=2, sort_keys=True, default=str))

    @admin.display(description="detail")
    def detail_pretty(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.detail, indent=2, sort_keys=True, default=str))
