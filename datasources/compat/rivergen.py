"""Rivergen (seed 001): ``PATCH /api/v1/data-sources/{data_source_id}`` and its credentials update.

Flat fields map onto the core body; answers use the ``{success, data, message}`` envelope.

The seed moves a source (``host``, ``port``, SSH, ``connection_string``) without a password and
updates credentials in a separate call. For a writer the destination rule binds (not an owner or
admin) both orders work through ``datasources.services.moves``: a move without the secrets
withholds them (cleared, untested, ``credentials_required``) until the credentials call tests the
new destination; credentials that the current destination refuses wait (encrypted, one hour) for
the same writer's next move, which is tested with them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from core.compat import Codec, ErrorShape, Extra, Field, SeedRequest, Slot, Table, parse
from core.openapi import JSON_OBJECT, NOT_BLANK
from core.serializers import (
    JSONObjectField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
)
from datasources import catalogue, fields
from datasources.catalogue.types_common import SSH_TUNNEL, port
from datasources.compat import common
from datasources.models import DataSource, DataSourceStatus
from datasources.services import moves
from datasources.shapes import TagsField
from organizations.authentication import NotAMember, require_actor

TAG = "compat: rivergen"

#: Rivergen's data source over the native one (a merge: only the fields sent change; ``null`` clears
#: or resets). Rivergen's type names are the catalogue keys (``postgresql``...).
TABLE = Table(
    (
        Field("name", "name"),
        Field("description", "description"),
        Field("host", "connection.host"),
        Field("port", "connection.port"),
        Field("database_name", "connection.database"),
        Field("schema_name", "connection.schema"),
        Field("connection_string", "connection_string"),
        Field("file_path", "connection.path"),
        Field("use_ssh_tunnel", "connection.ssh_tunnel.enabled", via=Codec(to_seed=bool)),
        Field("ssh_host", "connection.ssh_tunnel.host"),
        Field("ssh_port", "connection.ssh_tunnel.port"),
        Field("ssh_username", "connection.ssh_tunnel.username"),
        Field("ssh_local_port", "connection.ssh_tunnel.local_port"),
        *(Field(name, name) for name in (
            "connection_pool_size", "connection_timeout", "query_timeout", "max_retries",
            "schema_auto_refresh", "schema_refresh_interval", "metadata", "tags",
        )),
    ),
    write_only=("connection_string",),
)
#: ``{success: false, data: null, message, error: {code, reason, details}}``; ``code`` by HTTP status
ERRORS = ErrorShape(
    {"success": False, "data": None, "message": Slot.MESSAGE,
     "error": {"code": Slot.CODE, "reason": Slot.NATIVE_CODE, "details": Slot.ERRORS, "stage": Extra("stage")}},
    status_codes={400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND"},
)


def _opt_str(**kwargs: Any) -> StrictCharField:
    return StrictCharField(required=False, allow_null=True, **kwargs)


def _opt_int(**kwargs: Any) -> StrictIntegerField:
    return StrictIntegerField(required=False, allow_null=True, **kwargs)


def _core_int(spec: fields.FieldSpec, **kwargs: Any) -> StrictIntegerField:
    """An operational field with the native rule's own limits (``datasources.fields``, not copied)."""
    return _opt_int(min_value=spec.min_value, max_value=spec.max_value, **kwargs)


def _port(**kwargs: Any) -> StrictIntegerField:
    limits = port(1)  # the catalogue's port field
    return _opt_int(min_value=limits.min_value, max_value=limits.max_value, **kwargs)


#: the catalogue's SSH tunnel ``local_port`` (advisory)
LOCAL_PORT = next(f for f in SSH_TUNNEL.fields if f.name == "local_port")


