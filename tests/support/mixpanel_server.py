"""A stand-in for the Mixpanel API endpoints the connector uses, one server per data-residency host.

``serve(mixpanel)`` starts three threaded ``http.server`` instances on loopback, standing for
``mixpanel.com`` (US), ``eu.mixpanel.com`` (EU) and ``in.mixpanel.com`` (IN), and yields
``{region: base_url}``. A project lives in one region: the other regions' servers do not know it.

Answered (JSON shapes of Mixpanel's OpenAPI specs; error texts are the stand-in's own):

- ``HEAD /`` and ``GET /``: 200 (the HTTP probe of stage tcp).
- Every ``/api/...`` call checks ``Authorization: Basic base64(username:secret)``: absent or wrong,
  401 ``{"error": ..., "status": "error"}`` (with ``echo_auth``, the error repeats the header,
  like a hostile server). With ``redirect_to`` set, every ``/api/...`` call is ``302 Location``.
- ``GET /api/app/me``: ``{"status": "ok", "results": {"user_name", "organizations", "projects"}}``.
- ``GET /api/query/events/names?project_id&type&limit``: a JSON array of event names (``type``
  general | unique | average, else 400; ``limit`` default 255).
- ``GET /api/query/events/properties/top?project_id&event&limit``: ``{property: {"count": n}}``
  (``limit`` default 10).
- ``GET /api/app/projects/{id}/schemas[/{entityType}][?entity_name=]``: ``{"status": "ok", "results":
  [{"entityType", "name", "schemaJson": {"description", "properties": {name: {"type", ...}}}}]}``;
  only events with ``lexicon`` set are listed; entity types event | profile (else 400).

Project access (Query and App API alike): a project of another region or unknown: 404; one in
``denied``: 403; the Lexicon endpoints: 403 too with ``lexicon_forbidden``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

REGIONS = ("US", "EU", "IN")
SCHEMAS = re.compile(r"/api/app/projects/(\d+)/schemas(?:/([^/?]+))?")


@dataclass
class Event:
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> Lexicon JSON schema
    lexicon: bool = True  # described in Lexicon (else only seen by the Query API)


@dataclass
class Project:
    events: dict[str, Event] = field(default_factory=dict)
    region: str = "US"
    name: str = "Demo"


@dataclass
class Mixpanel:
    """What the stand-in serves, and what it saw."""

    username: str
    secret: str
    projects: dict[int, Project] = field(default_factory=dict)
    denied: set[int] = field(default_factory=set)  # projects the service account may not read
    redirect_to: str = ""
    echo_auth: bool = False
    lexicon_forbidden: bool = False
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (region, method, path with query)
    urls: dict[str, str] = field(default_factory=dict)

    def api_calls(self, prefix: str = "/api/") -> list[str]:
        return [path for _, _, path in self.requests if path.startswith(prefix)]


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, code: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body if body is not None else {}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, code: int, message: str) -> None:
        self._send(code, {"error": message, "status": "error"})

    def _authorized(self) -> bool:
        mp = self.server.mixpanel
        header = self.headers.get("Authorization") or ""
        expected = base64.b64encode(f"{mp.username}:{mp.secret}".encode()).decode()
        if header == f"Basic {expected}":
            return True
        echo = f" (got {header})" if mp.echo_auth else ""
        self._error(401, f"Unable to authenticate request{echo}")
        return False

    def _project(self, value: str | None) -> Project | None:
        """The project the caller may read, or None after answering the error."""
        mp = self.server.mixpanel
        try:
            project_id = int(value or "")
        except ValueError:
            self._error(400, "project_id is required")
            return None
        project = mp.projects.get(project_id)
        if project is None or project.region != self.server.region:
            self._error(404, f"Project {project_id} not found")
            return None
        if project_id in mp.denied:
            self._error(403, "You do not have permission to view this project")
            return None
        return project

    def do_HEAD(self) -> None:
        self.server.mixpanel.requests.append((self.server.region, "HEAD", self.path))
        self._send(200)

    def do_GET(self) -> None:
        mp = self.server.mixpanel
        mp.requests.append((self.server.region, "GET", self.path))
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if not url.path.startswith("/api/"):
            return self._send(200, {})
        if mp.redirect_to:
            return self._send(302, {}, {"Location": mp.redirect_to})
        if not self._authorized():
            return None
        if url.path == "/api/app/me":
            projects = {str(pid): {"id": pid, "name": p.name} for pid, p in mp.projects.items()
                        if p.region == self.server.region and pid not in mp.denied}
            return self._send(200, {"status": "ok", "results": {
                "user_name": mp.username, "organizations": {"1": {"id": 1, "name": "Acme"}}, "projects": projects}})
        if url.path == "/api/query/events/names":
            return self._event_names(query)
        if url.path == "/api/query/events/properties/top":
            return self._top_properties(query)
        match = SCHEMAS.fullmatch(url.path)
        if match:
            return self._schemas(match.group(1), match.group(2), query.get("entity_name"))
        return self._error(404, "Not found")

    def _event_names(self, query: dict[str, str]) -> None:
        project = self._project(query.get("project_id"))
        if project is None:
            return None
        if query.get("type") not in ("general", "unique", "average"):
            return self._error(400, "type must be general, unique or average")
        limit = int(query.get("limit") or 255)
        return self._send(200, list(project.events)[:limit])

    def _top_properties(self, query: dict[str, str]) -> None:
        project = self._project(query.get("project_id"))
        if project is None:
            return None
        event = project.events.get(query.get("event") or "")
        if event is None:
            return self._send(200, {})
        limit = int(query.get("limit") or 10)
        return self._send(200, {name: {"count": 1} for name in list(event.properties)[:limit]})

    def _schemas(self, project_id: str, entity_type: str | None, entity_name: str | None) -> None:
        project = self._project(project_id)
        if project is None:
            return None
        if self.server.mixpanel.lexicon_forbidden:
            return self._error(403, "Lexicon is not available to this role")
        if entity_type not in (None, "event", "profile"):
            return self._error(400, "entityType must be event or profile")
        results = [] if entity_type == "profile" else [
            {"entityType": "event", "name": name,
             "schemaJson": {"description": "", "properties": event.properties,
                            "metadata": {"com.mixpanel": {"hidden": False, "dropped": False}}}}
            for name, event in project.events.items()
            if event.lexicon and (entity_name is None or entity_name == name)]
        return self._send(200, {"status": "ok", "results": results})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mixpanel: Mixpanel, region: str):
        super().__init__(("127.0.0.1", 0), Handler)
        self.mixpanel = mixpanel
        self.region = region


@contextmanager
def _one(mixpanel: Mixpanel, region: str) -> Iterator[str]:
    server = Server(mixpanel, region)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=f"mixpanel-{region}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve(mixpanel: Mixpanel) -> Iterator[dict[str, str]]:
    """One loopback server per region host; yields ``{region: base_url}`` (also kept in ``mixpanel.urls``)."""
    with ExitStack() as stack:
        mixpanel.urls = {region: stack.enter_context(_one(mixpanel, region)) for region in REGIONS}
        yield mixpanel.urls
