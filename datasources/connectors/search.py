"""Elasticsearch and OpenSearch on each vendor's official client: elasticsearch 9 and opensearch-py 3.

Endpoint by ``server_type`` (``search_endpoints``): ``self-managed``: ``server_url``; ``elastic-cloud``: the
endpoint a Cloud ID names; ``open-cloud``: a hosted cluster's https endpoint, e.g. an Amazon OpenSearch Service
domain (``search-<domain>-<id>.<region>.es.amazonaws.com``, fine-grained access control's basic auth), Aiven, Bonsai.
The endpoint is resolved once under the egress policy, pinned, and the only name the client may reach; the
clients never sniff (announced node addresses were checked by nobody), retry, compress or follow redirects.

Stages: resolve, tcp, tls (with ``ignore_certificate``/``ignore_ssl`` on, a passed tls stage says verification
is off, as configured), auth (``GET /``: 401 -> auth; the other product, or an Elasticsearch before 8.0, is
named clearly at auth, as other connectors fail a peer that is not the product they test; a server that is
neither reads like a closed port), database (``_cat/indices`` as this user: 403 -> database, privileges
named), introspect. Elasticsearch requests ask for ``compatible-with=8``, which 8.x and 9.x servers accept
(the 9.x client's own ``compatible-with=9`` is refused by 8.x).

Tables (``search_mapping``): indices and data streams as tables, aliases as views, with their mapped fields.
Three requests whatever the number of indices: ``_mapping`` (open and hidden), ``_alias``, ``_data_stream``.
"""

from __future__ import annotations

import functools
import logging
import re
import ssl
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from .base import (
    ConnectionConfig,
    ConnectorError,
    SessionConnector,
    StageRunner,
    TableInfo,
    TestResult,
    sanitize,
)
from .egress import connect_failed_message
from .guard import EgressScope, TimedOut, call_bounded, egress_scope
from .http_stages import Endpoint, reach_http, tls_context
from .search_endpoints import endpoint_of
from .search_mapping import build_tables

if TYPE_CHECKING:
    from elastic_transport import BaseNode

logging.getLogger("opensearch").setLevel(logging.ERROR)  # DEBUG carries whole response bodies
logging.getLogger("opensearchpy.trace").setLevel(logging.WARNING)  # every request as a curl line
PRODUCTS = {"elasticsearch": "Elasticsearch", "opensearch": "OpenSearch"}
ES_HEADERS = {"accept": "application/vnd.elasticsearch+json; compatible-with=8"}
VERSION = re.compile(r"\d{1,4}\.\d{1,4}[\w.+-]{0,40}")
PRIVILEGES = "the monitor cluster privilege and view_index_metadata on the indices to introspect"


def _version(body: Any) -> tuple[str, str] | None:
    """(distribution, number) of a cluster-info answer; None when it is not one."""
    version = body.get("version") if isinstance(body, dict) else None
    number = version.get("number") if isinstance(version, dict) else None
    if not isinstance(version, dict) or not isinstance(number, str) or not VERSION.fullmatch(number):
        return None
    return str(version.get("distribution") or ""), number


def credentials_of(config: ConnectionConfig) -> tuple[str, str] | None:
    """(username, password) for basic auth; None with disable_auth (self-managed only)."""
    c = config.connection
    if c.get("disable_auth") is True and c.get("server_type") == "self-managed":
        return None
    return str(c.get("username") or ""), config.secrets.get("password") or ""


@functools.cache
def context_only_node() -> type[BaseNode]:
    """The Elasticsearch client's urllib3 node, verifying with our SSL context alone: with verification on, the
    client would also load certifi's roots into it, and a configured CA is meant to be the only trust anchor.
    Built on first use: each client is imported only for its own type (one may be installed without the other)."""
    from elastic_transport import Urllib3HttpNode
    from urllib3 import HTTPSConnectionPool

    class ContextOnlyNode(Urllib3HttpNode):
        def __init__(self, config: Any):
            super().__init__(config)
            if isinstance(self.pool, HTTPSConnectionPool):
                self.pool.ca_certs = self.pool.ca_cert_dir = None

    return ContextOnlyNode


