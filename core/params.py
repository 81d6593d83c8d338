"""Query-string parameters, and the empty body of an action, shared by the API views of every app."""

from __future__ import annotations

from rest_framework.request import Request

from core.errors import InvalidRequest

TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


def single_param(request: Request, name: str) -> str | None:
    """The one value of query parameter ``name`` (None when absent); given twice, a 400 (Django keeps the
    last: ``?dry_run=true&dry_run=false`` would apply a write, ``?type=a&type=b`` list b's alone)."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(f"Query parameter '{name}' is given {len(values)} times: give it once.",
                             errors={name: ["Give this parameter once (one value)."]})
    return values[0] if values else None


def bool_param(request: Request, name: str, default: bool) -> bool:
    """``?name=true|1|yes`` or ``false|0|no`` (any case); ``default`` when absent, else a 400 (given
    twice too: ``single_param``)."""
    raw = single_param(request, name)
    if raw is None:
        return default
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise InvalidRequest(f"Query parameter '{name}' must be true or false.", errors={name: ["Must be true or false."]})


def only_query(request: Request, *names: str) -> None:
    """A write that reads the query parameters ``names`` refuses any other: a misspelt ``?dryrun=true``
    or ``?Purge=true`` would otherwise be ignored, and the write applied (or kept) for real."""
    unknown = sorted(set(request.query_params.keys()) - set(names))
    if unknown:
        listed = ", ".join(f"'{name}'" for name in unknown)
        known = ", ".join(names) or "none"
        raise InvalidRequest(f"Unknown query parameter {listed}: this request takes {known}.",
                             errors={name: [f"Unknown query parameter; this request takes: {known}."]
                                     for name in unknown})


def require_no_body(request: Request) -> None:
    """An action that takes no body (restore, apply, test, ...) refuses one before it acts: a malformed
    body is DRF's 400, a field is a 400 naming it. Sent to such an action, it would be ignored silently."""
    data = request.data
    if not data:
        return
    if hasattr(data, "keys"):
        raise InvalidRequest("This action takes no body.", errors={str(key): ["Unknown field."] for key in data.keys()})
    raise InvalidRequest("This action takes no body.", errors={"body": ["Send no body."]})


def require_no_query(request: Request, meant: str = "") -> None:
    """An action that takes no query parameters refuses them: ``?dry_run=true`` sent to a plan's create
    or apply would otherwise be ignored, and a client expecting a dry run would get the real thing.
    ``meant``: what to use instead, added to the message."""
    names = sorted(request.query_params.keys())
    if names:
        listed = ", ".join(f"'{name}'" for name in names)
        raise InvalidRequest(f"This action takes no query parameters: {listed}.{' ' + meant if meant else ''}",
                             errors={name: ["Unknown query parameter."] for name in names})
