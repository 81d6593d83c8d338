"""Catalogue entries: warehouses, search engines, NoSQL, object storage and SaaS sources."""

from __future__ import annotations

from datasources.catalogue.fields import ENDPOINT, PROTECTION, Check, Condition, Field, SecretField, SourceType
from datasources.catalogue.types_common import (
    _PORT,
    AWS_ACCESS_KEY_ID,
    AWS_SECRET,
    END,
    NAME_MAX,
    PATH_MAX,
    SERVICE_ACCOUNT_JSON,
    SSH_RULES,
    SSH_SECRETS,
    SSH_TUNNEL,
    aws_region,
    ca_certificate,
    flag,
    host,
    name,
    password,
    port,
    s3_bucket,
    url,
)


def endpoint_override(default: str, example: str, *, origin_only: bool = False) -> Field:
    """The vendor's endpoint, replaced (private link, region, proxy): a destination like a host."""
    return url("endpoint_url", "Endpoint URL", origin_only=origin_only,
               help=f"Optional. Default {default}; set it for {example}. Changing it needs the secrets resent.")

#: A Snowflake account identifier (``xy12345.eu-west-1``, ``myorg-myaccount``, optionally followed by
#: ``.snowflakecomputing.com``): dot-separated labels of letters, digits, '_' and '-', the connector's own rule
#: (snowflake.ACCOUNT_RE), so no '/', '@', ':' or space can reach the host name it builds.
SNOWFLAKE_ACCOUNT_PATTERN = rf"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*{END}"
SNOWFLAKE_ACCOUNT_MESSAGE = ("Must be a Snowflake account identifier such as xy12345.eu-west-1 or myorg-myaccount: "
                             "letters, digits, '_' and '-', in labels separated by single dots.")
#: The SQL warehouse path the statement API takes (databricks.WAREHOUSE_PATH): no '..', no other path.
DATABRICKS_HTTP_PATH_PATTERN = rf"^/?sql/1\.0/(?:warehouses|endpoints)/[A-Za-z0-9]{{1,64}}/?{END}"
DATABRICKS_HTTP_PATH_MESSAGE = ("Must be a SQL warehouse's HTTP path, /sql/1.0/warehouses/<id> (clusters are not "
                                "supported by the statement API).")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: A host name (or IPv4 address) with an optional port: no scheme, path, user name or space.
DATABRICKS_HOST_PATTERN = rf"^{_LABEL}(?:\.{_LABEL})*(?::{_PORT})?{END}"
DATABRICKS_HOST_MESSAGE = ("Must be the workspace's host name, e.g. dbc-a1b2c3d4-e5f6.cloud.databricks.com, without "
                           "https:// or a path (a URL goes in endpoint_url).")

SNOWFLAKE_PASSWORD = Condition("auth_method", in_=("password",))
SNOWFLAKE_KEY_PAIR = Condition("auth_method", in_=("key_pair",))

SEARCH_SERVER_TYPES = ("elastic-cloud", "open-cloud", "self-managed")
SEARCH_CLOUD = Condition("server_type", in_=("elastic-cloud", "open-cloud"))
SEARCH_ELASTIC_CLOUD = Condition("server_type", in_=("elastic-cloud",))
SEARCH_SELF_MANAGED = Condition("server_type", in_=("self-managed",))
SEARCH_AUTH_ON = Condition("disable_auth", not_in=(True,))


def _disable_auth_only_self_managed(connection: dict) -> dict[str, list[str]]:
    if connection.get("disable_auth") is True and connection.get("server_type") != "self-managed":
        return {"disable_auth": ["Only valid when server_type is self-managed."]}
    return {}


