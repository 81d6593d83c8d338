"""Request id on every response; JSON (never HTML) error pages under /api/."""

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse

from config.errors import ErrorCode, error_body
from config.request_id import new_request_id, reset_request_id, set_request_id

logger = logging.getLogger(__name__)


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = new_request_id(request.headers.get("X-Request-ID"))
        request.request_id = rid  # type: ignore[attr-defined]
        token = set_request_id(rid)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response["X-Request-ID"] = rid
        return response


_STATUS_CODES = {
    400: (ErrorCode.INVALID_REQUEST_BODY, "Bad request."),
    403: (ErrorCode.FORBIDDEN, "Forbidden."),
    404: (ErrorCode.NOT_FOUND, "Not found."),
    405: (ErrorCode.METHOD_NOT_ALLOWED, "Method not allowed."),
    500: (ErrorCode.INTERNAL_SERVER_ERROR, "An unexpected error occurred."),
}


JSON_PREFIXES = ("/api/", "/compat/")


class ApiErrorPageMiddleware:
    """Replace Django's HTML error pages (unknown URLs, 500s, CSRF 403) under /api/ and /compat/."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(JSON_PREFIXES) or response.status_code < 400:
            return response
        ctype = response.get("Content-Type", "")
        if "json" in ctype:
            return response
        code, message = _STATUS_CODES.get(response.status_code, (ErrorCode.INVALID_REQUEST_BODY, "Error."))
        new = JsonResponse(error_body(code, message), status=response.status_code)
        return new

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(JSON_PREFIXES):
            return None
        logger.exception("Unhandled error", exc_info=exception)
        return JsonResponse(
            error_body(ErrorCode.INTERNAL_SERVER_ERROR, "An unexpected error occurred."), status=500
        )
