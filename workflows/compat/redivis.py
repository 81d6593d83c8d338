"""Redivis (seed 000): ``PATCH /api/v1/workflows/:workflowReference/dataSources/:dataSourceReference``.

A thin adapter over the repoint service: ``sourceDataset`` / ``sourceWorkflow`` / ``mappedTables``
in, the "get" representation of a dataSource out (Redivis's resource definition: ``kind``
``"datasource"``, timestamps in epoch milliseconds), errors in Redivis's ``{"error": ...}`` and words.
``GET`` on the same path answers the representation, so its ``uri`` and ``url`` lead somewhere.
Redivis's reference syntax (``v1_0``, ``next``, a dataSource's ``id``) is in ``redivis_refs``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.compat import (
    CompatView,
    ErrorShape,
    Field,
    SeedInvalidRequest,
    SeedRequest,
    Slot,
    Spread,
    Table,
    parse,
)
from core.errors import InvalidRequest, PreconditionFailed
from core.serializers import StrictCharField
from organizations.authentication import require_actor
from organizations.models import Organization
from workflows.compat import redivis_refs as refs
from workflows.models import Workflow, WorkflowDataSource
from workflows.paths import check_path
from workflows.references import render_workflow
from workflows.services import repoint as repoint_service
from workflows.services.common import etag_matches, get_workflow, get_workflow_data_source

TAG = "compat: redivis"

#: the PATCH body over the repoint service's arguments; ``null`` is "not given" (generated SDKs send
#: null for the fields they leave unset), so ``{"sourceDataset": null, "sourceWorkflow": ...}`` names one
#: source and a body with both null names none (the seed's 400)
TABLE = Table((
    Field("sourceDataset", "source_data_source"),
    Field("sourceWorkflow", "source_workflow"),
    Field("mappedTables", "mapped_tables"),
), null_is_absent=True, names={"workflow": "workflowReference", "data_source": "dataSourceReference"})
#: ``{"error": {code: <HTTP status>, status: <native code>, message, errors, ...}}``
ERRORS = ErrorShape({"error": {"code": Slot.STATUS, "status": Slot.NATIVE_CODE, "message": Slot.MESSAGE,
                               "errors": Slot.ERRORS, Spread(Slot.EXTRA): None}})


class RedivisDataSourcePatchSerializer(SeedRequest):
    """Either a sourceDataset or a sourceWorkflow, not both; mappedTables optional. ``null`` is the
    same as leaving a field out."""

    sourceDataset = StrictCharField(
        required=False, allow_null=True, max_length=600,
        help_text="Qualified reference to the new source dataset (version/sample). `null`: not given.",
    )
    sourceWorkflow = StrictCharField(
        required=False, allow_null=True, max_length=600,
        help_text="Qualified reference to the new source workflow. `null`: not given.",
    )
    mappedTables = serializers.DictField(
        child=StrictCharField(max_length=600),
        required=False, allow_null=True,
        help_text='Current table -> table in the new source, e.g. `{"old_table:xje9": "new_table:a842"}`. '
                  "`null`: not given (automatic mapping only).",
    )


class RedivisOwnerSerializer(serializers.Serializer):
    """The owner of a dataset or workflow: here always the organization."""

    kind = serializers.ChoiceField(choices=["organization"])
    id = serializers.CharField()
    name = serializers.CharField(help_text="The organization's slug, the owner part of every reference.")
    fullName = serializers.CharField()


class RedivisDatasetSerializer(serializers.Serializer):
    """Redivis's dataset "base" definition for the data source a dataSource reads, at its version."""

    kind = serializers.ChoiceField(choices=["dataset"])
    id = serializers.CharField(help_text="The data source's reference id.")
    qualifiedReference = serializers.CharField(help_text="`org.name:referenceId[:sample]:v2_0|:current`.")
    scopedReference = serializers.CharField()
    referenceId = serializers.CharField()
    name = serializers.CharField()
    url = serializers.CharField(help_text="Where the data source is read here (the main API).")
    uri = serializers.CharField()
    doi = serializers.CharField(allow_null=True, help_text="Always null: data sources have no DOI.")
    owner = RedivisOwnerSerializer()
    version = serializers.CharField(help_text="The version read: `v2.0` (schema version 2), or `current`.")


class RedivisWorkflowSerializer(serializers.Serializer):
    """Redivis's workflow "base" definition."""

    kind = serializers.ChoiceField(choices=["workflow"])
    id = serializers.CharField(help_text="The workflow's reference id.")
    qualifiedReference = serializers.CharField(help_text="`org.name:referenceId`.")
    scopedReference = serializers.CharField()
    referenceId = serializers.CharField()
    name = serializers.CharField()
    url = serializers.CharField(help_text="Where the workflow is read here (the main API).")
    uri = serializers.CharField()
    owner = RedivisOwnerSerializer()


