"""Connection-test time per connector type, against the local server, emulator or stand-in its tests use.

    .venv/bin/python -m bench.connectors [--runs 20] [--types postgresql,mssql,...]

Each type's peer starts as in tests/connectors/test_<type>.py (their helpers and tests/support/'s), with the
tests' passing ConnectionConfig; one ``get_connector(type).test(config)`` warms up, N more are timed (wall
clock) and must all be ok. Per type: verified_with (registry), median and p90 ms, the slowest stage by median.
Loopback only (DATASOURCE_ALLOWED_NETWORKS as the tests' allow_loopback); files under a temporary
DATASOURCE_FILE_ROOT. Skipped ("skipped: <why>") only for what this machine lacks: a binary or extension
(clickhouse-server, the motherduck extension), a server the tests also need running (MariaDB; PostgreSQL when
initdb is missing), an optional driver (ConnectorUnavailable). Anything else is "FAILED" (exit status 1), an
ImportError of a test helper included: a renamed helper must show, not read as a skip.
"""

from __future__ import annotations

import argparse
import base64
import logging
import math
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# No database is touched: throwaway keys satisfy the settings' production check (DEBUG off needs both).
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ENCRYPTION_KEYS", "bench:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))

import django
import pytest

django.setup()

from django.conf import settings  # noqa: E402

from datasources.connectors import ConnectionConfig, ConnectorUnavailable, get_connector  # noqa: E402
from datasources.connectors.registry import DRIVERS  # noqa: E402

warnings.filterwarnings("ignore", "Arrow output on a DB-API result")  # fakesnow's own (as test_snowflake.py)
logging.disable(logging.INFO)  # the servers' and clients' request logs (uvicorn, fakesnow, httpx)


@contextmanager
def postgresql() -> Iterator[ConnectionConfig]:
    from tests.conftest import require_service
    from tests.connectors.test_stages_and_introspection import _pg
    from tests.support.pgcluster import start_cluster, stop_cluster
    try:
        c = start_cluster()  # scram password auth, as pg_password_server
    except Exception:  # no initdb here: the machine's server, trust auth (TestPostgreSQL.test_ok)
        require_service("127.0.0.1", 5432, "PostgreSQL (no pgcluster here: initdb/pg_ctl failed)")
        yield _pg()
        return
    try:
        yield _pg(host=c.host, port=c.port, database=c.database, username=c.user, secrets={"password": c.password})
    finally:
        stop_cluster(c)


@contextmanager
def mysql() -> Iterator[ConnectionConfig]:
    from tests.conftest import require_service
    from tests.connectors.test_mysql import HOST, PASSWORD, PORT, _admin, _my
    require_service(HOST, PORT, "MariaDB")
    name, hosts = f"dsp_bench_{uuid.uuid4().hex[:8]}", ("%", "127.0.0.1", "localhost")  # as the account fixture
    with _admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        try:
            for host in hosts:
                cur.execute(f"CREATE USER '{name}'@'{host.replace('%', '%%')}' IDENTIFIED BY %s", (PASSWORD,))
                cur.execute(f"GRANT ALL ON `{name}`.* TO '{name}'@'{host}'")
            cur.execute(f"CREATE TABLE `{name}`.orders (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(50))")
            yield _my({"db": name, "user": name})
        finally:
            for host in hosts:
                cur.execute(f"DROP USER IF EXISTS '{name}'@'{host}'")
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@contextmanager
def sqlite() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_stages_and_introspection import _make_db, _sqlite
    _make_db(Path(settings.DATASOURCE_FILE_ROOT) / "data" / "shop.db")
    yield _sqlite("data/shop.db")


@contextmanager
def csv() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_file_tables import PEOPLE, _cfg
    (Path(settings.DATASOURCE_FILE_ROOT) / "data" / "people.csv").write_text(PEOPLE)
    yield _cfg("data/people.csv")


@contextmanager
def mssql() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_mssql import config, standin
    from tests.support.certs import make_bundle
    bundle = make_bundle()
    with standin(bundle) as server:  # TDS stand-in, TLS verified against the test CA
        yield config(server, bundle)


@contextmanager
def clickhouse() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_clickhouse import CANARY, _config
    from tests.support import clickhouse_server as ch
    if not ch.available():
        pytest.skip(f"{ch.BINARY} is missing: {ch.INSTALL_HINT}")
    server = ch.start_server(CANARY)
    try:
        admin = server.client()
        admin.execute("CREATE DATABASE shop")
        admin.execute("CREATE TABLE shop.orders (id UInt64, note Nullable(String)) ENGINE = Memory")
        admin.disconnect()
        yield _config(server)  # native protocol over TLS
    finally:
        ch.stop_server(server)


