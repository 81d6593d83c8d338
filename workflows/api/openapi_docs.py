"""OpenAPI descriptions of the workflow endpoints (kept out of the views)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)

from core.errors import ErrorCode
from core.openapi import (
    ERROR_REF,
    INTEGER,
    STRING,
    array_schema,
    error_response,
    etag_header,
    if_match_parameter,
    object_schema,
)
from workflows.api import serializers as s

_DESCRIPTIONS = {
    400: "Invalid body or query parameter, a malformed reference in the body, or a reference that matches "
         "several objects (add its reference id); `errors` names each field (and the wrong part of a reference).",
    404: "No such object in your organization (also for another organization's references), or a path segment "
         "that is neither an id nor a well-formed reference.",
    409: "Conflicts with the current state (duplicate name or source, still used elsewhere).",
    412: "If-Match does not match the current ETag; read again and retry.",
}
_TABLE = object_schema(name=STRING, reference_id=STRING, reference=STRING)
_NODE = object_schema(id=INTEGER, reference_id=STRING, name=STRING)
UNMAPPED_ERROR = {
    "allOf": [
        ERROR_REF,
        {
            "type": "object",
            "description": "`UNMAPPED_TABLES` (and INVALID_REQUEST_BODY when tables are also unmapped): every "
            "table read downstream that has no table in the new source, with the nodes that read it.",
            "properties": {
                "unmapped_tables": array_schema(
                    object_schema(
                        table=_TABLE,
                        reason={"type": "string", "enum": ["missing", "ambiguous"]},
                        candidates=array_schema(_TABLE),
                        nodes=array_schema(_NODE),
                    )
                ),
            },
        },
    ]
}
DEPENDANTS_ERROR = {
    "allOf": [
        ERROR_REF,
        {
            "type": "object",
            "properties": {
                "dependants": {**array_schema(STRING), "description": "Workflows that still use it as a source."},
                "nodes": {**array_schema(STRING), "description": "Nodes that still read it."},
            },
        },
    ]
}


def exactly_one(first: str, second: str) -> dict[str, Any]:
    """``not`` (neither or both) of two string properties; ``null`` counts as absent.

    Said with ``not`` rather than a top-level ``oneOf``, which code generators read as a union of
    anonymous schemas (and then emit no model for the body)."""
    def given(name: str) -> dict[str, Any]:
        return {"required": [name], "properties": {name: {"type": "string"}}}

    return {"anyOf": [{"allOf": [{"not": given(first)}, {"not": given(second)}]},
                      {"allOf": [given(first), given(second)]}],
            "description": f"Exactly one of `{first}` and `{second}` (a `null` one counts as not given)."}


class ExactlyOneSourceExtension(OpenApiSerializerExtension):
    """Add and repoint bodies name exactly one new source: a data source or a workflow."""

    target_class = "workflows.api.serializers.SourceWriteSerializer"
    match_subclasses = True
    priority = 1  # over the compat SeedRequest extension (unknown keys refused: said here too)
    names = ("source_data_source", "source_workflow")

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["not"] = exactly_one(*self.names)
            schema["additionalProperties"] = False
        return schema


class ExactlyOneRedivisSourceExtension(ExactlyOneSourceExtension):
    target_class = "workflows.compat.redivis.RedivisDataSourcePatchSerializer"
    names = ("sourceDataset", "sourceWorkflow")


class NodeWriteExtension(OpenApiSerializerExtension):
    """On PATCH, ``output_table`` merges into the node's current one: its name may then be left out
    (a node without an output table still needs it, 400)."""

    target_class = "workflows.api.serializers.NodeWriteSerializer"

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request" and getattr(auto_schema, "method", "") == "PATCH":
            output = auto_schema._map_serializer(s.OutputTableWriteSerializer(), direction, bypass_extensions=True)
            output.pop("required", None)
            output.update(additionalProperties=False, nullable=True,
                          description="Merged into the current output table (`null` removes it); the name is "
                                      "required when the node has no output table yet.")
            schema["properties"]["output_table"] = output
        return schema


def errors(*statuses: int, bad_request: Any = None, conflict: Any = None) -> dict[int, Any]:
    """Specific error responses (the shared hook adds 401, 403, 404 on paths with ids, 429 and 500)."""
    out: dict[int, Any] = {}
    for status in statuses:
        codes = [ErrorCode.INVALID_REQUEST_BODY, ErrorCode.UNMAPPED_TABLES] if status == 400 and bad_request else []
        response = error_response(status, *codes, description=_DESCRIPTIONS[status])
        special = {400: bad_request, 409: conflict}.get(status)
        if special is not None:
            response = OpenApiResponse(response=special, description=response.description)
        out[status] = response
    return out


def _path(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, str, OpenApiParameter.PATH,
                            description=description + " A value that is neither answers 404, like an unknown one.")


WORKFLOW = _path("workflow", "Workflow id, or its qualified reference `org.workflow_name[:reference_id]`.")
DATA_SOURCE = _path(
    "data_source",
    "Workflow data source id, or the qualified reference of its current source "
    "(`org.source_name[:reference_id][:sample][:vN|:current]` or `org.workflow_name[:reference_id]`).",
)
NODE = _path("node", "Node id, or `node_name[:reference_id]`.")
TABLE = _path("table", "`table_name[:reference_id]` of an output table.")
IF_MATCH = if_match_parameter()
ETAG_200, ETAG_201 = etag_header(200), etag_header(201)
DRY_RUN = OpenApiParameter(
    "dry_run", bool, OpenApiParameter.QUERY, required=False, description="Answer the plan and change nothing."
)

def tagged(tags: list[str], view_docs: Callable[[type], type]) -> Callable[[type], type]:
    """``view_docs`` with ``tags`` on every operation of the view (Swagger UI's groups, a generated SDK's modules:
    ``api.workflows``...). Without them drf-spectacular tags an operation with its path's first segment, "api"."""
    def decorate(cls: type) -> type:
        return view_docs(extend_schema(tags=tags)(cls))
    return decorate


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

