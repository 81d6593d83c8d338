"""Redivis (seed 000): ``PATCH /api/v1/workflows/:workflowReference/dataSources/:dataSourceReference``.

A thin adapter over the repoint service: ``sourceDataset`` / ``sourceWorkflow`` / ``mappedTables``
in, the camelCase "get" representation of a dataSource out, errors in Redivis's ``{"error": ...}``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.compat import CompatView, ErrorShape, Field, IfAny, SeedRequest, Slot, Spread, Table, parse
from core.errors import InvalidRequest
from core.serializers import StrictCharField
from organizations.authentication import require_actor
from workflows.models import WorkflowDataSource
from workflows.paths import check_path
from workflows.services import repoint as repoint_service
from workflows.services.common import get_workflow, get_workflow_data_source
from workflows.services.sources import source_reference, source_repr, target_of

TAG = "compat: redivis"

#: the PATCH body over the repoint service's arguments
TABLE = Table((
    Field("sourceDataset", "source_data_source"),
    Field("sourceWorkflow", "source_workflow"),
    Field("mappedTables", "mapped_tables"),
))
#: ``{"error": {code: <HTTP status>, status: <native code>, message, errors, ...}}``
ERRORS = ErrorShape({"error": {"code": Slot.STATUS, "status": Slot.NATIVE_CODE, "message": Slot.MESSAGE,
                               "errors": IfAny(Slot.ERRORS), Spread(Slot.EXTRA): None}})


class RedivisDataSourcePatchSerializer(SeedRequest):
    """Either a sourceDataset or a sourceWorkflow, not both; mappedTables optional."""

    sourceDataset = StrictCharField(
        required=False, max_length=600, help_text="Qualified reference to the new source dataset (version/sample)."
    )
    sourceWorkflow = StrictCharField(
        required=False, max_length=600, help_text="Qualified reference to the new source workflow."
    )
    mappedTables = serializers.DictField(
        child=StrictCharField(max_length=600),
        required=False,
        help_text='Current table -> table in the new source, e.g. `{"old_table:xje9": "new_table:a842"}`.',
    )


class RedivisSourceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["dataset", "workflow"])
    id = serializers.CharField()
    name = serializers.CharField()
    qualifiedReference = serializers.CharField()
    version = serializers.CharField(allow_null=True)
    uri = serializers.CharField()


class RedivisWorkflowSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["workflow"])
    id = serializers.CharField()
    name = serializers.CharField()
    qualifiedReference = serializers.CharField()
    uri = serializers.CharField()


class RedivisDataSourceSerializer(serializers.Serializer):
    """The "get" representation of a dataSource resource."""

    kind = serializers.ChoiceField(choices=["dataSource"])
    uri = serializers.CharField()
    id = serializers.CharField()
    url = serializers.CharField()
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()
    isSample = serializers.BooleanField()
    sourceDataset = RedivisSourceSerializer(allow_null=True)
    sourceWorkflow = RedivisSourceSerializer(allow_null=True)
    workflow = RedivisWorkflowSerializer()


class RedivisErrorBodySerializer(serializers.Serializer):
    code = serializers.IntegerField(help_text="The HTTP status.")
    status = serializers.CharField(help_text="The error code of the main API, e.g. UNMAPPED_TABLES.")
    message = serializers.CharField()
    # A declared field, not Serializer.errors (DRF's metaclass takes fields out of the class body; the stub can't tell).
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()), required=False
    )


class RedivisErrorSerializer(serializers.Serializer):
    error = RedivisErrorBodySerializer()


def _workflow_uri(wds: WorkflowDataSource) -> str:
    return f"/workflows/{wds.workflow.organization.slug}.{wds.workflow.name}:{wds.workflow.reference_id}"


def represent(wds: WorkflowDataSource) -> dict[str, Any]:
    org = wds.workflow.organization.slug
    target = target_of(wds)
    source = source_repr(target, org)
    source_obj = {
        "kind": "workflow" if target.workflow is not None else "dataset",
        "id": source["reference_id"],
        "name": source["name"],
        "qualifiedReference": source_reference(target, org),
        "version": None if target.workflow is not None else (f"v{source['version']}"
                                                               if source["version"] != "current" else "current"),
        "uri": f"/{'workflows' if target.workflow is not None else 'datasets'}/{source_reference(target, org)}",
    }
    workflow = wds.workflow
    uri = f"{_workflow_uri(wds)}/dataSources/{wds.reference_id}"
    return {
        "kind": "dataSource",
        "uri": uri,
        "id": wds.reference_id,
        "url": f"/compat/redivis/api/v1{uri}",
        "createdAt": serializers.DateTimeField().to_representation(wds.created_at),
        "updatedAt": serializers.DateTimeField().to_representation(wds.updated_at),
        "isSample": wds.is_sample,
        "sourceDataset": source_obj if target.workflow is None else None,
        "sourceWorkflow": source_obj if target.workflow is not None else None,
        "workflow": {
            "kind": "workflow",
            "id": workflow.reference_id,
            "name": workflow.name,
            "qualifiedReference": f"{workflow.organization.slug}.{workflow.name}:{workflow.reference_id}",
            "uri": _workflow_uri(wds),
        },
    }


class RedivisDataSourceView(CompatView):
    scope_resource = "workflow"
    tables = (TABLE,)
    errors = ERRORS

    @extend_schema(
        operation_id="compat_redivis_datasource_patch",
        summary="Update a workflow's dataSource (Redivis)",
        description="Repoint a workflow data source to a new dataset version/sample or workflow, remapping the "
        "tables that downstream nodes read. Scope `workflow.write`.",
        tags=[TAG],
        parameters=[
            OpenApiParameter("workflowReference", str, OpenApiParameter.PATH,
                             description="`org.workflow_name[:reference_id]`, or the workflow's id. A value that is "
                                         "neither answers 404, like an unknown one."),
            OpenApiParameter("dataSourceReference", str, OpenApiParameter.PATH,
                             description="The qualified reference of the dataSource's current source "
                                         "(`org.source_name[:reference_id][:sample][:vN|:current]`), or its id. "
                                         "A value that is neither answers 404, like an unknown one."),
        ],
        request=RedivisDataSourcePatchSerializer,
        responses={
            200: RedivisDataSourceSerializer,
            **{
                status: OpenApiResponse(RedivisErrorSerializer, description=text)
                for status, text in (
                    (400, "Invalid body, UNMAPPED_TABLES, unknown table in the new source, or a cycle."),
                    (401, "Missing or invalid token."),
                    (403, "The token lacks `workflow.write` or its role cannot write."),
                    (404, "No such workflow, dataSource or new source in your organization (or a path "
                           "segment that is not a reference)."),
                    (409, "The new source is already a dataSource of the workflow."),
                    (412, "If-Match does not match the current ETag."),
                    (415, "Unsupported Content-Type."),
                    (429, "Too many requests."),
                    (500, "Server error."),
                )
            },
        },
    )
    def patch(self, request: Request, workflowReference: str, dataSourceReference: str) -> Response:
        check_path({"workflowReference": workflowReference, "dataSourceReference": dataSourceReference},
                   {"workflowReference": "workflow", "dataSourceReference": "data_source"})
        if "dry_run" in request.query_params:  # Redivis has no dry run: never apply what was meant as one
            raise InvalidRequest(
                "This endpoint has no dry run: preview the change with PATCH "
                "/api/v1/workflows/{workflow}/data-sources/{data_source}/?dry_run=true instead.",
                errors={"dry_run": ["Not supported on the Redivis endpoint."]},
            )
        native = TABLE.to_native(parse(RedivisDataSourcePatchSerializer, request.data))
        result = repoint_service.repoint(
            actor=require_actor(request),
            workflow=workflowReference,
            data_source=dataSourceReference,
            source_data_source=native.get("source_data_source"),
            source_workflow=native.get("source_workflow"),
            mapped_tables=native.get("mapped_tables"),
            if_match=request.headers.get("If-Match"),
        )
        actor = require_actor(request)
        wds = get_workflow_data_source(actor, get_workflow(actor, workflowReference), result.data_source.pk)
        response = Response(represent(wds))
        response["ETag"] = wds.etag
        return response
