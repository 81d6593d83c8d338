"""Amazon Athena connector on botocore (boto3's core): the Glue Data Catalog is Athena's catalogue.

A connection test and the schema need no query: identity is STS GetCallerIdentity, the database
and its tables are Glue GetDatabase / GetTables (what Athena itself reads), the workgroup is
Athena GetWorkGroup, the result location's bucket S3 HeadBucket. PyAthena would only add a DB-API
layer over these same boto3 clients.

``data_catalog`` is Athena's "data source" (Databrain's "Datasource ID"): ``AwsDataCatalog``, the
default, is the account's own Glue Data Catalog and needs no call. Another name is looked up with
Athena GetDataCatalog: a GLUE catalog is read through Glue with its ``catalog-id`` parameter as the
CatalogId (another account's catalog, shared with this one); a LAMBDA, HIVE or FEDERATED catalog is
refused at stage database (Glue cannot read it; Athena's metadata API would).

Only the keys given are used, in aws.py's isolated botocore session (no AWS_* variable, profile,
config file, proxy or instance metadata); no retries; debug logs (request headers) stay off.

``endpoint_url`` (a VPC endpoint or an AWS-compatible service) replaces the regional endpoints of
Athena, Glue, STS and S3; otherwise they are AWS's for ``region``. Every call runs in an egress
scope: each host name is resolved once and checked, with an endpoint URL no other host may be
looked up, a refused lookup reads as a failed TCP connect.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from .aws import (
    aws_shaped,
    bounded_call,
    check_keys,
    check_region,
    closed,
    endpoint_of,
    error_of,
    introspect_stage,
    isolated_session,
    new_client,
    pin_endpoint,
    prepare,
    run_stage,
)
from .base import (
    MAX_COLUMNS,
    MAX_TABLES,
    ColumnInfo,
    ConnectionConfig,
    ConnectorError,
    SessionConnector,
    StageRunner,
    TableInfo,
    TestResult,
)
from .guard import EgressScope, egress_scope
from .http_stages import Endpoint, parse_endpoint, reach_http
from .reach import Deadline

T = TypeVar("T")
GLUE_PAGE = 100  # Glue GetTables answers at most 100 tables a request: introspection = ceil(n / 100) requests
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
DEFAULT_CATALOG = "AwsDataCatalog"
CATALOG_NAME = re.compile(r"[A-Za-z0-9_@-]{1,127}")
#: A Glue catalog ID: an account ID, or ``account:catalog[/sub]`` for a multi-level (federated) catalog
CATALOG_ID = re.compile(r"[0-9]{12}(:[A-Za-z0-9_@./-]{1,200})?")
AUTH_REFUSED = "AWS refused the access key ID or secret access key ({code})."


def _bucket(location: str) -> str:
    match = re.fullmatch(r"s3://([^/]+)(/.*)?", (location or "").strip())
    if not match or not BUCKET.fullmatch(match.group(1)):
        raise ConnectorError("database", "The S3 output location must look like s3://bucket/prefix/.")
    return match.group(1)


class _Aws:
    """One test's or refresh's botocore clients: explicit keys, one session, lazily made."""

    def __init__(self, config: ConnectionConfig, read_timeout: float):
        c = config.connection
        self.region = check_region(c.get("region"))
        self.database = str(c.get("database") or "").strip()
        self.catalog = str(c.get("data_catalog") or "").strip() or DEFAULT_CATALOG
        self.catalog_id = ""  # the Glue CatalogId of a catalog other than the default (see _catalog)
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
            client = new_client(
                self._session, service, region=self.region, endpoint=self.endpoint, keys=(self.key_id, self.secret),
                timeouts=(self.connect_timeout, timeout), pool=2,
                s3={"addressing_style": "path"} if self.endpoint else {},
            )
            self._clients[(service, timeout)] = client
        return client

    @property
    def default_catalog(self) -> bool:
        return self.catalog.lower() == DEFAULT_CATALOG.lower()

    def in_catalog(self) -> dict[str, str]:
        """The CatalogId of a Glue request: none for the account's own catalog."""
        return {"CatalogId": self.catalog_id} if self.catalog_id else {}

    def athena_endpoint(self) -> Endpoint:
        """endpoint_url, or the regional Athena endpoint botocore resolves (no network)."""
        return self.endpoint or endpoint_of(self.client("athena"))


def _call(client: Any, fn: Callable[[], T], seconds: float, scope: EgressScope, stage: str) -> T:
    """One bounded call of ``client``; failures before an AWS answer read like its closed port."""
    return bounded_call(fn, seconds, scope, stage, endpoint=endpoint_of(client))


