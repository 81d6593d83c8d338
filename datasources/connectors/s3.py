"""Amazon S3 and S3-compatible stores (MinIO, R2...) on botocore, boto3's core.

boto3's resources would only wrap the same botocore client; the calls are few: ListBuckets (are
the keys valid?), ListObjectsV2 (the bucket, its tables) and ranged GetObject (column samples).
The botocore session is Athena's isolated one: only the keys given, no AWS_* variable, profile,
config file, proxy or instance metadata; no retries; S3's region redirector is switched off (a
bucket in another region is reported, never followed). Debug logs (request headers) stay off.

Addressing: path-style on ``endpoint_url`` (S3-compatible stores), virtual-hosted on AWS
(``<bucket>.s3.<region>.amazonaws.com``, path-style for names with dots, as botocore itself does:
AWS's certificate does not cover them). The bucket name is checked against S3's naming rules
first, so it can only ever be one DNS label sequence under the endpoint. Every call runs in an
egress scope that reaches the endpoint host and, in virtual-hosted style, the bucket's host name,
each checked by the policy; nothing else is looked up.

A table: File level, each object directly under the prefix with the format's suffix; Folder
level, each folder directly under the prefix (every object below it, e.g. Hive partitions).
Columns come from DuckDB's inference (file_tables.sandbox) on a bounded sample: the first 64 KiB
of a CSV / JSON-lines object cut to whole lines, or a Parquet object's footer (its last 64 KiB,
plus one more ranged GET when the footer is larger, up to 1 MiB). An object that cannot be read
is listed without columns.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError  # type: ignore[import-untyped]
from botocore.exceptions import ConnectionError as BotoConnectionError

from .athena import REGION, isolated_session
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
from .file_tables import sandbox
from .guard import EgressScope, TimedOut, call_bounded, egress_scope
from .http_stages import Endpoint, check_transport, parse_endpoint, reach_http
from .reach import Deadline

for _name in ("botocore", "boto3"):
    logging.getLogger(_name).setLevel(logging.WARNING)

T = TypeVar("T")
LIST_PAGE = 1000  # ListObjectsV2's largest page: listing = ceil(min(n, MAX_TABLES) / 1000) requests
MAX_PAGES = 2 * MAX_TABLES // LIST_PAGE
FOLDER_SCAN = 100  # keys looked at to find a folder's sample object
SAMPLE_BYTES = 64 * 1024  # CSV / JSON lines: the first 64 KiB, cut after the last whole line
TAIL_BYTES = 64 * 1024  # Parquet: the last 64 KiB (footer, its length, "PAR1") in one GET
MAX_FOOTER = 1024 * 1024  # a larger Parquet footer is not read
WORKERS = 8  # samples read in parallel
SUFFIXES = {"csv": (".csv", ".tsv"), "parquet": (".parquet", ".pq"), "jsonl": (".jsonl", ".ndjson", ".json")}
LEVELS = ("File", "Folder")
#: DuckDB's readers as the file connector calls them (CSV: header row, ',' or a tab for .tsv); ``$path`` is
#: always a file of our private folder
DESCRIBE = {"csv": "DESCRIBE SELECT * FROM read_csv($path, header = true, delim = ',')",
            "tsv": "DESCRIBE SELECT * FROM read_csv($path, header = true, delim = '\t')",
            "parquet": "DESCRIBE SELECT * FROM read_parquet($path)",
            "jsonl": "DESCRIBE SELECT * FROM read_json($path, format = 'newline_delimited')"}
NAME_MAX = 255  # the schema cache's table name length
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


@dataclass(frozen=True)
class Entry:
    """One table: an object (File level) or a folder prefix (Folder level)."""

    name: str
    key: str
    size: int = 0


class _S3:
    """One test's or refresh's settings and botocore clients (explicit keys, one session)."""

    def __init__(self, config: ConnectionConfig):
        c = config.connection
        self.region = str(c.get("region") or "").strip()
        if not REGION.fullmatch(self.region) or len(self.region) > 32:
            raise ConnectorError("resolve", "The region must be an AWS region name such as 'us-east-1'.")
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
        self.endpoint = self.custom or parse_endpoint(self.client(self.connect_timeout).meta.endpoint_url)

    @property
    def hosts(self) -> tuple[str, ...]:
        """The only names any call may look up: the endpoint, and the bucket's own in virtual-hosted style."""
        bucket_host = (f"{self.bucket}.{self.endpoint.host}",) if self.virtual else ()
        return (self.endpoint.host, *bucket_host)

    def client(self, read_timeout: float) -> Any:
        client = self._clients.get(read_timeout)
        if client is None:
            config = Config(
                connect_timeout=self.connect_timeout, read_timeout=read_timeout,
                retries={"total_max_attempts": 1, "mode": "standard"}, proxies={},
                ignore_configured_endpoint_urls=True, tcp_keepalive=False, max_pool_connections=WORKERS,
                request_checksum_calculation="when_required", response_checksum_validation="when_required",
                s3={"addressing_style": "virtual" if self.virtual else "path",
                    "us_east_1_regional_endpoint": "regional"},
            )
            url = f"{self.custom.base_url}{self.custom.path}" if self.custom else None
            client = self._session.create_client(
                "s3", region_name=self.region, endpoint_url=url, verify=True, config=config,
                aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
            )
            client.meta.events.register("before-call.s3", _no_region_redirect)
            self._clients[read_timeout] = client
        return client

    @property
    def base(self) -> str:
        """The prefix's folder: table names are relative to it."""
        return self.prefix[: self.prefix.rfind("/") + 1]


