"""An empty password is a value of its own (issue 16, maiascore point), on the types whose server may
accept one: PostgreSQL (``trust``) and the MySQL family (a user without password).

For those, ``"password": ""`` stores the empty string (encrypted, listed in ``credentials_set``),
an absent key keeps the stored password and ``null`` clears it; whitespace alone stays refused, and
every other secret refuses blank values as before. The connection test logs in with it, against the
real MariaDB (a user created without password, dropped afterwards) and a PostgreSQL ``trust`` login.

The server fixtures here are imported by the adapters' tests (``tests/compat``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import psycopg
import pymysql
import pytest
from psycopg import sql

from datasources import catalogue
from datasources.catalogue import (
    BLANK,
    WHITESPACE_ONLY,
    ConfigInvalid,
    SecretField,
    check_required_secrets,
    credentials_openapi_schema,
    get_type,
    is_fully_configured,
    validate_secret_values,
)
from datasources.connection_strings import parse
from datasources.models import DataSource
from datasources.services.credentials import load_secrets
from tests.conftest import require_service
from tests.support.state import stored_state

URL = "/api/v1/data-sources/"
EMPTY_TYPES = {"postgresql", "mysql", "mariadb", "singlestore"}
PASSWORD_TYPES = sorted(key for key, t in catalogue.CATALOGUE.items() if t.secret("password"))
MERGE = "application/merge-patch+json"


# --- real servers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    host: str
    port: int
    user: str
    database: str


MARIADB_HOSTS = ("%", "127.0.0.1", "localhost")


def _mariadb_admin() -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True, connect_timeout=3)


@pytest.fixture(scope="module")
def mariadb_no_password():
    """A MariaDB user created without password, with a throwaway database (both dropped afterwards)."""
    require_service("127.0.0.1", 3306, "MariaDB")
    name = f"dsp_nopw_{uuid.uuid4().hex[:8]}"
    with _mariadb_admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        try:
            for host in MARIADB_HOSTS:
                cur.execute(f"CREATE USER '{name}'@'{host}'")  # no IDENTIFIED BY: the empty password
                cur.execute(f"GRANT ALL ON `{name}`.* TO '{name}'@'{host}'")
            cur.execute(f"CREATE TABLE `{name}`.items (id INT PRIMARY KEY, label VARCHAR(20))")
            yield Login("127.0.0.1", 3306, name, name)
        finally:
            for host in MARIADB_HOSTS:
                cur.execute(f"DROP USER IF EXISTS '{name}'@'{host}'")
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="module")
def pg_trust():
    """The machine's PostgreSQL (127.0.0.1:5432, user postgres, ``trust``) with a throwaway database."""
    require_service("127.0.0.1", 5432, "PostgreSQL")
    admin = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": "", "autocommit": True,
             "connect_timeout": 3}
    name = f"dsp_trust_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(dbname="postgres", **admin) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        pytest.skip(f"no trust login for postgres on 127.0.0.1:5432: {exc}")
    try:
        with psycopg.connect(dbname=name, **admin) as conn:
            conn.execute("CREATE TABLE public.items (id integer PRIMARY KEY, label text)")
        yield Login("127.0.0.1", 5432, "postgres", name)
    finally:
        with psycopg.connect(dbname="postgres", **admin) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def mysql_body(login: Login, password: str | None = "", **extra) -> dict:
    body = {"name": "No password", "type": "mysql",
            "connection": {"host": login.host, "port": login.port, "username": login.user,
                           "database": login.database, "ssl": {"mode": "disable"}}, **extra}
    if password is not None:
        body["credentials"] = {"password": password}
    return body


def pg_body(login: Login, password: str | None = "", **extra) -> dict:
    body = {"name": "Trust", "type": "postgresql",
            "connection": {"host": login.host, "port": login.port, "username": login.user,
                           "database": login.database, "ssl": {"mode": "disable"}}, **extra}
    if password is not None:
        body["credentials"] = {"password": password}
    return body


def history(api, pk) -> list[dict]:
    return api.get(f"{URL}{pk}/history/").json()["results"]


# --- the catalogue --------------------------------------------------------------------------------


def test_allow_empty_is_on_the_passwords_of_servers_that_may_take_none():
    flagged = {(key, s.name) for key, t in catalogue.CATALOGUE.items() for s in t.secrets if s.allow_empty}
    assert flagged == {(key, "password") for key in EMPTY_TYPES}
    for key in ("redshift", "cockroachdb", "supabase"):  # same family, but a password is required there
        assert get_type(key).secret("password").required


@pytest.mark.parametrize("kwargs", [{"required": True}, {"kind": "pem"}, {"kind": "token"},
                                    {"required_when": catalogue.Condition("host", not_in=(None,))}])
