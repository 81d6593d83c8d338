"""Amazon S3 and S3-compatible stores (MinIO, R2...) on botocore, boto3's core.

boto3's resources would only wrap the same botocore client; the calls are few: ListBuckets (are
the keys valid?), ListObjectsV2 (the bucket, its tables) and ranged GetObject (column samples).
The botocore session is aws.py's isolated one: only the keys given, no AWS_* variable, profile,
config file, proxy or instance metadata; no retries; S3's region redirector is switched off (a
bucket in another region is reported, never followed). Debug logs (request headers) stay off.

Addressing: path-style on ``endpoint_url`` (S3-compatible stores), virtual-hosted on AWS
(``<bucket>.s3.<region>.amazonaws.com``, path-style for names with dots, as botocore itself does:
AWS's certificate does not cover them). The bucket name is checked against S3's naming rules
first, so it can only ever be one DNS label sequence under the endpoint. Every call runs in an
egress scope that reaches the endpoint host and, in virtual-hosted style, the bucket's host name,
each checked by the policy; nothing else is looked up.

The tables (listing, File / Folder grouping, ranged reads, DuckDB inference) are s3_tables.py's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from .aws import (
    NO_ENDPOINT,
    REGION,
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
from .base import ConnectionConfig, ConnectorError, SessionConnector, StageRunner, TableInfo, TestResult
from .guard import EgressScope, egress_scope
from .http_stages import Endpoint, parse_endpoint, reach_http
from .s3_tables import LEVELS, SUFFIXES, WORKERS, Introspection

T = TypeVar("T")
AUTH_CODES = frozenset({"SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken",
                        "TokenRefreshRequired", "InvalidSecurity", "AccountProblem", "NotSignedUp"})
REGION_CODES = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"})
AUTH_REFUSED = "S3 refused the access key ID or secret access key ({code})."
LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
BUCKET = re.compile(rf"{LABEL}(?:\.{LABEL})*")
RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
BUCKET_RULES = ("The bucket name must follow S3's naming rules: 3-63 lower-case letters, digits, hyphens and single "
                "dots, starting and ending with a letter or digit, not an IP address.")


def check_bucket(name: str) -> str:
    """S3's bucket naming rules (general purpose buckets); raises ``ConnectorError`` at resolve."""
    ok = 3 <= len(name) <= 63 and BUCKET.fullmatch(name) is not None
    if ok and not name.startswith(RESERVED_PREFIXES) and not name.endswith(RESERVED_SUFFIXES):
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return name
    raise ConnectorError("resolve", BUCKET_RULES)


class _S3:
    """One test's or refresh's settings and botocore clients (explicit keys, one session)."""

    def __init__(self, config: ConnectionConfig):
        c = config.connection
        self.region = check_region(c.get("region"))
        self.bucket = check_bucket(str(c.get("bucket") or "").strip())
        self.prefix = str(c.get("path_prefix") or "")
        self.level = str(c.get("table_level") or "File")
        self.format = str(c.get("format") or "csv")
        if self.level not in LEVELS or self.format not in SUFFIXES:
            raise ConnectorError("resolve", "The table level must be File or Folder; the format csv, parquet or jsonl.")
        self.key_id = str(c.get("access_key_id") or "").strip()
        self.secret = config.secrets.get("secret_access_key") or ""
        self.custom: Endpoint | None = parse_endpoint(c["endpoint_url"]) if c.get("endpoint_url") else None
        self.connect_timeout = float(config.connect_timeout)
        self.query_timeout = float(config.query_timeout)
        self.virtual = self.custom is None and "." not in self.bucket
        self._session = isolated_session()
        self._clients: dict[float, Any] = {}
        self.endpoint = self.custom or endpoint_of(self.client(self.connect_timeout))

    @property
    def hosts(self) -> tuple[str, ...]:
        """The only names any call may look up: the endpoint, and the bucket's own in virtual-hosted style."""
        bucket_host = (f"{self.bucket}.{self.endpoint.host}",) if self.virtual else ()
        return (self.endpoint.host, *bucket_host)

    def client(self, read_timeout: float) -> Any:
        client = self._clients.get(read_timeout)
        if client is None:
            client = new_client(
                self._session, "s3", region=self.region, endpoint=self.custom, keys=(self.key_id, self.secret),
                timeouts=(self.connect_timeout, read_timeout), pool=WORKERS,
                request_checksum_calculation="when_required", response_checksum_validation="when_required",
                s3={"addressing_style": "virtual" if self.virtual else "path",
                    "us_east_1_regional_endpoint": "regional"},
            )
            client.meta.events.register("before-call.s3", _no_region_redirect)
            self._clients[read_timeout] = client
        return client

    @property
    def base(self) -> str:
        """The prefix's folder: table names are relative to it."""
        return self.prefix[: self.prefix.rfind("/") + 1]

    def call(self, fn: Callable[[], T], seconds: float, scope: EgressScope, stage: str) -> T:
        """One bounded call; failures before an S3 answer read like the endpoint's closed port."""
        return bounded_call(fn, seconds, scope, stage, endpoint=self.endpoint, label="S3")

    def refused(self, exc: ClientError, stage: str) -> ConnectorError:
        """ListObjectsV2 refused: keys at auth, region or bucket at ``stage``."""
        code, status, detail = error_of(exc)
        if code in AUTH_CODES:
            return ConnectorError("auth" if stage == "database" else stage, AUTH_REFUSED.format(code=code))
        region = _region_error(self, detail, status, code)
        if region:
            return ConnectorError(stage, region.message)
        if code == "NoSuchBucket":
            return ConnectorError(stage, f"Bucket '{self.bucket}' does not exist.")
        if code == "AccessDenied":
            return ConnectorError(stage, f"The keys may not list bucket '{self.bucket}' (AccessDenied).")
        return ConnectorError(stage, f"S3 refused to list bucket '{self.bucket}' ({code or status}).")


