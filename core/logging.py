"""Log formatting: one JSON object per line in production (``LOG_FORMAT=json``), plain text for
local runs; every line carries the current request id, and secrets are scrubbed on the way out.

python-json-logger is a ``logging.Formatter``: Django's, Celery's and this project's loggers keep
the standard library API and become JSON through ``LOGGING`` alone (see ``logging_config``).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from core.request_id import current_request_id

FORMATS = ("json", "text")

# Defence in depth: connectors clean their messages and no log line is meant to hold a secret,
# but an exception text or a third-party library might. Masks the password of a URL
# (scheme://user:PASSWORD@host) and the value of a secret-named key (password=..., "password": ...).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@\"']*:)[^\s\"'/]+(?=@)")
# The catalogue's and the seeds' secret names too: keyfile, sshIdentity, service_account_json,
# ssl_client_key, connection_string (it may carry a password).
_SENSITIVE_NAMES = (
    r"(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|passphrase|"
    r"authorization|client[_-]?secret|credentials?|identity|keyfile|service[_-]?account|client[_-]?key|"
    r"connection[_-]?string)"
)
# A secret-named key (also inside brackets, raw or percent-encoded: credentials[password]), then "=",
# ": " (a space after it) or a quoted key's ":", then the value (quoted, or up to a separator; "Bearer x"
# and "Basic x" whole). "token:name" (an actor) is no pair.
_KEY_VALUE = re.compile(
    rf"(?P<head>\b[\w.\-\[\]%]*{_SENSITIVE_NAMES}[\w.\-\[\]%]*(?:\s*=\s*|:\s+|[\"']\s*:\s*))"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|(?:(?:bearer|basic)\s+)?[^\s,;&)}\]]+)",
    re.IGNORECASE,
)
_ENCODED_URL = re.compile(r"%3A%2F%2F", re.IGNORECASE)
_SENSITIVE_KEY = re.compile(rf".*{_SENSITIVE_NAMES}.*", re.IGNORECASE)
MASK = "***"


def _mask_value(match: re.Match) -> str:
    value = match.group("value")
    if value[:1] in "\"'":
        return f"{match.group('head')}{value[0]}{MASK}{value[0]}"
    return match.group("head") + MASK


def scrub(text: str) -> str:
    """``text`` with URL passwords and secret-named values masked. A line holding a percent-encoded
    URL (a query string's ``postgresql%3A%2F%2Fu%3Apw%40h``) is decoded first, so that its password shows."""
    if not text:
        return text
    if _ENCODED_URL.search(text):
        text = unquote(text)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _KEY_VALUE.sub(_mask_value, text)


def _scrub_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if depth > 4:
        return value
    if isinstance(value, dict):
        return {k: MASK if _SENSITIVE_KEY.fullmatch(str(k)) else _scrub_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_value(v, depth + 1) for v in value]
    return value


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id`` (the HTTP request's, or the Celery task's enqueuing request's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            # django.request logs after the middleware returned: its record carries the request.
            record.request_id = current_request_id() or getattr(getattr(record, "request", None), "request_id", None)
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: ``timestamp``, ``level``, ``logger``, ``message``, ``request_id``,
    any ``extra=`` fields, ``exc_info`` when there is one; string values scrubbed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", True)
        super().__init__("%(levelname)s %(name)s %(message)s %(request_id)s", *args, **kwargs)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return _scrub_value(log_data)


class TextFormatter(logging.Formatter):
    """The plain format of local runs, scrubbed like the JSON one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return scrub(super().format(record))


def logging_config(fmt: str, level: str) -> dict[str, Any]:
    """The ``LOGGING`` dict: one stderr handler in ``fmt`` (json|text) at ``level`` for the root."""
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "core.logging.RequestIdFilter"}},
        "formatters": {
            "json": {"()": "core.logging.JsonFormatter"},
            "text": {"()": "core.logging.TextFormatter"},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": fmt, "filters": ["request_id"]},
        },
        "root": {"handlers": ["console"], "level": level},
        # The access log (core.access_log) has a line for every request: runserver's own lines and
        # django.request's "Bad Request: /path" for each 4xx would repeat it (5xx are still logged,
        # with their traceback).
        "loggers": {
            "django.server": {"handlers": ["console"], "level": "WARNING", "propagate": False},
            "django.request": {"level": "ERROR"},
        },
    }
