"""Audit events: read-only, organization-scoped."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from organizations.admin.scoping import ORGANIZATION_FILTER, OrganizationScopedAdmin
from organizations.models import (
    AuditEvent,
)


@admin.register(AuditEvent)
class AuditEventAdmin(OrganizationScopedAdmin):
    """Read-only; a non-superuser sees the events of the organizations they are a member of."""

    list_display = ["created_at", "action", "target_type", "target_link", "actor_repr", "changed_fields",
                    "organization", "request_id"]
    list_filter = ["action", "target_type", ORGANIZATION_FILTER]
    search_fields = ["target_repr", "actor_repr", "request_id", "target_type"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
    fields = ("created_at", "organization", "action", "target_type", "target_id", "target_link",
              "actor_repr", "actor_user", "actor_token", "request_id", "changes_pretty", "detail_pretty")
    readonly_fields = fields

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
