"""The connector contract, run through the native API against a live peer (server, emulator or stand-in).

Every connector test module describes its type once (a ``Contract``) and calls ``run_contract``:
create, PATCH a connection field, PUT, dry run and ``/test/`` with a real test; a wrong secret
failing at stage ``auth``; an unreachable endpoint failing at ``tcp`` within the timeout plus a
second; a blocked address failing at ``tcp`` with zero connection attempts; the schema cached
after apply; a canary secret never in a response, a log line or an audit record.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

URL = "/api/v1/data-sources/"
BLOCKED_IP = "169.254.169.254"  # cloud metadata: closed whatever DATASOURCE_ALLOWED_NETWORKS says


@dataclass
class Contract:
    """One type's live configuration and the changes that must pass or fail at a given stage."""

    type_key: str
    connection: dict[str, Any]  # reaches the live peer
    credentials: dict[str, str]  # the right secrets; one of them should contain ``canary``
    tables: set[str]  # table names the schema cache must hold after apply
    patch: dict[str, Any]  # a connection change that still works (not a destination change)
    wrong_credentials: dict[str, str]  # fails at stage auth
    unreachable: dict[str, Any]  # connection change to a closed port / silent address (secrets resent)
    blocked: dict[str, Any]  # connection change to BLOCKED_IP (secrets resent)
    canary: str = ""  # a secret value that must never be echoed
    stages: tuple[str, ...] = ("resolve", "tcp", "auth", "database")  # stages a passing test reports
    connection_timeout: int = 3
    extra: dict[str, Any] = field(default_factory=dict)  # other create fields (description, tags...)


def create_body(contract: Contract, name: str = "") -> dict[str, Any]:
    return {"name": name or f"{contract.type_key} live", "type": contract.type_key,
            "connection": contract.connection, "credentials": contract.credentials,
            "connection_timeout": contract.connection_timeout, **contract.extra}


@contextmanager
def connect_attempts() -> Iterator[list[Any]]:
    """Every socket connect of this process while the block runs (address tuples)."""
    seen: list[Any] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> Any:
        seen.append(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        seen.append(address)
        return real_connect_ex(self, address)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex  # type: ignore[method-assign]


def assert_no_canary(contract: Contract, *texts: Any) -> None:
    if not contract.canary:
        return
    for text in texts:
        rendered = text if isinstance(text, str) else json.dumps(text, default=str)
        assert contract.canary not in rendered, "a secret value leaked"


def _failed_at(response: Any, stage: str) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == 400, body
    assert body["code"] == "CREDENTIAL_TEST_FAILED", body
    assert body["stage"] == stage, body
    return body


def _state(api: Any, pk: int) -> dict[str, Any]:
    body = api.get(f"{URL}{pk}/").json()
    return {k: body[k] for k in ("version", "connection", "credentials_set", "status")}


def run_contract(api: Any, contract: Contract, caplog: Any) -> dict[str, Any]:
    """The whole contract through the native API; returns the created source's final representation."""
    caplog.set_level(logging.DEBUG)
    created = api.post(URL, create_body(contract), format="json")
    assert created.status_code == 201, created.json()
    source = created.json()
    pk = source["id"]
    assert source["status"] == "active" and source["last_test"]["ok"] is True, source
    reported = [s["name"] for s in source["last_test"]["stages"]]
    for stage in contract.stages:
        assert stage in reported, (stage, reported)
    assert all(s["duration_ms"] >= 0 for s in source["last_test"]["stages"])
    schema = api.get(f"{URL}{pk}/schema/").json()
    assert contract.tables <= {t["name"] for t in schema["tables"]}, schema
    assert all(t["columns"] for t in schema["tables"] if t["name"] in contract.tables)

    patched = api.patch(f"{URL}{pk}/", {"connection": contract.patch}, format="json")
    assert patched.status_code == 200, patched.json()
    assert patched.json()["last_test"]["ok"] is True
    for key, value in contract.patch.items():
        assert patched.json()["connection"][key] == value

    put = api.put(f"{URL}{pk}/", {"name": f"{contract.type_key} live", "connection": contract.connection,
                                   "connection_timeout": contract.connection_timeout}, format="json")
    assert put.status_code == 200, put.json()
    assert put.json()["last_test"]["ok"] is True and put.json()["connection"] == source["connection"]

    before = _state(api, pk)
    dry = api.patch(f"{URL}{pk}/?dry_run=true", {"connection": contract.patch}, format="json")
    assert dry.status_code == 200, dry.json()
    assert dry.json()["dry_run"] is True and dry.json()["test"]["ok"] is True
    assert _state(api, pk) == before

    tested = api.post(f"{URL}{pk}/test/")
    assert tested.status_code == 200 and tested.json()["ok"] is True, tested.json()

    wrong = api.patch(f"{URL}{pk}/", {"credentials": contract.wrong_credentials}, format="json")
    _failed_at(wrong, "auth")
    assert _state(api, pk) == before

    start = time.monotonic()
    closed = api.patch(f"{URL}{pk}/", {"connection": contract.unreachable, "credentials": contract.credentials},
                       format="json")
    assert time.monotonic() - start < contract.connection_timeout + 1.5
    _failed_at(closed, "tcp")
    assert _state(api, pk) == before

    with connect_attempts() as attempts:
        blocked = api.patch(f"{URL}{pk}/", {"connection": contract.blocked, "credentials": contract.credentials},
                            format="json")
    _failed_at(blocked, "tcp")
    assert not [a for a in attempts if isinstance(a, tuple) and a and a[0] == BLOCKED_IP], attempts
    assert _state(api, pk) == before

    history = api.get(f"{URL}{pk}/history/").json()
    final = api.get(f"{URL}{pk}/").json()
    assert_no_canary(contract, source, patched.json(), put.json(), dry.json(), tested.json(), wrong.json(),
                     closed.json(), blocked.json(), history, final, caplog.text)
    return final
