"""Admin for workflows: their data sources and nodes inline, and a repoint view (dry run, then apply).

Every write goes through the same services as the API: same validation, locking and audit.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin_forms import ServiceForm, StrictJSONField
from core.errors import ApiError
from organizations.actors import admin_actor
from organizations.admin import ORGANIZATION_FILTER, OrganizationScopedAdmin
from workflows.models import Node, Workflow, WorkflowDataSource
from workflows.references import render_table
from workflows.selectors import dependants_of_workflow, first_rows_of
from workflows.services import workflows as wf_service
from workflows.services.repoint import repoint
from workflows.services.sources import source_reference, target_of

FIELDS = ("name", "description")  # what the form sends to the workflow services
INLINE_LIMIT = 200  # a workflow may have thousands of nodes: the change page shows the first ones


def _reference(wds: WorkflowDataSource) -> str:
    return source_reference(target_of(wds), wds.workflow.organization.slug)


class WorkflowForm(ServiceForm):
    """Saves through the workflow services (``ServiceForm``): what the service refuses lands on its
    field, and a stale page is refused."""

    service_fields = FIELDS
    stale_what = "workflow"

    class Meta:
        model = Workflow
        fields = ["organization", "name", "description"]

    def actor(self, organization: Any) -> Any:
        return admin_actor(self.request, organization)

    def create(self, actor: Any, body: dict[str, Any]) -> Workflow:
        return wf_service.create_workflow(actor=actor, data=body)

    def update(self, actor: Any, body: dict[str, Any], if_match: str | None) -> Workflow:
        return wf_service.update_workflow(actor=actor, workflow=self.instance.pk, data=body, mode="patch",
                                          if_match=if_match)


class _CappedFormSet(BaseInlineFormSet):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        instance, model = kwargs.get("instance"), self.model  # the factory sets the model of every inline formset
        if instance is not None and instance.pk and model is not None:
            kwargs["queryset"] = first_rows_of(model, instance, INLINE_LIMIT)
        super().__init__(*args, **kwargs)


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False
    formset = _CappedFormSet

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _SourceColumns:
    """The source and repoint-link columns of a workflow data source (inline and change page)."""

    repoint_link_class = ""

    @admin.display(description="Source")
    def source(self, obj: WorkflowDataSource) -> str:
        return _reference(obj)

    @admin.display(description="")
    def repoint_link(self, obj: WorkflowDataSource) -> str:
        url = reverse("admin:workflows_workflowdatasource_repoint", args=[obj.pk])
        return format_html('<a class="{}" href="{}">Repoint…</a>', self.repoint_link_class, url)


class DataSourceInline(_SourceColumns, _ReadOnlyInline):
    model = WorkflowDataSource
    fk_name = "workflow"
    fields = ("reference_id", "source", "version", "updated_at", "repoint_link")
    readonly_fields = fields


class NodeInline(_ReadOnlyInline):
    model = Node
    fields = ("name", "kind", "reference_id", "reads", "output_table_name", "version")
    readonly_fields = fields
    verbose_name_plural = f"Nodes (first {INLINE_LIMIT})"

    @admin.display(description="Reads")
    def reads(self, obj: Node) -> str:
        return ", ".join(render_table(i.table_name, i.table_reference_id) for i in obj.inputs.all()[:20])


@admin.register(Workflow)
class WorkflowAdmin(OrganizationScopedAdmin):
    """Non-superusers see their organizations' workflows; changing, adding and deleting need the
    model permission and a role that may write there (as the API's ``workflow.write``)."""

    form = WorkflowForm
    list_display = ["name", "organization", "reference_id", "version", "updated_at"]
    list_filter = [ORGANIZATION_FILTER]
    search_fields = ["name", "reference_id"]
    list_select_related = ["organization"]
    inlines = [DataSourceInline, NodeInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Workflow | None = None) -> list[str]:
        base = ["reference_id", "version", "created_at", "updated_at"]
        return ["organization", *base] if obj is not None else base

    def get_form(self, request: HttpRequest, obj: Workflow | None = None, change: bool = False, **kwargs: Any) -> Any:
        base = super().get_form(request, obj, change=change, **kwargs)
        return type("WorkflowAdminForm", (base,), {"request": request})

    def save_model(self, request: HttpRequest, obj: Workflow, form: Any, change: bool) -> None:
        """The form saved through the service already (in ``clean``)."""

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if request.method == "POST" and obj is not None and self.has_delete_permission(request, obj):
            try:
                wf_service.delete_workflow(actor=admin_actor(request, obj.organization), workflow=obj.pk)
            except ApiError as exc:
                messages.error(request, exc.message)
                return HttpResponseRedirect(reverse("admin:workflows_workflow_change", args=[obj.pk]))
            messages.success(request, f"Deleted workflow '{obj.name}'.")
            return HttpResponseRedirect(reverse("admin:workflows_workflow_changelist"))
        dependants = dependants_of_workflow(obj) if obj is not None else []
        if dependants:
            messages.warning(request, f"Still a source of: {', '.join(dependants)}; deleting will be refused.")
        return super().delete_view(request, object_id, extra_context)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # bulk delete would bypass the dependants check
        return actions


class RepointForm(forms.Form):
    source_data_source = forms.CharField(
        required=False, help_text="org.source_name[:reference_id][:sample][:vN|:current]"
    )
    source_workflow = forms.CharField(required=False, help_text="org.workflow_name[:reference_id]")
    mapped_tables = StrictJSONField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text='JSON object, e.g. {"old_table:xje9": "new_table:a842"}',
    )

    def clean_mapped_tables(self) -> dict[str, str]:
        """Parsed by the API's JSON rules (the field); then an object of strings, as the API's body."""
        value = self.cleaned_data.get("mapped_tables")
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise forms.ValidationError("Expected a JSON object of strings.")
        return value


