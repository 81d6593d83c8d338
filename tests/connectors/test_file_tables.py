"""File sources (csv, file) typed by DuckDB under a temp file root; the registry's file and MySQL entries."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import pytest

from datasources.connectors import (
    ConnectionConfig,
    ConnectorError,
    ConnectorUnavailable,
    connector_types,
    get_connector,
    registry,
    requirement_for,
)
from datasources.connectors.file_tables import FileConnector, locate, sandbox
from datasources.connectors.mysql import MySQLConnector

PEOPLE = "id,name,score,born\n1,Ann,2.5,2001-02-03\n2,,3.0,\n3,Bob,,1999-12-31\n"
NOT_FOUND = "File not found under the file root."


@pytest.fixture
def root(_file_root):
    path = Path(_file_root)
    (path / "data").mkdir()
    (path / "data" / "people.csv").write_text(PEOPLE)
    return path


def _parquet(path: Path) -> None:
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT 1::INTEGER AS id, 'x' AS label, 1.5::DOUBLE AS amount, DATE '2024-01-02' AS day) "
            f"TO '{path}' (FORMAT parquet)"
        )


def _cfg(path, type_key="csv", **connection):
    return ConnectionConfig(type_key, {"path": path, **connection}, {}, connect_timeout=5, query_timeout=10)


def _columns(table):
    return [(c.name, c.data_type, c.nullable, c.ordinal) for c in table.columns]


def test_csv_test_ok(root):
    result = get_connector("csv").test(_cfg("data/people.csv"))
    assert result.ok, result.message
    assert [(s.name, s.ok) for s in result.stages] == [("resolve", True), ("database", True)]
    assert result.server_version == f"DuckDB {duckdb.__version__}"
    json.dumps(result.as_dict())


def test_csv_introspect_types(root):
    [table] = get_connector("csv").introspect(_cfg("data/people.csv"))
    assert (table.schema, table.name, table.kind) == ("main", "people", "table")
    assert _columns(table) == [
        ("id", "BIGINT", True, 1),
        ("name", "VARCHAR", True, 2),
        ("score", "DOUBLE", True, 3),
        ("born", "DATE", True, 4),
    ]


def test_csv_delimiter_and_no_header(root):
    (root / "data" / "raw.tsv").write_text("1;a\n2;b\n")
    [table] = get_connector("file").introspect(_cfg("data/raw.tsv", "file", delimiter=";", has_header=False))
    assert table.name == "raw"
    assert [(c.name, c.data_type) for c in table.columns] == [("column0", "BIGINT"), ("column1", "VARCHAR")]


def test_parquet_file(root):
    _parquet(root / "data" / "sales.parquet")
    config = _cfg("data/sales.parquet", "file", format="parquet")
    assert get_connector("file").test(config).ok
    [table] = get_connector("file").introspect(config)
    assert table.name == "sales"
    assert _columns(table) == [
        ("id", "INTEGER", True, 1),
        ("label", "VARCHAR", True, 2),
        ("amount", "DOUBLE", True, 3),
        ("day", "DATE", True, 4),
    ]


def test_folder_one_table_per_matching_file(root, tmp_path):
    folder = root / "data" / "many"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.csv").write_text("x\n1\n")
    (folder / "a.csv").write_text("y,z\nq,2\n")
    (folder / "c.CSV.gz").write_bytes(b"")  # matched by suffix, name without it
    (folder / "readme.md").write_text("not data")
    (folder / ".hidden.csv").write_text("h\n1\n")
    (folder / "sub" / "deep.csv").write_text("d\n1\n")  # not recursive
    (tmp_path / "outside.csv").write_text("secret\n1\n")
    (folder / "escape.csv").symlink_to(tmp_path / "outside.csv")  # skipped: leads out of the root
    names = [t.name for t in locate(_cfg("data/many", "file", format="csv"))]
    assert names == ["a", "b", "c"]
    (folder / "c.CSV.gz").unlink()
    tables = get_connector("file").introspect(_cfg("data/many/", "file"))
    assert [(t.name, [c.name for c in t.columns]) for t in tables] == [("a", ["y", "z"]), ("b", ["x"])]
    result = get_connector("file").test(_cfg("data/many", "file"))
    assert result.ok and result.stages[-1].message == "2 file(s) found."


def test_parquet_folder_and_empty_folder(root):
    folder = root / "data" / "pq"
    folder.mkdir()
    result = get_connector("file").test(_cfg("data/pq", "file", format="parquet"))
    assert (result.ok, result.stage) == (False, "database")
    assert result.message == "No .parquet / .pq files found in the folder."
    _parquet(folder / "one.parquet")
    (folder / "two.csv").write_text("a\n1\n")
    tables = get_connector("file").introspect(_cfg("data/pq", "file", format="parquet"))
    assert [t.name for t in tables] == ["one"]


@pytest.mark.parametrize("path", ["../outside.csv", "data/../../outside.csv", "/etc/passwd", "", "a\x00b"])
def test_paths_leaving_the_root_fail_at_resolve(root, path):
    result = get_connector("csv").test(_cfg(path))
    assert (result.ok, result.stage) == (False, "resolve")
    with pytest.raises(ConnectorError):
        get_connector("csv").introspect(_cfg(path))


def test_symlink_out_of_root_looks_missing(root, tmp_path):
    (tmp_path / "outside.csv").write_text("secret\n1\n")
    (root / "data" / "link.csv").symlink_to(tmp_path / "outside.csv")
    for path in ("data/link.csv", "data/missing.csv"):
        result = get_connector("csv").test(_cfg(path))
        assert (result.ok, result.stage, result.message) == (False, "database", NOT_FOUND)


def test_unreadable_file_message_hides_server_paths(root):
    (root / "data" / "bad.parquet").write_text("this is not parquet")
    result = get_connector("file").test(_cfg("data/bad.parquet", "file", format="parquet"))
    assert (result.ok, result.stage) == (False, "database")
    assert result.message.startswith("Could not read 'data/bad.parquet' as PARQUET.")
    assert str(root) not in result.message
    with pytest.raises(ConnectorError) as caught:
        get_connector("file").introspect(_cfg("data/bad.parquet", "file", format="parquet"))
    assert caught.value.stage == "introspect"


def test_csv_type_always_reads_csv(root):
    [table] = get_connector("csv").introspect(_cfg("data/people.csv", format="parquet"))
    assert table.name == "people"


def test_duckdb_sandbox_reads_only_the_confined_files(root, tmp_path):
    (tmp_path / "outside.csv").write_text("secret\n1\n")
    allowed = (root / "data" / "people.csv").resolve()
    with sandbox([allowed], 5) as con:
        assert con.read_csv(str(allowed)).columns == ["id", "name", "score", "born"]
        for statement in (
            f"SELECT * FROM read_csv('{tmp_path / 'outside.csv'}')",
            "SELECT * FROM read_text('/etc/passwd')",
            f"SELECT * FROM read_csv('{allowed.parent}/../../outside.csv')",
            "SELECT * FROM glob('/etc/*')",
            f"COPY (SELECT 1) TO '{root / 'written.csv'}'",
            "SELECT * FROM read_csv('https://example.com/x.csv')",
            "INSTALL httpfs",
            "LOAD httpfs",
            "SET enable_external_access = true",
            "SET allowed_paths = ['/etc/passwd']",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(statement).fetchall()
    assert not (root / "written.csv").exists()


def test_duckdb_absent_means_unavailable(root, monkeypatch):
    monkeypatch.setitem(sys.modules, "duckdb", None)  # import duckdb now raises ImportError
    with pytest.raises(ConnectorUnavailable, match="install the optional driver 'duckdb'"):
        FileConnector("csv").test(_cfg("data/people.csv"))
    monkeypatch.setattr(registry, "_LOADED", {})
    monkeypatch.setattr(registry, "_installed", lambda module: module != "duckdb")
    for type_key in ("csv", "file"):
        assert requirement_for(type_key) == "duckdb"
        with pytest.raises(ConnectorUnavailable) as caught:
            get_connector(type_key)
        assert str(caught.value) == (
            f"No connection test is available for type '{type_key}' yet: install the optional driver 'duckdb' "
            "(pip install duckdb; every driver: pip install -r requirements-connectors.txt)."
        )
    assert "csv" not in connector_types()


def test_registry_entries():
    for type_key in ("mysql", "mariadb", "singlestore"):
        assert isinstance(get_connector(type_key), MySQLConnector) and get_connector(type_key).key == type_key
    for type_key in ("csv", "file"):
        assert isinstance(get_connector(type_key), FileConnector) and get_connector(type_key).key == type_key
    assert {"mysql", "mariadb", "singlestore", "csv", "file", "sqlite", "postgresql"} <= set(connector_types())
    assert requirement_for("mysql") is None and requirement_for("csv") is None
