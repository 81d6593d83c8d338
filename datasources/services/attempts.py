"""Audit events for what was tried on an existing data source without changing it: dry runs and
connection tests whose change was not applied (failed, refused, or only tested).

Each event says who, which source, which fields were tried (connection values, secrets by name
only), and the outcome. A tested change that is applied is recorded by its ``update`` event instead.
"""

from __future__ import annotations

import re
from typing import Any

from core.errors import ApiError, ErrorCode
from core.logging import scrub
from datasources import catalogue
from datasources.connectors import TestResult
from datasources.models import DataSource
from datasources.services import audit, outbox
from organizations.actors import Actor

MAX_VALUE_LENGTH = 200
#: ``user:password@`` at the start of a value without a scheme (a host typed as ``postgres:pw@db``)
_USERINFO = re.compile(r"^(?P<user>[^\s:/@]*):(?!//)[^@]*@")
#: Body keys whose values are never recorded, only their names.
NAMES_ONLY = frozenset({"credentials", "connection_string"})


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _flatten(child, f"{prefix}.{key}", out)
        return
    if isinstance(value, str):
        value = _USERINFO.sub(r"\g<user>:***@", scrub(value))  # a password typed into a plain field
        if len(value) > MAX_VALUE_LENGTH:
            value = value[:MAX_VALUE_LENGTH] + "..."
    out[prefix] = value if value is None or isinstance(value, str | int | float | bool) else type(value).__name__


def _sent(value: Any) -> str:
    return "cleared" if value is None else "sent"


def tried_fields(data: dict[str, Any], source_type: catalogue.SourceType | None = None) -> dict[str, Any]:
    """Dotted path -> value for what a body sets. Secrets, connection strings and connection keys
    the type does not declare (a password sent in the wrong place) appear as "sent"/"cleared" only."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "credentials" and isinstance(value, dict):
            out.update({f"credentials.{name}": _sent(v) for name, v in value.items()})
        elif key in NAMES_ONLY:
            out[key] = _sent(value)
        else:
            _flatten(value, str(key), out)
    for path in [p for p in out if p.startswith("connection.")]:
        declared = source_type.field(path.removeprefix("connection.")) if source_type else None
        if declared is None or declared.kind == "object":
            out[path] = _sent(out[path])
    return out


def _outcome(test: TestResult | None, error: ApiError | None) -> str:
    if test is not None and not test.ok:
        return "failed"
    if error is not None:
        return "refused" if test is None else "not_applied"
    return "passed" if test is not None else "validated"


def record_attempt(
    *,
    actor: Actor,
    data_source: DataSource,
    action: str,
    trigger: str,
    data: dict[str, Any] | None = None,
    test: TestResult | None = None,
    error: ApiError | None = None,
) -> None:
    """One audit event: ``action`` is ``dry_run`` or ``test``; ``trigger`` the request that asked.
    A failed test is also a ``data_source.test_failed`` event."""
    detail: dict[str, Any] = {"trigger": trigger, "outcome": _outcome(test, error)}
    if data is not None:
        detail["tried"] = tried_fields(data, catalogue.CATALOGUE.get(data_source.type))
    if test is not None:
        detail["test"] = test.as_dict()
    if error is not None:
        detail["code"] = error.code
    audit.record(actor=actor, action=action, target=data_source, detail=detail)
    if test is not None and not test.ok:  # a failed test is answered 400 CREDENTIAL_TEST_FAILED
        outbox.test_failed(data_source, actor, test, trigger,
                           error.code if error is not None else ErrorCode.CREDENTIAL_TEST_FAILED)


def failed_test(error: ApiError) -> TestResult | None:
    """The failing test carried by a CREDENTIAL_TEST_FAILED error, if that is what it is."""
    result = getattr(error, "test_result", None)
    return result if isinstance(result, TestResult) else None