def _search(key: str, label: str, driver_extra: str) -> SourceType:
    return SourceType(
        key=key, label=label, family="search", connector=key, driver_extra=driver_extra,
        fields=(
            # It picks the endpoint (cloud_id or server_url; the other stays stored): a move like either's.
            Field("server_type", "enum", label="Server type", choices=SEARCH_SERVER_TYPES, required=True,
                  transit=ENDPOINT,
                  help="Which endpoint is used: cloud_id (elastic-cloud, open-cloud) or server_url (self-managed)."),
            Field("cloud_id", "string", label="Cloud ID", required_when=SEARCH_CLOUD, max_length=PATH_MAX,
                  transit=ENDPOINT, checks=(Check("elastic_cloud_id", when=SEARCH_ELASTIC_CLOUD),),
                  help="elastic-cloud: the deployment's Cloud ID; open-cloud: the hosted cluster's host name or "
                       "https:// URL."),
            url("server_url", "Server URL", required_when=SEARCH_SELF_MANAGED,
                help="Base URL of the cluster, e.g. https://search.internal:9200."),
            name("username", "Username", required_when=SEARCH_AUTH_ON),
            flag("disable_auth", "Disable authentication",
                 help="Connect without credentials. Only valid when server_type is self-managed."),
            flag("ignore_certificate", "Ignore certificate verification", secure_when=False),
            flag("ignore_ssl", "Ignore SSL", secure_when=False),
            ca_certificate(),
        ),
        secrets=(password(required_when=SEARCH_AUTH_ON),),
        extra_checks=(_disable_auth_only_self_managed,),
    )


