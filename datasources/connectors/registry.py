"""Type key -> connector. Types without a usable connector raise ``ConnectorUnavailable``.

Connectors whose driver is an optional package are imported only when asked for, and only when
that package is installed, so a missing driver is a clear "unavailable" rather than an import error.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from .base import Connector, ConnectorUnavailable
from .postgresql import PostgresConnector
from .sqlite import SQLiteConnector

_CONNECTORS: dict[str, Connector] = {
    "postgresql": PostgresConnector("postgresql"),
    "supabase": PostgresConnector("supabase"),
    "cockroachdb": PostgresConnector("cockroachdb", default_port=26257),
    "redshift": PostgresConnector("redshift", default_port=5439, startup_options=False),
    "sqlite": SQLiteConnector(),
}


def _mysql(key: str) -> Connector:
    from .mysql import MySQLConnector

    return MySQLConnector(key)


def _file(key: str) -> Connector:
    from .file_tables import FileConnector

    return FileConnector(key)


# Type key -> (module that must be importable, package to install, factory).
_OPTIONAL: dict[str, tuple[str, str, Callable[[str], Connector]]] = {
    "mysql": ("pymysql", "pymysql", _mysql),
    "mariadb": ("pymysql", "pymysql", _mysql),
    "singlestore": ("pymysql", "pymysql", _mysql),
    "csv": ("duckdb", "duckdb", _file),
    "file": ("duckdb", "duckdb", _file),
}
_LOADED: dict[str, Connector] = {}

# What a type still needs before it can be tested: a driver package name, or a phrase.
REQUIREMENTS: dict[str, str] = {
    "mssql": "pymssql",
    "snowflake": "snowflake-connector-python",
    "bigquery": "google-cloud-bigquery",
    "databricks": "databricks-sql-connector",
    "clickhouse": "clickhouse-connect",
    "mongodb": "pymongo",
    "elasticsearch": "elasticsearch",
    "opensearch": "opensearch-py",
    "firebolt": "firebolt-sdk",
    "athena": "pyathena",
    "trino": "trino",
    "motherduck": "a MotherDuck connector (not yet built)",
    "s3": "boto3",
    "google_sheets": "gspread",
    "mixpanel": "an HTTP connector (not yet built)",
    "mcp": "an HTTP connector (not yet built)",
}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def connector_types() -> list[str]:
    """Type keys that have a real connector usable here (optional drivers installed)."""
    optional = [key for key, (module, _, _) in _OPTIONAL.items() if _installed(module)]
    return sorted([*_CONNECTORS, *optional])


def requirement_for(type_key: str) -> str | None:
    """What ``type_key`` needs to be testable, or ``None`` when it has a usable connector."""
    if type_key in _CONNECTORS:
        return None
    if type_key in _OPTIONAL:
        module, package, _ = _OPTIONAL[type_key]
        return None if _installed(module) else package
    return REQUIREMENTS.get(type_key, "a connector for this source type")


def get_connector(type_key: str) -> Connector:
    """The connector for ``type_key``; raises ``ConnectorUnavailable`` when there is none."""
    connector = _CONNECTORS.get(type_key) or _LOADED.get(type_key)
    if connector is not None:
        return connector
    if type_key in _OPTIONAL and requirement_for(type_key) is None:
        connector = _LOADED[type_key] = _OPTIONAL[type_key][2](type_key)
        return connector
    raise ConnectorUnavailable(type_key, requirement_for(type_key) or "")
