"""Thin views: parse the request, call the service, render the result."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from changes.api import openapi_docs as docs
from changes.api import serializers as s
from changes.models import ChangePlan, ChangeSet
from changes.services import change_sets, plans
from core.params import require_no_body, require_no_query
from datasources.api.serializers import DataSourceSerializer
from datasources.selectors import data_source_for_actor, renderable_data_source_for_actor
from datasources.shapes import DataSourceWriteSerializer
from organizations.authentication import require_actor

#: A plan or set is itself the dry run: its answer is the test and the impact, and nothing is applied.
NO_QUERY = "A plan or change set is tested and stored without being applied; apply it with .../apply/."


def _patch_body(data: Any) -> dict[str, Any]:
    serializer = DataSourceWriteSerializer(data=data, partial=True)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@docs.plan_viewset
class PlanViewSet(viewsets.GenericViewSet):
    """``/api/v1/data-sources/{id}/plans/``: reading needs datasource.read, the rest datasource.write."""

    scope_resource = "datasource"
    queryset = ChangePlan.objects.none()
    serializer_class = s.PlanSerializer
    filter_backends: list = []

    def list(self, request: Request, pk: str) -> Response:
        page = self.paginate_queryset(plans.open_plans(require_actor(request), pk))
        return self.get_paginated_response(s.PlanSerializer(page, many=True).data)

    def create(self, request: Request, pk: str) -> Response:
        actor = require_actor(request)
        require_no_query(request, NO_QUERY)
        try:
            data = _patch_body(request.data)
        except APIException:
            data_source_for_actor(actor, pk)  # an unknown id is a 404 before the body's 400
            raise
        plan = plans.create_plan(actor=actor, data_source_id=pk, data=data)
        return Response(s.PlanDetailSerializer(plan).data, status=status.HTTP_201_CREATED,
                        headers={"Location": f"/api/v1/data-sources/{plan.data_source_id}/plans/{plan.public_id}/"})

    @docs.restore_plan
    def restore_plan(self, request: Request, pk: str, number: str) -> Response:
        require_no_query(request, NO_QUERY)
        require_no_body(request)
        plan = plans.create_restore_plan(actor=require_actor(request), data_source_id=pk, number=number)
        return Response(s.PlanDetailSerializer(plan).data, status=status.HTTP_201_CREATED,
                        headers={"Location": f"/api/v1/data-sources/{plan.data_source_id}/plans/{plan.public_id}/"})

    def retrieve(self, request: Request, pk: str, plan_id: str) -> Response:
        return Response(s.PlanDetailSerializer(plans.plan_for(require_actor(request), pk, plan_id)).data)

    def destroy(self, request: Request, pk: str, plan_id: str) -> Response:
        plans.cancel_plan(actor=require_actor(request), data_source_id=pk, plan_id=plan_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @docs.plan_apply
    def apply(self, request: Request, pk: str, plan_id: str) -> Response:
        require_no_query(request)
        require_no_body(request)
        actor = require_actor(request)
        plan, result = plans.apply_plan(actor=actor, data_source_id=pk, plan_id=plan_id)
        ds = renderable_data_source_for_actor(actor, result.data_source.pk)
        body = {**s.PlanDetailSerializer(plan).data, "data_source_after": DataSourceSerializer(ds).data}
        return Response(body, headers={"ETag": ds.etag})


@docs.change_set_viewset
class ChangeSetViewSet(viewsets.GenericViewSet):
    """``/api/v1/change-sets/``."""

    scope_resource = "datasource"
    queryset = ChangeSet.objects.none()
    serializer_class = s.ChangeSetSerializer
    filter_backends: list = []
    lookup_value_regex = "[A-Za-z0-9_-]{1,40}"

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(change_sets.change_sets_for(require_actor(request)))
        return self.get_paginated_response(s.ChangeSetSerializer(page, many=True).data)

    def create(self, request: Request) -> Response:
        require_no_query(request, NO_QUERY)
        items = request.data.get("items") if isinstance(request.data, dict) else None
        if isinstance(request.data, dict) and set(request.data) - {"items"}:
            raise serializers.ValidationError({key: ["Unknown field."] for key in set(request.data) - {"items"}})
        errors: dict[str, Any] = {}
        for index, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict) and isinstance(item.get("changes"), dict):
                try:
                    item["changes"] = _patch_body(item["changes"])
                except serializers.ValidationError as exc:
                    errors[str(index)] = {"changes": exc.detail}
        if errors:
            raise serializers.ValidationError({"items": errors})
        change_set = change_sets.create_change_set(actor=require_actor(request), items=items)
        return Response(s.ChangeSetDetailSerializer(change_set).data, status=status.HTTP_201_CREATED,
                        headers={"Location": f"/api/v1/change-sets/{change_set.public_id}/"})

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(s.ChangeSetDetailSerializer(change_sets.change_set_for(require_actor(request), pk)).data)

    @docs.change_set_apply
    def apply(self, request: Request, pk: str) -> Response:
        require_no_query(request)
        require_no_body(request)
        change_set, applied = change_sets.apply_change_set(actor=require_actor(request), change_set_id=pk)
        body = {**s.ChangeSetDetailSerializer(change_set).data,
                "applied": [{"id": ds.pk, "version": ds.version, "etag": ds.etag} for ds in applied]}
        return Response(body)