class RivergenDataSourceUpdateSerializer(SeedRequest):
    """All fields optional: only the fields sent change; ``null`` clears or resets to the default."""

    name = StrictCharField(required=False, min_length=1, max_length=255, help_text="1-255 characters.")
    description = _opt_str(allow_blank=True)
    host = StrictCharField(required=False, help_text="Every type with a host requires it: it cannot be cleared.")
    port = _port()
    database_name = _opt_str()
    schema_name = _opt_str()
    connection_string = StrictCharField(
        required=False, write_only=True, trim_whitespace=False,
        help_text="Full connection string; parsed into the fields and credentials, never stored or returned.",
    )
    file_path = _opt_str(max_length=1000, help_text="Object path for file-based sources (relative).")
    use_ssh_tunnel = StrictBooleanField(required=False, allow_null=True)
    ssh_host = _opt_str()
    ssh_port = _port()
    ssh_username = _opt_str()
    ssh_local_port = _opt_int(
        min_value=LOCAL_PORT.min_value, max_value=LOCAL_PORT.max_value,
        help_text="Stored and echoed (`connection.ssh_tunnel.local_port` natively), advisory: each tunnel "
                  "still listens on a fresh ephemeral port of 127.0.0.1. Not a destination field.",
    )
    connection_pool_size = _core_int(fields.CONNECTION_POOL_SIZE)
    connection_timeout = _core_int(fields.CONNECTION_TIMEOUT, help_text="Seconds.")
    query_timeout = _core_int(fields.QUERY_TIMEOUT, help_text="Seconds.")
    max_retries = _core_int(fields.MAX_RETRIES)
    schema_auto_refresh = StrictBooleanField(required=False, allow_null=True)
    schema_refresh_interval = _core_int(fields.SCHEMA_REFRESH_INTERVAL, help_text="Seconds.")
    metadata = JSONObjectField(max_bytes=16_384, required=False, allow_null=True,
                               help_text="Merged into the stored metadata (RFC 7396).")
    tags = TagsField(required=False)


#: every secret of the catalogue's types (the source's own type decides which it accepts)
SECRETS = sorted({s.name for t in catalogue.CATALOGUE.values() for s in t.secrets})
#: the secrets that may be ``""`` in some type (the catalogue's ``allow_empty``), with those types
MAY_BE_EMPTY = {name: sorted(t.key for t in catalogue.CATALOGUE.values() if (s := t.secret(name)) and s.allow_empty)
                for name in SECRETS}
#: ``username`` and the secrets, each under its own name
CREDENTIALS_TABLE = Table(
    (Field("username", "connection.username"), *(Field(name, f"credentials.{name}") for name in SECRETS)),
    write_only=("credentials",),
    names={"credentials": ""},
)


def _secret_help(name: str) -> str:
    text = "Secret of the source's type: a value replaces, null clears, omitted is kept."
    if MAY_BE_EMPTY[name]:
        text += (f' "" is an empty password for the types {", ".join(MAY_BE_EMPTY[name])} (a server user without '
                 "password); refused for the others.")
    return text


def _secret_fields() -> dict[str, serializers.Field]:
    # blank passes the shape: whether "" is a value is the catalogue's call, per the source's type
    return {
        name: StrictCharField(required=False, allow_null=True, allow_blank=True, write_only=True,
                              trim_whitespace=False, help_text=_secret_help(name))
        for name in SECRETS
    }


class RivergenCredentialsExtension(OpenApiSerializerExtension):
    """Secrets are never blank (a password may be ``""`` where a type allows it); PEM ones hold a
    ``-----BEGIN`` block, JSON ones a JSON object (``format``)."""

    target_class = "datasources.compat.rivergen.RivergenCredentialsUpdateSerializer"
    priority = 1  # over the SeedRequest extension (unknown keys refused: said here too)

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        kinds = {s.name: s.kind for t in catalogue.CATALOGUE.values() for s in t.secrets}
        for name, prop in schema.get("properties", {}).items():
            kind = kinds.get(name)
            if kind == "pem":
                prop["pattern"] = catalogue.PEM_MARKER
            elif kind == "json":
                prop.update(pattern=JSON_OBJECT, format="json")
            elif kind is not None:
                prop["pattern"] = catalogue.empty_or(NOT_BLANK) if MAY_BE_EMPTY.get(name) else NOT_BLANK
        schema["description"] = (schema.get("description", "") + " Only the secrets of the source's type are "
                                 "accepted (the others are refused by name, 400); see its `secret_fields` in "
                                 "the type catalogue.").strip()
        return schema


