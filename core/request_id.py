"""The current request's id, available to errors, logs, audit records and Celery tasks.

An incoming ``X-Request-ID`` is kept when it is 1 to 128 ASCII letters, digits or ``._:-`` (a
proxy's or a caller's id joins the logs); anything else (too long, spaces, other characters, a
trailing newline) is replaced by a new id (32 hex digits). The response echoes the id in use.
"""

import contextvars
import re
import uuid

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
MAX_LENGTH = 128
_VALID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_LENGTH}}}")


def new_request_id(incoming: str | None = None) -> str:
    """Accept a well-formed incoming X-Request-ID, else mint one."""
    if incoming and isinstance(incoming, str) and _VALID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def set_request_id(value: str | None) -> contextvars.Token:
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token) -> None:
    _request_id.reset(token)


def current_request_id() -> str | None:
    return _request_id.get()