def test_allow_empty_is_for_an_optional_password_only(kwargs):
    with pytest.raises(ValueError, match="allow_empty"):
        SecretField("password", allow_empty=True, **kwargs)


@pytest.mark.parametrize("key", PASSWORD_TYPES)
def test_empty_whitespace_null_and_absent_per_type(key):
    source_type = get_type(key)
    allowed = key in EMPTY_TYPES
    if allowed:
        validate_secret_values(source_type, {"password": ""})
    else:
        with pytest.raises(ConfigInvalid) as refused:
            validate_secret_values(source_type, {"password": ""})
        assert refused.value.errors == {"credentials.password": [BLANK]}
    for blank in (" ", "  ", "\t\n", "\u3000"):
        with pytest.raises(ConfigInvalid) as refused:
            validate_secret_values(source_type, {"password": blank})
        assert refused.value.errors == {"credentials.password": [WHITESPACE_ONLY if allowed else BLANK]}
    validate_secret_values(source_type, {"password": None})  # clears
    validate_secret_values(source_type, {})  # absent: kept


@pytest.mark.parametrize("key", sorted(EMPTY_TYPES))
def test_other_secrets_of_those_types_still_refuse_blank(key):
    for name in ("ssh_password", "ssh_private_key_passphrase", "ssl_client_key"):
        with pytest.raises(ConfigInvalid) as refused:
            validate_secret_values(get_type(key), {name: ""})
        assert refused.value.errors == {f"credentials.{name}": [BLANK]}


def test_an_empty_password_is_a_password_that_is_set():
    mysql = get_type("mysql")
    check_required_secrets(mysql, {}, {"password"})
    assert is_fully_configured(get_type("postgresql"), {"host": "h", "database": "d", "username": "u"},
                               {"password"})


def test_catalogue_and_openapi_say_so():
    pg = get_type("postgresql").secret("password").as_dict()
    assert pg["allow_empty"] is True and '""' in pg["help"]
    assert get_type("postgresql").secret("ssh_password").as_dict()["allow_empty"] is False
    assert credentials_openapi_schema(get_type("mysql"))["properties"]["password"]["minLength"] == 0
    assert credentials_openapi_schema(get_type("redshift"))["properties"]["password"]["minLength"] == 1
    assert credentials_openapi_schema(get_type("mysql"))["properties"]["ssh_password"]["minLength"] == 1


def test_catalogue_endpoint_serves_the_flag(api):
    types = {t["key"]: t for t in api.get("/api/v1/data-source-types/").json()}
    secrets = {s["name"]: s for s in types["mariadb"]["secret_fields"]}
    assert secrets["password"]["allow_empty"] is True and secrets["ssh_password"]["allow_empty"] is False
    assert {s["name"]: s for s in types["supabase"]["secret_fields"]}["password"]["allow_empty"] is False


@pytest.mark.django_db
def test_openapi_components_admit_exactly_the_empty_string(client):
    from tests.core.test_openapi import assert_valid

    doc = client.get("/api/schema/?format=json").json()
    body = {"name": "m", "type": "mysql", "connection": {"host": "h", "username": "u"}}
    assert_valid(doc, "MysqlDataSourceRequest", {**body, "credentials": {"password": ""}})
    for refused in (" ", "\n", "\t \n"):
        with pytest.raises(AssertionError):
            assert_valid(doc, "MysqlDataSourceRequest", {**body, "credentials": {"password": refused}})
    with pytest.raises(AssertionError):
        assert_valid(doc, "MysqlDataSourceRequest", {**body, "credentials": {"ssh_password": ""}})
    redshift = {"name": "r", "type": "redshift",
                "connection": {"host": "h", "database": "d", "username": "u"}}
    with pytest.raises(AssertionError):
        assert_valid(doc, "RedshiftDataSourceRequest", {**redshift, "credentials": {"password": ""}})
    schema = doc["components"]["schemas"]["CatalogueSecretField"]
    assert "allow_empty" in schema["required"]


# --- the native API (no server: saved untested) ---------------------------------------------------


