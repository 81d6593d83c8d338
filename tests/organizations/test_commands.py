"""The management commands scripts rely on: their output lines and their effects."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from datasources.models import DataSource
from organizations.models import ApiToken, Organization


def _run(capsys, *args) -> list[str]:
    call_command(*args)
    return capsys.readouterr().out.strip().splitlines()


def test_seed_demo_leaves_the_sample_database_as_the_operator_left_it(db, capsys, settings):
    """The README's walk-through renames `orders`; the next `make run` (seed_demo) must not bring it back."""
    import sqlite3
    from pathlib import Path

    first = _run(capsys, "seed_demo")
    assert "Created sample database demo/sample.db." in first
    path = Path(settings.DATASOURCE_FILE_ROOT) / "demo" / "sample.db"
    with sqlite3.connect(path) as db:
        db.executescript("ALTER TABLE orders RENAME TO purchases;")
    second = _run(capsys, "seed_demo")
    assert "Kept sample database demo/sample.db." in second and second[-1] == first[-1]
    with sqlite3.connect(path) as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"purchases", "customers"} <= names and "orders" not in names


def test_seed_demo_is_idempotent_and_ends_with_a_working_token(db, capsys, settings):
    settings.SECURE_SSL_REDIRECT = False
    first = _run(capsys, "seed_demo")
    second = _run(capsys, "seed_demo")
    assert first[-1].startswith("DEMO_TOKEN=") and first[-1] == second[-1]
    assert Organization.objects.filter(slug="demo").count() == 1
    assert DataSource.objects.filter(organization__slug="demo").count() == 1
    assert ApiToken.objects.filter(organization__slug="demo").count() == 1
    ds = DataSource.objects.get(organization__slug="demo")
    assert ds.schema_status == "ready" and ds.schema_table_count == 3
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {first[-1].removeprefix('DEMO_TOKEN=')}")
    listed = client.get("/api/v1/data-sources/").json()
    assert [d["name"] for d in listed["results"]] == ["Demo SQLite"]


def test_create_organization_and_token(db, capsys, settings):
    settings.SECURE_SSL_REDIRECT = False
    assert "Created" in _run(capsys, "create_organization", "initech", "--name", "Initech")[-1]
    assert "Exists" in _run(capsys, "create_organization", "initech")[-1]
    token = _run(capsys, "create_token", "initech", "--scopes", "datasource.read", "--name", "ci")[-1]
    assert token.startswith("dsp_") and " " not in token
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/data-sources/").status_code == 200
    assert client.patch("/api/v1/data-sources/1/", {}, format="json").status_code == 403
    stored = ApiToken.objects.get(name="ci")
    assert stored.token_hash != token and token not in str(stored.__dict__)


@pytest.mark.parametrize(
    "args",
    [
        ("create_token", "nope", "--scopes", "datasource.read"),
        ("create_token", "initech", "--scopes", "datasource.fly"),
        ("create_token", "initech", "--scopes", "datasource.read", "--user", "ghost"),
        ("create_organization", "Not A Slug!"),
    ],
)
def test_commands_refuse_bad_input(db, args):
    Organization.objects.create(slug="initech", name="Initech")
    with pytest.raises(CommandError):
        call_command(*args)
