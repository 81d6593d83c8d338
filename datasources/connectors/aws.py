"""What the AWS connectors (athena.py, s3.py) share: an isolated botocore session, clients on
explicit keys with one attempt, the bounded call and how its failures read, AWS error codes.

Only the keys given are used. The botocore session has a config store of constants (no AWS_*
variable, no ~/.aws/config or credentials file, no profile), a model loader that reads botocore's
own data only (not ~/.aws/models, not AWS_DATA_PATH), no configured endpoint URLs
(AWS_ENDPOINT_URL*), no proxies (HTTP(S)_PROXY), botocore's CA bundle, the legacy defaults mode
(no instance-metadata region lookup); explicit keys mean the credential chain (environment,
files, container and instance metadata) never runs. botocore and boto3 log at WARNING at most:
their DEBUG output carries request headers and bodies.

Every call is bounded (``call_bounded``) and runs under the connector's egress scope. Until the
service has answered like AWS (a parsed error with a named code), any failure reads like a closed
port, so a connection test is no oracle on what listens at an endpoint. ``label`` names the service
in the messages that follow ("AWS" for Athena's several services, "S3").
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from botocore.config import Config  # type: ignore[import-untyped]
from botocore.configprovider import (  # type: ignore[import-untyped]
    BOTOCORE_DEFAUT_SESSION_VARIABLES,
    ConfigValueStore,
    ConstantProvider,
)
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError  # type: ignore[import-untyped]
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.loaders import Loader  # type: ignore[import-untyped]
from botocore.session import Session  # type: ignore[import-untyped]

from .base import ConnectorError, StageResult, StageRunner, TableInfo
from .egress import connect_failed_message, resolve_checked
from .guard import EgressScope, TimedOut, call_bounded
from .http_stages import Endpoint, check_transport, parse_endpoint

for _name in ("botocore", "boto3"):
    logging.getLogger(_name).setLevel(logging.WARNING)

T = TypeVar("T")
REGION = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
NO_ENDPOINT = "No {label} endpoint is known for this region."

#: Every session variable at botocore's default, none read from the environment or a file.
_SESSION_CONSTANTS: dict[str, Any] = {name: spec[2] for name, spec in BOTOCORE_DEFAUT_SESSION_VARIABLES.items()}
_SESSION_CONSTANTS.update({
    "profile": None, "region": None, "ca_bundle": None, "data_path": None,
    "config_file": os.devnull, "credentials_file": os.devnull,  # not regular files: nothing is parsed
    "ignore_configured_endpoint_urls": True, "defaults_mode": "legacy", "retry_mode": "standard",
    "max_attempts": 1, "s3": {}, "proxies_config": {},
})
_LOADER = Loader(extra_search_paths=[Loader.BUILTIN_DATA_PATH], include_default_search_paths=False)


def isolated_session() -> Session:
    """A botocore session that knows nothing but botocore's own defaults and data."""
    session = Session()
    session.register_component("data_loader", _LOADER)
    session.register_component(
        "config_store", ConfigValueStore({k: ConstantProvider(v) for k, v in _SESSION_CONSTANTS.items()})
    )
    return session


def check_region(value: object) -> str:
    """An AWS region name; raises ``ConnectorError`` at resolve."""
    region = str(value or "").strip()
    if not REGION.fullmatch(region) or len(region) > 32:
        raise ConnectorError("resolve", "The region must be an AWS region name such as 'us-east-1'.")
    return region


def check_keys(key_id: str, secret: str) -> None:
    if not key_id or not secret:
        raise ConnectorError("auth", "An access key ID and a secret access key are required.")


def new_client(session: Session, service: str, *, region: str, endpoint: Endpoint | None, keys: tuple[str, str],
               timeouts: tuple[float, float], pool: int, **options: Any) -> Any:
    """A botocore client on ``keys`` (access key ID, secret) with ``timeouts`` (connect, read), one
    attempt (no retry outlives the timeout), no proxy, no configured endpoint URL, ``pool`` connections;
    ``endpoint`` (None: AWS's regional one) and the service's own ``options`` (``s3=``, checksums)."""
    connect_timeout, read_timeout = timeouts
    config = Config(
        connect_timeout=connect_timeout, read_timeout=read_timeout,
        retries={"total_max_attempts": 1, "mode": "standard"},
        proxies={}, ignore_configured_endpoint_urls=True, tcp_keepalive=False, max_pool_connections=pool,
        **options,
    )
    url = f"{endpoint.base_url}{endpoint.path}" if endpoint else None
    return session.create_client(
        service, region_name=region, endpoint_url=url, verify=True, config=config,
        aws_access_key_id=keys[0], aws_secret_access_key=keys[1],
    )