class NotTheProduct(Exception):
    """A 2xx answer without Elasticsearch's product header; ``body`` says what answered."""

    def __init__(self, body: Any):
        super().__init__("not the product")
        self.body = body


class SearchSession:
    """One client to the checked endpoint: bounded calls, each failure our own message."""

    def __init__(self, key: str, config: ConnectionConfig, endpoint: Endpoint, scope: EgressScope, verify: bool):
        c = config.connection
        self.key, self.product, self.config, self.scope = key, PRODUCTS[key], config, scope
        self.host, self.port, self.where = endpoint.host, endpoint.port, f"{endpoint.host}:{endpoint.port}"
        self.timeout = float(config.connect_timeout)
        self.proven = False  # the peer answered GET / like the product
        self.auth = credentials_of(config)
        url = endpoint.base_url + endpoint.path
        ca_pem = str(c.get("ca_certificate") or "") if verify else ""  # unverified: no CA is read
        context = tls_context(ca_pem, verify) if endpoint.tls else None
        options: dict[str, Any] = {"ssl_context": context} if context else {}
        self.client: Any
        self.timeouts: tuple[type[Exception], ...]
        self.not_json: tuple[type[Exception], ...]
        if key == "elasticsearch":
            import elasticsearch

            self.client = elasticsearch.Elasticsearch(
                hosts=[url], basic_auth=self.auth, request_timeout=self.timeout, max_retries=0,
                retry_on_timeout=False, retry_on_status=(), sniff_on_start=False, sniff_before_requests=False,
                sniff_on_node_failure=False, http_compress=False, connections_per_node=1,
                node_class=context_only_node(), **({**options, "verify_certs": verify} if context else {}))
            self.timeouts, self.not_json = (elasticsearch.ConnectionTimeout,), (elasticsearch.SerializationError,)
        else:
            import opensearchpy

            self.client = opensearchpy.OpenSearch(
                hosts=[url], http_auth=self.auth, use_ssl=endpoint.tls, timeout=self.timeout, max_retries=0,
                retry_on_timeout=False, retry_on_status=(), sniff_on_start=False, sniff_on_connection_fail=False,
                sniffer_timeout=None, http_compress=False, pool_maxsize=1, **options)
            self.timeouts, self.not_json = (opensearchpy.ConnectionTimeout,), (opensearchpy.SerializationError,)

    def close(self) -> None:
        self.client.close()

    def _get(self, path: str, params: dict[str, str] | None, seconds: float) -> tuple[int, Any]:
        """(status, body) of one GET through the client; transport failures raise."""
        if self.key == "elasticsearch":
            import elasticsearch

            try:
                answer = self.client.options(request_timeout=seconds).perform_request(
                    "GET", path, params=params, headers=ES_HEADERS)
            except elasticsearch.UnsupportedProductError as exc:
                raise NotTheProduct(exc.body) from None
            except elasticsearch.ApiError as exc:
                return exc.meta.status, exc.body
            return answer.meta.status, answer.body
        import opensearchpy

        try:
            return 200, self.client.transport.perform_request("GET", path, params=params, timeout=seconds)
        except opensearchpy.ConnectionError:
            raise
        except opensearchpy.TransportError as exc:
            return (exc.status_code if isinstance(exc.status_code, int) else 0), exc.info

    def call(self, stage: str, path: str, params: dict[str, str] | None = None, seconds: float = 0.0,
             ) -> tuple[int, Any]:
        seconds = seconds or self.timeout
        try:
            return call_bounded(lambda: self._get(path, params, seconds), seconds + 1, self.scope)
        except TimedOut:
            raise (ConnectorError(stage, f"The {self.product} cluster at {self.where} did not answer within "
                                         f"{seconds:g} seconds.") if self.proven else self._closed()) from None
        except NotTheProduct:
            raise
        except Exception as exc:
            raise self._failure(exc, stage) from None

    def _closed(self) -> ConnectorError:
        """Until the peer has answered ``GET /`` like a search cluster, every failure reads like a closed port."""
        return ConnectorError("tcp", connect_failed_message(self.host, self.port))

    def _failure(self, exc: Exception, stage: str) -> ConnectorError:
        blocked = self.scope.blocked_error()
        if blocked is not None or not self.proven:
            return blocked or self._closed()
        if isinstance(exc, self.timeouts):
            return ConnectorError(stage, f"The {self.product} cluster at {self.where} did not answer in time.")
        if isinstance(exc, self.not_json):
            return ConnectorError(stage, f"The cluster at {self.where} answered something other than JSON.")
        detail = sanitize(str(exc), self.config.secrets)
        return ConnectorError(stage, f"The connection to the cluster at {self.where} failed." +
                              (f" {detail}" if detail else ""))

    def _reason(self, body: Any) -> str:
        error = body.get("error") if isinstance(body, dict) else None
        text = f"{error.get('type', '')}: {error.get('reason', '')}" if isinstance(error, dict) else ""
        cleaned = sanitize(text.strip(": "), self.config.secrets)
        return f" {cleaned}" if cleaned else ""

    def _refused(self, status: int, body: Any, what: str) -> ConnectorError:
        if status == 401:
            if self.auth is None:
                return ConnectorError("auth", "The cluster requires a user name and password (disable_auth is on).")
            return ConnectorError("auth", f"Authentication failed for user '{self.auth[0]}'.")
        user = f"User '{self.auth[0]}'" if self.auth else "An anonymous user"
        return ConnectorError("database", f"{user} may not {what} (HTTP 403): it needs {PRIVILEGES}."
                                          f"{self._reason(body)}")

    def login(self) -> str:
        """Stage auth: ``GET /`` with the credentials; returns "<product> <version>"."""
        if self.auth is not None and (not self.auth[0] or not self.auth[1]):
            raise ConnectorError("auth", "A username and password are required (or disable_auth, self-managed only).")
        if self.auth is not None and ":" in self.auth[0]:
            raise ConnectorError("auth", "A username may not contain ':' (HTTP basic authentication).")
        try:
            status, body = self.call("auth", "/")
        except NotTheProduct as exc:
            raise self._other_product(exc.body) from None
        if status in (401, 403):
            raise self._refused(status, body, "read the cluster's information (GET /)")
        error = body.get("error") if isinstance(body, dict) else None
        if status == 400 and isinstance(error, dict) and error.get("type") == "media_type_header_exception":
            raise ConnectorError("auth", f"The server at {self.where} is an Elasticsearch version before 8.0, which "
                                         "this connector does not support.")
        found = _version(body) if 200 <= status < 300 else None
        if found is None:
            raise self._closed()
        if (found[0] == "opensearch") != (self.key == "opensearch"):
            raise self._other_product(body)
        self.proven = True
        return f"{self.product} {found[1]}"

    def _other_product(self, body: Any) -> ConnectorError:
        """A search server of the other product says so; anything else reads like a closed port."""
        found = _version(body)
        if found is None:
            return self._closed()
        distribution, number = found
        if distribution == "opensearch":
            return ConnectorError("auth", f"The server at {self.where} is OpenSearch {number}, not Elasticsearch: "
                                          "choose the OpenSearch type for it.")
        if self.key == "opensearch":
            return ConnectorError("auth", f"The server at {self.where} is Elasticsearch {number}, not OpenSearch: "
                                          "choose the Elasticsearch type for it.")
        return ConnectorError("auth", f"The server at {self.where} is not an Elasticsearch server (its answer lacks "
                                      "the X-Elastic-Product header).")

    def check_indices(self) -> int:
        """Stage database: the cluster lists its indices to this user; returns how many it listed."""
        status, body = self.call("database", "/_cat/indices", {"format": "json", "h": "index,status"})
        if status in (401, 403):
            raise self._refused(status, body, "list the cluster's indices (_cat/indices)")
        if not 200 <= status < 300 or not isinstance(body, list):
            raise ConnectorError("database", f"The cluster did not list its indices (HTTP {status})."
                                             f"{self._reason(body)}")
        return sum(1 for row in body if isinstance(row, dict) and not str(row.get("index", ".")).startswith("."))

    def tables(self, seconds: float) -> list[TableInfo]:
        """Stage introspect: one ``_mapping``, one ``_alias`` and one ``_data_stream`` request."""
        deadline = time.monotonic() + seconds

        def get(path: str, params: dict[str, str] | None, required: bool) -> dict[str, Any]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectorError("introspect", f"The introspection did not finish within {seconds:g} seconds.")
            status, body = self.call("introspect", path, params, left)
            if 200 <= status < 300 and isinstance(body, dict):
                return body
            if not required and status in (400, 403, 404, 405):
                return {}  # a version without data streams, or a user who may not see them
            if status == 403:
                raise ConnectorError("introspect", f"User '{self.auth[0] if self.auth else ''}' may not read the "
                                                   f"index mappings (HTTP 403): it needs view_index_metadata.")
            raise ConnectorError("introspect", f"The cluster did not answer {path} (HTTP {status})."
                                               f"{self._reason(body)}")

        mapping = get("/_mapping", {"expand_wildcards": "open,hidden"}, True)
        aliases = get("/_alias", None, False)
        streams = get("/_data_stream", None, False)
        return build_tables(mapping, aliases, streams)