class RedivisDataSourceSerializer(serializers.Serializer):
    """The "get" representation of a dataSource resource."""

    kind = serializers.ChoiceField(choices=["datasource"])
    uri = serializers.CharField(help_text="`/workflows/{workflow}/dataSources/{id}`: this API's base URL plus "
                                          "`uri` is the dataSource (GET, PATCH).")
    id = serializers.CharField(help_text="The dataSource's id (a reference id); it works as `dataSourceReference`.")
    url = serializers.CharField(help_text="The absolute URL of this dataSource on this API (GET, PATCH).")
    createdAt = serializers.IntegerField(help_text="Milliseconds since the Unix epoch.")
    updatedAt = serializers.IntegerField(help_text="Milliseconds since the Unix epoch.")
    isSample = serializers.BooleanField()
    sourceDataset = RedivisDatasetSerializer(allow_null=True)
    sourceWorkflow = RedivisWorkflowSerializer(allow_null=True)
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


BASE = "/compat/redivis/api/v1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def millis(moment: datetime) -> int:
    """A timestamp as Redivis gives them: integer milliseconds since the Unix epoch."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _link(request: Request | None, path: str) -> str:
    """An absolute URL on this server for a path (relative without a request)."""
    path = quote(path, safe="/:.~_-")
    return request.build_absolute_uri(path) if request is not None else path


def _owner(org: Organization) -> dict[str, Any]:
    return {"kind": "organization", "id": str(org.pk), "name": org.slug, "fullName": org.name}


def _workflow(workflow: Workflow, org: Organization, request: Request | None) -> dict[str, Any]:
    """Redivis's workflow "base" (``org``: the dataSource's organization, the only one a source can be in)."""
    qualified = render_workflow(org.slug, workflow.name, workflow.reference_id)
    return {
        "kind": "workflow",
        "id": workflow.reference_id,
        "qualifiedReference": qualified,
        "scopedReference": qualified.split(".", 1)[1],
        "referenceId": workflow.reference_id,
        "name": workflow.name,
        "url": _link(request, f"/api/v1/workflows/{workflow.pk}/"),
        "uri": quote(f"/workflows/{qualified}", safe="/:.~_-"),
        "owner": _owner(org),
    }


def _dataset(wds: WorkflowDataSource, request: Request | None) -> dict[str, Any]:
    source = wds.source_data_source
    assert source is not None
    org = wds.workflow.organization
    qualified = refs.dataset_reference(org.slug, source, sample=wds.is_sample, version=wds.source_version)
    return {
        "kind": "dataset",
        "id": source.reference_id,
        "qualifiedReference": qualified,
        "scopedReference": qualified.split(".", 1)[1],
        "referenceId": source.reference_id,
        "name": source.name,
        "url": _link(request, f"/api/v1/data-sources/{source.pk}/"),
        "uri": quote(f"/datasets/{qualified}", safe="/:.~_-"),
        "doi": None,
        "owner": _owner(org),
        "version": refs.tag(wds.source_version),
    }


def uri_of(wds: WorkflowDataSource) -> str:
    """``/workflows/{workflow}/dataSources/{id}``: appended to this API's base URL, the dataSource itself."""
    return quote(f"/workflows/{refs.workflow_reference(wds.workflow)}/dataSources/{wds.reference_id}", safe="/:.~_-")


def represent(wds: WorkflowDataSource, request: Request | None = None) -> dict[str, Any]:
    """The "get" representation of a dataSource (Redivis's resource definition)."""
    uri = uri_of(wds)
    org = wds.workflow.organization
    return {
        "kind": "datasource",
        "uri": uri,
        "id": wds.reference_id,
        "url": _link(request, BASE + uri),
        "createdAt": millis(wds.created_at),
        "updatedAt": millis(wds.updated_at),
        "isSample": wds.is_sample,
        "sourceDataset": _dataset(wds, request) if wds.source_data_source_id is not None else None,
        "sourceWorkflow": _workflow(wds.source_workflow, org, request) if wds.source_workflow is not None else None,
        "workflow": _workflow(wds.workflow, org, request),
    }


WORKFLOW_PARAMETER = OpenApiParameter(
    "workflowReference", str, OpenApiParameter.PATH,
    description="`org.workflow_name[:referenceId]` (the `qualifiedReference` of the workflow), or the workflow's "
                "integer id. A value that is neither answers 404, like an unknown one.")
DATA_SOURCE_PARAMETER = OpenApiParameter(
    "dataSourceReference", str, OpenApiParameter.PATH,
    description="The dataSource's `id` (as this API returns it), or the qualified reference of its current source "
                "dataset or workflow (`org.name[:referenceId][:sample][:v1_0|:v1.0|:v1|:current|:next]`; `next` is "
                "the newest schema version, pinned), or its integer id (the `id` wins). A value that is none of "
                "these answers 404, like an unknown one.")
NOT_FOUND = "No such workflow, dataSource or new source in your organization (or a path segment that names nothing)."


def _errors(*pairs: tuple[int, str]) -> dict[int, OpenApiResponse]:
    return {status: OpenApiResponse(RedivisErrorSerializer, description=text) for status, text in pairs}