class AthenaConnector(SessionConnector):
    """Stages: resolve, tcp, tls (https endpoints), auth (STS), database (Glue, workgroup, bucket)."""

    def run(self, config: ConnectionConfig, *, introspect: bool) -> TestResult:
        timeout = float(config.connect_timeout)
        tables = None
        with StageRunner(config.secrets) as runner:
            aws, endpoint = self._prepare(runner, config)
            with egress_scope(timeout, aws.only) as scope:
                reach_http(runner, endpoint, timeout, scope)
                run_stage(runner, "auth", lambda: self._auth(aws, scope))
                runner.server_version = run_stage(runner, "database", lambda: self._database(aws, scope))
                if introspect:
                    tables = introspect_stage(runner, lambda: self._listed(aws, scope, config))
        result = runner.result()
        result.tables = tables if result.ok else None
        return result

    @staticmethod
    def _prepare(runner: StageRunner, config: ConnectionConfig) -> tuple[_Aws, Endpoint]:
        """The clients and the endpoint to reach (no network); an invalid region or endpoint fails at
        stage resolve."""

        def make() -> tuple[_Aws, Endpoint]:
            aws = _Aws(config, float(config.connect_timeout))
            return aws, aws.athena_endpoint()

        return prepare(runner, make, "Athena")

    def _auth(self, aws: _Aws, scope: EgressScope) -> tuple[None, str]:
        """STS GetCallerIdentity: the keys are valid. Anything but an AWS answer reads like a closed port."""
        check_keys(aws.key_id, aws.secret)
        sts = aws.client("sts")
        try:
            identity = _call(sts, lambda: sts.get_caller_identity(), aws.connect_timeout, scope, "auth")
        except ClientError as exc:
            code, status, _ = error_of(exc)
            if not aws_shaped(code, status):
                raise closed(endpoint_of(sts)) from None
            raise ConnectorError("auth", AUTH_REFUSED.format(code=code)) from None
        if not isinstance(identity, dict) or not identity.get("Account"):
            raise closed(endpoint_of(sts))
        account = re.sub(r"[^0-9]", "", str(identity["Account"]))[:12]
        return None, f"AWS accepted the keys (account {account})."

    def _database(self, aws: _Aws, scope: EgressScope) -> tuple[str, str]:
        """The data catalog (unless the default), the Glue database, then the workgroup (when set), then
        the output bucket; the stage shares one deadline."""
        deadline = Deadline(aws.connect_timeout)
        bucket = _bucket(aws.output)
        if not aws.database:
            raise ConnectorError("database", "A database is required.")
        parts = [] if aws.default_catalog else [_catalog(aws, scope, deadline.remaining(), "database")]
        glue = aws.client("glue")
        try:
            _call(glue, lambda: glue.get_database(Name=aws.database, **aws.in_catalog()), deadline.remaining(),
                  scope, "database")
        except ClientError as exc:
            code = error_of(exc).code
            if code == "EntityNotFoundException":
                where = (f"the Glue Data Catalog ({aws.region})" if aws.default_catalog
                         else f"data catalog '{aws.catalog}'")
                raise ConnectorError("database", f"Database '{aws.database}' was not found in {where}.") from None
            raise ConnectorError("database", f"Glue refused to read database '{aws.database}' ({code}).") from None
        parts.append(f"Database '{aws.database}' found.")
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
            code = error_of(exc).code
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
            code = error_of(exc).code
            if code in ("404", "NoSuchBucket"):
                raise ConnectorError("database", f"The S3 output bucket '{bucket}' does not exist.") from None
            if code in ("301", "PermanentRedirect"):
                return f"Output bucket '{bucket}' exists in another region."
            return f"Output bucket '{bucket}' not checked: HeadBucket was refused ({code})."
        return f"Output bucket '{bucket}' exists."

    def _listed(self, aws: _Aws, scope: EgressScope, config: ConnectionConfig) -> tuple[list[TableInfo], str]:
        tables = self._tables(aws, scope, config)
        return tables, f"{len(tables)} tables and views."

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """Tables and views of the Glue database with their columns; raises ``ConnectorError``."""
        timeout = float(config.connect_timeout)
        try:
            aws = _Aws(config, float(config.query_timeout))
            with egress_scope(timeout, aws.only) as scope:
                if aws.endpoint:
                    pin_endpoint(scope, aws.endpoint, timeout)  # a refresh re-checks what the test checked
                if not aws.default_catalog:  # a refresh reads the catalog's CatalogId anew
                    _catalog(aws, scope, timeout, "introspect")
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
            request: dict[str, Any] = {"DatabaseName": aws.database, "MaxResults": GLUE_PAGE, **aws.in_catalog()}
            if token:
                request["NextToken"] = token
            try:
                page = _call(glue, partial(glue.get_tables, **request), deadline.remaining(), scope, "introspect")
            except ClientError as exc:
                code = error_of(exc).code
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


def _catalog(aws: _Aws, scope: EgressScope, seconds: float, stage: str) -> str:
    """Athena GetDataCatalog: the catalog exists and is a Glue one; sets ``aws.catalog_id`` from its
    ``catalog-id`` parameter (absent: this account's). Returns the stage's message part."""
    name = aws.catalog
    if not CATALOG_NAME.fullmatch(name):
        raise ConnectorError(stage, "The data catalog must be an Athena data catalog name.")
    athena = aws.client("athena")
    try:
        answer = _call(athena, lambda: athena.get_data_catalog(Name=name), seconds, scope, stage)
    except ClientError as exc:
        code = error_of(exc).code
        if code in ("InvalidRequestException", "ResourceNotFoundException"):  # AWS's answers for an unknown name
            raise ConnectorError(stage, f"Data catalog '{name}' was not found.") from None
        raise ConnectorError(stage, f"Athena refused to read data catalog '{name}' ({code}).") from None
    catalog = answer.get("DataCatalog") if isinstance(answer, dict) else None
    if not isinstance(catalog, dict) or not catalog:
        raise ConnectorError(stage, f"Data catalog '{name}' was not found.")
    kind = re.sub(r"[^A-Z_]", "", str(catalog.get("Type") or "").upper())[:20]
    if kind != "GLUE":
        raise ConnectorError(stage, f"Data catalog '{name}' is a {kind or 'non-Glue'} catalog: only Glue catalogs "
                                    "(AwsDataCatalog or a Glue catalog of another account) can be read.")
    parameters = catalog.get("Parameters") or {}
    catalog_id = str(parameters.get("catalog-id") or "").strip() if isinstance(parameters, dict) else ""
    if catalog_id and not CATALOG_ID.fullmatch(catalog_id):
        raise ConnectorError(stage, f"Data catalog '{name}' has a catalog-id that is not a Glue catalog ID.")
    aws.catalog_id = catalog_id
    return f"Data catalog '{name}' (Glue, catalog {catalog_id or 'of this account'})."


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
