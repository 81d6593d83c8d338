"""Seed a demo organization, superuser, token and SQLite data source (idempotent)."""

import hashlib
import hmac
import sqlite3
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from datasources.models import DataSource
from datasources.services.connection import refresh_schema
from datasources.services.datasources import create_data_source
from organizations.actors import Actor
from organizations.models import ALL_SCOPES, ApiToken, Membership, Role, hash_token
from organizations.services import create_organization

DEMO_DB = "demo/sample.db"


def demo_token_value() -> str:
    """Stable across runs (derived from SECRET_KEY) so the README's curl lines keep working."""
    digest = hmac.new(settings.SECRET_KEY.encode(), b"demo-token", hashlib.sha256).hexdigest()
    return f"dsp_demo_{digest[:40]}"


def build_sample_database(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE IF NOT EXISTS customers (
                id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, country TEXT
            );
            CREATE TABLE IF NOT EXISTS orders (
                id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                total_cents INTEGER NOT NULL, placed_at TEXT
            );
            CREATE VIEW IF NOT EXISTS customer_totals AS
                SELECT c.id AS customer_id, c.name, SUM(o.total_cents) AS total_cents
                FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id;
            """
        )
        if not db.execute("SELECT COUNT(*) FROM customers").fetchone()[0]:
            db.executemany(
                "INSERT INTO customers (name, email, country) VALUES (?, ?, ?)",
                [("Ada", "ada@example.com", "GB"), ("Grace", "grace@example.com", "US"), ("Linus", None, "FI")],
            )
            db.executemany(
                "INSERT INTO orders (customer_id, total_cents, placed_at) VALUES (?, ?, ?)",
                [(1, 1250, "2026-01-02"), (1, 990, "2026-02-03"), (2, 4500, "2026-03-04")],
            )


class Command(BaseCommand):
    help = "Create the demo organization, superuser, token and SQLite data source. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="admin", help="Demo superuser password (local use only).")

    def handle(self, username, password, **options):
        with transaction.atomic():
            org, _ = create_organization(slug="demo", name="Demo organization")
            user_model = get_user_model()
            user = user_model.objects.filter(username=username).first()
            if user is None:
                user = user_model.objects.create_superuser(username=username, email="", password=password)
                self.stdout.write(f"Created superuser '{username}' (password '{password}').")
            else:
                self.stdout.write(f"Superuser '{username}' exists.")
            Membership.objects.get_or_create(organization=org, user=user, defaults={"role": Role.OWNER})
            raw = demo_token_value()
            token = ApiToken.objects.filter(token_hash=hash_token(raw)).first()
            if token is None:
                token = ApiToken(organization=org, name="demo token", scopes=list(ALL_SCOPES))
                token.set_token(raw)
            token.revoked_at = None
            token.expires_at = None
            token.scopes = list(ALL_SCOPES)
            token.save()

        build_sample_database(Path(settings.DATASOURCE_FILE_ROOT) / DEMO_DB)
        actor = Actor(organization=org, user=user, is_system=True)
        ds = DataSource.objects.filter(organization=org, name__iexact="Demo SQLite").first()
        if ds is None:
            ds = create_data_source(
                actor=actor,
                data={
                    "name": "Demo SQLite",
                    "type": "sqlite",
                    "description": "A small sample database created by seed_demo.",
                    "connection": {"path": DEMO_DB},
                    "tags": ["demo"],
                },
            ).data_source
            self.stdout.write(f"Created data source 'Demo SQLite' id={ds.pk}.")
        else:
            self.stdout.write(f"Data source 'Demo SQLite' exists (id={ds.pk}).")
        refresh_schema(data_source=ds)  # inline even when a worker would take it: the seed ends cached
        ds.refresh_from_db()
        self.stdout.write(f"Schema: {ds.schema_status}, version {ds.schema_version}, {ds.schema_table_count} tables.")
        self.stdout.write(f"DEMO_TOKEN={raw}")
