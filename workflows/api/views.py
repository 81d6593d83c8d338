"""Thin viewsets: parse the request, call the service, render the result."""

from __future__ import annotations

from typing import Any, Literal

from django.db.models import QuerySet
from rest_framework import status, viewsets
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from core.params import bool_param, only_query
from organizations.authentication import require_actor
from workflows.api import openapi_docs as docs
from workflows.api import serializers as s
from workflows.api.representation import workflow_data_source_dict
from workflows.models import Node, Workflow, WorkflowDataSource
from workflows.paths import check_path
from workflows.references import parse_table_reference
from workflows.selectors import (
    node_for,
    nodes_for,
    output_table,
    output_tables_of,
    renderable_workflow_data_source_for_actor,
    renderable_workflow_data_sources,
    workflow_data_sources_of,
    workflow_for_actor,
    workflows_for_actor,
)
from workflows.services import data_sources as ds_service
from workflows.services import nodes as node_service
from workflows.services import repoint as repoint_service
from workflows.services import workflows as wf_service


def _validated(serializer_class: type, request: Request, *, partial: bool) -> dict[str, Any]:
    serializer = serializer_class(data=request.data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _with_etag(response: Response, obj: Any) -> Response:
    response["ETag"] = obj.etag
    return response


class _Base(viewsets.GenericViewSet):
    scope_resource = "workflow"

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication, scopes and throttling come first
        check_path(kwargs)  # a segment that cannot name an object is a 404, like an unknown one

    def _fake(self) -> bool:
        return getattr(self, "swagger_fake_view", False)

    def _workflow(self) -> Workflow:
        return workflow_for_actor(require_actor(self.request), self.kwargs["workflow"])

    def _page(self, queryset: Any, serializer_class: type) -> Response:
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer_class(page, many=True).data)


