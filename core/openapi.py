"""Shared OpenAPI pieces: the one ``Error`` component, error responses and the generic hook.

Every API error has the shape built by ``core.errors`` (``Error`` below). Views describe
their specific errors with ``error_response(...)`` inside ``extend_schema``; the
``postprocess_errors`` hook (in ``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``) adds the
ones every operation can answer (401, 403, 404 on paths with an id, 429, 500), the
``X-Request-ID`` header on every response and the shared components. Lists also answer 400 for a
malformed query parameter.
"""

from __future__ import annotations

import copy
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from core.errors import ERROR_CATALOGUE, ErrorCode

SCHEMAS = "#/components/schemas/"
HEADERS = "#/components/headers/"
#: the 400 of an action that takes no body (core.params.require_no_body)
NO_BODY = "A body was sent (this action takes none): malformed, or fields it does not read. Nothing was changed."


def ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


#: The one schema ``null`` (and nothing else) matches: drf-spectacular's own component for nullable choices.
NULL_ENUM = "NullEnum"


def nullable_ref(name: str, **extra: Any) -> dict[str, Any]:
    """A nullable reference that strict OpenAPI 3.0.3 accepts ``null`` for: ``oneOf`` the component and
    ``NullEnum``. (``{"allOf": [$ref], "nullable": true}`` does not: ``nullable`` only widens a ``type``
    of its own schema object, and the referenced object's ``type: object`` refuses ``null``.)"""
    return {"oneOf": [ref(name), ref(NULL_ENUM)], "nullable": True, **extra}


ERROR_REF = ref("Error")

#: "Not blank" (and no NUL, which DRF refuses in every string): at least one character that Python's
#: ``str.strip()`` keeps, which is what DRF's ``CharField`` (and the catalogue) trim before refusing a
#: blank value. ECMA-262 and Rust regex ``\s`` leave out U+001C-U+001F and U+0085, which Python strips,
#: so they are excluded explicitly; ECMA-262 ``\s`` includes U+FEFF, which Python keeps: allowed back.
NOT_BLANK = r"^[^\x00]*(?:[^\s\x1c-\x1f\x85\x00]|\ufeff)[^\x00]*$"
#: A string that holds a JSON object (secrets and metadata sent as JSON text).
JSON_OBJECT = r"^[ \t\n\r]*\{[\s\S]*\}[ \t\n\r]*$"
STRING, BOOLEAN, INTEGER = {"type": "string"}, {"type": "boolean"}, {"type": "integer"}
DATE_TIME = {"type": "string", "format": "date-time"}


def object_schema(**props: Any) -> dict[str, Any]:
    """An object whose properties are all required (always present in responses)."""
    return {"type": "object", "required": list(props), "properties": props}


def array_schema(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


TEST_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Outcome of a staged connection test. Messages are cleaned: never a secret.",
    "required": ["ok", "stage", "message", "stages", "duration_ms", "server_version"],
    "properties": {
        "ok": {"type": "boolean"},
        "stage": {"type": "string", "nullable": True,
                  "description": "The failing stage (resolve, tcp, tls, ssh, auth, database, introspect); "
                                 "null when the test passed."},
        "message": {"type": "string"},
        "stages": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "ok", "duration_ms", "message"],
            "properties": {"name": {"type": "string"}, "ok": {"type": "boolean"},
                           "duration_ms": {"type": "number"}, "message": {"type": "string"}},
        }},
        "duration_ms": {"type": "number"},
        "server_version": {"type": "string", "nullable": True},
        "ssh_host_key_fingerprint": {"type": "string", "nullable": True,
                                     "description": "Host key seen through an SSH tunnel with no pinned key."},
        "tested_at": {"type": "string", "format": "date-time",
                      "description": "Only on stored results (a data source's `last_test`)."},
    },
}


def _code_table() -> str:
    rows = "\n".join(f"| `{code}` | {status} | {text} |" for code, (status, text) in ERROR_CATALOGUE.items())
    return "| code | HTTP status | meaning |\n|---|---|---|\n" + rows


