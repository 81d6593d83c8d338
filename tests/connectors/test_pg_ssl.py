"""PostgreSQL over TLS against a real cluster with generated certificates (tests/support/certs.py)."""

import json
import os
import tempfile

import psycopg
import pytest

from datasources.catalogue import ConfigInvalid, get_type, normalize_connection
from datasources.connectors import ConnectionConfig, get_connector, pgwire
from tests.conftest import IN_CI
from tests.support.certs import issue, make_bundle, make_ca
from tests.support.pgcluster import ClusterTLS, start_cluster, stop_cluster
from tests.support.sshd import serve_sshd

URL = "/api/v1/data-sources/"
CERT_USER = "certuser"  # logs in with its client certificate alone (hba method ``cert``)
MTLS_USER = "mtls"  # needs its password and a client certificate (``clientcert=verify-full``)
CLEARTEXT_USER = "plainpw"  # the server asks for its password in clear text (hba method ``password``)
TLS_FAILED = (
    "TLS negotiation failed: the server certificate could not be verified or the client certificate was refused."
)
SYSTEM_CA_PATH = "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(scope="module")
def certs():
    bundle = make_bundle(client_user=CERT_USER)
    bundle.clients = {CERT_USER: bundle.client, MTLS_USER: issue(bundle.ca, MTLS_USER, client=True)}  # CN = user
    return bundle