def _no_region_redirect(context: dict[str, Any], **_: Any) -> None:
    """Mark the call as already redirected: botocore's S3 redirector then never re-sends it to another
    region's endpoint (a bucket elsewhere is reported at stage database instead)."""
    redirect = context.get("s3_redirect")
    if isinstance(redirect, dict):
        redirect["redirected"] = True


def _code(exc: ClientError) -> tuple[str, int, dict[str, Any]]:
    """The error code (letters, digits, dots), HTTP status and headers of a client error."""
    error = exc.response.get("Error") or {}
    meta = exc.response.get("ResponseMetadata") or {}
    code = re.sub(r"[^A-Za-z0-9.]", "", str(error.get("Code") or ""))[:64]
    return code, int(meta.get("HTTPStatusCode") or 0), {**(meta.get("HTTPHeaders") or {}), **error}


def _aws_shaped(code: str, status: int) -> bool:
    """A parsed S3 error (named code), not a status botocore made up from a foreign answer or a redirect."""
    return bool(code) and not code.isdigit() and not 300 <= status < 400


def _closed(s3: _S3) -> ConnectorError:
    return ConnectorError("tcp", connect_failed_message(s3.endpoint.host, s3.endpoint.port))


def _call(s3: _S3, fn: Callable[[], T], seconds: float, scope: EgressScope, stage: str) -> T:
    """One botocore call, bounded and under the scope; failures before an S3 answer read like a closed port."""
    try:
        return call_bounded(fn, max(seconds, 0.05), scope)
    except ClientError:
        raise
    except (TimedOut, ReadTimeoutError):
        blocked = scope.blocked_error()
        if blocked or stage == "auth":  # not yet proven to be S3: no oracle
            raise blocked or _closed(s3) from None
        raise ConnectorError(stage, f"S3 did not answer within {seconds:g} seconds.") from None
    except BotoConnectionError:
        raise scope.blocked_error() or _closed(s3) from None
    except Exception as exc:  # BotoCoreError, or botocore's ResponseParserError for a foreign answer
        blocked = scope.blocked_error()
        if blocked or stage == "auth":
            raise blocked or _closed(s3) from None
        raise ConnectorError(stage, f"The S3 call failed: {type(exc).__name__}.") from None


def _region_error(s3: _S3, detail: dict[str, Any], status: int, code: str, subject: str = "") -> ConnectorError | None:
    """A bucket (or endpoint) in another region: S3 says so with a 301 or a signing-region error."""
    if code not in REGION_CODES and not 300 <= status < 400:
        return None
    region = str(detail.get("x-amz-bucket-region") or detail.get("Region") or "")
    subject = subject or f"Bucket '{s3.bucket}'"
    where = f"is in region '{region}', not '{s3.region}': set the region to {region}" if REGION.fullmatch(region) \
        else f"is not in region '{s3.region}' (S3 answered {code or status}; redirects are not followed)"
    return ConnectorError("database", f"{subject} {where}.")


def _stage(runner: StageRunner, name: str, fn: Callable[[], tuple[T, str]]) -> T:
    """A stage whose success message is known only once it has run."""
    value, message = runner.run(name, fn)
    runner.stages[-1].message = message
    return value