def error_components() -> dict[str, dict[str, Any]]:
    return {
        "ErrorCode": {
            "type": "string",
            "enum": list(ERROR_CATALOGUE),
            "description": "Stable, machine-readable error code.\n\n" + _code_table(),
        },
        "Error": {
            "type": "object",
            "description": "The body of every error response. Some codes add the properties marked as theirs.",
            "required": ["code", "message", "errors", "request_id"],
            "properties": {
                "code": ref("ErrorCode"),
                "message": {"type": "string", "description": "Human-readable; never contains a secret."},
                "errors": {
                    "type": "object",
                    "description": "Per-field messages keyed by dotted path "
                                   "(`connection.ssh_tunnel.host`, `credentials.password`); may be empty.",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
                "request_id": {"type": "string", "description": "Same value as the X-Request-ID header."},
                "stage": {"type": "string", "nullable": True,
                          "description": "`CREDENTIAL_TEST_FAILED` only: the failing stage."},
                "test": {**nullable_ref("TestResult"),
                         "description": "`CREDENTIAL_TEST_FAILED` only: the full test result."},
                "schema_version": {"type": "integer", "nullable": True,
                                   "description": "`SCHEMA_CACHE_FAILED` only: the snapshot version still current."},
                "retry_after": {"type": "integer", "description": "`RATE_LIMITED` only: seconds to wait."},
            },
        },
        "TestResult": copy.deepcopy(TEST_RESULT_SCHEMA),
    }


RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "Id of this request (the client's X-Request-ID when well-formed, else a new one); "
                       "also in error bodies and audit events.",
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": "Current version of the data source; send it back in If-Match to update safely.",
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    "WWW-Authenticate": {"description": "The expected authentication scheme.", "schema": {"type": "string"}},
}

_DEFAULTS: dict[int, tuple[str, tuple[str, ...]]] = {
    400: ("Invalid request.", (ErrorCode.INVALID_REQUEST_BODY,)),
    401: ("Not authenticated: missing, unknown, expired or revoked credentials.",
          (ErrorCode.AUTHENTICATION_ERROR,)),
    403: ("Not allowed: the token lacks a scope or the role cannot make changes.", (ErrorCode.FORBIDDEN,)),
    404: ("Not found, or not in your organization.", (ErrorCode.NOT_FOUND,)),
    409: ("Conflict with the current state.", (ErrorCode.CONFLICT,)),
    412: ("If-Match does not match the current ETag; read again and retry.", (ErrorCode.PRECONDITION_FAILED,)),
    411: ("A chunked body whose end the server cannot find; send a Content-Length.", (ErrorCode.LENGTH_REQUIRED,)),
    413: ("The body is larger than REQUEST_BODY_MAX_BYTES; it was not read.", (ErrorCode.PAYLOAD_TOO_LARGE,)),
    415: ("A body whose Content-Type is not JSON (`application/json`, `application/merge-patch+json`); "
          "nothing was changed.", (ErrorCode.UNSUPPORTED_MEDIA_TYPE,)),
    429: ("Too many requests; see Retry-After.", (ErrorCode.RATE_LIMITED,)),
    500: ("Server error.", (ErrorCode.INTERNAL_SERVER_ERROR,)),
}


def _describe(status: int, codes: tuple[str, ...], description: str) -> str:
    default_text, default_codes = _DEFAULTS.get(status, ("Error.", ()))
    codes = codes or default_codes
    text = description or default_text
    return text + (" Codes: " + ", ".join(f"`{c}`" for c in codes) + "." if codes else "")


def error_response(status: int, *codes: str, description: str = "") -> OpenApiResponse:
    """For ``extend_schema(responses={status: error_response(status, CODE, ...)})``."""
    return OpenApiResponse(response=ERROR_REF, description=_describe(status, codes, description))


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """``{status: error_response(status)}`` for each status, with the default description and codes."""
    return {status: error_response(status) for status in statuses}


def if_match_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        "If-Match", str, OpenApiParameter.HEADER, required=False,
        description="An ETag from an earlier read; the change is refused with 412 if the resource has "
                    "changed since. Recommended for every write.",
    )


def etag_header(*statuses: int) -> OpenApiParameter:
    """``ETag`` response header on the given success statuses."""
    return OpenApiParameter("ETag", str, OpenApiParameter.HEADER, response=list(statuses),
                            description=RESPONSE_HEADERS["ETag"]["description"])


# --- the hook ------------------------------------------------------------------------------------

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": dict(ERROR_REF)}}


