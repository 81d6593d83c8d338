"""The fuzzer's world: planted secrets (canaries) and the real objects the operations act on.

See tests/core/test_fuzz_schemathesis.py: PostgreSQL sources point at the scram password cluster through a
role whose password is a canary, so connection tests and schema refreshes are real ones.
"""

from __future__ import annotations

import json
import os

CANARY_PG_PASSWORD = "Canary-PG-9d1f0c7e-never-in-a-response"
CANARY_MYSQL = "Canary-MySQL-4a7b2e91-never-in-a-response"
CANARY_SSH = "Canary-SSH-Pass-8e4d2b57-never-in-a-response"
CANARY_KEY = "Canary-Snowflake-Key-6c2d8f13-never-in-a-response"
CANARY_SA = "Canary-BigQuery-SA-0b5e7a24-never-in-a-response"
CANARY_TOKEN = "Canary-Token-3f9a1c66-never-in-a-response"
PEM_KEY = f"-----BEGIN PRIVATE KEY-----\n{CANARY_KEY}\n-----END PRIVATE KEY-----\n"
SERVICE_ACCOUNT = json.dumps({"type": "service_account", "client_email": "fuzz@proj-1.iam", "private_key": CANARY_SA})
CANARIES = (CANARY_PG_PASSWORD, CANARY_MYSQL, CANARY_SSH, CANARY_KEY, CANARY_SA, CANARY_TOKEN)
CANARY_ROLE, CANARY_DB = "fuzz_canary", "fuzz_canary_db"
REAL_TENANCY = {"level": "TABLE", "client_column_type": "NUMBER", "schema": "public", "table": "customers",
                "client_column": "tenant_id", "primary_key_column": "id"}
PG_TYPES = {"postgresql", "redshift", "cockroachdb", "supabase"}

# --- real data ------------------------------------------------------------------------------------


def _canary_role(cluster) -> None:
    """A role with the canary password and a database of its own, in the password cluster."""
    import psycopg

    dsn = dict(host=cluster.host, port=cluster.port, user=cluster.user, password=cluster.password,
               dbname=cluster.database, autocommit=True)
    with psycopg.connect(**dsn) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [CANARY_ROLE]).fetchone()
        if not exists:
            conn.execute(f"CREATE ROLE {CANARY_ROLE} LOGIN PASSWORD '{CANARY_PG_PASSWORD}'")
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [CANARY_DB]).fetchone():
            conn.execute(f"CREATE DATABASE {CANARY_DB} OWNER {CANARY_ROLE}")
    with psycopg.connect(**{**dsn, "dbname": CANARY_DB, "user": CANARY_ROLE, "password": CANARY_PG_PASSWORD}) as c:
        c.execute("CREATE TABLE IF NOT EXISTS customers (id integer PRIMARY KEY, tenant_id integer NOT NULL, "
                  "name text)")
        c.execute("CREATE TABLE IF NOT EXISTS orders (id integer PRIMARY KEY, customer_id integer, total numeric)")
        c.execute("CREATE OR REPLACE VIEW big_orders AS SELECT * FROM orders WHERE total > 100")