CLOUD_TYPES: tuple[SourceType, ...] = (
    SourceType(
        key="snowflake", label="Snowflake", family="warehouse", connector="snowflake",
        driver_extra="snowflake-connector-python",
        fields=(
            Field("account", "string", label="Account", required=True, max_length=NAME_MAX, transit=ENDPOINT,
                  pattern=SNOWFLAKE_ACCOUNT_PATTERN, pattern_message=SNOWFLAKE_ACCOUNT_MESSAGE,
                  help="Account identifier, e.g. 'xy12345.eu-west-1' or 'myorg-myaccount'."),
            name("username", "Username", required=True),
            name("role", "Role", required=True),
            name("warehouse", "Warehouse", required=True),
            name("database", "Database", required=True),
            name("schema", "Schema", required=True),
            Field("auth_method", "enum", label="Authentication method", choices=("password", "key_pair"),
                  default="password"),
            endpoint_override("https://<account>.snowflakecomputing.com",
                              "a private-link host such as https://xy12345.eu-west-1.privatelink.snowflakecomputing.com",
                              origin_only=True),
        ),
        secrets=(
            password(required_when=SNOWFLAKE_PASSWORD),
            SecretField("private_key", "Private key", kind="pem", required_when=SNOWFLAKE_KEY_PAIR,
                        help="PEM-encoded private key registered for the user (key-pair authentication)."),
            SecretField("private_key_passphrase", "Private key passphrase",
                        help="Only needed when the private key is encrypted."),
        ),
    ),
    SourceType(
        key="bigquery", label="BigQuery", family="warehouse", connector="bigquery",
        driver_extra="google-cloud-bigquery",
        fields=(
            name("project_id", "Project ID", required=True),
            name("location", "Location", default="US", help="Dataset location, e.g. 'US' or 'EU'."),
            name("dataset_id", "Dataset ID", help="Restrict to one dataset (optional)."),
            endpoint_override("https://bigquery.googleapis.com",
                              "a Private Service Connect endpoint such as https://bigquery-p.googleapis.com"),
        ),
        secrets=(SERVICE_ACCOUNT_JSON,),
    ),
    SourceType(
        key="databricks", label="Databricks", family="warehouse", connector="databricks",
        driver_extra="requests",
        fields=(
            Field("host", "string", label="Host", required=True, max_length=NAME_MAX, transit=ENDPOINT,
                  pattern=DATABRICKS_HOST_PATTERN, pattern_message=DATABRICKS_HOST_MESSAGE,
                  help="Workspace hostname, e.g. 'dbc-a1b2c3d4-e5f6.cloud.databricks.com'."),
            Field("http_path", "string", label="HTTP path", required=True, max_length=PATH_MAX,
                  pattern=DATABRICKS_HTTP_PATH_PATTERN, pattern_message=DATABRICKS_HTTP_PATH_MESSAGE,
                  help="HTTP path of the SQL warehouse, e.g. '/sql/1.0/warehouses/abc123'."),
            name("catalog", "Catalog", help="Unity Catalog name (optional)."),
            name("schema", "Schema", required=True),
            endpoint_override("https://<host>", "a private-link or proxy URL of the workspace"),
        ),
        secrets=(SecretField("token", "Access token", kind="token", required=True),),
    ),
    SourceType(
        key="clickhouse", label="ClickHouse", family="warehouse", connector="clickhouse",
        driver_extra="clickhouse-driver",
        fields=(
            host(),
            port(9440, help="Native protocol port (1-65535): 9440 with TLS, 9000 without. A port that is set "
                            "is kept whatever secure says.",
                 defaults_when=((Condition("secure", in_=(False,)), 9000),)),
            name("database", "Database", default="default"),
            name("username", "Username", default="default"),
            flag("secure", "Use TLS", default=True, secure_when=True),
            ca_certificate(),
        ),
        secrets=(password(),),
    ),
    SourceType(
        key="mongodb", label="MongoDB", family="nosql", connector="mongodb", driver_extra="pymongo",
        fields=(
            host(),
            port(27017, only_default_when=Condition("srv", in_=(True,))),
            name("database", "Database", required=True),
            name("username", "Username", help="Leave empty for servers without authentication."),
            name("auth_source", "Authentication database", default="admin"),
            name("replica_set", "Replica set"),
            flag("tls", "Use TLS", secure_when=True),
            Field("srv", "boolean", label="DNS seed list (mongodb+srv)", default=False, transit=ENDPOINT,
                  help="Look the hosts up in the SRV and TXT records of host (MongoDB Atlas); the port is "
                       "then not used. Every host the records name passes the egress policy."),
            ca_certificate(),
        ),
        secrets=(password(),),
    ),
    _search("elasticsearch", "Elasticsearch", "elasticsearch"),
    _search("opensearch", "OpenSearch", "opensearch-py"),
    SourceType(
        key="firebolt", label="Firebolt", family="warehouse", connector="firebolt",
        driver_extra="firebolt-sdk",
        fields=(
            name("client_id", "Client ID", required=True, help="Service account client ID."),
            name("account_name", "Account name", required=True, transit=ENDPOINT),
            name("database", "Database", required=True),
            name("engine_name", "Engine name", required=True),
            name("schema", "Schema"),
            endpoint_override("https://api.app.firebolt.io", "a regional or proxy API endpoint"),
        ),
        secrets=(SecretField("client_secret", "Client secret", required=True),),
    ),
    SourceType(
        key="athena", label="Amazon Athena", family="warehouse", connector="athena", driver_extra="boto3",
        fields=(
            name("database", "Database", required=True),
            # Athena's "data source": a catalog name is 1-127 letters, digits, '_', '@' or '-' (CreateDataCatalog)
            Field("data_catalog", "string", label="Data catalog", default="AwsDataCatalog",
                  max_length=127, pattern=r"^[A-Za-z0-9_@-]{1,127}$",
                  pattern_message="Must be an Athena data catalog name: letters, digits, '_', '@' or '-'.",
                  help="The Athena data source (data catalog) holding the database: AwsDataCatalog (this "
                       "account's Glue Data Catalog, the default) or a Glue catalog registered in Athena, e.g. "
                       "another account's. Lambda and Hive catalogs are refused at stage database."),
            Field("s3_output_location", "string", label="S3 output location", required=True,
                  max_length=PATH_MAX, pattern=r"^s3://",
                  help="Where query results are written, e.g. 's3://my-bucket/athena-results/'."),
            aws_region(),
            name("workgroup", "Workgroup"),
            AWS_ACCESS_KEY_ID,
            endpoint_override("the region's AWS endpoints",
                              "a VPC endpoint or an AWS-compatible service; used for Athena, Glue and STS"),
        ),
        secrets=(AWS_SECRET,),
    ),
    SourceType(
        key="trino", label="Trino", family="warehouse", connector="trino", driver_extra="trino",
        fields=(
            host(),
            port(443),
            name("catalog", "Catalog", required=True),
            name("schema", "Schema", required=True),
            name("username", "Username", required=True),
            Field("http_scheme", "enum", label="HTTP scheme", choices=("http", "https"), default="https",
                  transit=PROTECTION, strength=("http", "https")),
            ca_certificate(),
            SSH_TUNNEL,
        ),
        secrets=(password(), *SSH_SECRETS),
        secret_rules=SSH_RULES,
    ),
    SourceType(
        key="motherduck", label="MotherDuck", family="warehouse", connector="motherduck",
        driver_extra="duckdb",
        fields=(name("database", "Database", required=True),),
        secrets=(SecretField("token", "Service token", kind="token", required=True),),
    ),
)

