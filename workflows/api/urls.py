"""Routes. Path segments accept ids or qualified references (which contain '.' and ':')."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.urls import re_path

from workflows.api.views import NodeViewSet, WorkflowDataSourceViewSet, WorkflowTableViewSet, WorkflowViewSet

if TYPE_CHECKING:
    from rest_framework.decorators import ViewSetAction

SEGMENT = r"[^/]+"
WF = rf"^workflows/(?P<workflow>{SEGMENT})"
# HTTP method -> action, typed as ViewSetMixin.as_view takes them (a dict, so invariant in its values).
LIST: dict[str, str | ViewSetAction] = {"get": "list", "post": "create"}
DETAIL: dict[str, str | ViewSetAction] = {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}

urlpatterns = [
    re_path(r"^workflows/?$", WorkflowViewSet.as_view(LIST), name="workflow-list"),
    re_path(rf"{WF}/?$", WorkflowViewSet.as_view({**DETAIL, "put": "update"}), name="workflow-detail"),
    re_path(rf"{WF}/data-sources/?$", WorkflowDataSourceViewSet.as_view(LIST), name="workflow-data-source-list"),
    re_path(
        rf"{WF}/data-sources/(?P<data_source>{SEGMENT})/?$",
        WorkflowDataSourceViewSet.as_view(DETAIL),
        name="workflow-data-source-detail",
    ),
    re_path(rf"{WF}/nodes/?$", NodeViewSet.as_view(LIST), name="workflow-node-list"),
    re_path(rf"{WF}/nodes/(?P<node>{SEGMENT})/?$", NodeViewSet.as_view(DETAIL), name="workflow-node-detail"),
    re_path(rf"{WF}/tables/?$", WorkflowTableViewSet.as_view({"get": "list"}), name="workflow-table-list"),
    re_path(
        rf"{WF}/tables/(?P<table>{SEGMENT})/?$",
        WorkflowTableViewSet.as_view({"get": "retrieve"}),
        name="workflow-table-detail",
    ),
]