def _requires_auth(operation: dict[str, Any]) -> bool:
    security = operation.get("security")
    return bool(security) and {} not in (security or [])


def _is_paginated(operation: dict[str, Any]) -> bool:
    return any(p.get("in") == "query" and p.get("name") == "page" for p in operation.get("parameters", []))


def _close_request_bodies(schemas: dict[str, Any]) -> None:
    """Request bodies reject unknown fields (400 naming them): say so with ``additionalProperties: false``.

    Applies to the request components drf-spectacular splits out (``*Request``), not to the
    per-type unions (``oneOf``) nor to components that already state their extra properties.
    """
    for name, component in schemas.items():
        if (name.endswith("Request") and isinstance(component, dict) and component.get("type") == "object"
                and "properties" in component and "additionalProperties" not in component):
            component["additionalProperties"] = False


MERGE_PATCH = "application/merge-patch+json"


def _merge_patch_only_on_patch(method: str, operation: dict[str, Any]) -> None:
    """JSON Merge Patch (RFC 7396) is a PATCH format: list it on PATCH bodies only.

    The parser is global, so drf-spectacular lists it on every body; on POST and PUT it doubled
    the request body and tripped code generators (openapi-python-client emitted a body union
    referencing an unimported ``Unset``).
    """
    content = operation.get("requestBody", {}).get("content", {})
    if method != "patch" and MERGE_PATCH in content and len(content) > 1:
        del content[MERGE_PATCH]


LIST_400 = "A query parameter is malformed: `page`, `page_size`, `ordering` or a filter (an empty value too)."


WRITE_METHODS = ("post", "put", "patch")


