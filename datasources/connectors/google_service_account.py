"""A Google service account's access token, shared by the BigQuery and Google Sheets connectors.

Only google-auth and requests are imported here (not google-cloud-bigquery nor google-api-core), so
an install with google-auth alone keeps Google Sheets working.

Credentials come only from the uploaded service-account JSON (``from_service_account_info``): never
Application Default Credentials, the metadata server, ``GOOGLE_APPLICATION_CREDENTIALS``, proxy or
netrc settings, mTLS client certificates found on the machine or the regional-access-boundary lookup
(a background thread outside the egress scope). Two endpoints are reached, both through the egress
policy, resolved once in the resolve stage and pinned: the API (the connector's ``endpoint_url`` or
its default) and the key's ``token_uri`` (default https://oauth2.googleapis.com/token). Each must be
https unless its checked address is a non-public one that DATASOURCE_ALLOWED_NETWORKS admits (an
operator's private network, loopback in the tests): the signed grant and the access token are bearer
secrets. Redirects are refused, retries are off and every call runs under ``call_bounded``.

Stages (``ServiceAccountConnector.run``): resolve (the token host, then the API host: one stage),
tcp and tls (https) for the API via ``reach_http``; auth = the JWT-bearer token exchange; database
and introspect as the connector's session defines them. The key itself is read first, before any
network step: a file that is not a service-account key (type, client_email, private_key) or whose
private key does not load fails stage auth alone, without a lookup or a packet.
"""

from __future__ import annotations

import json
import logging
import ssl
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import requests
from google.auth import exceptions as auth_errors
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from .base import (
    ConnectionConfig,
    ConnectorError,
    SessionConnector,
    StageResult,
    StageRunner,
    TableInfo,
    TestResult,
    sanitize,
)
from .egress import connect_failed_message, resolve_checked
from .guard import EgressScope, TimedOut, call_bounded, egress_scope
from .http_stages import Endpoint, check_transport, parse_endpoint, reach_http

DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret

# google-auth logs request headers (the bearer token) and token-endpoint bodies at DEBUG.
logging.getLogger("google.auth.transport.requests").setLevel(logging.INFO)


class Credentials(service_account.Credentials):
    """The uploaded key alone: no regional-access-boundary lookup (an environment variable turns it on,
    and it runs in a background thread, outside the egress scope)."""

    def _is_regional_access_boundary_lookup_required(self) -> bool:
        return False


class NoRetries(requests.adapters.HTTPAdapter):
    """No retries; a subclass, so google-auth never mounts an mTLS adapter with a local certificate."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)


class BoundedRequest(Request):
    """google-auth's transport with our timeout on every token request (its default is 120 s)."""

    def __init__(self, session: requests.Session, timeout: float):
        super().__init__(session)
        self.timeout = timeout

    def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                 timeout: Any = None, **kwargs: Any) -> Any:
        return super().__call__(url, method, body, headers, timeout=(self.timeout, self.timeout), **kwargs)


def harden(session: requests.Session) -> requests.Session:
    session.trust_env = False  # no proxy, netrc or CA-bundle settings from the environment
    session.max_redirects = 0  # a redirect fails instead of being followed
    for prefix in ("http://", "https://"):
        session.mount(prefix, NoRetries())
    return session


def read_info(config: ConnectionConfig) -> dict[str, Any]:
    """The uploaded key file as a dict ({} when it is not a JSON object)."""
    try:
        info = json.loads(config.secrets.get("service_account_json") or "")
    except (ValueError, RecursionError):
        return {}
    return info if isinstance(info, dict) else {}


KEY_FIELDS = ("type", "client_email", "private_key")


