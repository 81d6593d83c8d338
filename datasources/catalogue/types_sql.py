"""Catalogue entries: PostgreSQL family, MySQL family, SQL Server and local file sources."""

from __future__ import annotations

from datasources.catalogue.fields import Field, SourceType
from datasources.catalogue.types_common import (
    SSH_RULES,
    SSH_SECRETS,
    SSH_TUNNEL,
    SSL,
    SSL_SECRETS,
    ca_certificate,
    file_path,
    flag,
    host,
    name,
    password,
    port,
)

FILE_ROOT_HELP = ("Path of the file relative to the server's configured file root (DATASOURCE_FILE_ROOT); "
                  "absolute paths and '..' are refused.")


def _postgres(key: str, label: str, default_port: int, *, password_required: bool,
              auth_note: str = "") -> SourceType:
    return SourceType(
        key=key, label=label, family="postgresql", connector="postgresql", driver_extra="psycopg",
        fields=(
            host(),
            port(default_port),
            name("database", "Database", required=True),
            name("schema", "Schema", default="public", help="Default schema for introspection."),
            name("username", "Username", required=True),
            SSL,
            SSH_TUNNEL,
        ),
        # an empty password only where the server may take none (PostgreSQL with trust): Redshift,
        # CockroachDB and Supabase require a password, which "" would not be
        secrets=(password(required=password_required, help=auth_note, allow_empty=not password_required),
                 *SSL_SECRETS, *SSH_SECRETS),
        secret_rules=SSH_RULES,
    )


def _mysql(key: str, label: str) -> SourceType:
    return SourceType(
        key=key, label=label, family="mysql", connector="mysql", driver_extra="PyMySQL",
        fields=(
            host(),
            port(3306),
            name("database", "Database", help="Default database (optional)."),
            name("username", "Username", required=True),
            SSL,
            SSH_TUNNEL,
        ),
        secrets=(password(help="Optional: a user without password needs none.", allow_empty=True),
                 *SSL_SECRETS, *SSH_SECRETS),
        secret_rules=SSH_RULES,
    )


SQL_TYPES: tuple[SourceType, ...] = (
    _postgres("postgresql", "PostgreSQL", 5432, password_required=False,
              auth_note="Optional: servers using trust, peer or certificate authentication need none."),
    _postgres("redshift", "Amazon Redshift", 5439, password_required=True),
    _postgres("cockroachdb", "CockroachDB", 26257, password_required=True),
    _postgres("supabase", "Supabase", 5432, password_required=True),
    _mysql("mysql", "MySQL"),
    _mysql("mariadb", "MariaDB"),
    _mysql("singlestore", "SingleStore"),
    SourceType(
        key="mssql", label="SQL Server", family="mssql", connector="mssql", driver_extra="python-tds",
        fields=(
            host("Server", help="SQL Server hostname or IP address."),
            port(1433),
            name("database", "Database", help="Database name (optional)."),
            name("username", "Username", required=True),
            flag("disable_database_selection", "Disable database selection",
                 help="Do not issue USE <database> after connecting."),
            flag("read_only_intent", "Read-only intent",
                 help="Connect with ApplicationIntent=ReadOnly (routes to readable secondaries)."),
            flag("encrypt", "Encrypt connection", default=True, secure_when=True),
            ca_certificate(),
        ),
        secrets=(password(required=True),),
    ),
)

FILE_TYPES: tuple[SourceType, ...] = (
    SourceType(
        key="sqlite", label="SQLite", family="sqlite", connector="sqlite", driver_extra="",
        file_based=True,
        fields=(
            file_path(FILE_ROOT_HELP),
            flag("read_only", "Read only", default=True, help="Open the database file read-only."),
        ),
        secrets=(),
    ),
    SourceType(
        key="csv", label="CSV", family="file", connector="file", driver_extra="duckdb", file_based=True,
        fields=(
            file_path(FILE_ROOT_HELP),
            Field("format", "enum", label="Format", choices=("csv",), default="csv"),
            Field("delimiter", "string", label="Delimiter", required=True, default=",", max_length=1,
                  help="Single-character field delimiter."),
            flag("has_header", "Has header row", default=True),
        ),
        secrets=(),
    ),
    SourceType(
        key="file", label="File", family="file", connector="file", driver_extra="duckdb", file_based=True,
        fields=(
            file_path(FILE_ROOT_HELP),
            Field("format", "enum", label="Format", choices=("csv", "parquet"), default="csv",
                  help="csv or parquet; both are read with DuckDB."),
            Field("delimiter", "string", label="Delimiter", required=True, default=",", max_length=1,
                  help="Single-character field delimiter (csv only)."),
            flag("has_header", "Has header row", default=True, help="csv only."),
        ),
        secrets=(),
    ),
)