@admin.register(WorkflowDataSource)
class WorkflowDataSourceAdmin(_SourceColumns, OrganizationScopedAdmin):
    """Read-only rows; the repoint view (preview and apply) needs the change permission and a
    role that may write in the workflow's organization."""

    list_display = ["__str__", "workflow", "source", "is_sample", "version", "updated_at"]
    list_select_related = ["workflow__organization", "source_data_source", "source_workflow"]
    organization_field = "workflow__organization"
    search_fields = ["reference_id", "workflow__name"]
    fields = ("workflow", "reference_id", "source", "is_sample", "version", "created_at", "updated_at",
              "repoint_link")
    readonly_fields = fields
    repoint_link_class = "button"

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.repoint_view)
        return [path("<path:object_id>/repoint/", view, name="workflows_workflowdatasource_repoint"),
                *super().get_urls()]

    def repoint_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Preview the plan (dry run), then apply it with the same service as the API."""
        wds = self.get_object(request, object_id)
        if wds is None:
            return HttpResponseRedirect(reverse("admin:workflows_workflowdatasource_changelist"))
        if not self.has_change_permission(request, wds):
            raise PermissionDenied
        current = _reference(wds)
        field = "source_data_source" if wds.source_data_source_id else "source_workflow"
        form = RepointForm(request.POST or None, initial={field: current})
        plan, error = None, None
        if request.method == "POST" and form.is_valid():
            apply = "_apply" in request.POST
            try:
                result = repoint(
                    actor=admin_actor(request, wds.workflow.organization), workflow=wds.workflow_id,
                    data_source=wds.pk, source_data_source=form.cleaned_data["source_data_source"] or None,
                    source_workflow=form.cleaned_data["source_workflow"] or None,
                    mapped_tables=form.cleaned_data["mapped_tables"], dry_run=not apply,
                )
            except ApiError as exc:
                error = {"message": exc.message, "errors": exc.errors}
            else:
                if apply:
                    messages.success(request, f"Repointed to {result.plan['to']['reference']}.")
                    return HttpResponseRedirect(reverse("admin:workflows_workflowdatasource_change", args=[wds.pk]))
                plan = result.plan
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "original": wds, "form": form,
            "plan": plan, "error": error, "current": current, "title": f"Repoint {wds}",
        }
        return TemplateResponse(request, "admin/workflows/workflowdatasource/repoint.html", context)