@contextmanager
def snowflake() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_snowflake import CANARY, _config
    from tests.support.snowflake_server import SnowflakeServer, run_sql, serve_snowflake
    run_sql("CREATE DATABASE IF NOT EXISTS SALES", "CREATE SCHEMA IF NOT EXISTS SALES.PUBLIC",
            "CREATE OR REPLACE TABLE SALES.PUBLIC.ORDERS (ID INT NOT NULL, AMOUNT NUMBER(10,2))")
    with serve_snowflake(SnowflakeServer(passwords={"ANALYST": CANARY})) as server:
        yield _config(server)


@contextmanager
def bigquery() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_bigquery import EMAIL, PROJECT, _config, _datasets, _key
    from tests.support.bigquery_server import BigQueryStandIn, serve_bigquery
    key, pem = _key()
    with serve_bigquery(BigQueryStandIn(projects={PROJECT: _datasets()}, public_keys={EMAIL: key.public_key()})) as s:
        yield _config(s, pem)


@contextmanager
def databricks() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_databricks import CANARY, WAREHOUSE, config, tables
    from tests.support.databricks_server import Workspace, serve
    workspace = Workspace(token=CANARY, warehouse_id=WAREHOUSE, catalogs=tables())
    with serve(workspace) as url:
        workspace.url = url
        yield config(workspace)


@contextmanager
def firebolt() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_firebolt import CANARY, TABLES, config
    from tests.support.firebolt_server import FireboltStandIn, serve
    with serve(FireboltStandIn(client_secret=CANARY, tables=dict(TABLES), views={"order_totals"})) as server:
        yield config(server)


@contextmanager
def athena() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_athena import CANARY, config, seed
    from tests.support.moto_server import MotoServer
    server = MotoServer().start()  # signature checks on
    try:
        seed(server)
        yield config(server, server.create_user("athena-reader", secret=CANARY))
    finally:
        server.stop()


@contextmanager
def trino() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_trino import CANARY, CATALOGS, _config
    from tests.support.certs import make_bundle
    from tests.support.trino_server import TrinoServer
    bundle = make_bundle()
    with TrinoServer(CATALOGS, password=CANARY, tls=bundle.server) as server:  # https + basic auth
        yield _config(server, bundle)


@contextmanager
def motherduck() -> Iterator[ConnectionConfig]:
    """Only with the extension installed, loopback all the same (test_whole_test_and_introspection_over_the_session):
    ``md:analytics`` opens a local DuckDB file, the vendor host resolves to a loopback listener on 443."""
    import duckdb

    with duckdb.connect() as con:
        row = con.execute("SELECT installed FROM duckdb_extensions() WHERE extension_name = 'motherduck'").fetchone()
    if not (row and row[0]):
        pytest.skip("motherduck extension not installed (no network)")
    from datasources.connectors.motherduck import API_HOST, API_PORT
    from tests.connectors.test_motherduck import Driver, config, make_database
    address, real = "127.77.0.1", socket.getaddrinfo
    try:
        listener = socket.create_server((address, API_PORT))
    except OSError as exc:
        pytest.skip(f"cannot listen on {address}:{API_PORT} for the vendor host ({exc})")
    with tempfile.TemporaryDirectory(prefix="bench-md-") as tmp, listener:
        driver = Driver({"md:analytics": make_database(Path(tmp, "analytics.duckdb"))})
        with mock.patch.object(duckdb, "connect", driver), mock.patch.object(
                socket, "getaddrinfo", lambda host, *a, **k: real(address if host == API_HOST else host, *a, **k)):
            yield config()


@contextmanager
def s3() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_s3 import CANARY, config, seed
    from tests.support.moto_server import MotoServer
    server = MotoServer().start()  # signature checks on, as the moto_server fixture
    try:
        seed(server)
        yield config(server, server.create_user("s3-reader", secret=CANARY))  # the keys fixture
    finally:
        server.stop()


@contextmanager
def mongodb() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_mongodb import CANARY, _config, databases
    from tests.support.mongo_server import MongoServer
    with MongoServer(databases(), users={"analyst": CANARY}) as server:  # the server fixture: TCP, SCRAM-SHA-256
        yield _config(server)


@contextmanager
def search(kind: str) -> Iterator[ConnectionConfig]:
    """elasticsearch or opensearch: the server fixture of test_search.py (https, basic auth, the test CA)."""
    from tests.connectors.test_search import CLUSTER, PRIVILEGES, USERS, _config
    from tests.support.certs import make_bundle
    from tests.support.search_server import SearchServer
    bundle = make_bundle()
    with SearchServer(CLUSTER, product=kind, tls=bundle.server, users=USERS, privileges=PRIVILEGES) as server:
        yield _config(kind, server, bundle)


