"""Type key -> connector, and what each connector needs and was tested against.

One declarative entry per type. Connectors whose driver is an optional package are imported only
when asked for, and only when that package is installed, so a missing driver is a clear
"unavailable" naming what to install rather than an import error.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from typing import Any

from .base import STAGES, Connector, ConnectorUnavailable

#: How a connector's tests reach something that answers like the vendor's service.
REAL, EMULATOR, STAND_IN = "real server", "emulator", "protocol stand-in"
LOCAL_ENGINE = "local engine"  # the vendor's engine run locally; the hosted service is not reached
NETWORK_STAGES = ("resolve", "tcp", "tls", "auth", "database", "introspect")
HTTP_STAGES = NETWORK_STAGES
FILE_STAGES = ("resolve", "database", "introspect")


@dataclass(frozen=True)
class Driver:
    """How one type is tested: the driver module, its package, the connector class, the test peer."""

    connector: str  # "module:Class" under datasources.connectors; the class takes the type key
    module: str  # importable module of the driver ("" when the standard library suffices)
    package: str  # what to pip-install for it
    tested_against: str  # what the tests run
    verified_with: str  # REAL, EMULATOR or STAND_IN
    stages: tuple[str, ...] = NETWORK_STAGES
    options: tuple[tuple[str, Any], ...] = ()  # keyword arguments of the connector class

    @property
    def built(self) -> bool:
        module = self.connector.split(":", 1)[0]
        return importlib.util.find_spec(f"{__package__}.{module}") is not None

    def version(self) -> str | None:
        if not self.package:
            return None
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return None


PG = ("pgcluster: PostgreSQL 15 clusters started by the tests (initdb), scram and password auth, TLS, SSH tunnel")
MY = "MariaDB 10.11 on 127.0.0.1:3306 (the machine's server), TLS, SSH tunnel"
WITH_SSH = ("resolve", "tcp", "ssh", "tls", "auth", "database", "introspect")


def _pg(**options: Any) -> Driver:
    return Driver("postgresql:PostgresConnector", "psycopg", "psycopg", PG, REAL, WITH_SSH, tuple(options.items()))


def _my() -> Driver:
    return Driver("mysql:MySQLConnector", "pymysql", "PyMySQL", MY, REAL, WITH_SSH)


def _file() -> Driver:
    return Driver("file_tables:FileConnector", "duckdb", "duckdb", "files under DATASOURCE_FILE_ROOT", REAL,
                  FILE_STAGES)


DRIVERS: dict[str, Driver] = {
    "postgresql": _pg(),
    "supabase": _pg(),
    "cockroachdb": _pg(default_port=26257),
    "redshift": _pg(default_port=5439, startup_options=False),
    "mysql": _my(),
    "mariadb": _my(),
    "singlestore": _my(),
    "sqlite": Driver("sqlite:SQLiteConnector", "", "", "SQLite files under DATASOURCE_FILE_ROOT", REAL, FILE_STAGES),
    "csv": _file(),
    "file": _file(),
    "mssql": Driver("mssql:MSSQLConnector", "pytds", "python-tds",
                    "tests/support/tds_server.py: TDS 7.4 pre-login, TLS inside pre-login, login7, errors 18456/4060, "
                    "read-only routing, result sets", STAND_IN),
    "clickhouse": Driver("clickhouse:ClickHouseConnector", "clickhouse_driver", "clickhouse-driver",
                         "Debian's clickhouse-server 18.16 started by the tests on loopback (native protocol, "
                         "plain and TLS)", REAL),
    "snowflake": Driver("snowflake:SnowflakeConnector", "snowflake.connector", "snowflake-connector-python",
                        "fakesnow 0.12.1's server (its routes under uvicorn), login route wrapped with password and "
                        "key-pair (JWT) checks", EMULATOR),
    "bigquery": Driver("bigquery:BigQueryConnector", "google.cloud.bigquery", "google-cloud-bigquery",
                       "tests/support/bigquery_server.py: OAuth token endpoint and BigQuery REST v2", STAND_IN),
    "databricks": Driver("databricks:DatabricksConnector", "requests", "requests",
                         "tests/support/databricks_server.py: SQL Statement Execution REST API 2.0", STAND_IN),
    "firebolt": Driver("firebolt:FireboltConnector", "firebolt", "firebolt-sdk",
                       "tests/support/firebolt_server.py: OAuth token, engine URL and query endpoints", STAND_IN),
    "athena": Driver("athena:AthenaConnector", "boto3", "boto3",
                     "moto's server (STS, Glue, Athena, S3) with signature checks, via endpoint_url", EMULATOR),
    "trino": Driver("trino:TrinoConnector", "trino", "trino",
                    "tests/support/trino_server.py: /v1/statement with nextUri paging, basic auth", STAND_IN,
                    WITH_SSH),
    "motherduck": Driver("motherduck:MotherDuckConnector", "duckdb", "duckdb",
                         "local DuckDB files for the SQL and introspection; the md: connection by unit tests "
                         "(MotherDuck itself not reached)", LOCAL_ENGINE,
                         ("resolve", "tcp", "auth", "database", "introspect")),
    "s3": Driver("s3:S3Connector", "boto3", "boto3",
                 "moto's server (S3 with signature checks; tests/support/moto_server.py) via endpoint_url", EMULATOR),
    "mongodb": Driver("mongodb:MongoDBConnector", "pymongo", "pymongo",
                      "tests/support/mongo_server.py: OP_MSG hello, SCRAM, listDatabases, listCollections, find; "
                      "TLS", STAND_IN),
    "elasticsearch": Driver("search:SearchConnector", "elasticsearch", "elasticsearch",
                            "tests/support/search_server.py: /, _cat/indices, _mapping, _alias, _data_stream, "
                            "auth errors (401/403); Elasticsearch 8/9 and OpenSearch 2; TLS", STAND_IN),
    "opensearch": Driver("search:SearchConnector", "opensearchpy", "opensearch-py",
                         "tests/support/search_server.py: /, _cat/indices, _mapping, _alias, _data_stream, "
                         "auth errors (401/403); Elasticsearch 8/9 and OpenSearch 2; TLS", STAND_IN),
    "google_sheets": Driver("google_sheets:GoogleSheetsConnector", "google.auth", "google-auth",
                            "tests/support/sheets_server.py: OAuth token endpoint and Sheets API v4", STAND_IN),
    "mixpanel": Driver("mixpanel:MixpanelConnector", "requests", "requests",
                       "tests/support/mixpanel_server.py: the Mixpanel API endpoints used, per region", STAND_IN),
    "mcp": Driver("mcp:MCPConnector", "mcp", "mcp",
                  "an MCP server built with the official Python SDK, started by the tests (streamable HTTP)", REAL),
}
assert all(set(d.stages) <= set(STAGES) for d in DRIVERS.values())

#: Types without a connector yet, and what they still need.
NOT_BUILT: dict[str, str] = {}
_LOADED: dict[str, Connector] = {}


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (a dotted name whose parent package is absent is not)."""
    try:
        return not module or importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def requirement_for(type_key: str) -> str | None:
    """What ``type_key`` needs to be testable, or ``None`` when it has a usable connector."""
    driver = DRIVERS.get(type_key)
    if driver is None:
        return NOT_BUILT.get(type_key, "a connector for this source type")
    if not driver.built:
        return "a connector (not yet built)"
    return None if _installed(driver.module) else driver.package


