"""The schema cache's bounds for connectors that read their catalogue as rows (README: "Connections").

PostgreSQL, MySQL and SQLite apply MAX_TABLES and MAX_COLUMNS in their catalogue queries, the rule of
the cloud connectors: the first tables by schema and name, the first columns by position, the rest left
out without an error. ``Catalogue`` groups the rows and keeps the same bounds however the rows come
(a table created between two queries, a server that ignored a bound).
"""

from __future__ import annotations

from collections.abc import Iterable

from .base import ColumnInfo, TableInfo

#: schema, table, kind ("table" | "view"), column (None: a table without columns), type, nullable
Row = tuple[str, str, str, str | None, str, bool]


class Catalogue:
    """Tables in the order first seen, at most ``max_tables``, each with at most ``max_columns`` columns."""

    def __init__(self, max_tables: int, max_columns: int):
        self.max_tables = max_tables
        self.max_columns = max_columns
        self._tables: dict[tuple[str, str], TableInfo] = {}

    def table(self, schema: str, name: str, kind: str) -> TableInfo | None:
        """The table (schema, name), added when new and the bound allows; None past the bound."""
        found = self._tables.get((schema, name))
        if found is None and len(self._tables) < self.max_tables:
            found = self._tables[(schema, name)] = TableInfo(schema=schema, name=name, kind=kind, columns=[])
        return found

    def column(self, schema: str, name: str, column: str, data_type: str, nullable: bool) -> None:
        """Append a column to a table already listed (others are left out), up to the bound."""
        table = self._tables.get((schema, name))
        if table is not None and len(table.columns) < self.max_columns:
            table.columns.append(ColumnInfo(column, data_type, nullable, len(table.columns) + 1))

    @property
    def tables(self) -> list[TableInfo]:
        return list(self._tables.values())


def group_rows(rows: Iterable[Row], max_tables: int, max_columns: int) -> list[TableInfo]:
    """Rows of (schema, table, kind, column, type, nullable), in column order, as bounded tables."""
    catalogue = Catalogue(max_tables, max_columns)
    for schema, name, kind, column, data_type, nullable in rows:
        if catalogue.table(schema, name, kind) is not None and column is not None:
            catalogue.column(schema, name, column, data_type, nullable)
    return catalogue.tables