def usable_key(config: ConnectionConfig, timeout: float) -> Credentials:
    """The uploaded key read and its private key loaded, without any network step (the token is not
    requested yet); ``ConnectorError`` at stage auth when it is not a usable service-account key."""
    info = read_info(config)
    missing = [name for name in KEY_FIELDS if not (isinstance(info.get(name), str) and info[name].strip())]
    if not missing and info["type"] != "service_account":
        missing = ["type"]
    if not isinstance(info.get("token_uri") or DEFAULT_TOKEN_URI, str):
        missing.append("token_uri")
    if missing:
        raise ConnectorError("auth", "The credentials must be a service-account key file (type 'service_account' "
                                     f"with client_email and private_key): {', '.join(missing)} "
                                     f"{'is' if len(missing) == 1 else 'are'} missing or invalid.")
    token_uri = info.get("token_uri") or DEFAULT_TOKEN_URI
    try:  # bounded: checking an outsized RSA key takes a while
        return call_bounded(lambda: Credentials.from_service_account_info({**info, "token_uri": token_uri}),
                            timeout)
    except (ValueError, TypeError, KeyError, TimedOut):
        raise ConnectorError("auth", "The service account's private key could not be read.") from None


def masks(config: ConnectionConfig) -> dict[str, str]:
    """Secret values to scrub from driver text: the JSON, and the key as it reads once decoded."""
    info, found = read_info(config), dict(config.secrets)
    for name in ("private_key", "private_key_id"):
        if isinstance(info.get(name), str) and info[name]:
            found[name] = info[name]
    return found


def certificate_refused(exc: BaseException) -> bool:
    """Whether a transport failure was our refusal of the peer's certificate (requests wraps it twice)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def merge_resolve(stages: list[StageResult]) -> None:
    """The token host's and the API host's lookups are one resolve stage."""
    same = [s for s in stages if s.name == "resolve"]
    if len(same) > 1 and all(s.ok for s in same):
        same[0].duration_ms = round(sum(s.duration_ms for s in same), 2)
        stages[:] = [s for s in stages if s.name != "resolve" or s is same[0]]


@dataclass(frozen=True)
class Plan:
    """What one test reaches, read from the configuration (no network yet); connectors add their fields."""

    endpoint: Endpoint  # the API
    token: Endpoint
    token_uri: str
    info: dict[str, Any]


def plan_fields(config: ConnectionConfig, default_endpoint: str) -> tuple[Endpoint, Endpoint, str, dict[str, Any]]:
    """``Plan``'s fields: the API endpoint (``endpoint_url`` or ``default_endpoint``), the key's token_uri
    parsed and as written, and the key file itself."""
    info = read_info(config)
    token_uri = info.get("token_uri") or DEFAULT_TOKEN_URI
    if not isinstance(token_uri, str):
        raise ConnectorError("resolve", "The service account's token_uri is not a URL.")
    try:
        token = parse_endpoint(token_uri)
    except ConnectorError as exc:
        raise ConnectorError("resolve", f"The service account's token_uri: {exc.message}") from None
    return parse_endpoint(config.connection.get("endpoint_url") or default_endpoint), token, token_uri, info


P = TypeVar("P", bound=Plan)


class Session(ABC, Generic[P]):
    """One test's egress scope and the service account's token; a connector adds its API calls."""

    def __init__(self, plan: P, config: ConnectionConfig, masks: dict[str, str], scope: EgressScope):
        self.plan, self.config, self.masks, self.scope = plan, config, masks, scope
        self.timeout = float(config.connect_timeout)
        self.token_session = harden(requests.Session())
        self.token_request = BoundedRequest(self.token_session, self.timeout)
        self.proven = False  # the API has answered like the API
        self.key: Credentials | None = None  # the key already read (``usable_key``), else read by ``exchange``

    def unreachable(self, endpoint: Endpoint) -> ConnectorError:
        return self.scope.blocked_error() or ConnectorError("tcp", connect_failed_message(endpoint.host, endpoint.port))

    def resolve_token_host(self) -> None:
        token = self.plan.token
        ip = resolve_checked(token.host, token.port, self.timeout)
        check_transport(token, ip, "service account's token_uri")
        self.scope.pin(token.host, ip)

    def check_transports(self) -> None:
        """Both endpoints again, at the addresses now pinned (the same host may have been looked up twice)."""
        for what, endpoint in (("service account's token_uri", self.plan.token), ("endpoint URL", self.plan.endpoint)):
            check_transport(endpoint, self.scope.pins[endpoint.host.lower()], what)

    def exchange(self, scopes: tuple[str, ...]) -> Credentials:
        """The token exchange for ``scopes`` (a JWT signed with the key, sent to the token_uri); the
        refreshed credentials, their access token added to the masks."""
        info = self.plan.info
        if self.key is not None:
            credentials = self.key.with_scopes(list(scopes))
        else:
            if info.get("type") != "service_account" or not info.get("client_email") or not info.get("private_key"):
                raise ConnectorError("auth", "The credentials must be a service-account key file (type "
                                             "'service_account' with client_email and private_key).")
            try:  # bounded too: checking an outsized RSA key takes a while
                credentials = call_bounded(lambda: Credentials.from_service_account_info(
                    {**info, "token_uri": self.plan.token_uri}, scopes=list(scopes)), self.timeout, self.scope)
            except (ValueError, TypeError, KeyError, TimedOut):
                raise ConnectorError("auth", "The service account's private key could not be read.") from None
        try:
            call_bounded(lambda: credentials.refresh(self.token_request), self.timeout + 0.5, self.scope)
        except auth_errors.RefreshError as exc:
            answer = exc.args[1] if len(exc.args) > 1 else None
            if not (isinstance(answer, dict) and answer.get("error")):
                raise self.unreachable(self.plan.token) from None  # not an OAuth server's answer
            detail = sanitize(f"{answer.get('error')}: {answer.get('error_description') or ''}", self.masks)
            raise ConnectorError("auth", f"The token endpoint refused the service account ({detail}).") from None
        except (auth_errors.TransportError, requests.RequestException, TimedOut, OSError) as exc:
            if certificate_refused(exc):
                raise ConnectorError("tls", "The token endpoint's certificate could not be verified.") from None
            raise self.unreachable(self.plan.token) from None
        self.masks["access_token"] = str(credentials.token)
        return credentials

    @abstractmethod
    def authenticate(self) -> None:
        """Stage auth: ``exchange`` with the connector's scopes, and whatever the API calls need."""

    @abstractmethod
    def check_database(self) -> None:
        """Stage database."""

    @abstractmethod
    def catalogue(self) -> list[TableInfo]:
        """The tables, over the authenticated session."""

    def close(self) -> None:
        self.token_session.close()


