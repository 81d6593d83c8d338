"""Amazon Athena connector on botocore (boto3's core): the Glue Data Catalog is Athena's catalogue.

A connection test and the schema need no query: identity is STS GetCallerIdentity, the database
and its tables are Glue GetDatabase / GetTables (what Athena itself reads), the workgroup is
Athena GetWorkGroup, the result location's bucket S3 HeadBucket. PyAthena would only add a DB-API
layer over these same boto3 clients.

Only the keys given are used. The botocore session has a config store of constants (no AWS_*
variable, no ~/.aws/config or credentials file, no profile), a model loader that reads botocore's
own data only (not ~/.aws/models, not AWS_DATA_PATH), no configured endpoint URLs
(AWS_ENDPOINT_URL*), no proxies (HTTP(S)_PROXY), botocore's CA bundle, the legacy defaults mode
(no instance-metadata region lookup); explicit keys mean the credential chain (environment,
files, container and instance metadata) never runs. botocore and boto3 log at WARNING at most:
their DEBUG output carries request headers and bodies.

``endpoint_url`` (a VPC endpoint or an AWS-compatible service) replaces the regional endpoints of
Athena, Glue, STS and S3; otherwise they are AWS's for ``region``. Every call runs in an egress
scope: each host name is resolved once and checked, with an endpoint URL no other host may be
looked up, a refused lookup reads as a failed TCP connect.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

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

from .base import (
    MAX_COLUMNS,
    MAX_TABLES,
    ColumnInfo,
    ConnectionConfig,
    ConnectorError,
    SessionConnector,
    StageResult,
    StageRunner,
    TableInfo,
    TestResult,
)
from .egress import connect_failed_message, resolve_checked
from .guard import EgressScope, TimedOut, call_bounded, egress_scope
from .http_stages import Endpoint, check_transport, parse_endpoint, reach_http
from .reach import Deadline

for _name in ("botocore", "boto3"):
    logging.getLogger(_name).setLevel(logging.WARNING)

T = TypeVar("T")
GLUE_PAGE = 100  # Glue GetTables answers at most 100 tables a request: introspection = ceil(n / 100) requests
REGION = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
AUTH_REFUSED = "AWS refused the access key ID or secret access key ({code})."

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


def _bucket(location: str) -> str:
    match = re.fullmatch(r"s3://([^/]+)(/.*)?", (location or "").strip())
    if not match or not BUCKET.fullmatch(match.group(1)):
        raise ConnectorError("database", "The S3 output location must look like s3://bucket/prefix/.")
    return match.group(1)


def _code(exc: ClientError) -> tuple[str, int]:
    """The AWS error code (letters, digits and dots only) and HTTP status of a client error."""
    code = str((exc.response.get("Error") or {}).get("Code") or "")
    status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    return re.sub(r"[^A-Za-z0-9.]", "", code)[:64], status


def _aws_shaped(code: str, status: int) -> bool:
    """A parsed AWS error (named code), not an HTTP status botocore made up from a foreign answer."""
    return bool(code) and not code.isdigit() and not 300 <= status < 400


class _Aws:
    """One test's or refresh's botocore clients: explicit keys, one session, lazily made."""

    def __init__(self, config: ConnectionConfig, read_timeout: float):
        c = config.connection
        self.region = str(c.get("region") or "").strip()
        if not REGION.fullmatch(self.region) or len(self.region) > 32:
            raise ConnectorError("resolve", "The region must be an AWS region name such as 'us-east-1'.")
        self.database = str(c.get("database") or "").strip()
        self.workgroup = str(c.get("workgroup") or "").strip()
        self.output = str(c.get("s3_output_location") or "")
        self.key_id = str(c.get("access_key_id") or "").strip()
        self.secret = config.secrets.get("secret_access_key") or ""
        self.endpoint: Endpoint | None = parse_endpoint(c["endpoint_url"]) if c.get("endpoint_url") else None
        self.connect_timeout = float(config.connect_timeout)
        self.read_timeout = read_timeout
        self._session = isolated_session()
        self._clients: dict[tuple[str, float], Any] = {}

    @property
    def only(self) -> tuple[str, ...]:
        """With an endpoint URL, the one host any call may look up."""
        return (self.endpoint.host,) if self.endpoint else ()

    def client(self, service: str, read_timeout: float | None = None) -> Any:
        timeout = read_timeout or self.read_timeout
        client = self._clients.get((service, timeout))
        if client is None:
            config = Config(
                connect_timeout=self.connect_timeout, read_timeout=timeout,
                retries={"total_max_attempts": 1, "mode": "standard"},  # one attempt: no retry outlives the timeout
                proxies={}, ignore_configured_endpoint_urls=True, tcp_keepalive=False, max_pool_connections=2,
                s3={"addressing_style": "path"} if self.endpoint else {},
            )
            url = f"{self.endpoint.base_url}{self.endpoint.path}" if self.endpoint else None
            client = self._session.create_client(
                service, region_name=self.region, endpoint_url=url, verify=True, config=config,
                aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
            )
            self._clients[(service, timeout)] = client
        return client

    def athena_endpoint(self) -> Endpoint:
        """endpoint_url, or the regional Athena endpoint botocore resolves (no network)."""
        return self.endpoint or parse_endpoint(self.client("athena").meta.endpoint_url)


def _stage(runner: StageRunner, name: str, fn: Callable[[], tuple[T, str]]) -> T:
    """A stage whose success message is known only once it has run."""
    value, message = runner.run(name, fn)
    runner.stages[-1].message = message
    return value


def _closed(client: Any) -> ConnectorError:
    endpoint = parse_endpoint(client.meta.endpoint_url)
    return ConnectorError("tcp", connect_failed_message(endpoint.host, endpoint.port))


def _call(client: Any, fn: Callable[[], T], seconds: float, scope: EgressScope, stage: str) -> T:
    """One botocore call, bounded and under the scope; failures before an answer read like a closed port."""
    try:
        return call_bounded(fn, max(seconds, 0.05), scope)
    except ClientError:
        raise
    except (TimedOut, ReadTimeoutError):
        blocked = scope.blocked_error()
        if blocked or stage == "auth":  # not yet proven to be AWS: no oracle
            raise blocked or _closed(client) from None
        raise ConnectorError(stage, f"AWS did not answer within {seconds:g} seconds.") from None
    except BotoConnectionError:
        raise scope.blocked_error() or _closed(client) from None
    except Exception as exc:  # BotoCoreError, or botocore's ResponseParserError for a foreign answer
        blocked = scope.blocked_error()
        if blocked or stage == "auth":
            raise blocked or _closed(client) from None
        raise ConnectorError(stage, f"The AWS call failed: {type(exc).__name__}.") from None


class AthenaConnector(SessionConnector):
    """Stages: resolve, tcp, tls (https endpoints), auth (STS), database (Glue, workgroup, bucket)."""

    def run(self, config: ConnectionConfig, *, introspect: bool) -> TestResult:
        timeout = float(config.connect_timeout)
        tables = None
        with StageRunner(config.secrets) as runner:
            aws, endpoint = self._prepare(runner, config)
            with egress_scope(timeout, aws.only) as scope:
                reach_http(runner, endpoint, timeout, scope)
                _stage(runner, "auth", lambda: self._auth(aws, scope))
                runner.server_version = _stage(runner, "database", lambda: self._database(aws, scope))
                if introspect:
                    tables = self._introspect_stage(runner, aws, scope, config)
        result = runner.result()
        result.tables = tables if result.ok else None
        return result

    @staticmethod
    def _prepare(runner: StageRunner, config: ConnectionConfig) -> tuple[_Aws, Endpoint]:
        """The clients and the endpoint to reach (no network); an invalid region or endpoint fails at
        stage resolve."""
        try:
            aws = _Aws(config, float(config.connect_timeout))
            return aws, aws.athena_endpoint()
        except ConnectorError as exc:
            error = exc
        except (BotoCoreError, ValueError):
            error = ConnectorError("resolve", "No Athena endpoint is known for this region.")

        def fail() -> tuple[_Aws, Endpoint]:
            raise error

        return runner.run(error.stage, fail)

    def _auth(self, aws: _Aws, scope: EgressScope) -> tuple[None, str]:
        """STS GetCallerIdentity: the keys are valid. Anything but an AWS answer reads like a closed port."""
        if not aws.key_id or not aws.secret:
            raise ConnectorError("auth", "An access key ID and a secret access key are required.")
        sts = aws.client("sts")
        try:
            identity = _call(sts, lambda: sts.get_caller_identity(), aws.connect_timeout, scope, "auth")
        except ClientError as exc:
            code, status = _code(exc)
            if not _aws_shaped(code, status):
                raise _closed(sts) from None
            raise ConnectorError("auth", AUTH_REFUSED.format(code=code)) from None
        if not isinstance(identity, dict) or not identity.get("Account"):
            raise _closed(sts)
        account = re.sub(r"[^0-9]", "", str(identity["Account"]))[:12]
        return None, f"AWS accepted the keys (account {account})."

    def _database(self, aws: _Aws, scope: EgressScope) -> tuple[str, str]:
        """Glue database, then the workgroup (when set), then the output bucket; the stage shares one deadline."""
        deadline = Deadline(aws.connect_timeout)
        bucket = _bucket(aws.output)
        if not aws.database:
            raise ConnectorError("database", "A database is required.")
        glue = aws.client("glue")
        try:
            _call(glue, lambda: glue.get_database(Name=aws.database), deadline.remaining(), scope, "database")
        except ClientError as exc:
            code, _ = _code(exc)
            if code == "EntityNotFoundException":
                raise ConnectorError(
                    "database", f"Database '{aws.database}' was not found in the Glue Data Catalog ({aws.region})."
                ) from None
            raise ConnectorError("database", f"Glue refused to read database '{aws.database}' ({code}).") from None
        parts = [f"Database '{aws.database}' found."]
        version = f"Amazon Athena ({aws.region})"
        if aws.workgroup:
            engine = self._workgroup(aws, scope, deadline)
            version = f"{version}, {engine}" if engine else version
            parts.append(f"Workgroup '{aws.workgroup}' is enabled.")
        parts.append(self._output_bucket(aws, bucket, scope, deadline))
        return version, " ".join(parts)

    @staticmethod
    def _workgroup(aws: _Aws, scope: EgressScope, deadline: Deadline) -> str:
        """Athena GetWorkGroup: exists and enabled; returns its engine version."""
        athena = aws.client("athena")
        name = aws.workgroup
        try:
            answer = _call(athena, lambda: athena.get_work_group(WorkGroup=name), deadline.remaining(), scope,
                           "database")
        except ClientError as exc:
            code, _ = _code(exc)
            if code == "InvalidRequestException":  # AWS's answer for an unknown workgroup
                raise ConnectorError("database", f"Workgroup '{name}' was not found.") from None
            raise ConnectorError("database", f"Athena refused to read workgroup '{name}' ({code}).") from None
        group = answer.get("WorkGroup") or {}
        if not group:
            raise ConnectorError("database", f"Workgroup '{name}' was not found.")
        if group.get("State") == "DISABLED":
            raise ConnectorError("database", f"Workgroup '{name}' is disabled.")
        engine = ((group.get("Configuration") or {}).get("EngineVersion") or {}).get("EffectiveEngineVersion")
        return str(engine or "")[:100]

    @staticmethod
    def _output_bucket(aws: _Aws, bucket: str, scope: EgressScope, deadline: Deadline) -> str:
        """S3 HeadBucket on the result bucket: missing fails; forbidden or elsewhere is said, not failed
        (Athena may write to a bucket these keys cannot list)."""
        s3 = aws.client("s3")
        try:
            _call(s3, lambda: s3.head_bucket(Bucket=bucket), deadline.remaining(), scope, "database")
        except ClientError as exc:
            code, _ = _code(exc)
            if code in ("404", "NoSuchBucket"):
                raise ConnectorError("database", f"The S3 output bucket '{bucket}' does not exist.") from None
            if code in ("301", "PermanentRedirect"):
                return f"Output bucket '{bucket}' exists in another region."
            return f"Output bucket '{bucket}' not checked: HeadBucket was refused ({code})."
        return f"Output bucket '{bucket}' exists."

    def _introspect_stage(
        self, runner: StageRunner, aws: _Aws, scope: EgressScope, config: ConnectionConfig
    ) -> list[TableInfo] | None:
        """Introspect over the tested clients; None when that fails (the refresh then tries on its own
        and records why), so a schema problem never fails the connection test."""
        start = time.perf_counter()
        try:
            tables = self._tables(aws, scope, config)
        except ConnectorError:
            return None
        duration = round((time.perf_counter() - start) * 1000, 2)
        runner.stages.append(StageResult("introspect", True, duration, f"{len(tables)} tables and views."))
        return tables

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """Tables and views of the Glue database with their columns; raises ``ConnectorError``."""
        timeout = float(config.connect_timeout)
        try:
            aws = _Aws(config, float(config.query_timeout))
            with egress_scope(timeout, aws.only) as scope:
                if aws.endpoint:
                    address = resolve_checked(aws.endpoint.host, aws.endpoint.port, timeout)
                    check_transport(aws.endpoint, address)  # a refresh re-checks what the test checked
                    scope.pin(aws.endpoint.host, address)
                return self._tables(aws, scope, config)
        except ConnectorError as exc:
            raise ConnectorError("introspect", exc.message) from None

    def _tables(self, aws: _Aws, scope: EgressScope, config: ConnectionConfig) -> list[TableInfo]:
        """Glue GetTables page by page, all within query_timeout. Glue has no bulk column query: one
        request per 100 tables, i.e. ceil(min(n, MAX_TABLES) / 100) requests (10 for 1,000 tables, at
        most 100), each answer carrying the tables' columns and partition keys."""
        deadline = Deadline(float(config.query_timeout))
        glue = aws.client("glue", float(config.query_timeout))
        tables: list[TableInfo] = []
        token = ""
        while len(tables) < MAX_TABLES:
            request: dict[str, Any] = {"DatabaseName": aws.database, "MaxResults": GLUE_PAGE}
            if token:
                request["NextToken"] = token
            try:
                page = _call(glue, partial(glue.get_tables, **request), deadline.remaining(), scope, "introspect")
            except ClientError as exc:
                code, _ = _code(exc)
                if code == "EntityNotFoundException":
                    raise ConnectorError("introspect", f"Database '{aws.database}' was not found.") from None
                raise ConnectorError("introspect", f"Glue refused to list the tables ({code}).") from None
            for entry in page.get("TableList") or []:
                if len(tables) < MAX_TABLES:
                    tables.append(_table(aws.database, entry))
            token = str(page.get("NextToken") or "")
            if not token:
                break
        return tables


def _table(database: str, entry: dict[str, Any]) -> TableInfo:
    """A Glue table: its storage descriptor's columns, then its partition keys (Athena's order);
    Hive columns carry no NOT NULL, so every column is nullable."""
    kind = "view" if str(entry.get("TableType") or "").upper() == "VIRTUAL_VIEW" else "table"
    table = TableInfo(schema=database, name=str(entry.get("Name") or ""), kind=kind, columns=[])
    columns = [*((entry.get("StorageDescriptor") or {}).get("Columns") or []), *(entry.get("PartitionKeys") or [])]
    for column in columns[:MAX_COLUMNS]:
        data_type = str(column.get("Type") or "")[:1000]
        table.columns.append(ColumnInfo(str(column.get("Name") or ""), data_type, True, len(table.columns) + 1))
    return table
