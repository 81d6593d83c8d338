"""The error catalogue and the one exception handler that gives every API error the same shape.

Shape: {"code": ..., "message": ..., "errors": {field: [messages]}, "request_id": ...}.
In app code, raise an ``ApiError`` subclass (or a DRF/Django exception) and let this module
translate it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exc
from rest_framework import status
from rest_framework.response import Response

from core.request_id import current_request_id

logger = logging.getLogger(__name__)


class ErrorCode:
    INVALID_REQUEST_BODY = "INVALID_REQUEST_BODY"
    AUTHENTICATION_ERROR = "AUTHENTICATION_ERROR"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    NOT_ACCEPTABLE = "NOT_ACCEPTABLE"
    CONFLICT = "CONFLICT"
    PRECONDITION_FAILED = "PRECONDITION_FAILED"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    LENGTH_REQUIRED = "LENGTH_REQUIRED"
    RATE_LIMITED = "RATE_LIMITED"
    CREDENTIAL_TEST_FAILED = "CREDENTIAL_TEST_FAILED"
    CONNECTOR_UNAVAILABLE = "CONNECTOR_UNAVAILABLE"
    CREDENTIALS_REQUIRED = "CREDENTIALS_REQUIRED"
    TENANCY_SETTINGS_INVALID = "TENANCY_SETTINGS_INVALID"
    UNMAPPED_TABLES = "UNMAPPED_TABLES"
    SCHEMA_CACHE_FAILED = "SCHEMA_CACHE_FAILED"
    DESTINATION_NOT_ALLOWED = "DESTINATION_NOT_ALLOWED"
    PLAN_EXPIRED = "PLAN_EXPIRED"
    CHANGE_SET_FAILED = "CHANGE_SET_FAILED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


#: Every code with its HTTP status and a one-line description (served in the OpenAPI schema).
ERROR_CATALOGUE: dict[str, tuple[int, str]] = {
    ErrorCode.INVALID_REQUEST_BODY: (400, "The body or a parameter is invalid; `errors` names each field."),
    ErrorCode.AUTHENTICATION_ERROR: (401, "Missing, unknown, expired or revoked credentials."),
    ErrorCode.FORBIDDEN: (403, "The token's scopes or the user's role do not allow this."),
    ErrorCode.NOT_FOUND: (404, "No such object in your organization."),
    ErrorCode.METHOD_NOT_ALLOWED: (405, "The method is not allowed on this endpoint."),
    ErrorCode.NOT_ACCEPTABLE: (406, "No acceptable representation."),
    ErrorCode.CONFLICT: (409, "The change conflicts with the current state (e.g. a duplicate name)."),
    ErrorCode.PRECONDITION_FAILED: (412, "If-Match does not match the current ETag."),
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: (415, "The Content-Type is not accepted."),
    ErrorCode.PAYLOAD_TOO_LARGE: (413, "The body is larger than the server accepts (REQUEST_BODY_MAX_BYTES)."),
    ErrorCode.LENGTH_REQUIRED: (411, "A body was sent without a Content-Length the server can use."),
    ErrorCode.RATE_LIMITED: (429, "Too many requests; see Retry-After."),
    ErrorCode.CREDENTIAL_TEST_FAILED: (400, "The connection test failed; nothing was changed."),
    ErrorCode.CONNECTOR_UNAVAILABLE: (400, "No connection test is available for this type here."),
    ErrorCode.CREDENTIALS_REQUIRED: (
        400,
        "The change sends stored secrets to a new destination: resend them (or ask an owner/admin).",
    ),
    ErrorCode.TENANCY_SETTINGS_INVALID: (400, "Tenancy settings break the rules or do not match the cached schema."),
    ErrorCode.UNMAPPED_TABLES: (400, "Tables read downstream have no mapping in the new source."),
    ErrorCode.SCHEMA_CACHE_FAILED: (500, "The schema could not be cached."),
    ErrorCode.DESTINATION_NOT_ALLOWED: (
        400, "The URL's host does not resolve or resolves to an address the egress policy refuses; nothing was sent.",
    ),
    ErrorCode.PLAN_EXPIRED: (
        410, "The change plan or change set expired (CHANGE_PLAN_TTL_SECONDS, CHANGE_SET_TTL_SECONDS): make a new "
             "one; nothing was changed.",
    ),
    ErrorCode.CHANGE_SET_FAILED: (
        409, "An item of the change set failed validation or its connection test: the set cannot be applied; "
             "nothing was changed. `errors` names the items.",
    ),
    ErrorCode.SERVICE_UNAVAILABLE: (
        503, "A service the request needs (the shared cache, CACHE_URL) is unreachable; nothing was changed. "
             "Retry after Retry-After.",
    ),
    ErrorCode.INTERNAL_SERVER_ERROR: (500, "Unexpected server error."),
}


class ApiError(Exception):
    """An application error with a catalogue code, a message and optional per-field errors."""

    code: str = ErrorCode.INVALID_REQUEST_BODY
    status_code: int = 400
    default_message = "Invalid request."

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: dict[str, list[str]] | None = None,
        code: str | None = None,
        status_code: int | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.errors = errors or {}
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code
        elif code and code in ERROR_CATALOGUE:
            self.status_code = ERROR_CATALOGUE[code][0]
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(self.message)


class InvalidRequest(ApiError):
    code = ErrorCode.INVALID_REQUEST_BODY
    status_code = 400


class NotFound(ApiError):
    code = ErrorCode.NOT_FOUND
    status_code = 404
    default_message = "Not found."


class Forbidden(ApiError):
    code = ErrorCode.FORBIDDEN
    status_code = 403


class Conflict(ApiError):
    code = ErrorCode.CONFLICT
    status_code = 409


class PreconditionFailed(ApiError):
    code = ErrorCode.PRECONDITION_FAILED
    status_code = 412
    default_message = "The resource has changed since you read it (If-Match does not match)."


def error_body(code: str, message: str, errors: dict | None = None, **extra: Any) -> dict[str, Any]:
    body = {"code": code, "message": message, "errors": errors or {}, "request_id": current_request_id()}
    body.update(extra)
    return body


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested ``detail`` -> {"dotted.path": [messages]}."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors" and not prefix:
                path = "non_field_errors"
            for k, v in _flatten(value, path).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        if all(not isinstance(d, (dict, list)) for d in detail):
            out[prefix or "non_field_errors"] = [str(d) for d in detail]
        else:
            for i, item in enumerate(detail):
                for k, v in _flatten(item, f"{prefix}.{i}" if prefix else str(i)).items():
                    out.setdefault(k, []).extend(v)
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


_DRF_CODES: list[tuple[type[Exception], str, int]] = [
    (drf_exc.NotAuthenticated, ErrorCode.AUTHENTICATION_ERROR, 401),
    (drf_exc.AuthenticationFailed, ErrorCode.AUTHENTICATION_ERROR, 401),
    (drf_exc.PermissionDenied, ErrorCode.FORBIDDEN, 403),
    (drf_exc.NotFound, ErrorCode.NOT_FOUND, 404),
    (drf_exc.MethodNotAllowed, ErrorCode.METHOD_NOT_ALLOWED, 405),
    (drf_exc.NotAcceptable, ErrorCode.NOT_ACCEPTABLE, 406),
    (drf_exc.UnsupportedMediaType, ErrorCode.UNSUPPORTED_MEDIA_TYPE, 415),
    (drf_exc.Throttled, ErrorCode.RATE_LIMITED, 429),
    (drf_exc.ParseError, ErrorCode.INVALID_REQUEST_BODY, 400),
    (drf_exc.ValidationError, ErrorCode.INVALID_REQUEST_BODY, 400),
]


def exception_handler(exc: Exception, context: dict | None = None) -> Response | None:
    """DRF exception handler: every error becomes the one JSON shape."""
    headers: dict[str, str] = {}
    if isinstance(exc, ApiError):
        body = error_body(exc.code, exc.message, exc.errors, **exc.extra)
        return Response(body, status=exc.status_code, headers=exc.headers or None)
    if isinstance(exc, Http404):
        return Response(error_body(ErrorCode.NOT_FOUND, "Not found."), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        return Response(error_body(ErrorCode.FORBIDDEN, "You do not have permission."), status=403)
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(
            error_body(ErrorCode.INVALID_REQUEST_BODY, "The request is invalid.", errors), status=400
        )
    for klass, code, status_code in _DRF_CODES:
        if isinstance(exc, klass):
            assert isinstance(exc, drf_exc.APIException)
            if isinstance(exc, drf_exc.ValidationError):
                errors = _flatten(exc.detail)
                message = "The request is invalid."
            else:
                errors = {}
                message = str(exc.detail)
            if isinstance(exc, drf_exc.Throttled) and exc.wait is not None:  # type: ignore[attr-defined]  # not in the DRF stubs
                headers["Retry-After"] = str(int(exc.wait) + 1)  # type: ignore[attr-defined]
            if getattr(exc, "auth_header", None):
                headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
            return Response(error_body(code, message, errors), status=status_code, headers=headers or None)
    if isinstance(exc, drf_exc.APIException):
        return Response(error_body(ErrorCode.INVALID_REQUEST_BODY, str(exc.detail)), status=exc.status_code)
    logger.exception("Unhandled error in API view")
    return Response(
        error_body(ErrorCode.INTERNAL_SERVER_ERROR, "An unexpected error occurred."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