class ServiceAccountConnector(SessionConnector, Generic[P]):
    """Stages: resolve, tcp, tls (https), auth, database; introspection over the tested session."""

    @abstractmethod
    def plan(self, config: ConnectionConfig) -> P:
        """The configuration read (stage resolve, no network yet)."""

    @abstractmethod
    def session(self, plan: P, config: ConnectionConfig, masks: dict[str, str], scope: EgressScope) -> Session[P]:
        """One test's session."""

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        result = self.run(config, introspect=True, strict=True)
        if not result.ok or result.tables is None:
            raise ConnectorError(result.stage or "introspect", result.message)
        return result.tables

    def run(self, config: ConnectionConfig, *, introspect: bool, strict: bool = False) -> TestResult:
        secrets = masks(config)
        timeout = float(config.connect_timeout)
        tables: list[TableInfo] | None = None
        with StageRunner(secrets) as runner:
            try:
                key = usable_key(config, timeout)  # before any network step
            except ConnectorError as exc:
                runner.stop("auth", exc)
            plan = runner.run("resolve", lambda: self.plan(config))
            with egress_scope(timeout, only=(plan.endpoint.host, plan.token.host)) as scope:
                session = self.session(plan, config, secrets, scope)
                session.key = key
                try:
                    try:
                        runner.run("resolve", session.resolve_token_host)
                        reach_http(runner, plan.endpoint, timeout, scope)
                        runner.run("resolve", session.check_transports)
                    finally:
                        merge_resolve(runner.stages)
                    runner.run("auth", session.authenticate, "The service account key was accepted.")
                    runner.run("database", session.check_database)
                    if strict:
                        tables = runner.run("introspect", session.catalogue)
                    elif introspect:  # may fail without failing the test: the refresh that follows tries again
                        tables = runner.optional("introspect", session.catalogue,
                                                 lambda found: f"{len(found)} tables.")
                finally:
                    session.close()
        result = runner.result()
        result.tables = tables if result.ok else None
        return result