def _toggle_table(cluster) -> None:
    import psycopg

    with psycopg.connect(host=cluster.host, port=cluster.port, user=CANARY_ROLE, password=CANARY_PG_PASSWORD,
                         dbname=CANARY_DB, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('public.refunds')").fetchone()[0]:
            conn.execute("DROP TABLE refunds")
        else:
            conn.execute("CREATE TABLE refunds (id integer PRIMARY KEY, order_id integer)")


def _pg_body(cluster, name: str) -> dict:
    return {
        "name": name, "type": "postgresql", "description": "Fuzz target", "tags": ["fuzz", "pg"],
        "connection": {"host": cluster.host, "port": cluster.port, "database": CANARY_DB, "username": CANARY_ROLE,
                       "ssl": {"mode": "disable"}},
        "credentials": {"password": CANARY_PG_PASSWORD},
    }


class World:
    """What the fuzzer works on: ids of real objects, by role."""

    def __init__(self, api, cluster, file_root: str) -> None:
        import sqlite3

        def post(url: str, body: dict, expect: int = 201, **query: str) -> dict:
            qs = ("?" + "&".join(f"{k}={v}" for k, v in query.items())) if query else ""
            response = api.post(url + qs, body, format="json")
            assert response.status_code == expect, (url, response.status_code, response.content[:1000])
            return response.json()

        ds = "/api/v1/data-sources/"
        from organizations.models import Organization, Workspace

        self.workspace_id = Workspace.objects.create(organization=Organization.objects.get(slug="acme"),
                                                     name="Analytics").pk
        self.warehouse = post(ds, _pg_body(cluster, "Warehouse"))
        assert self.warehouse["schema"]["status"] == "ready", self.warehouse["schema"]
        _toggle_table(cluster)  # a second schema version, for the diff endpoint
        synced = api.post(f"{ds}{self.warehouse['id']}/sync/")
        assert synced.status_code == 200 and synced.json()["schema"]["version"] == 2, synced.content
        self.victim = post(ds, _pg_body(cluster, "Victim"))
        self.scratch = post(ds, _pg_body(cluster, "Scratch"))
        # What the seed adapters write to: they test every change against the database, so positive
        # cases keep it working (the core API's scratch may be left pointing anywhere, untested).
        self.compat = post(ds, _pg_body(cluster, "Compat"))
        with sqlite3.connect(os.path.join(file_root, "shop.db")) as db:
            db.executescript("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT);"
                             "CREATE TABLE IF NOT EXISTS buyers (id INTEGER PRIMARY KEY, email TEXT);")
        self.shop = post(ds, {"name": "Shop", "type": "sqlite", "connection": {"path": "shop.db"}})
        self.others = [
            post(ds, {"name": "Orders MySQL", "type": "mysql",
                      "connection": {"host": "127.0.0.1", "port": 1, "username": "app",
                                     "ssh_tunnel": {"enabled": True, "host": "127.0.0.1", "username": "tunnel"}},
                      "credentials": {"password": CANARY_MYSQL, "ssh_password": CANARY_SSH}},
                 test_connection="false"),
            post(ds, {"name": "Snow", "type": "snowflake",
                      "connection": {"account": "acme-x1", "username": "u", "role": "r", "warehouse": "w",
                                     "database": "d", "schema": "s", "auth_method": "key_pair"},
                      "credentials": {"private_key": PEM_KEY}}, test_connection="false"),
            post(ds, {"name": "BQ", "type": "bigquery", "connection": {"project_id": "proj-1"},
                      "credentials": {"service_account_json": SERVICE_ACCOUNT}}, test_connection="false"),
            post(ds, {"name": "Duck", "type": "motherduck", "connection": {"database": "md"},
                      "credentials": {"token": CANARY_TOKEN}}, test_connection="false"),
        ]
        wh = self.warehouse["id"]
        tenancy = api.put(f"{ds}{wh}/tenancy/", {"level": "TABLE", "client_column_type": "NUMBER",
                                                  "schema": "public", "table": "customers",
                                                  "client_column": "tenant_id", "primary_key_column": "id"},
                          format="json")
        assert tenancy.status_code == 200, tenancy.content
        wf = "/api/v1/workflows/"
        self.workflow = post(wf, {"name": "Flow", "description": "fuzzed"})
        self.victim_workflow = post(wf, {"name": "Doomed"})
        self.wds = post(f"{wf}{self.workflow['id']}/data-sources/", {"source_data_source": "acme.warehouse"})
        self.wds_shop = post(f"{wf}{self.workflow['id']}/data-sources/", {"source_data_source": "acme.shop"})
        self.node = post(f"{wf}{self.workflow['id']}/nodes/", {
            "name": "Clean", "kind": "transform",
            "inputs": [{"data_source": self.wds["id"], "table": "customers"}],
            "output_table": {"name": "clean_customers", "columns": [{"name": "id", "type": "integer"}]}})
        self.wds_spare = post(f"{wf}{self.workflow['id']}/data-sources/", {"source_data_source": "acme.shop:v1"})
        self.node2 = post(f"{wf}{self.workflow['id']}/nodes/", {
            "name": "Scratch", "inputs": [{"data_source": self.wds_shop["id"], "table": "items"}]})
