"""Admin for data sources, their schema snapshots and (metadata only) credentials.

Writes go through the same services as the API (see ``forms``): validation, test before
apply, audit and schema refresh are identical. Secrets and ciphertexts are never rendered.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import csrf_protect_m
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from core.errors import ApiError
from datasources import catalogue
from datasources.admin.forms import OPS_FIELDS, TENANCY_FIELDS, DataSourceForm, connection_fieldsets
from datasources.admin.health import HealthAdminMixin
from datasources.admin.revisions import RevisionAdminMixin
from datasources.models import Credential, DataSource, SchemaSnapshot, SchemaTable
from datasources.selectors import credentials_without_ciphertext
from datasources.services.connection import check_syncable, sync_schema, test_stored
from datasources.services.credentials import secret_names
from datasources.services.deletion import delete_data_source, dependants_of
from organizations.actors import admin_actor
from organizations.admin import ORGANIZATION_FILTER, OrganizationScopedAdmin
from organizations.admin.scoping import ReadOnlyTabularInline
from organizations.selectors import audit_events_for

HISTORY_LIMIT = 20
STATUS_FIELDS = ["status", "last_test_summary", "schema_summary", "health_summary", "credentials_summary",
                 "version", "created", "updated"]
CHANGE_READONLY = ["type_label", "reference_id", "organization", *STATUS_FIELDS, "history_table", "revisions_table"]


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _change_summary(changes: dict) -> str:
    parts = []
    for key in sorted(changes or {}):
        value = changes[key]
        if isinstance(value, dict) and set(value) == {"old", "new"}:
            parts.append(f"{key}: {_short(value['old'])} → {_short(value['new'])}")
        else:
            parts.append(f"{key}: {value}")
    return "; ".join(parts)


def _audit_url(obj: DataSource) -> str:
    base = reverse("admin:organizations_auditevent_changelist")
    return f"{base}?target_type={obj._meta.label_lower}&target_id={obj.pk}"


@admin.register(DataSource)
class DataSourceAdmin(HealthAdminMixin, RevisionAdminMixin, OrganizationScopedAdmin):
    """Non-superusers see their organizations' sources; changing, adding, deleting, "Test
    connection" and "Refresh schema" need the change (add, delete) permission and a role that
    may write there (owner, admin, editor), as the API's ``datasource.write`` does."""

    form = DataSourceForm
    list_display = ["name", "organization", "type", "status", "health_badge", "schema_status", "schema_version",
                    "updated_at"]
    list_filter = ["type", "status", "health_state", ORGANIZATION_FILTER]
    search_fields = ["name", "reference_id"]
    list_select_related = ["organization"]
    actions = ["test_connection", "refresh_schema_action", "run_health_check_action"]
    type_picker_template = "admin/datasources/datasource/type_picker.html"

    # --- form building ---------------------------------------------------------------------------

    def _source_type(self, request, obj=None) -> catalogue.SourceType:
        return catalogue.get_type(obj.type if obj is not None else request.GET.get("type", ""))

    def get_form(self, request, obj=None, change=False, **kwargs):
        # Only model fields go to modelform_factory; the form adds the catalogue-driven ones.
        main = ["name", "workspace", "description", *OPS_FIELDS]
        kwargs["fields"] = main if obj is not None else ["organization", *main]
        base = super().get_form(request, obj, change=change, **kwargs)
        attrs = {"source_type": self._source_type(request, obj), "request": request}
        return type("DataSourceAdminForm", (base,), attrs)

    def get_fieldsets(self, request, obj=None):
        source_type = self._source_type(request, obj)
        if obj is None:
            main = ["name", "organization", "workspace", "description"]
        else:
            main = ["name", "type_label", "reference_id", "organization", "workspace", "description"]
        fieldsets = [(None, {"fields": main}), *connection_fieldsets(source_type)]
        fieldsets += [
            ("Operations", {"fields": OPS_FIELDS, "classes": ["collapse"]}),
            ("Tags and metadata", {"fields": ["tags", "metadata"]}),
            ("Tenancy settings", {"fields": TENANCY_FIELDS, "classes": ["collapse"],
                                  "description": "How clients are isolated in this source; TABLE settings are "
                                                 "checked against the cached schema."}),
            ("Apply", {"fields": ["skip_test", "version_seen"]}),
        ]
        if obj is not None:
            fieldsets += [("Status", {"fields": STATUS_FIELDS}), ("History", {"fields": ["history_table"]}),
                          ("Revisions", {"fields": ["revisions_table"], "classes": ["collapse"]})]
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return CHANGE_READONLY if obj is not None else []

    # --- views -------------------------------------------------------------------------------------

    def add_view(self, request, form_url="", extra_context=None):
        key = request.GET.get("type", "")
        if key not in catalogue.CATALOGUE:
            if not self.has_add_permission(request):
                raise PermissionDenied
            return self._type_picker(request)
        label = catalogue.get_type(key).label
        extra_context = {**(extra_context or {}), "title": f"Add {label} data source"}
        return super().add_view(request, form_url, extra_context)

    @csrf_protect_m
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Unlike the default, no transaction around the whole view: the service runs the slow
        # connection test outside any transaction and takes its own row lock briefly.
        # ModelAdmin._changeform_view is Django's (the body the default wraps in a transaction), left
        # out of django-stubs as private.
        return self._changeform_view(request, object_id, form_url, extra_context)  # type: ignore[attr-defined]

    def _type_picker(self, request):
        families: dict[str, list] = {}
        for source_type in catalogue.CATALOGUE.values():
            families.setdefault(source_type.family, []).append(source_type)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Choose the type of the new data source",
            "families": sorted(families.items()),
            "add_url": reverse("admin:datasources_datasource_add"),
        }
        return TemplateResponse(request, self.type_picker_template, context)

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_or_change_permission(request, obj):
            return super().history_view(request, object_id, extra_context)
        return HttpResponseRedirect(_audit_url(obj))

    # --- saving and deleting through the services --------------------------------------------------

    def save_model(self, request, obj, form, change):
        """The form saved through the service already (in ``clean``); report what happened."""
        result = form.write_result
        if result is None:
            return
        parts = []
        if change and result.changed:
            parts.append("Changed: " + ", ".join(result.changed) + ".")
        if result.test is not None:
            parts.append(f"Connection test passed ({result.test.duration_ms:.0f} ms).")
        elif form.cleaned_data.get("skip_test"):
            parts.append("Connection not tested (skipped).")
        if result.schema is not None:
            if result.schema.ok:
                state = "new version" if result.schema.created else "unchanged"
                parts.append(f"Schema version {result.schema.version} ({state}).")
            else:
                parts.append(f"Schema refresh failed: {result.schema.error}")
        if parts:
            level = messages.WARNING if result.schema is not None and not result.schema.ok else messages.INFO
            self.message_user(request, " ".join(parts), level)

    def save_related(self, request, form, formsets, change):
        """Nothing related is saved from this form (credentials go through the service)."""

    def get_deleted_objects(self, objs, request):
        # Credentials and snapshots belong to the data source and go with it, although their
        # own (read-only) admins refuse to delete them one by one. Workflows still reading a
        # source protect it (the service would refuse with a 409).
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        owned = {str(m._meta.verbose_name) for m in (Credential, SchemaSnapshot, SchemaTable)}
        readers = [f"{obj}: still a source of {name}" for obj in objs for name in dependants_of(obj)]
        if readers:  # say why, rather than Django's "no permission to delete workflow data sources"
            return deleted, counts, set(), [*protected, *readers]
        return deleted, counts, {p for p in perms_needed if str(p) not in owned}, protected

    def delete_model(self, request, obj):
        try:
            delete_data_source(actor=admin_actor(request, obj.organization), data_source_id=obj.pk)
        except ApiError as exc:  # e.g. a workflow started reading it after the confirmation page
            request._datasource_delete_failed = True
            self.message_user(request, f"{obj}: not deleted. {exc.message}", messages.ERROR)

    def response_delete(self, request, obj_display, obj_id):
        if getattr(request, "_datasource_delete_failed", False):
            return HttpResponseRedirect(reverse("admin:datasources_datasource_changelist"))
        return super().response_delete(request, obj_display, obj_id)

    def delete_queryset(self, request, queryset):
        for obj in queryset.select_related("organization"):
            self.delete_model(request, obj)

    # --- actions -----------------------------------------------------------------------------------

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection(self, request, queryset):
        self.check_action_allowed(request, queryset)
        for ds in queryset.select_related("organization"):
            try:
                result = test_stored(data_source=ds, actor=admin_actor(request, ds.organization))
            except ApiError as exc:
                self.message_user(request, f"{ds.name}: {exc.message}", messages.ERROR)
                continue
            if result.ok:
                version = f", {result.server_version}" if result.server_version else ""
                self.message_user(request, f"{ds.name}: connection OK ({result.duration_ms:.0f} ms{version}).",
                                  messages.SUCCESS)
            else:
                self.message_user(request, f"{ds.name}: connection test failed at stage '{result.stage}': "
                                           f"{result.message}", messages.ERROR)

    @admin.action(description="Refresh schema", permissions=["change"])
    def refresh_schema_action(self, request, queryset):
        """``POST .../sync/`` for each source (``sync_schema``): a source that waits for its credentials,
        or whose type has no connector here, is refused (an error naming it and why; nothing of it
        changes), as the API answers 400. With a worker (``SCHEMA_REFRESH_ASYNC``) the others are queued
        after the same checks (``check_syncable``); else refreshed now, each outcome reported."""
        self.check_action_allowed(request, queryset)
        from datasources.tasks import enqueue_refresh

        queued = 0
        for ds in queryset.select_related("organization"):
            try:
                if settings.SCHEMA_REFRESH_ASYNC:  # a worker runs: queue what sync_schema would refresh now
                    check_syncable(ds)
                    enqueue_refresh(ds.pk)
                    queued += 1
                    continue
                outcome = sync_schema(data_source=ds)
            except ApiError as exc:  # refused (nothing changed), busy, or the refresh failed (previous kept)
                self.message_user(request, f"{ds.name}: not refreshed. {exc.message}", messages.ERROR)
                continue
            state = "new version" if outcome.created else "unchanged"
            self.message_user(request, f"{ds.name}: schema version {outcome.version} ({state}).", messages.SUCCESS)
        if queued:
            self.message_user(request, f"Schema refresh queued for {queued} data source(s).", messages.SUCCESS)

    # --- read-only displays ------------------------------------------------------------------------

    @admin.display(description="Type")
    def type_label(self, obj: DataSource) -> str:
        try:
            return f"{catalogue.get_type(obj.type).label} ({obj.type})"
        except KeyError:
            return obj.type

    @admin.display(description="Last connection test")
    def last_test_summary(self, obj: DataSource) -> str:
        test = obj.last_test
        if not test:
            return "Never tested."
        when = test.get("tested_at", "")
        if test.get("ok"):
            return f"Passed ({test.get('duration_ms', 0):.0f} ms) at {when}."
        return f"Failed at stage '{test.get('stage')}': {test.get('message', '')} ({when})"

    @admin.display(description="Schema cache")
    def schema_summary(self, obj: DataSource) -> str:
        url = reverse("admin:datasources_schemasnapshot_changelist") + f"?data_source={obj.pk}"
        text = f"{obj.get_schema_status_display()}"
        if obj.schema_version:
            text += f", version {obj.schema_version}, {obj.schema_table_count or 0} tables"
        if obj.schema_refreshed_at:
            text += f", refreshed {obj.schema_refreshed_at:%Y-%m-%d %H:%M:%S %Z}"
        if obj.schema_error:
            text += f". Error: {obj.schema_error}"
        return format_html('{} (<a href="{}">snapshots</a>)', text, url)

    @admin.display(description="Credentials")
    def credentials_summary(self, obj: DataSource) -> str:
        present = secret_names(obj)
        try:
            names = [s.name for s in catalogue.get_type(obj.type).secrets]
        except KeyError:
            names = sorted(present)
        if not names:
            return "This type has no secrets."
        return ", ".join(f"{n}: {'set' if n in present else 'not set'}" for n in names)

    @admin.display(description="Created")
    def created(self, obj: DataSource) -> str:
        by = obj.created_by or obj.created_by_token or "system"
        return f"{obj.created_at:%Y-%m-%d %H:%M:%S %Z} by {by}"

    @admin.display(description="Updated")
    def updated(self, obj: DataSource) -> str:
        by = obj.updated_by or obj.updated_by_token or "system"
        return f"{obj.updated_at:%Y-%m-%d %H:%M:%S %Z} by {by}"

    @admin.display(description="Recent changes")
    def history_table(self, obj: DataSource) -> str:
        events = audit_events_for(obj)[:HISTORY_LIMIT]
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((f"{e.created_at:%Y-%m-%d %H:%M:%S}", e.action, e.actor_repr, _change_summary(e.changes),
              e.request_id) for e in events),
        )
        return format_html(
            '<table id="audit-history"><thead><tr><th>When</th><th>Action</th><th>By</th><th>Changes</th>'
            '<th>Request</th></tr></thead><tbody>{}</tbody></table><p><a href="{}">All audit events</a></p>',
            rows or format_html('<tr><td colspan="5">{}</td></tr>', "No events."), _audit_url(obj),
        )