def _add_default_errors(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    wanted = [429, 500]
    if _requires_auth(operation):
        wanted = [401, 403, *wanted]
    if "{" in path or _is_paginated(operation):
        wanted.append(404)  # no such object, or (lists) a page past the last
    if _is_paginated(operation):
        wanted.append(400)  # a malformed page, page size, ordering or filter value
    for status in wanted:
        key = str(status)
        if key not in responses:
            text = LIST_400 if status == 400 else ""
            responses[key] = {"description": _describe(status, (), text), "content": _error_content()}
    if "requestBody" in operation:  # the body limit answers before the view, in the view's error shape
        shape = responses.get("400", {}).get("content") or _error_content()
        for status in (411, 413):
            responses.setdefault(str(status), {"description": _describe(status, (), ""), "content": shape})
    if method in WRITE_METHODS:
        # Every write reads its body through DRF's parsers, the actions that take none too (to refuse one):
        # a body of another Content-Type is 415 before the view acts. A seed adapter answers in its own shape.
        shape = _error_content() if path.startswith("/api/") else (
            responses.get("400", {}).get("content") or _error_content())
        responses.setdefault("415", {"description": _describe(415, (), ""), "content": shape})
    if "401" in responses:
        responses["401"].setdefault("headers", {})["WWW-Authenticate"] = {"$ref": HEADERS + "WWW-Authenticate"}
    if "429" in responses:
        responses["429"].setdefault("headers", {})["Retry-After"] = {"$ref": HEADERS + "Retry-After"}


_NOT_SCHEMAS = ("example", "examples", "enum", "default", "required", "discriminator")


def _nullable_members(node: Any) -> Any:
    """drf-spectacular's nullable nested object, ``{"allOf": [X], "nullable": true}``, becomes ``{"oneOf": [X,
    NullEnum], "nullable": true}`` (as ``nullable_ref``): under strict OpenAPI 3.0.3 ``null`` is invalid for
    the first (``nullable`` without a ``type`` of its own widens nothing, and ``X`` refuses ``null``), so a
    validator refused the real bodies (a data source without tenancy settings, a node without an output
    table). Code generators read both as ``X | None``."""
    if isinstance(node, list):
        return [_nullable_members(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: {name: _nullable_members(sub) for name, sub in v.items()} if k == "properties" and isinstance(v, dict)
           else v if k in _NOT_SCHEMAS else _nullable_members(v) for k, v in node.items()}
    if (out.get("nullable") is True and "type" not in out and len(out.get("allOf", ())) == 1
            and not {"oneOf", "anyOf"} & out.keys()):
        member = out.pop("allOf")[0]
        out = {"oneOf": [member, ref(NULL_ENUM)], **out}
    return out


def _link_headers(operation: dict[str, Any]) -> None:
    for response in operation.get("responses", {}).values():
        if "$ref" in response:
            continue
        headers = response.setdefault("headers", {})
        for name in ("ETag",):
            if name in headers:
                headers[name] = {"$ref": HEADERS + name}
        headers["X-Request-ID"] = {"$ref": HEADERS + "X-Request-ID"}


def _sorted_responses(operation: dict[str, Any]) -> None:
    responses = operation.get("responses", {})
    operation["responses"] = {k: responses[k] for k in sorted(responses)}


def _refuses_empty(schema: dict[str, Any], schemas: dict[str, Any], depth: int = 0) -> bool:
    """Whether ``{}`` is invalid: something is required (or a ``not`` rule applies), in every member."""
    if "$ref" in schema and depth < 5:
        return _refuses_empty(schemas.get(schema["$ref"].removeprefix(SCHEMAS), {}), schemas, depth + 1)
    members = schema.get("oneOf") or schema.get("anyOf")
    if members:
        return all(_refuses_empty(m, schemas, depth + 1) for m in members)
    return bool(schema.get("required")) or "not" in schema


def _require_bodies(result: dict[str, Any]) -> None:
    """A body that cannot be empty is a required body: sending none is refused like sending ``{}``."""
    schemas = result.get("components", {}).get("schemas", {})
    for item in result.get("paths", {}).values():
        for method in HTTP_METHODS:
            body = (item.get(method) or {}).get("requestBody")
            if not body or body.get("required"):
                continue
            content = body.get("content", {})
            if content and all(_refuses_empty(media.get("schema", {}), schemas) for media in content.values()):
                body["required"] = True


SCHEMA_LISTS, SCHEMA_VALUES = ("allOf", "anyOf", "oneOf"), ("items", "not", "additionalProperties")


def _strip_defaults(schema: Any, schemas: dict[str, Any], seen: set[str]) -> None:
    """Remove ``default`` from ``schema`` and every schema it reaches (``$ref`` included, once each)."""
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(SCHEMAS)
        if name not in seen and name in schemas:
            seen.add(name)
            _strip_defaults(schemas[name], schemas, seen)
        return
    schema.pop("default", None)
    for prop in schema.get("properties", {}).values():  # property *names* may be "default": not keywords
        _strip_defaults(prop, schemas, seen)
    for key in SCHEMA_LISTS:
        for member in schema.get(key, ()):
            _strip_defaults(member, schemas, seen)
    for key in SCHEMA_VALUES:
        _strip_defaults(schema.get(key), schemas, seen)


def _no_defaults_in_patch_bodies(result: dict[str, Any]) -> None:
    """A PATCH changes only what it sends: its request shapes carry no ``default``.

    A code generator turns a default into the initial value of a model attribute, which the client then
    sends (openapi-python-client's PATCH sent port 5432, schema ``public``, ``read_only``...) and which
    overwrites the stored value the caller never set. Defaults stay on the create and PUT shapes, where
    an omitted field does take its default.
    """
    schemas = result.get("components", {}).get("schemas", {})
    seen: set[str] = set()
    for item in result.get("paths", {}).values():
        body = (item.get("patch") or {}).get("requestBody", {})
        for media in body.get("content", {}).values():
            _strip_defaults(media.get("schema"), schemas, seen)


EXAMPLE_ORIGIN = "https://dsp.example.com"
EXAMPLE_PATH_VALUES = {"id": "42", "workflow": "7", "data_source": "3", "node": "12", "table": "clean_customers"}


def _page_examples(result: dict[str, Any]) -> None:
    """Fixed, realistic examples on the paginated lists (DRF's are ``http://api.example.org/accounts/``).

    Each ``Paginated*List`` component gets the URLs of the list operation that answers it.
    """
    schemas = result.get("components", {}).get("schemas", {})
    for path, item in sorted(result.get("paths", {}).items()):
        content = ((item.get("get") or {}).get("responses", {}).get("200", {}).get("content", {}))
        schema = content.get("application/json", {}).get("schema", {})
        target = schema.get("$ref", "").removeprefix(SCHEMAS)
        page = schemas.get(target) if target.startswith("Paginated") else None
        if page is None and {"next", "previous", "results"} <= schema.get("properties", {}).keys():
            page = schema  # a page described in place (the events' list)
        if page is None or "_examples_from" in page:
            continue
        url = EXAMPLE_ORIGIN + path
        for name, value in EXAMPLE_PATH_VALUES.items():
            url = url.replace("{" + name + "}", value)
        props = page.get("properties", {})
        examples: dict[str, object] = {"count": 120, "next": f"{url}?page=3", "previous": f"{url}?page=1"}
        for prop, example in examples.items():
            if prop in props:
                props[prop]["example"] = example
        if page is not schema:
            page["_examples_from"] = path
    for component in schemas.values():
        if isinstance(component, dict):
            component.pop("_examples_from", None)


# --- size: shared pieces said once --------------------------------------------------------------

def _pointer(parts: list[str]) -> str:
    return SCHEMAS + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


SHARE_MIN_CHARS = 300


def _share_rule_fragments(schemas: dict[str, Any]) -> None:
    """A cross-field rule (a ``not``) said word for word in several components is said once: the later
    ones ``$ref`` the first (a JSON pointer into its component). The per-type components repeat the same
    rules (SSH tunnel, TLS, secrets) for every type of a family. Only inside ``not``, which code generators
    do not read, so no model changes; validators resolve the pointer."""
    import json

    first: dict[str, list[str]] = {}

    def visit(node: Any, parts: list[str], in_not: bool, wrapped: bool) -> Any:
        if isinstance(node, list):
            return [visit(v, [*parts, str(i)], in_not, wrapped) for i, v in enumerate(node)]
        if not isinstance(node, dict) or "$ref" in node:
            return node
        if in_not and not wrapped:
            key = json.dumps(node, sort_keys=True, default=str)
            if len(key) >= SHARE_MIN_CHARS:
                if key in first:
                    return {"$ref": _pointer(first[key])}
                first[key] = parts
        # A nullable node without `type` is wrapped by OpenAPI-to-JSON-Schema converters: no pointer
        # may pass through it.
        wrapped = wrapped or (node.get("nullable") is True and "type" not in node)
        out = {}
        for k, v in node.items():
            if k == "properties" and isinstance(v, dict):
                out[k] = {name: visit(sub, [*parts, k, name], in_not, wrapped) for name, sub in v.items()}
            elif k in ("enum", "required", "example", "examples", "default", "discriminator"):
                out[k] = v
            else:
                out[k] = visit(v, [*parts, k], in_not or k == "not", wrapped)
        return out

    for name in sorted(schemas):
        schemas[name] = visit(schemas[name], [name], False, False)


def postprocess_errors(result: dict[str, Any], generator: Any = None, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: shared error responses, headers and components."""
    for path, item in result.get("paths", {}).items():
        for method in HTTP_METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            _merge_patch_only_on_patch(method, operation)
            _add_default_errors(path, method, operation)
            _link_headers(operation)
            _sorted_responses(operation)
    components = result.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(error_components())  # the one Error shape, whatever a serializer called "Error" said
    schemas.setdefault(NULL_ENUM, {"enum": [None]})
    result["paths"] = _nullable_members(result.get("paths", {}))
    schemas.update(_nullable_members(schemas))
    _close_request_bodies(schemas)
    _require_bodies(result)
    _no_defaults_in_patch_bodies(result)
    _page_examples(result)
    _share_rule_fragments(schemas)
    components["schemas"] = dict(sorted(schemas.items()))
    components.setdefault("headers", {}).update(copy.deepcopy(RESPONSE_HEADERS))
    return result


class NonBlankCharFieldExtension(OpenApiSerializerFieldExtension):
    """A request string that DRF trims and refuses when blank says so with ``pattern: NOT_BLANK``."""

    target_class = "rest_framework.fields.CharField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        field = self.target
        schema = auto_schema._map_serializer_field(field, direction, bypass_extensions=True)
        if (direction == "request" and not field.read_only and not field.allow_blank and field.trim_whitespace
                and schema.get("type") == "string" and not {"pattern", "format", "enum"} & schema.keys()):
            schema["pattern"] = NOT_BLANK
        return schema


class JSONObjectFieldExtension(OpenApiSerializerFieldExtension):
    """``JSONObjectField`` only accepts JSON objects: say so instead of "any value"."""

    target_class = "core.serializers.JSONObjectField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": {}}
