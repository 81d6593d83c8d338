"""Schema-cache and tenancy endpoints of a data source (mixed into DataSourceViewSet)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import InvalidRequest, NotFound
from core.numbers import parse_ascii_int
from core.params import require_no_body, single_param
from datasources.models import DataSource, SchemaSnapshot
from datasources.selectors import data_source_for_actor, schema_snapshot, schema_snapshots
from datasources.services import datasources as service
from datasources.services import tenancy
from datasources.services.connection import sync_schema
from datasources.services.snapshot_diff import diff_snapshots
from datasources.shapes import PatchedTenancySettingsSerializer, TenancySettingsSerializer
from organizations.authentication import require_actor


def _int_param(request: Request, name: str) -> int | None:
    raw = single_param(request, name)
    if raw is None:
        return None
    value = parse_ascii_int(raw, minimum=1)
    if value is None:
        raise InvalidRequest(f"'{name}' must be a positive integer.", errors={name: ["Must be a positive integer."]})
    return value


def schema_status_of(ds: DataSource) -> dict[str, Any]:
    """The schema cache's state: pending, refreshing, ready or failed, with its times and error."""
    return {
        "status": ds.schema_status,
        "version": ds.schema_version,
        "table_count": ds.schema_table_count,
        "refreshed_at": ds.schema_refreshed_at,
        "status_changed_at": ds.schema_status_at,
        "checked_at": ds.schema_checked_at,
        "error": ds.schema_error,
    }


def _snapshot_summary(s: SchemaSnapshot) -> dict[str, Any]:
    return {"version": s.version, "created_at": s.created_at, "table_count": s.table_count}


class SchemaActionsMixin:
    """/sync/, /schema/, /schema/versions/, /schema/diff/, /tenancy/."""

    if TYPE_CHECKING:  # DataSourceViewSet's, which this is mixed into

        def _render(self, ds: DataSource, status_code: int = 200, *, changed: list[str] | None = None,
                    **headers: str) -> Response: ...

    def _ds(self, request: Request, pk: str) -> DataSource:
        return data_source_for_actor(require_actor(request), pk)

    @action(detail=True, methods=["post"])
    def sync(self, request: Request, pk: str) -> Response:
        require_no_body(request)
        ds = self._ds(request, pk)
        sync_schema(data_source=ds)
        return self._render(ds)

    # Not named `schema`: that attribute is DRF's AutoSchema on every view.
    @action(detail=True, methods=["get"], url_path="schema")
    def schema_snapshot(self, request: Request, pk: str) -> Response:
        snapshot = schema_snapshot(self._ds(request, pk), _int_param(request, "version"))
        tables = [
            {"reference_id": t.reference_id, "schema": t.schema, "name": t.name, "kind": t.kind, "columns": t.columns}
            for t in snapshot.tables.all()
        ]
        return Response({**_snapshot_summary(snapshot), "tables": tables})

    @action(detail=True, methods=["get"], url_path="schema/status")
    def schema_status(self, request: Request, pk: str) -> Response:
        ds = self._ds(request, pk)
        return Response(schema_status_of(ds))

    @action(detail=True, methods=["get"], url_path="schema/versions")
    def schema_versions(self, request: Request, pk: str) -> Response:
        return Response([_snapshot_summary(s) for s in schema_snapshots(self._ds(request, pk))])

    @action(detail=True, methods=["get"], url_path="schema/diff")
    def schema_diff(self, request: Request, pk: str) -> Response:
        ds = self._ds(request, pk)
        to_version = _int_param(request, "to")
        new = schema_snapshot(ds, to_version)
        from_version = _int_param(request, "from") or (new.version - 1 if new.version > 1 else None)
        if from_version is None:
            raise InvalidRequest("There is no earlier version to compare with.", errors={"from": ["Required."]})
        return Response(diff_snapshots(schema_snapshot(ds, from_version), new))

    @action(detail=True, methods=["get", "put", "patch", "delete"])
    def tenancy(self, request: Request, pk: str) -> Response:
        actor = require_actor(request)
        ds = data_source_for_actor(actor, pk)
        if request.method == "GET":
            current = tenancy.current(ds)
            if current is None:
                raise NotFound("This data source has no tenancy settings.")
            response = Response(current)
            response["ETag"] = ds.etag
            return response
        if request.method == "DELETE":
            if tenancy.current(ds) is None:
                raise NotFound("This data source has no tenancy settings.")
            body: dict[str, Any] | None = None
        else:
            cls = TenancySettingsSerializer if request.method == "PUT" else PatchedTenancySettingsSerializer
            serializer = cls(data=request.data)
            serializer.is_valid(raise_exception=True)
            body = dict(serializer.validated_data)
        options = service.WriteOptions(
            if_match=request.headers.get("If-Match"), tenancy_replace=request.method == "PUT", test_connection=False,
            method=request.method,
        )
        result = service.update_data_source(
            actor=actor, data_source_id=ds.pk, data={"tenancy_settings": body}, mode="patch", options=options
        )
        if body is None:
            response = Response(status=204)
        else:
            response = Response(tenancy.current(result.data_source))
        response["ETag"] = result.data_source.etag
        return response