workflow_viewset = tagged(["workflows"], extend_schema_view(
    list=extend_schema(summary="List workflows", responses={200: s.WorkflowSerializer(many=True), **errors()}),
    create=extend_schema(
        summary="Create a workflow", parameters=[ETAG_201], request=s.WorkflowWriteSerializer,
        responses={201: s.WorkflowSerializer, **errors(400, 409)},
    ),
    retrieve=extend_schema(summary="Get a workflow", parameters=[WORKFLOW, ETAG_200],
                           responses={200: s.WorkflowSerializer, **errors(400, 404)}),
    update=extend_schema(
        summary="Replace a workflow", parameters=[WORKFLOW, IF_MATCH, ETAG_200], request=s.WorkflowWriteSerializer,
        responses={200: s.WorkflowSerializer, **errors(400, 404, 409, 412)},
    ),
    partial_update=extend_schema(
        summary="Update a workflow", parameters=[WORKFLOW, IF_MATCH, ETAG_200], request=s.WorkflowWriteSerializer,
        responses={200: s.WorkflowSerializer, **errors(400, 404, 409, 412)},
    ),
    destroy=extend_schema(
        summary="Delete a workflow", description="409 names the workflows that still use it as a source.",
        parameters=[WORKFLOW, IF_MATCH],
        responses={204: None, **errors(400, 404, 409, 412, conflict=DEPENDANTS_ERROR)},
    ),
))

data_source_viewset = tagged(["workflow-data-sources"], extend_schema_view(
    list=extend_schema(summary="List a workflow's data sources", parameters=[WORKFLOW],
                       responses={200: s.WorkflowDataSourceSerializer(many=True), **errors(400, 404)}),
    create=extend_schema(
        summary="Add a data source to a workflow", parameters=[WORKFLOW, ETAG_201], request=s.SourceWriteSerializer,
        responses={201: s.WorkflowDataSourceSerializer, **errors(400, 404, 409)},
    ),
    retrieve=extend_schema(summary="Get a workflow data source", parameters=[WORKFLOW, DATA_SOURCE, ETAG_200],
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
        parameters=[WORKFLOW, DATA_SOURCE, IF_MATCH, DRY_RUN, ETAG_200], request=s.RepointSerializer,
        examples=[SEED_EXAMPLE],
        responses={200: REPOINT_RESPONSE, **errors(400, 404, 409, 412, bad_request=UNMAPPED_ERROR)},
    ),
    destroy=extend_schema(
        summary="Remove a workflow data source", description="409 names the nodes that still read it.",
        parameters=[WORKFLOW, DATA_SOURCE, IF_MATCH],
        responses={204: None, **errors(400, 404, 409, 412, conflict=DEPENDANTS_ERROR)},
    ),
))

node_viewset = tagged(["workflow-nodes"], extend_schema_view(
    list=extend_schema(summary="List a workflow's nodes", parameters=[WORKFLOW],
                       responses={200: s.NodeSerializer(many=True), **errors(400, 404)}),
    create=extend_schema(summary="Create a node", parameters=[WORKFLOW, ETAG_201], request=s.NodeWriteSerializer,
                         responses={201: s.NodeSerializer, **errors(400, 404, 409)}),
    retrieve=extend_schema(summary="Get a node", parameters=[WORKFLOW, NODE, ETAG_200],
                           responses={200: s.NodeSerializer, **errors(400, 404)}),
    partial_update=extend_schema(
        summary="Update a node", parameters=[WORKFLOW, NODE, IF_MATCH, ETAG_200], request=s.NodeWriteSerializer,
        responses={200: s.NodeSerializer, **errors(400, 404, 409, 412)},
    ),
    destroy=extend_schema(summary="Delete a node", parameters=[WORKFLOW, NODE, IF_MATCH],
                          responses={204: None, **errors(400, 404, 409, 412, conflict=DEPENDANTS_ERROR)}),
))

table_viewset = tagged(["workflow-tables"], extend_schema_view(
    list=extend_schema(summary="List a workflow's output tables", parameters=[WORKFLOW],
                       responses={200: s.WorkflowTableSerializer(many=True), **errors(400, 404)}),
    retrieve=extend_schema(summary="Get an output table", parameters=[WORKFLOW, TABLE],
                           responses={200: s.WorkflowTableSerializer, **errors(400, 404)}),
))
