"""Health monitoring endpoints: ``GET /api/v1/data-sources/{id}/health/`` (mixed into the data-source
viewset) and the organization's ``GET/PATCH /api/v1/health-settings/``. Semantics live in
``datasources.services.health``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ErrorCode as C
from core.openapi import error_response
from datasources.models import HealthOutcome, HealthState
from datasources.selectors import health_history, health_of_for_actor
from datasources.services import health
from datasources.shapes import SpecSerializer
from organizations.authentication import require_actor

TAGS = ["data-sources"]
SETTINGS_TAGS = ["health-settings"]


class HealthCheckSerializer(serializers.Serializer):
    checked_at = serializers.DateTimeField()
    outcome = serializers.ChoiceField(choices=HealthOutcome.choices)
    stage = serializers.CharField(allow_null=True, help_text="The failing stage; null for a pass.")
    duration_ms = serializers.IntegerField()
    code = serializers.CharField(allow_null=True, help_text="The failure's error code; null for a pass.")


class HealthIntervalSerializer(serializers.Serializer):
    seconds = serializers.IntegerField(allow_null=True, help_text="Null when checks are off.")
    source = serializers.ChoiceField(  # type: ignore[assignment]  # a declared field, not Field.source
        choices=["source", "organization", "off"],
        help_text="`source`: the data source's `health_check_interval`; `organization`: its organization's "
                  "default (the source's is null); `off`: neither sets one (or the source's is 0).")


class DataSourceHealthSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=HealthState.choices,
        help_text="`unknown` until the first check; `healthy` after a passing check; `failing` after "
                  "`failure_threshold` consecutive failed checks.")
    since = serializers.DateTimeField(allow_null=True, help_text="When the state last changed.")
    checked_at = serializers.DateTimeField(allow_null=True, help_text="When the last check finished.")
    consecutive_failures = serializers.IntegerField()
    interval = HealthIntervalSerializer()
    failure_threshold = serializers.IntegerField(help_text="The organization's `health_failure_threshold`.")
    history = HealthCheckSerializer(many=True, help_text="The last checks kept (HEALTH_HISTORY_SIZE), newest first.")


class HealthSettingsSerializer(serializers.Serializer):
    health_check_interval = serializers.IntegerField(
        allow_null=True, help_text=health.ORGANIZATION_INTERVAL.help)
    health_failure_threshold = serializers.IntegerField(help_text=health.FAILURE_THRESHOLD.help)


class HealthSettingsRequestSerializer(SpecSerializer):
    """The PATCH body (every field optional): the specs' bounds; the services check them again."""

    specs = health.SETTINGS_FIELDS
    optional = frozenset(spec.name for spec in health.SETTINGS_FIELDS)

    class Meta:
        ref_name = "HealthSettings"  # the component: PatchedHealthSettingsRequest


def _history_row(check: Any) -> dict[str, Any]:
    return {"checked_at": check.checked_at, "outcome": check.outcome, "stage": check.stage or None,
            "duration_ms": check.duration_ms, "code": check.code or None}


class HealthActionsMixin:
    """``.../health/`` of a data source: the same read scope and 404s as the detail."""

    @extend_schema(
        tags=TAGS, summary="Get the health of a data source",
        description="The state of the scheduled health checks (a connection test of the stored configuration "
                    "on the source's interval, else its organization's), the interval in force and the recent "
                    "checks. A transition (to `failing` after `failure_threshold` consecutive failures, back to "
                    "`healthy` on a pass) is a `data_source.health_changed` event.",
        responses={200: OpenApiResponse(DataSourceHealthSerializer, description="State, interval and history.")},
    )
    @action(detail=True, methods=["get"], url_path="health")
    def health(self, request: Request, pk: str) -> Response:
        ds = health_of_for_actor(require_actor(request), pk)
        seconds, origin = health.interval_of(ds)
        body = {
            "state": ds.health_state, "since": ds.health_since, "checked_at": ds.health_checked_at,
            "consecutive_failures": ds.health_failures, "interval": {"seconds": seconds, "source": origin},
            "failure_threshold": ds.organization.health_failure_threshold,
            "history": [_history_row(check) for check in health_history(ds)],
        }
        return Response(DataSourceHealthSerializer(body).data)


SETTINGS_200 = OpenApiResponse(HealthSettingsSerializer, description="The organization's health settings.")


class HealthSettingsView(APIView):
    """The caller's organization's health-check defaults. Reading needs `datasource.read` (or
    `organization.admin`); changing them the owner or admin role (a token: `organization.admin`)."""

    @extend_schema(tags=SETTINGS_TAGS, operation_id="api_v1_health_settings_retrieve",
                   summary="Get the organization's health-check settings", responses={200: SETTINGS_200})
    def get(self, request: Request) -> Response:
        actor = require_actor(request)
        if not (actor.has_scope("datasource.read") or actor.has_scope("organization.admin")):
            raise exceptions.PermissionDenied("This token lacks the 'datasource.read' scope.")
        return Response(HealthSettingsSerializer(health.settings_of(actor.organization)).data)

    @extend_schema(
        tags=SETTINGS_TAGS, operation_id="api_v1_health_settings_partial_update",
        summary="Change the organization's health-check settings", request=HealthSettingsRequestSerializer,
        description="Owners and admins (a token acting for no user: the `organization.admin` scope). An invalid "
                    "value is refused (400, nothing changes). Audited (`update_health_settings`).",
        responses={200: SETTINGS_200,
                   400: error_response(400, C.INVALID_REQUEST_BODY, description="An invalid value; nothing changed."),
                   415: error_response(415, C.UNSUPPORTED_MEDIA_TYPE)},
    )
    def patch(self, request: Request) -> Response:
        actor = require_actor(request)
        if not actor.has_scope("organization.admin"):
            raise exceptions.PermissionDenied("This token lacks the 'organization.admin' scope.")
        if not actor.is_org_admin:
            raise exceptions.PermissionDenied("Changing the health settings needs the owner or admin role.")
        serializer = HealthSettingsRequestSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return Response(HealthSettingsSerializer(health.update_settings(actor=actor, data=request.data)).data)