def test_create_patch_put_spell_empty_absent_and_null(api):
    created = api.post(f"{URL}?test_connection=false", mysql_body(
        Login("mysql.example.com", 3306, "app", "shop")), format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert created.json()["credentials_set"] == ["password"]
    ds = DataSource.objects.get(pk=pk)
    assert load_secrets(ds) == {"password": ""}
    # absent: kept (PATCH, merge-patch and PUT)
    assert api.patch(f"{URL}{pk}/", {"description": "d"}, format="json").status_code == 200
    merge = api.generic("PATCH", f"{URL}{pk}/?test_connection=false", b'{"connection": {"port": 3307}}',
                        content_type=MERGE)
    assert merge.status_code == 200, merge.json()
    put = api.put(f"{URL}{pk}/?test_connection=false", {
        "name": "No password", "connection": {"host": "mysql.example.com", "username": "app"}}, format="json")
    assert put.status_code == 200, put.json()
    assert put.json()["credentials_set"] == ["password"] and load_secrets(ds) == {"password": ""}
    # whitespace: refused, nothing changes
    before = stored_state(pk)
    for blank in (" ", "\t"):
        refused = api.patch(f"{URL}{pk}/?test_connection=false", {"credentials": {"password": blank}},
                            format="json")
        assert refused.status_code == 400
        assert refused.json()["errors"] == {"credentials.password": [WHITESPACE_ONLY]}
    assert stored_state(pk) == before
    # a value, then "" again, then null
    for value, after in (("s3cret-pw", {"password": "s3cret-pw"}), ("", {"password": ""}), (None, {})):
        response = api.generic("PATCH", f"{URL}{pk}/?test_connection=false",
                               json.dumps({"credentials": {"password": value}}).encode(), content_type=MERGE)
        assert response.status_code == 200, response.json()
        assert load_secrets(ds) == after
        assert response.json()["credentials_set"] == sorted(after)
    changes = [e["changes"].get("credentials.password") for e in history(api, pk)]
    assert changes[:4] == ["cleared", "changed", "changed", None]  # newest first; PUT left it alone
    assert changes[-1] == "changed"  # the create: "changed", never a value


def test_a_password_sent_again_is_written_again_so_a_guess_cannot_be_checked(api):
    """Comparing a sent secret with the stored one would tell a writer whether a guess is the stored
    password (changed_fields, the audit, the test, the version): a sent secret always counts as written."""
    pk = api.post(f"{URL}?test_connection=false", mysql_body(Login("db.example.com", 3306, "app", "shop"),
                                                             password="right-pw"), format="json").json()["id"]
    answers = {}
    for guess in ("right-pw", "wrong-pw", ""):
        body = {"credentials": {"password": guess}}
        dry = api.patch(f"{URL}{pk}/?dry_run=true&test_connection=false", body, format="json")
        put = api.put(f"{URL}{pk}/?dry_run=true&test_connection=false",
                      {**mysql_body(Login("db.example.com", 3306, "app", "shop"), password=guess)}, format="json")
        answers[guess] = (dry.status_code, dry.json()["changed_fields"], put.status_code, put.json()["changed_fields"])
    assert answers["right-pw"] == answers["wrong-pw"] == answers[""]
    assert "credentials.password" in answers["right-pw"][1]
    before = stored_state(pk)
    again = api.patch(f"{URL}{pk}/?test_connection=false", {"credentials": {"password": "right-pw"}}, format="json")
    assert again.status_code == 200
    assert stored_state(pk)["row"]["version"] == before["row"]["version"] + 1
    assert history(api, pk)[0]["changes"]["credentials.password"] == "changed"


@pytest.mark.parametrize("key,connection", [
    ("redshift", {"host": "h", "database": "d", "username": "u"}),
    ("cockroachdb", {"host": "h", "database": "d", "username": "u"}),
    ("supabase", {"host": "h", "database": "d", "username": "u"}),
    ("mssql", {"host": "h", "username": "u"}),
])
def test_types_that_require_a_password_refuse_the_empty_one(api, key, connection):
    body = {"name": key, "type": key, "connection": connection, "credentials": {"password": ""}}
    response = api.post(f"{URL}?test_connection=false", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"credentials.password": [BLANK]}
    assert not DataSource.objects.exists()


def test_an_ssh_password_is_never_empty(api):
    body = mysql_body(Login("db.example.com", 3306, "app", "shop"))
    body["connection"]["ssh_tunnel"] = {"enabled": True, "host": "bastion.example.com", "username": "t"}
    body["credentials"]["ssh_password"] = ""
    response = api.post(f"{URL}?test_connection=false", body, format="json")
    assert response.status_code == 400 and response.json()["errors"] == {"credentials.ssh_password": [BLANK]}


def test_connection_string_user_colon_at_is_the_empty_password():
    assert parse("mysql", "mysql://root:@db.example.com/shop")[1] == {"password": ""}
    assert parse("mysql", "mysql://root@db.example.com/shop")[1] == {}  # no password given: kept
    assert parse("postgresql", "postgresql://u:@db.example.com/d")[1] == {"password": ""}
    assert parse("postgresql", "host=db.example.com user=u dbname=d password=''")[1] == {"password": ""}


def test_connection_string_through_the_api(api):
    body = {"name": "Str", "type": "mariadb", "connection_string": "mariadb://app:@db.example.com/shop"}
    response = api.post(f"{URL}?test_connection=false", body, format="json")
    assert response.status_code == 201, response.json()
    assert load_secrets(DataSource.objects.get(pk=response.json()["id"])) == {"password": ""}
    refused = api.post(f"{URL}?test_connection=false", {
        "name": "R", "type": "redshift", "connection_string": "postgresql://app:@db.example.com/d"}, format="json")
    assert refused.status_code == 400 and "credentials.password" in refused.json()["errors"]


# --- the destination rule -------------------------------------------------------------------------


@pytest.fixture
def editor_api(org, editor, make_client):
    return make_client(org, ["datasource.read", "datasource.write"], username=editor.username)


def test_an_explicit_empty_password_counts_as_resent(api, editor_api):
    pk = api.post(f"{URL}?test_connection=false", mysql_body(
        Login("db.example.com", 3306, "app", "shop"), password="stored-pw"), format="json").json()["id"]
    moved = {"connection": {"host": "db2.example.com"}}
    refused = editor_api.patch(f"{URL}{pk}/?test_connection=false", moved, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "CREDENTIALS_REQUIRED"
    response = editor_api.patch(f"{URL}{pk}/?test_connection=false", {**moved, "credentials": {"password": ""}},
                                format="json")
    assert response.status_code == 200, response.json()
    assert load_secrets(DataSource.objects.get(pk=pk)) == {"password": ""}  # the stored one never travelled
    again = editor_api.patch(f"{URL}{pk}/?test_connection=false", {"connection": {"host": "db3.example.com"}},
                             format="json")
    assert again.status_code == 400, "a stored empty password is a stored secret too: resend it to move"


# --- real logins ------------------------------------------------------------------------------------


def test_postgresql_trust_login_with_the_empty_password(api, pg_trust, allow_loopback):
    response = api.post(URL, pg_body(pg_trust), format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["status"] == "active" and data["last_test"]["ok"] and data["credentials_set"] == ["password"]
    assert data["schema"]["table_count"] >= 1
    assert load_secrets(DataSource.objects.get(pk=data["id"])) == {"password": ""}
    tested = api.post(f"{URL}{data['id']}/test/")
    assert tested.status_code == 200 and tested.json()["ok"], tested.json()


def test_mariadb_user_without_password(api, mariadb_no_password, allow_loopback):
    login = mariadb_no_password
    created = api.post(f"{URL}?test_connection=false", mysql_body(login, password="not-the-password"),
                       format="json")
    pk = created.json()["id"]
    stale = api.post(f"{URL}{pk}/test/")
    assert stale.status_code == 400 and stale.json()["stage"] == "auth"
    before = stored_state(pk)
    whitespace = api.patch(f"{URL}{pk}/", {"credentials": {"password": " "}}, format="json")
    assert whitespace.status_code == 400 and stored_state(pk) == before
    # "" is the empty password: tested (a real login), then stored
    response = api.patch(f"{URL}{pk}/", {"credentials": {"password": ""}}, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["last_test"]["ok"] and data["status"] == "active" and data["credentials_set"] == ["password"]
    assert data["schema"]["table_count"] == 1
    assert load_secrets(DataSource.objects.get(pk=pk)) == {"password": ""}
    assert history(api, pk)[0]["changes"] == {"credentials.password": "changed"}
    # absent keeps it: a change without the password is tested with the stored empty one
    kept = api.patch(f"{URL}{pk}/", {"connection": {"ssl": {"mode": "prefer"}}}, format="json")
    assert kept.status_code == 200 and kept.json()["last_test"]["ok"], kept.json()
    assert load_secrets(DataSource.objects.get(pk=pk)) == {"password": ""}
    # null clears it: no password at all, which this server takes too
    cleared = api.patch(f"{URL}{pk}/", {"credentials": {"password": None}}, format="json")
    assert cleared.status_code == 200 and cleared.json()["credentials_set"] == []
    assert api.post(f"{URL}{pk}/test/").json()["ok"]
    assert history(api, pk)[1]["changes"] == {"credentials.password": "cleared"}


def test_mariadb_create_with_the_empty_password_is_tested(api, mariadb_no_password, allow_loopback):
    response = api.post(URL, mysql_body(mariadb_no_password, name="Created"), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["last_test"]["ok"] and response.json()["credentials_set"] == ["password"]
    wrong = api.post(URL, mysql_body(mariadb_no_password, password="some-password", name="Wrong"), format="json")
    assert wrong.status_code == 400 and wrong.json()["stage"] == "auth"
