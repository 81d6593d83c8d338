"""Thin viewsets: parse the request, call the service, render the result."""

from __future__ import annotations

from typing import Any, Literal

from django.db.models import QuerySet
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import InvalidRequest
from core.numbers import parse_ascii_int
from core.pagination import IdsFirst
from core.params import bool_param, only_query, require_no_body
from datasources import catalogue, fields
from datasources.api import openapi_docs as docs
from datasources.api.filters import DataSourceFilter
from datasources.api.health_views import HealthActionsMixin
from datasources.api.revision_views import RevisionActionsMixin, require_org_admin
from datasources.api.serializers import AuditEventSerializer, DataSourceSerializer
from datasources.api.snapshot_views import SchemaActionsMixin
from datasources.connectors.registry import connector_info
from datasources.models import DataSource
from datasources.selectors import (
    CompiledPage,
    data_source_for_actor,
    data_sources_for_actor,
    renderable_data_source_for_actor,
    rendered_after_write,
)
from datasources.services import datasources as service
from datasources.services.connection import require_passing, test_stored
from datasources.services.deletion import delete_data_source
from datasources.shapes import DataSourceWriteSerializer
from organizations.authentication import require_actor
from organizations.selectors import audit_events_for

#: The list's parameters that leave the default order and every row of the organization.
PAGING = frozenset({"page", "page_size"})