def _no_region_redirect(context: dict[str, Any], **_: Any) -> None:
    """Mark the call as already redirected: botocore's S3 redirector then never re-sends it to another
    region's endpoint (a bucket elsewhere is reported at stage database instead)."""
    redirect = context.get("s3_redirect")
    if isinstance(redirect, dict):
        redirect["redirected"] = True


def _region_error(s3: _S3, detail: dict[str, Any], status: int, code: str, subject: str = "") -> ConnectorError | None:
    """A bucket (or endpoint) in another region: S3 says so with a 301 or a signing-region error."""
    if code not in REGION_CODES and not 300 <= status < 400:
        return None
    region = str(detail.get("x-amz-bucket-region") or detail.get("Region") or "")
    subject = subject or f"Bucket '{s3.bucket}'"
    where = f"is in region '{region}', not '{s3.region}': set the region to {region}" if REGION.fullmatch(region) \
        else f"is not in region '{s3.region}' (S3 answered {code or status}; redirects are not followed)"
    return ConnectorError("database", f"{subject} {where}.")


class S3Connector(SessionConnector):
    """Stages: resolve, tcp, tls (https), auth (ListBuckets), database (ListObjectsV2 on the bucket)."""

    def run(self, config: ConnectionConfig, *, introspect: bool) -> TestResult:
        timeout = float(config.connect_timeout)
        tables = None
        with StageRunner(config.secrets) as runner:
            s3 = self._prepare(runner, config)
            with egress_scope(timeout, s3.hosts) as scope:
                reach_http(runner, s3.endpoint, timeout, scope)
                run_stage(runner, "auth", lambda: self._auth(s3, scope))
                runner.server_version = run_stage(runner, "database", lambda: self._database(s3, scope))
                if introspect:
                    tables = introspect_stage(runner, lambda: _listed(s3, scope))
        result = runner.result()
        result.tables = tables if result.ok else None
        return result

    @staticmethod
    def _prepare(runner: StageRunner, config: ConnectionConfig) -> _S3:
        """Settings and client (no network); anything invalid fails at stage resolve."""
        return prepare(runner, lambda: _S3(config), "S3")

    @staticmethod
    def _auth(s3: _S3, scope: EgressScope) -> tuple[None, str]:
        """ListBuckets: the one signed call that does not depend on the bucket (S3 answers NoSuchBucket
        before it checks a signature). AccessDenied still proves the signature was accepted."""
        check_keys(s3.key_id, s3.secret)
        client = s3.client(s3.connect_timeout)
        try:
            s3.call(lambda: client.list_buckets(MaxBuckets=1), s3.connect_timeout, scope, "auth")
        except ClientError as exc:
            code, status, detail = error_of(exc)
            if not aws_shaped(code, status):
                raise closed(s3.endpoint) from None
            if code in AUTH_CODES:
                raise ConnectorError("auth", AUTH_REFUSED.format(code=code)) from None
            region = _region_error(s3, detail, status, code, "The endpoint")
            if region:
                raise region from None
            if code == "AccessDenied":
                return None, "S3 accepted the keys (they may not list buckets, which the test does not need)."
            return None, f"S3 answered ListBuckets with {code}; the keys are checked on the bucket next."
        return None, "S3 accepted the keys."

    @staticmethod
    def _database(s3: _S3, scope: EgressScope) -> tuple[str, str]:
        """ListObjectsV2 (one key) on the bucket and prefix: it exists, is in this region, may be listed."""
        client = s3.client(s3.connect_timeout)
        request = {"Bucket": s3.bucket, "Prefix": s3.prefix, "Delimiter": "/", "MaxKeys": 1}
        try:
            page = s3.call(partial(client.list_objects_v2, **request), s3.connect_timeout, scope, "database")
        except ClientError as exc:
            raise s3.refused(exc, "database") from None
        version = f"S3-compatible endpoint ({s3.region})" if s3.custom else f"Amazon S3 ({s3.region})"
        message = f"Bucket '{s3.bucket}' is readable"
        if s3.prefix:
            found = page.get("Contents") or page.get("CommonPrefixes")
            message += f"; {'objects' if found else 'nothing yet'} under '{s3.prefix[:100]}'"
        return version, message + "."

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """The bucket's tables with their columns; raises ``ConnectorError``."""
        timeout = float(config.connect_timeout)
        try:
            s3 = _S3(config)
            with egress_scope(timeout, s3.hosts) as scope:
                pin_endpoint(scope, s3.endpoint, timeout)  # a refresh re-checks what the test checked
                return Introspection(s3, scope).tables()[0]
        except ConnectorError as exc:
            raise ConnectorError("introspect", exc.message) from None
        except (BotoCoreError, ValueError):
            raise ConnectorError("introspect", NO_ENDPOINT.format(label="S3")) from None


def _listed(s3: _S3, scope: EgressScope) -> tuple[list[TableInfo], str]:
    """Introspection over the tested client, and the stage's message."""
    tables, unread = Introspection(s3, scope).tables()
    message = f"{len(tables)} table{'' if len(tables) == 1 else 's'}."
    if unread:
        message += f" {unread} could not be read: listed without columns."
    return tables, message
