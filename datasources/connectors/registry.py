"""Type key -> connector. Types without a built connector raise ``ConnectorUnavailable``."""

from __future__ import annotations

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

# What a type still needs before it can be tested: a driver package name, or a phrase.
REQUIREMENTS: dict[str, str] = {
    "mysql": "pymysql",
    "mariadb": "pymysql",
    "singlestore": "pymysql",
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
    "motherduck": "duckdb",
    "s3": "boto3",
    "google_sheets": "gspread",
    "csv": "a file connector (not yet built)",
    "file": "a file connector (not yet built)",
    "mixpanel": "an HTTP connector (not yet built)",
    "mcp": "an HTTP connector (not yet built)",
}


def connector_types() -> list[str]:
    """Type keys that have a real connector."""
    return sorted(_CONNECTORS)


def requirement_for(type_key: str) -> str | None:
    """What ``type_key`` needs to be testable, or ``None`` when it has a connector."""
    if type_key in _CONNECTORS:
        return None
    return REQUIREMENTS.get(type_key, "a connector for this source type")


def get_connector(type_key: str) -> Connector:
    """The connector for ``type_key``; raises ``ConnectorUnavailable`` when there is none."""
    connector = _CONNECTORS.get(type_key)
    if connector is None:
        raise ConnectorUnavailable(type_key, requirement_for(type_key) or "")
    return connector