@pytest.fixture(scope="module")
def tls_server(certs):
    hba = (
        f"hostssl all {CERT_USER} 127.0.0.1/32 cert clientcert=verify-full",
        f"hostssl all {MTLS_USER} 127.0.0.1/32 scram-sha-256 clientcert=verify-full",
        f"host all {CLEARTEXT_USER} 127.0.0.1/32 password",
        "hostssl all all 127.0.0.1/32 scram-sha-256",
    )
    tls = ClusterTLS(certs.server.cert_pem, certs.server.key_pem, certs.ca.cert_pem, hba)
    try:
        cluster = start_cluster(tls=tls)
    except Exception as exc:
        (pytest.fail if IN_CI else pytest.skip)(f"could not start a TLS PostgreSQL cluster: {exc}")
    with psycopg.connect(host=cluster.host, port=cluster.port, user=cluster.user, password=cluster.password,
                         dbname=cluster.database, sslmode="require", autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {CERT_USER} LOGIN")
        conn.execute(f"CREATE ROLE {MTLS_USER} LOGIN PASSWORD '{cluster.password}'")
        conn.execute(f"CREATE ROLE {CLEARTEXT_USER} LOGIN PASSWORD '{cluster.password}'")
    yield cluster
    stop_cluster(cluster)


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Route tempfile to an empty directory and record every private file the connector writes."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    written: list[str] = []
    original = pgwire.write_private

    def spy(*args):
        written.append(original(*args))
        return written[-1]

    monkeypatch.setattr(pgwire, "write_private", spy)
    return directory, written


def tls_config(cluster, mode, ca=None, user=None, client=None, **secrets):
    ssl = {"mode": mode, "ca_certificate": ca, "client_certificate": client.cert_pem if client else None}
    connection = {"host": cluster.host, "port": cluster.port, "database": cluster.database,
                  "username": user or cluster.user, "schema": "public", "ssl": ssl}
    secrets = {"password": cluster.password, **secrets}
    if client:
        secrets["ssl_client_key"] = client.key_pem
    return ConnectionConfig("postgresql", connection, secrets, connect_timeout=5)


def mtls_config(cluster, certs):
    """verify-full with the right CA, as the user that needs a password and a client certificate."""
    return tls_config(cluster, "verify-full", ca=certs.ca.cert_pem, user=MTLS_USER, client=certs.clients[MTLS_USER])


def names(result):
    return [s.name for s in result.stages]


def test_require_reports_the_tls_stage(tls_server, allow_loopback, record_property):
    result = get_connector("postgresql").test(tls_config(tls_server, "require"))
    assert result.ok, result.message
    assert names(result) == ["resolve", "tcp", "tls", "auth", "database"]
    assert result.stages[2].message == "The server accepts TLS."
    record_property("stages", json.dumps([(s.name, s.duration_ms) for s in result.stages]))


def test_verify_full_with_the_right_ca(tls_server, certs, allow_loopback, private_tmp, record_property):
    directory, written = private_tmp
    result = get_connector("postgresql").test(tls_config(tls_server, "verify-full", ca=certs.ca.cert_pem))
    assert result.ok, result.message
    assert names(result) == ["resolve", "tcp", "tls", "auth", "database"]
    record_property("stages", json.dumps([(s.name, s.duration_ms) for s in result.stages]))
    assert [os.path.basename(p) for p in written] == ["root.crt"]
    assert list(directory.iterdir()) == []


@pytest.mark.parametrize("mode", ["disable", "prefer", "require"])
def test_cleartext_password_is_refused_without_a_verified_certificate(tls_server, allow_loopback, mode):
    """A server that asks for the password in clear text gets nothing unless TLS verifies its certificate."""
    result = get_connector("postgresql").test(tls_config(tls_server, mode, user=CLEARTEXT_USER))
    assert (result.ok, result.stage) == (False, "auth")
    assert result.message == pgwire.CLEARTEXT_REFUSED


def test_cleartext_password_over_verified_tls_is_allowed(tls_server, certs, allow_loopback):
    result = get_connector("postgresql").test(tls_config(tls_server, "verify-full", ca=certs.ca.cert_pem,
                                                         user=CLEARTEXT_USER))
    assert result.ok, result.message


def test_verify_full_with_a_wrong_ca_fails_at_tls(tls_server, allow_loopback):
    result = get_connector("postgresql").test(tls_config(tls_server, "verify-full", ca=make_ca("Other CA").cert_pem))
    assert (result.ok, result.stage, result.message) == (False, "tls", TLS_FAILED)
    assert [(s.name, s.ok) for s in result.stages] == [("resolve", True), ("tcp", True), ("tls", False)]


def test_verify_ca_with_the_right_ca(tls_server, certs, allow_loopback):
    assert get_connector("postgresql").test(tls_config(tls_server, "verify-ca", ca=certs.ca.cert_pem)).ok


@pytest.mark.parametrize("user", [CERT_USER, MTLS_USER])
def test_client_certificate_auth(tls_server, certs, allow_loopback, private_tmp, user):
    directory, written = private_tmp
    ca = certs.ca.cert_pem
    config = tls_config(tls_server, "verify-full", ca=ca, user=user, client=certs.clients[user])
    if user == CERT_USER:
        config.secrets.pop("password")
    result = get_connector("postgresql").test(config)
    assert result.ok, result.message
    assert sorted(os.path.basename(p) for p in written) == ["client.crt", "client.key", "root.crt"]
    assert all(not os.path.exists(p) for p in written) and list(directory.iterdir()) == []
    without = get_connector("postgresql").test(tls_config(tls_server, "verify-full", ca=ca, user=user))
    assert (without.ok, without.stage) == (False, "tls")  # the server requires a client certificate
    assert certs.clients[user].key_pem.splitlines()[1] not in json.dumps(result.as_dict() | without.as_dict())


def test_client_certificate_from_another_ca_is_refused(tls_server, certs, allow_loopback):
    stranger_ca = make_ca("Stranger CA")
    client = issue(stranger_ca, CERT_USER, client=True)
    result = get_connector("postgresql").test(
        tls_config(tls_server, "verify-full", ca=certs.ca.cert_pem, user=CERT_USER, client=client)
    )
    assert (result.ok, result.stage) == (False, "tls")


def test_introspection_over_tls(tls_server, certs, allow_loopback, private_tmp):
    directory, written = private_tmp
    config = mtls_config(tls_server, certs)
    assert isinstance(get_connector("postgresql").introspect(config), list)
    assert len(written) == 3 and list(directory.iterdir()) == []


def test_server_side_path_as_ca_is_rejected(tls_server, allow_loopback, api):
    with pytest.raises(ConfigInvalid) as caught:
        normalize_connection(get_type("postgresql"), {
            "host": "db.example.com", "database": "d", "username": "u",
            "ssl": {"mode": "verify-full", "ca_certificate": SYSTEM_CA_PATH}})
    assert list(caught.value.errors) == ["connection.ssl.ca_certificate"]
    body = {"name": "Bad CA", "type": "postgresql", "credentials": {"password": "pw-123456"},
            "connection": {"host": tls_server.host, "port": tls_server.port, "database": "postgres",
                           "username": "owner", "ssl": {"mode": "verify-full", "ca_certificate": SYSTEM_CA_PATH}}}
    response = api.post(f"{URL}?test_connection=false", body, format="json")
    assert response.status_code == 400, response.content
    assert "connection.ssl.ca_certificate" in json.dumps(response.json())
    # even past the catalogue, the text is written as certificate content, never opened as a path
    result = get_connector("postgresql").test(tls_config(tls_server, "verify-full", ca=SYSTEM_CA_PATH))
    assert (result.ok, result.stage) == (False, "tls")


@pytest.fixture(scope="module")
def sshd():
    yield from serve_sshd()


def test_verify_full_through_an_ssh_tunnel(tls_server, certs, sshd, allow_loopback, record_property):
    config = mtls_config(tls_server, certs)
    config.connection["ssh_tunnel"] = {"enabled": True, "host": sshd.host, "port": sshd.port, "username": sshd.user}
    config.secrets["ssh_private_key"] = sshd.keys["ed25519"]
    result = get_connector("postgresql").test(config)
    assert result.ok, result.message
    assert names(result) == ["resolve", "tcp", "ssh", "tls", "auth", "database"]
    record_property("stages", json.dumps([(s.name, s.duration_ms) for s in result.stages]))
    wrong = tls_config(tls_server, "verify-full", ca=make_ca("Other CA").cert_pem)
    wrong.connection["ssh_tunnel"] = config.connection["ssh_tunnel"]
    wrong.secrets["ssh_private_key"] = sshd.keys["ed25519"]
    failed = get_connector("postgresql").test(wrong)
    assert (failed.ok, failed.stage, failed.message) == (False, "tls", TLS_FAILED)
