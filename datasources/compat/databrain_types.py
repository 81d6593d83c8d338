"""Databrain's type names and per-type credential structures, mapped onto the catalogue.

A structure lists each Databrain field, the core path it maps to (``connection.<field>`` or
``credentials.<secret>``) and whether the seed requires it. Requiring the complete structure is the
seed's request contract; the values themselves are validated by the catalogue and the services.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.compat import STRUCTURE, Codec, Field, SeedInvalidRequest, Table, When, choice
from datasources.compat.common import SSL_FLAG, SSL_FLAG_HELP

#: Databrain ``datasourceType`` -> catalogue type key.
TYPES: dict[str, str] = {
    "postgres": "postgresql", "redshift": "redshift", "cockroachdb": "cockroachdb", "mysql": "mysql",
    "mongodb": "mongodb", "clickhouse": "clickhouse", "singlestore": "singlestore", "bigquery": "bigquery",
    "databricks": "databricks", "elasticsearch": "elasticsearch", "opensearch": "opensearch", "mssql": "mssql",
    "awss3": "s3", "csv": "csv", "firebolt": "firebolt", "athena": "athena", "trino": "trino",
    "snowflake": "snowflake",
}
SNOWFLAKE_SUFFIX = ".snowflakecomputing.com"


def _account(value: Any) -> Any:
    if isinstance(value, str) and value.lower().endswith(SNOWFLAKE_SUFFIX):
        return value[: -len(SNOWFLAKE_SUFFIX)]
    return value


#: the Snowflake account as Databrain's host (``<account>.snowflakecomputing.com``)
ACCOUNT = Codec(_account, lambda account: None if account is None else f"{account}{SNOWFLAKE_SUFFIX}")
F = Field  # short, for the structures below
SSH_ON = When("sshTunnel", ("enable",))
SSH = (
    F("sshTunnel", "connection.ssh_tunnel.enabled", kind="enable|disable",
      via=choice({"enable": True, "disable": False})),
    F("sshHost", "connection.ssh_tunnel.host", SSH_ON),
    F("sshPort", "connection.ssh_tunnel.port", SSH_ON, "integer"),
    F("sshUsername", "connection.ssh_tunnel.username", SSH_ON),
    F("sshPrivateKey", "credentials.ssh_private_key", SSH_ON),
)
SSL = F("enableSsl", "connection.ssl.mode", kind="boolean", via=SSL_FLAG, help=SSL_FLAG_HELP)


def _server(name: str = "host", user: str = "username") -> tuple[F, ...]:
    return (F(name, "connection.host", True), F("port", "connection.port", True, "integer"),
            F(user, "connection.username", True), F("password", "credentials.password", True))


POSTGRES = (*_server(), F("database", "connection.database", True), F("schema", "connection.schema", True),
            SSL, *SSH)
MYSQL = (*_server(), F("database", "connection.database", True))
SEARCH_AUTH = When("disableAuth", (True,), negate=True)
SEARCH_CLOUD = When("server_type", ("elastic-cloud", "open-cloud"))
SEARCH = (
    F("server_type", "connection.server_type", True, "elastic-cloud|open-cloud|self-managed"),
    F("cloudId", "connection.cloud_id", SEARCH_CLOUD),
    F("serverUrl", "connection.server_url", When("server_type", ("self-managed",))),
    F("username", "connection.username", SEARCH_AUTH),
    F("password", "credentials.password", SEARCH_AUTH),
    F("disableAuth", "connection.disable_auth", kind="boolean", help='Only valid when server_type is "self-managed".'),
    F("ignoreCertificate", "connection.ignore_certificate", kind="boolean"),
    F("ignoreSsl", "connection.ignore_ssl", kind="boolean"),
)
SNOWFLAKE_AUTH = {"username/password": "password", "Key-pair authentication": "key_pair"}

#: ``datasourceType`` -> its credential structure (its fields as Databrain names them)
STRUCTURES: dict[str, tuple[Field, ...]] = {
    "postgres": POSTGRES,
    "redshift": POSTGRES,
    "cockroachdb": POSTGRES,
    "mysql": (*MYSQL, SSL, *SSH),
    "singlestore": (*MYSQL, SSL, *SSH),
    "mongodb": MYSQL,
    "clickhouse": MYSQL,
    "mssql": (
        *_server("server", "user"),
        F("database", "connection.database"),
        F("disableDatabaseSelection", "connection.disable_database_selection", kind="boolean"),
        F("readOnlyIntent", "connection.read_only_intent", kind="boolean",
          help="Connect with read-only intent (routes to readable secondaries)."),
    ),
    "snowflake": (
        F("host", "connection.account", True, via=ACCOUNT, help="e.g. your-account.snowflakecomputing.com"),
        F("username", "connection.username", True),
        F("role", "connection.role", True),
        F("warehouse", "connection.warehouse", True),
        F("database", "connection.database", True),
        F("schema", "connection.schema", True),
        F("credentials", "connection.auth_method", True, "username/password|Key-pair authentication",
          choice(SNOWFLAKE_AUTH), help="Authentication method."),
        F("password", "credentials.password", When("credentials", ("username/password",))),
        F("privateKey", "credentials.private_key", When("credentials", ("Key-pair authentication",))),
        F("passphrase", "credentials.private_key_passphrase"),
    ),
    "bigquery": (
        F("credentialsJson", "credentials.service_account_json", True,
          help="JSON string containing the Google Cloud service account credentials."),
        F("projectId", "connection.project_id", True),
        F("location", "connection.location", True, help='e.g. "US", "EU".'),
        F("datasetId", "connection.dataset_id"),
    ),
    "databricks": (
        F("host", "connection.host", True), F("httpPath", "connection.http_path", True),
        F("token", "credentials.token", True), F("catalog", "connection.catalog"),
        F("schema", "connection.schema", True),
    ),
    "elasticsearch": SEARCH,
    "opensearch": SEARCH,
    "firebolt": (
        F("clientId", "connection.client_id", True), F("clientSecret", "credentials.client_secret", True),
        F("accountName", "connection.account_name", True), F("database", "connection.database", True),
        F("engineName", "connection.engine_name", True), F("schema", "connection.schema"),
    ),
    "athena": (
        F("database", "connection.database", True),
        F("s3OutputLocation", "connection.s3_output_location", True, help="e.g. s3://bucket/results/"),
        F("accessKeyId", "connection.access_key_id", True), F("region", "connection.region", True),
        F("secretAccessKey", "credentials.secret_access_key", True),
        # The seed's "Datasource ID (optional)" (a label only; the key is ours, camelCase like the others):
        # Athena's data source, i.e. its data catalog; omitted = AwsDataCatalog
        F("datasourceId", "connection.data_catalog",
          help="The Athena data source (data catalog) holding the database; omitted: AwsDataCatalog."),
    ),
    "trino": (
        F("host", "connection.host", True), F("port", "connection.port", True, "integer"),
        F("catalog", "connection.catalog", True), F("schema", "connection.schema", True),
        F("username", "connection.username", True), F("password", "credentials.password", True), *SSH,
    ),
    "csv": (),
    "awss3": (
        F("bucketName", "connection.bucket", True), F("path", "connection.path_prefix", help="May be empty."),
        F("region", "connection.region", True),
        F("tableLevel", "connection.table_level", kind="File|Folder"),
        F("accessKeyId", "connection.access_key_id", True),
        F("secretAccessKey", "credentials.secret_access_key", True),
    ),
}


#: ``datasourceType`` -> the table of ``credentials``: the complete structure is required and replaces
#: the connection (fields not sent return to their defaults); ``null`` means not given; secrets are kept
SPECS: dict[str, Table] = {
    name: Table(fields, at="credentials", replace=("connection",), null_is_absent=True, write_only=("credentials",))
    for name, fields in STRUCTURES.items()
}


def kind_error(f: Field, value: Any) -> str | None:
    """The message for a value sent (not null) that is not of the field's kind, in the catalogue's words
    (the same message the catalogue would give it once translated), else None."""
    if value is None:
        return None
    if f.kind == "boolean":
        return None if isinstance(value, bool) else "Must be a boolean."
    if f.kind == "integer":
        return None if isinstance(value, int) and not isinstance(value, bool) else "Must be an integer."
    if "|" in f.kind:
        options = f.kind.split("|")
        return None if isinstance(value, str) and value in options else f"Must be one of: {', '.join(options)}."
    return None if isinstance(value, str) else "Must be a string."


def to_native(type_name: str, credentials: Mapping[str, Any]) -> dict[str, Any]:
    """The native body of a ``datasourceType``'s credential structure (``SPECS``), type errors first.

    A value of the wrong kind is named as such, and a "required when" rule that reads it is not
    decided on it: ``"disableAuth": "true"`` (a string) answers that disableAuth must be a boolean,
    not that username and password are required because the string is not ``true``. Every other
    problem of the structure (unknown keys, other missing fields) is named in the same answer."""
    table = SPECS[type_name]
    wrong = {table.seed_name(f.name): [m] for f in table if (m := kind_error(f, credentials.get(f.name)))}
    try:
        native = table.to_native(credentials)
    except SeedInvalidRequest as exc:
        undecided = {table.seed_name(f.name): f"This field is required when {f.required.describe()}."
                     for f in table if isinstance(f.required, When) and table.seed_name(f.required.field) in wrong}
        errors = dict(wrong)
        for path, messages in exc.errors.items():
            kept = [m for m in messages if m != undecided.get(path)]
            if kept and path not in errors:
                errors[path] = kept
        raise SeedInvalidRequest(exc.message, errors=errors) from None
    if wrong:
        raise SeedInvalidRequest(STRUCTURE, errors=wrong)
    return native