@docs.datasource_viewset
class DataSourceViewSet(
    SchemaActionsMixin,
    HealthActionsMixin,
    RevisionActionsMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    scope_resource = "datasource"
    queryset = DataSource.objects.none()  # for schema generation; get_queryset scopes to the caller
    serializer_class = DataSourceSerializer
    filterset_class = DataSourceFilter
    search_fields = ["name"]
    ordering_fields = ["id", "name", "type", "status", "created_at", "updated_at"]
    ordering = ["id"]

    def get_queryset(self) -> QuerySet[DataSource]:
        return data_sources_for_actor(require_actor(self.request))

    def _compiled_page(self) -> CompiledPage:
        """The page the request asks for, when its paging parameters are well formed (else the paginator
        refuses them, with no hint taken from them)."""
        paginator = self.paginator
        size = paginator.get_page_size(self.request) if isinstance(paginator, PageNumberPagination) else None
        number = parse_ascii_int(self.request.query_params.get("page", "1"), minimum=1, maximum=10**9)
        if size is None or number is None:
            return CompiledPage(require_actor(self.request))
        return CompiledPage(require_actor(self.request), limit=size, offset=(number - 1) * size)

    def paginate_queryset(self, queryset: Any) -> Any:
        if self.action == "list" and PAGING.issuperset(self.request.query_params.keys()):
            queryset = self._compiled_page()  # no filter, search or ordering
        elif self.action == "list":
            queryset = IdsFirst(queryset)  # the page's ids by the filters and ordering, then its rows
        return super().paginate_queryset(queryset)

    # ---- helpers -------------------------------------------------------------------------
    def get_object(self) -> DataSource:
        """One indexed fetch of the caller's organization's source: another organization's id (or a
        malformed one) is a 404. The list's filters do not apply here."""
        return renderable_data_source_for_actor(require_actor(self.request), self.kwargs["pk"])

    def _render(self, ds: DataSource, status_code: int = 200, *, changed: list[str] | None = None,
                **headers: str) -> Response:
        """``changed``: what the write that returned ``ds`` changed; the written instance is then rendered
        as it is when it carries what the representation reads (``rendered_after_write``), else re-read."""
        actor = require_actor(self.request)
        if changed is None:
            ds = renderable_data_source_for_actor(actor, ds.pk)
        else:
            ds = rendered_after_write(actor, ds, changed)
        response = Response(DataSourceSerializer(ds).data, status=status_code, headers=headers or None)
        response["ETag"] = ds.etag
        return response

    def _options(self, request: Request) -> service.WriteOptions:
        only_query(request, "dry_run", "test_connection")
        return service.WriteOptions(
            if_match=request.headers.get("If-Match"),
            dry_run=bool_param(request, "dry_run", False),
            test_connection=bool_param(request, "test_connection", True),
        )

    def _validated(self, request: Request, *, partial: bool) -> dict[str, Any]:
        """The body's cleaned values. The field specs' own check (``datasources.fields``, which the
        services apply again) passes a body when the write serializer built from them would, with the
        same values, at a fraction of its cost; the serializer runs for a refused body only, to word
        the 400 as the API always has (``tests/datasources/test_write_validation.py``)."""
        data = request.data  # parsed first: a body the parser refuses (too deep, too long) is its own 400
        try:
            return fields.validate(data, partial=partial)
        except InvalidRequest:
            pass
        serializer = DataSourceWriteSerializer(data=data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def _dry_run_response(self, result: service.WriteResult) -> Response:
        return Response(
            {
                "dry_run": True,
                "changed_fields": result.changed,
                "test": result.test.as_dict() if result.test else None,
                "impact": result.impact,
                "data_source": DataSourceSerializer(result.data_source).data,
            }
        )

    # ---- endpoints -----------------------------------------------------------------------
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        ds = self.get_object()  # the queryset is the caller's organization's: other ids are 404
        response = Response(DataSourceSerializer(ds).data)
        response["ETag"] = ds.etag
        return response

    def create(self, request: Request) -> Response:
        data = self._validated(request, partial=False)
        result = service.create_data_source(actor=require_actor(request), data=data, options=self._options(request))
        if result.dry_run:
            return self._dry_run_response(result)
        return self._render(result.data_source, 201, Location=f"/api/v1/data-sources/{result.data_source.pk}/")

    def _update(self, request: Request, pk: str, mode: Literal["patch", "put"]) -> Response:
        actor = require_actor(request)
        try:
            data = self._validated(request, partial=mode == "patch")
        except APIException:
            data_source_for_actor(actor, pk)  # an unknown id is a 404 before the body's 400
            raise
        result = service.update_data_source(
            actor=actor,
            data_source_id=pk,
            data=data,
            mode=mode,
            options=self._options(request),
        )
        if result.dry_run:
            return self._dry_run_response(result)
        return self._render(result.data_source, changed=result.changed)

    def update(self, request: Request, pk: str) -> Response:
        return self._update(request, pk, "put")

    def partial_update(self, request: Request, pk: str) -> Response:
        return self._update(request, pk, "patch")

    def destroy(self, request: Request, pk: str) -> Response:
        only_query(request, "purge")
        purge = bool_param(request, "purge", False)
        if purge:
            data_source_for_actor(require_actor(request), pk)  # another organization's id is a 404 before the 403
            require_org_admin(request)
        delete_data_source(actor=require_actor(request), data_source_id=pk, if_match=request.headers.get("If-Match"),
                           purge=purge)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["get"])
    def history(self, request: Request, pk: str) -> Response:
        events = audit_events_for(data_source_for_actor(require_actor(request), pk))
        page = self.paginate_queryset(events)
        return self.get_paginated_response(AuditEventSerializer(page, many=True).data)

    @action(detail=True, methods=["post"], url_path="test")
    def test_connection(self, request: Request, pk: str) -> Response:
        require_no_body(request)
        actor = require_actor(request)
        ds = data_source_for_actor(actor, pk)
        result = test_stored(data_source=ds, actor=actor)  # recorded (status, last_test, audit) either way
        require_passing(result, recorded=True)
        return Response(result.as_dict())


@docs.types_viewset
class DataSourceTypeViewSet(viewsets.ViewSet):
    """The type catalogue, for clients and UIs that build forms from it."""

    scope_resource = "datasource"
    lookup_value_regex = "[a-z0-9_]+"

    def list(self, request: Request) -> Response:
        return Response([_with_connector(t) for t in catalogue.CATALOGUE.values()])

    def retrieve(self, request: Request, pk: str) -> Response:
        try:
            return Response(_with_connector(catalogue.get_type(pk)))
        except KeyError:
            from core.errors import NotFound

            raise NotFound("Unknown data source type.") from None


def _with_connector(source_type: catalogue.SourceType) -> dict:
    """The catalogue entry plus what this install can do with it (driver present, tested how)."""
    return {**source_type.as_dict(), "connector_status": connector_info(source_type.key)}