RivergenCredentialsUpdateSerializer = type(
    "RivergenCredentialsUpdateSerializer",
    (SeedRequest,),
    {
        "__doc__": "Connection credentials: `username` plus the secrets of the source's type "
                   "(`password`, `ssh_private_key`, `token`...). Omitted ones are kept.",
        "username": StrictCharField(required=False, help_text="Database user name (it cannot be cleared)."),
        **_secret_fields(),
    },
)


class RivergenDataSourceSerializer(serializers.Serializer):
    """A data source in Rivergen's flat shape; secrets never appear (``credentials_set`` names them)."""

    id = serializers.IntegerField()
    organization_id = serializers.IntegerField()
    workspace_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()
    type = serializers.CharField(help_text="Catalogue type key, e.g. `postgresql`.")
    description = serializers.CharField(allow_blank=True)
    host = serializers.CharField(allow_null=True)
    port = serializers.IntegerField(allow_null=True)
    database_name = serializers.CharField(allow_null=True)
    schema_name = serializers.CharField(allow_null=True)
    file_path = serializers.CharField(allow_null=True)
    use_ssh_tunnel = serializers.BooleanField()
    ssh_host = serializers.CharField(allow_null=True)
    ssh_port = serializers.IntegerField(allow_null=True)
    ssh_username = serializers.CharField(allow_null=True)
    ssh_local_port = serializers.IntegerField(allow_null=True, help_text="Advisory (see the request field).")
    connection_pool_size = serializers.IntegerField()
    connection_timeout = serializers.IntegerField()
    query_timeout = serializers.IntegerField()
    max_retries = serializers.IntegerField()
    schema_auto_refresh = serializers.BooleanField()
    schema_refresh_interval = serializers.IntegerField()
    metadata = serializers.DictField()
    tags = serializers.ListField(child=serializers.CharField())
    credentials_set = serializers.ListField(child=serializers.CharField(), help_text="Names only, never values.")
    status = serializers.ChoiceField(
        choices=DataSourceStatus.choices,
        help_text="`credentials_required`: moved without its stored secrets (withheld from the new destination); "
                  "update its credentials, which are tested there and make it `active` again.",
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    updated_by_user_id = serializers.IntegerField(allow_null=True)


class RivergenEnvelopeSerializer(serializers.Serializer):
    """``{success: true, data, message}``."""

    success = serializers.BooleanField()
    # A declared field, not Serializer.data (DRF's metaclass takes fields out of the class body; the stub can't tell).
    data = RivergenDataSourceSerializer()  # type: ignore[assignment]
    message = serializers.CharField()


class RivergenErrorDetailSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=[
        (c, c) for c in ("BAD_REQUEST", "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "CONFLICT",
                         "PRECONDITION_FAILED", "UNSUPPORTED_MEDIA_TYPE", "RATE_LIMITED",
                         "METHOD_NOT_ALLOWED", "INTERNAL_SERVER_ERROR")
    ])
    reason = serializers.CharField(help_text="The control plane's code, e.g. CREDENTIAL_TEST_FAILED.")
    details = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),
                                    help_text="Messages per Rivergen field name.")
    stage = serializers.CharField(required=False, allow_null=True,
                                  help_text="CREDENTIAL_TEST_FAILED only: the failing stage.")


class RivergenErrorSerializer(serializers.Serializer):
    """``{success: false, data: null, message, error: {code, reason, details}}``."""

    success = serializers.BooleanField()
    # A declared field, not Serializer.data (DRF's metaclass takes fields out of the class body; the stub can't tell).
    data = serializers.DictField(allow_null=True, help_text="Always null.")  # type: ignore[assignment]
    message = serializers.CharField()
    error = RivergenErrorDetailSerializer()


