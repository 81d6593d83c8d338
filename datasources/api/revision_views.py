"""Revisions of a data source (``.../revisions/``, mixed into the data-source viewset) and the trash
of deleted data sources (``/api/v1/data-source-trash/``). The semantics live in
``datasources.services.revisions``, ``restore`` and ``deletion``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.openapi import NO_BODY, error_response, etag_header, if_match_parameter, ref
from core.params import bool_param, only_query, require_no_body
from datasources.api.openapi_docs import UPDATE_400_CODES
from datasources.api.serializers import DataSourceSerializer
from datasources.models import DataSourceRevision, RevisionAction, TrashedDataSource
from datasources.selectors import data_source_for_actor, renderable_data_source_for_actor
from datasources.services import deletion, revisions
from datasources.services.datasources import WriteOptions
from datasources.services.restore import restore_revision
from organizations.authentication import require_actor

TAGS = ["data-sources"]
NUMBER = OpenApiParameter("number", int, OpenApiParameter.PATH, description="The revision's number.")


class RevisionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    action = serializers.ChoiceField(choices=RevisionAction.choices)
    created_at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_repr", help_text="Who applied the change (a label).")
    changed = serializers.ListField(child=serializers.CharField(), help_text="Fields the change set.")
    secrets_changed = serializers.ListField(child=serializers.CharField(),
                                            help_text="Secrets the change set or cleared (names only).")
    audit_event = serializers.IntegerField(source="audit_event_id", allow_null=True)


class RevisionDetailSerializer(RevisionSerializer):
    config = serializers.DictField(help_text="The configuration after the change (no secret).")
    secret_names = serializers.ListField(child=serializers.CharField(), help_text="Secrets set after the change.")
    diff = serializers.DictField(help_text="What restoring it would change: dotted paths with the current (`old`) "
                                           "and the revision's (`new`) values; secrets as `changed`, `set` or "
                                           "`cleared`, never their values.")


class TrashedSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="data_source_id")
    reference_id = serializers.CharField()
    name = serializers.CharField()
    type = serializers.CharField()
    created_at = serializers.DateTimeField()
    deleted_at = serializers.DateTimeField()
    deleted_by = serializers.CharField()
    purge_after = serializers.DateTimeField(help_text="When it is purged for good (DATASOURCE_TRASH_DAYS).")


class RevisionActionsMixin:
    """``.../revisions/``: the same read scope and 404s as the detail; restoring is a write."""

    @extend_schema(tags=TAGS, summary="List the revisions of a data source",
                   description="Every applied create/update/restore, newest first, within the organization's "
                               "retention (`revisions_keep`, `revisions_keep_days`).",
                   responses={200: RevisionSerializer(many=True)})
    @action(detail=True, methods=["get"], url_path="revisions", filter_backends=[])  # paged, not filtered
    def revisions(self, request: Request, pk: str) -> Response:
        ds = data_source_for_actor(require_actor(request), pk)
        page = self.paginate_queryset(revisions.revisions_of(ds))  # type: ignore[attr-defined]
        return self.get_paginated_response(RevisionSerializer(page, many=True).data)  # type: ignore[attr-defined]

    @extend_schema(tags=TAGS, summary="Get a revision with its diff against the current state",
                   parameters=[NUMBER], responses={200: RevisionDetailSerializer, 404: error_response(404)})
    @action(detail=True, methods=["get"], url_path=r"revisions/(?P<number>[0-9]{1,9})")
    def revision(self, request: Request, pk: str, number: str) -> Response:
        ds = data_source_for_actor(require_actor(request), pk)
        revision = revisions.revision_of(ds, number)
        body = {**_fields(revision), "config": revision.config, "secret_names": revision.secret_names,
                "diff": revisions.diff_against_current(ds, revision)}
        return Response(RevisionDetailSerializer(body).data)

    @extend_schema(
        tags=TAGS, summary="Restore a revision", request=None,
        parameters=[NUMBER, if_match_parameter(), etag_header(200),
                    OpenApiParameter("dry_run", bool, default=False,
                                     description="Validate, test and report the impact; save nothing.")],
        description="An update to the revision's configuration and secrets (a PUT through the normal update: "
                    "validated, the connection tested before anything is applied, If-Match honoured), audited "
                    "as `restore` and recorded as a new `restore` revision. Answers the data source, or with "
                    "`dry_run=true` a DataSourceDryRun with the impact report.",
        responses={200: OpenApiResponse({"oneOf": [ref("DataSource"), ref("DataSourceDryRun")]},
                                        description="The data source after the restore (a DataSourceDryRun with "
                                                    "`dry_run=true`)."),
                   400: error_response(400, *UPDATE_400_CODES, description=(
                       "A body was sent (this action takes none), the revision's configuration is refused as a "
                       "PUT of it would be, or its connection test failed. Nothing was changed.")),
                   404: error_response(404), 409: error_response(409), 412: error_response(412),
                   429: error_response(429)},
    )
    @action(detail=True, methods=["post"], url_path=r"revisions/(?P<number>[0-9]{1,9})/restore")
    def revision_restore(self, request: Request, pk: str, number: str) -> Response:
        require_no_body(request)
        only_query(request, "dry_run")
        options = WriteOptions(if_match=request.headers.get("If-Match"),
                               dry_run=bool_param(request, "dry_run", False))
        result = restore_revision(actor=require_actor(request), data_source_id=pk, number=number, options=options)
        if result.dry_run:
            return self._dry_run_response(result)  # type: ignore[attr-defined]
        return self._render(result.data_source)  # type: ignore[attr-defined]


def _fields(revision: DataSourceRevision) -> dict[str, Any]:
    return {"number": revision.number, "action": revision.action, "created_at": revision.created_at,
            "actor_repr": revision.actor_repr, "changed": revision.changed,
            "secrets_changed": revision.secrets_changed, "audit_event_id": revision.audit_event_id}


def require_org_admin(request: Request) -> None:
    if not require_actor(request).is_org_admin:
        raise exceptions.PermissionDenied("Purging needs the owner or admin role.")


#: The trashed source's id: the data source's own (an integer, as in /api/v1/data-sources/{id}/).
TRASH_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The deleted data source's id.")


class DataSourceTrashViewSet(viewsets.GenericViewSet):
    """Deleted data sources, restorable until `purge_after`."""

    scope_resource = "datasource"
    queryset = TrashedDataSource.objects.none()
    serializer_class = TrashedSerializer
    lookup_value_regex = "[0-9]{1,18}"
    filter_backends: list = []

    @extend_schema(tags=TAGS, summary="List deleted data sources (the trash)")
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(deletion.trash_for_actor(require_actor(request)))
        return self.get_paginated_response(TrashedSerializer(page, many=True).data)

    @extend_schema(tags=TAGS, summary="Get a deleted data source", parameters=[TRASH_ID],
                   responses={200: TrashedSerializer,
                                                                              404: error_response(404)})
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(TrashedSerializer(deletion.trashed_for_actor(require_actor(request), pk)).data)

    @extend_schema(tags=TAGS, summary="Purge a deleted data source for good",
                   description="Deletes the trashed copy and every revision (with their secrets). Owners and "
                               "admins.", parameters=[TRASH_ID],
                   responses={204: None, 403: error_response(403), 404: error_response(404)})
    def destroy(self, request: Request, pk: str) -> Response:
        deletion.trashed_for_actor(require_actor(request), pk)  # another organization's id is a 404 before the 403
        require_org_admin(request)
        deletion.purge_from_trash(actor=require_actor(request), data_source_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(tags=TAGS, summary="Restore a deleted data source", request=None,
                   description="Re-creates it with the same id (and reference id, unless a new source took it), "
                               "its secrets, tenancy settings and revisions; `pending` until tested; its schema is "
                               "cached again by a refresh. 409 while another source has its name.",
                   parameters=[TRASH_ID, etag_header(201), OpenApiParameter(
                       "Location", str, OpenApiParameter.HEADER, response=[201],
                       description="URL of the restored data source.")],
                   responses={201: OpenApiResponse(DataSourceSerializer, description="The restored data source."),
                              400: error_response(400, description=NO_BODY), 404: error_response(404),
                              409: error_response(409)})
    @action(detail=True, methods=["post"])
    def restore(self, request: Request, pk: str) -> Response:
        require_no_body(request)
        actor = require_actor(request)
        ds = deletion.restore_from_trash(actor=actor, data_source_id=pk)
        ds = renderable_data_source_for_actor(actor, ds.pk)
        return Response(DataSourceSerializer(ds).data, status=status.HTTP_201_CREATED,
                        headers={"Location": f"/api/v1/data-sources/{ds.pk}/", "ETag": ds.etag})
