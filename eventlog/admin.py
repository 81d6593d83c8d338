"""The event log in the admin: read-only, organization-scoped, like the audit events."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.utils.html import format_html

from eventlog.models import Event
from organizations.admin.scoping import ORGANIZATION_FILTER, OrganizationScopedAdmin


@admin.register(Event)
class EventAdmin(OrganizationScopedAdmin):
    """What webhooks deliver (and GET /api/v1/events/ lists); a member sees their organizations' events."""

    list_display = ["occurred_at", "type", "subject", "organization", "public_id", "dispatched_at"]
    list_filter = ["type", ORGANIZATION_FILTER]
    search_fields = ["public_id", "type"]
    list_select_related = ["organization"]
    date_hierarchy = "occurred_at"
    fields = ("public_id", "type", "occurred_at", "organization", "dispatched_at", "data_pretty")
    readonly_fields = fields

    def has_add_permission(self, request, *args: Any) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="subject")
    def subject(self, obj: Event) -> str:
        """The data source or workflow the event is about, by name."""
        for key in ("data_source", "workflow"):
            named = obj.data.get(key) if isinstance(obj.data, dict) else None
            if isinstance(named, dict) and named.get("name"):
                return f"{key.replace('_', ' ')}: {named['name']}"
        return ""

    @admin.display(description="data")
    def data_pretty(self, obj: Event) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, sort_keys=True))