STORAGE_AND_SAAS_TYPES: tuple[SourceType, ...] = (
    SourceType(
        key="s3", label="Amazon S3", family="file", connector="s3", driver_extra="boto3",
        fields=(
            s3_bucket(),
            Field("path_prefix", "string", label="Path prefix", default="", max_length=PATH_MAX,
                  help="Key prefix inside the bucket (may be empty)."),
            aws_region(pattern=False),
            Field("table_level", "enum", label="Table level", choices=("File", "Folder"), default="File",
                  help="File: each object is a table. Folder: each folder of objects is a table."),
            Field("format", "enum", label="Format", choices=("csv", "parquet", "jsonl"), default="csv",
                  help="How objects are read: CSV (header row), Parquet, or JSON lines (one object per line)."),
            url("endpoint_url", "Endpoint URL", help="S3-compatible endpoint (MinIO, R2...); optional."),
            AWS_ACCESS_KEY_ID,
        ),
        secrets=(AWS_SECRET,),
    ),
    SourceType(
        key="google_sheets", label="Google Sheets", family="saas", connector="google_sheets",
        driver_extra="google-auth",
        fields=(
            name("spreadsheet_id", "Spreadsheet ID", required=True,
                 help="The id in the sheet's URL: docs.google.com/spreadsheets/d/<id>/."),
            name("sheet_name", "Sheet name", help="One worksheet only (optional; default all)."),
            endpoint_override("https://sheets.googleapis.com", "a Private Service Connect or proxy endpoint"),
        ),
        secrets=(SERVICE_ACCOUNT_JSON,),
    ),
    SourceType(
        key="mixpanel", label="Mixpanel", family="saas", connector="mixpanel", driver_extra="requests",
        fields=(
            Field("project_id", "integer", label="Project ID", required=True, min_value=1),
            Field("region", "enum", label="Data residency region", choices=("US", "EU", "IN"), default="US",
                  transit=ENDPOINT),
            name("username", "Service account username", required=True),
            endpoint_override("the region's API host (mixpanel.com, eu.mixpanel.com or in.mixpanel.com)",
                              "a proxy in front of Mixpanel"),
        ),
        secrets=(SecretField("service_account_secret", "Service account secret", required=True),),
    ),
    SourceType(
        key="mcp", label="MCP server", family="saas", connector="mcp", driver_extra="mcp",
        fields=(
            url("server_url", "Server URL", required=True, help="Endpoint of the MCP server."),
            Field("transport", "enum", label="Transport", choices=("http", "sse"), default="http"),
        ),
        secrets=(SecretField("api_key", "API key", kind="token",
                             help="Sent as a bearer token when the server requires one."),),
    ),
)