def represent(ds: DataSource) -> dict[str, Any]:
    return RivergenDataSourceSerializer({
        **TABLE.to_seed(common.native(ds)),
        "id": ds.pk, "organization_id": ds.organization_id, "workspace_id": ds.workspace_id, "type": ds.type,
        "credentials_set": sorted(c.field for c in ds.credentials.all()),
        "status": ds.status, "created_at": ds.created_at, "updated_at": ds.updated_at,
        "updated_by_user_id": ds.updated_by_id,
    }).data


def _errors(*extra: int) -> dict[int, OpenApiResponse]:
    described = {
        400: "BAD_REQUEST: invalid request data (`error.details` per field), or the connection test failed "
             "(`error.reason` CREDENTIAL_TEST_FAILED) and nothing was changed.",
        401: "UNAUTHORIZED: invalid or missing authentication token.",
        403: "FORBIDDEN: not a member of any organization, or the token lacks `datasource.write`.",
        404: "NOT_FOUND: data source not found (also another organization's).",
        409: "CONFLICT: another data source of the organization has this name, or it kept changing.",
        412: "PRECONDITION_FAILED: If-Match does not match the current ETag.",
        415: "UNSUPPORTED_MEDIA_TYPE: send application/json.",
        429: "RATE_LIMITED: too many connection tests; see Retry-After.",
        500: "INTERNAL_SERVER_ERROR.",
    }
    wanted = (400, 401, 403, 404, 429, 500, *extra)
    return {code: OpenApiResponse(RivergenErrorSerializer, description=described[code]) for code in wanted}


ID = OpenApiParameter("data_source_id", int, OpenApiParameter.PATH, description="Data source ID.")


def _names(names: list[str]) -> str:
    return ", ".join(names)


def _move_message(outcome: moves.Outcome) -> str:
    ds = outcome.data_source
    if outcome.kind == "withheld":
        result = outcome.result
        withheld = (f"its stored secrets for the moved hop ({_names(result.withheld)}) were withheld from the new "
                    "destination and cleared" if result.withheld else "no stored secret was sent to it")
        return (
            f"Data source updated successfully. It was moved ({_names(result.moved) or 'connection changed'}) "
            f"without its credentials: {withheld}, nothing was tested, and its status is credentials_required "
            "(tests and schema refreshes are refused until then). Next: update its credentials (PATCH "
            f"/api/v1/data-sources/{ds.pk}/credentials with {_names(result.needs) or 'them'}); they are tested at "
            "the new destination and make it active again."
        )
    if outcome.kind == "with_pending" and outcome.pending is not None:
        return (
            "Data source updated successfully with the credentials you sent at "
            f"{outcome.pending.created_at:%Y-%m-%d %H:%M:%S %Z} ({_names(outcome.pending.names)}): tested at the "
            "new destination and applied together with the move."
        )
    return "Data source updated successfully"


def _credentials_message(outcome: moves.Outcome) -> str:
    if outcome.kind == "pending_kept" and outcome.pending is not None and outcome.failure is not None:
        kept = outcome.pending
        reason = outcome.failure.message.removesuffix(" Nothing was changed.")
        return (
            f"The credentials did not work at the current destination ({reason}) and were not applied: nothing "
            f"was changed. They are kept, encrypted, until {kept.expires_at:%Y-%m-%d %H:%M:%S %Z} for your next "
            "move of this data source (host, port, SSH tunnel or connection string, by you within the hour): "
            "that move will be tested with them at its new destination and applied with them if it passes."
        )
    return "Credentials updated successfully"


class RivergenView(common.View):
    tables = (TABLE,)
    errors = ERRORS

    def handle_error(self, exc: Exception, context: dict) -> Response | None:
        if isinstance(exc, NotAMember) and exc.of_none:  # the seed's 403 FORBIDDEN
            exc = PermissionDenied("You are not a member of any organization.")
        return super().handle_error(exc, context)

    def envelope(self, request: Request, ds: DataSource, message: str) -> Response:
        ds = common.fetch(request, ds.pk)
        return common.with_etag(Response({"success": True, "data": represent(ds), "message": message}), ds)