def endpoint_of(client: Any) -> Endpoint:
    """The endpoint a client sends to: endpoint_url, or the regional one botocore resolved (no network)."""
    return parse_endpoint(client.meta.endpoint_url)


class AwsError(NamedTuple):
    """A client error: its code (letters, digits and dots only), HTTP status, and the response headers
    overlaid by the error's fields (``x-amz-bucket-region``, ``Region``, ``Endpoint``...)."""

    code: str
    status: int
    detail: dict[str, Any]


def error_of(exc: ClientError) -> AwsError:
    error = exc.response.get("Error") or {}
    meta = exc.response.get("ResponseMetadata") or {}
    code = re.sub(r"[^A-Za-z0-9.]", "", str(error.get("Code") or ""))[:64]
    return AwsError(code, int(meta.get("HTTPStatusCode") or 0), {**(meta.get("HTTPHeaders") or {}), **error})


def aws_shaped(code: str, status: int) -> bool:
    """A parsed AWS error (named code), not an HTTP status botocore made up from a foreign answer or a
    redirect."""
    return bool(code) and not code.isdigit() and not 300 <= status < 400


def closed(endpoint: Endpoint) -> ConnectorError:
    """The error of a port nothing (AWS-shaped) answers on."""
    return ConnectorError("tcp", connect_failed_message(endpoint.host, endpoint.port))


def bounded_call(fn: Callable[[], T], seconds: float, scope: EgressScope, stage: str, *, endpoint: Endpoint,
                 label: str = "AWS") -> T:
    """One botocore call, bounded and under the scope; failures before an answer read like a closed
    port of ``endpoint``. A ``ClientError`` (the service answered) is the caller's to read."""
    try:
        return call_bounded(fn, max(seconds, 0.05), scope)
    except ClientError:
        raise
    except (TimedOut, ReadTimeoutError):
        blocked = scope.blocked_error()
        if blocked or stage == "auth":  # not yet proven to be AWS: no oracle
            raise blocked or closed(endpoint) from None
        raise ConnectorError(stage, f"{label} did not answer within {seconds:g} seconds.") from None
    except BotoConnectionError:
        raise scope.blocked_error() or closed(endpoint) from None
    except Exception as exc:  # BotoCoreError, or botocore's ResponseParserError for a foreign answer
        blocked = scope.blocked_error()
        if blocked or stage == "auth":
            raise blocked or closed(endpoint) from None
        raise ConnectorError(stage, f"The {label} call failed: {type(exc).__name__}.") from None


def prepare(runner: StageRunner, make: Callable[[], T], label: str) -> T:
    """``make()`` the settings and clients (no network); an invalid setting, or a region botocore knows
    no ``label`` endpoint for, fails at its stage (resolve)."""
    try:
        return make()
    except ConnectorError as exc:
        error = exc
    except (BotoCoreError, ValueError):
        error = ConnectorError("resolve", NO_ENDPOINT.format(label=label))

    def fail() -> T:
        raise error

    return runner.run(error.stage, fail)


def run_stage(runner: StageRunner, name: str, fn: Callable[[], tuple[T, str]]) -> T:
    """A stage whose success message is known only once it has run."""
    value, message = runner.run(name, fn)
    runner.stages[-1].message = message
    return value


def introspect_stage(runner: StageRunner, fn: Callable[[], tuple[list[TableInfo], str]]) -> list[TableInfo] | None:
    """Introspect over the tested clients as a last stage: ``fn`` gives the tables and the stage's message.
    None when that fails (the refresh that follows tries on its own and records why), so a schema problem
    never fails the connection test."""
    start = time.perf_counter()
    try:
        tables, message = fn()
    except ConnectorError:
        return None
    duration = round((time.perf_counter() - start) * 1000, 2)
    runner.stages.append(StageResult("introspect", True, duration, message))
    return tables


def pin_endpoint(scope: EgressScope, endpoint: Endpoint, timeout: float) -> None:
    """A refresh re-checks what the test checked: the endpoint resolves through the egress policy, the
    transport may carry the keys, and the clients connect to that checked address."""
    address = resolve_checked(endpoint.host, endpoint.port, timeout)
    check_transport(endpoint, address)
    scope.pin(endpoint.host, address)