def _check_ca(ca_pem: str) -> None:
    """A configured CA that does not load fails at stage tls, before any packet."""
    try:
        tls_context(ca_pem)
    except (ssl.SSLError, ValueError):
        raise ConnectorError("tls", "The CA certificate (ca_certificate) could not be read.") from None


class SearchConnector(SessionConnector):
    """Stages: resolve, tcp, tls (https), auth (``GET /``), database (``_cat/indices``), [introspect]."""

    def run(self, config: ConnectionConfig, *, introspect: bool) -> TestResult:
        return self._run(config, introspect)[0]

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """Indices, aliases and data streams with their fields; raises ``ConnectorError``."""
        result, error = self._run(config, True)
        if not result.ok:
            raise ConnectorError(result.stage or "tcp", result.message)
        if error is not None:
            raise error
        return result.tables or []

    def _run(self, config: ConnectionConfig, introspect: bool) -> tuple[TestResult, ConnectorError | None]:
        tables: list[TableInfo] | None = None
        timeout = float(config.connect_timeout)
        c = config.connection
        verify = not (c.get("ignore_certificate") is True or c.get("ignore_ssl") is True)
        ca_pem = str(c.get("ca_certificate") or "") if verify else ""  # unverified: no CA is read
        with StageRunner(config.secrets) as runner, ExitStack() as stack:
            try:
                endpoint = endpoint_of(config)
                _check_ca(ca_pem)
            except ConnectorError as exc:
                runner.stop("resolve", exc)
            scope = stack.enter_context(egress_scope(timeout, only=(endpoint.host,)))
            reach_http(runner, endpoint, timeout, scope, ca_pem, verify=verify,
                       credentials=credentials_of(config) is not None)
            if endpoint.tls and not verify:
                runner.run("tls", lambda: None, "Certificate verification is off, as configured "
                                                "(ignore_certificate / ignore_ssl).")
            session = SearchSession(self.key, config, endpoint, scope, verify)
            stack.callback(session.close)
            runner.server_version = runner.run("auth", session.login)
            count = runner.run("database", session.check_indices)
            runner.stages[-1].message = f"{count} indices listed."
            if introspect:
                seconds = float(config.query_timeout)
                tables = runner.optional("introspect", lambda: session.tables(seconds),
                                         lambda found: f"{len(found)} tables.")
        result = runner.result()
        result.tables = tables if result.ok else None
        return result, runner.optional_failure
