"""Shared fixtures: fixed actors (owner, editor, viewer, outsider), tokens, clients, real servers."""

from __future__ import annotations

import os
import socket

import pytest
from rest_framework.test import APIClient

from organizations.models import ALL_SCOPES, Membership, Role
from organizations.services import create_organization, create_token
from tests.support.browser import chromium_path  # noqa: F401 - a fixture of the browser tests

IN_CI = os.environ.get("CI") == "true"
LOOPBACK = ["127.0.0.0/8", "::1/128"]


def require_service(host: str, port: int, what: str) -> None:
    """Fail in CI, skip locally, when a real service the test needs is not running."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        message = f"{what} is not reachable on {host}:{port}: start it (see README, 'Tests')."
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _file_root(settings, tmp_path):
    from django.core.cache import cache

    cache.clear()  # rate-limit counters must not leak between tests (ids are reused)
    settings.SECURE_SSL_REDIRECT = False
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    settings.DATASOURCE_FILE_ROOT = str(tmp_path / "files")
    os.makedirs(settings.DATASOURCE_FILE_ROOT, exist_ok=True)
    return settings.DATASOURCE_FILE_ROOT


@pytest.fixture
def needs_postgres():
    """Concurrency tests need PostgreSQL's row locks: skipped locally on SQLite, a failure in CI."""
    from django.db import connection

    if connection.vendor != "postgresql":
        message = "set DATABASE_URL to a PostgreSQL database to run concurrency tests"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def allow_loopback(settings):
    settings.DATASOURCE_ALLOWED_NETWORKS = LOOPBACK
    return settings


@pytest.fixture
def without_driver(monkeypatch):
    """``without_driver("pymongo")``: this install lacks those driver modules (CONNECTOR_UNAVAILABLE)."""
    from datasources.connectors import registry

    def hide(*modules: str) -> None:
        real = registry._installed
        monkeypatch.setattr(registry, "_LOADED", {})
        monkeypatch.setattr(registry, "_installed", lambda module: module not in modules and real(module))

    return hide


@pytest.fixture
def org(db):
    return create_organization(slug="acme", name="Acme")[0]


@pytest.fixture
def other_org(db):
    return create_organization(slug="globex", name="Globex")[0]


def _member(django_user_model, org, username, role):
    user = django_user_model.objects.create_user(username=username, password="pw-" + username)
    Membership.objects.create(organization=org, user=user, role=role)
    return user


@pytest.fixture
def owner(db, org, django_user_model):
    return _member(django_user_model, org, "owner", Role.OWNER)


@pytest.fixture
def editor(db, org, django_user_model):
    return _member(django_user_model, org, "editor", Role.EDITOR)


@pytest.fixture
def viewer(db, org, django_user_model):
    return _member(django_user_model, org, "viewer", Role.VIEWER)


@pytest.fixture
def outsider(db, other_org, django_user_model):
    return _member(django_user_model, other_org, "outsider", Role.OWNER)


def client_for(org, scopes=None, username=None) -> APIClient:
    _, raw = create_token(organization=org, name="t", scopes=scopes or ALL_SCOPES, username=username)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.raw_token = raw
    return client


@pytest.fixture
def api(org):
    """A client with an all-scopes organization token (no user)."""
    return client_for(org)


@pytest.fixture
def other_api(other_org):
    return client_for(other_org)


@pytest.fixture
def make_client():
    return client_for


@pytest.fixture
def sqlite_file(_file_root):
    """A small SQLite database under the file root; returns its relative path."""
    import sqlite3

    path = os.path.join(_file_root, "shop.db")
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL);"
            "CREATE TABLE IF NOT EXISTS buyers (id INTEGER PRIMARY KEY, email TEXT);"
        )
    return "shop.db"


@pytest.fixture(scope="session")
def pg_password_server():
    """A real PostgreSQL cluster with scram password auth on a loopback port."""
    from tests.support.pgcluster import start_cluster, stop_cluster

    try:
        cluster = start_cluster()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"could not start a PostgreSQL cluster with initdb: {exc}")
        pytest.skip(f"could not start a PostgreSQL cluster with initdb: {exc}")
    yield cluster
    stop_cluster(cluster)


@pytest.fixture
def pg_source_data(pg_password_server):
    """Create-body for a PostgreSQL data source pointing at the password-auth cluster."""
    c = pg_password_server
    return {
        "name": "Warehouse",
        "type": "postgresql",
        "connection": {"host": c.host, "port": c.port, "database": c.database, "username": c.user,
                       "ssl": {"mode": "disable"}},
        "credentials": {"password": c.password},
    }


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """The longest module first (the contract fuzz): with several test processes (make test) it then
    does not start last and stretch the run's tail."""
    items.sort(key=lambda item: 0 if item.nodeid.startswith("tests/core/test_fuzz_schemathesis.py") else 1)
