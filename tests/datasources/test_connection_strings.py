"""connection_string: parsed into parts and secrets, validated, refused when it names files or services."""

from __future__ import annotations

import pytest

from datasources.catalogue import ConfigInvalid
from datasources.connection_strings import parse
from datasources.models import DataSource
from datasources.services.credentials import load_secrets
from tests.support.state import stored_state

URL = "/api/v1/data-sources/"


def test_uri_is_split_into_parts_and_password():
    connection, secrets = parse("postgresql", "postgresql://ann:p%40ss@db.example.com:6543/sales?sslmode=require")
    assert connection == {"host": "db.example.com", "port": 6543, "database": "sales", "username": "ann",
                          "ssl": {"mode": "require"}}
    assert secrets == {"password": "p@ss"}


def test_keyword_form_is_parsed():
    connection, secrets = parse("postgresql", "host=db.example.com port=5433 dbname=x user=u password='a b'")
    assert connection == {"host": "db.example.com", "port": 5433, "database": "x", "username": "u"}
    assert secrets == {"password": "a b"}


def test_an_unquoted_password_with_a_space_is_refused_without_naming_its_tail():
    with pytest.raises(ConfigInvalid) as info:
        parse("postgresql", "host=h dbname=x password=ZZ SEC12=x")
    message = str(info.value.errors)
    assert "SEC12" not in message and "ZZ" not in message and "quote a password" in message
    with pytest.raises(ConfigInvalid) as known:  # a known parameter after the password is still named
        parse("postgresql", "host=h dbname=x password=p sslcert=/etc/x")
    assert "sslcert" in str(known.value.errors)


def test_mysql_ssl_mode_is_mapped():
    connection, _ = parse("mysql", "mysql://u:p@h:3307/d?ssl-mode=VERIFY_IDENTITY")
    assert connection["ssl"] == {"mode": "verify-full"} and connection["port"] == 3307


@pytest.mark.parametrize(
    "type_key,value",
    [
        ("postgresql", "postgresql://u:p@h/d?sslkey=/etc/ssl/private/key.pem"),
        ("postgresql", "postgresql://u:p@h/d?SSLROOTCERT=/x"),
        ("postgresql", "postgresql://u:p@h/d?passfile=/root/.pgpass"),
        ("postgresql", "postgresql://u:p@h/d?service=prod"),
        ("postgresql", "postgresql://u:p@h/d?host=/var/run/postgresql"),
        ("postgresql", "postgresql://u:p@h/d?hostaddr=169.254.169.254"),
        ("postgresql", "postgresql://u:p@h/d?options=-c%20log_statement%3Dall"),
        ("postgresql", "postgresql://u:p@a,b/d"),
        ("postgresql", "postgresql://u:p@%2Fvar%2Frun%2Fpostgresql/d"),
        ("postgresql", "host=/tmp dbname=x"),
        ("postgresql", "host=a,b dbname=x"),
        ("postgresql", "host=h dbname=x sslcert=/etc/x"),
        ("postgresql", "host=h dbname=x ssl_Key=/etc/x"),
        ("mysql", "mysql://u:p@h/d?local_infile=1"),
        ("mysql", "mysql://u:p@h/d?allowLoadLocalInfile=true"),
        ("mysql", "mysql://u:p@h/d?ssl-ca=/etc/ca.pem"),
        ("mysql", "mysql://u:p@h/d?read_default_file=/etc/my.cnf"),
        ("mysql", "mysql://u:p@h/d?unix_socket=/run/mysqld.sock"),
        ("sqlite", "sqlite:///x.db"),
        ("postgresql", "mysql://u:p@h/d"),
        ("postgresql", "postgresql://u:p@h/d?unknown=1"),
    ],
)
def test_hostile_or_unsupported_strings_are_refused_without_echo(type_key, value):
    with pytest.raises(ConfigInvalid) as exc:
        parse(type_key, value)
    message = str(exc.value.errors)
    assert "connection_string" in exc.value.errors
    assert ":p@" not in message


def test_api_accepts_a_connection_string_and_never_echoes_it(api, pg_password_server, allow_loopback):
    c = pg_password_server
    string = f"postgresql://{c.user}:{c.password}@{c.host}:{c.port}/{c.database}?sslmode=disable"
    response = api.post(URL, {"name": "CS", "type": "postgresql", "connection_string": string}, format="json")
    assert response.status_code == 201, response.json()
    assert c.password not in response.content.decode()
    assert "connection_string" not in response.json()
    assert response.json()["connection"]["port"] == c.port
    assert response.json()["credentials_set"] == ["password"]
    assert load_secrets(DataSource.objects.get(pk=response.json()["id"])) == {"password": c.password}


def test_api_refuses_file_parameters_in_connection_strings(api, allow_loopback):
    body = {"name": "CS", "type": "postgresql",
            "connection_string": "postgresql://u:hunter2@127.0.0.1/d?sslrootcert=/etc/passwd"}
    response = api.post(URL, body, format="json")
    assert response.status_code == 400
    # the string's own error alone: not the fields it was to give, "required" beside it
    assert list(response.json()["errors"]) == ["connection_string"]
    assert "hunter2" not in response.content.decode()
    assert not DataSource.objects.exists()


def test_precedence_beside_a_string_is_the_documented_one(api, pg_password_server, allow_loopback):
    """What the string sets wins over the same connection field; a password in credentials wins over
    the string's (README, the field's OpenAPI description); fields the string does not set apply."""
    c = pg_password_server
    string = f"postgresql://{c.user}:{c.password}@{c.host}:{c.port}/{c.database}?sslmode=disable"
    created = api.post(URL, {"name": "CS", "type": "postgresql", "connection_string": string}, format="json")
    assert created.status_code == 201, created.json()
    url = f"{URL}{created.json()['id']}/"
    response = api.patch(f"{url}?test_connection=false", {
        "connection_string": string, "description": "beside", "connection": {"database": "other_db",
                                                                             "ssh_tunnel": {"enabled": False}},
        "credentials": {"password": "hunter2"}}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["connection"]["database"] == c.database and response.json()["description"] == "beside"
    assert load_secrets(DataSource.objects.get(pk=created.json()["id"])) == {"password": "hunter2"}
    assert "hunter2" not in response.content.decode()
    # a value the string overrides is still checked as sent: a port that is no port is a 400, nothing changes
    before = stored_state(created.json()["id"])
    bad = api.patch(f"{url}?test_connection=false", {"connection_string": string, "connection": {"port": "abc"}},
                    format="json")
    assert bad.status_code == 400 and "connection.port" in bad.json()["errors"], bad.json()
    assert stored_state(created.json()["id"]) == before