class RedivisDataSourceView(CompatView):
    scope_resource = "workflow"
    tables = (TABLE,)
    errors = ERRORS

    def handle_error(self, exc: Exception, context: dict) -> Response | None:
        """The seed's shape (CompatView), then the seed's words in messages and extras."""
        response = super().handle_error(exc, context)
        if response is not None and isinstance(response.data, dict) and isinstance(response.data.get("error"), dict):
            response.data = {**response.data, "error": refs.seed_error(response.data["error"])}
        return response

    def _resolve(self, request: Request, workflow_ref: str, data_source_ref: str) -> WorkflowDataSource:
        actor = require_actor(request)
        workflow = get_workflow(actor, workflow_ref, field="workflowReference")
        return refs.find_data_source(actor, workflow, data_source_ref)

    @staticmethod
    def _check_path(workflow_ref: str, data_source_ref: str) -> None:
        check_path({"workflowReference": workflow_ref}, {"workflowReference": "workflow"})
        refs.check_data_source_path(data_source_ref)

    @staticmethod
    def _answer(wds: WorkflowDataSource, request: Request) -> Response:
        response = Response(represent(wds, request))
        response["ETag"] = wds.etag
        return response

    @extend_schema(
        operation_id="compat_redivis_datasource_get",
        summary="Get a workflow's dataSource (Redivis)",
        description="The \"get\" representation of a dataSource: what its `uri` and `url` lead to. Scope "
                    "`workflow.read`.",
        tags=[TAG],
        parameters=[WORKFLOW_PARAMETER, DATA_SOURCE_PARAMETER],
        responses={
            200: RedivisDataSourceSerializer,
            **_errors((400, "The reference matches several dataSources (use the id)."),
                      (401, "Missing or invalid token."), (403, "The token lacks `workflow.read`."),
                      (404, NOT_FOUND), (429, "Too many requests."), (500, "Server error.")),
        },
    )
    def get(self, request: Request, workflowReference: str, dataSourceReference: str) -> Response:
        self._check_path(workflowReference, dataSourceReference)
        return self._answer(self._resolve(request, workflowReference, dataSourceReference), request)

    @extend_schema(
        operation_id="compat_redivis_datasource_patch",
        summary="Update a workflow's dataSource (Redivis)",
        description="Repoint a workflow data source to a new dataset version/sample or workflow, remapping the "
        "tables that downstream nodes read. Scope `workflow.write`.",
        tags=[TAG],
        parameters=[WORKFLOW_PARAMETER, DATA_SOURCE_PARAMETER],
        request=RedivisDataSourcePatchSerializer,
        responses={
            200: RedivisDataSourceSerializer,
            **_errors(
                (400, "Invalid body, UNMAPPED_TABLES, unknown table in the new source, a cycle, or a reference "
                      "matching several dataSources."),
                (401, "Missing or invalid token."),
                (403, "The token lacks `workflow.write` or its role cannot write."),
                (404, NOT_FOUND),
                (409, "The new source is already a dataSource of the workflow."),
                (412, "If-Match does not match the current ETag."),
                (415, "Unsupported Content-Type."),
                (429, "Too many requests."),
                (500, "Server error."),
            ),
        },
    )
    def patch(self, request: Request, workflowReference: str, dataSourceReference: str) -> Response:
        self._check_path(workflowReference, dataSourceReference)
        if "dry_run" in request.query_params:  # Redivis has no dry run: never apply what was meant as one
            raise InvalidRequest(
                "This endpoint has no dry run: preview the change with PATCH "
                "/api/v1/workflows/{workflow}/data-sources/{id}/?dry_run=true on the main API instead.",
                errors={"dry_run": ["Not supported on the Redivis endpoint."]},
            )
        native = TABLE.to_native(parse(RedivisDataSourcePatchSerializer, request.data))
        actor = require_actor(request)
        wds = self._resolve(request, workflowReference, dataSourceReference)
        if_match = request.headers.get("If-Match")
        if not etag_matches(wds, if_match):  # before the new source is resolved, as natively
            raise PreconditionFailed()
        source_dataset, source_workflow = native.get("source_data_source"), native.get("source_workflow")
        if (source_dataset is None) == (source_workflow is None):
            message = "Either a sourceDataset or sourceWorkflow must be provided, but not both."
            raise SeedInvalidRequest(message, errors={"sourceDataset": [message], "sourceWorkflow": [message]})
        result = repoint_service.repoint(
            actor=actor,
            workflow=wds.workflow_id,
            data_source=wds.pk,
            source_data_source=None if source_dataset is None else refs.native_source(actor, source_dataset),
            source_workflow=None if source_workflow is None else refs.native_workflow(source_workflow),
            mapped_tables=native.get("mapped_tables"),
            if_match=if_match,
        )
        return self._answer(get_workflow_data_source(actor, wds.workflow, result.data_source.pk), request)
