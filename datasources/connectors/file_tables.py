"""File sources (csv, file): CSV and Parquet files under the file root, typed by DuckDB.

Paths are confined first (``files.resolve_under_root``; a folder lists its matching files, one
table each, non-recursive). DuckDB then runs in a fresh in-memory database that can read exactly
those resolved files and nothing else: external access is off apart from them, extensions never
install or load, and the configuration is locked before any file is opened.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import (
    MAX_COLUMNS,
    ColumnInfo,
    ConnectionConfig,
    Connector,
    ConnectorError,
    ConnectorUnavailable,
    StageRunner,
    TableInfo,
    TestResult,
    sanitize,
)
from .file_root import confined, file_root, resolve_under_root

SUFFIXES = {
    "csv": (".csv.gz", ".tsv.gz", ".csv", ".tsv"),
    "parquet": (".parquet", ".pq"),
}
#: A folder gives at most this many tables, the first matching files by name (the rest are left out, as
#: every connector leaves out tables past MAX_TABLES): each is opened and sniffed (some 15 ms a small
#: CSV), all within ``query_timeout``.
MAX_FILES = 1000
MEMORY_LIMIT = "256MB"


@dataclass
class FileTable:
    name: str
    relative: str  # as the user knows it, for messages
    path: Path  # resolved, confined


class Located(list[FileTable]):
    """The files of a source; ``more`` when the folder holds matching files past MAX_FILES, left out."""

    more = False


def _duckdb(type_key: str = "file") -> Any:
    """The duckdb module, imported lazily; ``ConnectorUnavailable`` naming it when absent."""
    try:
        import duckdb
    except ImportError:
        raise ConnectorUnavailable(type_key, "duckdb") from None
    return duckdb


def _format(config: ConnectionConfig) -> str:
    fmt = "csv" if config.type_key == "csv" else (config.connection.get("format") or "csv")
    if fmt not in SUFFIXES:
        raise ConnectorError("resolve", "Unsupported file format: use csv or parquet.")
    return fmt


def _table_name(filename: str, suffixes: tuple[str, ...]) -> str:
    lower = filename.lower()
    for suffix in suffixes:
        if lower.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return Path(filename).stem or filename


def _folder(relative: str, confine_to: str) -> Path | None:
    """The confined folder ``relative`` names, or None when it is not a folder under the root (under
    the organization's folder ``confine_to`` of it, when given)."""
    found = confined(relative, confine_to)
    if found is None:
        return None
    resolved, allowed = found
    return resolved if resolved.is_dir() and resolved.is_relative_to(allowed) else None


def locate(config: ConnectionConfig) -> Located:
    """The confined files of a source: the one file, or the first MAX_FILES matching files of a folder."""
    relative = config.connection.get("path") or ""
    suffixes = SUFFIXES[_format(config)]
    folder = _folder(relative, config.file_folder)
    if folder is None:
        path = resolve_under_root(relative, config.file_folder)  # missing or escaping: "File not found ..."
        return Located([FileTable(_table_name(path.name, suffixes), relative, path)])
    found = Located()
    names: set[str] = set()
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.name.lower().endswith(suffixes):
            continue
        child = f"{relative.rstrip('/')}/{entry.name}"
        try:
            path = resolve_under_root(child, config.file_folder)  # each confined again: symlinks out skipped
        except ConnectorError:
            continue
        if len(found) == MAX_FILES:
            found.more = True
            break
        name = _table_name(entry.name, suffixes)
        name = entry.name if name in names else name
        names.add(name)
        found.append(FileTable(name, child, path))
    if not found:
        raise ConnectorError("database", f"No {' / '.join(suffixes)} files found in the folder.")
    return found


@contextmanager
def sandbox(paths: list[Path], timeout: float) -> Iterator[Any]:
    """A fresh in-memory DuckDB that may read only ``paths``; interrupted after ``timeout`` seconds."""
    duckdb = _duckdb()
    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "threads": 1,
            "memory_limit": MEMORY_LIMIT,
        },
    )
    timer = threading.Timer(timeout, con.interrupt)
    timer.daemon = True
    try:
        con.execute("SET allowed_paths = $paths", {"paths": [str(p) for p in paths]})
        con.execute("SET temp_directory = ''")  # never spill to disk
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        timer.start()
        yield con
    finally:
        timer.cancel()
        con.close()


def _read_error(exc: Exception, table: FileTable, fmt: str, stage: str, timeout: float) -> ConnectorError:
    if type(exc).__name__ == "InterruptException":
        return ConnectorError(stage, f"Reading '{table.relative}' did not finish within {timeout:g} seconds.")
    text = str(exc).replace(str(table.path), table.relative).replace(str(file_root()), "")
    detail = sanitize(text, {})
    message = f"Could not read '{table.relative}' as {fmt.upper()}."
    return ConnectorError(stage, message + (f" {detail}" if detail else ""))


def describe(con: Any, table: FileTable, config: ConnectionConfig, stage: str, timeout: float) -> list[ColumnInfo]:
    """Columns and DuckDB-inferred types of one file (every column nullable), the first MAX_COLUMNS."""
    duckdb = _duckdb()
    fmt = _format(config)
    c = config.connection
    try:
        if fmt == "parquet":
            relation = con.read_parquet(str(table.path))
        else:
            delimiter = c.get("delimiter") or ","
            relation = con.read_csv(str(table.path), delimiter=delimiter, header=bool(c.get("has_header", True)))
        pairs = list(zip(relation.columns, relation.types, strict=True))
    except duckdb.Error as exc:
        raise _read_error(exc, table, fmt, stage, timeout) from None
    return [ColumnInfo(str(name), str(kind), True, i) for i, (name, kind) in enumerate(pairs[:MAX_COLUMNS], start=1)]


class FileConnector(Connector):
    """Stages: ``resolve`` (path confinement), ``database`` (open the file and read its header)."""

    def __init__(self, key: str):
        self.key = key

    def test(self, config: ConnectionConfig) -> TestResult:
        """Check the path(s) and that the first file reads as the configured format."""
        duckdb = _duckdb(self.key)
        timeout = float(config.connect_timeout)
        with StageRunner(config.secrets) as runner:
            tables = runner.run("resolve", lambda: locate(config))

            def database() -> None:
                with sandbox([tables[0].path], timeout) as con:
                    describe(con, tables[0], config, "database", timeout)

            found = f"{len(tables)} file(s) found."
            if tables.more:
                found = f"More than {MAX_FILES} files found: the first {MAX_FILES} by name are read."
            runner.run("database", database, found)
            runner.server_version = f"DuckDB {duckdb.__version__}"
        return runner.result()

    def test_and_introspect(self, config: ConnectionConfig) -> TestResult:
        return self.test_then_read_local(config)

    def introspect(self, config: ConnectionConfig) -> list[TableInfo]:
        """One table per file (schema ``main``, name = file name without its suffix)."""
        _duckdb(self.key)
        tables = locate(config)
        timeout = float(config.query_timeout)
        with sandbox([t.path for t in tables], timeout) as con:
            return [TableInfo("main", t.name, "table", describe(con, t, config, "introspect", timeout)) for t in tables]