def connector_types() -> list[str]:
    """Type keys that have a real connector usable here (optional drivers installed)."""
    return sorted(key for key in DRIVERS if requirement_for(key) is None)


def connector_info(type_key: str) -> dict[str, Any]:
    """For the catalogue: whether this install can test the type, with which driver, tested how."""
    driver = DRIVERS.get(type_key)
    requirement = requirement_for(type_key)
    if driver is None:
        return {"available": False, "driver": None, "driver_version": None, "install": requirement,
                "tested_against": None, "verified_with": None, "stages": []}
    return {
        "available": requirement is None,
        "driver": driver.package or "python (standard library)",
        "driver_version": driver.version() if requirement is None else None,
        "install": None if requirement is None else (
            f"pip install {driver.package}" if requirement == driver.package else requirement),
        "tested_against": driver.tested_against,
        "verified_with": driver.verified_with,
        "stages": list(driver.stages),
    }


def get_connector(type_key: str) -> Connector:
    """The connector for ``type_key``; raises ``ConnectorUnavailable`` when there is none."""
    connector = _LOADED.get(type_key)
    if connector is not None:
        return connector
    requirement = requirement_for(type_key)
    if requirement is not None:
        raise ConnectorUnavailable(type_key, requirement)
    driver = DRIVERS[type_key]
    module_name, class_name = driver.connector.split(":", 1)
    cls = getattr(importlib.import_module(f"{__package__}.{module_name}"), class_name)
    connector = _LOADED[type_key] = cls(type_key, **dict(driver.options))
    return connector
