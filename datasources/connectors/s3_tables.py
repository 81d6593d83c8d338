"""The tables of an S3 bucket: listing, File / Folder grouping, bounded ranged reads, DuckDB inference.

A table: File level, each object directly under the prefix with the format's suffix; Folder
level, each folder directly under the prefix (every object below it, e.g. Hive partitions).
Columns come from DuckDB's inference (file_tables.sandbox) on a bounded sample: the first 64 KiB
of a CSV / JSON-lines object cut to whole lines, or a Parquet object's footer (its last 64 KiB,
plus one more ranged GET when the footer is larger, up to 1 MiB). An object that cannot be read
is listed without columns.

The bucket, its settings, clients and bounded call, and what a refused listing means are s3.py's
(``Bucket``); everything here runs within query_timeout.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from .base import MAX_COLUMNS, MAX_TABLES, ColumnInfo, ConnectorError, TableInfo
from .file_tables import sandbox
from .guard import EgressScope
from .reach import Deadline

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


class Bucket(Protocol):
    """The bucket introspected, as s3.py's settings hold it."""

    bucket: str
    prefix: str
    level: str  # one of LEVELS
    format: str  # a key of SUFFIXES
    query_timeout: float

    @property
    def base(self) -> str:
        """The prefix's folder: table names are relative to it."""

    def client(self, read_timeout: float) -> Any:
        """The S3 client for calls that may take ``read_timeout`` seconds."""

    def call(self, fn: Callable[[], T], seconds: float, scope: EgressScope, stage: str) -> T:
        """One bounded call under ``scope``; raises ``ConnectorError`` (stage ``stage``) or ``ClientError``."""

    def refused(self, exc: ClientError, stage: str) -> ConnectorError:
        """A refused ListObjectsV2 as the error of ``stage``."""


@dataclass(frozen=True)
class Entry:
    """One table: an object (File level) or a folder prefix (Folder level)."""

    name: str
    key: str
    size: int = 0


class Introspection:
    """List the tables (pages of 1,000), read one bounded sample each (8 at a time), infer with DuckDB;
    everything within query_timeout."""

    def __init__(self, s3: Bucket, scope: EgressScope):
        self.s3, self.scope = s3, scope
        self.deadline = Deadline(s3.query_timeout)
        self.client = s3.client(s3.query_timeout)
        self.suffixes = SUFFIXES[s3.format]
        self.duckdb_error: type[Exception] = Exception  # duckdb.Error once imported

    def call(self, fn: Callable[[], T]) -> T:
        seconds = self.deadline.remaining()
        if seconds <= 0:
            raise self.late()
        return self.s3.call(fn, seconds, self.scope, "introspect")

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
                raise s3.refused(exc, "introspect") from None
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
        return whole_csv_lines(data) if self.s3.format == "csv" else data[: data.rfind(b"\n") + 1]

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


def whole_csv_lines(data: bytes) -> bytes:
    """``data`` up to its last line break outside double quotes (a quoted field may span lines)."""
    last, position = -1, 0
    for index, part in enumerate(data.split(b'"')):
        if index % 2 == 0:  # outside quotes ("" inside a quoted field splits into an empty inside part)
            found = part.rfind(b"\n")
            if found >= 0:
                last = position + found
        position += len(part) + 1
    return data[: last + 1]
