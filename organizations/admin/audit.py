"""Audit events: read-only, organization-scoped, and about an object only for whom may see that object."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from organizations.admin.scoping import ORGANIZATION_FILTER, OrganizationScopedAdmin, organizations_with_role
from organizations.models import (
    ApiToken,
    AuditEvent,
)


@admin.register(AuditEvent)
class AuditEventAdmin(OrganizationScopedAdmin):
    """Read-only. A non-superuser sees the events of the organizations they are a member of, except
    those about objects whose own admin shows them only to some roles (``view_roles``: API tokens,
    memberships, webhooks: owner or admin), which they see only where they have such a role. The
    list, its counts, filters and search, and the detail pages all read ``get_queryset``."""

    list_display = ["created_at", "action", "target_type", "target_link", "actor_repr", "changed_fields",
                    "organization", "request_id"]
    list_filter = ["action", "target_type", ORGANIZATION_FILTER]
    search_fields = ["target_repr", "actor_repr", "request_id", "target_type"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
    fields = ("created_at", "organization", "action", "target_type", "target_id", "target_link",
              "actor_repr", "actor_user", "actor_token_shown", "request_id", "changes_pretty", "detail_pretty")
    readonly_fields = fields

    def restricted_targets(self) -> dict[frozenset[str], list[str]]:
        """``{roles: [target types]}``: the models whose registered admin shows them only to ``roles``."""
        restricted: dict[frozenset[str], list[str]] = defaultdict(list)
        for model, model_admin in self.admin_site._registry.items():
            if isinstance(model_admin, OrganizationScopedAdmin) and model_admin.view_roles is not None:
                restricted[frozenset(model_admin.view_roles)].append(model._meta.label_lower)
        return restricted

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        member_of = self.viewable_organizations(request)
        for roles, target_types in self.restricted_targets().items():
            without = member_of - organizations_with_role(request, roles)
            if without:
                queryset = queryset.exclude(target_type__in=target_types, organization_id__in=without)
        return queryset

    def _may_see_tokens_of(self, request: Any, organization_id: int) -> bool:
        if request.user.is_superuser:
            return True
        token_admin = self.admin_site._registry.get(ApiToken)
        roles = getattr(token_admin, "view_roles", None)
        return roles is None or organization_id in organizations_with_role(request, roles)

    def get_object(self, request, object_id, from_field=None):
        """The event, noting whether this operator may see the acting token's own name and prefix
        (``actor_token``: only whom may see that organization's tokens; ``actor_repr`` names the token
        for everyone, as the API's data-source history does)."""
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj.show_actor_token = self._may_see_tokens_of(request, obj.organization_id)
        return obj

    @admin.display(description="actor token")
    def actor_token_shown(self, obj: AuditEvent) -> str:
        if obj.actor_token_id is None:
            return "-"
        if not getattr(obj, "show_actor_token", False):
            return "(shown to the organization's owners and admins)"
        url = reverse("admin:organizations_apitoken_change", args=[obj.actor_token_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.actor_token))

    def has_add_permission(self, request, *args: Any) -> bool:
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="target")
    def target_link(self, obj: AuditEvent) -> str:
        """A link to the target's admin page (data sources, workflows, tokens, memberships, ...),
        unless it was deleted; the label is what the target was called at the time."""
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
