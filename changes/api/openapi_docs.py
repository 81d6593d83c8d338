"""OpenAPI descriptions of the plan and change-set endpoints (kept out of the views)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view

from changes.api import serializers as s
from core.errors import ErrorCode as C
from core.openapi import error_response, etag_header, ref
from datasources.api.openapi_docs import UPDATE_400_CODES

TAGS = ["change-plans"]
SET_TAGS = ["change-sets"]
DS_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The data source's id.")
PLAN_ID = OpenApiParameter("plan_id", str, OpenApiParameter.PATH, description="The plan's id (`pln_...`).")
SET_ID = OpenApiParameter("id", str, OpenApiParameter.PATH, description="The change set's id (`chs_...`).")
_PATCH = {"application/json": ref(s.PATCH_BODY_COMPONENT)}

_WRITE_400 = error_response(400, *UPDATE_400_CODES, description="Invalid body, tenancy settings that break the "
                            "rules or do not match the cached schema, a move of where stored secrets travel without "
                            "resending them, or the connection test failed (as for PATCH); nothing was stored.")
_APPLY_400 = error_response(400, *UPDATE_400_CODES, description=(
    "A body was sent (this action takes none), or the update refuses the plan now as PATCH would (its connection "
    "is tested again). Nothing was changed."))
_RESTORE_PLAN_400 = error_response(400, *UPDATE_400_CODES, description=(
    "A body was sent (this action takes none), the revision's configuration is refused as a PUT of it would be, "
    "or its connection test failed. Nothing was stored."))
_SET_APPLY_400 = error_response(400, C.INVALID_REQUEST_BODY, C.TENANCY_SETTINGS_INVALID, C.CREDENTIALS_REQUIRED,
                                description=(
    "A body was sent (this action takes none), or the update refuses an item now (its code, its errors under "
    "`items.N`; the item's passing test is not run again). Nothing was changed."))
_APPLY_403 = error_response(403, C.FORBIDDEN, description=(
    "Neither the author nor an owner/admin; or, with the organization's `changes_need_second_person`, a "
    "connection change applied by its author or by a member who is not an owner/admin."))
_410 = error_response(410, C.PLAN_EXPIRED)
_PLAN_APPLY = (
    "Applies that plan's body and nothing else, through the normal update (PATCH with If-Match of the planned "
    "version): the connection is tested again now (400 `CREDENTIAL_TEST_FAILED`, nothing changed), then locked, "
    "applied, audited and the schema re-cached. 409 when the source changed since the plan (nothing changed) or "
    "the plan is no longer open; 410 when it expired. Who may apply: its author, or an owner/admin; when the "
    "organization's `changes_need_second_person` is on, a connection change needs an owner/admin other than its "
    "author.")

plan_viewset = extend_schema_view(
    list=extend_schema(tags=TAGS, summary="List a data source's open change plans", parameters=[DS_ID],
                       description="Open (not applied, cancelled or expired) plans, newest first.",
                       responses={200: s.PlanSerializer(many=True)}),
    create=extend_schema(
        tags=TAGS, summary="Save a change plan", parameters=[DS_ID], request=_PATCH,
        examples=[OpenApiExample("New password", request_only=True,
                                 value={"credentials": {"password": "correct-horse-battery-staple"}})],
        description="A PATCH body validated and tested as the write would (a dry run), stored with its changed "
                    "fields, planned diff, test and impact report, the source's version, and an expiry "
                    "(CHANGE_PLAN_TTL_SECONDS, default 3600). Its secrets are stored encrypted and never shown.",
        responses={201: OpenApiResponse(s.PlanDetailSerializer, description="The plan."), 400: _WRITE_400,
                   409: error_response(409, C.CONFLICT, description="The new name is taken."),
                   429: error_response(429, C.RATE_LIMITED, description=(
                       "The test budget (per token or organization) or the organization's running-test slots are "
                       "spent; see Retry-After. Nothing was stored."))}),
    retrieve=extend_schema(tags=TAGS, summary="Get a change plan with its impact report",
                           parameters=[DS_ID, PLAN_ID], responses={200: s.PlanDetailSerializer}),
    destroy=extend_schema(tags=TAGS, summary="Cancel a change plan", parameters=[DS_ID, PLAN_ID],
                          description="The author or an owner/admin; only an open plan.",
                          responses={204: OpenApiResponse(description="Cancelled."), 403: error_response(403),
                                     409: error_response(409, C.CONFLICT, description="Not open.")}),
)

restore_plan = extend_schema(
    tags=TAGS, summary="Save a plan of restoring a revision",
    parameters=[DS_ID, OpenApiParameter("number", int, OpenApiParameter.PATH, description="The revision's number.")],
    request=None,
    description="As POST .../revisions/{number}/restore/?dry_run=true (the revision's configuration and secrets as "
                "a PUT: validated, the connection tested, the impact report), stored as a plan (`restores` holds "
                "the number; `changes` is the diff against now, secrets by name only). Applying it restores the "
                "revision under the plan rules (audited as `restore`, recorded as a `restore` revision).",
    responses={201: OpenApiResponse(s.PlanDetailSerializer, description="The plan."), 400: _RESTORE_PLAN_400,
               404: error_response(404, C.NOT_FOUND, description="No such data source or revision."),
               409: error_response(409, C.CONFLICT, description="The revision's name is taken now."),
               429: error_response(429, C.RATE_LIMITED, description="The test budget is spent; see Retry-After.")},
)

plan_apply = extend_schema(
    tags=TAGS, summary="Apply a change plan", parameters=[DS_ID, PLAN_ID, etag_header(200)], request=None,
    description=_PLAN_APPLY,
    responses={200: OpenApiResponse(s.AppliedPlanSerializer, description="The applied plan and the source after it."),
               400: _APPLY_400, 403: _APPLY_403, 410: _410,
               409: error_response(409, C.CONFLICT, description="The source changed since the plan (its version), "
                                                                "or the plan is no longer open. Nothing was changed.")},
)

_SET_CREATE = (
    "Each item is a data source of your organization (each at most once) and a PATCH body for it, at most "
    "CHANGE_SET_MAX_ITEMS (200). Every body is validated and, for a connection change, tested, concurrently in "
    "at most CHANGE_SET_CONCURRENCY (8) threads; the answer holds each item's outcome (changed fields, planned "
    "diff, test and impact, or its error), and the set is stored (bodies encrypted) until CHANGE_SET_TTL_SECONDS. "
    "A failing item does not stop the others' tests; the set is then `failed` and cannot be applied. Test "
    "budget: one test against the per-token and per-organization per-minute rates per "
    "CHANGE_SET_ITEMS_PER_TEST_COUNT (25) items, one of the organization's running-test slots, and one change set "
    "of an organization tested at a time (429 otherwise).")
_SET_APPLY = (
    "Applies every item in one transaction, only if every item passed and no source changed since it was tested "
    "(the rows are locked in id order and their versions checked); each through the normal update with its "
    "passing test (no re-test under the lock), audited and revised as any PATCH. Otherwise nothing changes: 409 "
    "`CONFLICT` naming the items whose source changed, 409 `CHANGE_SET_FAILED` naming the failed items, 410 when "
    "expired. An item the update refuses while it is applied (a name taken since its test) refuses the set with "
    "that item's code and status, its errors under `items.N.<field>`. The schemas of the sources whose "
    "connection changed are refreshed after the commit. Who may apply: as for plans.")

change_set_viewset = extend_schema_view(
    list=extend_schema(tags=SET_TAGS, summary="List change sets", description="Newest first, without items.",
                       responses={200: s.ChangeSetSerializer(many=True)}),
    create=extend_schema(tags=SET_TAGS, summary="Test a change set", description=_SET_CREATE,
                         request=s.ChangeSetRequestSerializer,
                         responses={201: s.ChangeSetDetailSerializer,
                                    400: error_response(400, C.INVALID_REQUEST_BODY, description=(
                                        "Malformed items, a repeated source, or a body PATCH refuses; `errors` "
                                        "names the item. Nothing was tested.")),
                                    404: error_response(404, C.NOT_FOUND, description=(
                                        "An item names another organization's data source, or none; `errors` "
                                        "names the item. Nothing was tested.")),
                                    429: error_response(429, C.RATE_LIMITED, description=(
                                        "The test budget or running-test slots are spent, or another change set "
                                        "of the organization is being tested; see Retry-After. Nothing was "
                                        "stored."))}),
    retrieve=extend_schema(tags=SET_TAGS, summary="Get a change set with each item's outcome", parameters=[SET_ID],
                           responses={200: s.ChangeSetDetailSerializer}),
)

change_set_apply = extend_schema(
    tags=SET_TAGS, summary="Apply a change set, all or nothing", parameters=[SET_ID], request=None,
    description=_SET_APPLY,
    responses={200: s.AppliedChangeSetSerializer, 400: _SET_APPLY_400,
               403: _APPLY_403, 410: _410,
               409: error_response(409, C.CONFLICT, C.CHANGE_SET_FAILED, description=(
                   "A source changed since the set was tested, an item failed, or the set was already applied. "
                   "Nothing was changed."))},
)