class RivergenDataSourceView(RivergenView):
    @extend_schema(
        operation_id="compat_rivergen_get_data_source",
        summary="Get Data Source (Rivergen)",
        description="The seed's related \"Get Data Source\": the current data source in the same envelope as "
                    "the update answers (scope `datasource.read`). `data.status` says whether it waits for its "
                    "credentials (`credentials_required`).",
        tags=[TAG],
        parameters=[ID],
        responses={200: RivergenEnvelopeSerializer, **_errors()},
    )
    def get(self, request: Request, data_source_id: str) -> Response:
        ds = common.fetch(request, data_source_id)
        return self.envelope(request, ds, "Data source retrieved successfully")

    @extend_schema(
        operation_id="compat_rivergen_update_data_source",
        summary="Update Data Source (Rivergen)",
        description="Rivergen-compatible partial update: only the fields sent change. A change that affects "
                    "the connection is tested against the database before it is applied.\n\n"
                    "Moving the source (`host`, `port`, `use_ssh_tunnel`, `ssh_host`, `ssh_port`, `ssh_username`, "
                    "`connection_string`) without a password: an organization owner or admin moves it with the "
                    "stored secrets, tested there. Anyone else moves it *withholding* them: the stored secrets "
                    "of the moved hop are cleared (never sent to the new destination), nothing is tested, and "
                    "the answer is 200 with `data.status` `credentials_required`; then Update Credentials tests "
                    "the new destination and re-activates it. If that writer's Update Credentials came first "
                    "and the current destination refused them (kept as pending for an hour), this move is "
                    "tested with them instead and applies with them, or answers 400 and changes nothing.",
        tags=[TAG],
        parameters=[ID],
        request=RivergenDataSourceUpdateSerializer,
        responses={200: RivergenEnvelopeSerializer, **_errors(409, 412, 415)},
    )
    def patch(self, request: Request, data_source_id: str) -> Response:
        actor = require_actor(request)
        common.fetch(request, data_source_id)  # 404 before 400 for ids not in the organization
        body = parse(RivergenDataSourceUpdateSerializer, request.data)
        outcome = moves.update_connection(actor=actor, data_source_id=data_source_id, data=TABLE.to_native(body),
                                          if_match=request.headers.get("If-Match"))
        return self.envelope(request, outcome.data_source, _move_message(outcome))


class RivergenCredentialsView(RivergenView):
    tables = (CREDENTIALS_TABLE,)

    @extend_schema(
        operation_id="compat_rivergen_update_credentials",
        summary="Update Credentials (Rivergen)",
        description="Update connection credentials separately: `username` and any secret of the source's type. "
                    "Secrets are write-only; the new credentials are tested at the source's current destination "
                    "before they are applied (a `credentials_required` source becomes `active` again and its "
                    "schema is re-cached).\n\nFor a writer who is not an organization owner or admin, "
                    "credentials that the current destination refuses at stage `auth` or `database` are not "
                    "applied but kept, encrypted, for that writer's next move within the hour (200, the "
                    "`message` says so); other failures answer 400 and keep nothing.",
        tags=[TAG],
        parameters=[ID],
        request=RivergenCredentialsUpdateSerializer,
        responses={200: RivergenEnvelopeSerializer, **_errors(409, 412, 415)},
    )
    def patch(self, request: Request, data_source_id: str) -> Response:
        actor = require_actor(request)
        common.fetch(request, data_source_id)
        values = parse(RivergenCredentialsUpdateSerializer, request.data)
        outcome = moves.update_credentials(actor=actor, data_source_id=data_source_id,
                                           data=CREDENTIALS_TABLE.to_native(values),
                                           if_match=request.headers.get("If-Match"))
        return self.envelope(request, outcome.data_source, _credentials_message(outcome))
