"""The admin's revisions of a data source (a table on its page, a restore page with the diff and a
dry-run preview) and the trash of deleted sources (restore, purge), through the same services as
the API. Secret values are never shown: the diff names secrets only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from core.errors import ApiError
from datasources.models import DataSource, TrashedDataSource
from datasources.services import deletion, revisions
from datasources.services.datasources import WriteOptions
from datasources.services.restore import restore_revision
from organizations.actors import admin_actor
from organizations.admin.scoping import ORGANIZATION_FILTER, OrganizationScopedAdmin, organizations_with_role
from organizations.models import ADMIN_ROLES

REVISIONS_SHOWN = 20


def _diff_rows(diff: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for path_, change in diff.items():
        if isinstance(change, dict):
            rows.append({"path": path_, "old": change.get("old"), "new": change.get("new")})
        else:  # a secret: "changed", "set" or "cleared", never a value
            rows.append({"path": path_, "old": "(secret)", "new": change})
    return rows


class RevisionAdminMixin:
    """Mixed into ``DataSourceAdmin``: ``revisions_table`` on the change page and its restore view."""

    @admin.display(description="Revisions")
    def revisions_table(self, obj: DataSource) -> str:
        rows = format_html_join(
            "", '<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href="{}">Restore…</a></td></tr>',
            ((r.number, f"{r.created_at:%Y-%m-%d %H:%M:%S}", r.action, r.actor_repr, ", ".join(r.changed),
              reverse("admin:datasources_datasource_restore_revision", args=[obj.pk, r.number]))
             for r in revisions.revisions_of(obj)[:REVISIONS_SHOWN]),
        )
        return format_html(
            '<table id="revisions"><thead><tr><th>#</th><th>When</th><th>Action</th><th>By</th><th>Changed</th>'
            '<th></th></tr></thead><tbody>{}</tbody></table>',
            rows or format_html('<tr><td colspan="6">{}</td></tr>', "No revisions."),
        )

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.restore_revision_view)  # type: ignore[attr-defined]
        return [path("<path:object_id>/revisions/<int:number>/restore/", view,
                     name="datasources_datasource_restore_revision"), *super().get_urls()]  # type: ignore[misc]

    def restore_revision_view(self, request: HttpRequest, object_id: str, number: int) -> HttpResponse:
        """The diff against now; "Preview" is a dry run (test and impact), "Restore" applies."""
        ds = self.get_object(request, object_id)  # type: ignore[attr-defined]
        if ds is None:
            return HttpResponseRedirect(reverse("admin:datasources_datasource_changelist"))
        if not self.has_change_permission(request, ds):  # type: ignore[attr-defined]
            raise PermissionDenied
        actor = admin_actor(request, ds.organization)
        try:
            revision = revisions.revision_of(ds, number)
        except ApiError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(reverse("admin:datasources_datasource_change", args=[ds.pk]))
        impact, error = None, None
        if request.method == "POST":
            apply = "_restore" in request.POST
            try:
                result = restore_revision(actor=actor, data_source_id=ds.pk, number=number,
                                          options=WriteOptions(dry_run=not apply))
            except ApiError as exc:
                error = {"message": exc.message, "errors": exc.errors}
            else:
                if apply:
                    messages.success(request, f"{ds.name}: revision {number} restored.")
                    return HttpResponseRedirect(reverse("admin:datasources_datasource_change", args=[ds.pk]))
                impact = result.impact
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "original": ds,  # type: ignore[attr-defined]
            "revision": revision, "diff": _diff_rows(revisions.diff_against_current(ds, revision)),
            "impact": impact, "error": error, "title": f"Restore revision {number} of {ds.name}",
        }
        return TemplateResponse(request, "admin/datasources/datasource/restore_revision.html", context)


@admin.register(TrashedDataSource)
class TrashedDataSourceAdmin(OrganizationScopedAdmin):
    """Deleted data sources until ``purge_after``: "Restore" needs a writing role, "Purge" the owner
    or admin role, in the source's organization."""

    list_display = ["name", "organization", "type", "deleted_at", "deleted_by", "purge_after"]
    list_filter = ["type", ORGANIZATION_FILTER]
    search_fields = ["name", "reference_id"]
    list_select_related = ["organization"]
    fields = ("name", "organization", "type", "reference_id", "data_source_id", "created_at", "deleted_at",
              "deleted_by", "purge_after", "secret_names")
    readonly_fields = fields
    actions = ["restore_selected", "purge_selected"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # purging is the action below, with its own role rule

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_purge_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(self.has_change_permission(request)
                                                  and self.organizations_administered(request))

    def organizations_administered(self, request: HttpRequest) -> set[int]:
        return organizations_with_role(request, ADMIN_ROLES)

    @admin.action(description="Restore selected data sources", permissions=["change"])
    def restore_selected(self, request: HttpRequest, queryset: Any) -> None:
        self.check_action_allowed(request, queryset)
        for trashed in queryset.select_related("organization"):
            try:
                ds = deletion.restore_from_trash(actor=admin_actor(request, trashed.organization),
                                                 data_source_id=trashed.data_source_id)
            except ApiError as exc:
                self.message_user(request, f"{trashed.name}: not restored. {exc.message}", messages.ERROR)
                continue
            self.message_user(request, format_html('<a href="{}">{}</a> restored (pending until tested).',
                              reverse("admin:datasources_datasource_change", args=[ds.pk]), ds.name),
                              messages.SUCCESS)

    @admin.action(description="Purge selected data sources for good", permissions=["purge"])
    def purge_selected(self, request: HttpRequest, queryset: Any) -> None:
        administered = self.organizations_administered(request)
        if not request.user.is_superuser and any(t.organization_id not in administered for t in queryset):
            raise PermissionDenied
        for trashed in queryset.select_related("organization"):
            deletion.purge_from_trash(actor=admin_actor(request, trashed.organization),
                                      data_source_id=trashed.data_source_id)
        self.message_user(request, f"Purged {queryset.count()} data source(s).", messages.SUCCESS)