class S3Connector(SessionConnector):
    """Stages: resolve, tcp, tls (https), auth (ListBuckets), database (ListObjectsV2 on the bucket)."""

    def run(self, config: ConnectionConfig, *, introspect: bool) -> TestResult:
        timeout = float(config.connect_timeout)
        tables = None
        with StageRunner(config.secrets) as runner:
            s3 = self._prepare(runner, config)
            with egress_scope(timeout, s3.hosts) as scope:
                reach_http(runner, s3.endpoint, timeout, scope)
                _stage(runner, "auth", lambda: self._auth(s3, scope))
                runner.server_version = _stage(runner, "database", lambda: self._database(s3, scope))
                if introspect:
                    tables = self._introspect_stage(runner, s3, scope)
        result = runner.result()
        result.tables = tables if result.ok else None
        return result

    @staticmethod
    def _prepare(runner: StageRunner, config: ConnectionConfig) -> _S3:
        """Settings and client (no network); anything invalid fails at stage resolve."""
        try:
            return _S3(config)
        except ConnectorError as exc:
            error = exc
        except (BotoCoreError, ValueError):
            error = ConnectorError("resolve", "No S3 endpoint is known for this region.")

        def fail() -> _S3:
            raise error

        return runner.run(error.stage, fail)

    @staticmethod
    def _auth(s3: _S3, scope: EgressScope) -> tuple[None, str]:
        """ListBuckets: the one signed call that does not depend on the bucket (S3 answers NoSuchBucket
        before it checks a signature). AccessDenied still proves the signature was accepted."""
        if not s3.key_id or not s3.secret:
            raise ConnectorError("auth", "An access key ID and a secret access key are required.")
        client = s3.client(s3.connect_timeout)
        try:
            _call(s3, lambda: client.list_buckets(MaxBuckets=1), s3.connect_timeout, scope, "auth")
        except ClientError as exc:
            code, status, detail = _code(exc)
            if not _aws_shaped(code, status):
                raise _closed(s3) from None
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
            page = _call(s3, partial(client.list_objects_v2, **request), s3.connect_timeout, scope, "database")
        except ClientError as exc:
            raise _bucket_error(s3, exc, "database") from None
        version = f"S3-compatible endpoint ({s3.region})" if s3.custom else f"Amazon S3 ({s3.region})"
        message = f"Bucket '{s3.bucket}' is readable"
        if s3.prefix:
            found = page.get("Contents") or page.get("CommonPrefixes")
            message += f"; {'objects' if found else 'nothing yet'} under '{s3.prefix[:100]}'"
        return version, message + "."

    def _introspect_stage(self, runner: StageRunner, s3: _S3, scope: EgressScope) -> list[TableInfo] | None:
        """Introspect over the tested client; None when that fails (the refresh that follows tries on its
        own and records why), so a schema problem never fails the connection test."""
        start = time.perf_counter()
        try:
            tables, unread = _Introspection(s3, scope).tables()
        except ConnectorError:
            return None
        duration = round((time.perf_counter() - start) * 1000, 2)
        message = f"{len(tables)} table{'' if len(tables) == 1 else 's'}."
        if unread:
            message += f" {unread} could not be read: listed without columns."
        runner.stages.append(StageResult("introspect", True, duration, message))
        return tables

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """The bucket's tables with their columns; raises ``ConnectorError``."""
        timeout = float(config.connect_timeout)
        try:
            s3 = _S3(config)
            with egress_scope(timeout, s3.hosts) as scope:
                address = resolve_checked(s3.endpoint.host, s3.endpoint.port, timeout)
                check_transport(s3.endpoint, address)  # a refresh re-checks what the test checked
                scope.pin(s3.endpoint.host, address)
                return _Introspection(s3, scope).tables()[0]
        except ConnectorError as exc:
            raise ConnectorError("introspect", exc.message) from None
        except (BotoCoreError, ValueError):
            raise ConnectorError("introspect", "No S3 endpoint is known for this region.") from None


def _bucket_error(s3: _S3, exc: ClientError, stage: str) -> ConnectorError:
    """ListObjectsV2 refused: keys at auth, region or bucket at ``stage``."""
    code, status, detail = _code(exc)
    if code in AUTH_CODES:
        return ConnectorError("auth" if stage == "database" else stage, AUTH_REFUSED.format(code=code))
    region = _region_error(s3, detail, status, code)
    if region:
        return ConnectorError(stage, region.message)
    if code == "NoSuchBucket":
        return ConnectorError(stage, f"Bucket '{s3.bucket}' does not exist.")
    if code == "AccessDenied":
        return ConnectorError(stage, f"The keys may not list bucket '{s3.bucket}' (AccessDenied).")
    return ConnectorError(stage, f"S3 refused to list bucket '{s3.bucket}' ({code or status}).")


