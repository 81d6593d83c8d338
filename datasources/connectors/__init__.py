"""Connectors: staged connection tests and schema introspection per source type."""

from .base import (
    MAX_COLUMNS,
    MAX_TABLES,
    STAGES,
    ColumnInfo,
    ConnectionConfig,
    Connector,
    ConnectorError,
    ConnectorUnavailable,
    StageResult,
    TableInfo,
    TestResult,
)
from .egress import EgressBlocked, resolve_checked
from .registry import connector_types, get_connector, requirement_for

__all__ = [
    "MAX_COLUMNS",
    "MAX_TABLES",
    "STAGES",
    "ColumnInfo",
    "ConnectionConfig",
    "Connector",
    "ConnectorError",
    "ConnectorUnavailable",
    "EgressBlocked",
    "StageResult",
    "TableInfo",
    "TestResult",
    "connector_types",
    "get_connector",
    "requirement_for",
    "resolve_checked",
]
