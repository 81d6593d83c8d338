"""OpenAPI descriptions of the workflow endpoints (kept out of the views)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers

from workflows.api import serializers as s

try:  # the shared helper, when present, keeps every app's error documentation identical
    from config.openapi import error_responses as _shared_error_responses  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on whether config/openapi.py exists
    _shared_error_responses = None


class ErrorSerializer(serializers.Serializer):
    """Every error: a machine code, a message, per-field errors and the request id."""

    code = serializers.CharField()
    message = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    request_id = serializers.CharField(allow_null=True)


class UnmappedTableSerializer(serializers.Serializer):
    table = s.TableSerializer()
    reason = serializers.ChoiceField(choices=["missing", "ambiguous"])
    candidates = s.TableSerializer(many=True)
    nodes = serializers.ListField(child=serializers.DictField(), help_text="{id, reference_id, name} of readers.")


class RepointErrorSerializer(ErrorSerializer):
    """400 of a repoint: INVALID_REQUEST_BODY, or UNMAPPED_TABLES listing every unmapped table and its readers."""

    unmapped_tables = UnmappedTableSerializer(many=True, required=False)


class ConflictSerializer(ErrorSerializer):
    dependants = serializers.ListField(child=serializers.CharField(), required=False)
    nodes = serializers.ListField(child=serializers.CharField(), required=False)


_DESCRIPTIONS = {
    400: "Invalid body, parameter or reference (`errors` names each field and the wrong part).",
    401: "Missing or invalid credentials.",
    403: "The token lacks `workflow.read`/`workflow.write`, or the role cannot write.",
    404: "No such object in your organization (also for another organization's references).",
    409: "Conflicts with the current state (duplicate name, still used elsewhere).",
    412: "If-Match does not match the current ETag.",
}


def errors(*codes: int, bad_request: Any = ErrorSerializer, conflict: Any = ErrorSerializer) -> dict[int, Any]:
    """Error responses for ``codes`` (401 and 403 always)."""
    wanted = sorted({401, 403, *codes})
    if _shared_error_responses is not None:
        try:
            return dict(_shared_error_responses(*wanted))
        except TypeError:
            pass
    by_code = {400: bad_request, 409: conflict}
    return {c: OpenApiResponse(by_code.get(c, ErrorSerializer), description=_DESCRIPTIONS[c]) for c in wanted}


def _path(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, str, OpenApiParameter.PATH, description=description)


WORKFLOW = _path("workflow", "Workflow id, or its qualified reference `org.workflow_name[:reference_id]`.")
DATA_SOURCE = _path(
    "data_source",
    "Workflow data source id, or the qualified reference of its current source "
    "(`org.source_name[:reference_id][:sample][:vN|:current]` or `org.workflow_name[:reference_id]`).",
)
NODE = _path("node", "Node id, or `node_name[:reference_id]`.")
TABLE = _path("table", "`table_name[:reference_id]` of an output table.")
IF_MATCH = OpenApiParameter(
    "If-Match", str, OpenApiParameter.HEADER, required=False,
    description="An ETag from an earlier response; 412 if stale."
)
DRY_RUN = OpenApiParameter(
    "dry_run", bool, OpenApiParameter.QUERY, required=False, description="Answer the plan and change nothing."
)

REPOINT_RESPONSE = PolymorphicProxySerializer(
    component_name="DataSourcePatchResult",
    serializers=[s.WorkflowDataSourceSerializer, s.RepointPlanSerializer],
    resource_type_field_name=None,
)
SEED_EXAMPLE = OpenApiExample(
    "New version with a renamed table",
    value={"source_data_source": "acme.shop:xje9:v2", "mapped_tables": {"old_table:xje9": "new_table:a842"}},
    request_only=True,
)

workflow_viewset = extend_schema_view(
    list=extend_schema(summary="List workflows", responses={200: s.WorkflowSerializer(many=True), **errors()}),
    create=extend_schema(
        summary="Create a workflow", request=s.WorkflowWriteSerializer,
        responses={201: s.WorkflowSerializer, **errors(400, 409)},
    ),
    retrieve=extend_schema(summary="Get a workflow", parameters=[WORKFLOW],
                           responses={200: s.WorkflowSerializer, **errors(400, 404)}),
    update=extend_schema(
        summary="Replace a workflow", parameters=[WORKFLOW, IF_MATCH], request=s.WorkflowWriteSerializer,
        responses={200: s.WorkflowSerializer, **errors(400, 404, 409, 412)},
    ),
    partial_update=extend_schema(
        summary="Update a workflow", parameters=[WORKFLOW, IF_MATCH], request=s.WorkflowWriteSerializer,
        responses={200: s.WorkflowSerializer, **errors(400, 404, 409, 412)},
    ),
    destroy=extend_schema(
        summary="Delete a workflow", description="409 names the workflows that still use it as a source.",
        parameters=[WORKFLOW, IF_MATCH],
        responses={204: None, **errors(400, 404, 409, 412, conflict=ConflictSerializer)},
    ),
)

data_source_viewset = extend_schema_view(
    list=extend_schema(summary="List a workflow's data sources", parameters=[WORKFLOW],
                       responses={200: s.WorkflowDataSourceSerializer(many=True), **errors(400, 404)}),
    create=extend_schema(
        summary="Add a data source to a workflow", parameters=[WORKFLOW], request=s.SourceWriteSerializer,
        responses={201: s.WorkflowDataSourceSerializer, **errors(400, 404, 409)},
    ),
    retrieve=extend_schema(summary="Get a workflow data source", parameters=[WORKFLOW, DATA_SOURCE],
                           responses={200: s.WorkflowDataSourceSerializer, **errors(400, 404)}),
    partial_update=extend_schema(
        summary="Repoint a workflow data source",
        description=(
            "Point the data source at a new source (another version, a sample, another data source or a "
            "workflow) and remap every table its nodes read: explicit `mapped_tables` entries first, then the "
            "same reference id (same source only), then the same name. Tables nobody reads need no mapping. "
            "`?dry_run=true` answers the plan and changes nothing; otherwise every node reference is rewritten "
            "in one transaction and the data source's representation is answered."
        ),
        parameters=[WORKFLOW, DATA_SOURCE, IF_MATCH, DRY_RUN], request=s.RepointSerializer,
        examples=[SEED_EXAMPLE],
        responses={200: REPOINT_RESPONSE, **errors(400, 404, 409, 412, bad_request=RepointErrorSerializer)},
    ),
    destroy=extend_schema(
        summary="Remove a workflow data source", description="409 names the nodes that still read it.",
        parameters=[WORKFLOW, DATA_SOURCE, IF_MATCH],
        responses={204: None, **errors(400, 404, 409, 412, conflict=ConflictSerializer)},
    ),
)

node_viewset = extend_schema_view(
    list=extend_schema(summary="List a workflow's nodes", parameters=[WORKFLOW],
                       responses={200: s.NodeSerializer(many=True), **errors(400, 404)}),
    create=extend_schema(summary="Create a node", parameters=[WORKFLOW], request=s.NodeWriteSerializer,
                         responses={201: s.NodeSerializer, **errors(400, 404, 409)}),
    retrieve=extend_schema(summary="Get a node", parameters=[WORKFLOW, NODE],
                           responses={200: s.NodeSerializer, **errors(400, 404)}),
    partial_update=extend_schema(
        summary="Update a node", parameters=[WORKFLOW, NODE, IF_MATCH], request=s.NodeWriteSerializer,
        responses={200: s.NodeSerializer, **errors(400, 404, 409, 412)},
    ),
    destroy=extend_schema(summary="Delete a node", parameters=[WORKFLOW, NODE, IF_MATCH],
                          responses={204: None, **errors(400, 404, 409, 412, conflict=ConflictSerializer)}),
)

table_viewset = extend_schema_view(
    list=extend_schema(summary="List a workflow's output tables", parameters=[WORKFLOW],
                       responses={200: s.WorkflowTableSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="Get an output table", parameters=[WORKFLOW, TABLE],
                           responses={200: s.WorkflowTableSerializer, **errors(400, 404)}),
)
