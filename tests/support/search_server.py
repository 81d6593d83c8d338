"""An Elasticsearch 8/9 or OpenSearch 2 stand-in: the REST calls the official Python clients make, on 127.0.0.1.

``SearchServer(product="elasticsearch", version="8.15.0")`` (or ``"9.1.0"``) or ``product="opensearch",
version="2.15.0"``, over HTTP, or HTTPS with ``tls`` (a server certificate from ``tests.support.certs``; the
handshake runs in the connection's own thread). Endpoints answered (anything else: 404):

- ``GET /`` and ``HEAD /``: the cluster info {name, cluster_name, cluster_uuid, version, tagline}; Elasticsearch's
  ``version`` has ``build_flavor`` "default", OpenSearch's has ``distribution`` "opensearch".
- ``GET /_cat/indices`` (``format=json``, ``h=`` columns, ``expand_wildcards``, default ``all``): one object per
  index (health, status, index, uuid, pri, rep, docs.count, docs.deleted, store.size, pri.store.size); without
  ``format=json`` the same rows as text.
- ``GET /_mapping`` and ``GET /<index>[,<index>...]/_mapping`` (wildcards allowed): {index: {"mappings": {...}}}.
  ``expand_wildcards`` open (the default) leaves hidden indices out (names starting with "." and data stream
  backing indices ``.ds-*``); ``hidden`` or ``all`` includes them. An unknown concrete index: 404
  ``index_not_found_exception``.
- ``GET /_alias`` and ``GET /_aliases``: {index: {"aliases": {alias: {}}}} for every index (and data stream).
- ``GET /_data_stream``: {"data_streams": [{name, timestamp_field, indices [{index_name, index_uuid}],
  generation, status, template, hidden, system}]}; OpenSearch leaves hidden/system out of the object.
- ``GET /_cluster/health``: {cluster_name, status "green", number_of_nodes, ...}.
- ``GET /_nodes/http`` and ``GET /_nodes/_all/http`` (what sniffing asks): nodes whose ``http.publish_address`` is
  ``announce`` ("host:port", somewhere else: a cluster steering clients away).

Security, with ``users`` (name -> password): every request needs ``Authorization: Basic``. Missing or wrong:
401 with ``WWW-Authenticate`` (Elasticsearch: ``Basic realm="security" charset="UTF-8"`` and a
``security_exception`` JSON body; OpenSearch: ``Basic realm="OpenSearch Security"`` and the text "Unauthorized").
A user listed in ``privileges`` holds only those: "main" (``GET /``), "monitor" (``_cat``, ``_cluster``,
``_nodes``), "view_index_metadata" (``_mapping``, ``_alias``, ``_data_stream``); anything else answers 403
``security_exception`` worded as each product words it.

Elasticsearch only, as the real server: every response carries ``X-Elastic-Product: Elasticsearch``; an
``Accept`` or ``Content-Type`` of ``application/vnd.elasticsearch+json; compatible-with=N`` with N outside what
the version accepts (8: 7 or 8; 9: 8 or 9) answers 400 ``media_type_header_exception``, and a compatible request
is answered with that media type. OpenSearch answers ``application/json; charset=UTF-8`` whatever the Accept.
Records: ``requests`` (method, path, headers looked up case-insensitively).
Start with ``with SearchServer(...) as server:`` (ephemeral port, daemon threads).
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import secrets
import ssl
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.certs import Issued

ALL_PRIVILEGES = frozenset({"main", "monitor", "view_index_metadata"})
COMPAT = re.compile(r"application/vnd\.elasticsearch\+json;\s*compatible-with=(\d+)", re.I)
ACTIONS = {"main": "cluster:monitor/main", "monitor": "cluster:monitor/health",
           "view_index_metadata": "indices:admin/mappings/get"}


@dataclass
class DataStream:
    """A data stream: its backing index ``.ds-<name>-2025.01.01-000001`` holds ``properties``."""

    name: str
    properties: dict[str, Any]
    hidden: bool = False

    @property
    def backing(self) -> str:
        return f".ds-{self.name}-2025.01.01-000001"


@dataclass
class Cluster:
    """What the stand-in serves: index -> mapping ``properties``, alias -> indices, data streams."""

    indices: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, list[str]] = field(default_factory=dict)
    data_streams: list[DataStream] = field(default_factory=list)

    def all_indices(self) -> dict[str, dict[str, Any]]:
        found = dict(self.indices)
        for stream in self.data_streams:
            found[stream.backing] = stream.properties
        return found


class SearchServer:
    """The stand-in; see the module docstring for what it answers."""

    def __init__(self, cluster: Cluster, product: str = "elasticsearch", version: str = "", tls: Issued | None = None,
                 users: dict[str, str] | None = None, privileges: dict[str, set[str]] | None = None,
                 announce: str = ""):
        self.cluster = cluster
        self.product = product
        self.version = version or ("8.15.0" if product == "elasticsearch" else "2.15.0")
        self.users = users or {}
        self.privileges = privileges or {}
        self.announce = announce
        self.requests: list[tuple[str, str, Message]] = []  # headers looked up case-insensitively
        self._tmp = tempfile.TemporaryDirectory(prefix="search-standin-")
        self.context: ssl.SSLContext | None = None
        if tls is not None:
            cert, key = Path(self._tmp.name, "cert.pem"), Path(self._tmp.name, "key.pem")
            cert.write_text(tls.cert_pem)
            key.write_text(tls.key_pem)
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(str(cert), str(key))
        self.httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self.host, self.port = "127.0.0.1", self.httpd.server_address[1]
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="search-standin", daemon=True)

    def __enter__(self) -> SearchServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._tmp.cleanup()

    @property
    def elastic(self) -> bool:
        return self.product == "elasticsearch"

    def calls(self) -> list[str]:
        """The paths of the GET requests (the client's calls; the HEAD probes left out)."""
        return [path for method, path, _ in self.requests if method == "GET"]

    # --- answers ------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        version: dict[str, Any] = {"number": self.version, "build_type": "tar", "build_hash": "0" * 40,
                                   "build_date": "2025-01-01T00:00:00.000Z", "build_snapshot": False,
                                   "lucene_version": "9.11.1", "minimum_wire_compatibility_version": "7.17.0",
                                   "minimum_index_compatibility_version": "7.0.0"}
        if self.elastic:
            version = {"number": self.version, "build_flavor": "default", **version}
            tagline = "You Know, for Search"
        else:
            version = {"distribution": "opensearch", **version}
            tagline = "The OpenSearch Project: https://opensearch.org/"
        return {"name": "node-1", "cluster_name": "standin", "cluster_uuid": "c2VhcmNoLXN0YW5kaW4", "version": version,
                "tagline": tagline}

    def select(self, expression: str, expand: str) -> list[str] | str:
        """Index names for ``expression`` (comma list, wildcards); an unknown concrete name is returned as str."""
        indices = self.cluster.all_indices()
        hidden_too = any(w in expand for w in ("hidden", "all"))
        chosen: list[str] = []
        for part in (expression or "_all").split(","):
            if part in ("_all", "*") or "*" in part:
                pattern = "*" if part == "_all" else part
                chosen += [n for n in indices if fnmatch.fnmatchcase(n, pattern)
                           and (hidden_too or not n.startswith(".") or pattern.startswith("."))]
            elif part in indices:
                chosen.append(part)
            else:
                return part
        return sorted(set(chosen))

    def cat_indices(self, query: dict[str, list[str]]) -> list[dict[str, str]]:
        rows = []
        for name in self.select("_all", query.get("expand_wildcards", ["all"])[0]):
            row = {"health": "green", "status": "open", "index": name, "uuid": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex,
                   "pri": "1", "rep": "0", "docs.count": "0", "docs.deleted": "0", "store.size": "225b",
                   "pri.store.size": "225b"}
            if "h" in query:
                row = {h: row.get(h, "") for h in query["h"][0].split(",")}
            rows.append(row)
        return rows

    def aliases(self) -> dict[str, Any]:
        names = list(self.cluster.all_indices()) + [s.name for s in self.cluster.data_streams]
        found: dict[str, Any] = {name: {"aliases": {}} for name in sorted(names)}
        for alias, members in self.cluster.aliases.items():
            for member in members:
                found.setdefault(member, {"aliases": {}})["aliases"][alias] = {}
        return found

    def data_streams(self) -> dict[str, Any]:
        streams = []
        for s in self.cluster.data_streams:
            entry: dict[str, Any] = {"name": s.name, "timestamp_field": {"name": "@timestamp"},
                                     "indices": [{"index_name": s.backing, "index_uuid": "x" * 22}],
                                     "generation": 1, "status": "GREEN", "template": f"{s.name}-template"}
            if self.elastic:
                entry.update(hidden=s.hidden, system=False, allow_custom_routing=False, replicated=False)
            streams.append(entry)
        return {"data_streams": streams}

    def nodes(self) -> dict[str, Any]:
        address = self.announce or f"127.0.0.1:{self.port}"
        node = {"name": "node-1", "host": address.rsplit(":", 1)[0], "ip": address.rsplit(":", 1)[0],
                "version": self.version, "roles": ["data", "ingest", "master"], "http": {
                    "bound_address": [address], "publish_address": address, "max_content_length_in_bytes": 104857600}}
        return {"_nodes": {"total": 1, "successful": 1, "failed": 0}, "cluster_name": "standin",
                "nodes": {"bm9kZS0x": node}}

    def error(self, status: int, kind: str, reason: str, **extra: Any) -> dict[str, Any]:
        cause = {"type": kind, "reason": reason, **extra}
        return {"error": {"root_cause": [cause], **cause}, "status": status}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], standin: SearchServer):
        self.standin = standin
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake in this connection's own thread: a silent client cannot stall the others."""
        context = self.standin.context
        if context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(10)
        try:
            wrapped = context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def standin(self) -> SearchServer:
        return self.server.standin

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, media: str = "") -> None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            media = media or "application/json"
        else:
            data = str(body).encode()
            media = media or "text/plain; charset=UTF-8"
        if not self.standin.elastic and media == "application/json":
            media = "application/json; charset=UTF-8"
        self.send_response(status)
        if self.standin.elastic:
            self.send_header("X-elastic-product", "Elasticsearch")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-type", media)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _user(self) -> str | None:
        """The authenticated user ("" without security), or None after answering 401."""
        users = self.standin.users
        if not users:
            return ""
        header = self.headers.get("Authorization", "")
        name, password = "", None
        if header.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeError):
                name, password = "", None
        if name in users and password is not None and secrets.compare_digest(users[name], password):
            return name
        if not self.standin.elastic:
            self._send(401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="OpenSearch Security"'})
            return None
        path = urlsplit(self.path).path
        reason = (f"unable to authenticate user [{name}] for REST request [{path}]" if header
                  else f"missing authentication credentials for REST request [{path}]")
        challenge = ['Basic realm="security" charset="UTF-8"', "ApiKey"]
        body = self.standin.error(401, "security_exception", reason, header={"WWW-Authenticate": challenge})
        self._send(401, body, {"WWW-Authenticate": challenge[0]})
        return None

    def _compatible_media(self) -> str | None:
        """Elasticsearch's media-type check: the answer's media type, or None after answering 400."""
        if not self.standin.elastic:
            return ""
        major = int(self.standin.version.split(".")[0])
        for header in ("Accept", "Content-Type"):
            found = COMPAT.search(self.headers.get(header, ""))
            if found and int(found.group(1)) not in (major - 1, major):
                value = self.headers.get(header)
                reason = (f"{header} version must be either version {major} or {major - 1}, but found "
                          f"{found.group(1)}. {header}={value}")
                self._send(400, self.standin.error(400, "media_type_header_exception",
                                                   f"Invalid media-type value on headers [{header}]",
                                                   caused_by={"type": "status_exception", "reason": reason}))
                return None
        accept = COMPAT.search(self.headers.get("Accept", ""))
        return f"application/vnd.elasticsearch+json;compatible-with={accept.group(1)}" if accept else ""

    def _allowed(self, user: str, privilege: str) -> bool:
        held = self.standin.privileges.get(user, ALL_PRIVILEGES)
        if privilege in held:
            return True
        action = ACTIONS[privilege]
        if self.standin.elastic:
            scope = "index" if privilege == "view_index_metadata" else "cluster"
            reason = (f"action [{action}] is unauthorized for user [{user}] with effective roles [reader], this "
                      f"action is granted by the {scope} privileges [{privilege},manage,all]")
        else:
            reason = f"no permissions for [{action}] and User [name={user}, backend_roles=[], requestedTenant=null]"
        self._send(403, self.standin.error(403, "security_exception", reason))
        return False

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.standin.requests.append((self.command, self.path, self.headers))
        media = self._compatible_media()
        if media is None:
            return
        user = self._user()
        if user is None:
            return
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        standin = self.standin
        route = self._route(path)
        if route is None:
            self._send(404, standin.error(404, "resource_not_found_exception", f"no handler found for uri [{path}]"))
            return
        privilege, answer = route
        if not self._allowed(user, privilege):
            return
        if answer == "mapping":
            expression = path[: -len("/_mapping")].strip("/")
            chosen = standin.select(expression, query.get("expand_wildcards", ["open"])[0])
            if isinstance(chosen, str):
                resource = {"resource.id": chosen, "resource.type": "index_or_alias", "index": chosen}
                reason = f"no such index [{chosen}]"
                self._send(404, standin.error(404, "index_not_found_exception", reason, **resource))
                return
            indices = standin.cluster.all_indices()
            body: Any = {n: {"mappings": {"properties": indices[n]} if indices[n] else {}} for n in chosen}
        elif answer == "cat":
            rows = standin.cat_indices(query)
            if query.get("format", [""])[0] != "json":
                text = "".join(" ".join(str(v) for v in row.values()) + "\n" for row in rows)
                self._send(200, text)
                return
            body = rows
        else:
            body = {"info": standin.info, "aliases": standin.aliases, "streams": standin.data_streams,
                    "nodes": standin.nodes, "health": self._health}[answer]()
        self._send(200, body, media=media)

    def _route(self, path: str) -> tuple[str, str] | None:
        if path == "/":
            return "main", "info"
        if path == "/_cat/indices":
            return "monitor", "cat"
        if path == "/_cluster/health":
            return "monitor", "health"
        if path in ("/_nodes/http", "/_nodes/_all/http"):
            return "monitor", "nodes"
        if path == "/_mapping" or (path.endswith("/_mapping") and path.count("/") == 2):
            return "view_index_metadata", "mapping"
        if path in ("/_alias", "/_aliases"):
            return "view_index_metadata", "aliases"
        if path == "/_data_stream":
            return "view_index_metadata", "streams"
        return None

    def _health(self) -> dict[str, Any]:
        count = len(self.standin.cluster.all_indices())
        return {"cluster_name": "standin", "status": "green", "timed_out": False, "number_of_nodes": 1,
                "number_of_data_nodes": 1, "active_primary_shards": count, "active_shards": count,
                "relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": 0,
                "delayed_unassigned_shards": 0, "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
                "task_max_waiting_in_queue_millis": 0, "active_shards_percent_as_number": 100.0}
