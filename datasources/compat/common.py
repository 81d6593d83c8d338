"""Plumbing shared by the seed adapters: core errors in each seed's shape, core writes, dotted paths.

An adapter only translates: its body into the core request shape (then validated by the main API's
serializer and the services, so every rule lives once), and the core result or error back into the
seed's vocabulary. Nothing here decides what is valid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Prefetch
from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from core.errors import InvalidRequest
from core.errors import exception_handler as core_exception_handler
from core.serializers import StrictSerializer
from datasources.api.serializers import DataSourceWriteSerializer
from datasources.compat.parsers import SEED_PARSERS
from datasources.models import Credential, DataSource
from datasources.services import datasources as service
from organizations.authentication import get_actor

CORE_KEYS = frozenset({"code", "message", "errors", "request_id"})


@dataclass
class Failure:
    """A core error (code, message, per-field errors) with field paths already in the seed's names."""

    status: int
    code: str
    message: str
    errors: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def details(self) -> str:
        """The message followed by every field's messages (for shapes that carry a message only)."""
        parts = [f"{path}: {' '.join(messages)}" for path, messages in self.errors.items()]
        return f"{self.message} ({'; '.join(parts)})" if parts else self.message


def seed_path(path: str, names: Mapping[str, str]) -> str:
    """A core error path in the seed's vocabulary: the longest mapped prefix is renamed."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in names:  # a name of "" drops the prefix
            return ".".join(p for p in (names[prefix], *parts[end:]) if p)
    return path


class SeedRequest(StrictSerializer):
    """An adapter's request body: shapes only, unknown keys refused by name (documented as such)."""


class SeedRequestExtension(OpenApiSerializerExtension):
    """Document that seed request bodies refuse unknown properties (``additionalProperties: false``)."""

    target_class = SeedRequest
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        return schema


class SeedValidationError(ValidationError):
    """A body refused by an adapter's own serializer: its fields already carry the seed's names."""


class SeedInvalidRequest(InvalidRequest):
    """INVALID_REQUEST_BODY raised by an adapter, with fields already in the seed's names."""


def parse(serializer_class: type[Serializer], data: Any) -> dict[str, Any]:
    """The body validated by an adapter's (shape-only) serializer."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise SeedValidationError(serializer.errors)
    return dict(serializer.validated_data)


class CompatView(APIView):
    """An APIView whose errors (401, 403, 404, 400, ...) come out in its seed's shape."""

    scope_resource = "datasource"
    parser_classes = SEED_PARSERS  # the core rules (core/parsers.py); refused fields keep the body's names
    #: core error path (``connection.host``, ``credentials.password``) -> the seed's field name;
    #: a view may replace it per request (never mutate it in place)
    field_names: Mapping[str, str] = {}

    def get_exception_handler(self) -> Callable[[Exception, dict], Response | None]:
        return self.handle_error

    def handle_error(self, exc: Exception, context: dict) -> Response | None:
        response = core_exception_handler(exc, context)
        if response is None:
            return None
        body = response.data
        names = {} if isinstance(exc, (SeedValidationError, SeedInvalidRequest)) else self.field_names
        errors: dict[str, list[str]] = {}
        for path, messages in (body.get("errors") or {}).items():
            errors.setdefault(seed_path(path, names), []).extend(messages)
        failure = Failure(
            status=response.status_code,
            code=str(body.get("code")),
            message=str(body.get("message", "")),
            errors=errors,
            extra={k: v for k, v in body.items() if k not in CORE_KEYS},
        )
        response.status_code, response.data = self.render_failure(failure)
        return response

    def render_failure(self, failure: Failure) -> tuple[int, Any]:
        """(status, body) of the error in the seed's shape."""
        raise NotImplementedError


# --- writes through the services ------------------------------------------------------------------


def core_body(data: dict[str, Any]) -> dict[str, Any]:
    """The main API's PATCH request rules (shapes, ranges, unknown fields) applied to a translated body."""
    serializer = DataSourceWriteSerializer(data=data, partial=True)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def update(request: Request, data_source_id: Any, data: dict[str, Any], *,
           tenancy_replace: bool = False) -> service.WriteResult:
    """PATCH (merge) through the update service: validate, test a connection change, apply, re-cache."""
    return service.update_data_source(
        actor=get_actor(request),
        data_source_id=data_source_id,
        data=core_body(data),
        mode="patch",
        options=service.WriteOptions(if_match=request.headers.get("If-Match"), tenancy_replace=tenancy_replace),
    )


def fetch(request: Request, data_source_id: Any) -> DataSource:
    """The caller's data source with what representations read (404 for ids not in the organization)."""
    ds = service.get_data_source(get_actor(request), data_source_id)
    return (
        DataSource.objects.select_related("created_by", "updated_by", "created_by_token", "updated_by_token")
        .prefetch_related(Prefetch("credentials", queryset=Credential.objects.only("id", "data_source_id", "field")))
        .get(pk=ds.pk)
    )


def with_etag(response: Response, ds: DataSource) -> Response:
    response["ETag"] = ds.etag
    return response


def actor_name(user: Any, token: Any) -> str | None:
    """Who made a change, as one string: the user name, else ``token:<name>``."""
    if user is not None:
        return user.get_username()
    if token is not None:
        return f"token:{token.name}"
    return None


# --- dotted paths ----------------------------------------------------------------------------------


def get_path(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def core_data(values: Mapping[str, Any], covered: Iterable[str] = ()) -> dict[str, Any]:
    """A core PATCH body from {core path: value}. Every ``covered`` connection path that was not sent
    is set to ``null`` (reset to its default), so the seed's fields are replaced as a whole."""
    data: dict[str, Any] = {}
    for path in covered:
        set_path(data, path, None)
    for path, value in values.items():
        set_path(data, path, value)
    return data
