"""Benchmark: create and apply a change set of N sources (issue 19), against the local PostgreSQL
(127.0.0.1:5432, user postgres) and MariaDB (127.0.0.1:3306, root without password).

    .venv/bin/python bench/change_sets.py [--sources 100] [--types postgresql,mariadb]

The control plane's own tables live in a throwaway test database on the local PostgreSQL
(``test_dsp_bench_changes``; DATABASE_URL is honoured), so the items are tested in
CHANGE_SET_CONCURRENCY threads. Per type: N sources pointing at the server (made untested), one
change set moving every source to another database (each item tested, with its impact report),
then the all-or-nothing apply (one transaction) and the schema refreshes after it. Prints the time
of each request and the items per second.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dsp_bench_changes")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ENCRYPTION_KEYS", "bench:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from datasources.models import DataSource  # noqa: E402
from datasources.services.datasources import WriteOptions, create_data_source  # noqa: E402
from organizations.actors import Actor  # noqa: E402
from organizations.models import ALL_SCOPES  # noqa: E402
from organizations.services import create_organization, create_token  # noqa: E402

SERVERS = {
    # type: (connection, the database the change set moves every source to)
    "postgresql": ({"host": "127.0.0.1", "port": 5432, "database": "postgres", "username": "postgres",
                    "ssl": {"mode": "disable"}}, "template1"),
    "mariadb": ({"host": "127.0.0.1", "port": 3306, "database": "mysql", "username": "root",
                 "ssl": {"mode": "disable"}}, "information_schema"),
}


def run(client: APIClient, org, type_key: str, count: int) -> None:
    conn, target = SERVERS[type_key]
    actor = Actor.system(org, "bench")
    ids = [create_data_source(actor=actor, data={"name": f"{type_key}-{i}", "type": type_key, "connection": conn},
                              options=WriteOptions(test_connection=False)).data_source.pk for i in range(count)]
    items = [{"data_source": pk, "changes": {"connection": {"database": target}}} for pk in ids]
    start = time.perf_counter()
    created = client.post("/api/v1/change-sets/", {"items": items}, format="json", secure=True)
    tested = time.perf_counter() - start
    body = created.json()
    assert created.status_code == 201 and body["status"] == "open", str(body)[:1000]
    start = time.perf_counter()
    applied = client.post(f"/api/v1/change-sets/{body['id']}/apply/", secure=True)
    applying = time.perf_counter() - start
    assert applied.status_code == 200, applied.content[:1000]
    moved = DataSource.objects.filter(pk__in=ids, connection__database=target, version=2).count()
    print(f"{type_key:<10} {count} sources: create+test {tested * 1000:7.0f} ms ({count / tested:5.1f} items/s), "
          f"apply+refresh {applying * 1000:7.0f} ms, total {(tested + applying):5.2f} s; {moved}/{count} moved")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=100)
    parser.add_argument("--types", default="postgresql,mariadb")
    args = parser.parse_args()
    settings.DATASOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    settings.SECURE_SSL_REDIRECT = False
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        print(f"control plane on {connection.vendor}; CHANGE_SET_CONCURRENCY="
              f"{getattr(settings, 'CHANGE_SET_CONCURRENCY', 8)}")
        for type_key in args.types.split(","):
            org, _ = create_organization(slug=f"bench-{type_key}")
            _, raw = create_token(organization=org, name="bench", scopes=ALL_SCOPES)
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
            run(client, org, type_key, args.sources)
    finally:
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
