"""Benchmark: repoint a workflow data source whose nodes read many tables (dry run, then apply).

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/repoint.py [--nodes 10000] [--tables 1000]

Everything is built in a throwaway test database (``test_<name>`` on PostgreSQL, in-memory on
SQLite; DATABASE_URL is honoured) that is dropped afterwards. Prints wall time and query counts
of the full API request (authentication, lookups, plan, rewrite, audit, response).
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Everything lives in a throwaway test database: throwaway keys do (DEBUG off needs both).
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ENCRYPTION_KEYS", "bench:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from bench.scale import build  # noqa: E402
from organizations.models import ALL_SCOPES  # noqa: E402
from organizations.services import create_organization, create_token  # noqa: E402
from workflows.models import NodeInput  # noqa: E402


def _timed(label: str, call) -> object:
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        response = call()
        elapsed = time.perf_counter() - start
    kinds = Counter(q["sql"].split(None, 1)[0].upper() for q in queries.captured_queries)
    detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    print(f"{label:<9} {elapsed * 1000:9.0f} ms  {len(queries):3d} queries  ({detail})  HTTP {response.status_code}")
    return response


def main() -> None:
    """Build, dry-run, apply, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--tables", type=int, default=1_000)
    args = parser.parse_args()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        org, _ = create_organization(slug="bench")
        _, raw = create_token(organization=org, name="bench", scopes=ALL_SCOPES)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        start = time.perf_counter()
        case = build(organization=org, nodes=args.nodes, tables=args.tables)
        print(f"{connection.vendor}: built {args.nodes} nodes reading {args.tables} tables "
              f"in {time.perf_counter() - start:.1f} s")
        url = f"/api/v1/workflows/{case.workflow.pk}/data-sources/{case.wds.pk}/"
        dry = _timed("dry run", lambda: client.patch(f"{url}?dry_run=true", case.body, format="json", secure=True))
        applied = _timed("apply", lambda: client.patch(url, case.body, format="json", secure=True))
        assert dry.status_code == 200 and applied.status_code == 200, applied.content[:500]
        rewritten = NodeInput.objects.filter(table_reference_id__startswith=f"{case.workflow.reference_id}s").count()
        print(f"plan: {dry.json()['inputs_rewritten']} inputs to rewrite; after apply: {rewritten} rewritten")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