class SchemaTableInline(ReadOnlyTabularInline):
    model = SchemaTable
    fields = ("reference_id", "schema", "name", "kind", "column_summary")

    @admin.display(description="columns")
    def column_summary(self, obj: SchemaTable) -> str:
        return ", ".join(
            f"{c.get('name')} {c.get('type')}{'' if c.get('nullable', True) else ' not null'}"
            for c in obj.columns or []
        )


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SchemaSnapshot)
class SchemaSnapshotAdmin(OrganizationScopedAdmin, ReadOnlyAdmin):
    organization_field = "data_source__organization"
    list_display = ["data_source", "version", "table_count", "short_fingerprint", "created_at"]
    list_filter = [("data_source__organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["data_source__name", "data_source__reference_id"]
    list_select_related = ["data_source"]
    fields = ("data_source", "version", "table_count", "fingerprint", "created_at")
    readonly_fields = fields
    inlines = [SchemaTableInline]

    @admin.display(description="fingerprint")
    def short_fingerprint(self, obj: SchemaSnapshot) -> str:
        return obj.fingerprint[:12]


@admin.register(Credential)
class CredentialAdmin(OrganizationScopedAdmin, ReadOnlyAdmin):
    """Which secrets exist, and under which key. The ciphertext is never shown."""

    organization_field = "data_source__organization"
    list_display = ["data_source", "field", "key_id", "updated_at"]
    list_filter = ["key_id", "field"]
    search_fields = ["data_source__name", "data_source__reference_id", "field"]
    list_select_related = ["data_source"]
    fields = ("data_source", "field", "key_id", "updated_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return credentials_without_ciphertext(super().get_queryset(request))
