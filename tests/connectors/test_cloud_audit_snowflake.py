"""Snowflake's role and warehouse are checked with ``USE`` after login (outside audit, finding 8).

README said the connector checks role, warehouse, database and schema with ``USE``, tested against fakesnow;
but fakesnow runs ``USE ROLE`` and ``USE WAREHOUSE`` as no-ops, so a wrong role or warehouse passed and that
check was untested. The stand-in (tests/support/snowflake_server.py) now answers a ``USE`` of a role or
warehouse it does not have with Snowflake's own errors (002003, 002043), and these tests drive the real
driver against it.
"""

from __future__ import annotations

import json

import pytest

from datasources.connectors import ConnectionConfig, get_connector

snowflake_server = pytest.importorskip("tests.support.snowflake_server")
pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")  # fakesnow's own

CANARY = "canary-audit-sf-61b8"


@pytest.fixture(scope="module")
def fakesnow():
    snowflake_server.run_sql("CREATE DATABASE IF NOT EXISTS AUDIT", "CREATE SCHEMA IF NOT EXISTS AUDIT.OBJECTS",
                             "CREATE OR REPLACE TABLE AUDIT.OBJECTS.ORDERS (ID INT)")
    server = snowflake_server.SnowflakeServer(passwords={"ANALYST": CANARY}, roles={"ANALYST", "Mixed Case"},
                                              warehouses={"COMPUTE_WH"})
    with snowflake_server.serve_snowflake(server) as running:
        yield running


def _config(server, **changes) -> ConnectionConfig:
    connection = {"account": "acme-test", "username": "analyst", "role": "ANALYST", "warehouse": "COMPUTE_WH",
                  "database": "AUDIT", "schema": "OBJECTS", "auth_method": "password", "endpoint_url": server.url,
                  **changes}
    return ConnectionConfig("snowflake", connection, {"password": CANARY}, connect_timeout=5)


@pytest.mark.parametrize(("changes", "message"), [
    ({"role": "NOPE"}, "The role 'NOPE' does not exist or is not authorized for this user."),
    ({"role": "nope"}, "The role 'nope' does not exist or is not authorized for this user."),
    ({"warehouse": "NO_WH"}, "The warehouse 'NO_WH' does not exist or is not authorized for this user."),
    ({"database": "NO_DB"}, "The database 'NO_DB' does not exist or is not authorized for this user."),
    ({"schema": "NO_SCHEMA"}, "The schema 'NO_SCHEMA' does not exist or is not authorized for this user."),
])
def test_an_unknown_object_fails_at_database(allow_loopback, fakesnow, changes, message):
    result = get_connector("snowflake").test(_config(fakesnow, **changes))
    assert (result.ok, result.stage, result.message) == (False, "database", message), result.as_dict()
    assert CANARY not in json.dumps(result.as_dict())


def test_the_objects_are_used_in_order_and_a_known_one_passes(allow_loopback, fakesnow):
    fakesnow.reset()
    assert get_connector("snowflake").test(_config(fakesnow, role="analyst")).ok  # unquoted: upper-cased
    uses = [q for q in fakesnow.queries if q.startswith("USE ")]
    assert uses == ["USE ROLE analyst", "USE WAREHOUSE COMPUTE_WH", "USE DATABASE AUDIT", "USE SCHEMA OBJECTS"]
    assert get_connector("snowflake").test(_config(fakesnow, role="Mixed Case")).ok  # quoted: as written
    assert 'USE ROLE "Mixed Case"' in fakesnow.queries


def test_the_stand_in_refuses_what_snowflake_refuses(fakesnow):
    """The refusal comes through the driver as Snowflake's error (not a connector shortcut)."""
    import snowflake.connector

    conn = snowflake.connector.connect(account="acme-test", user="ANALYST", password=CANARY, host=fakesnow.host,
                                       port=fakesnow.port, protocol="http", login_timeout=5)
    try:
        cur = conn.cursor()
        with pytest.raises(snowflake.connector.errors.ProgrammingError) as caught:
            cur.execute("USE WAREHOUSE NO_WH")
        assert (caught.value.errno, caught.value.sqlstate) == (2043, "02000")
        with pytest.raises(snowflake.connector.errors.ProgrammingError) as caught:
            cur.execute('USE ROLE "nope"')
        assert caught.value.errno == 2003 and "Role 'nope' does not exist" in caught.value.msg
        cur.execute("USE ROLE ANALYST")
    finally:
        conn.close()
