"""Seed a demo organization, superuser, token and SQLite data source (idempotent).

Re-running it keeps what exists and says so: it never re-activates a token an operator revoked
(nor lifts an expiry or restores scopes they took away), nor changes an existing member's role.
The last line is always ``DEMO_TOKEN=<token>``; when that token no longer authenticates, the line
before says why.
"""

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
from organizations.services import create_organization, create_token, set_membership

DEMO_DB = "demo/sample.db"


def demo_token_value() -> str:
    """Stable across runs (derived from SECRET_KEY) so the README's curl lines keep working."""
    digest = hmac.new(settings.SECRET_KEY.encode(), b"demo-token", hashlib.sha256).hexdigest()
    return f"dsp_demo_{digest[:40]}"


def build_sample_database(path: Path) -> bool:
    """Create the sample database when there is none; an existing one is left as it is (a table
    renamed in the README's walk-through stays renamed). Returns whether it was created."""
    if path.exists() and path.stat().st_size > 0:
        return False
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
    return True


class Command(BaseCommand):
    help = "Create the demo organization, superuser, token and SQLite data source. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="admin", help="Demo superuser password (local use only).")

    def handle(self, username, password, **options):
        with transaction.atomic():
            org, created = create_organization(slug="demo", name="Demo organization")
            self.stdout.write(f"{'Created' if created else 'Kept'} organization {org.slug}.")
            system = Actor.system(org, "seed_demo")
            user_model = get_user_model()
            user = user_model.objects.filter(username=username).first()
            if user is None:
                user = user_model.objects.create_superuser(username=username, email="", password=password)
                self.stdout.write(f"Created superuser '{username}' (password '{password}').")
            else:
                self.stdout.write(f"Kept user '{username}' (password unchanged).")
            membership = Membership.objects.filter(organization=org, user=user).first()
            if membership is None:
                set_membership(actor=system, organization=org, user=user, role=Role.OWNER)
                self.stdout.write(f"Created membership of '{username}' in {org.slug} (owner).")
            else:
                self.stdout.write(f"Kept membership of '{username}' in {org.slug} ({membership.role}).")
            raw = demo_token_value()
            token = ApiToken.objects.filter(token_hash=hash_token(raw)).first()
            if token is None:
                token, _raw = create_token(organization=org, name="demo token", scopes=list(ALL_SCOPES),
                                           actor=system, raw=raw)
                self.stdout.write(f"Created token '{token.name}' with scopes {','.join(token.scopes)}.")
            else:
                state = self._token_state(token)
                left = f": left {state.split()[0]}" if not token.is_active else ""
                self.stdout.write(f"Kept token '{token.name}' ({state}{left}).")

        created = build_sample_database(Path(settings.DATASOURCE_FILE_ROOT) / DEMO_DB)
        self.stdout.write(f"{'Created' if created else 'Kept'} sample database {DEMO_DB}.")
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
            self.stdout.write(f"Kept data source 'Demo SQLite' (id={ds.pk}).")
        refresh_schema(data_source=ds)  # inline even when a worker would take it: the seed ends cached
        ds.refresh_from_db()
        self.stdout.write(f"Schema: {ds.schema_status}, version {ds.schema_version}, {ds.schema_table_count} tables.")
        if not token.is_active:
            self.stdout.write(f"The demo token below was {self._token_state(token)} and stays so: it does not "
                              f"authenticate. Create another with: python manage.py create_token {org.slug} "
                              f"--scopes ...")
        self.stdout.write(f"DEMO_TOKEN={raw}")

    @staticmethod
    def _token_state(token: ApiToken) -> str:
        if token.revoked_at is not None:
            return f"revoked at {token.revoked_at:%Y-%m-%d %H:%M:%S %Z}"
        if not token.is_active:
            return f"expired at {token.expires_at:%Y-%m-%d %H:%M:%S %Z}"
        return f"active, scopes {','.join(token.scopes)}"
