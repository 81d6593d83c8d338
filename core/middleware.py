"""Request id on every response; request-level refusals before a body is read; JSON (never HTML)
error pages under /api/."""

import io
import logging
from typing import Any

from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from core.compat import seed_view_for
from core.errors import ApiError, ErrorCode, InvalidRequest, NotFound, error_body
from core.numbers import parse_ascii_int
from core.parsers import NUL_MESSAGE, PayloadTooLarge, bad_text, body_max_bytes, display_key
from core.request_id import new_request_id, reset_request_id, set_request_id

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
        if response.status_code == 404 and (view := seed_view_for(request.path)) is not None:
            return render_refusal(request, view, (), {}, NotFound("Not found."))  # the seed's own shape
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


_CHUNK = 64 * 1024


class BodyLimitMiddleware:
    """Refusals decided from the request line and headers, before a body or the database is touched.

    - ``Content-Length`` above ``REQUEST_BODY_MAX_BYTES``: 413 ``PAYLOAD_TOO_LARGE``; the body is never
      read (Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` alone does not cover DRF parsers that read the
      request as a stream). A ``Content-Length`` that is not a non-negative integer: 400.
    - A body without ``Content-Length`` (``Transfer-Encoding: chunked``): read here, at most the limit
      (413 beyond), when the server terminates the input (``wsgi.input_terminated``, as gunicorn does);
      else 411 ``LENGTH_REQUIRED`` (the body could not be read safely).
    - NUL or a lone surrogate in a path segment: 404 naming the segment (a segment that names nothing,
      see ``workflows.paths``); in a query parameter's name or value: 400 naming the parameter.

    The error takes the shape of the view that would have answered (a seed adapter answers in its
    seed's shape); elsewhere the core shape. Insert it right after ``RequestIdMiddleware``.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Any, view_args: tuple, view_kwargs: dict) -> Any:
        error = check_body(request) or check_url(request, view_kwargs)
        if error is None:
            return None
        return render_refusal(request, view_func, view_args, view_kwargs, error)


def check_body(request: HttpRequest) -> ApiError | None:
    limit = body_max_bytes()
    declared = request.META.get("CONTENT_LENGTH")
    if declared not in (None, ""):
        text = str(declared).strip()
        if not text or text.strip("0123456789"):
            return InvalidRequest("Content-Length must be a non-negative integer.",
                                  errors={"Content-Length": ["Must be a non-negative integer."]})
        size = parse_ascii_int(text)  # None: more digits than any body this service reads
        return PayloadTooLarge(limit) if size is None or size > limit else None
    if "HTTP_TRANSFER_ENCODING" not in request.META:
        return None  # no body
    environ = getattr(request, "environ", {})
    stream = environ.get("wsgi.input")
    if not environ.get("wsgi.input_terminated") or stream is None:
        return ApiError("Send a Content-Length with the body.", code=ErrorCode.LENGTH_REQUIRED)
    chunks, size = [], 0
    while size <= limit:
        chunk = stream.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        return PayloadTooLarge(limit)
    body = b"".join(chunks)
    request._stream = LimitedStream(io.BytesIO(body), len(body))  # type: ignore[assignment]
    request.META["CONTENT_LENGTH"] = str(len(body))
    return None


def check_url(request: HttpRequest, view_kwargs: dict) -> ApiError | None:
    for name, value in view_kwargs.items():
        if isinstance(value, str) and (message := bad_text(value)):
            return NotFound(f"Not found: the path segment '{name}' cannot name anything.", errors={name: [message]})
    if bad_text(request.path_info):
        return NotFound("Not found: the path cannot name anything.", errors={"path": [NUL_MESSAGE]})
    errors: dict[str, list[str]] = {}
    for key, values in request.GET.lists():
        message = bad_text(key) or next((m for m in map(bad_text, values) if m), None)
        if message:
            errors[display_key(key)] = [message]
    if errors:
        return InvalidRequest("A query parameter holds characters that cannot be accepted.", errors=errors)
    return None


def render_refusal(request: HttpRequest, view_func: Any, view_args: tuple, view_kwargs: dict,
                   error: ApiError) -> HttpResponse:
    """``error`` as the view would have answered it: through a DRF view's own exception handler (a
    seed adapter's shape), else the core shape (plain text outside /api/ and /compat/)."""
    cls = getattr(view_func, "cls", None)
    if isinstance(cls, type) and issubclass(cls, APIView):
        view = cls(**getattr(view_func, "initkwargs", {}))
        view.args, view.kwargs, view.headers = view_args, view_kwargs, {}
        context = {"view": view, "args": view_args, "kwargs": view_kwargs, "request": None}
        response = view.get_exception_handler()(error, context)
        if response is not None:
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = "application/json"
            response.renderer_context = {"view": view, "request": None, "response": response}
            return response.render()
    if request.path.startswith(JSON_PREFIXES):
        return JsonResponse(error_body(error.code, error.message, error.errors, **error.extra),
                            status=error.status_code)
    return HttpResponse(error.message, status=error.status_code, content_type="text/plain; charset=utf-8")