class _Introspection:
    """List the tables (pages of 1,000), read one bounded sample each (8 at a time), infer with DuckDB;
    everything within query_timeout."""

    def __init__(self, s3: _S3, scope: EgressScope):
        self.s3, self.scope = s3, scope
        self.deadline = Deadline(s3.query_timeout)
        self.client = s3.client(s3.query_timeout)
        self.suffixes = SUFFIXES[s3.format]
        self.duckdb_error: type[Exception] = Exception  # duckdb.Error once imported

    def call(self, fn: Callable[[], T]) -> T:
        seconds = self.deadline.remaining()
        if seconds <= 0:
            raise self.late()
        return _call(self.s3, fn, seconds, self.scope, "introspect")

    def late(self) -> ConnectorError:
        return ConnectorError("introspect", f"Introspection did not finish within {self.s3.query_timeout:g} seconds.")

    def tables(self) -> tuple[list[TableInfo], int]:
        """The tables and how many of them could not be read: each sample is fetched, written to a private
        folder, described and deleted by one of WORKERS threads, in one DuckDB sandbox that may read only
        those files (each thread its own cursor)."""
        entries = self.entries()
        if not entries:
            return [], 0
        try:
            import duckdb
        except ImportError:
            raise ConnectorError("introspect", "S3 columns are inferred with DuckDB: pip install duckdb.") from None
        self.duckdb_error = duckdb.Error
        try:
            with tempfile.TemporaryDirectory(prefix="s3-samples-") as tmp:
                paths = [Path(tmp) / f"{i}.sample" for i in range(len(entries))]
                with sandbox(paths, max(self.deadline.remaining(), 0.1)) as con:
                    found = self._in_parallel(entries, paths, con)
        except (OSError, duckdb.Error) as exc:  # the temporary folder or DuckDB itself, not an object
            raise ConnectorError("introspect", f"Columns could not be inferred ({type(exc).__name__}).") from None
        return found, sum(1 for t in found if not t.columns)

    def _in_parallel(self, entries: list[Entry], paths: list[Path], con: Any) -> list[TableInfo]:
        cursors: list[Any] = []
        local = threading.local()

        def table(index: int) -> TableInfo | None:
            if not hasattr(local, "cursor"):
                local.cursor = con.cursor()
                cursors.append(local.cursor)
            return self.table(entries[index], paths[index], local.cursor)

        pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="s3-sample")
        try:
            return [t for t in pool.map(table, range(len(entries))) if t]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for cursor in cursors:
                cursor.close()

    def entries(self) -> list[Entry]:
        """ListObjectsV2 with delimiter '/' under the prefix: objects (File) or folders (Folder), at most
        MAX_TABLES keys and folders looked at."""
        s3 = self.s3
        found: list[Entry] = []
        names: set[str] = set()
        seen, token = 0, ""
        for _ in range(MAX_PAGES):  # pages may come short of 1,000: still bounded
            if seen >= MAX_TABLES:
                break
            request: dict[str, Any] = {"Bucket": s3.bucket, "Prefix": s3.prefix, "Delimiter": "/",
                                       "MaxKeys": min(LIST_PAGE, MAX_TABLES - seen)}
            if token:
                request["ContinuationToken"] = token
            try:
                page = self.call(partial(self.client.list_objects_v2, **request))
            except ClientError as exc:
                raise _bucket_error(s3, exc, "introspect") from None
            objects, folders = page.get("Contents") or [], page.get("CommonPrefixes") or []
            seen += len(objects) + len(folders)
            if s3.level == "File":
                candidates = [(str(o.get("Key") or ""), int(o.get("Size") or 0)) for o in objects]
                for key, size in candidates:
                    if size > 0 and key.startswith(s3.prefix) and key.lower().endswith(self.suffixes):
                        self._add(found, names, key[len(s3.base):], key, size)
            else:
                for folder in folders:
                    key = str(folder.get("Prefix") or "")
                    if key.startswith(s3.prefix):
                        self._add(found, names, key[len(s3.base):].rstrip("/"), key, 0)
            token = str(page.get("NextContinuationToken") or "") if page.get("IsTruncated") else ""
            if not token:
                break
        return found

    def _add(self, found: list[Entry], names: set[str], relative: str, key: str, size: int) -> None:
        name = relative
        if self.s3.level == "File":
            stem = next((relative[: -len(s)] for s in self.suffixes if relative.lower().endswith(s)), relative)
            name = stem if stem and stem not in names else relative
        if name and len(name) <= NAME_MAX and name not in names:
            names.add(name)
            found.append(Entry(name, key, size))

    def table(self, entry: Entry, path: Path, cursor: Any) -> TableInfo | None:
        """The entry's table, its columns inferred from a bounded sample (none when unreadable); None when
        a folder holds no object of the format (then it is no table)."""
        located = self.first_object(entry.key) if self.s3.level == "Folder" else entry
        if located is None:
            return None
        try:
            data = self.parquet_footer(located) if self.s3.format == "parquet" else self.head(located)
        except ClientError:
            data = b""  # gone, forbidden, not ranged: listed without columns
        columns: list[ColumnInfo] = []
        if data:
            path.write_bytes(data)
            try:
                columns = self.describe(cursor, path, located.key.lower().endswith(".tsv"))
            finally:
                path.unlink()
        return TableInfo(self.s3.bucket, entry.name, "table", columns)

    def first_object(self, prefix: str) -> Entry | None:
        """The first object of the format (by key) among a folder's first FOLDER_SCAN keys."""
        request = {"Bucket": self.s3.bucket, "Prefix": prefix, "MaxKeys": FOLDER_SCAN}
        try:
            page = self.call(partial(self.client.list_objects_v2, **request))
        except ClientError:
            return None
        for item in page.get("Contents") or []:
            key, size = str(item.get("Key") or ""), int(item.get("Size") or 0)
            if size > 0 and key.lower().endswith(self.suffixes):
                return Entry("", key, size)
        return None

    def ranged(self, key: str, first: int, last: int, size: int) -> bytes:
        """GetObject ``Range: bytes=first-last``, reading at most that many bytes whatever is sent;
        b"" when a tail's answer is not that range of an object of ``size`` bytes."""
        want = last - first + 1

        def get() -> bytes:
            answer = self.client.get_object(Bucket=self.s3.bucket, Key=key, Range=f"bytes={first}-{last}")
            body = answer["Body"]
            try:
                data = body.read(want)
            finally:
                body.close()
            ranged = str(answer.get("ContentRange") or "") == f"bytes {first}-{last}/{size}"
            return bytes(data) if ranged or first == 0 else b""  # a head is a head even if Range was ignored

        return self.call(get)

    def head(self, entry: Entry) -> bytes:
        """The first SAMPLE_BYTES, cut after the last whole line when the object is longer."""
        want = min(entry.size, SAMPLE_BYTES)
        data = self.ranged(entry.key, 0, want - 1, entry.size)
        if not data or entry.size <= want:
            return data
        return _whole_csv_lines(data) if self.s3.format == "csv" else data[: data.rfind(b"\n") + 1]

    def parquet_footer(self, entry: Entry) -> bytes:
        """A file DuckDB can read the schema of: "PAR1" + the footer (metadata, its length, "PAR1")."""
        size = entry.size
        if size < 12:
            return b""
        tail = min(size, TAIL_BYTES)
        data = self.ranged(entry.key, size - tail, size - 1, size)
        if len(data) < 8 or data[-4:] != b"PAR1":
            return b""
        length = int.from_bytes(data[-8:-4], "little")
        if length > MAX_FOOTER or length + 12 > size:
            return b""
        if length + 8 > len(data):  # the footer starts before the tail: one more ranged GET
            data = self.ranged(entry.key, size - 8 - length, size - tail - 1, size) + data
        return b"PAR1" + data[-(length + 8):] if len(data) >= length + 8 else b""

    def describe(self, cursor: Any, path: Path, tsv: bool) -> list[ColumnInfo]:
        """DuckDB's inference on one written sample; no columns when it does not read as the format."""
        statement = DESCRIBE["tsv" if tsv else self.s3.format]
        try:
            rows = cursor.execute(statement, {"path": str(path)}).fetchall()
        except self.duckdb_error as exc:
            if type(exc).__name__ == "InterruptException":
                raise self.late() from None
            return []
        return [ColumnInfo(str(row[0]), str(row[1]), True, i) for i, row in enumerate(rows[:MAX_COLUMNS], start=1)]


def _whole_csv_lines(data: bytes) -> bytes:
    """``data`` up to its last line break outside double quotes (a quoted field may span lines)."""
    last, position = -1, 0
    for index, part in enumerate(data.split(b'"')):
        if index % 2 == 0:  # outside quotes ("" inside a quoted field splits into an empty inside part)
            found = part.rfind(b"\n")
            if found >= 0:
                last = position + found
        position += len(part) + 1
    return data[: last + 1]