@docs.workflow_viewset
class WorkflowViewSet(_Base):
    serializer_class = s.WorkflowSerializer
    search_fields = ["name", "description"]
    ordering_fields = ["id", "name", "created_at", "updated_at"]
    ordering = ["id"]

    def get_queryset(self) -> QuerySet[Workflow]:
        if self._fake():
            return Workflow.objects.none()
        return workflows_for_actor(require_actor(self.request))

    def _render(self, wf: Workflow, code: int = 200) -> Response:
        wf = self.get_queryset().get(pk=wf.pk)
        return _with_etag(Response(s.WorkflowSerializer(wf).data, status=code), wf)

    def list(self, request: Request) -> Response:
        return self._page(self.filter_queryset(self.get_queryset()), s.WorkflowSerializer)

    def create(self, request: Request) -> Response:
        data = _validated(s.WorkflowWriteSerializer, request, partial=False)
        wf = wf_service.create_workflow(actor=require_actor(request), data=data)
        response = self._render(wf, status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/workflows/{wf.pk}/"
        return response

    def retrieve(self, request: Request, workflow: str) -> Response:
        return self._render(self._workflow())

    def _update(self, request: Request, workflow: str, mode: Literal["patch", "put"]) -> Response:
        self._workflow()  # 404 before 400: never validate bodies for objects the caller cannot see
        data = _validated(s.WorkflowWriteSerializer, request, partial=mode == "patch")
        wf = wf_service.update_workflow(
            actor=require_actor(request), workflow=workflow, data=data, mode=mode,
            if_match=request.headers.get("If-Match"),
        )
        return self._render(wf)

    def update(self, request: Request, workflow: str) -> Response:
        return self._update(request, workflow, "put")

    def partial_update(self, request: Request, workflow: str) -> Response:
        return self._update(request, workflow, "patch")

    def destroy(self, request: Request, workflow: str) -> Response:
        wf_service.delete_workflow(actor=require_actor(request), workflow=workflow,
                                   if_match=request.headers.get("If-Match"))
        return Response(status=status.HTTP_204_NO_CONTENT)


@docs.data_source_viewset
class WorkflowDataSourceViewSet(_Base):
    serializer_class = s.WorkflowDataSourceSerializer
    filter_backends: list[type] = []  # paged by id only: no search, ordering or filters

    def get_queryset(self) -> QuerySet[WorkflowDataSource]:
        if self._fake():
            return WorkflowDataSource.objects.none()
        return workflow_data_sources_of(self._workflow())

    def _render(self, wds: WorkflowDataSource, code: int = 200) -> Response:
        """Re-read a written row by its id (the workflow was resolved already) and render it."""
        wds = renderable_workflow_data_sources().get(pk=wds.pk)
        return _with_etag(Response(workflow_data_source_dict(wds), status=code), wds)

    def list(self, request: Request, workflow: str) -> Response:
        return self._page(self.get_queryset(), s.WorkflowDataSourceSerializer)

    def create(self, request: Request, workflow: str) -> Response:
        self._workflow()
        data = _validated(s.SourceWriteSerializer, request, partial=False)
        wds = ds_service.add_data_source(actor=require_actor(request), workflow=workflow, **data)
        response = self._render(wds, status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/workflows/{wds.workflow_id}/data-sources/{wds.pk}/"
        return response

    def retrieve(self, request: Request, workflow: str, data_source: str) -> Response:
        wds = renderable_workflow_data_source_for_actor(require_actor(request), workflow, data_source)
        return _with_etag(Response(workflow_data_source_dict(wds)), wds)

    def partial_update(self, request: Request, workflow: str, data_source: str) -> Response:
        actor = require_actor(request)
        try:
            data = _validated(s.RepointSerializer, request, partial=False)
        except APIException:  # 404 before 400: never judge bodies for objects the caller cannot see
            renderable_workflow_data_source_for_actor(actor, workflow, data_source)
            raise
        only_query(request, "dry_run")
        result = repoint_service.repoint(
            actor=actor, workflow=workflow, data_source=data_source,
            source_data_source=data.get("source_data_source"), source_workflow=data.get("source_workflow"),
            mapped_tables=data.get("mapped_tables"), dry_run=bool_param(request, "dry_run", False),
            if_match=request.headers.get("If-Match"),
        )
        if result.dry_run:  # the data source as it is (resolved, unchanged, ready to render)
            current = workflow_data_source_dict(result.data_source)
            return Response({"dry_run": True, "data_source": current, **result.plan})
        return _with_etag(Response(workflow_data_source_dict(result.data_source)), result.data_source)  # as written

    def destroy(self, request: Request, workflow: str, data_source: str) -> Response:
        ds_service.delete_data_source(actor=require_actor(request), workflow=workflow, data_source=data_source,
                                      if_match=request.headers.get("If-Match"))
        return Response(status=status.HTTP_204_NO_CONTENT)


@docs.node_viewset
class NodeViewSet(_Base):
    serializer_class = s.NodeSerializer
    search_fields = ["name"]
    ordering_fields = ["id", "name", "created_at", "updated_at"]
    ordering = ["id"]

    def get_queryset(self) -> QuerySet[Node]:
        if self._fake():
            return Node.objects.none()
        return nodes_for(self._workflow())

    def _render(self, node: Node, code: int = 200) -> Response:
        node = self.get_queryset().get(pk=node.pk)
        return _with_etag(Response(s.NodeSerializer(node).data, status=code), node)

    def list(self, request: Request, workflow: str) -> Response:
        return self._page(self.filter_queryset(self.get_queryset()), s.NodeSerializer)

    def create(self, request: Request, workflow: str) -> Response:
        self._workflow()
        data = _validated(s.NodeWriteSerializer, request, partial=False)
        node = node_service.create_node(actor=require_actor(request), workflow=workflow, data=data)
        response = self._render(node, status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/workflows/{node.workflow_id}/nodes/{node.pk}/"
        return response

    def retrieve(self, request: Request, workflow: str, node: str) -> Response:
        return self._render(node_for(self._workflow(), node))

    def partial_update(self, request: Request, workflow: str, node: str) -> Response:
        node_for(self._workflow(), node)  # 404 before 400
        data = _validated(s.NodeWriteSerializer, request, partial=True)
        updated = node_service.update_node(actor=require_actor(request), workflow=workflow, node=node, data=data,
                                           if_match=request.headers.get("If-Match"))
        return self._render(updated)

    def destroy(self, request: Request, workflow: str, node: str) -> Response:
        node_service.delete_node(actor=require_actor(request), workflow=workflow, node=node,
                                 if_match=request.headers.get("If-Match"))
        return Response(status=status.HTTP_204_NO_CONTENT)


@docs.table_viewset
class WorkflowTableViewSet(_Base):
    """The workflow's output tables: what other workflows can use as a source."""

    serializer_class = s.WorkflowTableSerializer
    filter_backends: list[type] = []  # paged by id only: no search, ordering or filters

    def get_queryset(self) -> QuerySet[Node]:
        if self._fake():
            return Node.objects.none()
        return output_tables_of(self._workflow())

    def list(self, request: Request, workflow: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([s.table_repr(n) for n in page or []])  # None only without a paginator

    def retrieve(self, request: Request, workflow: str, table: str) -> Response:
        ref = parse_table_reference(table)  # well-formed: checked by `initial`
        return Response(s.table_repr(output_table(self._workflow(), ref)))
