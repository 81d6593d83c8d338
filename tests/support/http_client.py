"""One plain HTTP request with the standard library, for tests that drive a served app over loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def http_request(url: str, method: str, *, token: str | None = None, body: Any = None,
                 headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, dict[str, str], Any]:
    """(status, headers, decoded JSON body or text); an HTTP error status is returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            status, raw, head = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, raw, head = exc.code, exc.read(), dict(exc.headers)
    text = raw.decode("utf-8", "replace")
    try:
        return status, head, json.loads(text) if text else None
    except ValueError:
        return status, head, text