@contextmanager
def google_sheets() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_google_sheets import EMAIL, SID, _book, _config
    from tests.support.google_oauth import new_key  # test_google_sheets.py's _key
    from tests.support.sheets_server import SheetsStandIn, serve_sheets
    key, pem = new_key()  # the JWT grant's signature is verified with its public key
    with serve_sheets(SheetsStandIn(spreadsheets={SID: _book()}, public_keys={EMAIL: key.public_key()})) as server:
        yield _config(server, pem)


@contextmanager
def mixpanel() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_mixpanel import config, world
    from tests.support.mixpanel_server import serve
    mp = world()
    with serve(mp):  # one loopback server per region host; the config's project is US
        yield config(mp)


@contextmanager
def mcp() -> Iterator[ConnectionConfig]:
    from tests.connectors.test_mcp import CANARY, config, resources, tools
    from tests.support.mcp_server import Catalog, serve
    catalog = Catalog(tools=tools(), resources=resources(), token=CANARY)
    with serve(catalog):  # the SDK's server under uvicorn; streamable HTTP, bearer token
        yield config(catalog)


PEERS = {
    "postgresql": postgresql, "mysql": mysql, "sqlite": sqlite, "csv": csv, "mssql": mssql,
    "clickhouse": clickhouse, "snowflake": snowflake, "bigquery": bigquery, "databricks": databricks,
    "firebolt": firebolt, "athena": athena, "trino": trino, "motherduck": motherduck,
    "s3": s3, "mongodb": mongodb, "elasticsearch": partial(search, "elasticsearch"),
    "opensearch": partial(search, "opensearch"), "google_sheets": google_sheets, "mixpanel": mixpanel, "mcp": mcp,
}


def measure(type_key: str, runs: int) -> tuple[str, list[float] | None]:
    """The line to print and the wall times (ms), or None when skipped or failed."""
    timings, stages = [], {}
    try:
        connector = get_connector(type_key)
        with PEERS[type_key]() as config:
            for run in range(runs + 1):  # run 0 warms up
                start = time.perf_counter()
                result = connector.test(config)
                elapsed = (time.perf_counter() - start) * 1000
                if not result.ok:
                    return f"FAILED run {run}: stage {result.stage}: {result.message}", None
                if run:
                    timings.append(elapsed)
                    for stage in result.stages:
                        stages.setdefault(stage.name, []).append(stage.duration_ms)
    except (pytest.skip.Exception, ConnectorUnavailable) as exc:  # a missing binary, extension, service or driver
        return f"skipped: {exc}", None
    except (Exception, pytest.fail.Exception) as exc:  # reported, and on to the next type
        return f"FAILED: {type(exc).__name__}: {exc}", None
    slow, slow_ms = max(((name, statistics.median(v)) for name, v in stages.items()), key=lambda s: s[1])
    p90 = sorted(timings)[math.ceil(0.9 * len(timings)) - 1]  # nearest rank
    return (f"median {statistics.median(timings):7.1f} ms  p90 {p90:7.1f} ms  "
            f"slowest stage {slow} {slow_ms:.1f} ms"), timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed tests per type, after one warm-up")
    parser.add_argument("--types", default=",".join(PEERS), help="comma-separated subset of: " + ",".join(PEERS))
    args = parser.parse_args()
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    if unknown := [t for t in types if t not in PEERS]:
        parser.error(f"unknown types {unknown}: choose from {','.join(PEERS)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]  # as the tests' allow_loopback
    began, measured, skipped, failed, width = time.perf_counter(), {}, [], [], max(map(len, types))
    with tempfile.TemporaryDirectory(prefix="bench-files-") as root:
        settings.DATASOURCE_FILE_ROOT = root
        (Path(root) / "data").mkdir()
        print(f"connection tests: {args.runs} timed runs per type after 1 warm-up, wall clock, loopback only")
        for type_key in types:
            line, timings = measure(type_key, args.runs)
            print(f"{type_key:<{width}} {DRIVERS[type_key].verified_with:<18} {line}", flush=True)
            if timings is not None:
                measured[type_key] = statistics.median(timings)
            else:
                (skipped if line.startswith("skipped") else failed).append(type_key)
    ranked = sorted(measured, key=measured.__getitem__)
    extremes = f"; median fastest {ranked[0]}, slowest {ranked[-1]} {measured[ranked[-1]]:.1f} ms" if ranked else ""
    print(f"summary: {len(measured)} of {len(types)} types measured, {len(measured) * args.runs} tests all ok; "
          f"skipped: {', '.join(skipped) or 'none'}; failed: {', '.join(failed) or 'none'}{extremes}; "
          f"{time.perf_counter() - began:.1f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
