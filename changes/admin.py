"""Change plans and change sets in the admin: read-only, scoped to the operator's organizations,
with each plan's impact report rendered; the "apply" action goes through the same service as the
API (the same permission rules: the author or an owner/admin, and the four-eyes setting). No
page shows a plan's body: its secrets stay sealed."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from changes.models import ChangePlan, ChangeSet, ChangeSetItem
from changes.services import plans
from core.errors import ApiError
from organizations.actors import Actor
from organizations.admin.scoping import ORGANIZATION_FILTER, OrganizationScopedAdmin, ReadOnlyTabularInline

PLAN_FIELDS = ("public_id", "organization", "data_source", "status", "base_version", "touches_connection",
               "changes_shown", "test_shown", "impact_shown", "created_by", "created_at", "expires_at",
               "applied_at", "applied_by", "cancelled_at", "cancelled_by")


def _changes(changes: dict[str, Any]) -> SafeString:
    def shown(value: Any) -> str:
        return value if isinstance(value, str) else f"{value.get('old')!r} → {value.get('new')!r}"

    rows = format_html_join("", "<tr><td><code>{}</code></td><td>{}</td></tr>",
                            ((path, shown(value)) for path, value in sorted(changes.items())))
    return format_html("<table>{}</table>", rows) if changes else format_html("{}", "No change.")


def impact_html(impact: dict[str, Any] | None) -> SafeString:
    """The impact report as a person reads it: the verdict, the counts, each workflow's tables."""
    if not impact:
        return format_html("{}", "No report.")
    counts = impact.get("counts", {})
    head = format_html(
        "<p><strong>{}</strong> — schema compared: {}; {} workflow(s), {} broken; {} table(s) read, {} missing, "
        "{} changed.</p>",
        "BREAKING" if impact.get("breaking") else "Nothing breaks", "yes" if impact.get("schema_compared") else "no",
        counts.get("workflows", 0), counts.get("workflows_broken", 0), counts.get("tables_read", 0),
        counts.get("tables_missing", 0), counts.get("tables_changed", 0))
    rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", (
        (workflow.get("name"), "breaks" if workflow.get("breaks") else "ok",
         ", ".join(f"{t.get('name')}: {t.get('status')}" for t in workflow.get("tables", [])))
        for workflow in impact.get("workflows", [])))
    table = format_html("<table><tr><th>Workflow</th><th>Verdict</th><th>Tables</th></tr>{}</table>", rows)
    tenancy = impact.get("tenancy") or {}
    extra = format_html("<p>Tenancy settings break: {}</p>", ", ".join(tenancy.get("errors", {})) or "yes") \
        if tenancy.get("breaks") else format_html("{}", "")
    return format_html("{}{}{}", head, table, extra)


@admin.register(ChangePlan)
class ChangePlanAdmin(OrganizationScopedAdmin):
    list_display = ["public_id", "data_source", "status", "touches_connection", "breaking", "created_by",
                    "created_at", "expires_at"]
    list_filter = [ORGANIZATION_FILTER, "status"]
    list_select_related = ["data_source", "organization"]
    fields = PLAN_FIELDS
    readonly_fields = PLAN_FIELDS
    actions = ["apply_selected"]
    search_fields = ["public_id", "data_source__name"]

    def has_add_permission(self, request, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)  # pages are read-only; actions act

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self._may_write(request, None):
            actions.pop("apply_selected", None)
        return actions

    @admin.display(description="Breaking", boolean=True)
    def breaking(self, obj: ChangePlan) -> bool:
        return bool((obj.impact or {}).get("breaking"))

    @admin.display(description="Changes (secrets as changed/cleared)")
    def changes_shown(self, obj: ChangePlan) -> SafeString:
        return _changes(obj.changes)

    @admin.display(description="Connection test")
    def test_shown(self, obj: ChangePlan) -> str:
        test = obj.test or {}
        return "No test (the connection is unchanged)." if not test else \
            f"{'passed' if test.get('ok') else 'failed'} in {test.get('duration_ms', 0):.0f} ms"

    @admin.display(description="Impact")
    def impact_shown(self, obj: ChangePlan) -> SafeString:
        return impact_html(obj.impact)

    @admin.action(description="Apply the selected plans (tested again, as reviewed)")
    def apply_selected(self, request, queryset):
        self.check_action_allowed(request, queryset)
        for plan in queryset.select_related("organization"):
            actor = Actor.for_member(plan.organization, request.user)
            try:
                applied, _ = plans.apply_plan(actor=actor, data_source_id=plan.data_source_id, plan_id=plan.public_id)
            except ApiError as exc:
                messages.error(request, f"Plan {plan.public_id}: {exc.message}")
                continue
            messages.success(request, f"Plan {applied.public_id} applied.")


class ItemInline(ReadOnlyTabularInline):
    model = ChangeSetItem
    fields = ("position", "data_source", "base_version", "ok", "changed", "error")


@admin.register(ChangeSet)
class ChangeSetAdmin(OrganizationScopedAdmin):
    list_display = ["public_id", "status", "item_count", "failed_count", "created_by", "created_at", "applied_at"]
    list_filter = [ORGANIZATION_FILTER, "status"]
    fields = ("public_id", "organization", "status", "item_count", "failed_count", "created_by", "created_at",
              "expires_at", "applied_at", "applied_by")
    readonly_fields = fields
    inlines = [ItemInline]

    def has_add_permission(self, request, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
